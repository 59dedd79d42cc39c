import Glibc
import _EdgeCore

/// DPM-Solver++(2M) (Lu et al., 2022), diffusers' `DPMSolverMultistepScheduler` with algorithm_type
/// `dpmsolver++` (or `sde-dpmsolver++`), solver_order 2, solver_type `midpoint`, lower_order_final, and
/// final_sigmas_type `zero`.
///
/// The solver works on the data prediction x̂₀ (`convert_model_output`) and steps in λ = log(α/σ):
///
///     h = λ_{i+1} − λ_i
///     first order (step 0, and the last step, which goes to σ = 0):
///         x ← (σ_{i+1}/σ_i)·x − α_{i+1}(e^{−h} − 1)·x̂₀_i
///     second order (midpoint), r = (λ_i − λ_{i−1})/h, D₁ = (x̂₀_i − x̂₀_{i−1})/r:
///         x ← (σ_{i+1}/σ_i)·x − α_{i+1}(e^{−h} − 1)·x̂₀_i − ½·α_{i+1}(e^{−h} − 1)·D₁
///
/// The SDE variant (`dpmpp-2m-sde`) multiplies the sample term by e^{−h}, uses α(1 − e^{−2h}) for the
/// x̂₀ terms and adds σ_{i+1}√(1 − e^{−2h})·z with z drawn every step from the generator, as diffusers does.
/// Here σ_i, α_i are the VP noise and signal levels of the i-th entry of `sigmas` (`SigmaSchedule.alphaSigma`).
///
/// History: the last two x̂₀ (two workspace buffers, used alternately by step parity).
public struct DPMSolverSampler: Sampler {
    public let stochastic: Bool
    public let predictionType: NoiseScheduleConfig.PredictionType
    /// The integer timesteps the model is called at, descending.
    public let timesteps: [Int]
    /// σ of each step and 0 after the last (S + 1 values).
    public let sigmas: [Float]

    public let modelTimesteps: [Float]
    public var initNoiseSigma: Float { 1 }
    public var historyBuffers: Int { 2 }

    /// - Parameters:
    ///   - stochastic: `sde-dpmsolver++` instead of `dpmsolver++`.
    ///   - karras: `use_karras_sigmas`: Karras' ρ = 7 spacing of σ between the training σ's ends, timesteps
    ///     from `_sigma_to_t` (rounded, except for squaredcos_cap_v2, where diffusers truncates them).
    public init(schedulerConfig config: NoiseScheduleConfig, steps: Int, stochastic: Bool, karras: Bool) throws {
        self.stochastic = stochastic
        self.predictionType = config.predictionType
        // diffusers rounds the Karras timesteps unless beta_schedule is squaredcos_cap_v2 (it tests that field
        // even when trained_betas overrides it).
        (timesteps, sigmas) = try MultistepSpacing.schedule(config: config, steps: steps, karras: karras,
                                                            roundKarrasTimesteps: config.betaSchedule != .squaredcosCapV2)
        modelTimesteps = timesteps.map(Float.init)
    }

    public func step(_ i: Int, modelOutput: UnsafeBufferPointer<Float>, sample: UnsafeMutableBufferPointer<Float>,
                     generator: inout TorchGenerator, workspace: SamplerWorkspace) {
        let n = sample.count
        let current = workspace.history[i % 2], previous = workspace.history[(i + 1) % 2]
        // convert_model_output: x̂₀ at σ_i.
        let (alphaS0, sigmaS0) = SigmaSchedule.alphaSigma(sigmas[i])
        switch predictionType {
        case .epsilon: for k in 0..<n { current[k] = (sample[k] - sigmaS0 * modelOutput[k]) / alphaS0 }
        case .sample: for k in 0..<n { current[k] = modelOutput[k] }
        case .vPrediction: for k in 0..<n { current[k] = alphaS0 * sample[k] - sigmaS0 * modelOutput[k] }
        }
        if stochastic { generator.fillNormal(workspace.noise) }

        let (alphaT, sigmaT) = SigmaSchedule.alphaSigma(sigmas[i + 1])
        let lambdaT = logf(alphaT) - logf(sigmaT), lambdaS0 = logf(alphaS0) - logf(sigmaS0)
        let h = lambdaT - lambdaS0
        // lower_order_final with final_sigmas_type "zero": the last step is always first order.
        let firstOrder = i == 0 || i == sigmas.count - 2
        let noise = workspace.noise
        if firstOrder {
            if stochastic {
                let a = sigmaT / sigmaS0 * expf(-h), b = alphaT * (1 - expf(-2 * h)), c = sigmaT * (1 - expf(-2 * h)).squareRoot()
                for k in 0..<n { sample[k] = a * sample[k] + b * current[k] + c * noise[k] }
            } else {
                let a = sigmaT / sigmaS0, b = alphaT * (expf(-h) - 1)
                for k in 0..<n { sample[k] = a * sample[k] - b * current[k] }
            }
            return
        }
        let lambdaS1 = SigmaSchedule.lambda(sigmas[i - 1])
        let h0 = lambdaS0 - lambdaS1
        let r0 = h0 / h
        let d1Scale = 1 / r0
        if stochastic {
            let a = sigmaT / sigmaS0 * expf(-h), b = alphaT * (1 - expf(-2 * h)), half = 0.5 * b
            let c = sigmaT * (1 - expf(-2 * h)).squareRoot()
            for k in 0..<n {
                let d1 = d1Scale * (current[k] - previous[k])
                sample[k] = a * sample[k] + b * current[k] + half * d1 + c * noise[k]
            }
        } else {
            let a = sigmaT / sigmaS0, b = alphaT * (expf(-h) - 1), half = 0.5 * b
            for k in 0..<n {
                let d1 = d1Scale * (current[k] - previous[k])
                sample[k] = a * sample[k] - b * current[k] - half * d1
            }
        }
    }
}
