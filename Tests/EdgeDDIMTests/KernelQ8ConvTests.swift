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
        /// Stride, and the bottom/right padding when it differs from the top/left (diffusers' Downsample2D
        /// with padding=0 pads only bottom and right).
        var stride = 1, padEnd: Int? = nil

        var shape: Conv2DShape {
            Conv2DShape(batch: n, inChannels: c, outChannels: o, height: h, width: w, kernel: k, stride: stride,
                        padTop: pad, padLeft: pad, padBottom: padEnd ?? pad, padRight: padEnd ?? pad)
        }
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
        // Stride 2 (phase-split storage): flat tiles (Wo < 16), row tiles with 64-pixel quantiser runs starting
        // at an odd padded column (pad 1) and partial last tiles, odd sizes, pad 0 and the bottom/right-only
        // padding of ddpm-cifar10-32's downsamplers, 1×1, batch 2 and every epilogue.
        Case(n: 1, c: 4, o: 8, h: 8, w: 8, stride: 2), Case(n: 1, c: 5, o: 9, h: 64, w: 64, residual: true, stride: 2),
        Case(n: 1, c: 3, o: 7, h: 7, w: 9, pad: 0, stride: 2, padEnd: 1), Case(n: 2, c: 9, o: 12, h: 5, w: 70, channelBias: true, stride: 2),
        Case(n: 2, c: 16, o: 16, h: 32, w: 32, pad: 0, residual: true, channelBias: true, scale: 0.5, stride: 2, padEnd: 1),
        Case(n: 1, c: 6, o: 10, h: 9, w: 11, k: 1, pad: 0, stride: 2), Case(n: 1, c: 8, o: 8, h: 5, w: 5, pad: 2, stride: 2),
        Case(n: 1, c: 12, o: 9, h: 3, w: 97, pad: 0, stride: 2),
    ]

    func testMatchesReferenceBitwise() {
        var random = TestRandom(seed: 41)
        let kernels = Q8TileKernel.allCases.filter(\.isSupported)
        XCTAssertTrue(kernels.contains(.simd))
        print("q8 tile kernels on this CPU: \(kernels)")
        for c in Self.cases {
            let s = c.shape
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

    /// With `inputNorm` the convolution reads SiLU(GroupNorm(x)) without it being written: bit for bit
    /// conv2dQ8Ref of groupNormF32's output (the fused normalisation uses groupNormF32's statistics and
    /// arithmetic, so the quantiser sees the same floats). Groups of 1, 2 and 4 channels; runs of 64 pixels and
    /// partial runs of 16; 1×1 and 3×3; batch 2 (each image its own statistics); with and without SiLU; means far
    /// from 0 (the input is shifted), which is where a different order of the affine's roundings would show.
    func testInputNormMatchesGroupNormThenConvolutionBitwise() {
        var random = TestRandom(seed: 43)
        let kernels = Q8TileKernel.allCases.filter(\.isSupported)
        let cases: [(c: Case, groups: Int, silu: Bool)] = [
            (Case(n: 1, c: 8, o: 8, h: 5, w: 5), 4, true), (Case(n: 2, c: 12, o: 9, h: 4, w: 17, residual: true), 6, true),
            (Case(n: 1, c: 16, o: 17, h: 3, w: 70, channelBias: true), 8, false), (Case(n: 2, c: 32, o: 16, h: 6, w: 64, k: 1, pad: 0), 8, true),
            (Case(n: 1, c: 4, o: 8, h: 2, w: 131, residual: true, scale: 0.5), 1, true), (Case(n: 1, c: 64, o: 32, h: 8, w: 8, residual: true), 32, true),
        ]
        for (c, groups, silu) in cases {
            let s = Conv2DShape(batch: c.n, inChannels: c.c, outChannels: c.o, height: c.h, width: c.w, kernel: c.k,
                                padTop: c.pad, padLeft: c.pad, padBottom: c.pad, padRight: c.pad)
            let weight = KernelTestWeights(.q8PerChannel, rows: c.o, columns: s.fanIn, random: &random)
            let packed = Packed(weight.matrix, channels: c.c, kernel: c.k)
            let input = random.floats(s.inputCount).map { 3 + 2 * $0 }
            let gamma = random.floats(c.c).map { 1 + $0 / 2 }, beta = random.floats(c.c)
            let bias = random.floats(c.o), residual = c.residual ? random.floats(s.outputCount) : nil
            let channelBias = c.channelBias ? random.floats(c.n * c.o) : nil
            var normed = [Float](repeating: 0, count: s.inputCount)
            groupNormF32(input: input, output: &normed, batch: c.n, channels: c.c, pixels: c.h * c.w, groups: groups, eps: 1e-5,
                         gamma: gamma, beta: beta, applySiLU: silu, threads: Threads(1))
            var expected = [Float](repeating: 0, count: s.outputCount)
            conv2dQ8Ref(s, input: normed, weight: weight.matrix, bias: bias, output: &expected, residual: residual, scale: c.scale,
                        channelBias: channelBias)
            for kernel in kernels {
                for threadCount in [1, 2, 3] {
                    let threads = Threads(threadCount)
                    let scratch = KernelTestScratch(bytes: conv2dQ8ScratchBytes(s, threads: threads, inputNorm: true))
                    var got = [Float](repeating: .nan, count: s.outputCount)
                    gamma.withUnsafeBufferPointer { g in beta.withUnsafeBufferPointer { b in
                        let norm = Q8InputNorm(groups: groups, eps: 1e-5, gamma: g.baseAddress!, beta: b.baseAddress!, applySiLU: silu)
                        residual.withOptionalPointer { r in channelBias.withOptionalPointer { cb in
                            conv2dQ8(s, input: input, weights: packed.weights, bias: bias, output: &got, residual: r, scale: c.scale,
                                     channelBias: cb, inputNorm: norm, scratch: scratch.pointer, threads: threads, kernel: kernel)
                        } }
                    } }
                    XCTAssertTrue(scratch.canaryIntact, "scratch overrun \(c)")
                    let mismatches = zip(got, expected).filter { $0.0 != $0.1 }.count
                    XCTAssertEqual(mismatches, 0, "\(kernel) threads=\(threadCount) \(c) groups=\(groups): \(mismatches) elements differ")
                }
            }
        }
    }

    /// A virtual concatenation (`concatenated`) reads the two tensors where they lie: bit for bit the convolution
    /// of the written torch.cat, without a norm and with one whose groups each lie in one part. A group
    /// straddling the two parts sums its statistics in two pieces, so the normalised values may differ from
    /// groupNormF32's in the last bit; the per-pixel quantisation then moves codes by one step here and there
    /// (most outputs differ in low bits, seen up to 1.1e-4 relative L2): held to 1e-3 relative L2 (a wrong channel
    /// order or part is ~1).
    func testConcatenatedInputMatchesTheWrittenConcatenation() {
        var random = TestRandom(seed: 45)
        let kernels = Q8TileKernel.allCases.filter(\.isSupported)
        // (first channels, second channels, groups or 0 for no norm, k, w)
        let cases: [(c1: Int, c2: Int, groups: Int, k: Int, w: Int)] = [
            (5, 3, 0, 3, 17), (8, 8, 4, 3, 70), (16, 8, 6, 1, 20), (4, 12, 8, 3, 9), (6, 6, 4, 3, 33), (12, 20, 4, 1, 64),
            (5, 7, 4, 3, 20), (10, 6, 2, 1, 70),   // groups of 3 and 8 channels across the boundary
        ]
        var straddling = 0, worstStraddling = 0.0
        for (c1, c2, groups, k, w) in cases {
            let (n, h, c) = (2, 5, c1 + c2)
            let s = Conv2DShape.same(batch: n, inChannels: c, outChannels: 9, height: h, width: w, kernel: k)
            let weight = KernelTestWeights(.q8PerChannel, rows: 9, columns: s.fanIn, random: &random)
            let packed = Packed(weight.matrix, channels: c, kernel: k)
            let a = random.floats(n * c1 * h * w).map { 1 + $0 }, b = random.floats(n * c2 * h * w).map { 2 * $0 - 1 }
            var whole = [Float](repeating: 0, count: s.inputCount)
            concatChannelsRef(a, channelsA: c1, b, channelsB: c2, batch: n, pixels: h * w, into: &whole)
            let gamma = random.floats(c).map { 1 + $0 / 2 }, beta = random.floats(c), bias = random.floats(9)
            if groups > 0 {
                groupNormF32(input: whole, output: &whole, batch: n, channels: c, pixels: h * w, groups: groups, eps: 1e-5,
                             gamma: gamma, beta: beta, applySiLU: true, threads: Threads(1))
            }
            var expected = [Float](repeating: 0, count: s.outputCount)
            conv2dQ8Ref(s, input: whole, weight: weight.matrix, bias: bias, output: &expected)
            let straddles = groups > 0 && c1 % (c / groups) != 0
            for kernel in kernels {
                for threadCount in [1, 2] {
                    let threads = Threads(threadCount)
                    let scratch = KernelTestScratch(bytes: conv2dQ8ScratchBytes(s, threads: threads, inputNorm: groups > 0))
                    var got = [Float](repeating: .nan, count: s.outputCount)
                    gamma.withUnsafeBufferPointer { g in beta.withUnsafeBufferPointer { be in b.withUnsafeBufferPointer { second in
                        let norm = groups > 0 ? Q8InputNorm(groups: groups, eps: 1e-5, gamma: g.baseAddress!, beta: be.baseAddress!, applySiLU: true) : nil
                        conv2dQ8(s, input: a, concatenated: (second.baseAddress!, c2), weights: packed.weights, bias: bias, output: &got,
                                 inputNorm: norm, scratch: scratch.pointer, threads: threads, kernel: kernel)
                    } } }
                    XCTAssertTrue(scratch.canaryIntact)
                    let label = "\(kernel) threads=\(threadCount) c=\(c1)+\(c2) groups=\(groups) k=\(k) w=\(w)"
                    if straddles {
                        straddling += 1
                        XCTAssertLessThan(relativeL2(got, expected), 1e-3, label)
                        worstStraddling = max(worstStraddling, relativeL2(got, expected))
                    } else {
                        XCTAssertEqual(zip(got, expected).filter { $0.0 != $0.1 }.count, 0, label)
                    }
                }
            }
        }
        XCTAssertEqual(straddling, 3 * 2 * kernels.count)
        print("straddling groups: worst relative L2 \(worstStraddling)")
    }

    /// The aliasing the contract allows, which a memory plan relies on, at stride 1 and 2: output over the input (O ≤ C, each
    /// image quantised before its outputs are written; batch 2, so image 1's input must survive image 0's
    /// outputs), and output over the residual. Same bits as with separate buffers.
    func testOutputMayAliasInputOrResidual() {
        var random = TestRandom(seed: 44)
        let downsampler = Conv2DShape(batch: 2, inChannels: 16, outChannels: 16, height: 10, width: 20, kernel: 3, stride: 2,
                                      padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)
        for s in [Conv2DShape.same(batch: 2, inChannels: 24, outChannels: 16, height: 9, width: 20, kernel: 3), downsampler] {
            let weight = KernelTestWeights(.q8PerChannel, rows: 16, columns: s.fanIn, random: &random)
            let packed = Packed(weight.matrix, channels: s.inChannels, kernel: 3)
            let input = random.floats(s.inputCount), bias = random.floats(16), residual = random.floats(s.outputCount)
            let threads = Threads(2)
            let scratch = KernelTestScratch(bytes: conv2dQ8ScratchBytes(s, threads: threads))
            var expected = [Float](repeating: 0, count: s.outputCount)
            conv2dQ8(s, input: input, weights: packed.weights, bias: bias, output: &expected, residual: residual, scratch: scratch.pointer, threads: threads)
            var shared = input
            shared.withUnsafeMutableBufferPointer { b in
                conv2dQ8(s, input: b.baseAddress!, weights: packed.weights, bias: bias, output: b.baseAddress!, residual: residual,
                         scratch: scratch.pointer, threads: threads)
            }
            XCTAssertEqual(Array(shared.prefix(s.outputCount)), expected, "output written over the input")
            var inPlace = residual
            inPlace.withUnsafeMutableBufferPointer { b in
                conv2dQ8(s, input: input, weights: packed.weights, bias: bias, output: b.baseAddress!, residual: b.baseAddress!,
                         scratch: scratch.pointer, threads: threads)
            }
            XCTAssertEqual(inPlace, expected, "output written over the residual")
        }
    }

    /// The quantised convolution approximates the fp32 one (same int8 weights, fp32 activations): the
    /// activation step is (hi − lo)/255 per pixel, so each term errs by at most half a step times |w|; a
    /// relative L2 error under 1% on these inputs (measured ≈ 0.3%) leaves room while catching a wrong
    /// zero point or scale (≥ 10%).
    func testApproximatesFloatConvolution() {
        var random = TestRandom(seed: 42)
        // Stride 2 with bottom/right padding too: conv2dQ8Ref's stride must be conv2dRef's.
        let downsampler = Conv2DShape(batch: 1, inChannels: 32, outChannels: 16, height: 12, width: 14, kernel: 3, stride: 2,
                                      padTop: 0, padLeft: 0, padBottom: 1, padRight: 1)
        for s in [Conv2DShape.same(batch: 1, inChannels: 32, outChannels: 16, height: 12, width: 12, kernel: 3), downsampler] {
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
}

extension Optional where Wrapped == [Float] {
    func withOptionalPointer<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        switch self {
        case .none: body(nil)
        case let .some(array): array.withUnsafeBufferPointer { body($0.baseAddress) }
        }
    }
}
