import XCTest
import _EdgeCore
import _EdgeKernels

/// The transformer kernels (text encoder, Stable Diffusion's transformer blocks) against their reference twins:
/// layerNormF32, geluF32 / quickGELUF32, gegluF32 and attentionF32's causal and cross-attention forms, over shapes around the vector widths (8 and 16 lanes).
final class KernelTextEncoderTests: XCTestCase {
    /// LayerNorm's statistics are fp32 sums of 32 channels added in Double, so μ is off by ≲ 32·2⁻²⁴·mean|x| and x − μ inherits it divided by σ; the normalisation adds a
    /// few roundings. Bound, per element: 8e-6 · (|γ|·(|x̂| + |μ|/σ + 1) + |β|). A wrong eps, a biased/unbiased
    /// variance mix-up or a missing β moves elements by ≥ 1e-3 of that scale.
    static let layerNormRelativeTolerance = 8e-6

    func testLayerNormMatchesReference() {
        var random = TestRandom(seed: 61)
        // (batch, features, tokens, offset, spread): CLIP's widths (768, 1024) over its 77 tokens, token counts
        // around the lane counts, features not a multiple of the 32-channel chunk; an offset far above the
        // spread checks the two-pass variance.
        let cases: [(n: Int, features: Int, tokens: Int, offset: Float, spread: Float)] = [
            (1, 1, 1, 0, 1), (1, 7, 3, 0.5, 1), (2, 8, 8, 0, 2), (1, 15, 15, 0, 1), (1, 16, 16, 3, 0.01), (2, 17, 17, -2, 1),
            (1, 33, 2, 0, 1), (1, 768, 77, 0, 1), (2, 1024, 5, 10, 0.5), (1, 1000, 31, 0, 30), (2, 320, 33, 1, 1),
        ]
        for (n, features, tokens, offset, spread) in cases {
            var x = random.floats(n * features * tokens).map { offset + spread * $0 }
            if features >= 16 { for t in 0 ..< tokens { x[(features / 2) * tokens + t] = offset + 40 * spread } }  // an outlier channel, as CLIP's hidden states have
            let gamma = random.floats(features).map { 1 + 0.5 * $0 }, beta = random.floats(features)
            var expected = [Float](repeating: 0, count: x.count)
            layerNormRef(input: x, output: &expected, batch: n, features: features, tokens: tokens, eps: 1e-5, gamma: gamma, beta: beta)
            var byThreads: [[Float]] = []
            for threadCount in [1, 2, 3] {
                var got = [Float](repeating: .nan, count: x.count)
                layerNormF32(input: x, output: &got, batch: n, features: features, tokens: tokens, eps: 1e-5, gamma: gamma, beta: beta,
                             threads: Threads(threadCount))
                for image in 0 ..< n {
                    for t in 0 ..< tokens {
                        let at = { (c: Int) in image * features * tokens + c * tokens + t }
                        let column = (0 ..< features).map { Double(x[at($0)]) }
                        let mean = column.reduce(0, +) / Double(features)
                        let sigma = (column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(features) + 1e-5).squareRoot()
                        for c in 0 ..< features {
                            let scale = Double(abs(gamma[c])) * (abs(column[c] - mean) / sigma + abs(mean) / sigma + 1) + Double(abs(beta[c]))
                            XCTAssertEqual(Double(got[at(c)]), Double(expected[at(c)]), accuracy: Self.layerNormRelativeTolerance * scale,
                                           "n=\(n) features=\(features) tokens=\(tokens) image \(image) token \(t) channel \(c)")
                        }
                    }
                }
                byThreads.append(got)
            }
            XCTAssertEqual(byThreads[0], byThreads[1], "results depend on the thread count (features=\(features))")
            XCTAssertEqual(byThreads[0], byThreads[2], "results depend on the thread count (features=\(features))")
            // In place gives the same values.
            var inPlace = x
            inPlace.withUnsafeMutableBufferPointer { p in
                layerNormF32(input: p.baseAddress!, output: p.baseAddress!, batch: n, features: features, tokens: tokens, eps: 1e-5,
                             gamma: gamma, beta: beta, threads: Threads(2))
            }
            XCTAssertEqual(inPlace, byThreads[0], "in place differs (features=\(features))")
        }
    }

    /// GELU: the erfc fit (1.2e-7 relative), the 2-ulp exp and the Horner steps give ~1e-6 relative; in the
    /// exponent P − z², the roundings of z = x/√2, of z² and of the difference are up to ~4ε·z² = 2ε·x²
    /// (1.2e-7·x²) relative after the exp, largest where GELU is already below 1e-20. Below ~1e-37 the
    /// kernel flushes to 0, so an absolute floor of 1e-36 applies there.
    static func geluTolerance(_ x: Float, _ expected: Float) -> Float { abs(expected) * (1e-6 + 2e-7 * x * x) + 1e-36 }
    /// quickGELU: the 2-ulp exp of a rounded −1.702·x: ε·1.702·|x| relative, plus a few ulps; same floor.
    static func quickGELUTolerance(_ x: Float, _ expected: Float) -> Float { abs(expected) * (1e-6 + 2e-7 * abs(x)) + 1e-36 }

    func testGELUsMatchReference() {
        var random = TestRandom(seed: 62)
        var inputs = random.floats(4000).map { $0 * 12 }  // the range where the functions are neither 0 nor x
        inputs += [0, -0.0, 1e-30, -1e-30, 1e-6, -1e-6, 0.5, -0.5, 3, -3, 5.3, -5.3, 9, -9, 13, -13, 30, -30, 100, -100, 1e30, -1e30]
        for count in [1, 7, 8, 15, 16, 17, 33, inputs.count] {
            let x = Array(inputs.prefix(count))
            var gelu = [Float](repeating: .nan, count: count), quick = gelu
            geluF32(input: x, output: &gelu, count: count)
            quickGELUF32(input: x, output: &quick, count: count)
            for i in 0 ..< count {
                let (g, q) = (geluRef(x[i]), quickGELURef(x[i]))
                XCTAssertEqual(gelu[i], g, accuracy: Self.geluTolerance(x[i], g), "gelu(\(x[i])) count=\(count)")
                XCTAssertEqual(quick[i], q, accuracy: Self.quickGELUTolerance(x[i], q), "quick_gelu(\(x[i])) count=\(count)")
            }
        }
        // The references themselves at ±1: Φ(1) = 0.8413447460685429, −erfc(1/√2)/2 = −0.15865525393145707 and
        // σ(1.702) = 0.8457957659328212, from Python's math.erf, math.erfc and math.exp.
        XCTAssertEqual(geluRef(1), 0.841_344_75, accuracy: 1e-7)
        XCTAssertEqual(geluRef(-1), -0.158_655_25, accuracy: 1e-7)
        XCTAssertEqual(quickGELURef(1), 0.845_795_77, accuracy: 1e-7)
        // In place.
        var y = Array(inputs.prefix(100)), expected = [Float](repeating: 0, count: 100)
        geluF32(input: y, output: &expected, count: 100)
        y.withUnsafeMutableBufferPointer { geluF32(input: $0.baseAddress!, output: $0.baseAddress!, count: 100) }
        XCTAssertEqual(y, expected)
    }

    /// GEGLU: a · gelu(g) with the GELU kernel's error on gelu(g) and one rounding of the product.
    func testGEGLUMatchesReference() {
        var random = TestRandom(seed: 65)
        for (n, features, tokens) in [(1, 1, 1), (2, 3, 7), (1, 16, 1), (2, 5, 17), (1, 40, 77), (2, 160, 64), (1, 1280, 64)] {
            let x = random.floats(n * 2 * features * tokens).map { $0 * 6 }
            var expected = [Float](repeating: 0, count: n * features * tokens)
            gegluRef(input: x, output: &expected, batch: n, features: features, tokens: tokens)
            var byThreads: [[Float]] = []
            for threadCount in [1, 2, 3] {
                var got = [Float](repeating: .nan, count: expected.count)
                gegluF32(input: x, output: &got, batch: n, features: features, tokens: tokens, threads: Threads(threadCount))
                for image in 0 ..< n {
                    for i in 0 ..< features * tokens {
                        let (a, g) = (x[2 * image * features * tokens + i], x[(2 * image + 1) * features * tokens + i])
                        let e = image * features * tokens + i
                        let tolerance = abs(a) * Self.geluTolerance(g, geluRef(g)) + abs(expected[e]) * 1.2e-7
                        XCTAssertEqual(got[e], expected[e], accuracy: tolerance, "n=\(n) features=\(features) tokens=\(tokens) at \(e)")
                    }
                }
                byThreads.append(got)
            }
            XCTAssertEqual(byThreads[0], byThreads[1])
            XCTAssertEqual(byThreads[0], byThreads[2])
        }
    }

    /// As KernelAttentionTests: outputs are convex combinations of V (|V| ≤ 1), |q|, |k| ≤ 3, at most 300 keys;
    /// the probabilities' few ulps and the scores' summation order give ≤ 2e-5 absolute, while a wrong key,
    /// head, mask or missing term moves outputs by ≥ 1e-3.
    static let attentionTolerance: Float = 2e-5

    /// attentionF32 with causal masks and with as many or other keys than queries (CLIP's causal self-attention,
    /// a conditional UNet's cross-attention) against sequenceAttentionRef on the token-major transposes.
    func testCausalAndCrossAttentionMatchReference() {
        var random = TestRandom(seed: 63)
        // CLIP's 77 causal tokens (12 heads of 64 at full size, fewer here); query counts around the lanes;
        // cross-attention shapes (queries ≠ keys, as latent tokens over 77 text tokens); d not a multiple of 8.
        let cases: [(n: Int, tq: Int, tk: Int, heads: Int, d: Int, causal: Bool)] = [
            (1, 1, 1, 1, 4, true), (1, 1, 1, 1, 4, false), (2, 7, 7, 2, 3, true), (1, 8, 8, 1, 8, true), (1, 15, 15, 3, 5, true),
            (2, 16, 16, 2, 16, true), (1, 17, 17, 2, 9, true), (2, 77, 77, 4, 16, true), (1, 77, 77, 2, 64, true),
            (1, 33, 77, 2, 12, false), (2, 64, 77, 5, 8, false), (1, 300, 20, 1, 32, false), (1, 20, 300, 3, 7, false),
            (1, 49, 49, 5, 4, false),
        ]
        for (n, tq, tk, heads, d, causal) in cases {
            let c = heads * d
            let q = random.floats(n * tq * c).map { $0 * 3 }, k = random.floats(n * tk * c).map { $0 * 3 }, v = random.floats(n * tk * c)
            var expectedTokenMajor = [Float](repeating: 0, count: n * tq * c), scores = [Float](repeating: 0, count: tk)
            sequenceAttentionRef(q: q, k: k, v: v, batch: n, queries: tq, keys: tk, channels: c, heads: heads, causal: causal,
                                 output: &expectedTokenMajor, scores: &scores)
            let expected = transposedImages(expectedTokenMajor, batch: n, rows: tq, columns: c)
            let (qc, kc, vc) = (transposedImages(q, batch: n, rows: tq, columns: c), transposedImages(k, batch: n, rows: tk, columns: c),
                                transposedImages(v, batch: n, rows: tk, columns: c))
            var byThreads: [[Float]] = []
            for threadCount in [1, 2, 3] {
                let threads = Threads(threadCount)
                let scratch = KernelTestScratch(bytes: attentionF32ScratchBytes(tokens: tk, threads: threads))
                var out = [Float](repeating: .nan, count: n * tq * c)
                out.withUnsafeMutableBufferPointer { o in
                    attentionF32(q: qc, k: kc, v: vc, output: o.baseAddress!, batch: n, channels: c, tokens: tq, keys: tk, heads: heads,
                                 causal: causal, scratch: scratch.pointer, threads: threads)
                }
                XCTAssertTrue(scratch.canaryIntact, "scratch overrun tq=\(tq) tk=\(tk)")
                let worst = zip(out, expected).map { abs($0 - $1) }.max() ?? 0
                XCTAssertLessThanOrEqual(worst, Self.attentionTolerance,
                                         "n=\(n) tq=\(tq) tk=\(tk) heads=\(heads) d=\(d) causal=\(causal) threads=\(threadCount)")
                byThreads.append(out)
            }
            XCTAssertEqual(byThreads[0], byThreads[1], "results depend on the thread count (tq=\(tq))")
            XCTAssertEqual(byThreads[0], byThreads[2], "results depend on the thread count (tq=\(tq))")
        }
    }

    /// The causal mask itself: the first token attends only to itself, so its output is its own value column, and
    /// changing a later token's key or value never changes an earlier token's output.
    func testCausalMaskHidesLaterTokens() {
        var random = TestRandom(seed: 64)
        let (t, heads, c) = (77, 2, 16)
        let q = random.floats(c * t), k = random.floats(c * t), v = random.floats(c * t)  // [C, T]
        func run(_ k: [Float], _ v: [Float]) -> [Float] {
            let threads = Threads(2)
            let scratch = KernelTestScratch(bytes: attentionF32ScratchBytes(tokens: t, threads: threads))
            var out = [Float](repeating: .nan, count: c * t)
            out.withUnsafeMutableBufferPointer { o in
                attentionF32(q: q, k: k, v: v, output: o.baseAddress!, batch: 1, channels: c, tokens: t, heads: heads, causal: true,
                             scratch: scratch.pointer, threads: threads)
            }
            return out
        }
        let base = run(k, v)
        for e in 0 ..< c { XCTAssertEqual(base[e * t], v[e * t], accuracy: 1e-6, "token 0 must see only itself") }
        var k2 = k, v2 = v
        for e in 0 ..< c { for j in 40 ..< t { k2[e * t + j] += 1; v2[e * t + j] -= 1 } }
        let changed = run(k2, v2)
        for e in 0 ..< c {
            XCTAssertEqual(Array(base[e * t ..< e * t + 40]), Array(changed[e * t ..< e * t + 40]), "a later token changed an earlier one's output")
        }
        XCTAssertNotEqual(base, changed)
    }
}
