import _EdgeCore

// DDIM inversion (DDIM paper §4.3 and §5.4, "reconstruction from the latent"): the η = 0 update is the Euler
// step of an ODE, so it can be run the other way, x₀ → x_T, to encode an image into the latent that
// `ddimSample` decodes back into (nearly) the same image.
//
// The steps are those of diffusers' `DDIMInverseScheduler` after `set_timesteps(S)`: for timesteps
// t_0 < t_1 < … (the forward schedule reversed), step j calls the model at t_j on the current x and moves it
// from ᾱ at s_j = t_j − ⌊T/S⌋ (or `initial_alpha_cumprod`, which is 1 with set_alpha_to_one and ᾱ_0
// otherwise, when s_j < 0) to ᾱ at t_j. Those are exactly the forward schedule's steps taken in reverse
// order with source and target swapped, so they are derived from `DDIMSchedule`, not recomputed:
// `previousTimesteps` is t − ⌊T/S⌋ for leading and trailing spacing, as diffusers' inverse step uses, and
// `finalAlphaCumprod` is its `initial_alpha_cumprod`.
//
// Differences from diffusers, all outside what diffusers can run correctly:
// * `linspace` and `quadratic` spacing: diffusers' inverse scheduler refuses them; here the forward
//   schedule's steps are reversed the same way, so `reconstruct` pairs each inverse step with its forward one.
// * `trailing` with an S for which numpy's arange yields S + 1 timesteps (T = 1000: S = 61, 103, 121, …):
//   diffusers' inverse then starts with a step at t = −1 that reads ᾱ_{T−1} and jumps almost to pure noise;
//   the forward schedule drops that step (see `DDIMSchedule.timesteps`), and so does the inversion.

extension DDIMStepCoefficients {
    /// The η = 0 coefficients of a step from ᾱ_s = `alphaProd` to ᾱ_t = `alphaProdPrevious` with no
    /// constraint on their order. The η initialiser computes σ from (1 − ᾱ_s/ᾱ_t), which is negative when
    /// the step goes towards noise (ᾱ_t < ᾱ_s), so its square root would be NaN even when multiplied by η = 0.
    /// As in diffusers' inverse `step`: direction scale √(1 − ᾱ_t), no noise.
    public init(deterministicFrom alphaProd: Float, to alphaProdPrevious: Float) {
        self.alphaProd = alphaProd
        self.alphaProdPrevious = alphaProdPrevious
        sqrtAlphaProd = alphaProd.squareRoot()
        sqrtBetaProd = (1 - alphaProd).squareRoot()
        sqrtAlphaProdPrevious = alphaProdPrevious.squareRoot()
        directionScale = (1 - alphaProdPrevious).squareRoot()
        noiseScale = 0
    }
}

extension DDIMSchedule {
    /// The timestep the model is called at in inversion step j (ascending): diffusers' inverse scheduler
    /// evaluates the model at the step's *target* timestep, on x still at the source noise level.
    @inline(__always)
    public func inversionTimestep(step j: Int) -> Int {
        timesteps[count - 1 - j]
    }

    /// The coefficients of inversion step j: forward step S−1−j with its two ᾱ swapped.
    @inline(__always)
    public func inversionCoefficients(step j: Int) -> DDIMStepCoefficients {
        let i = count - 1 - j
        return DDIMStepCoefficients(deterministicFrom: alphaCumprod(at: previousTimesteps[i]), to: alphasCumprod[timesteps[i]])
    }
}

/// DDIM inversion, diffusers' `DDIMInverseScheduler` loop:
///
///     for t in inverse.timesteps:                 # ascending
///         m = model(x, t)
///         x = inverse.step(m, t, x).prev_sample   # ᾱ_{t−⌊T/S⌋} → ᾱ_t, η = 0, x₀ clipped as the schedule says
///
/// On entry `x` holds clean images (N·C·H·W floats in the model's [−1, 1] range); on return their latents
/// x_T, which `ddimSample` with the same schedule and η = 0 turns back into approximations of the images.
/// Like `ddimSample` it allocates nothing: the model writes into `workspace.modelOutput`.
///
/// - Parameters:
///   - model: writes the prediction for `xt` at integer timestep `t` into `out` (both `x.count` floats).
///   - progress: called after each step with (steps done, total steps).
/// - Throws: a usage error for a workspace of the wrong size; whatever `model` throws.
public func ddimInvert(
    x: UnsafeMutableBufferPointer<Float>,
    schedule: DDIMSchedule,
    workspace: DDIMWorkspace,
    model: (_ xt: UnsafeBufferPointer<Float>, _ t: Int, _ out: UnsafeMutableBufferPointer<Float>) throws -> Void,
    progress: ((_ step: Int, _ of: Int) -> Void)? = nil
) throws {
    guard workspace.count == x.count else {
        throw EdgeError.usage("DDIM workspace holds \(workspace.count) values per buffer, the sample \(x.count)")
    }
    let predictionType = schedule.config.predictionType
    let clipRange = schedule.clipRange
    let total = schedule.count
    for j in 0..<total {
        try model(UnsafeBufferPointer(x), schedule.inversionTimestep(step: j), workspace.modelOutput)
        ddimStep(sample: x, modelOutput: UnsafeBufferPointer(workspace.modelOutput),
                 coefficients: schedule.inversionCoefficients(step: j),
                 predictionType: predictionType, clipRange: clipRange, noise: nil)
        progress?(j + 1, total)
    }
}
