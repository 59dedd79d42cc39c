/// diffusers' `VectorQuantizer.forward` (VQModel): for every pixel p of image n, the vector
/// z = input[n, :, p] (`dimension` channels) is replaced by its nearest codebook row e_k of `codebook`
/// [entries, dimension], written as z + (e_k − z) exactly as diffusers computes it (the straight-through
/// form, which rounds differently from e_k alone).
///
/// Nearest is by squared Euclidean distance Σ (z − e_k)², accumulated in Double so that the choice is the
/// mathematically nearest row; the first such row on an exact tie (torch.argmin). torch.cdist computes the
/// distance in fp32 (for more than 25 rows as |z|² + |e|² − 2 z·e), so on a near-tie within fp32 rounding
/// diffusers may pick the other row. `indices` (optional, [batch · pixels]) receives k per (n, p).
public func vectorQuantizeRef(input: UnsafePointer<Float>, codebook: UnsafePointer<Float>, batch: Int, entries: Int, dimension: Int,
                              pixels: Int, output: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int32>? = nil) {
    precondition(entries >= 1 && dimension >= 1)
    for n in 0 ..< batch {
        let z = input + n * dimension * pixels, out = output + n * dimension * pixels
        for p in 0 ..< pixels {
            var best = 0, bestDistance = Double.infinity
            for k in 0 ..< entries {
                let e = codebook + k * dimension
                var d = 0.0
                for c in 0 ..< dimension {
                    let diff = Double(z[c * pixels + p]) - Double(e[c])
                    d += diff * diff
                }
                if d < bestDistance { bestDistance = d; best = k }
            }
            let e = codebook + best * dimension
            for c in 0 ..< dimension {
                let v = z[c * pixels + p]
                out[c * pixels + p] = v + (e[c] - v)
            }
            indices?[n * pixels + p] = Int32(best)
        }
    }
}
