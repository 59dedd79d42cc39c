import XCTest
import _EdgeCore
import _EdgeQuant
import _EdgeKernels

// Shared helpers of the Kernel*Tests files (prefixed `kernel` to stay out of other test files' way).

/// fp32 unit roundoff·2 (ε = 2⁻²³).
let kernelEpsilon = Float.ulpOfOne

/// A product of K terms summed in fp32 in two different orders (the reference's per-tap accumulation vs the
/// GEMM's per-K-block FMA chains) differs by rounding errors whose typical size grows like √K·ε times the sum of
/// the terms' magnitudes (the worst case grows like K·ε). Allowing 8·√K·ε·Σ|terms| leaves a wide margin over
/// the typical error while a single missing or doubled term (≈ Σ|terms|/K) is still far outside it.
func kernelSummationTolerance(terms k: Int, magnitude: Float) -> Float {
    8 * Float(max(k, 1)).squareRoot() * kernelEpsilon * magnitude + 1e-30
}

/// Weights stored in one of the WeightMatrix formats (quantised with the reference quantisers), plus their
/// reference dequantisation. Owns its storage.
final class KernelTestWeights {
    let matrix: WeightMatrix
    /// Row-major fp32 values the kernels must reproduce (dequantizeRow of every row).
    let dequantized: [Float]
    private let values: UnsafeMutableRawPointer
    private let scales: UnsafeMutablePointer<Float>?

    init(_ type: WeightType, rows: Int, columns: Int, random: inout TestRandom, magnitude: Float = 1) {
        let w = (0 ..< rows * columns).map { _ in random.float() * magnitude }
        let count = max(rows * columns, 1)
        values = UnsafeMutableRawPointer.allocate(byteCount: count * type.elementBytes, alignment: 64)
        switch type {
        case .f32:
            values.copyMemory(from: w, byteCount: w.count * 4)
            scales = nil
        case .f16:
            quantizeF16Ref(w, count: w.count, into: values.bindMemory(to: UInt16.self, capacity: count))
            scales = nil
        case .q8PerChannel:
            let s = UnsafeMutablePointer<Float>.allocate(capacity: max(rows, 1))
            let q = values.bindMemory(to: Int8.self, capacity: count)
            w.withUnsafeBufferPointer { wb in
                for r in 0 ..< rows { s[r] = quantizeQ8Ref(wb.baseAddress! + r * columns, count: columns, into: q + r * columns) }
            }
            scales = s
        }
        let matrix = WeightMatrix(type: type, rows: rows, columns: columns, values: values, scales: scales)
        self.matrix = matrix
        var d = [Float](repeating: 0, count: rows * columns)
        d.withUnsafeMutableBufferPointer { db in
            for r in 0 ..< rows { matrix.dequantizeRow(r, into: db.baseAddress! + r * columns) }
        }
        dequantized = d
    }

    deinit {
        values.deallocate()
        scales?.deallocate()
    }
}

/// Scratch with a canary tail and a deliberately misaligned start (the kernels must not assume alignment nor
/// write past the size they asked for).
final class KernelTestScratch {
    static let canaryBytes = 256
    let raw: UnsafeMutableRawPointer
    let bytes: Int
    var pointer: UnsafeMutableRawPointer { raw + 4 }

    init(bytes: Int) {
        self.bytes = bytes
        raw = UnsafeMutableRawPointer.allocate(byteCount: bytes + 4 + Self.canaryBytes, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0xA5, count: bytes + 4 + Self.canaryBytes)
    }

    var canaryIntact: Bool {
        let tail = (raw + 4 + bytes).assumingMemoryBound(to: UInt8.self)
        return (0 ..< Self.canaryBytes).allSatisfy { tail[$0] == 0xA5 }
    }

    deinit { raw.deallocate() }
}

/// Thread counts every fast kernel is run with (results must agree bitwise); a few cases add 3 and 4 for
/// uneven splits, which oversubscribe this 2-core machine and are slow under emulation.
let kernelThreadCounts = [1, 2]
let kernelUnevenThreadCounts = [1, 2, 3, 4]

final class KernelConvTests: XCTestCase {
    /// Checks conv2dF32 against conv2dRef (after upsampleNearest2xRef when `upsampled`) for every weight type,
    /// tile and thread count; all fast runs must agree bitwise.
    func check(_ s: Conv2DShape, upsampled: Bool = false, seed: UInt64, residual useResidual: Bool = false, scale: Float = 1,
               channelBias useChannelBias: Bool = false, residualAliasesOutput: Bool = false, threadCounts: [Int] = kernelThreadCounts, file: StaticString = #filePath, line: UInt = #line) {
        for type in WeightType.allCases {
            var random = TestRandom(seed: seed &+ UInt64(type.rawValue) &* 1000)
            let storedInputCount = upsampled ? s.inputCount / 4 : s.inputCount
            let input = random.floats(storedInputCount)
            let weights = KernelTestWeights(type, rows: s.outChannels, columns: s.fanIn, random: &random)
            let bias = random.floats(s.outChannels)
            let channelBias = useChannelBias ? random.floats(s.batch * s.outChannels) : []
            let residual = useResidual ? random.floats(s.outputCount) : []
            let plane = s.outHeight * s.outWidth

            // Oracle: ((conv2dRef + channelBias) + residual) · scale, and the same with magnitudes for the tolerance.
            func oracle(input: [Float], weights: [Float], bias: [Float], channelBias: [Float], residual: [Float]) -> [Float] {
                var x = input
                if upsampled {
                    x = [Float](repeating: 0, count: s.inputCount)
                    upsampleNearest2xRef(input, planes: s.batch * s.inChannels, height: s.height / 2, width: s.width / 2, into: &x)
                }
                var out = [Float](repeating: .nan, count: s.outputCount), row = [Float](repeating: 0, count: s.fanIn)
                weights.withUnsafeBytes { w in
                    conv2dRef(s, input: x, weight: WeightMatrix(type: .f32, rows: s.outChannels, columns: s.fanIn, values: w.baseAddress!, scales: nil),
                              bias: bias, output: &out, rowScratch: &row)
                }
                for i in 0 ..< out.count {
                    var v = out[i]
                    if !channelBias.isEmpty { v += channelBias[i / plane] }
                    if !residual.isEmpty { v += residual[i] }
                    out[i] = v * scale
                }
                return out
            }
            let expected = oracle(input: input, weights: weights.dequantized, bias: bias, channelBias: channelBias, residual: residual)
            let magnitude = oracle(input: input.map(abs), weights: weights.dequantized.map(abs), bias: bias.map(abs),
                                   channelBias: channelBias.map(abs), residual: residual.map(abs)).map(abs)

            // The same weights packed once up front, as a UNet may do at load time.
            let packed = UnsafeMutablePointer<Float>.allocate(capacity: max(1, packedWeightsF32Count(rows: s.outChannels, columns: s.fanIn)))
            defer { packed.deallocate() }
            packWeightsF32(weights.matrix, into: packed, threads: Threads(2))
            var first: [Float]? = nil
            let runs = F32GemmTile.allCases.flatMap { tile in threadCounts.map { (tile, $0, false) } } + [(F32GemmTile.native, 2, true)]
            for (tile, t, prepacked) in runs {
                do {
                    let threads = Threads(t)
                    let scratch = KernelTestScratch(bytes: conv2dF32ScratchBytes(s, threads: threads, packedWeight: prepacked))
                    let guardCount = 19
                    let out = UnsafeMutablePointer<Float>.allocate(capacity: s.outputCount + guardCount)
                    defer { out.deallocate() }
                    out.initialize(repeating: -12345, count: s.outputCount + guardCount)
                    if residualAliasesOutput { out.update(from: residual, count: residual.count) }
                    input.withUnsafeBufferPointer { inp in
                        residual.withUnsafeBufferPointer { res in
                            channelBias.withUnsafeBufferPointer { cb in
                                conv2dF32(s, upsampledInput: upsampled, input: inp.baseAddress!, weight: weights.matrix,
                                          packedWeight: prepacked ? UnsafePointer(packed) : nil, bias: bias,
                                          output: out,
                                          residual: useResidual ? (residualAliasesOutput ? UnsafePointer(out) : res.baseAddress!) : nil,
                                          scale: scale, channelBias: useChannelBias ? cb.baseAddress! : nil,
                                          scratch: scratch.pointer, threads: threads, tile: tile)
                            }
                        }
                    }
                    let got = Array(UnsafeBufferPointer(start: out, count: s.outputCount))
                    let what = "\(s) upsampled=\(upsampled) \(type) tile=\(tile) threads=\(t)\(prepacked ? " prepacked" : "")"
                    XCTAssertTrue(scratch.canaryIntact, "scratch overrun: \(what)", file: file, line: line)
                    XCTAssertTrue((0 ..< guardCount).allSatisfy { out[s.outputCount + $0] == -12345 }, "output overrun: \(what)", file: file, line: line)
                    if let first {
                        XCTAssertTrue(got.elementsEqual(first) { $0.bitPattern == $1.bitPattern }, "not bitwise equal to the first run: \(what)", file: file, line: line)
                    } else {
                        first = got
                        var worst: (excess: Float, index: Int) = (0, -1)
                        for i in 0 ..< got.count {
                            let d = abs(got[i] - expected[i])
                            let tol = kernelSummationTolerance(terms: s.fanIn + 3, magnitude: magnitude[i])
                            if !(d <= tol) && (worst.index < 0 || !(d / tol <= worst.excess)) { worst = (d / tol, i) }
                        }
                        if worst.index >= 0 {
                            let i = worst.index
                            XCTFail("\(what): element \(i) is \(got[i]), reference \(expected[i]) (tolerance \(kernelSummationTolerance(terms: s.fanIn + 3, magnitude: magnitude[i])))", file: file, line: line)
                        }
                    }
                }
            }
        }
    }

    func testConv3x3SamePadding() {
        let shapes: [(n: Int, i: Int, o: Int, h: Int, w: Int)] = [
            (1, 1, 1, 1, 1), (2, 3, 7, 5, 7), (3, 2, 9, 9, 9), (1, 4, 3, 2, 17), (1, 8, 8, 16, 16),
            (1, 30, 17, 6, 6),      // K = 270: two K blocks
            (1, 64, 33, 4, 5),      // K = 576: three K blocks
            (2, 5, 16, 20, 20),     // 400 pixels: more than one column chunk
            (1, 3, 130, 3, 3),      // 17 row panels, the last one partial
            (1, 2, 15, 33, 3), (2, 7, 100, 8, 8),
        ]
        for (index, d) in shapes.enumerated() {
            check(.same(batch: d.n, inChannels: d.i, outChannels: d.o, height: d.h, width: d.w, kernel: 3), seed: 100 + UInt64(index),
                  threadCounts: d.n > 1 ? kernelUnevenThreadCounts : kernelThreadCounts)
        }
    }

    func testConv1x1() {
        let shapes: [(n: Int, i: Int, o: Int, h: Int, w: Int)] = [
            (1, 1, 1, 1, 1), (2, 3, 15, 5, 7), (1, 17, 100, 4, 4), (3, 8, 9, 3, 11), (1, 300, 9, 3, 3), (1, 16, 33, 16, 17),
        ]
        for (index, d) in shapes.enumerated() {
            check(.same(batch: d.n, inChannels: d.i, outChannels: d.o, height: d.h, width: d.w, kernel: 1), seed: 200 + UInt64(index))
        }
        // 1×1 with a stride or padding goes through the im2col packer instead of the plain-matrix one.
        check(Conv2DShape(batch: 2, inChannels: 4, outChannels: 3, height: 7, width: 7, kernel: 1, stride: 2, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0), seed: 210)
        check(Conv2DShape(batch: 1, inChannels: 3, outChannels: 9, height: 4, width: 5, kernel: 1, stride: 1, padTop: 1, padLeft: 0, padBottom: 0, padRight: 2), seed: 211)
    }

    func testConvStride2() {
        let symmetric: [(n: Int, i: Int, o: Int, h: Int, w: Int)] = [(2, 3, 5, 8, 8), (1, 3, 17, 7, 9), (1, 40, 8, 6, 6), (3, 2, 9, 32, 32)]
        for (index, d) in symmetric.enumerated() {
            check(Conv2DShape(batch: d.n, inChannels: d.i, outChannels: d.o, height: d.h, width: d.w, kernel: 3, stride: 2,
                              padTop: 1, padLeft: 1, padBottom: 1, padRight: 1), seed: 300 + UInt64(index))
        }
        // DDPM's downsampler with downsample_padding=0: (0, 0, 1, 1).
        let rightBottom: [(n: Int, i: Int, o: Int, h: Int, w: Int)] = [(2, 3, 8, 6, 6), (1, 4, 17, 9, 9), (1, 30, 16, 16, 16), (2, 1, 1, 3, 3)]
        for (index, d) in rightBottom.enumerated() {
            check(Conv2DShape(batch: d.n, inChannels: d.i, outChannels: d.o, height: d.h, width: d.w, kernel: 3, stride: 2,
                              padTop: 0, padLeft: 0, padBottom: 1, padRight: 1), seed: 320 + UInt64(index))
        }
    }

    func testConvUpsampledInput() {
        // Shapes give the upsampled size; the stored input is half of it.
        let shapes: [(n: Int, i: Int, o: Int, h: Int, w: Int)] = [(1, 3, 9, 8, 8), (2, 5, 16, 14, 10), (1, 40, 8, 4, 4), (3, 2, 17, 2, 2), (1, 4, 7, 32, 18)]
        for (index, d) in shapes.enumerated() {
            check(.same(batch: d.n, inChannels: d.i, outChannels: d.o, height: d.h, width: d.w, kernel: 3), upsampled: true, seed: 400 + UInt64(index))
        }
        check(Conv2DShape(batch: 1, inChannels: 3, outChannels: 5, height: 8, width: 12, kernel: 3, stride: 2, padTop: 0, padLeft: 0, padBottom: 1, padRight: 1),
              upsampled: true, seed: 410)
        check(.same(batch: 2, inChannels: 3, outChannels: 4, height: 6, width: 6, kernel: 1), upsampled: true, seed: 411)
    }

    func testConvOtherKernelsAndAsymmetricPadding() {
        check(.same(batch: 1, inChannels: 2, outChannels: 3, height: 7, width: 6, kernel: 5), seed: 500)
        check(Conv2DShape(batch: 2, inChannels: 3, outChannels: 9, height: 5, width: 8, kernel: 3, stride: 1, padTop: 2, padLeft: 0, padBottom: 1, padRight: 3), seed: 501)
        check(Conv2DShape(batch: 1, inChannels: 4, outChannels: 5, height: 8, width: 8, kernel: 2, stride: 2, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0), seed: 502)
        check(Conv2DShape(batch: 1, inChannels: 2, outChannels: 3, height: 3, width: 3, kernel: 3, stride: 1, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0), seed: 503)
        // A kernel larger than the image: every tap of some outputs lies in the padding.
        check(Conv2DShape(batch: 1, inChannels: 2, outChannels: 4, height: 2, width: 3, kernel: 7, stride: 1, padTop: 3, padLeft: 3, padBottom: 3, padRight: 3), seed: 504)
    }

    func testConvEpilogue() {
        let small = Conv2DShape.same(batch: 2, inChannels: 5, outChannels: 9, height: 6, width: 7, kernel: 3)
        let deep = Conv2DShape.same(batch: 2, inChannels: 40, outChannels: 17, height: 5, width: 5, kernel: 3)  // K = 360: two blocks
        check(small, seed: 600, residual: true)
        check(small, seed: 601, scale: 1 / 1.41421)
        check(small, seed: 602, channelBias: true)
        check(deep, seed: 603, residual: true, scale: 0.5, channelBias: true)
        check(.same(batch: 3, inChannels: 16, outChannels: 8, height: 4, width: 4, kernel: 1), seed: 604, residual: true, scale: 0.7)
        // In place: residual = output, allowed while I·k·k ≤ kc (one K block).
        check(small, seed: 605, residual: true, scale: 0.5, residualAliasesOutput: true)
        check(.same(batch: 2, inChannels: 16, outChannels: 8, height: 4, width: 6, kernel: 3), upsampled: true, seed: 606, residual: true, channelBias: true)
    }

    /// Shapes big enough for the driver to use every thread it is given (small products run on fewer threads,
    /// see runF32Gemm), over 1–4 threads: row/column chunk splits, several images, K blocks, packing A in parallel.
    func testConvThreadSplits() {
        let uneven = kernelUnevenThreadCounts
        check(.same(batch: 3, inChannels: 16, outChannels: 24, height: 18, width: 18, kernel: 3), upsampled: true, seed: 800, threadCounts: uneven)
        check(.same(batch: 1, inChannels: 40, outChannels: 100, height: 16, width: 16, kernel: 3), seed: 801, residual: true, scale: 0.5,
              channelBias: true, threadCounts: uneven)  // K = 360, one image: column chunks only
        check(Conv2DShape(batch: 2, inChannels: 24, outChannels: 40, height: 32, width: 32, kernel: 3, stride: 2, padTop: 0, padLeft: 0,
                          padBottom: 1, padRight: 1), seed: 802, threadCounts: uneven)
        check(.same(batch: 1, inChannels: 300, outChannels: 72, height: 4, width: 4, kernel: 1), seed: 803, threadCounts: uneven)  // rows split
        check(.same(batch: 3, inChannels: 64, outChannels: 17, height: 8, width: 8, kernel: 3), seed: 804, threadCounts: uneven)
    }

    /// Tiny images whose kernel reaches wholly past the right edge at stride 2 (e.g. W = 2, k = 3, padding
    /// (0, 0, 1, 1)). conv2dRef is not the oracle here: its column range x1 = (W − 1 + padLeft − kx)/s + 1 uses
    /// truncating division, which gives 1 instead of 0 when −s < W − 1 + padLeft − kx < 0, so it reads a
    /// pixel outside the row. The oracle is the textbook formula, one output element at a time.
    func testConvTinyImagesAgainstDirectFormula() {
        var random = TestRandom(seed: 700)
        let shapes = [
            Conv2DShape(batch: 2, inChannels: 1, outChannels: 1, height: 2, width: 2, kernel: 3, stride: 2, padTop: 0, padLeft: 0, padBottom: 1, padRight: 1),
            Conv2DShape(batch: 1, inChannels: 3, outChannels: 9, height: 2, width: 4, kernel: 3, stride: 2, padTop: 0, padLeft: 0, padBottom: 1, padRight: 1),
            Conv2DShape(batch: 1, inChannels: 2, outChannels: 5, height: 1, width: 1, kernel: 3, stride: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1),
            Conv2DShape(batch: 2, inChannels: 2, outChannels: 3, height: 3, width: 2, kernel: 5, stride: 3, padTop: 2, padLeft: 1, padBottom: 2, padRight: 3),
        ]
        for s in shapes {
            for type in WeightType.allCases {
                let input = random.floats(s.inputCount), bias = random.floats(s.outChannels)
                let weights = KernelTestWeights(type, rows: s.outChannels, columns: s.fanIn, random: &random)
                let w = weights.dequantized
                for tile in F32GemmTile.allCases {
                    for t in [1, 2] {
                        let scratch = KernelTestScratch(bytes: conv2dF32ScratchBytes(s, threads: Threads(t)))
                        var out = [Float](repeating: .nan, count: s.outputCount)
                        conv2dF32(s, input: input, weight: weights.matrix, bias: bias, output: &out, scratch: scratch.pointer, threads: Threads(t), tile: tile)
                        XCTAssertTrue(scratch.canaryIntact)
                        for n in 0 ..< s.batch { for o in 0 ..< s.outChannels { for y in 0 ..< s.outHeight { for x in 0 ..< s.outWidth {
                            var acc: Float = 0, magnitude = abs(bias[o])
                            for i in 0 ..< s.inChannels { for ky in 0 ..< s.kernel { for kx in 0 ..< s.kernel {
                                let iy = y * s.stride + ky - s.padTop, ix = x * s.stride + kx - s.padLeft
                                if iy >= 0, iy < s.height, ix >= 0, ix < s.width {
                                    let term = w[((o * s.inChannels + i) * s.kernel + ky) * s.kernel + kx] * input[((n * s.inChannels + i) * s.height + iy) * s.width + ix]
                                    acc += term; magnitude += abs(term)
                                }
                            }}}
                            let got = out[((n * s.outChannels + o) * s.outHeight + y) * s.outWidth + x]
                            XCTAssertEqual(got, acc + bias[o], accuracy: kernelSummationTolerance(terms: s.fanIn + 1, magnitude: magnitude),
                                           "\(s) \(type) tile=\(tile) threads=\(t) at \(n),\(o),\(y),\(x)")
                        }}}}
                    }
                }
            }
        }
    }

    func testScratchBytes() {
        let s = Conv2DShape.same(batch: 2, inChannels: 128, outChannels: 128, height: 32, width: 32, kernel: 3)
        let one = conv2dF32ScratchBytes(s, threads: Threads(1)), two = conv2dF32ScratchBytes(s, threads: Threads(2))
        // Packed weights (128 × 1152 floats, shared) + per thread one ≤ 256 × 16 B micro-panel and 128 bias floats,
        // + 64 bytes of alignment slack.
        XCTAssertLessThanOrEqual(one, (128 * 1152 + 256 * 16 + 128) * 4 + 64)
        XCTAssertEqual(two - one, conv2dF32ScratchBytes(s, threads: Threads(3)) - two)
        XCTAssertLessThanOrEqual(two - one, (256 * 16 + 128) * 4)
        XCTAssertEqual(gemmF32ScratchBytes(m: 128, n: 2048, k: 1152, threads: Threads(2)), two)
    }
}
