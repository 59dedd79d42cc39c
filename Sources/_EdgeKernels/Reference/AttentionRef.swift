#if canImport(Glibc)
import Glibc
#endif

/// Reference multi-head scaled dot-product attention over one image's tokens.
///
///     out[p, h·d + e] = Σ_q softmax_q(Σ_f Q[p, h·d + f] · K[q, h·d + f] / √d) · V[q, h·d + e]
///
/// - q, k, v, out: [T, C] token-major (T = H·W, C = heads · d); out must not alias q, k or v.
/// - scores: T floats of scratch (one query row at a time).
/// Softmax subtracts the row maximum first, as torch does, so large logits cannot overflow.
public func attentionRef(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, tokens t: Int, channels c: Int,
                         heads: Int, output: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>) {
    precondition(heads > 0 && c % heads == 0)
    let d = c / heads
    let scale = 1 / Float(d).squareRoot()
    for h in 0 ..< heads {
        let off = h * d
        for p in 0 ..< t {
            var maximum = -Float.infinity
            for j in 0 ..< t {
                var dot: Float = 0
                for f in 0 ..< d { dot += q[p * c + off + f] * k[j * c + off + f] }
                scores[j] = dot * scale
                maximum = max(maximum, scores[j])
            }
            var sum: Float = 0
            for j in 0 ..< t { scores[j] = expf(scores[j] - maximum); sum += scores[j] }
            let inverse = 1 / sum
            let dst = output + p * c + off
            for e in 0 ..< d { dst[e] = 0 }
            for j in 0 ..< t {
                let w = scores[j] * inverse
                let src = v + j * c + off
                for e in 0 ..< d { dst[e] += w * src[e] }
            }
        }
    }
}

/// [C, T] → [T, C] for one image.
public func transposeRef(_ x: UnsafePointer<Float>, rows: Int, columns: Int, into out: UnsafeMutablePointer<Float>) {
    for r in 0 ..< rows {
        for col in 0 ..< columns { out[col * rows + r] = x[r * columns + col] }
    }
}
