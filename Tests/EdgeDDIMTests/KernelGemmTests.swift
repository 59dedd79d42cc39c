import XCTest
import _EdgeCore
import _EdgeQuant
import _EdgeKernels

final class KernelGemmTests: XCTestCase {
    typealias Microkernel = (Int, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, Int, Bool,
                             UnsafePointer<Float>?, UnsafePointer<Float>?, Float) -> Void

    /// Each microkernel on hand-packed panels: every partial tile, K from 0 (bias only) to past an unroll step,
    /// every epilogue option; C's padding columns and rows past `rows` must stay untouched.
    func testMicrokernelsAgainstDirectSums() {
        let kernels: [(String, Int, Microkernel)] = [
            ("8x16", 16, { f32Gemm8x16SIMD(kc: $0, a: $1, b: $2, c: $3, ldc: $4, rows: $5, columns: $6, accumulate: $7, bias: $8, residual: $9, scale: $10) }),
            ("8x8", 8, { f32Gemm8x8SIMD(kc: $0, a: $1, b: $2, c: $3, ldc: $4, rows: $5, columns: $6, accumulate: $7, bias: $8, residual: $9, scale: $10) }),
        ]
        var random = TestRandom(seed: 11)
        for (name, nr, kernel) in kernels {
            for kc in [0, 1, 2, 3, 17, 64] {
                for rows in 1 ... 8 {
                    for columns in [1, 3, nr - 1, nr] {
                        for options in 0 ..< 8 {
                            let accumulate = options & 1 != 0, useBias = options & 2 != 0, useResidual = options & 4 != 0
                            let scale: Float = options == 7 ? 0.25 : (options == 5 ? 3 : 1)
                            let ldc = columns + 3
                            // Zero-padded panels as the packers write them.
                            var a = random.floats(kc * 8), b = random.floats(kc * nr)
                            for k in 0 ..< kc { for r in rows ..< 8 { a[k * 8 + r] = 0 }; for j in columns ..< nr { b[k * nr + j] = 0 } }
                            let c0 = random.floats(9 * ldc), bias = random.floats(8), residual = random.floats(8 * ldc)
                            var c = c0
                            kernel(kc, a, b, &c, ldc, rows, columns, accumulate, useBias ? bias : nil, useResidual ? residual : nil, scale)
                            for r in 0 ..< 9 {
                                for j in 0 ..< ldc {
                                    let i = r * ldc + j
                                    guard r < rows && j < columns else {
                                        XCTAssertEqual(c[i].bitPattern, c0[i].bitPattern, "\(name) wrote outside its tile at \(r),\(j)")
                                        continue
                                    }
                                    var acc: Float = 0
                                    for k in 0 ..< kc { acc = acc.addingProduct(a[k * 8 + r], b[k * nr + j]) }  // the documented FMA chain
                                    var v = acc
                                    if accumulate { v = c0[i] + v }
                                    if useBias { v = v + bias[r] }
                                    if useResidual { v = v + residual[i] }
                                    if scale != 1 { v = v * scale }
                                    XCTAssertEqual(c[i].bitPattern, v.bitPattern, "\(name) kc=\(kc) rows=\(rows) columns=\(columns) options=\(options) at \(r),\(j): \(c[i]) vs \(v)")
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// A layout of an R × S operand: element (r, s) at base[r·rowStride + s·columnStride], in a buffer of `count`.
    struct Layout: CustomStringConvertible {
        var rowStride: Int, columnStride: Int, count: Int
        static func rowMajor(_ r: Int, _ s: Int) -> Layout { Layout(rowStride: s, columnStride: 1, count: r * s) }
        static func columnMajor(_ r: Int, _ s: Int) -> Layout { Layout(rowStride: 1, columnStride: r, count: r * s) }
        /// Neither stride is 1 (exercises the generic packers).
        static func spread(_ r: Int, _ s: Int) -> Layout { Layout(rowStride: 2 * s + 1, columnStride: 2, count: max(r * (2 * s + 1), 1)) }
        var description: String { "(\(rowStride), \(columnStride))" }
        static func all(_ r: Int, _ s: Int) -> [Layout] { [.rowMajor(r, s), .columnMajor(r, s), .spread(r, s)] }
    }

    /// gemmF32 against linearRef (a fully connected layer is the reference product: out[i, j] = Σ_k x[i, k]·W[j, k]).
    func checkGemm(m: Int, n: Int, k: Int, aLayout: Layout, bLayout: Layout, alpha: Float, useBias: Bool, useResidual: Bool,
                   random: inout TestRandom, threadCounts: [Int] = kernelThreadCounts, file: StaticString = #filePath, line: UInt = #line) {
        let a = random.floats(aLayout.count), b = random.floats(bLayout.count)
        let bias = random.floats(m), ldc = n + (m % 3)
        let residual = random.floats(m * ldc)
        // Contiguous copies for the oracle: x = A [m, k], W = Bᵀ [n, k].
        var x = [Float](repeating: 0, count: m * k), wt = [Float](repeating: 0, count: n * k)
        for i in 0 ..< m { for kk in 0 ..< k { x[i * k + kk] = a[i * aLayout.rowStride + kk * aLayout.columnStride] } }
        for kk in 0 ..< k { for j in 0 ..< n { wt[j * k + kk] = b[kk * bLayout.rowStride + j * bLayout.columnStride] } }
        func product(_ x: [Float], _ wt: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: m * n), row = [Float](repeating: 0, count: max(k, 1)), zeros = [Float](repeating: 0, count: n)
            wt.withUnsafeBytes { w in
                linearRef(x: x, rows: m, weight: WeightMatrix(type: .f32, rows: n, columns: k, values: w.baseAddress!, scales: nil),
                          bias: zeros, output: &out, rowScratch: &row)
            }
            return out
        }
        let ab = product(x, wt), magnitudes = product(x.map(abs), wt.map(abs))
        var first: [Float]? = nil
        for tile in F32GemmTile.allCases {
            for t in threadCounts {
                let threads = Threads(t)
                let scratch = KernelTestScratch(bytes: gemmF32ScratchBytes(m: m, n: n, k: k, threads: threads))
                var c = [Float](repeating: -777, count: m * ldc + 5)
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                    gemmF32(m: m, n: n, k: k, a: ap.baseAddress!, aRowStride: aLayout.rowStride, aColumnStride: aLayout.columnStride,
                            b: bp.baseAddress!, bRowStride: bLayout.rowStride, bColumnStride: bLayout.columnStride, c: &c, ldc: ldc,
                            alpha: alpha, bias: useBias ? bias : nil, residual: useResidual ? residual : nil,
                            scratch: scratch.pointer, threads: threads, tile: tile)
                } }
                let what = "m=\(m) n=\(n) k=\(k) A\(aLayout) B\(bLayout) alpha=\(alpha) bias=\(useBias) residual=\(useResidual) tile=\(tile) threads=\(t)"
                XCTAssertTrue(scratch.canaryIntact, "scratch overrun: \(what)", file: file, line: line)
                var bad = 0
                for i in 0 ..< m {
                    for j in 0 ..< ldc where j >= n {
                        if c[i * ldc + j] != -777 { bad += 1 }
                    }
                }
                for e in m * ldc ..< c.count where c[e] != -777 { bad += 1 }
                XCTAssertEqual(bad, 0, "wrote outside C: \(what)", file: file, line: line)
                if let first {
                    XCTAssertTrue(c.elementsEqual(first) { $0.bitPattern == $1.bitPattern }, "not bitwise equal to the first run: \(what)", file: file, line: line)
                    continue
                }
                first = c
                var failures = 0
                for i in 0 ..< m {
                    for j in 0 ..< n {
                        var expected = ab[i * n + j], magnitude = magnitudes[i * n + j]
                        if useBias { expected += bias[i]; magnitude += abs(bias[i]) }
                        if useResidual { expected += residual[i * ldc + j]; magnitude += abs(residual[i * ldc + j]) }
                        expected *= alpha; magnitude *= abs(alpha)
                        let got = c[i * ldc + j]
                        if !(abs(got - expected) <= kernelSummationTolerance(terms: k + 2, magnitude: magnitude)) {
                            failures += 1
                            if failures <= 3 { XCTFail("\(what): C[\(i), \(j)] = \(got), reference \(expected)", file: file, line: line) }
                        }
                    }
                }
            }
        }
    }

    func testGemmAllShapesAndLayouts() {
        var random = TestRandom(seed: 21)
        let sizes = [1, 3, 7, 8, 9, 15, 16, 17, 33, 100]
        for m in sizes {
            for n in sizes {
                // Every operand layout pair once per (m, n) at a small K; K around and past the K block in turn.
                let k = [1, 7, 16, 17, 100, 300][(m + n) % 6]
                let aLayouts = Layout.all(m, k), bLayouts = Layout.all(k, n)
                let which = (m * 7 + n) % 9
                checkGemm(m: m, n: n, k: k, aLayout: aLayouts[which / 3], bLayout: bLayouts[which % 3], alpha: 1, useBias: false,
                          useResidual: false, random: &random)
            }
        }
        for (index, k) in [1, 8, 9, 255, 256, 257, 513].enumerated() {
            for aL in Layout.all(17, k) {
                for bL in Layout.all(k, 33) {
                    checkGemm(m: 17, n: 33, k: k, aLayout: aL, bLayout: bL, alpha: index % 2 == 0 ? 1 : 0.125, useBias: index % 3 == 0,
                              useResidual: index % 3 == 1, random: &random)
                }
            }
        }
    }

    func testGemmEpilogueAndLargeN() {
        var random = TestRandom(seed: 22)
        // n > 256 splits columns into several chunks; m = 130 ends in a partial row panel.
        checkGemm(m: 130, n: 300, k: 40, aLayout: .rowMajor(130, 40), bLayout: .rowMajor(40, 300), alpha: 0.5, useBias: true, useResidual: true, random: &random,
                  threadCounts: kernelUnevenThreadCounts)
        checkGemm(m: 9, n: 1000, k: 270, aLayout: .columnMajor(9, 270), bLayout: .rowMajor(270, 1000), alpha: 1, useBias: true, useResidual: false, random: &random,
                  threadCounts: kernelUnevenThreadCounts)
        checkGemm(m: 64, n: 5, k: 600, aLayout: .rowMajor(64, 600), bLayout: .columnMajor(600, 5), alpha: 2, useBias: false, useResidual: true, random: &random)
    }

    /// Multi-head attention over [C, T] activations composed from gemmF32 (QᵀK scores, P·V) and softmaxRowsF32,
    /// with no copies, against attentionRef on the token-major transposes.
    func testAttentionComposition() {
        var random = TestRandom(seed: 23)
        let cases: [(t: Int, heads: Int, d: Int)] = [(1, 1, 4), (7, 2, 3), (16, 4, 8), (33, 3, 5), (64, 2, 16), (256, 16, 8)]
        for (t, heads, d) in cases {
            let c = heads * d
            let q = random.floats(c * t).map { $0 * 3 }, k = random.floats(c * t).map { $0 * 3 }, v = random.floats(c * t)
            // Reference on [T, C].
            var qt = [Float](repeating: 0, count: c * t), kt = qt, vt = qt, outT = qt, scoresRef = [Float](repeating: 0, count: t)
            transposeRef(q, rows: c, columns: t, into: &qt); transposeRef(k, rows: c, columns: t, into: &kt); transposeRef(v, rows: c, columns: t, into: &vt)
            attentionRef(q: qt, k: kt, v: vt, tokens: t, channels: c, heads: heads, output: &outT, scores: &scoresRef)
            var expected = [Float](repeating: 0, count: c * t)
            transposeRef(outT, rows: t, columns: c, into: &expected)

            for tile in F32GemmTile.allCases {
                for threadCount in [1, 2] {
                    let threads = Threads(threadCount)
                    let bytes = max(gemmF32ScratchBytes(m: t, n: t, k: d, threads: threads), gemmF32ScratchBytes(m: d, n: t, k: t, threads: threads))
                    let scratch = KernelTestScratch(bytes: bytes)
                    var scores = [Float](repeating: 0, count: t * t), out = [Float](repeating: .nan, count: c * t)
                    q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
                        scores.withUnsafeMutableBufferPointer { sp in out.withUnsafeMutableBufferPointer { op in
                            for h in 0 ..< heads {
                                let off = h * d * t
                                gemmF32(m: t, n: t, k: d, a: qp.baseAddress! + off, aRowStride: 1, aColumnStride: t,
                                        b: kp.baseAddress! + off, bRowStride: t, bColumnStride: 1, c: sp.baseAddress!, ldc: t,
                                        alpha: 1 / Float(d).squareRoot(), scratch: scratch.pointer, threads: threads, tile: tile)
                                softmaxRowsF32(sp.baseAddress!, rows: t, columns: t, rowStride: t, threads: threads)
                                gemmF32(m: d, n: t, k: t, a: vp.baseAddress! + off, aRowStride: t, aColumnStride: 1,
                                        b: UnsafePointer(sp.baseAddress!), bRowStride: 1, bColumnStride: t, c: op.baseAddress! + off, ldc: t,
                                        scratch: scratch.pointer, threads: threads, tile: tile)
                            }
                        } }
                    } } }
                    XCTAssertTrue(scratch.canaryIntact)
                    // Outputs are convex combinations of V (|V| ≤ 1); the probabilities carry a few ulps from exp and
                    // the fp32 sums, and the score rounding (k = d terms, magnitudes ≤ 9·d/√d) moves them by a relative
                    // ~√d·ε·|score|: 2e-5 absolute covers both for these sizes.
                    let tolerance: Float = 2e-5
                    let worst = zip(out, expected).map { abs($0 - $1) }.max() ?? 0
                    XCTAssertLessThanOrEqual(worst, tolerance, "t=\(t) heads=\(heads) d=\(d) tile=\(tile) threads=\(threadCount)")
                }
            }
        }
    }
}
