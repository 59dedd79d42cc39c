import _EdgeCore

/// Pseudo numerical methods (Liu et al., 2022), diffusers' `PNDMScheduler`: linear multistep (PLMS) in the
/// DDIM transfer, optionally warmed up with pseudo Runge–Kutta (PRK) steps.
///
/// Every update is the transfer φ(x, ε, t → t') of the paper's eq. 11 with an ε combined from recent model
/// outputs, with Δ = ⌊T/S⌋ (diffusers uses this stride whatever the spacing, as its DDIM does):
///
///     x_{t'} = √(ᾱ_{t'}/ᾱ_t)·x − (ᾱ_{t'} − ᾱ_t)·ε / (ᾱ_t·√(1 − ᾱ_{t'}) + √(ᾱ_t(1 − ᾱ_t)ᾱ_{t'}))
///
/// * `skip_prk_steps` (how Stable Diffusion runs it; `--sampler pndm`): S + 1 model evaluations. The first
///   step is Euler, the second re-evaluates at the same t' and redoes it with the mean of both outputs
///   (Heun), then Adams–Bashforth of order 2, 3 and 4: (3e₁ − e₂)/2, (23e₁ − 16e₂ + 5e₃)/12,
///   (55e₁ − 59e₂ + 37e₃ − 9e₄)/24.
/// * PRK warm-up (the paper's; `--pndm-prk`): S + 9 evaluations. Three classical 4-stage Runge–Kutta steps
///   over the last four base timesteps (half-steps at Δ/2), then order-4 PLMS. Needs S ≥ 4.
///
/// v_prediction outputs are turned into ε first; `sample` prediction is refused, as diffusers refuses it.
/// History: the last four ε (`ets`, a ring indexed by their order of arrival), the RK step's starting sample
/// (`cur_sample`), the RK accumulator (`cur_model_output`) and the combined ε of the current step.
public struct PNDMSampler: Sampler {
    public let predictionType: NoiseScheduleConfig.PredictionType
    public let alphasCumprod: [Float]
    /// ᾱ for timesteps below 0: 1 with set_alpha_to_one, else ᾱ₀ (PNDM's own default is false).
    public let finalAlphaCumprod: Float
    /// ⌊T/S⌋.
    public let stride: Int
    /// 12 with the PRK warm-up, else 0.
    public let prkSteps: Int
    /// The integer timesteps the model is called at (`prk_timesteps` then `plms_timesteps`).
    public let timesteps: [Int]

    public let modelTimesteps: [Float]
    public var initNoiseSigma: Float { 1 }
    public var historyBuffers: Int { 7 }

    /// - Parameters:
    ///   - setAlphaToOne: the config's set_alpha_to_one as PNDM reads it (false when the config lacks it).
    ///   - prk: the PRK warm-up (`skip_prk_steps` false).
    public init(schedulerConfig config: NoiseScheduleConfig, steps: Int, setAlphaToOne: Bool, prk: Bool) throws {
        guard config.predictionType != .sample else {
            throw EdgeError.usage("pndm supports prediction_type epsilon and v_prediction, not sample (as diffusers' PNDMScheduler)")
        }
        guard !prk || steps >= 4 else {
            throw EdgeError.usage("pndm with the Runge–Kutta warm-up (--pndm-prk) needs at least 4 steps, got \(steps)")
        }
        let total = config.numTrainTimesteps
        let alphas = try NoiseSchedule.alphasCumprod(config)
        predictionType = config.predictionType
        alphasCumprod = alphas
        finalAlphaCumprod = setAlphaToOne ? 1 : alphas[0]
        let stride = total / steps
        self.stride = stride
        // `_timesteps`, ascending.
        let base: [Int]
        switch config.timestepSpacing {
        case .linspace: base = Numpy.linspace(0, Double(total - 1), steps).map { Int($0.rounded(.toNearestOrEven)) }
        case .leading: base = (0..<steps).map { $0 * stride + config.stepsOffset }
        case .trailing: base = Array(Numpy.trailingTimesteps(total: total, steps: steps).prefix(steps).reversed())
        case .quadratic: throw EdgeError.usage("timestep spacing quadratic is DDIM's only (diffusers' schedulers take leading, trailing or linspace)")
        }
        let timesteps: [Int]
        if prk {
            // prk_timesteps: the last four base timesteps and their half-steps, each stage point twice
            // (np.repeat / np.tile as diffusers builds them), reversed; then the base timesteps but the last 3.
            let half = total / steps / 2
            let points = base.suffix(4).flatMap { [$0, $0 + half] }.dropLast()
            let stages = Array(points.flatMap { [$0, $0] }.dropFirst().dropLast())
            prkSteps = stages.count
            timesteps = Array(stages.reversed()) + Array(base.dropLast(3).reversed())
        } else {
            prkSteps = 0
            // concatenate(_timesteps[:-1], _timesteps[-2:-1], _timesteps[-1:])[::-1]
            let n = base.count
            var plms: [Int] = Array(base.prefix(n - 1))
            if n >= 2 { plms.append(base[n - 2]) }
            plms.append(base[n - 1])
            timesteps = Array(plms.reversed())
        }
        if let bad = timesteps.first(where: { !(0..<total).contains($0) }) {
            throw EdgeError.usage("pndm: timestep \(bad) is outside 0..<\(total) for \(steps) steps with \(config.timestepSpacing.rawValue) spacing (diffusers fails indexing ᾱ there)")
        }
        self.timesteps = timesteps
        modelTimesteps = timesteps.map(Float.init)
    }

    @inline(__always)
    func alphaCumprod(at t: Int) -> Float { t < 0 ? finalAlphaCumprod : alphasCumprod[t] }

    public func step(_ i: Int, modelOutput: UnsafeBufferPointer<Float>, sample: UnsafeMutableBufferPointer<Float>,
                     generator: inout TorchGenerator, workspace: SamplerWorkspace) {
        let n = sample.count
        let ets = workspace.history
        let curSample = workspace.history[4], accumulator = workspace.history[5], effective = workspace.history[6]
        if i < prkSteps {
            // step_prk: stage i % 4 of the RK step that starts at the timestep of stage 0.
            let stage = i % 4
            let previousT = timesteps[i] - (i % 2 == 1 ? 0 : stride / 2)
            let t = timesteps[i / 4 * 4]
            let sixth = Float(1.0 / 6.0), third = Float(1.0 / 3.0)
            switch stage {
            case 0:
                for k in 0..<n { accumulator[k] = sixth * modelOutput[k] }
                ets[(i / 4) % 4].baseAddress!.update(from: modelOutput.baseAddress!, count: n)
                curSample.baseAddress!.update(from: sample.baseAddress!, count: n)
                effective.baseAddress!.update(from: modelOutput.baseAddress!, count: n)
            case 1, 2:
                for k in 0..<n { accumulator[k] = accumulator[k] + third * modelOutput[k] }
                effective.baseAddress!.update(from: modelOutput.baseAddress!, count: n)
            default:
                for k in 0..<n { effective[k] = accumulator[k] + sixth * modelOutput[k] }
            }
            transfer(from: UnsafeBufferPointer(curSample), t: t, to: previousT, epsilon: effective, into: sample)
            return
        }
        // step_plms. Counter c is i; ε arrivals are numbered j: the PRK steps stored 3, then every PLMS step
        // adds one, except the second step of a PLMS-only run (it re-evaluates the first step's target).
        var t = timesteps[i]
        var previousT = t - stride
        let source: UnsafeBufferPointer<Float>
        if prkSteps == 0 && i == 1 {
            previousT = t
            t += stride
            let e0 = ets[0]
            for k in 0..<n { effective[k] = (modelOutput[k] + e0[k]) / 2 }
            source = UnsafeBufferPointer(curSample)
        } else {
            let j = prkSteps > 0 ? i - prkSteps + 3 : (i == 0 ? 0 : i - 1)
            ets[j % 4].baseAddress!.update(from: modelOutput.baseAddress!, count: n)
            let e1 = ets[j % 4], e2 = ets[(j + 3) % 4], e3 = ets[(j + 2) % 4], e4 = ets[(j + 1) % 4]
            switch min(j + 1, 4) {
            case 1:
                effective.baseAddress!.update(from: modelOutput.baseAddress!, count: n)
                curSample.baseAddress!.update(from: sample.baseAddress!, count: n)
            // Adams–Bashforth weights, each product and sum rounded in diffusers' order.
            case 2:
                let c1: Float = 3
                for k in 0..<n { effective[k] = (c1 * e1[k] - e2[k]) / 2 }
            case 3:
                let c1: Float = 23, c2: Float = 16, c3: Float = 5
                for k in 0..<n {
                    let sum: Float = c1 * e1[k] - c2 * e2[k]
                    effective[k] = (sum + c3 * e3[k]) / 12
                }
            default:
                let scale = Float(1.0 / 24.0)
                let c1: Float = 55, c2: Float = 59, c3: Float = 37, c4: Float = 9
                for k in 0..<n {
                    let first: Float = c1 * e1[k] - c2 * e2[k]
                    let second: Float = first + c3 * e3[k]
                    effective[k] = scale * (second - c4 * e4[k])
                }
            }
            source = UnsafeBufferPointer(sample)
        }
        transfer(from: source, t: t, to: previousT, epsilon: effective, into: sample)
    }

    /// `_get_prev_sample`: the transfer from t to t' of `source` with `epsilon` (a v prediction is converted
    /// to ε in place first), written to `into` (which may be `source`).
    func transfer(from source: UnsafeBufferPointer<Float>, t: Int, to previousT: Int,
                  epsilon: UnsafeMutableBufferPointer<Float>, into: UnsafeMutableBufferPointer<Float>) {
        let n = into.count
        let alphaProd = alphaCumprod(at: t), alphaProdPrevious = alphaCumprod(at: previousT)
        let betaProd = 1 - alphaProd, betaProdPrevious = 1 - alphaProdPrevious
        if predictionType == .vPrediction {
            let a = alphaProd.squareRoot(), b = betaProd.squareRoot()
            for k in 0..<n { epsilon[k] = a * epsilon[k] + b * source[k] }
        }
        let sampleScale = (alphaProdPrevious / alphaProd).squareRoot()
        let denominator = alphaProd * betaProdPrevious.squareRoot() + (alphaProd * betaProd * alphaProdPrevious).squareRoot()
        let difference = alphaProdPrevious - alphaProd
        for k in 0..<n { into[k] = sampleScale * source[k] - difference * epsilon[k] / denominator }
    }
}
