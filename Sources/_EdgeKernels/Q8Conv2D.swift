import _EdgeCore
import _EdgeQuant
import _EdgeMicrokernels

/// Which int8 tile kernel runs `conv2dQ8`. All of them give bit-identical results.
public enum Q8TileKernel: String, Sendable, CaseIterable {
    /// `Q8Conv_8x16_AVX512VNNI` (C, `vpdpbusd`): x86-64 with AVX512-VNNI.
    case avx512vnni
    /// `Q8Conv_8x16_NEONDOT` (C, `sdot`): ARMv8.2 with the dot product extension (Cortex-A76, Pi 5).
    case neondot
    /// `Q8Conv_8x16_NEONMLAL` (C, `smull`/`smlal`/`sadalp`): any aarch64 CPU, for ARMv8.0 without dot products
    /// (Cortex-A72, Pi 4). Not a dot-product kernel: the UNet takes int8 activations with it only when asked.
    case neonmlal
    /// `Q8Conv_8x16_SIMD16` (Swift SIMD, widening multiplies): anywhere; slower than the fp32 path, so the
    /// UNet uses int8 activations only where a dot-product kernel exists.
    case simd

    /// The dot-product kernel this CPU supports, checked at run time, or nil.
    public static let dotProduct: Q8TileKernel? = {
        if edge_cpu_has_avx512vnni() != 0 { return .avx512vnni }
        if edge_cpu_has_dotprod() != 0 { return .neondot }
        return nil
    }()

    /// The kernel for CPUs without a dot product: NEON widening multiply-adds on aarch64, Swift SIMD elsewhere.
    #if arch(arm64)
    public static let withoutDotProduct = Q8TileKernel.neonmlal
    #else
    public static let withoutDotProduct = Q8TileKernel.simd
    #endif

    /// What `conv2dQ8` runs when not told: the dot-product kernel, else `withoutDotProduct`.
    public static var preferred: Q8TileKernel { dotProduct ?? withoutDotProduct }

    /// Whether this CPU can run the kernel.
    public var isSupported: Bool { self == .simd || self == Self.withoutDotProduct || self == Self.dotProduct }
}

/// A GroupNorm (then SiLU, if asked) that `conv2dQ8` applies to its input as it quantises it, so the
/// normalised image is never written: the result is bit for bit the convolution of `groupNormF32`'s output.
public struct Q8InputNorm {
    public var groups: Int
    public var eps: Float
    /// [C] each.
    public var gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>
    public var applySiLU: Bool

    public init(groups: Int, eps: Float, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, applySiLU: Bool) {
        self.groups = groups; self.eps = eps; self.gamma = gamma; self.beta = beta; self.applySiLU = applySiLU
    }
}

/// int8 convolution, stride 1 or 2: int8 per-row weights (`Q8ConvWeights`, packed at load) × activations quantised
/// on the fly to u8 per pixel (`U8PixelQuant`), int32 sums per tap, fp32 epilogue. Bit-identical to
/// `conv2dQ8Ref`:
///
///     out[n,o,y,x] = ((Σ_t scale_p·(Σ_c W·u − zero_p·Σ_c W)) · wscale[o] + bias[o] + channelBias[n,o] + residual) · scale
///
/// With `concatenated`, the input is the channel concatenation of `input` (the first C − C₂ channels) and
/// `concatenated.values` (C₂ channels), read where they lie: torch.cat((input, second), dim=1) is never written.
///
/// With `inputNorm`, the input is first replaced by SiLU(GroupNorm(input)) (`groupNormF32`'s values, computed
/// on the fly: the statistics in one pass over the input, then each 16- or 64-pixel run normalised into a
/// per-thread staging row just before it is quantised).
///
/// How (per image): (1) quantise the input — or its virtual 2× nearest upsampling — into a zero-bordered
/// copy padded by the convolution's padding (u8, channels in blocks of 4, padded width Wp) with a scale and
/// zero point per position; (2) every output row is a run of positions P = y·Wp + x whose tap t reads
/// position P + ky·Wp + kx, so a tile of 16 consecutive outputs reads 16 consecutive 4-byte groups per
/// channel block: an implicit im2col with no packing at all. Tiles are 8 output channels × 16 positions:
/// of one output row (the last tile of a row computes past its end into padding and discards those lanes),
/// or, for narrow images where that wastes more (Wo < 16: 8×8, 4×4), 16 consecutive positions of the
/// flattened padded grid, discarding the Wp − Wo border positions of each row they cross.
///
/// Stride 2 (the downsamplers) keeps the same walk by splitting the padded image into its four phases
/// (even/odd rows × even/odd columns), each a Hq × Wq grid (Hq = ⌈Hp/2⌉, Wq = ⌈Wp/2⌉) stored one after the
/// other: output (y, x) tap (ky, kx) reads padded pixel (2y + ky, 2x + kx), which is position
/// P + (ky mod 2, kx mod 2)'s phase start + ⌊ky/2⌋·Wq + ⌊kx/2⌋ with P = y·Wq + x, so 16 consecutive outputs
/// again read 16 consecutive groups. Only where values are stored changes: the results are the same bits.
///
/// Contract: input [N, C, H, W] (upsampled: [N, C, H/2, W/2] with H, W even), output / residual [N, O, Ho, Wo],
/// channelBias [N, O]; scratch `conv2dQ8ScratchBytes(shape, threads:, inputNorm:)` bytes, any alignment. Reads
/// only inside the operands. Each image is quantised whole before any of its outputs is written, so output may
/// alias input when O ≤ C and the input is not upsampled (a memory plan reusing a tensor that dies here), and
/// residual may alias output (each output value is written right after its residual value is read). Results
/// do not depend on the thread count or the kernel.
public func conv2dQ8(_ s: Conv2DShape, upsampledInput: Bool = false, input: UnsafePointer<Float>,
                     concatenated: (values: UnsafePointer<Float>, channels: Int)? = nil, weights: Q8ConvWeights,
                     bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>? = nil,
                     scale: Float = 1, channelBias: UnsafePointer<Float>? = nil, inputNorm: Q8InputNorm? = nil,
                     scratch: UnsafeMutableRawPointer, threads: Threads, kernel: Q8TileKernel? = nil) {
    precondition(conv2dQ8Supports(s), "conv2dQ8: unsupported shape \(s)")
    precondition(weights.rows == s.outChannels && weights.channels == s.inChannels && weights.kernel == s.kernel)
    precondition(!upsampledInput || (s.height % 2 == 0 && s.width % 2 == 0 && s.stride == 1))
    precondition(inputNorm == nil || !upsampledInput, "conv2dQ8: a normalised input cannot also be upsampled")
    precondition(concatenated.map { $0.channels >= 1 && $0.channels < s.inChannels } ?? true, "conv2dQ8: concatenated channels out of range")
    let kernel = kernel ?? Q8TileKernel.preferred
    precondition(kernel.isSupported, "conv2dQ8: \(kernel) is not supported on this CPU")
    let g = Q8ConvGeometry(s, threads: threads, inputNorm: inputNorm != nil)
    let base = UnsafeMutableRawPointer(bitPattern: (Int(bitPattern: scratch) + 63) & ~63)!
    let offsets = base.bindMemory(to: Int32.self, capacity: g.taps)
    for ky in 0 ..< s.kernel { for kx in 0 ..< s.kernel { offsets[ky * s.kernel + kx] = Int32(g.tapOffset(ky, kx)) } }
    let scales = (base + g.scalesAt).bindMemory(to: Float.self, capacity: g.planePixels)
    let zeros = (base + g.zerosAt).bindMemory(to: Int32.self, capacity: g.planePixels)
    let tensor = (base + g.tensorAt).bindMemory(to: UInt32.self, capacity: g.blocks * g.planePixels)
    let tiles = (base + g.tilesAt).bindMemory(to: Float.self, capacity: 128 * threads.count)
    let (sourceH, sourceW) = upsampledInput ? (s.height / 2, s.width / 2) : (s.height, s.width)
    let affineScale = (base + g.affineAt).bindMemory(to: Float.self, capacity: 2 * s.batch * s.inChannels)
    let affineShift = affineScale + s.batch * s.inChannels
    let secondChannels = concatenated?.channels ?? 0
    let firstChannels = s.inChannels - secondChannels
    if let norm = inputNorm {
        groupNormAffineF32(input: input, concatenated: concatenated, batch: s.batch, channels: s.inChannels, pixels: s.height * s.width,
                           groups: norm.groups, eps: norm.eps, gamma: norm.gamma, beta: norm.beta, scale: affineScale, shift: affineShift,
                           threads: threads)
    }
    let staging = (base + g.stagingAt).bindMemory(to: Float.self, capacity: g.stagingFloats * threads.count)
    for n in 0 ..< s.batch {
        if s.stride == 2 {
            // The phases interleave padding and pixels; zeroing everything first is simpler than mapping the
            // border and costs one pass over a quarter-size copy.
            scales.update(repeating: 0, count: g.planePixels)
            zeros.update(repeating: 0, count: g.planePixels)
            tensor.update(repeating: 0, count: g.blocks * g.planePixels)
        }
        let affine = inputNorm.map { (scale: UnsafePointer(affineScale + n * s.inChannels), shift: UnsafePointer(affineShift + n * s.inChannels),
                                      silu: $0.applySiLU) }
        let plane = sourceH * sourceW
        let quantize = QuantizeTask(s: s, g: g, upsampled: upsampledInput, input: input + n * firstChannels * plane, firstChannels: firstChannels,
                                    second: concatenated.map { $0.values + n * secondChannels * plane } ?? input,
                                    affine: affine, staging: staging, scales: scales, zeros: zeros, tensor: tensor,
                                    workers: min(threads.count, s.height))
        threads.parallelFor(quantize.workers, quantize)
        let tasks = weights.panels * g.tilesPerPanel
        // Below ~64 k multiply-adds per worker a fork/join costs more than it saves.
        let workers = min(threads.count, tasks, max(1, s.outChannels * s.outHeight * s.outWidth * s.fanIn / 65_536))
        let compute = Q8ComputeTask(s: s, g: g, weights: weights, image: n, offsets: offsets, scales: scales, zeros: zeros,
                                    tensor: UnsafeRawPointer(tensor).assumingMemoryBound(to: UInt8.self), tiles: tiles,
                                    bias: bias, channelBias: channelBias, residual: residual, scale: scale, output: output,
                                    tasks: tasks, workers: workers, kernel: kernel)
        threads.parallelFor(workers, compute)
    }
}

/// Whether `conv2dQ8` handles the shape: stride 1 or 2, and int32 sums that cannot overflow
/// (|Σ_c W·u| ≤ 127·255·C < 2³¹ needs C ≤ 66 000; bounded well below).
public func conv2dQ8Supports(_ s: Conv2DShape) -> Bool {
    (s.stride == 1 || s.stride == 2) && s.inChannels >= 1 && s.inChannels <= 16_384 && s.kernel >= 1 && s.outHeight >= 1 && s.outWidth >= 1
}

/// Scratch bytes for `conv2dQ8` (one image's quantised copy, its per-position parameters, one output tile
/// per thread; with `inputNorm`, the per-channel affine of every image and a staging row per thread).
public func conv2dQ8ScratchBytes(_ s: Conv2DShape, threads: Threads, inputNorm: Bool = false) -> Int {
    let g = Q8ConvGeometry(s, threads: threads, inputNorm: inputNorm)
    return g.stagingAt + g.stagingFloats * 4 * threads.count + 64
}

/// Where everything of one image lives in the scratch, and the padded grid's geometry.
struct Q8ConvGeometry {
    let taps: Int, blocks: Int
    let paddedWidth: Int, paddedHeight: Int
    /// Positions per stored row, Wp (stride 1) or Wq = ⌈Wp/2⌉ (stride 2), and the distance between the
    /// stride-2 phases (Hq·Wq; 0 at stride 1).
    let gridWidth: Int, phaseStride: Int
    /// Positions per channel-block plane: the padded grid plus what the last tile of the last row may read
    /// past it ((Hp − 1)·Wp + ⌈Wo/16⌉·16 + k − 1 ≥ Hp·Wp).
    let planePixels: Int
    /// Tiles per 8-channel panel, and whether they run over the flattened grid instead of row by row.
    let tilesPerPanel: Int, flat: Bool
    let scalesAt: Int, zerosAt: Int, tensorAt: Int, tilesAt: Int
    /// With an input norm: [2, N, C] floats of per-channel scale and shift, and per thread C × 64 floats of
    /// normalised values (one run of pixels, every channel) waiting to be quantised.
    let affineAt: Int, stagingAt: Int, stagingFloats: Int

    init(_ s: Conv2DShape, threads: Threads, inputNorm: Bool) {
        taps = s.kernel * s.kernel
        blocks = (s.inChannels + 3) / 4
        paddedWidth = s.width + s.padLeft + s.padRight
        paddedHeight = s.height + s.padTop + s.padBottom
        gridWidth = s.stride == 2 ? (paddedWidth + 1) / 2 : paddedWidth
        phaseStride = s.stride == 2 ? (paddedHeight + 1) / 2 * gridWidth : 0
        let rowTiles = s.outHeight * ((s.outWidth + 15) / 16), flatTiles = (s.outHeight * gridWidth + 15) / 16
        flat = flatTiles < rowTiles
        tilesPerPanel = flat ? flatTiles : rowTiles
        if s.stride == 2 {
            // The last tile's 16 lanes plus a bound on the tap offsets, or the four phases, whichever is further.
            let lastTileEnd = flat ? flatTiles * 16 : (s.outHeight - 1) * gridWidth + (s.outWidth + 15) / 16 * 16
            let largestOffset = 3 * phaseStride + (s.kernel - 1) / 2 * (gridWidth + 1)
            planePixels = max(4 * phaseStride, lastTileEnd + largestOffset)
        } else {
            // The last flat tile starts below Ho·Wp and reads 16 positions plus the largest tap offset (k−1)·Wp + k−1.
            planePixels = max(paddedHeight * paddedWidth + 16 + s.kernel,
                              (paddedHeight - 1) * paddedWidth + (s.outWidth + 15) / 16 * 16 + s.kernel - 1)
        }
        scalesAt = roundUp64(taps * 4)
        zerosAt = scalesAt + roundUp64(planePixels * 4)
        tensorAt = zerosAt + roundUp64(planePixels * 4)
        tilesAt = tensorAt + roundUp64(blocks * planePixels * 4)
        affineAt = tilesAt + roundUp64(128 * 4 * threads.count)
        stagingAt = affineAt + (inputNorm ? roundUp64(2 * s.batch * s.inChannels * 4) : 0)
        stagingFloats = inputNorm ? s.inChannels * 64 : 0
    }

    /// Where tap (ky, kx) of output position 0 reads: ky·Wp + kx, or in its stride-2 phase.
    func tapOffset(_ ky: Int, _ kx: Int) -> Int {
        phaseStride == 0 ? ky * gridWidth + kx : ((ky & 1) * 2 + (kx & 1)) * phaseStride + (ky >> 1) * gridWidth + (kx >> 1)
    }
}

/// Quantises rows [H·t/workers, H·(t+1)/workers) of one image and zeroes the padding around them (worker 0
/// also the top border, the last worker the bottom border and the slack).
private struct QuantizeTask: ParallelTask {
    let s: Conv2DShape, g: Q8ConvGeometry
    let upsampled: Bool
    /// This image's channels [0, firstChannels) at `input`, the rest at `second`.
    let input: UnsafePointer<Float>
    let firstChannels: Int
    let second: UnsafePointer<Float>
    /// This image's input norm as a per-channel affine [C] (then SiLU), or nil; `staging` holds
    /// `g.stagingFloats` per worker.
    let affine: (scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, silu: Bool)?
    let staging: UnsafeMutablePointer<Float>
    let scales: UnsafeMutablePointer<Float>, zeros: UnsafeMutablePointer<Int32>, tensor: UnsafeMutablePointer<UInt32>
    let workers: Int

    func clear(from start: Int, count: Int) {
        guard count > 0 else { return }
        (scales + start).update(repeating: 0, count: count)
        (zeros + start).update(repeating: 0, count: count)
        for b in 0 ..< g.blocks { (tensor + b * g.planePixels + start).update(repeating: 0, count: count) }
    }

    func run(_ t: Int) {
        let (h, w, wp) = (s.height, s.width, g.paddedWidth)
        let rows = Threads.share(t, of: h, workers: workers)
        let bordered = s.stride == 1   // stride 2 has cleared everything
        if t == 0 && bordered { clear(from: 0, count: s.padTop * wp) }
        if t == workers - 1 && bordered { clear(from: (s.padTop + h) * wp, count: g.planePixels - (s.padTop + h) * wp) }
        let (sw, plane) = upsampled ? (w / 2, (h / 2) * (w / 2)) : (w, h * w)
        for y in rows {
            let row = y + s.padTop
            if bordered {
                clear(from: row * wp, count: s.padLeft)
                clear(from: row * wp + s.padLeft + w, count: s.padRight)
            }
            let sourceOffset = (upsampled ? y / 2 : y) * sw
            let sourceRow = Rows(first: input + sourceOffset, firstChannels: firstChannels, second: second + sourceOffset, plane: plane)
            var x0 = 0
            // 64 pixels per pass over the channels where the row allows: every channel's four vectors are one
            // contiguous 256-byte run, so the walk down the channel planes (a new page per channel at large
            // images) is paid once per 64 pixels instead of per 16.
            while x0 + 64 <= w {
                if let affine {
                    let stage = staging + t * g.stagingFloats
                    normalize(sourceRow, x0: x0, runs: 4, len: 16, affine, into: stage)
                    quantizeRun64(Rows(staged: stage, plane: 64), x0: 0, row: row, col: s.padLeft + x0)
                } else {
                    quantizeRun64(sourceRow, x0: x0, row: row, col: s.padLeft + x0)
                }
                x0 += 64
            }
            while x0 < w {
                let len = min(16, w - x0)
                if let affine {
                    let stage = staging + t * g.stagingFloats
                    normalize(sourceRow, x0: x0, runs: 1, len: len, affine, into: stage)
                    quantizeRun(Rows(staged: stage, plane: 16), x0: 0, len: len, row: row, col: s.padLeft + x0)
                } else {
                    quantizeRun(sourceRow, x0: x0, len: len, row: row, col: s.padLeft + x0)
                }
                x0 += 16
            }
        }
    }

    /// Writes SiLU?(x · scale[c] + shift[c]) of `runs` runs of `len` pixels from x0 (every channel) to `stage`,
    /// channel c's at c · 16·runs: `groupNormF32`'s arithmetic, lane for lane. Lanes past `len` hold values of
    /// no pixel, which the quantiser never stores.
    @inline(__always)
    func normalize(_ row: Rows, x0: Int, runs: Int, len: Int,
                   _ affine: (scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, silu: Bool), into stage: UnsafeMutablePointer<Float>) {
        for c in 0 ..< s.inChannels {
            let (a, b) = (SIMD16<Float>(repeating: affine.scale[c]), SIMD16<Float>(repeating: affine.shift[c]))
            for r in 0 ..< runs {
                var y = load(row[c], x0 + 16 * r, len) * a + b
                if affine.silu { y = siluVector16(y) }
                UnsafeMutableRawPointer(stage + (c * runs + r) * 16).storeBytes(of: y, as: SIMD16<Float>.self)
            }
        }
    }

    /// One image row of every channel: channel c < firstChannels at first + c·plane, the others at
    /// second + (c − firstChannels)·plane (a virtual concatenation); or a staging row, channel c at c·plane.
    struct Rows {
        let first: UnsafePointer<Float>, firstChannels: Int, second: UnsafePointer<Float>, plane: Int

        init(first: UnsafePointer<Float>, firstChannels: Int, second: UnsafePointer<Float>, plane: Int) {
            self.first = first; self.firstChannels = firstChannels; self.second = second; self.plane = plane
        }

        init(staged: UnsafeMutablePointer<Float>, plane: Int) {
            self.init(first: UnsafePointer(staged), firstChannels: .max, second: UnsafePointer(staged), plane: plane)
        }

        @inline(__always) subscript(_ c: Int) -> UnsafePointer<Float> {
            c < firstChannels ? first + c * plane : second + (c - firstChannels) * plane
        }
    }

    @inline(__always)
    func load(_ row: UnsafePointer<Float>, _ x0: Int, _ len: Int) -> SIMD16<Float> {
        if upsampled {
            // Virtual pixels x0…x0+len−1 read source pixels x/2.
            var v = SIMD16<Float>()
            let first = x0 / 2
            let count = (len + 1) / 2
            if count == 8 {
                let h = UnsafeRawPointer(row + first).loadUnaligned(as: SIMD8<Float>.self)
                v = SIMD16(h[0], h[0], h[1], h[1], h[2], h[2], h[3], h[3], h[4], h[4], h[5], h[5], h[6], h[6], h[7], h[7])
            } else {
                for j in 0 ..< len { v[j] = row[(x0 + j) / 2] }
            }
            return v
        }
        if len == 16 { return UnsafeRawPointer(row + x0).loadUnaligned(as: SIMD16<Float>.self) }
        var v = SIMD16<Float>()
        for j in 0 ..< len { v[j] = row[x0 + j] }
        return v
    }

    /// U8PixelQuant.parameters, lane-wise, in the same operation order: 255/range, range/255 and the zero point
    /// (as a float and as an integer) of 16 pixels whose values span [lo, hi].
    @inline(__always)
    func parameters(lo: SIMD16<Float>, hi: SIMD16<Float>) -> (inverse: SIMD16<Float>, scale: SIMD16<Float>, zeroF: SIMD16<Float>, zero: SIMD16<Int32>) {
        typealias F = SIMD16<Float>
        let range = hi - lo
        let valid = (range .> 0) .& (range .< .infinity)
        let inverse = F(repeating: 0).replacing(with: 255 / range, where: valid)
        let pixelScale = F(repeating: 0).replacing(with: range / 255, where: valid)
        let zeroF = F(repeating: 0).replacing(with: clampToByte(roundToEven(-lo * inverse)), where: valid)
        return (inverse, pixelScale, zeroF, SIMD16<Int32>(truncatingIfNeeded: byteBits(zeroF)))
    }

    /// Stores the values of `len` ≤ 16 pixels of padded row `row` from column `col` into a per-position plane:
    /// at row·Wp + col (stride 1), or split by column parity into the row's two stride-2 phases.
    @inline(__always)
    func store<T: SIMDScalar>(_ v: SIMD16<T>, len: Int, into plane: UnsafeMutablePointer<T>, row: Int, col: Int) {
        if g.phaseStride == 0 {
            let dst = plane + row * g.gridWidth + col
            if len == 16 { UnsafeMutableRawPointer(dst).storeBytes(of: v, as: SIMD16<T>.self) } else { for j in 0 ..< len { dst[j] = v[j] } }
            return
        }
        let phaseRow = plane + (row & 1) * 2 * g.phaseStride + (row >> 1) * g.gridWidth
        // Lanes 0, 2, 4, … are columns of col's parity, lanes 1, 3, … of the other.
        let even = phaseRow + (col & 1) * g.phaseStride + (col >> 1)
        let odd = phaseRow + (1 - (col & 1)) * g.phaseStride + ((col + 1) >> 1)
        if len == 16 {
            UnsafeMutableRawPointer(even).storeBytes(of: v.evenHalf, as: SIMD8<T>.self)
            UnsafeMutableRawPointer(odd).storeBytes(of: v.oddHalf, as: SIMD8<T>.self)
        } else {
            for j in 0 ..< len { (j & 1 == 0 ? even : odd)[j >> 1] = v[j] }
        }
    }

    /// `quantizeRun` for 64 pixels (four groups of 16, each with the same arithmetic as there).
    @inline(__always)
    func quantizeRun64(_ row: Rows, x0: Int, row paddedRow: Int, col: Int) {
        typealias F = SIMD16<Float>
        var lo0 = F(), hi0 = F(), lo1 = F(), hi1 = F(), lo2 = F(), hi2 = F(), lo3 = F(), hi3 = F()
        for c in 0 ..< s.inChannels {
            let p = row[c]
            let v0 = load(p, x0, 16), v1 = load(p, x0 + 16, 16), v2 = load(p, x0 + 32, 16), v3 = load(p, x0 + 48, 16)
            lo0 = lo0.replacing(with: v0, where: v0 .< lo0); hi0 = hi0.replacing(with: v0, where: v0 .> hi0)
            lo1 = lo1.replacing(with: v1, where: v1 .< lo1); hi1 = hi1.replacing(with: v1, where: v1 .> hi1)
            lo2 = lo2.replacing(with: v2, where: v2 .< lo2); hi2 = hi2.replacing(with: v2, where: v2 .> hi2)
            lo3 = lo3.replacing(with: v3, where: v3 .< lo3); hi3 = hi3.replacing(with: v3, where: v3 .> hi3)
        }
        let q0 = parameters(lo: lo0, hi: hi0), q1 = parameters(lo: lo1, hi: hi1)
        let q2 = parameters(lo: lo2, hi: hi2), q3 = parameters(lo: lo3, hi: hi3)
        var c0 = 0
        for b in 0 ..< g.blocks {
            var w0 = SIMD16<UInt32>(), w1 = SIMD16<UInt32>(), w2 = SIMD16<UInt32>(), w3 = SIMD16<UInt32>()
            for i in 0 ..< 4 where c0 + i < s.inChannels {
                let p = row[c0 + i]
                let shift = UInt32(8 * i)
                w0 |= byteBits(clampToByte(roundToEven(load(p, x0, 16) * q0.inverse) + q0.zeroF)) &<< shift
                w1 |= byteBits(clampToByte(roundToEven(load(p, x0 + 16, 16) * q1.inverse) + q1.zeroF)) &<< shift
                w2 |= byteBits(clampToByte(roundToEven(load(p, x0 + 32, 16) * q2.inverse) + q2.zeroF)) &<< shift
                w3 |= byteBits(clampToByte(roundToEven(load(p, x0 + 48, 16) * q3.inverse) + q3.zeroF)) &<< shift
            }
            let dst = tensor + b * g.planePixels
            store(w0, len: 16, into: dst, row: paddedRow, col: col)
            store(w1, len: 16, into: dst, row: paddedRow, col: col + 16)
            store(w2, len: 16, into: dst, row: paddedRow, col: col + 32)
            store(w3, len: 16, into: dst, row: paddedRow, col: col + 48)
            c0 += 4
        }
        @inline(__always) func storeParameters(_ q: (inverse: F, scale: F, zeroF: F, zero: SIMD16<Int32>), _ k: Int) {
            store(q.scale, len: 16, into: scales, row: paddedRow, col: col + 16 * k)
            store(q.zero, len: 16, into: zeros, row: paddedRow, col: col + 16 * k)
        }
        storeParameters(q0, 0); storeParameters(q1, 1); storeParameters(q2, 2); storeParameters(q3, 3)
    }

    /// Quantises `len` ≤ 16 pixels of one row (all channels) and stores them at padded position `at`.
    @inline(__always)
    func quantizeRun(_ row: Rows, x0: Int, len: Int, row paddedRow: Int, col: Int) {
        typealias F = SIMD16<Float>
        var lo = F(), hi = F()
        for c in 0 ..< s.inChannels {
            let v = load(row[c], x0, len)
            lo = lo.replacing(with: v, where: v .< lo)
            hi = hi.replacing(with: v, where: v .> hi)
        }
        let (inverse, pixelScale, zeroF, zero) = parameters(lo: lo, hi: hi)
        var c0 = 0
        for b in 0 ..< g.blocks {
            var word = SIMD16<UInt32>()
            for i in 0 ..< 4 where c0 + i < s.inChannels {
                let v = load(row[c0 + i], x0, len)
                let u = clampToByte(roundToEven(v * inverse) + zeroF)
                word |= byteBits(u) &<< UInt32(8 * i)
            }
            store(word, len: len, into: tensor + b * g.planePixels, row: paddedRow, col: col)
            c0 += 4
        }
        store(pixelScale, len: len, into: scales, row: paddedRow, col: col)
        store(zero, len: len, into: zeros, row: paddedRow, col: col)
    }

    /// Round to nearest, ties to even, for |v| < 2²² (every lane here: |x · inverse| ≤ 255 where the
    /// inverse is not 0; NaN stays NaN): adding 1.5·2²³ leaves no fraction bits. The stdlib's SIMD
    /// `rounded` and float→int conversions go through a generic per-lane loop; this is two vector adds.
    @inline(__always)
    func roundToEven(_ v: SIMD16<Float>) -> SIMD16<Float> {
        let magic = SIMD16<Float>(repeating: 12_582_912)
        return (v + magic) - magic
    }

    /// The integer value of lanes holding whole numbers in [0, 255], from the mantissa of v + 2²³.
    @inline(__always)
    func byteBits(_ v: SIMD16<Float>) -> SIMD16<UInt32> {
        unsafeBitCast(v + 8_388_608, to: SIMD16<UInt32>.self) & 0xFF
    }

    /// Lane-wise clamp to [0, 255]; NaN → 0 (as `U8PixelQuant.clampToByte`).
    @inline(__always)
    func clampToByte(_ v: SIMD16<Float>) -> SIMD16<Float> {
        let low = SIMD16<Float>(repeating: 0).replacing(with: v, where: v .> 0)
        return low.replacing(with: 255, where: low .> 255)
    }
}

/// The weight size up to which `conv2dQ8` walks output tiles outermost (see `Q8ComputeTask`): half the L2 of a
/// Cortex-A76 core, a quarter of this machine's.
enum Q8ConvTileMajor {
    static let weightBytes = 256 << 10
}

/// Worker t computes tasks [tasks·t/workers, tasks·(t+1)/workers) of (panel, tile). Small weights (at most
/// `Q8ConvTileMajor.weightBytes`) run panels innermost, so each tile's activations are read once from memory and
/// the weights stay in L2 — what 1×1 and few-channel layers at large images need (panel-major, the quantised
/// image, 16 MB for 256 channels at 256×256, was streamed once per panel: 16 times at 128 outputs). Larger weights
/// run tiles innermost, keeping one weight panel in L1 across its tiles. The order changes no arithmetic.
private struct Q8ComputeTask: ParallelTask {
    let s: Conv2DShape, g: Q8ConvGeometry
    let weights: Q8ConvWeights
    let image: Int
    let offsets: UnsafeMutablePointer<Int32>
    let scales: UnsafeMutablePointer<Float>, zeros: UnsafeMutablePointer<Int32>
    let tensor: UnsafePointer<UInt8>
    let tiles: UnsafeMutablePointer<Float>
    let bias: UnsafePointer<Float>?, channelBias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?
    let scale: Float
    let output: UnsafeMutablePointer<Float>
    let tasks: Int, workers: Int
    let kernel: Q8TileKernel

    func run(_ t: Int) {
        let tile = tiles + 128 * t
        let (ho, wo, o) = (s.outHeight, s.outWidth, s.outChannels)
        let rowTiles = (wo + 15) / 16
        let tileMajor = weights.panels * g.taps * g.blocks * 32 <= Q8ConvTileMajor.weightBytes
        for task in Threads.share(t, of: tasks, workers: workers) {
            let (panel, rest) = tileMajor ? (task % weights.panels, task / weights.panels) : (task / g.tilesPerPanel, task % g.tilesPerPanel)
            let (oy, x0) = g.flat ? (0, 0) : (rest / rowTiles, (rest % rowTiles) * 16)
            let position = g.flat ? rest * 16 : oy * g.gridWidth + x0
            let a = weights.values + panel * g.taps * g.blocks * 32
            let sums = weights.sums + panel * g.taps * 8
            let b = tensor + 4 * position
            let planeBytes = 4 * g.planePixels
            switch kernel {
            case .avx512vnni:
                edge_q8conv_8x16_avx512vnni(a, sums, b, planeBytes, g.blocks, offsets, g.taps, scales + position, zeros + position, tile)
            case .neondot:
                edge_q8conv_8x16_neondot(a, sums, b, planeBytes, g.blocks, offsets, g.taps, scales + position, zeros + position, tile)
            case .neonmlal:
                edge_q8conv_8x16_neonmlal(a, sums, b, planeBytes, g.blocks, offsets, g.taps, scales + position, zeros + position, tile)
            case .simd:
                q8ConvTile8x16SIMD(a: a, sums: sums, b: b, planeBytes: planeBytes, blocks: g.blocks, offsets: offsets, taps: g.taps,
                                   scales: scales + position, zeros: zeros + position, out: tile)
            }
            if g.flat {
                flatEpilogue(tile, panel: panel, position: position)
                continue
            }
            // Epilogue, in conv2dQ8Ref's order: ·wscale, +bias, +channelBias, +residual, ·scale.
            let len = min(16, wo - x0)
            for r in 0 ..< min(8, o - panel * 8) {
                let oc = panel * 8 + r
                var y = UnsafeRawPointer(tile + 16 * r).loadUnaligned(as: SIMD16<Float>.self) * weights.scales[oc]
                if let bias { y = y + bias[oc] }
                if let channelBias { y = y + channelBias[image * o + oc] }
                let at = ((image * o + oc) * ho + oy) * wo + x0
                if len == 16 {
                    if let residual { y = y + UnsafeRawPointer(residual + at).loadUnaligned(as: SIMD16<Float>.self) }
                    UnsafeMutableRawPointer(output + at).storeBytes(of: y * scale, as: SIMD16<Float>.self)
                } else {
                    for j in 0 ..< len {
                        var v = y[j]
                        if let residual { v = v + residual[at + j] }
                        output[at + j] = v * scale
                    }
                }
            }
        }
    }

    /// The epilogue of a flat tile: lane j is position P + j, output pixel (P+j) / Wp, (P+j) mod Wp (Wq at
    /// stride 2) when that column is < Wo and the row < Ho; other lanes are discarded.
    func flatEpilogue(_ tile: UnsafeMutablePointer<Float>, panel: Int, position: Int) {
        let (ho, wo, o) = (s.outHeight, s.outWidth, s.outChannels)
        for j in 0 ..< 16 {
            let oy = (position + j) / g.gridWidth, ox = (position + j) % g.gridWidth
            guard oy < ho, ox < wo else { continue }
            for r in 0 ..< min(8, o - panel * 8) {
                let oc = panel * 8 + r
                var y = tile[16 * r + j] * weights.scales[oc]
                if let bias { y = y + bias[oc] }
                if let channelBias { y = y + channelBias[image * o + oc] }
                let at = ((image * o + oc) * ho + oy) * wo + ox
                if let residual { y = y + residual[at] }
                output[at] = y * scale
            }
        }
    }
}
