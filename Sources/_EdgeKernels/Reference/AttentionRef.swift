#if canImport(Glibc)
import Glibc
#endif

/// Reference multi-head scaled dot-product attention over one image's tokens (a UNet attention block's):
/// `sequenceAttentionRef` with as many keys as queries, one image, no mask and α = 1/√d.
///
/// - q, k, v, out: [T, C] token-major (T = H·W, C = heads · d); out must not alias q, k or v.
/// - scores: T floats of scratch (one query row at a time).
public func attentionRef(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, tokens t: Int, channels c: Int,
                         heads: Int, output: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>) {
    sequenceAttentionRef(q: q, k: k, v: v, batch: 1, queries: t, keys: t, channels: c, heads: heads, causal: false,
                         output: output, scores: scores)
}

/// Reference multi-head scaled dot-product attention over token-major sequences (torch's
/// `scaled_dot_product_attention` as CLIP's text encoder and diffusers' `Attention` call it):
///
///     out[n, i, h·d + e] = Σ_j softmax_j(α · Σ_f Q[n, i, h·d + f] · K[n, j, h·d + f]) · V[n, j, h·d + e]
///
/// over every key j, or with `causal` over j ≤ i only (CLIP's causal mask; needs as many keys as queries).
/// α = `scale`, by default 1/√d. Softmax subtracts the row maximum first, as torch does, so large logits
/// cannot overflow.
///
/// - q, out: [N, Tq, C]; k, v: [N, Tk, C] (C = heads · d); out must not alias q, k or v.
/// - scores: Tk floats of scratch (one query row at a time).
public func sequenceAttentionRef(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, batch: Int, queries tq: Int,
                                 keys tk: Int, channels c: Int, heads: Int, causal: Bool, scale: Float? = nil,
                                 output: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>) {
    precondition(heads > 0 && c % heads == 0 && (!causal || tq == tk))
    let d = c / heads
    let scale = scale ?? 1 / Float(d).squareRoot()
    for n in 0 ..< batch {
        let (qn, kn, vn, on) = (q + n * tq * c, k + n * tk * c, v + n * tk * c, output + n * tq * c)
        for h in 0 ..< heads {
            let off = h * d
            for p in 0 ..< tq {
                let keys = causal ? p + 1 : tk
                var maximum = -Float.infinity
                for j in 0 ..< keys {
                    var dot: Float = 0
                    for f in 0 ..< d { dot += qn[p * c + off + f] * kn[j * c + off + f] }
                    scores[j] = dot * scale
                    maximum = max(maximum, scores[j])
                }
                var sum: Float = 0
                for j in 0 ..< keys { scores[j] = expf(scores[j] - maximum); sum += scores[j] }
                let inverse = 1 / sum
                let dst = on + p * c + off
                for e in 0 ..< d { dst[e] = 0 }
                for j in 0 ..< keys {
                    let w = scores[j] * inverse
                    let src = vn + j * c + off
                    for e in 0 ..< d { dst[e] += w * src[e] }
                }
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
