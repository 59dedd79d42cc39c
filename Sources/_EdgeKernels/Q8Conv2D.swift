import _EdgeCore
import _EdgeQuant
import _EdgeMicrokernels

/// Which int8 tile kernel runs `conv2dQ8`. All three give bit-identical results.
public enum Q8TileKernel: String, Sendable, CaseIterable {
    /// `Q8Conv_8x16_AVX512VNNI` (C, `vpdpbusd`): x86-64 with AVX512-VNNI.
    case avx512vnni
    /// `Q8Conv_8x16_NEONDOT` (C, `sdot`): ARMv8.2 with the dot product extension (Cortex-A76, Pi 5).
    case neondot
    /// `Q8Conv_8x16_SIMD16` (Swift SIMD, widening multiplies): anywhere; slower than the fp32 path, so the
    /// UNet uses int8 activations only where a dot-product kernel exists.
    case simd

    /// The dot-product kernel this CPU supports, checked at run time, or nil.
    public static let dotProduct: Q8TileKernel? = {
        if edge_cpu_has_avx512vnni() != 0 { return .avx512vnni }
        if edge_cpu_has_dotprod() != 0 { return .neondot }
        return nil
    }()

    /// Whether this CPU can run the kernel.
    public var isSupported: Bool { self == .simd || self == Self.dotProduct }
}

/// int8 convolution, stride 1: int8 per-row weights (`Q8ConvWeights`, packed at load) × activations quantised
/// on the fly to u8 per pixel (`U8PixelQuant`), int32 sums per tap, fp32 epilogue. Bit-identical to
/// `conv2dQ8Ref`:
///
///     out[n,o,y,x] = ((Σ_t scale_p·(Σ_c W·u − zero_p·Σ_c W)) · wscale[o] + bias[o] + channelBias[n,o] + residual) · scale
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
/// Contract: input [N, C, H, W] (upsampled: [N, C, H/2, W/2] with H, W even), output / residual [N, O, Ho, Wo],
/// channelBias [N, O]; scratch `conv2dQ8ScratchBytes(shape, threads:)` bytes, any alignment. Reads only inside
/// the operands; output must not alias input. Results do not depend on the thread count or the kernel.
public func conv2dQ8(_ s: Conv2DShape, upsampledInput: Bool = false, input: UnsafePointer<Float>, weights: Q8ConvWeights,
                     bias: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>? = nil,
                     scale: Float = 1, channelBias: UnsafePointer<Float>? = nil, scratch: UnsafeMutableRawPointer, threads: Threads,
                     kernel: Q8TileKernel? = nil) {
    precondition(conv2dQ8Supports(s), "conv2dQ8: unsupported shape \(s)")
    precondition(weights.rows == s.outChannels && weights.channels == s.inChannels && weights.kernel == s.kernel)
    precondition(!upsampledInput || (s.height % 2 == 0 && s.width % 2 == 0))
    let kernel = kernel ?? Q8TileKernel.dotProduct ?? .simd
    precondition(kernel.isSupported, "conv2dQ8: \(kernel) is not supported on this CPU")
    let g = Q8ConvGeometry(s, threads: threads)
    let base = UnsafeMutableRawPointer(bitPattern: (Int(bitPattern: scratch) + 63) & ~63)!
    let offsets = base.bindMemory(to: Int32.self, capacity: g.taps)
    for ky in 0 ..< s.kernel { for kx in 0 ..< s.kernel { offsets[ky * s.kernel + kx] = Int32(ky * g.paddedWidth + kx) } }
    let scales = (base + g.scalesAt).bindMemory(to: Float.self, capacity: g.planePixels)
    let zeros = (base + g.zerosAt).bindMemory(to: Int32.self, capacity: g.planePixels)
    let tensor = (base + g.tensorAt).bindMemory(to: UInt32.self, capacity: g.blocks * g.planePixels)
    let tiles = (base + g.tilesAt).bindMemory(to: Float.self, capacity: 128 * threads.count)
    let (sourceH, sourceW) = upsampledInput ? (s.height / 2, s.width / 2) : (s.height, s.width)
    for n in 0 ..< s.batch {
        let quantize = QuantizeTask(s: s, g: g, upsampled: upsampledInput, input: input + n * s.inChannels * sourceH * sourceW,
                                    scales: scales, zeros: zeros, tensor: tensor, workers: min(threads.count, s.height))
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

/// Whether `conv2dQ8` handles the shape: stride 1, and int32 sums that cannot overflow
/// (|Σ_c W·u| ≤ 127·255·C < 2³¹ needs C ≤ 66 000; bounded well below).
public func conv2dQ8Supports(_ s: Conv2DShape) -> Bool {
    s.stride == 1 && s.inChannels >= 1 && s.inChannels <= 16_384 && s.kernel >= 1 && s.outHeight >= 1 && s.outWidth >= 1
}

/// Scratch bytes for `conv2dQ8` (one image's quantised copy, its per-position parameters, one output tile
/// per thread).
public func conv2dQ8ScratchBytes(_ s: Conv2DShape, threads: Threads) -> Int {
    let g = Q8ConvGeometry(s, threads: threads)
    return g.tilesAt + 128 * 4 * threads.count + 64
}

/// Where everything of one image lives in the scratch, and the padded grid's geometry.
struct Q8ConvGeometry {
    let taps: Int, blocks: Int
    let paddedWidth: Int, paddedHeight: Int
    /// Positions per channel-block plane: the padded grid plus what the last tile of the last row may read
    /// past it ((Hp − 1)·Wp + ⌈Wo/16⌉·16 + k − 1 ≥ Hp·Wp).
    let planePixels: Int
    /// Tiles per 8-channel panel, and whether they run over the flattened grid instead of row by row.
    let tilesPerPanel: Int, flat: Bool
    let scalesAt: Int, zerosAt: Int, tensorAt: Int, tilesAt: Int

    init(_ s: Conv2DShape, threads: Threads) {
        taps = s.kernel * s.kernel
        blocks = (s.inChannels + 3) / 4
        paddedWidth = s.width + s.padLeft + s.padRight
        paddedHeight = s.height + s.padTop + s.padBottom
        let rowTiles = s.outHeight * ((s.outWidth + 15) / 16), flatTiles = (s.outHeight * paddedWidth + 15) / 16
        flat = flatTiles < rowTiles
        tilesPerPanel = flat ? flatTiles : rowTiles
        // The last flat tile starts below Ho·Wp and reads 16 positions plus the largest tap offset (k−1)·Wp + k−1.
        planePixels = max(paddedHeight * paddedWidth + 16 + s.kernel,
                          (paddedHeight - 1) * paddedWidth + (s.outWidth + 15) / 16 * 16 + s.kernel - 1)
        scalesAt = roundUp64(taps * 4)
        zerosAt = scalesAt + roundUp64(planePixels * 4)
        tensorAt = zerosAt + roundUp64(planePixels * 4)
        tilesAt = tensorAt + roundUp64(blocks * planePixels * 4)
    }
}

/// Quantises rows [H·t/workers, H·(t+1)/workers) of one image and zeroes the padding around them (worker 0
/// also the top border, the last worker the bottom border and the slack).
private struct QuantizeTask: ParallelTask {
    let s: Conv2DShape, g: Q8ConvGeometry
    let upsampled: Bool
    let input: UnsafePointer<Float>
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
        if t == 0 { clear(from: 0, count: s.padTop * wp) }
        if t == workers - 1 { clear(from: (s.padTop + h) * wp, count: g.planePixels - (s.padTop + h) * wp) }
        let (sw, plane) = upsampled ? (w / 2, (h / 2) * (w / 2)) : (w, h * w)
        for y in rows {
            let rowStart = (y + s.padTop) * wp
            clear(from: rowStart, count: s.padLeft)
            clear(from: rowStart + s.padLeft + w, count: s.padRight)
            let sourceRow = input + (upsampled ? y / 2 : y) * sw
            var x0 = 0
            // 64 pixels per pass over the channels where the row allows: every channel's four vectors are one
            // contiguous 256-byte run, so the walk down the channel planes (a new page per channel at large
            // images) is paid once per 64 pixels instead of per 16.
            while x0 + 64 <= w {
                quantizeRun64(sourceRow, plane: plane, x0: x0, at: rowStart + s.padLeft + x0)
                x0 += 64
            }
            while x0 < w {
                let len = min(16, w - x0)
                quantizeRun(sourceRow, plane: plane, x0: x0, len: len, at: rowStart + s.padLeft + x0)
                x0 += 16
            }
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

    /// `quantizeRun` for 64 pixels (four groups of 16, each with the same arithmetic as there).
    @inline(__always)
    func quantizeRun64(_ row: UnsafePointer<Float>, plane: Int, x0: Int, at: Int) {
        typealias F = SIMD16<Float>
        var lo0 = F(), hi0 = F(), lo1 = F(), hi1 = F(), lo2 = F(), hi2 = F(), lo3 = F(), hi3 = F()
        for c in 0 ..< s.inChannels {
            let p = row + c * plane
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
                let p = row + (c0 + i) * plane
                let shift = UInt32(8 * i)
                w0 |= byteBits(clampToByte(roundToEven(load(p, x0, 16) * q0.inverse) + q0.zeroF)) &<< shift
                w1 |= byteBits(clampToByte(roundToEven(load(p, x0 + 16, 16) * q1.inverse) + q1.zeroF)) &<< shift
                w2 |= byteBits(clampToByte(roundToEven(load(p, x0 + 32, 16) * q2.inverse) + q2.zeroF)) &<< shift
                w3 |= byteBits(clampToByte(roundToEven(load(p, x0 + 48, 16) * q3.inverse) + q3.zeroF)) &<< shift
            }
            let dst = UnsafeMutableRawPointer(tensor + b * g.planePixels + at)
            dst.storeBytes(of: w0, as: SIMD16<UInt32>.self)
            dst.storeBytes(of: w1, toByteOffset: 64, as: SIMD16<UInt32>.self)
            dst.storeBytes(of: w2, toByteOffset: 128, as: SIMD16<UInt32>.self)
            dst.storeBytes(of: w3, toByteOffset: 192, as: SIMD16<UInt32>.self)
            c0 += 4
        }
        @inline(__always) func store(_ q: (inverse: F, scale: F, zeroF: F, zero: SIMD16<Int32>), _ k: Int) {
            UnsafeMutableRawPointer(scales + at + 16 * k).storeBytes(of: q.scale, as: F.self)
            UnsafeMutableRawPointer(zeros + at + 16 * k).storeBytes(of: q.zero, as: SIMD16<Int32>.self)
        }
        store(q0, 0); store(q1, 1); store(q2, 2); store(q3, 3)
    }

    /// Quantises `len` ≤ 16 pixels of one row (all channels) and stores them at padded position `at`.
    @inline(__always)
    func quantizeRun(_ row: UnsafePointer<Float>, plane: Int, x0: Int, len: Int, at: Int) {
        typealias F = SIMD16<Float>
        var lo = F(), hi = F()
        for c in 0 ..< s.inChannels {
            let v = load(row + c * plane, x0, len)
            lo = lo.replacing(with: v, where: v .< lo)
            hi = hi.replacing(with: v, where: v .> hi)
        }
        let (inverse, pixelScale, zeroF, zero) = parameters(lo: lo, hi: hi)
        var c0 = 0
        for b in 0 ..< g.blocks {
            var word = SIMD16<UInt32>()
            for i in 0 ..< 4 where c0 + i < s.inChannels {
                let v = load(row + (c0 + i) * plane, x0, len)
                let u = clampToByte(roundToEven(v * inverse) + zeroF)
                word |= byteBits(u) &<< UInt32(8 * i)
            }
            let dst = tensor + b * g.planePixels + at
            if len == 16 { UnsafeMutableRawPointer(dst).storeBytes(of: word, as: SIMD16<UInt32>.self) } else { for j in 0 ..< len { dst[j] = word[j] } }
            c0 += 4
        }
        if len == 16 {
            UnsafeMutableRawPointer(scales + at).storeBytes(of: pixelScale, as: F.self)
            UnsafeMutableRawPointer(zeros + at).storeBytes(of: zero, as: SIMD16<Int32>.self)
        } else {
            for j in 0 ..< len { scales[at + j] = pixelScale[j]; zeros[at + j] = zero[j] }
        }
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
    let bias: UnsafePointer<Float>, channelBias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?
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
            let position = g.flat ? rest * 16 : oy * g.paddedWidth + x0
            let a = weights.values + panel * g.taps * g.blocks * 32
            let sums = weights.sums + panel * g.taps * 8
            let b = tensor + 4 * position
            let planeBytes = 4 * g.planePixels
            switch kernel {
            case .avx512vnni:
                edge_q8conv_8x16_avx512vnni(a, sums, b, planeBytes, g.blocks, offsets, g.taps, scales + position, zeros + position, tile)
            case .neondot:
                edge_q8conv_8x16_neondot(a, sums, b, planeBytes, g.blocks, offsets, g.taps, scales + position, zeros + position, tile)
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
                y = y + bias[oc]
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

    /// The epilogue of a flat tile: lane j is padded position P + j, output pixel (P+j) / Wp, (P+j) mod Wp
    /// when that column is < Wo and the row < Ho; other lanes are discarded.
    func flatEpilogue(_ tile: UnsafeMutablePointer<Float>, panel: Int, position: Int) {
        let (ho, wo, o) = (s.outHeight, s.outWidth, s.outChannels)
        for j in 0 ..< 16 {
            let oy = (position + j) / g.paddedWidth, ox = (position + j) % g.paddedWidth
            guard oy < ho, ox < wo else { continue }
            for r in 0 ..< min(8, o - panel * 8) {
                let oc = panel * 8 + r
                var y = tile[16 * r + j] * weights.scales[oc]
                y = y + bias[oc]
                if let channelBias { y = y + channelBias[image * o + oc] }
                let at = ((image * o + oc) * ho + oy) * wo + ox
                if let residual { y = y + residual[at] }
                output[at] = y * scale
            }
        }
    }
}
