import _EdgeCore

/// Fast layer normalisation of channel-major tokens: the same function as `layerNormRef`
/// (torch.nn.LayerNorm(features, eps) as CLIP's text encoder applies it to every token, here with the
/// tokens of [N, C, T] activations normalised over C).
///
///     y[n, c, t] = (x[n, c, t] − μ[n, t]) / √(σ²[n, t] + eps) · γ[c] + β[c]
///
/// Vectorised over **tokens** (F32Vector lanes L), which are contiguous, so nothing is reduced across lanes:
/// for a block of L tokens, two passes over the C channels for the statistics (the sum, then the sum of
/// squared deviations from the mean: two-pass like the reference, so a large common offset does not cancel
/// the variance), each summing 32 channels at a time in fp32 and the chunks in Double; then
/// y = ((x − μ) · r) · γ[c] + β[c] in fp32, r = 1/√(σ² + eps). A last partial block of tokens loads zeros
/// into its unused lanes and stores only the used ones.
///
/// - input, output: [batch, features, tokens]; may alias (in place). gamma, beta: [features].
/// - No scratch. Threads: (image, token block)s are split over `threads`; results do not depend on the count.
public func layerNormF32(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, batch: Int, features: Int, tokens: Int,
                         eps: Float, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, threads: Threads) {
    precondition(batch >= 0 && features > 0 && tokens >= 0, "layerNormF32: bad shape")
    let blocksPerImage = (tokens + F32Vector.scalarCount - 1) / F32Vector.scalarCount
    let blocks = batch * blocksPerImage
    if blocks == 0 { return }
    let workers = min(threads.count, blocks, max(1, batch * tokens * features / 16384))  // tiny inputs are not worth a fork
    threads.parallelFor(workers, LayerNormTask(input: input, output: output, features: features, tokens: tokens, eps: eps,
                                               gamma: gamma, beta: beta, blocksPerImage: blocksPerImage, blocks: blocks, workers: workers))
}

#if arch(arm64)
private typealias F64Vector = SIMD8<Double>
#else
private typealias F64Vector = SIMD16<Double>
#endif

/// Worker t of `workers` normalises (image, token block)s [blocks·t/workers, blocks·(t+1)/workers).
private struct LayerNormTask: ParallelTask {
    let input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
    let features: Int, tokens: Int
    let eps: Float
    let gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>
    let blocksPerImage: Int, blocks: Int, workers: Int

    /// Channels summed in fp32 before the partial sum goes to Double.
    static let chunk = 32

    func run(_ t: Int) {
        let lanes = F32Vector.scalarCount
        for block in Threads.share(t, of: blocks, workers: workers) {
            let (n, t0) = (block / blocksPerImage, (block % blocksPerImage) * lanes)
            let count = min(lanes, tokens - t0)
            let x = input + n * features * tokens + t0, y = output + n * features * tokens + t0
            @inline(__always) func load(_ c: Int) -> F32Vector {
                count == lanes ? loadVector(x + c * tokens) : loadPartialVector(x + c * tokens, count, fill: 0)
            }
            var total = F64Vector()
            var c0 = 0
            while c0 < features {
                var partial = F32Vector()
                for c in c0 ..< min(features, c0 + Self.chunk) { partial += load(c) }
                total += F64Vector(partial)
                c0 += Self.chunk
            }
            let mean = F32Vector(total / Double(features))
            var squares = F64Vector()
            c0 = 0
            while c0 < features {
                var partial = F32Vector()
                for c in c0 ..< min(features, c0 + Self.chunk) { let d = load(c) - mean; partial = partial.addingProduct(d, d) }
                squares += F64Vector(partial)
                c0 += Self.chunk
            }
            let inverseStd = F32Vector(1 / (squares / Double(features) + Double(eps)).squareRoot())
            for c in 0 ..< features {
                let normalised = (load(c) - mean) * inverseStd * gamma[c] + beta[c]
                if count == lanes { storeVector(normalised, y + c * tokens) } else { storePartialVector(normalised, y + c * tokens, count) }
            }
        }
    }
}
