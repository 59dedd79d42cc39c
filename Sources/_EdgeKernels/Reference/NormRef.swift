#if canImport(Glibc)
import Glibc
#endif

/// SiLU(x) = x · σ(x) = x / (1 + e^(−x)).
@inlinable public func silu(_ x: Float) -> Float { x / (1 + expf(-x)) }

/// Reference group normalisation over NCHW, optionally followed by SiLU (every GroupNorm in a diffusers
/// ResnetBlock2D is followed by one).
///
///     y[n, c, p] = (x[n, c, p] − μ[n, g]) / √(σ²[n, g] + eps) · γ[c] + β[c],   g = c / (C / G)
///
/// with μ and the biased variance σ² over the C/G channels and all pixels of group g. Statistics
/// accumulate in Double so the oracle's own rounding is far below any kernel's.
///
/// - input, output: [N, C, P] (P = H·W); may alias. gamma, beta: [C].
public func groupNormRef(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, batch: Int, channels: Int, pixels: Int,
                         groups: Int, eps: Float, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, applySiLU: Bool) {
    precondition(groups > 0 && channels % groups == 0)
    let perGroup = channels / groups
    let count = perGroup * pixels
    for n in 0 ..< batch {
        for g in 0 ..< groups {
            let base = (n * channels + g * perGroup) * pixels
            var sum = 0.0
            for i in 0 ..< count { sum += Double(input[base + i]) }
            let mean = sum / Double(count)
            var squares = 0.0
            for i in 0 ..< count { let d = Double(input[base + i]) - mean; squares += d * d }
            let inverseStd = 1 / (squares / Double(count) + Double(eps)).squareRoot()
            for cc in 0 ..< perGroup {
                let c = g * perGroup + cc
                let scale = Float(inverseStd) * gamma[c]
                let shift = beta[c] - Float(mean) * scale
                for p in 0 ..< pixels {
                    let i = base + cc * pixels + p
                    let y = input[i] * scale + shift
                    output[i] = applySiLU ? silu(y) : y
                }
            }
        }
    }
}


/// Reference layer normalisation of channel-major tokens (torch.nn.LayerNorm(features, eps) over each token
/// of CLIP's text encoder, whose [N, T, C] hidden states are stored here as [N, C, T]):
///
///     y[n, c, t] = (x[n, c, t] − μ[n, t]) / √(σ²[n, t] + eps) · γ[c] + β[c]
///
/// with μ and the biased variance σ² over the token's `features` values, accumulated in Double so the
/// oracle's own rounding is far below any kernel's.
///
/// - input, output: [batch, features, tokens]; may alias. gamma, beta: [features].
public func layerNormRef(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, batch: Int, features: Int, tokens: Int,
                         eps: Float, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>) {
    precondition(features > 0)
    for n in 0 ..< batch {
        let x = input + n * features * tokens, y = output + n * features * tokens
        for t in 0 ..< tokens {
            var sum = 0.0
            for c in 0 ..< features { sum += Double(x[c * tokens + t]) }
            let mean = sum / Double(features)
            var squares = 0.0
            for c in 0 ..< features { let d = Double(x[c * tokens + t]) - mean; squares += d * d }
            let inverseStd = 1 / (squares / Double(features) + Double(eps)).squareRoot()
            for c in 0 ..< features {
                y[c * tokens + t] = Float((Double(x[c * tokens + t]) - mean) * inverseStd * Double(gamma[c]) + Double(beta[c]))
            }
        }
    }
}
