import _EdgeCore
import _EdgeQuant

/// Fast fp32 2-D convolution over NCHW tensors: the blocked GEMM C_n[O, Ho·Wo] = W[O, I·k·k] · im2col(in_n),
/// with the im2col matrix never materialised (it is read straight from the input while packing B panels).
///
///     out[n, o, y, x] = (bias[o] + channelBias[n, o] + Σ_{i, ky, kx} W[o, i, ky, kx] · in[n, i, y·s + ky − padTop, x·s + kx − padLeft]
///                        + residual[n, o, y, x]) · scale
///
/// Same results as `conv2dRef` up to fp32 summation order (see `docs/KERNELS.md`).
///
/// - shape: the convolution. With `upsampledInput`, `shape.height`/`shape.width` are the size of the
///   nearest-neighbour 2× UPSAMPLED image (both even) and `input` holds the half-size image
///   [N, I, height/2, width/2]: the result equals `upsampleNearest2xRef` followed by `conv2dRef(shape, …)`.
/// - input: [N, I, H, W] (or half size, above). output: [N, O, Ho, Wo]; must not alias input. residual may
///   alias output only when I·k·k ≤ `F32GemmBlocking.kc` (one K block), otherwise it must not.
/// - weight: O rows of I·k·k, fp32, fp16 or int8 per-row scale: rows are dequantised to fp32 exactly as
///   `WeightMatrix.dequantizeRow` does while A is packed (int8 scales applied in the packer, not the epilogue).
/// - packedWeight: nil, or `weight` already packed by `packWeightsF32` (e.g. once at model load): the per-call
///   packing is skipped (it costs ≈ 0.3 ns per weight, ~20 % of an 8×8-pixel layer at batch 1). Bitwise the
///   same results. Pass `packedWeight: true` to `conv2dF32ScratchBytes` to size the scratch without packed A.
/// - bias: [O] or nil. channelBias: [N, O] or nil (e.g. a ResNet block's time-embedding projection).
/// - residual: [N, O, Ho, Wo] or nil. scale: applied last (1 = none).
/// - scratch: `conv2dF32ScratchBytes(shape, threads:)` bytes, any alignment; nothing is allocated.
/// - threads: work is split over images × output-pixel chunks (and output-channel parts when that gives too
///   few tasks). Results are bitwise independent of the thread count and of `tile`.
public func conv2dF32(_ shape: Conv2DShape, upsampledInput: Bool = false, input: UnsafePointer<Float>, weight: WeightMatrix,
                      packedWeight: UnsafePointer<Float>? = nil, bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
                      residual: UnsafePointer<Float>? = nil, scale: Float = 1, channelBias: UnsafePointer<Float>? = nil,
                      scratch: UnsafeMutableRawPointer, threads: Threads, tile: F32GemmTile = .native) {
    let s = shape
    precondition(weight.rows == s.outChannels && weight.columns == s.fanIn,
                 "weight is \(weight.rows)×\(weight.columns), conv needs \(s.outChannels)×\(s.fanIn)")
    precondition(s.kernel >= 1 && s.stride >= 1 && s.outHeight >= 1 && s.outWidth >= 1)
    precondition(!upsampledInput || (s.height % 2 == 0 && s.width % 2 == 0), "an upsampled input has even height and width")
    let pixels = s.outHeight * s.outWidth
    let b: F32GemmB
    if s.kernel == 1 && s.stride == 1 && s.padTop == 0 && s.padLeft == 0 && s.padBottom == 0 && s.padRight == 0 && !upsampledInput {
        // A 1×1 convolution is a plain product with the input planes as B.
        b = .strided(input, rowStride: pixels, columnStride: 1, batchStride: s.inChannels * pixels)
    } else {
        b = .im2col(s, input, upsampled: upsampledInput)
    }
    let problem = F32GemmProblem(m: s.outChannels, n: pixels, k: s.fanIn, batch: s.batch,
                                 a: packedWeight.map { .packed($0) } ?? .weights(weight), b: b,
                                 c: output, ldc: pixels, cBatchStride: s.outChannels * pixels,
                                 bias: bias, channelBias: channelBias, residual: residual, scale: scale)
    runF32Gemm(problem, tile: tile, scratch: scratch, threads: threads)
}

/// Bytes of scratch `conv2dF32` needs for `shape` with `threads` (the same whether or not the input is
/// upsampled, and for every tile): the packed weights (roundUp(O, 8) · I·k·k floats, shared; none when
/// `packedWeight` is true, i.e. the call passes prepacked weights) plus, per thread, one B micro-panel
/// (≤ 256 × 16 floats) and O floats of bias.
public func conv2dF32ScratchBytes(_ shape: Conv2DShape, threads: Threads, packedWeight: Bool = false) -> Int {
    F32GemmScratchLayout(m: shape.outChannels, n: shape.outHeight * shape.outWidth, k: shape.fanIn, prepackedA: packedWeight)
        .bytes(threads: threads.count)
}

/// Floats `packWeightsF32` writes for a `rows` × `columns` weight matrix: roundUp(rows, 8) · columns.
public func packedWeightsF32Count(rows: Int, columns: Int) -> Int {
    roundUp(max(rows, 0), F32GemmBlocking.mr) * columns
}

/// Bytes of `packedWeightsF32Count` floats rounded up to 64, so consecutive packed matrices in one allocation
/// each start on a cache line.
public func packedWeightsF32Bytes(rows: Int, columns: Int) -> Int {
    roundUp64(packedWeightsF32Count(rows: rows, columns: columns) * MemoryLayout<Float>.stride)
}

/// Packs a weight matrix once — e.g. at model load — into the layout `conv2dF32` otherwise builds on every
/// call: panel-major [⌈rows/8⌉][columns][8] fp32 (panel p holds rows 8p ..< 8p + 8, interleaved by column; rows
/// past `rows` zero), dequantised exactly as `WeightMatrix.dequantizeRow` does. `packed` holds
/// `packedWeightsF32Count(rows:columns:)` floats, any alignment. Costs fp32 memory for every weight (4× an int8
/// model's), in exchange for skipping the per-call packing.
public func packWeightsF32(_ weight: WeightMatrix, into packed: UnsafeMutablePointer<Float>, threads: Threads) {
    packA(.weights(weight), m: weight.rows, k: weight.columns, into: packed, threads: threads)
}

/// General strided fp32 GEMM:
///
///     C[i, j] = (Σ_k A[i, k] · B[k, j] + bias[i] + residual[i, j]) · alpha,   i < m, j < n
///
/// with A[i, k] = a[i·aRowStride + k·aColumnStride] and B[k, j] = b[k·bRowStride + j·bColumnStride], so
/// transposed operands cost nothing; C (and residual) is row-major with leading dimension ldc.
///
/// Attention over [C, T] activations (head h, head size d, T tokens) needs no copies:
/// - scores S[i, j] = Σ_dd Q[h·d + dd, i] · K[h·d + dd, j] / √d:
///   `gemmF32(m: T, n: T, k: d, a: q + h·d·T, aRowStride: 1, aColumnStride: T, b: k + h·d·T, bRowStride: T, bColumnStride: 1, c: s, ldc: T, alpha: 1/√d, …)`
/// - out[h·d + e, i] = Σ_j P[i, j] · V[h·d + e, j]:
///   `gemmF32(m: d, n: T, k: T, a: v + h·d·T, aRowStride: T, aColumnStride: 1, b: p, bRowStride: 1, bColumnStride: T, c: out + h·d·T, ldc: T, …)`
///
/// - c must not alias a or b; residual may alias c only when k ≤ `F32GemmBlocking.kc`.
/// - scratch: `gemmF32ScratchBytes(m:n:k:threads:)` bytes; nothing is allocated.
/// - Results are bitwise independent of the thread count and of `tile`.
public func gemmF32(m: Int, n: Int, k: Int,
                    a: UnsafePointer<Float>, aRowStride: Int, aColumnStride: Int,
                    b: UnsafePointer<Float>, bRowStride: Int, bColumnStride: Int,
                    c: UnsafeMutablePointer<Float>, ldc: Int,
                    alpha: Float = 1, bias: UnsafePointer<Float>? = nil, residual: UnsafePointer<Float>? = nil,
                    scratch: UnsafeMutableRawPointer, threads: Threads, tile: F32GemmTile = .native) {
    precondition(m >= 0 && n >= 0 && k >= 0 && ldc >= n)
    let problem = F32GemmProblem(m: m, n: n, k: k, batch: 1,
                                 a: .strided(a, rowStride: aRowStride, columnStride: aColumnStride),
                                 b: .strided(b, rowStride: bRowStride, columnStride: bColumnStride, batchStride: 0),
                                 c: c, ldc: ldc, cBatchStride: 0, bias: bias, channelBias: nil, residual: residual, scale: alpha)
    runF32Gemm(problem, tile: tile, scratch: scratch, threads: threads)
}

/// Bytes of scratch `gemmF32` needs: roundUp(m, 8)·k floats of packed A plus, per thread, one B micro-panel
/// (≤ 256 × 16 floats) and m floats. Independent of n.
public func gemmF32ScratchBytes(m: Int, n: Int, k: Int, threads: Threads) -> Int {
    F32GemmScratchLayout(m: m, n: n, k: k).bytes(threads: threads.count)
}
