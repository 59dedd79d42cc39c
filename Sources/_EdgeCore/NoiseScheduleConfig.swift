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

    public init() {}
}
