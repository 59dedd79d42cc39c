import _EdgeCore

/// Fused multi-head scaled dot-product attention over channel-major activations:
///
///     out[n, h·d + e, i] = Σ_j softmax_j(α · Σ_f q[n, h·d + f, i] · k[n, h·d + f, j]) · v[n, h·d + e, j]
///
/// over every key j (self-attention when k and v come from the same tokens as q; cross-attention over
/// `keys` other tokens otherwise), or with `causal` over j ≤ i only (CLIP's text encoder; needs as many keys
/// as queries), with α = 1/√d by default. It computes what `sequenceAttentionRef` computes on the
/// token-major transposes, without materialising the score matrix or any transpose.
///
/// Why fused: the UNet's attention has many heads of small d (ddpm-fashion-32: 16 heads of d = 8 over
/// T = 256 tokens). As two GEMMs per head, QᵀK has K = 8 (store-bound) and every head pays two fork/joins
/// and two packings: 37 GFLOP/s measured. Here one fork/join covers all images × heads × queries.
///
/// Vectorisation runs over **queries** (F32Vector lanes L: 16 on x86-64, 8 on ARM64), which are contiguous
/// in channel-major q and out, so nothing is ever reduced across lanes. For a block of L queries of one head:
/// - scores: for each key j, s_j = α · Σ_f q[f, i..i+L] · k[f, j] (vector × broadcast), four keys at a time
///   so each q load serves four FMAs; stored as a [Tk][L] block in per-thread scratch (one block of L score
///   rows per thread: 4,096 keys are 256 KB, never a Tq × Tk matrix); a causal block stops at its last
///   query's key and gives a lane's later keys −∞; then a running vector max;
/// - exp pass: e_j = e^(s_j − max) in place (masked keys exactly 0), a vector sum (`expVector`, 2 ulp);
/// - values: out[e, i..i+L] = (Σ_j e_j · v[e, j]) / sum, eight channels at a time, stored as vectors.
/// A last partial block of queries loads zeros into its unused lanes and stores only the used ones.
///
/// Contract:
/// - q, output: [batch, channels, tokens]; k, v: [batch, channels, keys] (keys = tokens unless given); fp32,
///   any alignment; output must not alias q, k or v.
/// - channels = heads · d. Reads exactly the operands' elements; writes every element of `output`.
/// - scratch: `attentionF32ScratchBytes(tokens: keys, threads:)` bytes, any alignment.
/// - Results do not depend on the thread count (each output element is computed by one thread, in a fixed order).
public func attentionF32(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                         batch: Int, channels: Int, tokens: Int, keys: Int? = nil, heads: Int, causal: Bool = false, scale: Float? = nil,
                         scratch: UnsafeMutableRawPointer, threads: Threads) {
    let keys = keys ?? tokens
    precondition(batch >= 1 && tokens >= 1 && keys >= 1 && heads >= 1 && channels % heads == 0 && (!causal || keys == tokens),
                 "attentionF32: bad shape")
    let d = channels / heads
    let blocksPerHead = (tokens + F32Vector.scalarCount - 1) / F32Vector.scalarCount
    let blocks = batch * heads * blocksPerHead
    // Below ~64 k multiply-adds per worker a fork/join costs more than it saves.
    let workers = min(threads.count, max(1, batch * heads * tokens * keys * d / 65_536), blocks)
    let task = AttentionTask(q: q, k: k, v: v, output: output, d: d, tokens: tokens, keys: keys, causal: causal,
                             scale: scale ?? 1 / Float(d).squareRoot(), blocksPerHead: blocksPerHead, blocks: blocks, workers: workers,
                             scratch: alignedFloats(scratch), blockFloats: attentionBlockFloats(keys))
    threads.parallelFor(workers, task)
}

/// Scratch for `attentionF32` over `tokens` keys: one [Tk][L] score block per thread.
public func attentionF32ScratchBytes(tokens: Int, threads: Threads) -> Int {
    attentionBlockFloats(tokens) * threads.count * MemoryLayout<Float>.stride + 64
}

/// A [T][L] score block, rounded up to whole cache lines so threads never share one.
private func attentionBlockFloats(_ tokens: Int) -> Int { (tokens * F32Vector.scalarCount + 15) / 16 * 16 }

/// Worker t takes query blocks [blocks·t/workers, blocks·(t+1)/workers) of the flattened (image, head, block) space.
private struct AttentionTask: ParallelTask {
    let q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>
    let output: UnsafeMutablePointer<Float>
    let d: Int, tokens: Int, keys: Int
    let causal: Bool
    let scale: Float
    let blocksPerHead: Int, blocks: Int, workers: Int
    let scratch: UnsafeMutablePointer<Float>
    let blockFloats: Int

    func run(_ t: Int) {
        let scores = scratch + t * blockFloats
        let lanes = F32Vector.scalarCount
        var laneIndex = F32Vector()  // 0, 1, …, L − 1: which query of a block each lane holds, for the causal mask
        for l in 0 ..< lanes { laneIndex[l] = Float(l) }
        for block in Threads.share(t, of: blocks, workers: workers) {
            let head = block / blocksPerHead  // n · heads + h
            let i0 = (block % blocksPerHead) * lanes
            let (queryBase, keyBase) = (head * d * tokens, head * d * keys)  // [d, Tq] and [d, Tk] slabs of this image and head
            let queries = min(lanes, tokens - i0)
            attendQueryBlock(q: q + queryBase + i0, k: k + keyBase, v: v + keyBase, d: d, queryStride: tokens, keyStride: keys,
                             keys: causal ? i0 + queries : keys, causalFirstQuery: causal ? i0 : nil, laneIndex: laneIndex, queries: queries,
                             scale: scale, scores: scores, output: output + queryBase + i0)
        }
    }
}

/// L queries (or `queries` < L) of one head: q / output at [f·queryStride + lane]; k / v rows of `keyStride`
/// floats, of which the first t = `keys` are read. With `causalFirstQuery` i0, lane l sees keys j ≤ i0 + l only.
@inline(__always)
private func attendQueryBlock(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, d: Int, queryStride qs: Int,
                              keyStride ks: Int, keys t: Int, causalFirstQuery: Int?, laneIndex: F32Vector, queries: Int, scale: Float,
                              scores: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>) {
    let lanes = F32Vector.scalarCount
    let full = queries == lanes
    @inline(__always) func query(_ f: Int) -> F32Vector { full ? loadVector(q + f * qs) : loadPartialVector(q + f * qs, queries, fill: 0) }
    // Scores s_j (scaled like the reference: α · (q·k)) and their per-query maximum.
    var maxVector = F32Vector(repeating: -.infinity)
    var j = 0
    while j + 4 <= t {
        var s0 = F32Vector(), s1 = F32Vector(), s2 = F32Vector(), s3 = F32Vector()
        for f in 0 ..< d {
            let qf = query(f), kf = k + f * ks + j
            s0 = s0.addingProduct(qf, kf[0]); s1 = s1.addingProduct(qf, kf[1])
            s2 = s2.addingProduct(qf, kf[2]); s3 = s3.addingProduct(qf, kf[3])
        }
        s0 *= scale; s1 *= scale; s2 *= scale; s3 *= scale
        storeVector(s0, scores + j * lanes); storeVector(s1, scores + (j + 1) * lanes)
        storeVector(s2, scores + (j + 2) * lanes); storeVector(s3, scores + (j + 3) * lanes)
        maxVector = vmax(vmax(maxVector, s0), vmax(s1, vmax(s2, s3)))
        j += 4
    }
    while j < t {
        var s0 = F32Vector()
        for f in 0 ..< d { s0 = s0.addingProduct(query(f), k[f * ks + j]) }
        s0 *= scale
        storeVector(s0, scores + j * lanes)
        maxVector = vmax(maxVector, s0)
        j += 1
    }
    // A causal block's keys from its first query on are visible to some lanes only: lane l sees key j iff
    // j − i0 ≤ l. Those scores become −∞ and the maximum is taken again over what each lane sees.
    let maskedFrom = causalFirstQuery ?? t
    @inline(__always) func hidden(_ j: Int) -> SIMDMask<F32Vector.MaskStorage> { laneIndex .< F32Vector(repeating: Float(j - maskedFrom)) }
    if maskedFrom < t {
        maxVector = F32Vector(repeating: -.infinity)
        for j in 0 ..< t {
            var s = loadVector(scores + j * lanes)
            if j > maskedFrom { s = s.replacing(with: -.infinity, where: hidden(j)); storeVector(s, scores + j * lanes) }
            maxVector = vmax(maxVector, s)
        }
    }
    // e^(s − max) in place, and the per-query sums; hidden keys exactly 0 (expVector would give ≈ 1e−38 for −∞).
    var sum = F32Vector()
    for j in 0 ..< t {
        var e = expVector(loadVector(scores + j * lanes) - maxVector)
        if j > maskedFrom { e = e.replacing(with: 0, where: hidden(j)) }
        storeVector(e, scores + j * lanes)
        sum += e
    }
    let inverse = 1 / sum
    // out[e] = (Σ_j e_j · v[e, j]) / sum, eight channels at a time to share each load of e_j.
    @inline(__always) func store(_ x: F32Vector, _ e: Int) {
        if full { storeVector(x * inverse, output + e * qs) } else { storePartialVector(x * inverse, output + e * qs, queries) }
    }
    var e0 = 0
    while e0 + 8 <= d {
        let vr = v + e0 * ks
        var a0 = F32Vector(), a1 = F32Vector(), a2 = F32Vector(), a3 = F32Vector()
        var a4 = F32Vector(), a5 = F32Vector(), a6 = F32Vector(), a7 = F32Vector()
        for j in 0 ..< t {
            let p = loadVector(scores + j * lanes)
            a0 = a0.addingProduct(p, vr[j]); a1 = a1.addingProduct(p, vr[ks + j])
            a2 = a2.addingProduct(p, vr[2 * ks + j]); a3 = a3.addingProduct(p, vr[3 * ks + j])
            a4 = a4.addingProduct(p, vr[4 * ks + j]); a5 = a5.addingProduct(p, vr[5 * ks + j])
            a6 = a6.addingProduct(p, vr[6 * ks + j]); a7 = a7.addingProduct(p, vr[7 * ks + j])
        }
        store(a0, e0); store(a1, e0 + 1); store(a2, e0 + 2); store(a3, e0 + 3)
        store(a4, e0 + 4); store(a5, e0 + 5); store(a6, e0 + 6); store(a7, e0 + 7)
        e0 += 8
    }
    while e0 < d {
        let vr = v + e0 * ks
        var a0 = F32Vector()
        for j in 0 ..< t { a0 = a0.addingProduct(loadVector(scores + j * lanes), vr[j]) }
        store(a0, e0)
        e0 += 1
    }
}
