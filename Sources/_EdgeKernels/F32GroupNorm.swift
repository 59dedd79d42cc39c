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
            let moments = groupMoments(x, count: count, eps: eps)
            for cc in 0 ..< perGroup {
                let c = g * perGroup + cc
                let (scale, shift) = channelAffine(moments, gamma: gamma[c], beta: beta[c])
                normalizeRow(x + cc * pixels, output + base + cc * pixels, count: pixels, scale: scale, shift: shift, silu: applySiLU)
            }
        }
    }
}

/// The per-channel affine a GroupNorm applies, without applying it: `groupNormF32`'s output (before SiLU) is
/// x[n, c, p] · scale[n, c] + shift[n, c], rounded twice, with these exact scale and shift. For kernels that
/// normalise their input as they read it (`conv2dQ8`'s `inputNorm`), so the normalised tensor is never written.
///
/// With `concatenated`, the input is the channel concatenation of `input` [N, C − C₂, P] and its values [N, C₂, P]
/// (never written); a group with channels in both has its sums taken over the two parts, so its statistics may
/// differ from those of the written concatenation in the last bits.
///
/// - input: [N, C, P]; scale, shift: [N, C]. No scratch; results do not depend on the thread count.
public func groupNormAffineF32(input: UnsafePointer<Float>, concatenated: (values: UnsafePointer<Float>, channels: Int)? = nil,
                               batch: Int, channels: Int, pixels: Int, groups: Int, eps: Float,
                               gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, scale: UnsafeMutablePointer<Float>,
                               shift: UnsafeMutablePointer<Float>, threads: Threads) {
    precondition(groups > 0 && channels % groups == 0)
    let blocks = batch * groups
    let count = channels / groups * pixels
    if blocks == 0 || count == 0 { return }
    let workers = min(threads.count, blocks, max(1, blocks * count / 16384))
    let second = concatenated?.channels ?? 0
    threads.parallelFor(workers, GroupNormAffineTask(input: input, second: concatenated?.values ?? input, secondChannels: second,
                                                     channels: channels, pixels: pixels, groups: groups, eps: eps,
                                                     gamma: gamma, beta: beta, scale: scale, shift: shift, blocks: blocks, workers: workers))
}

private struct GroupNormAffineTask: ParallelTask {
    let input: UnsafePointer<Float>, second: UnsafePointer<Float>, secondChannels: Int
    let channels: Int, pixels: Int, groups: Int
    let eps: Float
    let gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>
    let scale: UnsafeMutablePointer<Float>, shift: UnsafeMutablePointer<Float>
    let blocks: Int, workers: Int

    func run(_ t: Int) {
        let perGroup = channels / groups
        for block in Threads.share(t, of: blocks, workers: workers) {
            let n = block / groups, g = block % groups
            let c1 = channels - secondChannels
            let (start, end) = (g * perGroup, (g + 1) * perGroup)
            let firstPart = max(0, min(end, c1) - start)   // channels of this group in the first input
            let moments: (mean: Double, inverseStd: Double)
            let inFirst = input + (n * c1 + start) * pixels, inSecond = second + (n * secondChannels + max(0, start - c1)) * pixels
            if firstPart == perGroup {
                moments = groupMoments(inFirst, count: perGroup * pixels, eps: eps)
            } else if firstPart == 0 {
                moments = groupMoments(inSecond, count: perGroup * pixels, eps: eps)
            } else {
                let (n1, n2) = (firstPart * pixels, (perGroup - firstPart) * pixels), count = Double(n1 + n2)
                let mean = (blockSum(inFirst, count: n1, minus: nil) + blockSum(inSecond, count: n2, minus: nil)) / count
                let squares = blockSum(inFirst, count: n1, minus: Float(mean), exactMean: mean)
                    + blockSum(inSecond, count: n2, minus: Float(mean), exactMean: mean)
                moments = (mean, 1 / (squares / count + Double(eps)).squareRoot())
            }
            for c in g * perGroup ..< (g + 1) * perGroup {
                (scale[n * channels + c], shift[n * channels + c]) = channelAffine(moments, gamma: gamma[c], beta: beta[c])
            }
        }
    }
}

/// The mean and 1/√(σ² + eps) of one (image, group) block of `count` contiguous floats (two passes, as the reference).
@inline(__always)
private func groupMoments(_ x: UnsafePointer<Float>, count: Int, eps: Float) -> (mean: Double, inverseStd: Double) {
    let mean = blockSum(x, count: count, minus: nil) / Double(count)
    let squares = blockSum(x, count: count, minus: Float(mean), exactMean: mean)
    return (mean, 1 / (squares / Double(count) + Double(eps)).squareRoot())
}

/// A channel's scale and shift, derived exactly as in `groupNormRef`.
@inline(__always)
private func channelAffine(_ m: (mean: Double, inverseStd: Double), gamma: Float, beta: Float) -> (scale: Float, shift: Float) {
    let scale = Float(m.inverseStd) * gamma
    return (scale, beta - Float(m.mean) * scale)
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
