/// The noise schedule a DDPM was trained with, as diffusers' `scheduler_config.json` describes it
/// (the fields `DDPMScheduler` and `DDIMScheduler` share). The converter fills it from the checkpoint,
/// the model file stores it, and the sampler reads it: it is vocabulary, not behaviour, so it lives in
/// the core that all three import.
public struct NoiseScheduleConfig: Equatable, Sendable {
    public enum BetaSchedule: String, Sendable, CaseIterable {
        /// β_t linearly spaced from `betaStart` to `betaEnd` (the DDPM paper's schedule).
        case linear
        /// √β_t linearly spaced from √betaStart to √betaEnd, then squared (Stable Diffusion's).
        case scaledLinear = "scaled_linear"
        /// Nichol & Dhariwal's cosine schedule: ᾱ(t) = cos²((t/T + 0.008)/1.008 · π/2), β clipped at 0.999.
        case squaredcosCapV2 = "squaredcos_cap_v2"
    }

    public enum PredictionType: String, Sendable, CaseIterable {
        /// The UNet predicts the noise ε.
        case epsilon
        /// The UNet predicts v = √ᾱ·ε − √(1−ᾱ)·x₀ (Salimans & Ho).
        case vPrediction = "v_prediction"
        /// The UNet predicts x₀ directly.
        case sample
    }

    public enum TimestepSpacing: String, Sendable, CaseIterable {
        /// t = i·(T/S) for i in 0..<S, plus steps_offset: the DDIM paper's "uniform" skip.
        case leading
        /// t = round(T − i·T/S) − 1 for i in 0..<S.
        case trailing
        /// t = round(linspace(0, T−1, S)).
        case linspace
        /// t = int(linspace(0, √(0.8·T), S)²): the DDIM paper's quadratic skip (not in diffusers).
        case quadratic
    }

    public var numTrainTimesteps: Int = 1000
    public var betaSchedule: BetaSchedule = .linear
    public var betaStart: Double = 0.0001
    public var betaEnd: Double = 0.02
    /// When present, overrides `betaSchedule` (one β per training timestep).
    public var trainedBetas: [Double]? = nil
    public var clipSample: Bool = true
    public var clipSampleRange: Double = 1.0
    public var predictionType: PredictionType = .epsilon
    public var stepsOffset: Int = 0
    /// DDIM's ᾱ for the step after the last one: 1 when true, ᾱ₀ when false.
    public var setAlphaToOne: Bool = true
    public var timestepSpacing: TimestepSpacing = .leading
    /// The fields the checkpoint's scheduler_config.json set (diffusers' names), or nil when that is not known
    /// (model files written before it was recorded): every field then counts as set. A diffusers scheduler
    /// made with `from_config` takes its own default for a field the file lacks, and those defaults differ
    /// between schedulers (`timestep_spacing`, `set_alpha_to_one`), so the samplers need to know.
    public var givenFields: Set<String>? = nil

    public init() {}

    /// Whether the checkpoint's config set `field` (or the user overrode it); true when unknown.
    public func isGiven(_ field: String) -> Bool { givenFields?.contains(field) ?? true }

    /// Records that `field` now has a chosen value (a command-line override).
    public mutating func markGiven(_ field: String) { givenFields?.insert(field) }
}

extension NoiseScheduleConfig {
    /// Largest T accepted: diffusers' published models use 1000; the bound keeps the per-timestep tables
    /// a hostile file can ask for small.
    public static let maxTrainTimesteps = 100_000

    /// Checks the ranges the sampler relies on (T ≥ 1 before any `1...T`, βs in (0, 1), finite numbers).
    /// `file` prefixes the message: the config file, or the model file the config was stored in.
    public func validate(file: String) throws {
        func need(_ ok: Bool, _ message: String) throws { if !ok { throw EdgeError("\(file): \(message)") } }
        try need((1 ... Self.maxTrainTimesteps).contains(numTrainTimesteps),
                 "num_train_timesteps must be in 1...\(Self.maxTrainTimesteps), got \(numTrainTimesteps)")
        try need(betaStart > 0 && betaStart < 1 && betaEnd > 0 && betaEnd < 1,
                 "beta_start and beta_end must be in (0, 1), got \(betaStart) and \(betaEnd)")
        if let b = trainedBetas {
            try need(b.count == numTrainTimesteps, "trained_betas has \(b.count) entries, num_train_timesteps is \(numTrainTimesteps)")
            try need(b.allSatisfy { $0 > 0 && $0 < 1 }, "trained_betas entries must be in (0, 1)")
        }
        try need(clipSampleRange.isFinite && clipSampleRange > 0, "clip_sample_range must be a positive number, got \(clipSampleRange)")
        try need((0 ..< numTrainTimesteps).contains(stepsOffset), "steps_offset must be in 0..<\(numTrainTimesteps), got \(stepsOffset)")
    }
}
