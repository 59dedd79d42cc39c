import Glibc
import _EdgeCore

/// The σ view of a DDPM noise schedule that diffusers' DPM-Solver, UniPC and Euler schedulers share
/// (Karras et al. 2022): x_t = α_t·(x₀ + σ·ε)·… with σ_t = √((1 − ᾱ_t)/ᾱ_t), the noise-to-signal ratio, so
/// that α_t = 1/√(σ² + 1) and the VP noise level is σ·α_t. λ = log α − log σ is the half log-SNR that
/// DPM-Solver and UniPC step in.
enum SigmaSchedule {
    /// σ_t for t in 0..<T: `((1 - alphas_cumprod) / alphas_cumprod) ** 0.5` in float32.
    static func trainingSigmas(_ alphasCumprod: [Float]) -> [Float] {
        alphasCumprod.map { a in ((1 - a) / a).squareRoot() }
    }

    /// `np.log` of the float32 σ table (a float32 result, as numpy keeps the dtype).
    static func logSigmas(_ sigmas: [Float]) -> [Float] {
        sigmas.map { Float(log(Double($0))) }
    }

    /// Karras et al. (2022) eq. 5 with ρ = 7, `_convert_to_karras`: for i in 0..<n,
    /// (σ_max^{1/ρ} + i/(n − 1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, in double.
    static func karras(sigmaMin: Double, sigmaMax: Double, count: Int) -> [Double] {
        let rho = 7.0
        let minInvRho = pow(sigmaMin, 1 / rho)
        let maxInvRho = pow(sigmaMax, 1 / rho)
        return Numpy.linspace(0, 1, count).map { ramp in pow(maxInvRho + ramp * (minInvRho - maxInvRho), rho) }
    }

    /// `_sigma_to_t`: the fractional training timestep at which log σ, interpolated linearly between
    /// neighbouring entries of `logSigmas`, equals log σ (clamped to the table's ends).
    /// A table of fewer than two entries, or non-finite values from a degenerate schedule, give a finite
    /// timestep all the same (numpy would give NaN, and casting that to an integer timestep would trap).
    static func timestep(sigma: Double, logSigmas: [Float]) -> Double {
        guard logSigmas.count >= 2 else { return 0 }
        let logSigma = log(max(sigma, 1e-10))
        // numpy: cumsum(dists >= 0).argmax() is the last index whose entry is ≤ log σ (0 when there is none),
        // clipped so that a next index exists. The table rises with t (ᾱ falls), so the entries ≤ log σ are
        // a prefix: found by bisection, which keeps Karras schedules of many steps over long tables quick.
        var first = 0, past = logSigmas.count    // entries before `first` are ≤ log σ, from `past` on are not
        while first < past {
            let mid = (first + past) / 2
            if logSigma - Double(logSigmas[mid]) >= 0 { first = mid + 1 } else { past = mid }
        }
        let low = min(max(first - 1, 0), logSigmas.count - 2)
        let lowValue = Double(logSigmas[low]), highValue = Double(logSigmas[low + 1])
        let ratio = (lowValue - logSigma) / (lowValue - highValue)
        let w = ratio.isNaN ? 0 : min(max(ratio, 0), 1)
        return (1 - w) * Double(low) + w * Double(low + 1)
    }

    /// `_sigma_to_alpha_sigma_t`: α = 1/((σ² + 1)^0.5), σ_t = σ·α, float32.
    @inline(__always)
    static func alphaSigma(_ sigma: Float) -> (alpha: Float, sigma: Float) {
        let alpha = 1 / (sigma * sigma + 1).squareRoot()
        return (alpha, sigma * alpha)
    }

    /// λ = log α − log σ_t for a σ (float32; +∞ at σ = 0, the final step of a `final_sigmas_type` "zero" run).
    @inline(__always)
    static func lambda(_ sigma: Float) -> Float {
        let (a, s) = alphaSigma(sigma)
        return logf(a) - logf(s)
    }

    /// The σ of each step and the one after the last, `set_timesteps`' `sigmas` for the multistep schedulers:
    /// the training σ interpolated at the timesteps (or Karras' σs), then `final_sigmas_type` "zero"'s 0,
    /// rounded to float32.
    static func withFinalZero(_ sigmas: [Double]) -> [Float] {
        sigmas.map { Float($0) } + [0]
    }
}

/// The timestep lists of diffusers' DPMSolverMultistepScheduler and UniPCMultistepScheduler, which space
/// S + 1 points and drop the last (so the final step goes to σ = 0 rather than to t = 0), descending:
///
/// * `linspace`: `np.linspace(0, T − 1, S + 1).round()[::-1][:-1]`
/// * `leading`: `(np.arange(0, S + 1) · (T // (S + 1)))[::-1][:-1] + steps_offset`
/// * `trailing`: `np.arange(T, 0, −T/S).round() − 1` (the first S; see `Numpy.trailingTimesteps`)
enum MultistepSpacing {
    /// The integer timesteps and the S + 1 σ's of a multistep scheduler's `set_timesteps(S)`: σ interpolated
    /// at the spaced timesteps, or with `use_karras_sigmas` Karras' σ's between the training σ's ends with
    /// timesteps from `_sigma_to_t`, rounded when `roundKarrasTimesteps` (else truncated, as the int64 cast
    /// does), then σ = 0 after the last step.
    static func schedule(config: NoiseScheduleConfig, steps: Int, karras: Bool, roundKarrasTimesteps: Bool) throws -> (timesteps: [Int], sigmas: [Float]) {
        let table = SigmaSchedule.trainingSigmas(try NoiseSchedule.alphasCumprod(config))
        if karras {
            let logSigmas = SigmaSchedule.logSigmas(table)
            let sigmas = SigmaSchedule.karras(sigmaMin: Double(table[0]), sigmaMax: Double(table[table.count - 1]), count: steps)
            let timesteps = sigmas.map { sigma in
                let t = SigmaSchedule.timestep(sigma: sigma, logSigmas: logSigmas)
                return Int(roundKarrasTimesteps ? t.rounded(.toNearestOrEven) : t)
            }
            return (timesteps, SigmaSchedule.withFinalZero(sigmas))
        }
        let timesteps = try Self.timesteps(config: config, steps: steps)
        return (timesteps, SigmaSchedule.withFinalZero(timesteps.map { Numpy.interp(Double($0), table: table) }))
    }

    static func timesteps(config: NoiseScheduleConfig, steps: Int) throws -> [Int] {
        let total = config.numTrainTimesteps
        switch config.timestepSpacing {
        case .linspace:
            return Array(Numpy.linspace(0, Double(total - 1), steps + 1).map { Int($0.rounded(.toNearestOrEven)) }.reversed().dropLast())
        case .leading:
            let ratio = total / (steps + 1)
            return (0..<steps).map { i in (steps - i) * ratio + config.stepsOffset }
        case .trailing:
            return Array(Numpy.trailingTimesteps(total: total, steps: steps).prefix(steps))
        case .quadratic:
            throw EdgeError.usage("timestep spacing quadratic is DDIM's only (diffusers' schedulers take leading, trailing or linspace)")
        }
    }
}
