import _EdgeCore

/// The inference timesteps of a DDIM run and the ᾱ values its steps use: diffusers' `DDIMScheduler` after
/// `set_timesteps(steps)`, plus the DDIM paper's quadratic spacing.
///
/// Step i goes from timestep τ_i = `timesteps[i]` (descending) to τ'_i = `previousTimesteps[i]`; ᾱ_{τ'} is
/// `finalAlphaCumprod` when τ' < 0 (1 with `setAlphaToOne`, else ᾱ_0).
///
/// How τ' is chosen — this reproduces diffusers, including where diffusers is surprising:
/// * For the diffusers spacings (`leading`, `trailing`, `linspace`) diffusers always uses
///   τ' = τ − ⌊T/S⌋, whatever the spacing. For `leading` that is the next timestep in the list; for
///   `trailing` and `linspace` the list is not spaced by ⌊T/S⌋ (e.g. T=1000, S=7: trailing spacing is
///   ≈142.9 and linspace ≈166.5), so τ' is *not* the next listed timestep. Reproduced as is.
/// * For `quadratic` (not in diffusers) τ' is the next timestep in the list and −1 after the last one, as in
///   the DDIM paper's code (`seq_next`).
public struct DDIMSchedule: Sendable, Equatable {
    public let config: NoiseScheduleConfig
    /// ᾱ_t for t in 0..<T (float32, as torch computes it).
    public let alphasCumprod: [Float]
    /// ᾱ used after the last step: 1 if `config.setAlphaToOne`, else ᾱ_0.
    public let finalAlphaCumprod: Float
    /// τ_0 > … (non-increasing; quadratic may repeat small values): the timesteps the model is called at.
    public let timesteps: [Int]
    /// τ'_i for each step; negative means "use `finalAlphaCumprod`".
    public let previousTimesteps: [Int]

    /// Number of denoising steps (model evaluations).
    public var count: Int { timesteps.count }

    /// Throws a usage error when `steps` is not in 1...T, when the schedule's betas are invalid, or when
    /// `stepsOffset` pushes a timestep to T or beyond (diffusers would fail indexing ᾱ).
    public init(config: NoiseScheduleConfig, steps: Int) throws {
        let alphas = try NoiseSchedule.alphasCumprod(config)
        let timesteps = try Self.timesteps(config: config, steps: steps)
        let total = config.numTrainTimesteps
        if let bad = timesteps.first(where: { $0 < 0 || $0 >= total }) {
            throw EdgeError.usage(
                "timestep \(bad) is outside 0..<\(total) (steps \(steps), steps_offset \(config.stepsOffset), spacing \(config.timestepSpacing.rawValue))")
        }
        self.config = config
        self.alphasCumprod = alphas
        self.finalAlphaCumprod = config.setAlphaToOne ? 1 : alphas[0]
        self.timesteps = timesteps
        switch config.timestepSpacing {
        case .leading, .trailing, .linspace:
            let stride = total / steps
            self.previousTimesteps = timesteps.map { $0 - stride }
        case .quadratic:
            self.previousTimesteps = (0..<timesteps.count).map { i in
                i + 1 < timesteps.count ? timesteps[i + 1] : -1
            }
        }
    }

    /// ᾱ_t, or `finalAlphaCumprod` for t < 0.
    @inline(__always)
    public func alphaCumprod(at t: Int) -> Float {
        t < 0 ? finalAlphaCumprod : alphasCumprod[t]
    }

    /// Clipping range for the predicted x₀ (`clip_sample_range`), nil when `clip_sample` is off.
    public var clipRange: Float? {
        config.clipSample ? Float(config.clipSampleRange) : nil
    }

    /// The scalar coefficients of step i (see `DDIMStepCoefficients`).
    @inline(__always)
    public func coefficients(step i: Int, eta: Float) -> DDIMStepCoefficients {
        DDIMStepCoefficients(alphaProd: alphasCumprod[timesteps[i]],
                             alphaProdPrevious: alphaCumprod(at: previousTimesteps[i]), eta: eta)
    }

    /// The descending timestep list of `set_timesteps(steps)` (T = `numTrainTimesteps`, S = `steps`,
    /// numbers computed in double as numpy does):
    ///
    /// * `leading`: τ_i = (S−1−i)·⌊T/S⌋ + steps_offset.
    /// * `trailing`: round(T − k·(T/S)) − 1 over numpy's `arange(T, 0, −T/S)`, ignoring steps_offset (as
    ///   diffusers does). numpy sizes that arange as ⌈T/(T/S)⌉, which rounding makes S+1 for some S
    ///   (T=1000: S=61, 103, 121, …); diffusers then runs an extra step at timestep −1 (the UNet sees t=−1
    ///   and `alphas_cumprod[-1]` silently reads ᾱ_{T−1}). That extra step is dropped here: the list has S
    ///   entries, which equal diffusers' first S.
    /// * `linspace`: round-half-even of `linspace(0, T−1, S)` (i·(T−1)/(S−1), last exactly T−1), reversed;
    ///   steps_offset ignored (as diffusers does).
    /// * `quadratic` (DDIM paper, §D.2 / `runners/diffusion.py`): ⌊(i·√(0.8T)/(S−1))²⌋ for i in 0..<S (last
    ///   point exactly √(0.8T)), reversed, plus steps_offset like `leading` (which it generalises: both start
    ///   at 0, and the offset plays the same role of keeping t = 0 out of the list). Small timesteps can
    ///   repeat when S is large; the paper's code keeps them, and so does this (a repeated step has
    ///   ᾱ_prev = ᾱ_t, σ = 0, and changes x only through x₀ clipping).
    public static func timesteps(config: NoiseScheduleConfig, steps: Int) throws -> [Int] {
        let total = config.numTrainTimesteps
        guard total >= 1 else {
            throw EdgeError.usage("num_train_timesteps must be at least 1 (got \(total))")
        }
        guard steps >= 1 && steps <= total else {
            throw EdgeError.usage("steps must be in 1...\(total) (num_train_timesteps), got \(steps)")
        }
        switch config.timestepSpacing {
        case .leading:
            let ratio = total / steps
            return (0..<steps).map { i in (steps - 1 - i) * ratio + config.stepsOffset }
        case .trailing:
            return Array(Numpy.trailingTimesteps(total: total, steps: steps).prefix(steps))
        case .linspace:
            return Numpy.linspace(0, Double(total - 1), steps).reversed().map { Int($0.rounded(.toNearestOrEven)) }
        case .quadratic:
            let points = Numpy.linspace(0, (Double(total) * 0.8).squareRoot(), steps)
            return points.reversed().map { Int($0 * $0) + config.stepsOffset }
        }
    }
}

/// The scalars of one DDIM update from timestep t to t' (DDIM paper eq. 12, diffusers' `step`), all float32
/// computed in the order torch evaluates them on 0-d tensors:
///
///   β_t = 1 − ᾱ_t,
///   σ_t = η·√((1 − ᾱ_{t'})/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_{t'})),
///   direction coefficient = √(1 − ᾱ_{t'} − σ_t²).
public struct DDIMStepCoefficients: Sendable, Equatable {
    /// ᾱ_t.
    public var alphaProd: Float
    /// ᾱ_{t'}.
    public var alphaProdPrevious: Float
    /// √ᾱ_t.
    public var sqrtAlphaProd: Float
    /// √(1 − ᾱ_t).
    public var sqrtBetaProd: Float
    /// √ᾱ_{t'}.
    public var sqrtAlphaProdPrevious: Float
    /// √(1 − ᾱ_{t'} − σ_t²): the weight of the predicted ε ("direction pointing to x_t").
    public var directionScale: Float
    /// σ_t: the weight of the fresh Gaussian noise.
    public var noiseScale: Float

    public init(alphaProd: Float, alphaProdPrevious: Float, eta: Float) {
        self.alphaProd = alphaProd
        self.alphaProdPrevious = alphaProdPrevious
        let betaProd = 1 - alphaProd
        let betaProdPrevious = 1 - alphaProdPrevious
        sqrtAlphaProd = alphaProd.squareRoot()
        sqrtBetaProd = betaProd.squareRoot()
        sqrtAlphaProdPrevious = alphaProdPrevious.squareRoot()
        let variance = (betaProdPrevious / betaProd) * (1 - alphaProd / alphaProdPrevious)
        noiseScale = eta * variance.squareRoot()
        // Mathematically ≥ 0; rounding can make it a hair negative at η = 1, where torch would produce NaN.
        let directionSquared = 1 - alphaProdPrevious - noiseScale * noiseScale
        directionScale = max(directionSquared, 0).squareRoot()
    }
}
