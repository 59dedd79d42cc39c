import _EdgeCore

/// Fast group normalisation over NCHW, optionally fused with SiLU: the same function as `groupNormRef`.
///
///     y[n, c, p] = (x[n, c, p] − μ[n, g]) / √(σ²[n, g] + eps) · γ[c] + β[c],   g = c / (C / G),  then SiLU if asked
///
/// Three SIMD passes per (image, group) block of (C/G)·P contiguous floats: the sum, the sum of squared
/// deviations from the mean (two-pass, as the reference), then the normalisation. Each pass sums vector
/// partial sums in fp32 over chunks of at most 1024 elements and adds the chunk sums in Double, so the
/// statistics are within a few fp32 ulps of the reference's all-Double ones. Scale and shift per channel are
/// derived exactly as in `groupNormRef`, and y = x·scale + shift is rounded twice as there (not fused: when
/// |μ| ≫ σ the rounding of x·scale cancels against the one in shift, exactly as in the reference); SiLU
/// uses a 2-ulp vector exp.
///
/// - input, output: [N, C, P]; may alias (in place). gamma, beta: [C].
/// - No scratch. Threads: (image, group) blocks are split over `threads`; results do not depend on the count.
public func groupNormF32(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, batch: Int, channels: Int, pixels: Int,
                         groups: Int, eps: Float, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, applySiLU: Bool,
                         threads: Threads) {
    precondition(groups > 0 && channels % groups == 0)
    let perGroup = channels / groups
    let count = perGroup * pixels
    let blocks = batch * groups
    if blocks == 0 || count == 0 { return }
    let workers = min(threads.count, blocks, max(1, blocks * count / 16384))  // tiny inputs are not worth a fork
    threads.parallelFor(workers, GroupNormTask(input: input, output: output, channels: channels, pixels: pixels, groups: groups,
                                               eps: eps, gamma: gamma, beta: beta, applySiLU: applySiLU, blocks: blocks, workers: workers))
}

/// Worker t of `workers` normalises (image, group) blocks [blocks·t/workers, blocks·(t+1)/workers).
private struct GroupNormTask: ParallelTask {
    let input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
    let channels: Int, pixels: Int, groups: Int
    let eps: Float
    let gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>
    let applySiLU: Bool
    let blocks: Int, workers: Int

    func run(_ t: Int) {
        let perGroup = channels / groups
        let count = perGroup * pixels
        for block in Threads.share(t, of: blocks, workers: workers) {
            let n = block / groups, g = block % groups
            let base = (n * channels + g * perGroup) * pixels
            let x = input + base
            let mean = blockSum(x, count: count, minus: nil) / Double(count)
            let squares = blockSum(x, count: count, minus: Float(mean), exactMean: mean)
            let inverseStd = 1 / (squares / Double(count) + Double(eps)).squareRoot()
            for cc in 0 ..< perGroup {
                let c = g * perGroup + cc
                let scale = Float(inverseStd) * gamma[c]
                let shift = beta[c] - Float(mean) * scale
                normalizeRow(x + cc * pixels, output + base + cc * pixels, count: pixels, scale: scale, shift: shift, silu: applySiLU)
            }
        }
    }
}

/// Σ x (minus == nil) or Σ (x − mean)² over `count` floats: fp32 vector partial sums per chunk of ≤ 1024
/// elements, chunk sums added in Double. For the squares, the fp32 deviation x − Float(mean) is corrected
/// by the rounding of the mean (exactMean − Float(mean)), which matters when |mean| ≫ σ.
@inline(__always)
private func blockSum(_ x: UnsafePointer<Float>, count: Int, minus: Float?, exactMean: Double = 0) -> Double {
    let lanes = F32Vector.scalarCount
    let chunk = 1024
    var total = 0.0
    var start = 0
    let m = minus ?? 0
    let correction = Float(exactMean - Double(m))   // mean = m + correction, to ~fp32² accuracy
    while start < count {
        let end = min(count, start + chunk)
        var a0 = F32Vector(), a1 = F32Vector()
        var i = start
        if minus == nil {
            while i + 2 * lanes <= end { a0 += loadVector(x + i); a1 += loadVector(x + i + lanes); i += 2 * lanes }
            while i + lanes <= end { a0 += loadVector(x + i); i += lanes }
            if i < end { a1 += loadPartialVector(x + i, end - i, fill: 0) }
        } else {
            let mv = F32Vector(repeating: m), cv = F32Vector(repeating: correction)
            while i + 2 * lanes <= end {
                let d0 = loadVector(x + i) - mv - cv, d1 = loadVector(x + i + lanes) - mv - cv
                a0 = a0.addingProduct(d0, d0); a1 = a1.addingProduct(d1, d1); i += 2 * lanes
            }
            while i + lanes <= end { let d = loadVector(x + i) - mv - cv; a0 = a0.addingProduct(d, d); i += lanes }
            if i < end {
                var d = loadPartialVector(x + i, end - i, fill: 0) - mv - cv
                for l in (end - i) ..< lanes { d[l] = 0 }
                a1 = a1.addingProduct(d, d)
            }
        }
        total += Double((a0 + a1).sum())
        start = end
    }
    return total
}

/// out = x·scale + shift (then SiLU) over `count` floats; out may alias x.
@inline(__always)
private func normalizeRow(_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count: Int, scale: Float, shift: Float, silu: Bool) {
    let lanes = F32Vector.scalarCount
    let sv = F32Vector(repeating: scale), hv = F32Vector(repeating: shift)
    var i = 0
    if silu {
        while i + lanes <= count { storeVector(siluVector(loadVector(x + i) * sv + hv), out + i); i += lanes }
        if i < count { storePartialVector(siluVector(loadPartialVector(x + i, count - i, fill: 0) * sv + hv), out + i, count - i) }
    } else {
        while i + lanes <= count { storeVector(loadVector(x + i) * sv + hv, out + i); i += lanes }
        if i < count { storePartialVector(loadPartialVector(x + i, count - i, fill: 0) * sv + hv, out + i, count - i) }
    }
}
