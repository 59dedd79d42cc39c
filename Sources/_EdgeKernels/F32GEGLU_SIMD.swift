import _EdgeCore

/// diffusers' GEGLU gate over channel-major tokens: the same function as `gegluRef`.
///
///     out[n, f, t] = x[n, f, t] · gelu(x[n, F + f, t])     x: [N, 2F, T] (the projection's [a; g]), out: [N, F, T]
///
/// With `geluVector` (see `geluF32`) and one rounded product. Per image the a and g halves are contiguous F·T
/// runs, so this is one vector loop per image; images are split over `threads`.
///
/// Contract: out must not alias x; any alignment; results do not depend on the thread count.
public func gegluF32(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, batch: Int, features: Int, tokens: Int,
                     threads: Threads) {
    precondition(batch >= 0 && features >= 0 && tokens >= 0, "gegluF32: bad shape")
    let run = features * tokens
    if batch == 0 || run == 0 { return }
    let workers = min(threads.count, max(1, batch * run / 65_536))  // small gates are not worth a fork
    threads.parallelFor(workers, GEGLUTask(input: input, output: output, batch: batch, run: run, workers: workers))
}

/// Worker t of `workers` takes elements [total·t/workers, total·(t+1)/workers) of the flattened (image, element) space.
private struct GEGLUTask: ParallelTask {
    let input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
    let batch: Int, run: Int, workers: Int

    func run(_ t: Int) {
        let lanes = F32Vector.scalarCount
        let range = Threads.share(t, of: batch * run, workers: workers)
        var i = range.lowerBound
        while i < range.upperBound {
            let (n, e) = (i / run, i % run)
            let count = min(range.upperBound - i, run - e)  // stay inside one image
            let a = input + 2 * n * run + e, g = a + run, o = output + n * run + e
            var j = 0
            while j + lanes <= count { storeVector(loadVector(a + j) * geluVector(loadVector(g + j)), o + j); j += lanes }
            if j < count {
                let left = count - j
                storePartialVector(loadPartialVector(a + j, left, fill: 0) * geluVector(loadPartialVector(g + j, left, fill: 0)), o + j, left)
            }
            i += count
        }
    }
}
