import _EdgeCore
import _EdgeQuant

// Winograd fp32 3×3 convolution over NCHW tensors: `conv2dWinogradF32`, its weight transform and scratch size.
//
// The algorithm (`WinogradTile`): the output is cut into m×m tiles; tiles are processed in chunks, and each
// chunk in three phases, each split over the threads:
//   1. input transform: every (input channel, block of NR tiles) patch set d → V = Bᵀ d B, written straight in
//      the GEMM's packed-B layout (NR tiles in the lanes of a vector);
//   2. α² independent products M_ξ[O, tiles] = U_ξ[O, I] · V_ξ[I, tiles] on the fp32 GEMM microkernels, U_ξ being
//      the transformed weights packed as A panels;
//   3. output transform: Y = Aᵀ M A per (output channel, block of tiles), with the bias, per-image channel bias,
//      residual and scale, scattered into the output (tiles past the image edge clipped).
// The transforms run NR tiles at a time as vectors (one tile per lane), so their constants are scalar operands.
//
// Layouts (floats):
//   U  [α²][⌈O/8⌉][I][8]        transformed weights, ξ-major; panel p holds output channels 8p ..< 8p + 8
//   V  [α²][blocks][I][NR]       one chunk's transformed input; block b holds the chunk's tiles b·NR ..< b·NR + NR
//   M  [α²][O][blocks·NR]        one chunk's products (row-major, one row per output channel)
//   (V and M pad each ξ's matrix by 16 floats: see `WinogradPlan.vXiStride`)
// Tiles are numbered image-major, then row-major within an image (a block may straddle two images).

/// Floats of a layer's transformed weights (`packWinogradWeightsF32`): α² · roundUp(O, 8) · I.
public func winogradWeightsF32Count(_ tile: WinogradTile, outChannels: Int, inChannels: Int) -> Int {
    tile.inputSide * tile.inputSide * roundUp(max(outChannels, 0), 8) * inChannels
}

/// `winogradWeightsF32Count` floats in bytes, rounded up to 64 (so consecutive layers start on cache lines).
public func winogradWeightsF32Bytes(_ tile: WinogradTile, outChannels: Int, inChannels: Int) -> Int {
    roundUp64(winogradWeightsF32Count(tile, outChannels: outChannels, inChannels: inChannels) * MemoryLayout<Float>.stride)
}

/// Transforms a 3×3 convolution's weights (O rows of I·9, any `WeightMatrix` type, dequantised exactly as
/// `WeightMatrix.dequantizeRow`) into U = G g Gᵀ for every (o, i), in the layout `conv2dWinogradF32` reads:
/// [α²][⌈O/8⌉][I][8], output channels past O zero. `into` holds `winogradWeightsF32Count` floats; `scratch`
/// `winogradWeightTransformScratchBytes` bytes. Done once at load, or per call inside `conv2dWinogradF32`.
public func packWinogradWeightsF32(_ tile: WinogradTile, _ weight: WeightMatrix, inChannels: Int, into packed: UnsafeMutablePointer<Float>,
                                   scratch: UnsafeMutableRawPointer, threads: Threads) {
    precondition(weight.columns == inChannels * 9, "Winograd weights are 3×3: \(weight.columns) columns for \(inChannels) channels")
    let panels = (weight.rows + 7) / 8
    if panels == 0 || inChannels == 0 { return }
    let workers = min(threads.count, panels)
    let base = alignedFloats(scratch)
    threads.parallelFor(workers, WinogradWeightTask(tile: tile, weight: weight, inChannels: inChannels, packed: packed,
                                                    panelBuffer: base, workers: workers))
}

/// Scratch of `packWinogradWeightsF32` for `threads`: one direct-packed weight panel (I·9·8 floats) per thread.
public func winogradWeightTransformScratchBytes(inChannels: Int, threads: Threads) -> Int {
    inChannels * 9 * 8 * MemoryLayout<Float>.stride * threads.count + 64
}

private struct WinogradWeightTask: ParallelTask {
    let tile: WinogradTile
    let weight: WeightMatrix
    let inChannels: Int
    let packed: UnsafeMutablePointer<Float>
    let panelBuffer: UnsafeMutablePointer<Float>
    let workers: Int

    func run(_ t: Int) {
        let panels = (weight.rows + 7) / 8
        let k = inChannels * 9
        let buffer = panelBuffer + t * k * 8
        let a = tile.inputSide
        tile.filterTransform.withUnsafeBufferPointer { gt in
            let g = gt.baseAddress!
            for p in Threads.share(t, of: panels, workers: workers) {
                // The direct-conv panel: [i·9 + ky·3 + kx][8 output channels].
                packAPanel(.weights(weight), m: weight.rows, k: k, panel: p, into: buffer)
                for i in 0 ..< inChannels {
                    transformFilter8(a: a, g: g, filter: buffer + i * 72, into: packed + (p * inChannels + i) * 8,
                                     xiStride: panels * inChannels * 8)
                }
            }
        }
    }
}

/// U = G w Gᵀ for 8 output channels at once (one per lane): `filter` is [9][8] (tap-major), U[ξ] is stored at
/// into + ξ·xiStride (8 floats).
@inline(__always)
private func transformFilter8(a: Int, g: UnsafePointer<Float>, filter: UnsafePointer<Float>, into: UnsafeMutablePointer<Float>, xiStride: Int) {
    typealias V = SIMD8<Float>
    @inline(__always) func w(_ ky: Int, _ kx: Int) -> V { UnsafeRawPointer(filter + (ky * 3 + kx) * 8).loadUnaligned(as: V.self) }
    let w00 = w(0, 0), w01 = w(0, 1), w02 = w(0, 2), w10 = w(1, 0), w11 = w(1, 1), w12 = w(1, 2), w20 = w(2, 0), w21 = w(2, 1), w22 = w(2, 2)
    for r in 0 ..< a {
        let (g0, g1, g2) = (g[r * 3], g[r * 3 + 1], g[r * 3 + 2])
        // Row r of G w: (G w)[r, kx] = Σ_ky G[r, ky] w[ky, kx].
        let t0 = g0 * w00 + g1 * w10 + g2 * w20
        let t1 = g0 * w01 + g1 * w11 + g2 * w21
        let t2 = g0 * w02 + g1 * w12 + g2 * w22
        for c in 0 ..< a {
            let u = g[c * 3] * t0 + g[c * 3 + 1] * t1 + g[c * 3 + 2] * t2
            UnsafeMutableRawPointer(into + (r * a + c) * xiStride).storeBytes(of: u, as: V.self)
        }
    }
}

/// How `conv2dWinogradF32` cuts a layer into chunks of tiles and where its scratch goes.
struct WinogradPlan {
    /// Bytes of V + M per chunk that the plan aims for: large enough that the weights (re-read once per chunk)
    /// are amortised over many tiles, small enough to stay in the last-level cache.
    static let chunkBudgetBytes = 4 << 20

    let tile: WinogradTile
    let nr: Int
    let tilesY: Int, tilesX: Int, tilesPerImage: Int, totalTiles: Int
    /// Tiles per chunk (a multiple of nr) and NR-blocks per chunk.
    let chunkTiles: Int, blocks: Int
    let weightFloats: Int      // 0 when the weights come pre-transformed
    /// Floats from one ξ to the next in V and in M: the matrix plus 16 floats, so that the α² vectors one tile
    /// transform reads or writes do not fall in one cache set (unpadded, these strides are often powers of two).
    let vXiStride: Int, mXiStride: Int
    let vFloats: Int, mFloats: Int
    let stageFloats: Int       // per worker: the staging of one group of 8 tiles (see the block functions)
    let panelFloats: Int       // per worker, per-call weight transform only: one direct panel, I·9·8

    init(_ tile: WinogradTile, _ s: Conv2DShape, nr: Int, pretransformed: Bool) {
        self.tile = tile
        self.nr = nr
        let a2 = tile.inputSide * tile.inputSide
        (tilesY, tilesX) = tile.tiles(s)
        tilesPerImage = tilesY * tilesX
        totalTiles = s.batch * tilesPerImage
        let perTile = a2 * (s.inChannels + s.outChannels) * MemoryLayout<Float>.stride
        let wanted = max(nr, Self.chunkBudgetBytes / max(perTile, 1))
        chunkTiles = roundUp(min(roundUp(totalTiles, nr), wanted), nr)
        blocks = chunkTiles / nr
        weightFloats = pretransformed ? 0 : roundUp(winogradWeightsF32Count(tile, outChannels: s.outChannels, inChannels: s.inChannels), 16)
        vXiStride = s.inChannels * chunkTiles + 16
        mXiStride = s.outChannels * chunkTiles + 16
        vFloats = a2 * vXiStride
        mFloats = a2 * mXiStride
        stageFloats = 2048
        panelFloats = pretransformed ? 0 : s.inChannels * 9 * 8
    }

    var chunks: Int { (totalTiles + chunkTiles - 1) / chunkTiles }
    var workerFloats: Int { stageFloats + panelFloats }
    func bytes(threads: Int) -> Int {
        (weightFloats + vFloats + mFloats + workerFloats * max(threads, 1)) * MemoryLayout<Float>.stride + 64
    }
}

/// Bytes of scratch `conv2dWinogradF32` needs for `shape` on `threads` with the GEMM tile `gemmTile` (whose NR
/// sets the lanes per block): one chunk of transformed input and products, per-thread staging, and, unless the
/// call passes weights transformed by `packWinogradWeightsF32` (`pretransformed`), the layer's transformed weights.
public func conv2dWinogradF32ScratchBytes(_ tile: WinogradTile, _ shape: Conv2DShape, threads: Threads, pretransformed: Bool,
                                          gemmTile: F32GemmTile = .native) -> Int {
    WinogradPlan(tile, shape, nr: gemmTile.nr, pretransformed: pretransformed).bytes(threads: threads.count)
}

/// Winograd 3×3 stride-1 convolution, fp32 (`WinogradTile` gives the maths; the phases are described above):
///
///     out[n, o, y, x] = (bias[o] + channelBias[n, o] + Σ_{i, ky, kx} W[o, i, ky, kx] · in[n, i, y + ky − padTop, x + kx − padLeft]
///                        + residual[n, o, y, x]) · scale
///
/// computed as `conv2dWinogradRef` computes it, up to fp32 summation order in the products over I (see
/// `docs/KERNELS.md`). Same arguments as `conv2dF32`, plus:
/// - tile: F(2×2,3×3), F(4×4,3×3) or F(6×6,3×3).
/// - transformedWeight: nil (the weights are transformed per call into scratch, from any `WeightMatrix` type), or
///   `weight` transformed once by `packWinogradWeightsF32` (then pass `pretransformed: true` to the scratch size).
/// - upsampledInput: `shape`'s height and width are those of the 2× nearest-upsampled image and `input` holds
///   the half-size image, as for `conv2dF32`.
/// - residual may alias output (each element is read just before it is written); input must not.
/// Results are bitwise independent of the thread count, of the chunking and of `gemmTile`.
public func conv2dWinogradF32(_ tile: WinogradTile, _ shape: Conv2DShape, upsampledInput: Bool = false, input: UnsafePointer<Float>,
                              weight: WeightMatrix, transformedWeight: UnsafePointer<Float>? = nil, bias: UnsafePointer<Float>?,
                              output: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>? = nil, scale: Float = 1,
                              channelBias: UnsafePointer<Float>? = nil, scratch: UnsafeMutableRawPointer, threads: Threads,
                              gemmTile: F32GemmTile = .native) {
    let s = shape
    precondition(WinogradTile.supports(s), "Winograd needs a 3×3 stride-1 convolution")
    precondition(weight.rows == s.outChannels && weight.columns == s.fanIn,
                 "weight is \(weight.rows)×\(weight.columns), conv needs \(s.outChannels)×\(s.fanIn)")
    precondition(!upsampledInput || (s.height % 2 == 0 && s.width % 2 == 0), "an upsampled input has even height and width")
    if s.batch == 0 || s.outChannels == 0 { return }
    let plan = WinogradPlan(tile, s, nr: gemmTile.nr, pretransformed: transformedWeight != nil)
    let base = alignedFloats(scratch)
    let v = base + plan.weightFloats
    let m = v + plan.vFloats
    let workerBase = m + plan.mFloats
    let u: UnsafePointer<Float>
    if let transformedWeight {
        u = transformedWeight
    } else {
        // The per-thread areas (threads × (staging + one I·9·8 panel)) are the weight transform's scratch.
        packWinogradWeightsF32(tile, weight, inChannels: s.inChannels, into: base, scratch: UnsafeMutableRawPointer(workerBase), threads: threads)
        u = UnsafePointer(base)
    }
    let geometry = WinogradGeometry(shape: s, upsampled: upsampledInput, plan: plan)
    let a2 = tile.inputSide * tile.inputSide
    for chunk in 0 ..< plan.chunks {
        let first = chunk * plan.chunkTiles
        let input = WinogradInputTask(g: geometry, input: input, v: v, workerBase: workerBase, firstTile: first,
                                      workers: min(threads.count, s.inChannels * plan.blocks))
        threads.parallelFor(input.workers, input)
        let gemm = WinogradGemmTask(g: geometry, u: u, v: UnsafePointer(v), m: m, gemmTile: gemmTile,
                                    workers: min(threads.count, a2 * plan.blocks))
        threads.parallelFor(gemm.workers, gemm)
        let out = WinogradOutputTask(g: geometry, m: UnsafePointer(m), workerBase: workerBase, firstTile: first, bias: bias,
                                     channelBias: channelBias, residual: residual, scale: scale, output: output,
                                     workers: min(threads.count, s.outChannels * plan.blocks))
        threads.parallelFor(out.workers, out)
    }
}


/// What every phase needs to know about the layer.
struct WinogradGeometry {
    let s: Conv2DShape
    let upsampled: Bool
    let plan: WinogradPlan
    init(shape: Conv2DShape, upsampled: Bool, plan: WinogradPlan) {
        self.s = shape
        self.upsampled = upsampled
        self.plan = plan
    }
}

// MARK: - Phase 1: input transform

private struct WinogradInputTask: ParallelTask {
    let g: WinogradGeometry
    let input: UnsafePointer<Float>
    let v: UnsafeMutablePointer<Float>
    let workerBase: UnsafeMutablePointer<Float>
    let firstTile: Int
    let workers: Int

    func run(_ t: Int) {
        let stage = workerBase + t * g.plan.workerFloats
        for item in Threads.share(t, of: g.s.inChannels * g.plan.blocks, workers: workers) {
            let block = item % g.plan.blocks, channel = item / g.plan.blocks
            switch g.plan.tile {
            case .f2x3: winogradInputBlock(F32WinogradF2x3SIMD8.self, g, input: input, channel: channel, block: block, firstTile: firstTile, stage: stage, v: v)
            case .f4x3: winogradInputBlock(F32WinogradF4x3SIMD8.self, g, input: input, channel: channel, block: block, firstTile: firstTile, stage: stage, v: v)
            case .f6x3: winogradInputBlock(F32WinogradF6x3SIMD8.self, g, input: input, channel: channel, block: block, firstTile: firstTile, stage: stage, v: v)
            }
        }
    }
}

/// dst[0 ..< count] = row iy of `plane` from column x0 on, zero outside the image (rows and columns in the
/// coordinates of the possibly upsampled image).
@inline(__always)
private func copyClippedRow(_ g: WinogradGeometry, plane: UnsafePointer<Float>, iy: Int, x0: Int, count: Int, into dst: UnsafeMutablePointer<Float>) {
    let (h, w) = (g.s.height, g.s.width)
    if iy < 0 || iy >= h { zeroFloats(dst, count); return }
    let row = plane + (g.upsampled ? (iy >> 1) * (w / 2) : iy * w)
    let lo = min(count, max(0, -x0)), hi = max(lo, min(count, w - x0))
    zeroFloats(dst, lo)
    if g.upsampled { copyUpsampled(row, x0 + lo, dst + lo, hi - lo) } else { copyFloats(row + x0 + lo, dst + lo, hi - lo) }
    zeroFloats(dst + hi, count - hi)
}

/// The first tile of a group of 8 and whether the 8 are consecutive tiles of one tile row of one image.
@inline(__always)
private func winogradGroup(_ plan: WinogradPlan, firstTile t0: Int) -> (image: Int, ty: Int, tx: Int, oneRow: Bool) {
    let n = t0 / plan.tilesPerImage, r = t0 % plan.tilesPerImage
    let ty = r / plan.tilesX, tx = r % plan.tilesX
    return (n, ty, tx, t0 + 8 <= plan.totalTiles && tx + 8 <= plan.tilesX)
}

/// Gathers the α×α patches of input channel `channel` for the NR tiles of `block` (8 at a time, one tile per
/// lane; zeros outside the image and for tiles past the last), then V = Bᵀ d B, stored into
/// V[ξ][block][channel][NR]. Patch rows are loaded as vectors and transposed into lanes: for 8 tiles of one
/// tile row, straight from one copied input row segment; otherwise tile by tile.
@inline(__always)
private func winogradInputBlock<T: F32WinogradTransforms>(_: T.Type, _ g: WinogradGeometry, input: UnsafePointer<Float>, channel: Int,
                                                          block: Int, firstTile: Int, stage: UnsafeMutablePointer<Float>,
                                                          v: UnsafeMutablePointer<Float>) {
    let plan = g.plan, s = g.s
    let (m, a) = (T.tile.outputSide, T.tile.inputSide)
    let lanes = stage            // [lane < 8][row < 8][8]: one tile's patch rows (general path)
    let row = stage + 512        // [7m + 8]: one input row segment under 8 tiles (one-row path)
    let d = stage + 576          // [y < α][x < 8][lane < 8]
    let temp = stage + 1088      // [y < α][ξx < α][lane < 8]
    let plane = s.height * s.width / (g.upsampled ? 4 : 1)
    let xiStride = plan.vXiStride
    for half in 0 ..< plan.nr / 8 {
        let t0 = firstTile + block * plan.nr + half * 8
        let group = winogradGroup(plan, firstTile: t0)
        if group.oneRow {
            let source = input + (group.image * s.inChannels + channel) * plane
            let y0 = group.ty * m - s.padTop, x0 = group.tx * m - s.padLeft
            for y in 0 ..< a {
                copyClippedRow(g, plane: source, iy: y0 + y, x0: x0, count: 7 * m + 8, into: row)
                storeTransposed8x8(winogradLoad(row), winogradLoad(row + m), winogradLoad(row + 2 * m), winogradLoad(row + 3 * m),
                                   winogradLoad(row + 4 * m), winogradLoad(row + 5 * m), winogradLoad(row + 6 * m), winogradLoad(row + 7 * m),
                                   d + y * 64)
            }
        } else {
            for lane in 0 ..< 8 {
                let t = t0 + lane
                if t >= plan.totalTiles { zeroFloats(lanes + lane * 64, 64); continue }
                let n = t / plan.tilesPerImage, r = t % plan.tilesPerImage
                let source = input + (n * s.inChannels + channel) * plane
                let y0 = (r / plan.tilesX) * m - s.padTop, x0 = (r % plan.tilesX) * m - s.padLeft
                for y in 0 ..< a { copyClippedRow(g, plane: source, iy: y0 + y, x0: x0, count: 8, into: lanes + (lane * 8 + y) * 8) }
            }
            for y in 0 ..< a {
                @inline(__always) func l(_ lane: Int) -> WinogradVector { winogradLoad(lanes + (lane * 8 + y) * 8) }
                storeTransposed8x8(l(0), l(1), l(2), l(3), l(4), l(5), l(6), l(7), d + y * 64)
            }
        }
        // Along x, then along y.
        for y in 0 ..< a { T.input(d + y * 64, 8, temp + y * a * 8, 8) }
        let out = v + (block * s.inChannels + channel) * plan.nr + half * 8
        for xi in 0 ..< a { T.input(temp + xi * 8, a * 8, out + xi * xiStride, a * xiStride) }
    }
}

// MARK: - Phase 2: the α² products

private struct WinogradGemmTask: ParallelTask {
    let g: WinogradGeometry
    let u: UnsafePointer<Float>
    let v: UnsafePointer<Float>
    let m: UnsafeMutablePointer<Float>
    let gemmTile: F32GemmTile
    let workers: Int

    func run(_ t: Int) {
        let plan = g.plan
        let (o, i) = (g.s.outChannels, g.s.inChannels)
        let nr = plan.nr
        let panels = (o + 7) / 8
        let a2 = plan.tile.inputSide * plan.tile.inputSide
        let kBlocks = F32GemmKBlocks(k: i)
        let ldm = plan.chunkTiles
        for item in Threads.share(t, of: a2 * plan.blocks, workers: workers) {
            let xi = item / plan.blocks, block = item % plan.blocks
            let uXi = u + xi * panels * i * 8
            let vBlock = v + xi * plan.vXiStride + block * i * nr
            let mXi = m + xi * plan.mXiStride + block * nr
            for kb in 0 ..< kBlocks.count {
                let k0 = kb * kBlocks.size
                let kc = min(kBlocks.size, i - k0)
                for p in 0 ..< panels {
                    callMicrokernel(gemmTile, kc: kc, a: uXi + (p * i + k0) * 8, b: vBlock + k0 * nr, c: mXi + p * 8 * ldm, ldc: ldm,
                                    rows: min(8, o - p * 8), columns: nr, accumulate: kb > 0, bias: nil, residual: nil, scale: 1)
                }
            }
        }
    }
}

// MARK: - Phase 3: output transform and epilogue

private struct WinogradOutputTask: ParallelTask {
    let g: WinogradGeometry
    let m: UnsafePointer<Float>
    let workerBase: UnsafeMutablePointer<Float>
    let firstTile: Int
    let bias: UnsafePointer<Float>?
    let channelBias: UnsafePointer<Float>?
    let residual: UnsafePointer<Float>?
    let scale: Float
    let output: UnsafeMutablePointer<Float>
    let workers: Int

    func run(_ t: Int) {
        let stage = workerBase + t * g.plan.workerFloats
        for item in Threads.share(t, of: g.s.outChannels * g.plan.blocks, workers: workers) {
            let block = item % g.plan.blocks, channel = item / g.plan.blocks
            switch g.plan.tile {
            case .f2x3: winogradOutputBlock(F32WinogradF2x3SIMD8.self, self, channel: channel, block: block, stage: stage)
            case .f4x3: winogradOutputBlock(F32WinogradF4x3SIMD8.self, self, channel: channel, block: block, stage: stage)
            case .f6x3: winogradOutputBlock(F32WinogradF6x3SIMD8.self, self, channel: channel, block: block, stage: stage)
            }
        }
    }
}

/// Y = Aᵀ M A for output channel `channel` over the NR tiles of `block`, 8 at a time, then the epilogue
/// (+ bias + channel bias, + residual, · scale) and the store, clipped at the image edge. For 8 tiles of one tile
/// row the output rows are transposed out of the lanes into one contiguous segment and finished as vectors;
/// otherwise tile by tile.
@inline(__always)
private func winogradOutputBlock<T: F32WinogradTransforms>(_: T.Type, _ task: WinogradOutputTask, channel: Int, block: Int,
                                                           stage: UnsafeMutablePointer<Float>) {
    let g = task.g, plan = g.plan, s = g.s
    let (m, a) = (T.tile.outputSide, T.tile.inputSide)
    let temp = stage             // [ξy < α][c < m][lane < 8]
    let y = stage + 512          // [r < m][c < 8][lane < 8] (c ≥ m unused)
    let lanes = stage + 1024     // [lane < 8][c < 8]
    let segment = stage + 1088   // [8m + 8]: one output row under 8 tiles
    let (ho, wo) = (s.outHeight, s.outWidth)
    let xiStride = plan.mXiStride
    for half in 0 ..< plan.nr / 8 {
        let mBlock = task.m + channel * plan.chunkTiles + block * plan.nr + half * 8
        // Along ξx, then along ξy.
        for yi in 0 ..< a { T.output(mBlock + yi * a * xiStride, xiStride, temp + yi * m * 8, 8) }
        for c in 0 ..< m { T.output(temp + c * 8, m * 8, y + c * 8, 64) }
        let t0 = task.firstTile + block * plan.nr + half * 8
        let group = winogradGroup(plan, firstTile: t0)
        if group.oneRow {
            let b = (task.bias?[channel] ?? 0) + (task.channelBias?[group.image * s.outChannels + channel] ?? 0)
            let oy = group.ty * m, ox = group.tx * m
            let columns = min(8 * m, wo - ox)
            let plane = (group.image * s.outChannels + channel) * ho * wo
            for r in 0 ..< min(m, ho - oy) {
                @inline(__always) func c(_ c: Int) -> WinogradVector { winogradLoad(y + (r * 8 + c) * 8) }
                storeTransposed8x8(c(0), c(1), c(2), c(3), c(4), c(5), c(6), c(7), lanes)
                // Lane j's m values to segment[j·m ..< j·m + m] (each store's tail is overwritten by the next).
                for lane in 0 ..< 8 { winogradStore(winogradLoad(lanes + lane * 8), segment + lane * m) }
                let out = task.output + plane + (oy + r) * wo + ox
                let residual = task.residual.map { $0 + plane + (oy + r) * wo + ox }
                var k = 0
                while k + 8 <= columns {
                    var value = winogradLoad(segment + k) + b
                    if let residual { value += winogradLoad(residual + k) }
                    winogradStore(value * task.scale, out + k)
                    k += 8
                }
                while k < columns {
                    var value = segment[k] + b
                    if let residual { value += residual[k] }
                    out[k] = value * task.scale
                    k += 1
                }
            }
        } else {
            for lane in 0 ..< 8 {
                let tile = t0 + lane
                if tile >= plan.totalTiles { break }
                let n = tile / plan.tilesPerImage, r = tile % plan.tilesPerImage
                let oy = (r / plan.tilesX) * m, ox = (r % plan.tilesX) * m
                let b = (task.bias?[channel] ?? 0) + (task.channelBias?[n * s.outChannels + channel] ?? 0)
                let plane = (n * s.outChannels + channel) * ho * wo
                for ry in 0 ..< min(m, ho - oy) {
                    let row = plane + (oy + ry) * wo + ox
                    for cx in 0 ..< min(m, wo - ox) {
                        var value = y[(ry * 8 + cx) * 8 + lane] + b
                        if let residual = task.residual { value += residual[row + cx] }
                        task.output[row + cx] = value * task.scale
                    }
                }
            }
        }
    }
}
