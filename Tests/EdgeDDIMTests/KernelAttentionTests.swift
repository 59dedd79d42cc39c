import XCTest
import _EdgeCore
import _EdgeQuant
import _EdgeKernels

/// attentionF32 (fused, channel-major) against attentionRef on the token-major transposes.
final class KernelAttentionTests: XCTestCase {
    /// Outputs are convex combinations of V (|V| ≤ 1). The probabilities carry a few ulps from the 2-ulp vector
    /// exp and the fp32 sums (over up to 300 keys, ≈ 300·2⁻²⁴ relative in the worst order), and the scores'
    /// summation order moves them by ~√d·ε·|score| (|score| ≤ 9·√d here): 2e-5 absolute covers both, while a
    /// wrong key, head or missing term moves outputs by ≥ 1e-3.
    static let tolerance: Float = 2e-5

    func testFusedAttentionMatchesReference() {
        var random = TestRandom(seed: 31)
        // Token counts around the vector widths (8 and 16 lanes): 1, 7, 8, 15, 16, 17, 33, 64, 300; d of 1…32.
        let cases: [(n: Int, t: Int, heads: Int, d: Int)] = [
            (1, 1, 1, 4), (1, 7, 2, 3), (2, 8, 1, 1), (1, 15, 3, 5), (1, 16, 4, 8), (2, 17, 2, 6), (1, 33, 3, 7),
            (1, 64, 2, 16), (1, 256, 16, 8), (2, 300, 1, 32), (1, 49, 5, 4),
        ]
        for (n, t, heads, d) in cases {
            let c = heads * d
            let q = random.floats(n * c * t).map { $0 * 3 }, k = random.floats(n * c * t).map { $0 * 3 }, v = random.floats(n * c * t)
            var expected = [Float](repeating: 0, count: n * c * t)
            for image in 0 ..< n {
                let r = image * c * t ..< (image + 1) * c * t
                var qt = [Float](repeating: 0, count: c * t), kt = qt, vt = qt, outT = qt, scores = [Float](repeating: 0, count: t)
                transposeRef(Array(q[r]), rows: c, columns: t, into: &qt)
                transposeRef(Array(k[r]), rows: c, columns: t, into: &kt)
                transposeRef(Array(v[r]), rows: c, columns: t, into: &vt)
                attentionRef(q: qt, k: kt, v: vt, tokens: t, channels: c, heads: heads, output: &outT, scores: &scores)
                var back = [Float](repeating: 0, count: c * t)
                transposeRef(outT, rows: t, columns: c, into: &back)
                expected.replaceSubrange(r, with: back)
            }
            var byThreads: [[Float]] = []
            for threadCount in [1, 2, 3] {
                let threads = Threads(threadCount)
                let scratch = KernelTestScratch(bytes: attentionF32ScratchBytes(tokens: t, threads: threads))
                var out = [Float](repeating: .nan, count: n * c * t)
                out.withUnsafeMutableBufferPointer { o in
                    attentionF32(q: q, k: k, v: v, output: o.baseAddress!, batch: n, channels: c, tokens: t, heads: heads,
                                 scratch: scratch.pointer, threads: threads)
                }
                XCTAssertTrue(scratch.canaryIntact, "scratch overrun t=\(t)")
                let worst = zip(out, expected).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, Self.tolerance, "n=\(n) t=\(t) heads=\(heads) d=\(d) threads=\(threadCount)")
                byThreads.append(out)
            }
            XCTAssertEqual(byThreads[0], byThreads[1], "results depend on the thread count (t=\(t))")
            XCTAssertEqual(byThreads[0], byThreads[2], "results depend on the thread count (t=\(t))")
        }
    }
}

/// linearF32 against linearRef for every weight format, over K around the vector widths.
final class KernelLinearTests: XCTestCase {
    func testLinearMatchesReference() {
        var random = TestRandom(seed: 32)
        for type in WeightType.allCases {
            for (m, n, k) in [(1, 1, 1), (1, 3, 7), (2, 5, 16), (3, 4, 17), (4, 128, 512), (1, 9, 65), (2, 2, 130)] {
                let w = KernelTestWeights(type, rows: n, columns: k, random: &random)
                let x = random.floats(m * k), bias = random.floats(n)
                var expected = [Float](repeating: 0, count: m * n), got = [Float](repeating: .nan, count: m * n)
                var row = [Float](repeating: 0, count: k)
                linearRef(x: x, rows: m, weight: w.matrix, bias: bias, output: &expected, rowScratch: &row)
                linearF32(x: x, rows: m, weight: w.matrix, bias: bias, output: &got, rowScratch: &row)
                for i in 0 ..< m * n {
                    // Same terms in a different order: the GEMM kernels' summation bound applies.
                    let (r, j) = (i / n, i % n)
                    var magnitude: Float = abs(bias[j])
                    for c in 0 ..< k { magnitude += abs(x[r * k + c] * w.dequantized[j * k + c]) }
                    XCTAssertEqual(got[i], expected[i], accuracy: kernelSummationTolerance(terms: k + 1, magnitude: magnitude),
                                   "\(type) m=\(m) n=\(n) k=\(k) element \(i)")
                }
            }
        }
    }
}
