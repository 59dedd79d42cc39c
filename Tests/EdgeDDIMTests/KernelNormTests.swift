import XCTest
#if canImport(Glibc)
import Glibc
#endif
import _EdgeCore
import _EdgeKernels

final class KernelNormTests: XCTestCase {
    /// groupNormF32 vs groupNormRef. The statistics differ from the reference's all-Double ones by a few fp32
    /// ulps of the mean and variance (scale and shift then round identically or 1 ulp apart), y = x·scale + shift
    /// is rounded as in the reference, and SiLU's vector exp is within 2 ulp of expf: a few ulps of (1 + |y|) in
    /// all. 1e-5·(1 + |y|) is ≈ 40–80 ulps.
    static let groupNormTolerance: Float = 1e-5

    func testGroupNormMatchesReference() {
        var random = TestRandom(seed: 31)
        let cases: [(n: Int, c: Int, p: Int, g: Int)] = [
            (1, 32, 1, 32), (2, 64, 3, 32), (1, 6, 17, 3), (3, 64, 15, 32), (1, 128, 16, 32), (2, 128, 100, 32),
            (1, 64, 1024, 32), (2, 256, 64, 32), (1, 8, 33, 1), (1, 32, 7, 4),
        ]
        for (index, d) in cases.enumerated() {
            // An offset mean and a spread scale, so the mean's rounding matters.
            let offset: Float = index % 2 == 0 ? 0 : 10
            let x = random.floats(d.n * d.c * d.p).map { $0 * 4 + offset }
            let gamma = random.floats(d.c).map { $0 * 2 }, beta = random.floats(d.c)
            for silu in [false, true] {
                var expected = [Float](repeating: 0, count: x.count)
                groupNormRef(input: x, output: &expected, batch: d.n, channels: d.c, pixels: d.p, groups: d.g, eps: 1e-5,
                             gamma: gamma, beta: beta, applySiLU: silu)
                var first: [Float]? = nil
                for t in kernelThreadCounts {
                    for inPlace in [false, true] {
                        var out = inPlace ? x : [Float](repeating: .nan, count: x.count)
                        if inPlace {
                            out.withUnsafeMutableBufferPointer { o in
                                groupNormF32(input: o.baseAddress!, output: o.baseAddress!, batch: d.n, channels: d.c, pixels: d.p, groups: d.g,
                                             eps: 1e-5, gamma: gamma, beta: beta, applySiLU: silu, threads: Threads(t))
                            }
                        } else {
                            groupNormF32(input: x, output: &out, batch: d.n, channels: d.c, pixels: d.p, groups: d.g, eps: 1e-5,
                                         gamma: gamma, beta: beta, applySiLU: silu, threads: Threads(t))
                        }
                        let what = "\(d) silu=\(silu) threads=\(t) inPlace=\(inPlace)"
                        if let first {
                            XCTAssertTrue(out.elementsEqual(first) { $0.bitPattern == $1.bitPattern }, "not bitwise equal to the first run: \(what)")
                        } else {
                            first = out
                            var worst: Float = 0
                            for i in 0 ..< out.count { worst = max(worst, abs(out[i] - expected[i]) / (1 + abs(expected[i]))) }
                            XCTAssertLessThanOrEqual(worst, Self.groupNormTolerance, what)
                        }
                    }
                }
            }
        }
    }

    func testGroupNormOfConstantGroupIsBeta() {
        // Zero variance: (x − μ) = 0 exactly, so y = β (SiLU(β) with the fused activation).
        let (n, c, p, g) = (1, 4, 37, 2)
        let x = [Float](repeating: 3.25, count: n * c * p), gamma: [Float] = [1, 2, 3, 4], beta: [Float] = [0.5, -1, 0, 2]
        var out = [Float](repeating: .nan, count: x.count)
        groupNormF32(input: x, output: &out, batch: n, channels: c, pixels: p, groups: g, eps: 1e-5, gamma: gamma, beta: beta, applySiLU: false, threads: .single)
        for ch in 0 ..< c { for i in 0 ..< p { XCTAssertEqual(out[ch * p + i], beta[ch]) } }
    }

    /// A plain softmax written as attentionRef does it (expf, fp32 sum, multiply by the reciprocal).
    func plainSoftmax(_ row: [Float]) -> [Float] {
        let m = row.max() ?? 0
        let e = row.map { expf($0 - m) }
        var sum: Float = 0
        for v in e { sum += v }
        return e.map { $0 * (1 / sum) }
    }

    /// softmaxRowsF32 vs the plain softmax: its exp is within 2 ulp of expf and the sums differ in order
    /// (≈ √n ulps relative), so each probability is within a few ulps relative; 1e-5 relative is ≈ 80 ulps.
    /// Probabilities below 1e-30 are compared absolutely (the vector exp clamps near e^−87 instead of underflowing).
    static let softmaxRelativeTolerance: Float = 1e-5

    func testSoftmaxRowsMatchesPlainSoftmax() {
        var random = TestRandom(seed: 32)
        let cases: [(rows: Int, columns: Int, spread: Float)] = [
            (1, 1, 1), (3, 7, 1), (5, 16, 4), (8, 17, 10), (33, 100, 30), (256, 256, 8), (2, 1000, 200), (4, 15, 100),
        ]
        for (rows, columns, spread) in cases {
            let stride = columns + 3
            let x = random.floats(rows * stride).map { $0 * spread }
            var first: [Float]? = nil
            for t in kernelThreadCounts {
                var y = x
                softmaxRowsF32(&y, rows: rows, columns: columns, rowStride: stride, threads: Threads(t))
                if let first {
                    XCTAssertTrue(y.elementsEqual(first) { $0.bitPattern == $1.bitPattern }, "threads=\(t)")
                    continue
                }
                first = y
                for r in 0 ..< rows {
                    let expected = plainSoftmax(Array(x[r * stride ..< r * stride + columns]))
                    for j in 0 ..< columns {
                        let got = y[r * stride + j], e = expected[j]
                        XCTAssertLessThanOrEqual(abs(got - e), Self.softmaxRelativeTolerance * e + 1e-30, "rows=\(rows) columns=\(columns) at \(r),\(j)")
                    }
                    for j in columns ..< stride { XCTAssertEqual(y[r * stride + j].bitPattern, x[r * stride + j].bitPattern, "padding written") }
                }
            }
        }
    }

    func testSoftmaxHugeLogitsDoNotOverflow() {
        var x: [Float] = [1e30, 1e30, -1e30, 0, 88, 89]
        softmaxRowsF32(&x, rows: 1, columns: 6, rowStride: 6, threads: .single)
        XCTAssertEqual(x[0], 0.5, accuracy: 1e-6)
        XCTAssertEqual(x[1], 0.5, accuracy: 1e-6)
        for i in 2 ..< 6 { XCTAssertEqual(x[i], 0, accuracy: 1e-30) }
    }
}
