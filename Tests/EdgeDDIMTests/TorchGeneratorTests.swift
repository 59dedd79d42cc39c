import XCTest
import EdgeSampler

/// `TorchGenerator` against numbers drawn by torch 2.15 (`torch.randn(n, generator=...)`, CPU, float32).
final class TorchGeneratorTests: XCTestCase {
    /// The ≥ 16-element path is IEEE float arithmetic plus fused multiply-adds, replicated operation for operation
    /// from torch's AVX2 code: it must agree to the bit on every platform.
    static let vectorPathMaxUlps = 0
    /// The < 16-element path goes through libm's double-precision log1p, sin and cos and is then rounded to
    /// float. glibc gives the same doubles as the torch build did; a different libm could move a double by an
    /// ulp, which survives the rounding to float only rarely and by at most one float ulp.
    static let scalarPathMaxUlps = 1

    struct Manifest: Decodable {
        struct Case: Decodable {
            let name: String
            let seed: UInt64
            let fresh_generator_per_size: Bool
            let sizes: [Int]
            let file: String
        }
        let cases: [Case]
    }

    func testMersenneTwisterKnownOutputs() {
        // std::mt19937 with its default seed 5489: first output, and the 10000th output the C++ standard
        // requires ([rand.predef]).
        var g = TorchGenerator(seed: 5489)
        XCTAssertEqual(g.nextUInt32(), 3_499_211_612)
        for _ in 0..<9998 { _ = g.nextUInt32() }
        XCTAssertEqual(g.nextUInt32(), 4_123_659_995)
    }

    func testUniformsAreTorchRand() {
        // MT19937 seeded with 42 starts 1608637542, 3421126067, 4083286876 (numpy's RandomState(42) agrees), and
        // torch.rand keeps the low 24 bits: torch.rand(3) printed [0.8823, 0.9150, 0.3829].
        var raw = TorchGenerator(seed: 42)
        XCTAssertEqual([raw.nextUInt32(), raw.nextUInt32(), raw.nextUInt32()], [1_608_637_542, 3_421_126_067, 4_083_286_876])
        var g = TorchGenerator(seed: 42)
        let expected: [UInt32] = [1_608_637_542, 3_421_126_067, 4_083_286_876]
        for word in expected {
            XCTAssertEqual(g.nextFloatUniform(), Float(word & 0xFF_FFFF) / 16_777_216)
        }
    }

    func testRandnMatchesTorch() throws {
        let manifest = try SamplerFixtures.json("randn.json", as: Manifest.self)
        XCTAssertFalse(manifest.cases.isEmpty)
        var exact = 0, total = 0
        for c in manifest.cases {
            let expected = try SamplerFixtures.floats(c.file)
            XCTAssertEqual(expected.count, c.sizes.reduce(0, +), c.name)
            var shared = TorchGenerator(seed: c.seed)
            var offset = 0
            for n in c.sizes {
                var g = c.fresh_generator_per_size ? TorchGenerator(seed: c.seed) : shared
                let got = g.normal(count: n)
                if !c.fresh_generator_per_size { shared = g }
                let limit = n < 16 ? Self.scalarPathMaxUlps : Self.vectorPathMaxUlps
                for i in 0..<n {
                    let d = SamplerFixtures.ulpDistance(got[i], expected[offset + i])
                    if d == 0 { exact += 1 }
                    total += 1
                    if d > limit {
                        XCTFail("\(c.name): draw of \(n), element \(i): \(got[i]) vs torch \(expected[offset + i]) (\(d) ulps)")
                        break
                    }
                }
                offset += n
            }
        }
        XCTAssertEqual(exact, total, "all draws are expected to be bit-identical to torch's")
    }

    func testPipelineInitialNoise() throws {
        // DDIMPipeline(batch_size=4, generator=torch.Generator().manual_seed(42)) draws x_T with one randn call.
        for (name, count) in [("ddpm-fashion-32", 4 * 1 * 32 * 32), ("ddpm-emoji-32", 4 * 3 * 32 * 32)] {
            let expected = try SamplerFixtures.floats("pipeline/\(name)_xT.npy")
            var g = TorchGenerator(seed: 42)
            XCTAssertEqual(g.normal(count: count), expected, name)
        }
    }

    func testSeedKeepsLow32Bits() {
        // torch's mt19937 is seeded with seed & 0xFFFFFFFF.
        var a = TorchGenerator(seed: 42)
        var b = TorchGenerator(seed: (1 << 32) + 42)
        XCTAssertEqual(a.normal(count: 40), b.normal(count: 40))
    }

    func testSmallDrawCachesItsPairAcrossLargeDraws() {
        // A 1-element draw consumes one Box–Muller pair and caches the sine half; a following ≥16 draw leaves
        // the cache alone, so the next 1-element draw returns that cached value without touching the stream.
        var g = TorchGenerator(seed: 3)
        var reference = g
        let first = g.normal(count: 1)[0]
        _ = g.normal(count: 32)
        let second = g.normal(count: 1)[0]
        XCTAssertEqual(first, Float(reference.nextDoubleNormal()))
        XCTAssertEqual(second, Float(reference.nextDoubleNormal()))  // the cached value
    }

    func testFillNormalMatchesConvenienceAndEmptyDrawsNothing() {
        var a = TorchGenerator(seed: 9)
        var b = TorchGenerator(seed: 9)
        var buffer = [Float](repeating: .nan, count: 77)
        buffer.withUnsafeMutableBufferPointer { a.fillNormal($0) }
        XCTAssertEqual(buffer, b.normal(count: 77))
        var empty = [Float]()
        empty.withUnsafeMutableBufferPointer { a.fillNormal($0) }
        XCTAssertEqual(a.nextUInt32(), b.nextUInt32(), "an empty draw must not advance the stream")
    }

    func testCopiesForkTheStream() {
        var a = TorchGenerator(seed: 1)
        _ = a.normal(count: 5)
        var b = a
        XCTAssertEqual(a.normal(count: 20), b.normal(count: 20))
    }
}
