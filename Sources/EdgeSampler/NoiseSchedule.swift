import Glibc
import _EdgeCore

/// The training noise schedule (β_t and ᾱ_t = ∏_{s≤t} (1 − β_s), t = 0…T−1) computed with the same float32
/// arithmetic as diffusers' `DDIMScheduler.__init__` on a CPU, so ᾱ matches torch bit for bit.
public enum NoiseSchedule {
    /// β_t for t in 0..<T, as float32 exactly as diffusers builds `self.betas`:
    ///
    /// * `linear`: `torch.linspace(β_start, β_end, T, dtype=float32)`. torch computes it in float:
    ///   step = (end − start)/(T − 1); the first half is start + i·step, the second half end − (T−1−i)·step
    ///   (each a fused multiply-add in the x86-64 build; reproduced with `addingProduct`).
    /// * `scaledLinear`: the same linspace from √β_start to √β_end (square roots in double, Python's `** 0.5`),
    ///   then squared in float32.
    /// * `squaredcosCapV2`: β_i = min(1 − ᾱ(i+1/T)/ᾱ(i/T), 0.999) in double with
    ///   ᾱ(t) = cos²((t + 0.008)/1.008 · π/2), rounded to float32 at the end.
    /// * `trainedBetas` (when set, it wins over `betaSchedule`): each value rounded to float32.
    ///
    /// Throws a usage error when T < 1, `trainedBetas` does not hold T values, or some β is not in (0, 1)
    /// (ᾱ would not decrease strictly, and the DDIM step divides by 1 − ᾱ_t and by ᾱ_prev).
    public static func betas(_ config: NoiseScheduleConfig) throws -> [Float] {
        let count = config.numTrainTimesteps
        guard count >= 1 else {
            throw EdgeError.usage("num_train_timesteps must be at least 1 (got \(count))")
        }
        let betas: [Float]
        if let trained = config.trainedBetas {
            guard trained.count == count else {
                throw EdgeError.usage("trained_betas holds \(trained.count) values but num_train_timesteps is \(count)")
            }
            betas = trained.map { Float($0) }
        } else {
            switch config.betaSchedule {
            case .linear:
                betas = torchLinspace(Float(config.betaStart), Float(config.betaEnd), count)
            case .scaledLinear:
                // Python's `beta_start**0.5` is libm pow(x, 0.5); calling pow keeps the same double.
                let roots = torchLinspace(Float(pow(config.betaStart, 0.5)), Float(pow(config.betaEnd, 0.5)), count)
                betas = roots.map { $0 * $0 }
            case .squaredcosCapV2:
                betas = squaredCosineBetas(count)
            }
        }
        for (t, beta) in betas.enumerated() where !(beta > 0 && beta < 1) {
            throw EdgeError.usage("beta at timestep \(t) is \(beta): every beta must be in (0, 1)")
        }
        return betas
    }

    /// ᾱ_t = ∏_{s≤t} (1 − β_s) for t in 0..<T. α_s = 1 − β_s is rounded to float32 (`1.0 - self.betas`), but
    /// `torch.cumprod` on the CPU accumulates a float tensor in double and rounds each partial product to
    /// float32, which is what is done here (a float32 running product drifts by several ulps over 1000 steps).
    public static func alphasCumprod(_ config: NoiseScheduleConfig) throws -> [Float] {
        let betas = try betas(config)
        var product = 1.0
        return betas.map { beta in
            product *= Double(1 - beta)
            return Float(product)
        }
    }

    /// `torch.linspace(start, end, steps, dtype=torch.float32)` on the CPU.
    static func torchLinspace(_ start: Float, _ end: Float, _ steps: Int) -> [Float] {
        if steps == 1 { return [start] }
        let step = (end - start) / Float(steps - 1)
        let halfway = steps / 2
        return (0..<steps).map { i in
            // torch counts from whichever end is nearer, so both endpoints come out exact.
            i < halfway ? start.addingProduct(step, Float(i)) : end.addingProduct(-step, Float(steps - i - 1))
        }
    }

    /// diffusers' `betas_for_alpha_bar(T)` with the cosine transform, in double like Python, then float32.
    static func squaredCosineBetas(_ count: Int) -> [Float] {
        func alphaBar(_ t: Double) -> Double {
            // pow(c, 2) rather than c*c: Python's `** 2` is libm pow, kept identical.
            pow(cos((t + 0.008) / 1.008 * Double.pi / 2), 2)
        }
        return (0..<count).map { i in
            let t1 = Double(i) / Double(count)
            let t2 = Double(i + 1) / Double(count)
            return Float(min(1 - alphaBar(t2) / alphaBar(t1), 0.999))
        }
    }
}
