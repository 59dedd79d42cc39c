import _EdgeCore

/// Row-wise softmax in place over a strided matrix, as `attentionRef` computes it:
///
///     x[r, j] ← e^(x[r, j] − max_j x[r, ·]) · (1 / Σ_j e^(x[r, j] − max))
///
/// SIMD: a max pass, an exp-and-sum pass (fp32 vector partial sums, the values stored back), and a scale
/// pass. exp is a 2-ulp vector polynomial (see `expVector`); differences below e^−87 from the max give
/// ≈ 1e−38 instead of 0.
///
/// - x: rows × columns floats, row r at x + r·rowStride (rowStride ≥ columns).
/// - No scratch. Threads: rows are split over `threads`; results do not depend on the count.
public func softmaxRowsF32(_ x: UnsafeMutablePointer<Float>, rows: Int, columns: Int, rowStride: Int, threads: Threads) {
    precondition(rows >= 0 && columns >= 0 && rowStride >= columns)
    if rows == 0 || columns == 0 { return }
    let workers = min(threads.count, rows, max(1, rows * columns / 16384))  // tiny inputs are not worth a fork
    threads.parallelFor(workers, SoftmaxRowsTask(x: x, rows: rows, columns: columns, rowStride: rowStride, workers: workers))
}

/// Worker t of `workers` normalises rows [rows·t/workers, rows·(t+1)/workers).
private struct SoftmaxRowsTask: ParallelTask {
    let x: UnsafeMutablePointer<Float>
    let rows: Int, columns: Int, rowStride: Int, workers: Int

    func run(_ t: Int) {
        for r in Threads.share(t, of: rows, workers: workers) { softmaxRow(x + r * rowStride, columns) }
    }
}

@inline(__always)
private func softmaxRow(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
    let lanes = F32Vector.scalarCount
    var mv = F32Vector(repeating: -.infinity)
    var i = 0
    while i + lanes <= n { mv = vmax(mv, loadVector(x + i)); i += lanes }
    var maximum = mv.max()
    while i < n { maximum = max(maximum, x[i]); i += 1 }
    let m = F32Vector(repeating: maximum)
    var s0 = F32Vector()
    i = 0
    while i + lanes <= n { let e = expVector(loadVector(x + i) - m); storeVector(e, x + i); s0 += e; i += lanes }
    if i < n {
        var e = expVector(loadPartialVector(x + i, n - i, fill: 0) - m)
        for l in (n - i) ..< lanes { e[l] = 0 }
        storePartialVector(e, x + i, n - i)
        s0 += e
    }
    let inverse = 1 / s0.sum()
    let iv = F32Vector(repeating: inverse)
    i = 0
    while i + lanes <= n { storeVector(loadVector(x + i) * iv, x + i); i += lanes }
    while i < n { x[i] *= inverse; i += 1 }
}
