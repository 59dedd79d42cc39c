import _EdgeCore

/// One DDIM update x_t → x_{t'} in place (DDIM paper eq. 12, diffusers `DDIMScheduler.step` with
/// `use_clipped_model_output=False`), element by element:
///
/// 1. From the model output m, the predicted x₀ and ε:
///    * epsilon:       x̂₀ = (x_t − √(1−ᾱ_t)·m)/√ᾱ_t,  ε̂ = m
///    * sample:        x̂₀ = m,                        ε̂ = (x_t − √ᾱ_t·m)/√(1−ᾱ_t)
///    * v_prediction:  x̂₀ = √ᾱ_t·x_t − √(1−ᾱ_t)·m,    ε̂ = √ᾱ_t·m + √(1−ᾱ_t)·x_t
///    (ε̂ is computed from the *unclipped* x̂₀, as diffusers does.)
/// 2. With `clipRange` r: x̂₀ ← clamp(x̂₀, −r, r).
/// 3. x_{t'} = √ᾱ_{t'}·x̂₀ + √(1−ᾱ_{t'}−σ_t²)·ε̂ (+ σ_t·z when `noise` z is given).
///
/// Every product and sum is rounded to float32 separately, in torch's order, so the result matches
/// diffusers to the last bit or so. `noise` should be non-nil exactly when η > 0 (diffusers draws it only
/// then, even on steps where σ_t = 0).
///
/// - Parameters:
///   - sample: x_t on entry, x_{t'} on return.
///   - modelOutput: the model's prediction at t, same count as `sample`.
///   - noise: z ~ N(0, I), same count, or nil for η = 0.
public func ddimStep(
    sample: UnsafeMutableBufferPointer<Float>,
    modelOutput: UnsafeBufferPointer<Float>,
    coefficients c: DDIMStepCoefficients,
    predictionType: NoiseScheduleConfig.PredictionType,
    clipRange: Float?,
    noise: UnsafeBufferPointer<Float>?
) {
    let n = sample.count
    precondition(modelOutput.count == n, "model output holds \(modelOutput.count) values, sample \(n)")
    precondition(noise == nil || noise!.count == n, "noise holds \(noise?.count ?? 0) values, sample \(n)")
    let clip = clipRange ?? .infinity
    let clipOn = clipRange != nil
    // The prediction type is hoisted out of the element loop so each loop stays branch-free.
    switch predictionType {
    case .epsilon:
        for i in 0..<n {
            let x = sample[i], m = modelOutput[i]
            var x0 = (x - c.sqrtBetaProd * m) / c.sqrtAlphaProd
            if clipOn { x0 = min(max(x0, -clip), clip) }
            sample[i] = c.sqrtAlphaProdPrevious * x0 + c.directionScale * m
        }
    case .sample:
        for i in 0..<n {
            let x = sample[i], m = modelOutput[i]
            let eps = (x - c.sqrtAlphaProd * m) / c.sqrtBetaProd
            var x0 = m
            if clipOn { x0 = min(max(x0, -clip), clip) }
            sample[i] = c.sqrtAlphaProdPrevious * x0 + c.directionScale * eps
        }
    case .vPrediction:
        for i in 0..<n {
            let x = sample[i], m = modelOutput[i]
            var x0 = c.sqrtAlphaProd * x - c.sqrtBetaProd * m
            let eps = c.sqrtAlphaProd * m + c.sqrtBetaProd * x
            if clipOn { x0 = min(max(x0, -clip), clip) }
            sample[i] = c.sqrtAlphaProdPrevious * x0 + c.directionScale * eps
        }
    }
    if let noise {
        for i in 0..<n { sample[i] = sample[i] + c.noiseScale * noise[i] }
    }
}

/// Checks η ∈ [0, 1] (the DDIM family: 0 is deterministic DDIM, 1 has DDPM's posterior variance).
public func validateEta(_ eta: Float) throws {
    guard eta >= 0 && eta <= 1 else {
        throw EdgeError.usage("eta must be in [0, 1], got \(eta)")
    }
}

/// DDIM (Song et al., 2021), diffusers' `DDIMScheduler`: the η family of samplers over the timesteps of a
/// `DDIMSchedule`, η = 0 being the deterministic probability-flow solver of the paper's eq. 12. No history.
public struct DDIMSampler: Sampler {
    public let schedule: DDIMSchedule
    /// η ∈ [0, 1].
    public let eta: Float

    public let modelTimesteps: [Float]
    public var initNoiseSigma: Float { 1 }
    public var historyBuffers: Int { 0 }

    public init(schedule: DDIMSchedule, eta: Float) throws {
        try validateEta(eta)
        self.schedule = schedule
        self.eta = eta
        modelTimesteps = schedule.timesteps.map(Float.init)
    }

    public init(schedulerConfig config: NoiseScheduleConfig, steps: Int, eta: Float) throws {
        try self.init(schedule: DDIMSchedule(config: config, steps: steps), eta: eta)
    }

    /// diffusers draws the variance noise whenever η > 0, even on steps where σ_t = 0.
    public func step(_ i: Int, modelOutput: UnsafeBufferPointer<Float>, sample: UnsafeMutableBufferPointer<Float>,
                     generator: inout TorchGenerator, workspace: SamplerWorkspace) {
        var noise: UnsafeBufferPointer<Float>? = nil
        if eta > 0 {
            generator.fillNormal(workspace.noise)
            noise = UnsafeBufferPointer(workspace.noise)
        }
        ddimStep(sample: sample, modelOutput: modelOutput, coefficients: schedule.coefficients(step: i, eta: eta),
                 predictionType: schedule.config.predictionType, clipRange: schedule.clipRange, noise: noise)
    }
}

/// Runs the DDIM sampling loop of diffusers' `DDIMPipeline` on `x`:
///
///     for i, τ in enumerate(schedule.timesteps):
///         m = model(x, τ)
///         x = ddimStep(x, m, τ → τ'_i)      # + σ·randn(x.shape, generator) when η > 0
///
/// For pipeline parity, fill `x` with x_T = `generator.fillNormal(x)` (one draw of the full N×C×H×W shape,
/// as `randn_tensor` does) and pass the same generator here, so the per-step noise continues that stream.
/// On return `x` holds the last step's output (diffusers' final `prev_sample`, not clamped; the pipeline's
/// image is clamp(x/2 + 0.5, 0, 1)). `runSampler` with a `DDIMSampler`, for callers with integer timesteps;
/// it builds the sampler's timestep table (one allocation per call, none per step): a loop that must not
/// allocate at all keeps a `DDIMSampler` and calls `runSampler`.
///
/// - Parameters:
///   - x: x_T on entry (N·C·H·W floats), x₀ on return.
///   - eta: η ∈ [0, 1].
///   - model: writes the prediction for `xt` at integer timestep `t` into `out` (both `x.count` floats).
///   - progress: called after each step with (steps done, total steps).
/// - Throws: a usage error for η outside [0, 1] or a workspace of the wrong size; whatever `model` throws.
public func ddimSample(
    x: UnsafeMutableBufferPointer<Float>,
    schedule: DDIMSchedule,
    eta: Float,
    generator: inout TorchGenerator,
    workspace: SamplerWorkspace,
    model: (_ xt: UnsafeBufferPointer<Float>, _ t: Int, _ out: UnsafeMutableBufferPointer<Float>) throws -> Void,
    progress: ((_ step: Int, _ of: Int) -> Void)? = nil
) throws {
    try runSampler(DDIMSampler(schedule: schedule, eta: eta), x: x, generator: &generator, workspace: workspace,
                   model: { xt, t, out in try model(xt, Int(t), out) }, progress: progress)
}
