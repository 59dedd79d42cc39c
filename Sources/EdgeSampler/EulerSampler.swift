import _EdgeCore

/// The Euler samplers of Karras et al. (2022), diffusers' `EulerDiscreteScheduler` (`euler`) and
/// `EulerAncestralDiscreteScheduler` (`euler-a`), in the variance-exploding variable x = x_VP/√ᾱ, where the
/// probability-flow ODE is dx/dσ = (x − x̂₀)/σ:
///
///     x̂₀ = x − σ_i·m (epsilon), (−σ_i/√(σ_i² + 1))·m + x/(σ_i² + 1) (v_prediction), m (sample; euler only)
///     euler:    x ← x + (x − x̂₀)/σ_i · (σ_{i+1} − σ_i)
///     euler-a:  σ_up = √(σ_{i+1}²(σ_i² − σ_{i+1}²)/σ_i²), σ_down = √(σ_{i+1}² − σ_up²),
///               x ← x + (x − x̂₀)/σ_i · (σ_down − σ_i) + σ_up·z,  z drawn every step from the generator
///
/// The model sees x/√(σ_i² + 1) (`scale_model_input`), which is the VP sample, and x_T is unit noise times
/// σ_max (trailing, linspace) or √(σ_max² + 1) (leading). The default s_churn = 0, so `euler` adds no noise.
/// Timesteps are float32 and for linspace spacing or Karras σ's fall between integers: the UNet embeds
/// them as given. No history.
public struct EulerSampler: Sampler {
    public let ancestral: Bool
    public let predictionType: NoiseScheduleConfig.PredictionType
    /// The (float32) timesteps the model is called at, descending.
    public let timesteps: [Float]
    /// σ of each step and 0 after the last (S + 1 values).
    public let sigmas: [Float]
    public let initNoiseSigma: Float

    public var modelTimesteps: [Float] { timesteps }
    public var historyBuffers: Int { 0 }
    public var scalesModelInput: Bool { true }

    /// - Parameters:
    ///   - ancestral: `euler-a` instead of `euler`.
    ///   - karras: `use_karras_sigmas` (euler only): Karras' σ spacing between the σ of the first and last
    ///     timestep, timesteps from `_sigma_to_t` (not rounded).
    public init(schedulerConfig config: NoiseScheduleConfig, steps: Int, ancestral: Bool, karras: Bool) throws {
        if ancestral && config.predictionType == .sample {
            throw EdgeError.usage("euler-a supports prediction_type epsilon and v_prediction, not sample (diffusers' EulerAncestralDiscreteScheduler raises NotImplementedError)")
        }
        precondition(!(ancestral && karras), "EulerAncestralDiscreteScheduler has no use_karras_sigmas")
        let total = config.numTrainTimesteps
        let table = SigmaSchedule.trainingSigmas(try NoiseSchedule.alphasCumprod(config))
        self.ancestral = ancestral
        predictionType = config.predictionType
        // set_timesteps: float timesteps (numpy float64, cast to float32), σ by np.interp in double.
        var points: [Float]
        switch config.timestepSpacing {
        case .linspace:
            points = Numpy.linspace(0, Double(total - 1), steps).reversed().map { Float($0) }
        case .leading:
            let ratio = total / steps
            points = (0..<steps).map { Float((steps - 1 - $0) * ratio) + Float(config.stepsOffset) }
        case .trailing:
            points = Numpy.trailingTimesteps(total: total, steps: steps).prefix(steps).map { Float($0) }
        case .quadratic:
            throw EdgeError.usage("timestep spacing quadratic is DDIM's only (diffusers' schedulers take leading, trailing or linspace)")
        }
        var stepSigmas = points.map { Numpy.interp(Double($0), table: table) }
        if karras {
            let logSigmas = SigmaSchedule.logSigmas(table)
            stepSigmas = SigmaSchedule.karras(sigmaMin: stepSigmas[stepSigmas.count - 1], sigmaMax: stepSigmas[0], count: steps)
            points = stepSigmas.map { Float(SigmaSchedule.timestep(sigma: $0, logSigmas: logSigmas)) }
        }
        timesteps = points
        sigmas = SigmaSchedule.withFinalZero(stepSigmas)
        // init_noise_sigma from the inference σ's (their maximum, the final 0 included).
        let maxSigma = sigmas.max() ?? 0
        switch config.timestepSpacing {
        case .linspace, .trailing: initNoiseSigma = maxSigma
        default: initNoiseSigma = (maxSigma * maxSigma + 1).squareRoot()
        }
    }

    public func scaleModelInput(step i: Int, sample: UnsafeBufferPointer<Float>, into: UnsafeMutableBufferPointer<Float>) {
        let sigma = sigmas[i]
        let scale = (sigma * sigma + 1).squareRoot()
        for k in 0..<sample.count { into[k] = sample[k] / scale }
    }

    public func step(_ i: Int, modelOutput: UnsafeBufferPointer<Float>, sample: UnsafeMutableBufferPointer<Float>,
                     generator: inout TorchGenerator, workspace: SamplerWorkspace) {
        let n = sample.count
        let sigma = sigmas[i], sigmaNext = sigmas[i + 1]
        let dt: Float
        var sigmaUp: Float = 0
        if ancestral {
            let from2 = sigma * sigma, to2 = sigmaNext * sigmaNext
            sigmaUp = (to2 * (from2 - to2) / from2).squareRoot()
            let sigmaDown = (to2 - sigmaUp * sigmaUp).squareRoot()
            dt = sigmaDown - sigma
        } else {
            dt = sigmaNext - sigma    // σ_hat = σ·(γ + 1) with γ = 0
        }
        let vScale = -sigma / (sigma * sigma + 1).squareRoot(), vDivisor = sigma * sigma + 1
        for k in 0..<n {
            let x = sample[k], m = modelOutput[k]
            let x0: Float
            switch predictionType {
            case .epsilon: x0 = x - sigma * m
            case .vPrediction: x0 = m * vScale + x / vDivisor
            case .sample: x0 = m
            }
            let derivative = (x - x0) / sigma
            sample[k] = x + derivative * dt
        }
        if ancestral {
            generator.fillNormal(workspace.noise)
            let noise = workspace.noise
            for k in 0..<n { sample[k] = sample[k] + noise[k] * sigmaUp }
        }
    }
}
