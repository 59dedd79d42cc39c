import Glibc

/// Spherical interpolation between two latents (DDIM paper, appendix D.5, eq. 67):
///
///     θ = arccos(z₁·z₂ / (‖z₁‖‖z₂‖)),   z = sin((1−α)θ)/sin θ · z₁ + sin(αθ)/sin θ · z₂.
///
/// Interpolating Gaussian latents linearly would shrink the norm midway (two independent N(0, I) draws are
/// nearly orthogonal, so ‖(z₁+z₂)/2‖ ≈ ‖z₁‖/√2) and give the model inputs unlike any x_T it was trained to
/// denoise; following the great circle keeps the norm.
///
/// Dot products, θ and the two weights are computed in double and each output value is rounded to float once,
/// so the result does not depend on the order of the sum beyond double rounding.
///
/// When sin θ is tiny the weights become 0/0: for (nearly) parallel latents (θ → 0) slerp tends to linear
/// interpolation, which is used below `Self.linearThreshold`; for (nearly) opposite latents (θ → π) the
/// great circle is not unique and linear interpolation is used as well. A zero latent has no direction: also
/// linear. No NaN comes out of finite inputs.
public enum Slerp {
    /// sin θ below which the two weights are replaced by 1 − α and α. At 1e-6 the spherical weights differ
    /// from the linear ones by about θ²/6 ≈ 1e-13 relative, so the switch is invisible in float.
    public static let linearThreshold = 1e-6

    /// The weights (w₁, w₂) of z₁ and z₂ for α, given cos θ; linear when sin θ is below the threshold.
    public static func weights(alpha: Double, cosine: Double) -> (Double, Double) {
        let c = min(max(cosine, -1), 1)
        let theta = acos(c)
        let s = sin(theta)
        guard s >= linearThreshold, s.isFinite else { return (1 - alpha, alpha) }
        return (sin((1 - alpha) * theta) / s, sin(alpha * theta) / s)
    }

    /// cos θ between two vectors, or nil when either is zero (no direction) or a value is not finite.
    public static func cosine(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Double? {
        precondition(a.count == b.count, "latents hold \(a.count) and \(b.count) values")
        var dot = 0.0, na = 0.0, nb = 0.0
        for i in 0..<a.count {
            let x = Double(a[i]), y = Double(b[i])
            dot += x * y
            na += x * x
            nb += y * y
        }
        let denominator = na.squareRoot() * nb.squareRoot()
        guard denominator > 0, denominator.isFinite, dot.isFinite else { return nil }
        return dot / denominator
    }

    /// Writes the `frames` latents for α = i/(frames − 1), i in 0..<frames, one after the other into `out`
    /// (frames × z₁.count floats): frame 0 is z₁, the last is z₂ (up to the weights' rounding).
    public static func interpolate(_ z1: UnsafeBufferPointer<Float>, _ z2: UnsafeBufferPointer<Float>, frames: Int,
                                   into out: UnsafeMutableBufferPointer<Float>) {
        precondition(frames >= 2, "interpolation needs at least 2 frames, got \(frames)")
        let n = z1.count
        precondition(z2.count == n && out.count == frames * n, "latent sizes do not match: \(n), \(z2.count), \(out.count) for \(frames) frames")
        // A zero or non-finite latent has no angle: linear interpolation (cos = 1 selects it).
        let c = cosine(z1, z2) ?? 1
        for frame in 0..<frames {
            let alpha = Double(frame) / Double(frames - 1)
            let (w1, w2) = weights(alpha: alpha, cosine: c)
            let base = frame * n
            for i in 0..<n {
                out[base + i] = Float(w1 * Double(z1[i]) + w2 * Double(z2[i]))
            }
        }
    }
}
