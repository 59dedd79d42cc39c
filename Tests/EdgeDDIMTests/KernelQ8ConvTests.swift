import XCTest
import _EdgeCore
import _EdgeQuant
import _EdgeKernels

/// conv2dQ8 (every tile kernel this CPU runs) against conv2dQ8Ref, which it must match bit for bit, and
/// the int8 scheme against the fp32 convolution, which it must approximate.
final class KernelQ8ConvTests: XCTestCase {
    /// Packed weights with 64-byte aligned storage, owned by the test.
    final class Packed {
        let memory: UnsafeMutableRawPointer
        let weights: Q8ConvWeights
        init(_ w: WeightMatrix, channels: Int, kernel: Int) {
            memory = .allocate(byteCount: Q8ConvWeights.byteCount(rows: w.rows, channels: channels, kernel: kernel), alignment: 64)
            weights = Q8ConvWeights(packing: w, channels: channels, kernel: kernel, into: memory)
        }
        deinit { memory.deallocate() }
    }

    struct Case {
        var n = 1, c = 4, o = 8, h = 6, w = 6, k = 3, pad = 1, upsampled = false
        var residual = false, channelBias = false, scale: Float = 1
    }

    /// Channel counts around the 4-channel blocks (1, 3, 5, 8, 9), output channels around the 8-row panels
    /// (1, 7, 9, 12, 17), widths around the 16-position tiles (1, 5, 16, 17, 31, 33), both tilings (row and
    /// flat), 1×1 and 3×3, padding 0/1/2, upsampled inputs, batch 2, and every epilogue.
    static let cases: [Case] = [
        Case(n: 1, c: 1, o: 1, h: 1, w: 1), Case(n: 1, c: 3, o: 7, h: 5, w: 5), Case(n: 2, c: 5, o: 9, h: 4, w: 17, residual: true),
        Case(n: 1, c: 8, o: 17, h: 3, w: 33, channelBias: true), Case(n: 1, c: 16, o: 16, h: 16, w: 16, residual: true, channelBias: true, scale: 0.5),
        Case(n: 1, c: 12, o: 8, h: 7, w: 9, k: 1, pad: 0), Case(n: 2, c: 33, o: 24, h: 8, w: 8, k: 1, pad: 0, residual: true, scale: 2),
        Case(n: 1, c: 6, o: 10, h: 8, w: 12, upsampled: true), Case(n: 2, c: 4, o: 8, h: 32, w: 34, upsampled: true, channelBias: true),
        Case(n: 1, c: 2, o: 3, h: 5, w: 6, k: 3, pad: 2), Case(n: 1, c: 64, o: 32, h: 8, w: 8, residual: true),
        Case(n: 1, c: 7, o: 5, h: 9, w: 3, k: 3, pad: 0),
        // Row tiles with a partial last tile (31 = 16 + 15); the others above with Wo < 16 or W = 17, 33, 34
        // take flat tiles over the padded grid, and 16×16 takes whole row tiles.
        Case(n: 2, c: 9, o: 12, h: 3, w: 31, residual: true, channelBias: true, scale: 0.25),
        // Rows of 64 pixels or more quantise 64 at a time (70 = 64 + 6; 128 upsampled = 2 × 64 from 64 stored).
        Case(n: 1, c: 5, o: 9, h: 3, w: 70, residual: true), Case(n: 2, c: 4, o: 8, h: 4, w: 128, upsampled: true, channelBias: true),
        // Weights over Q8ConvTileMajor.weightBytes (128 × 256 × 9 int8) walk the tiles panel-major; the rest tile-major.
        Case(n: 1, c: 256, o: 128, h: 4, w: 5, residual: true),
    ]

    func testMatchesReferenceBitwise() {
        var random = TestRandom(seed: 41)
        let kernels = Q8TileKernel.allCases.filter(\.isSupported)
        XCTAssertTrue(kernels.contains(.simd))
        print("q8 tile kernels on this CPU: \(kernels)")
        for c in Self.cases {
            let s = Conv2DShape(batch: c.n, inChannels: c.c, outChannels: c.o, height: c.h, width: c.w, kernel: c.k,
                                padTop: c.pad, padLeft: c.pad, padBottom: c.pad, padRight: c.pad)
            let weight = KernelTestWeights(.q8PerChannel, rows: c.o, columns: s.fanIn, random: &random)
            let packed = Packed(weight.matrix, channels: c.c, kernel: c.k)
            let sourceCount = c.upsampled ? c.n * c.c * (c.h / 2) * (c.w / 2) : s.inputCount
            // Post-SiLU-like inputs (mostly small, some negative) plus a few outliers.
            let input = random.floats(sourceCount).map { $0 > 0.9 ? $0 * 8 : $0 }
            let bias = random.floats(c.o), residual = c.residual ? random.floats(s.outputCount) : nil
            let channelBias = c.channelBias ? random.floats(c.n * c.o) : nil
            var expected = [Float](repeating: 0, count: s.outputCount)
            conv2dQ8Ref(s, upsampledInput: c.upsampled, input: input, weight: weight.matrix, bias: bias, output: &expected,
                        residual: residual, scale: c.scale, channelBias: channelBias)
            for kernel in kernels {
                for threadCount in [1, 2, 3] {
                    let threads = Threads(threadCount)
                    let scratch = KernelTestScratch(bytes: conv2dQ8ScratchBytes(s, threads: threads))
                    var got = [Float](repeating: .nan, count: s.outputCount)
                    residual.withOptionalPointer { r in channelBias.withOptionalPointer { cb in
                        conv2dQ8(s, upsampledInput: c.upsampled, input: input, weights: packed.weights, bias: bias, output: &got,
                                 residual: r, scale: c.scale, channelBias: cb, scratch: scratch.pointer, threads: threads, kernel: kernel)
                    } }
                    XCTAssertTrue(scratch.canaryIntact, "scratch overrun \(c)")
                    let mismatches = zip(got, expected).filter { $0.0 != $0.1 }.count
                    XCTAssertEqual(mismatches, 0, "\(kernel) threads=\(threadCount) \(c): \(mismatches) elements differ from conv2dQ8Ref")
                }
            }
        }
    }

    /// The quantised convolution approximates the fp32 one (same int8 weights, fp32 activations): the
    /// activation step is (hi − lo)/255 per pixel, so each term errs by at most half a step times |w|; a
    /// relative L2 error under 1% on these inputs (measured ≈ 0.3%) leaves room while catching a wrong
    /// zero point or scale (≥ 10%).
    func testApproximatesFloatConvolution() {
        var random = TestRandom(seed: 42)
        let s = Conv2DShape.same(batch: 1, inChannels: 32, outChannels: 16, height: 12, width: 12, kernel: 3)
        let weight = KernelTestWeights(.q8PerChannel, rows: 16, columns: s.fanIn, random: &random)
        let input = random.floats(s.inputCount).map { $0 / (1 + expf(-$0 * 3)) }  // SiLU-like
        let bias = random.floats(16)
        var exact = [Float](repeating: 0, count: s.outputCount), quantised = exact
        var row = [Float](repeating: 0, count: s.fanIn)
        conv2dRef(s, input: input, weight: weight.matrix, bias: bias, output: &exact, rowScratch: &row)
        conv2dQ8Ref(s, input: input, weight: weight.matrix, bias: bias, output: &quantised)
        let error = relativeL2(quantised, exact)
        print("int8 activations vs fp32: relative L2 \(error)")
        XCTAssertLessThan(error, 0.01)
        XCTAssertGreaterThan(error, 0, "activations were not quantised at all")
    }
}

extension Optional where Wrapped == [Float] {
    func withOptionalPointer<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        switch self {
        case .none: body(nil)
        case let .some(array): array.withUnsafeBufferPointer { body($0.baseAddress) }
        }
    }
}
