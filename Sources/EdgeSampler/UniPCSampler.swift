import Glibc
import _EdgeCore

/// UniPC (Zhao et al., 2023), diffusers' `UniPCMultistepScheduler` with its defaults: solver_order 2,
/// predict_x0, solver_type `bh2` (B(h) = e^{−h} − 1 in the data-prediction form), lower_order_final, no
/// disabled corrector steps, final_sigmas_type `zero`.
///
/// Each step i first *corrects* the sample it was given (UniC, from step 1 on) using the model output just
/// computed at it, then *predicts* the next sample (UniP), both in λ = log(α/σ) with h = λ_t − λ_s:
///
///     x_t = (σ_t/σ_s)·x_s − α_t(e^{−h} − 1)·x̂₀_s − α_t·B(h)·Σ_k ρ_k·D_k
///
/// where D_k = (x̂₀ at an earlier step − x̂₀_s)/r_k, r_k = (λ_k − λ_s)/h. UniP of order 2 uses ρ = ½ for its
/// one D; UniC adds D_t = x̂₀_t − x̂₀_s with the ρ's from the 2×2 system R·ρ = b of the paper (order 1: ρ = ½).
/// The order is 1 on the first step (warm-up) and on the last (lower_order_final), otherwise 2; the
/// corrector at step i uses step i − 1's order. The last step goes to σ = 0, which makes it x̂₀ exactly.
///
/// History: x̂₀ of the last three steps (a ring of three buffers: the corrector needs steps i − 1 and i − 2
/// while step i's is being written) and the sample UniP started from (`last_sample`).
public struct UniPCSampler: Sampler {
    public let predictionType: NoiseScheduleConfig.PredictionType
    /// The integer timesteps the model is called at, descending.
    public let timesteps: [Int]
    /// σ of each step and 0 after the last (S + 1 values).
    public let sigmas: [Float]

    public let modelTimesteps: [Float]
    public var initNoiseSigma: Float { 1 }
    public var historyBuffers: Int { 4 }

    /// - Parameter karras: `use_karras_sigmas` (timesteps from `_sigma_to_t`, always rounded in UniPC).
    public init(schedulerConfig config: NoiseScheduleConfig, steps: Int, karras: Bool) throws {
        predictionType = config.predictionType
        (timesteps, sigmas) = try MultistepSpacing.schedule(config: config, steps: steps, karras: karras, roundKarrasTimesteps: true)
        modelTimesteps = timesteps.map(Float.init)
    }

    /// The order of step i's predictor: warm-up min(i + 1, 2), lower_order_final min(2, S − i).
    @inline(__always)
    func order(step i: Int) -> Int { min(min(2, timesteps.count - i), min(i, 2) + 1) }

    public func step(_ i: Int, modelOutput: UnsafeBufferPointer<Float>, sample: UnsafeMutableBufferPointer<Float>,
                     generator: inout TorchGenerator, workspace: SamplerWorkspace) {
        let n = sample.count
        let current = workspace.history[i % 3]
        let previous = workspace.history[(i + 2) % 3]    // step i − 1
        let beforePrevious = workspace.history[(i + 1) % 3]    // step i − 2
        let lastSample = workspace.history[3]
        // convert_model_output (predict_x0): x̂₀ at σ_i.
        let (alphaI, sigmaI) = SigmaSchedule.alphaSigma(sigmas[i])
        switch predictionType {
        case .epsilon: for k in 0..<n { current[k] = (sample[k] - sigmaI * modelOutput[k]) / alphaI }
        case .sample: for k in 0..<n { current[k] = modelOutput[k] }
        case .vPrediction: for k in 0..<n { current[k] = alphaI * sample[k] - sigmaI * modelOutput[k] }
        }

        if i > 0 {
            // UniC (multistep_uni_c_bh_update): from σ_{i−1} to σ_i, correcting `sample` with x̂₀_i.
            let c = Coefficients(sigmaT: sigmas[i], sigmaS0: sigmas[i - 1], sigmaS1: order(step: i - 1) == 2 ? sigmas[i - 2] : nil)
            let (rho0, rhoLast) = c.correctorRhos()
            let scale = c.alphaT * c.bh
            for k in 0..<n {
                let m0 = previous[k]
                let base = c.sampleScale * lastSample[k] - c.x0Scale * m0
                let correction = c.order == 2 ? rho0 * ((beforePrevious[k] - m0) / c.rk) : 0
                sample[k] = base - scale * (correction + rhoLast * (current[k] - m0))
            }
        }
        lastSample.baseAddress!.update(from: sample.baseAddress!, count: n)

        // UniP (multistep_uni_p_bh_update): from σ_i to σ_{i+1}.
        let p = Coefficients(sigmaT: sigmas[i + 1], sigmaS0: sigmas[i], sigmaS1: order(step: i) == 2 ? sigmas[i - 1] : nil)
        let scale = p.alphaT * p.bh
        for k in 0..<n {
            let m0 = current[k]
            let base = p.sampleScale * sample[k] - p.x0Scale * m0
            sample[k] = p.order == 2 ? base - scale * (0.5 * ((previous[k] - m0) / p.rk)) : base
        }
    }

    /// The scalars of one UniP or UniC update from σ_s0 to σ_t, float32 in diffusers' order. `sigmaS1` is
    /// the earlier step's σ for order 2, nil for order 1.
    struct Coefficients {
        let order: Int
        let alphaT: Float
        /// σ_t/σ_s0 (VP noise levels).
        let sampleScale: Float
        /// α_t·hφ₁ with hφ₁ = e^{−h} − 1.
        let x0Scale: Float
        /// B(h) = e^{−h} − 1 (bh2).
        let bh: Float
        /// hh = −h.
        let hh: Float
        /// r = (λ_s1 − λ_s0)/h, order 2 only.
        let rk: Float

        init(sigmaT: Float, sigmaS0: Float, sigmaS1: Float?) {
            let (alphaT, sigmaTV) = SigmaSchedule.alphaSigma(sigmaT)
            let (alphaS0, sigmaS0V) = SigmaSchedule.alphaSigma(sigmaS0)
            let lambdaT = logf(alphaT) - logf(sigmaTV)
            let lambdaS0 = logf(alphaS0) - logf(sigmaS0V)
            let h = lambdaT - lambdaS0
            self.alphaT = alphaT
            sampleScale = sigmaTV / sigmaS0V
            hh = -h
            let hPhi1 = expm1f(hh)
            x0Scale = alphaT * hPhi1
            bh = expm1f(hh)
            if let s1 = sigmaS1 {
                order = 2
                rk = (SigmaSchedule.lambda(s1) - lambdaS0) / h
            } else {
                order = 1
                rk = 1
            }
        }

        /// UniC's ρ (its first entry, which weighs D₁, and its last, which weighs D_t): ½ for order 1, else
        /// the solution of [[1, 1], [r, 1]]·ρ = b with b_k = hφ_k·k!/B(h), hφ₁ = (e^{hh} − 1)/hh − 1,
        /// hφ₂ = hφ₁/hh − ½.
        func correctorRhos() -> (Float, Float) {
            guard order == 2 else { return (0, 0.5) }
            var hPhiK = expm1f(hh) / hh - 1
            let b0 = hPhiK * 1 / bh
            hPhiK = hPhiK / hh - Float(1.0 / 2.0)
            let b1 = hPhiK * 2 / bh
            return Self.solve2x2(a11: 1, a12: 1, a21: rk, a22: 1, b1: b0, b2: b1)
        }

        /// `torch.linalg.solve` of a 2×2 system: LU with partial pivoting (LAPACK's sgesv), in float32.
        static func solve2x2(a11: Float, a12: Float, a21: Float, a22: Float, b1: Float, b2: Float) -> (Float, Float) {
            var (p11, p12, p21, p22, q1, q2) = (a11, a12, a21, a22, b1, b2)
            if abs(a21) > abs(a11) { (p11, p12, p21, p22, q1, q2) = (a21, a22, a11, a12, b2, b1) }
            let l = p21 * (1 / p11)
            let u22 = p22 - l * p12
            let y2 = q2 - l * q1
            let x2 = y2 / u22
            let x1 = (q1 - p12 * x2) / p11
            return (x1, x2)
        }
    }
}
