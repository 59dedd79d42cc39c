#if canImport(Glibc)
import Glibc
#endif
import _EdgeCore
import _EdgeQuant

/// Measurement helpers for `docs/KERNELS.md` (not kernels: these allocate their own inputs). Inputs are a fixed
/// pseudo-random pattern; the result is the best of `repetitions` timed runs after one warm-up run.
public enum KernelBenchmark {
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    static func pattern(_ n: Int, seed: UInt32) -> [Float] {
        var state = seed &* 747_796_405 &+ 2_891_336_453
        return (0 ..< n).map { _ in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(Int32(bitPattern: state) >> 8) / Float(1 << 23)
        }
    }

    /// Which convolution to time.
    public enum ConvKernel: Sendable {
        case fast(F32GemmTile)
        /// conv2dF32 with the native tile and weights packed by `packWeightsF32` before timing.
        case fastPrepacked
        case reference
        /// conv2dQ8 (int8 weights packed once before timing, int8 activations) with the given tile kernel;
        /// stride-1 shapes only. Implies int8 weights.
        case int8(Q8TileKernel)
        /// conv2dWinogradF32 with `tile`, the weights transformed before timing (`pretransformed`) or in every call;
        /// 3×3 stride-1 shapes only.
        case winograd(WinogradTile, pretransformed: Bool)
    }

    /// Times one convolution; GFLOP/s counts 2 flops per multiply-accumulate of `shape`. With `upsampledInput`
    /// the input is half size and the reference run includes `upsampleNearest2xRef`.
    public static func conv2D(_ shape: Conv2DShape, upsampledInput: Bool = false, weightType: WeightType = .f32,
                              kernel: ConvKernel = .fast(.native), threads: Threads, repetitions: Int = 5)
        -> (seconds: Double, gflops: Double) {
        let input = pattern(upsampledInput ? shape.inputCount / 4 : shape.inputCount, seed: 1)
        var upsampled = [Float](repeating: 0, count: upsampledInput ? shape.inputCount : 0)
        let weights = pattern(shape.outChannels * shape.fanIn, seed: 2).map { $0 * 0.05 }
        let bias = pattern(shape.outChannels, seed: 3)
        var output = [Float](repeating: 0, count: shape.outputCount)
        // Quantised storage, built with the reference quantisers.
        var f16 = [UInt16](repeating: 0, count: weights.count)
        var q8 = [Int8](repeating: 0, count: weights.count)
        var scales = [Float](repeating: 0, count: shape.outChannels)
        switch weightType {
        case .f32: break
        case .f16: quantizeF16Ref(weights, count: weights.count, into: &f16)
        case .q8PerChannel: break  // below, once the kernel is known
        }
        var best = Double.infinity
        var weightType = weightType
        if case .int8 = kernel { weightType = .q8PerChannel }
        if case .q8PerChannel = weightType {
            for o in 0 ..< shape.outChannels {
                scales[o] = weights.withUnsafeBufferPointer { w in
                    q8.withUnsafeMutableBufferPointer { q in quantizeQ8Ref(w.baseAddress! + o * shape.fanIn, count: shape.fanIn, into: q.baseAddress! + o * shape.fanIn) }
                }
            }
        }
        var bytes = max(conv2dF32ScratchBytes(shape, threads: threads), conv2dQ8Supports(shape) ? conv2dQ8ScratchBytes(shape, threads: threads) : 0)
        var transformed: UnsafeMutablePointer<Float>? = nil
        defer { transformed?.deallocate() }
        if case let .winograd(tile, pretransformed) = kernel {
            bytes = max(bytes, conv2dWinogradF32ScratchBytes(tile, shape, threads: threads, pretransformed: pretransformed),
                        winogradWeightTransformScratchBytes(inChannels: shape.inChannels, threads: threads))
            if pretransformed { transformed = .allocate(capacity: winogradWeightsF32Count(tile, outChannels: shape.outChannels, inChannels: shape.inChannels)) }
        }
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, shape.fanIn * 4), alignment: 64)
        defer { scratch.deallocate() }
        let packed = UnsafeMutablePointer<Float>.allocate(capacity: packedWeightsF32Count(rows: shape.outChannels, columns: shape.fanIn))
        defer { packed.deallocate() }
        var q8Memory: UnsafeMutableRawPointer? = nil
        defer { q8Memory?.deallocate() }
        func run(_ w: WeightMatrix) {
            if case .fastPrepacked = kernel { packWeightsF32(w, into: packed, threads: threads) }
            if case let .winograd(tile, true) = kernel {
                packWinogradWeightsF32(tile, w, inChannels: shape.inChannels, into: transformed!, scratch: scratch, threads: threads)
            }
            var q8Weights: Q8ConvWeights? = nil
            if case .int8 = kernel {
                q8Memory = .allocate(byteCount: Q8ConvWeights.byteCount(rows: w.rows, channels: shape.inChannels, kernel: shape.kernel), alignment: 64)
                q8Weights = Q8ConvWeights(packing: w, channels: shape.inChannels, kernel: shape.kernel, into: q8Memory!)
            }
            for rep in 0 ... repetitions {
                let t0 = now()
                switch kernel {
                case .fastPrepacked:
                    conv2dF32(shape, upsampledInput: upsampledInput, input: input, weight: w, packedWeight: packed, bias: bias, output: &output,
                              scratch: scratch, threads: threads)
                case let .fast(tile):
                    conv2dF32(shape, upsampledInput: upsampledInput, input: input, weight: w, bias: bias, output: &output, scratch: scratch, threads: threads, tile: tile)
                case let .winograd(tile, _):
                    conv2dWinogradF32(tile, shape, upsampledInput: upsampledInput, input: input, weight: w, transformedWeight: transformed.map { UnsafePointer($0) },
                                      bias: bias, output: &output, scratch: scratch, threads: threads)
                case let .int8(tile):
                    conv2dQ8(shape, upsampledInput: upsampledInput, input: input, weights: q8Weights!, bias: bias, output: &output,
                             scratch: scratch, threads: threads, kernel: tile)
                case .reference where upsampledInput:
                    upsampleNearest2xRef(input, planes: shape.batch * shape.inChannels, height: shape.height / 2, width: shape.width / 2, into: &upsampled)
                    conv2dRef(shape, input: upsampled, weight: w, bias: bias, output: &output, rowScratch: scratch.assumingMemoryBound(to: Float.self))
                case .reference:
                    conv2dRef(shape, input: input, weight: w, bias: bias, output: &output, rowScratch: scratch.assumingMemoryBound(to: Float.self))
                }
                let t = now() - t0
                if rep > 0 { best = min(best, t) }
            }
        }
        let (o, k) = (shape.outChannels, shape.fanIn)
        switch weightType {
        case .f32: weights.withUnsafeBytes { run(WeightMatrix(type: .f32, rows: o, columns: k, values: $0.baseAddress!, scales: nil)) }
        case .f16: f16.withUnsafeBytes { run(WeightMatrix(type: .f16, rows: o, columns: k, values: $0.baseAddress!, scales: nil)) }
        case .q8PerChannel:
            q8.withUnsafeBytes { q in scales.withUnsafeBufferPointer { s in
                run(WeightMatrix(type: .q8PerChannel, rows: o, columns: k, values: q.baseAddress!, scales: s.baseAddress!))
            } }
        }
        return (best, 2 * Double(shape.multiplyAccumulates) / best * 1e-9)
    }

    /// Times GroupNorm over [N, C, P] (fast or reference); returns seconds and the GB/s of one read and one
    /// write of the tensor.
    public static func groupNorm(batch: Int, channels: Int, pixels: Int, groups: Int, silu: Bool, reference: Bool,
                                 threads: Threads, repetitions: Int = 10) -> (seconds: Double, gbPerSecond: Double) {
        let count = batch * channels * pixels
        let x = pattern(count, seed: 4)
        let gamma = pattern(channels, seed: 5), beta = pattern(channels, seed: 6)
        var y = [Float](repeating: 0, count: count)
        var best = Double.infinity
        for rep in 0 ... repetitions {
            let t0 = now()
            if reference {
                groupNormRef(input: x, output: &y, batch: batch, channels: channels, pixels: pixels, groups: groups, eps: 1e-5,
                             gamma: gamma, beta: beta, applySiLU: silu)
            } else {
                groupNormF32(input: x, output: &y, batch: batch, channels: channels, pixels: pixels, groups: groups, eps: 1e-5,
                             gamma: gamma, beta: beta, applySiLU: silu, threads: threads)
            }
            if rep > 0 { best = min(best, now() - t0) }
        }
        return (best, 8 * Double(count) / best * 1e-9)
    }

    /// Times a row softmax of rows × columns in place (fast, or the plain scalar loop of `attentionRef` when
    /// `reference`); returns seconds and millions of elements per second.
    public static func softmaxRows(rows: Int, columns: Int, reference: Bool, threads: Threads, repetitions: Int = 10)
        -> (seconds: Double, melementsPerSecond: Double) {
        let x0 = pattern(rows * columns, seed: 7).map { $0 * 8 }
        var x = x0
        var best = Double.infinity
        for rep in 0 ... repetitions {
            x.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: x0, count: x0.count) }
            let t0 = now()
            if reference {
                x.withUnsafeMutableBufferPointer { b in
                    for r in 0 ..< rows {
                        let row = b.baseAddress! + r * columns
                        var m = -Float.infinity
                        for j in 0 ..< columns { m = max(m, row[j]) }
                        var sum: Float = 0
                        for j in 0 ..< columns { row[j] = expf(row[j] - m); sum += row[j] }
                        let inverse = 1 / sum
                        for j in 0 ..< columns { row[j] *= inverse }
                    }
                }
            } else {
                softmaxRowsF32(&x, rows: rows, columns: columns, rowStride: columns, threads: threads)
            }
            if rep > 0 { best = min(best, now() - t0) }
        }
        return (best, Double(rows * columns) / best * 1e-6)
    }
}

