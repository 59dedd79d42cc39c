import _EdgeCore
import _EdgeQuant

/// Which fp32 GEMM microkernel the blocked driver calls. Both tiles are compiled on every architecture and
/// give bitwise-identical results (see `f32Gemm8x16SIMD`); `native` is the one tuned for this CPU.
public enum F32GemmTile: Sendable, CaseIterable, CustomStringConvertible {
    /// `f32Gemm8x16SIMD`: 8 rows × 16 columns, SIMD16 (x86-64 AVX-512).
    case tile8x16
    /// `f32Gemm8x8SIMD`: 8 rows × 8 columns, SIMD8 (ARM64 NEON).
    case tile8x8

    /// The tile for the architecture being compiled: 8×8 on ARM64, 8×16 elsewhere.
    public static var native: F32GemmTile {
        #if arch(arm64)
        return .tile8x8
        #else
        return .tile8x16
        #endif
    }

    /// Columns per tile (NR). Rows per tile (MR) is always 8.
    public var nr: Int {
        switch self {
        case .tile8x16: 16
        case .tile8x8: 8
        }
    }

    public var description: String {
        switch self {
        case .tile8x16: "8x16 SIMD16"
        case .tile8x8: "8x8 SIMD8"
        }
    }
}

/// Blocking of the fp32 GEMM driver. Fixed constants: in particular `kc`, which fixes the summation order of
/// every output element (one FMA chain per K block, blocks added in order), so results do not depend on the
/// thread count or the tile.
public enum F32GemmBlocking {
    /// Rows per microkernel tile (MR); A panels are packed [kc][8].
    public static let mr = 8
    /// Largest K block (KC): the K terms one microkernel call sums before the partial result goes back to C.
    /// K is cut into ⌈K/256⌉ blocks of equal size (a multiple of 8), e.g. 576 = 3 × 192.
    public static let kc = 256
    /// Most output columns in one task (NC, a multiple of every tile's NR): the granularity of the thread split.
    /// B is packed one kc × NR micro-panel at a time (≤ 16 KB, L1-resident) and every row panel of the task's
    /// A block (M × kc, ≤ 256 KB for M ≤ 256, in L2) runs against it.
    public static let nc = 256
}

// MARK: - Sources of the two operands

/// Where the driver reads A (M × K) from.
enum F32GemmA {
    /// Rows of a weight matrix, dequantised to fp32 exactly as `WeightMatrix.dequantizeRow` does.
    case weights(WeightMatrix)
    /// A[i, k] = base[i·rowStride + k·columnStride].
    case strided(UnsafePointer<Float>, rowStride: Int, columnStride: Int)
    /// Already packed by `packWeightsF32`: panel-major [⌈M/8⌉][K][8].
    case packed(UnsafePointer<Float>)
}

/// Where the driver reads B (K × N, per image) from.
enum F32GemmB {
    /// B_n[k, j] = base[n·batchStride + k·rowStride + j·columnStride].
    case strided(UnsafePointer<Float>, rowStride: Int, columnStride: Int, batchStride: Int)
    /// The implicit im2col matrix of an NCHW input: B_n[(i·kh + ky)·kw + kx, y·Wo + x] =
    /// in[n, i, y·s + ky − padTop, x·s + kx − padLeft] (zero outside). With `upsampled`, the shape's height and
    /// width are those of the 2× nearest-upsampled image and the stored input is half that size.
    case im2col(Conv2DShape, UnsafePointer<Float>, upsampled: Bool)
}

/// One blocked product, C_n = (A · B_n + bias + channelBias_n + residual_n) · scale for n < batch.
struct F32GemmProblem {
    var m: Int, n: Int, k: Int, batch: Int
    var a: F32GemmA
    var b: F32GemmB
    var c: UnsafeMutablePointer<Float>
    var ldc: Int
    var cBatchStride: Int
    var bias: UnsafePointer<Float>?
    /// [batch, m], added to the bias of image n.
    var channelBias: UnsafePointer<Float>?
    /// Same layout as C (ldc, cBatchStride); must not alias C when k > kc.
    var residual: UnsafePointer<Float>?
    var scale: Float
}

// MARK: - Scratch

/// The K blocks of a product: ⌈K / kc⌉ blocks of equal size (rounded up to a multiple of 8; the last one takes
/// the rest), so no block is a short tail. Depends on K only, which keeps results independent of everything else.
struct F32GemmKBlocks {
    let count: Int, size: Int
    init(k: Int) {
        count = max(1, (k + F32GemmBlocking.kc - 1) / F32GemmBlocking.kc)
        size = max(8, min(F32GemmBlocking.kc, roundUp((k + count - 1) / count, 8)))
    }
}

@inline(__always) func roundUp(_ x: Int, _ to: Int) -> Int { (x + to - 1) / to * to }

/// The first 64-byte boundary at or after `p`, as floats: where the fp32 kernels start laying out their scratch.
@inline(__always) func alignedFloats(_ p: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer(bitPattern: roundUp(Int(bitPattern: p), 64))!.assumingMemoryBound(to: Float.self)
}

/// Scratch layout of one blocked product: the whole of A packed once (shared), then one slice per thread.
struct F32GemmScratchLayout {
    let packedAFloats: Int      // roundUp(m, 8) · k
    let panelFloats: Int        // per thread: one B micro-panel, kc × 16 (the widest NR)
    let biasFloats: Int         // per thread: m (combined bias per image)
    let threadFloats: Int

    init(m: Int, n: Int, k: Int, prepackedA: Bool = false) {
        packedAFloats = prepackedA ? 0 : roundUp(roundUp(max(m, 1), F32GemmBlocking.mr) * k, 16)
        panelFloats = F32GemmKBlocks(k: k).size * 16
        biasFloats = roundUp(max(m, 1), 16)
        threadFloats = panelFloats + biasFloats
    }

    func bytes(threads: Int) -> Int { (packedAFloats + threadFloats * max(threads, 1)) * MemoryLayout<Float>.stride + 64 }
}

// MARK: - Packing A

/// Packs the 8-row panel `p` of A over all of K into dst[k·8 + r] (rows past m zero). Full panels are
/// transposed 8 × 8 floats at a time in registers; the values are exactly `WeightMatrix.dequantizeRow`'s.
@inline(__always)
func packAPanel(_ a: F32GemmA, m: Int, k: Int, panel p: Int, into dst: UnsafeMutablePointer<Float>) {
    let r0 = p * 8
    let rows = min(8, m - r0)
    if rows < 8 { for kk in 0 ..< k { for r in rows ..< 8 { dst[kk * 8 + r] = 0 } } }
    var k8 = 0  // columns [0, k8) done by the vector path
    switch a {
    case let .weights(w):
        let ld = w.columns
        if rows == 8 {
            switch w.type {
            case .f32:
                let src = w.values.assumingMemoryBound(to: Float.self) + r0 * ld
                while k8 + 8 <= k {
                    @inline(__always) func row(_ r: Int) -> SIMD8<Float> { UnsafeRawPointer(src + r * ld + k8).loadUnaligned(as: SIMD8<Float>.self) }
                    storeTransposed8x8(row(0), row(1), row(2), row(3), row(4), row(5), row(6), row(7), dst + k8 * 8)
                    k8 += 8
                }
            case .f16:
                let src = w.values.assumingMemoryBound(to: UInt16.self) + r0 * ld
                while k8 + 8 <= k {
                    @inline(__always) func row(_ r: Int) -> SIMD8<Float> {
                        SIMD8<Float>(unsafeBitCast(UnsafeRawPointer(src + r * ld + k8).loadUnaligned(as: SIMD8<UInt16>.self), to: SIMD8<Float16>.self))
                    }
                    storeTransposed8x8(row(0), row(1), row(2), row(3), row(4), row(5), row(6), row(7), dst + k8 * 8)
                    k8 += 8
                }
            case .q8PerChannel:
                let src = w.values.assumingMemoryBound(to: Int8.self) + r0 * ld
                let scales = w.scales! + r0
                while k8 + 8 <= k {
                    @inline(__always) func row(_ r: Int) -> SIMD8<Float> {
                        scales[r] * SIMD8<Float>(UnsafeRawPointer(src + r * ld + k8).loadUnaligned(as: SIMD8<Int8>.self))
                    }
                    storeTransposed8x8(row(0), row(1), row(2), row(3), row(4), row(5), row(6), row(7), dst + k8 * 8)
                    k8 += 8
                }
            }
        }
        for r in 0 ..< rows {
            let row = r0 + r
            let d = dst + r
            switch w.type {
            case .f32:
                let src = w.values.assumingMemoryBound(to: Float.self) + row * ld
                for kk in k8 ..< k { d[kk * 8] = src[kk] }
            case .f16:
                let src = w.values.assumingMemoryBound(to: UInt16.self) + row * ld
                for kk in k8 ..< k { d[kk * 8] = Float(Float16(bitPattern: src[kk])) }
            case .q8PerChannel:
                let src = w.values.assumingMemoryBound(to: Int8.self) + row * ld
                let s = w.scales![row]
                for kk in k8 ..< k { d[kk * 8] = s * Float(src[kk]) }
            }
        }
    case let .packed(source):
        // (The driver uses packed weights in place; copying is only for completeness.)
        dst.update(from: source + p * k * 8, count: k * 8)
    case let .strided(base, rs, cs):
        if rs == 1 && rows == 8 {
            for kk in 0 ..< k {
                let v = UnsafeRawPointer(base + r0 + kk * cs).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(dst + kk * 8).storeBytes(of: v, as: SIMD8<Float>.self)
            }
        } else if cs == 1 && rows == 8 {
            while k8 + 8 <= k {
                @inline(__always) func row(_ r: Int) -> SIMD8<Float> { UnsafeRawPointer(base + (r0 + r) * rs + k8).loadUnaligned(as: SIMD8<Float>.self) }
                storeTransposed8x8(row(0), row(1), row(2), row(3), row(4), row(5), row(6), row(7), dst + k8 * 8)
                k8 += 8
            }
            for r in 0 ..< 8 {
                let src = base + (r0 + r) * rs
                for kk in k8 ..< k { dst[kk * 8 + r] = src[kk] }
            }
        } else {
            for r in 0 ..< rows {
                let src = base + (r0 + r) * rs
                let d = dst + r
                for kk in 0 ..< k { d[kk * 8] = src[kk * cs] }
            }
        }
    }
}

/// Stores the transpose of the 8 × 8 block whose rows are r0…r7: dst[c·8 + r] = r_r[c]. Three stages of
/// two-source shuffles (24 in all, constant lane patterns that LLVM lowers to unpck/perm instructions).
@inlinable @inline(__always)
func storeTransposed8x8(_ r0: SIMD8<Float>, _ r1: SIMD8<Float>, _ r2: SIMD8<Float>, _ r3: SIMD8<Float>,
                        _ r4: SIMD8<Float>, _ r5: SIMD8<Float>, _ r6: SIMD8<Float>, _ r7: SIMD8<Float>,
                        _ dst: UnsafeMutablePointer<Float>) {
    typealias V = SIMD8<Float>
    // Stage 1: interleave row pairs. lo(x, y) = (x0 y0 x1 y1 x2 y2 x3 y3), hi = (x4 y4 … x7 y7).
    @inline(__always) func lo(_ x: V, _ y: V) -> V { V(x[0], y[0], x[1], y[1], x[2], y[2], x[3], y[3]) }
    @inline(__always) func hi(_ x: V, _ y: V) -> V { V(x[4], y[4], x[5], y[5], x[6], y[6], x[7], y[7]) }
    let a0 = lo(r0, r1), a1 = hi(r0, r1), a2 = lo(r2, r3), a3 = hi(r2, r3)
    let a4 = lo(r4, r5), a5 = hi(r4, r5), a6 = lo(r6, r7), a7 = hi(r6, r7)
    // Stage 2: pairs of pairs. b0 = rows 0–3 of columns 0, 1; b1 = columns 2, 3; b2 = 4, 5; b3 = 6, 7.
    @inline(__always) func lo2(_ x: V, _ y: V) -> V { V(x[0], x[1], y[0], y[1], x[2], x[3], y[2], y[3]) }
    @inline(__always) func hi2(_ x: V, _ y: V) -> V { V(x[4], x[5], y[4], y[5], x[6], x[7], y[6], y[7]) }
    let b0 = lo2(a0, a2), b1 = hi2(a0, a2), b2 = lo2(a1, a3), b3 = hi2(a1, a3)
    let b4 = lo2(a4, a6), b5 = hi2(a4, a6), b6 = lo2(a5, a7), b7 = hi2(a5, a7)
    // Stage 3: column c = (rows 0–3, rows 4–7).
    @inline(__always) func first(_ x: V, _ y: V) -> V { V(x[0], x[1], x[2], x[3], y[0], y[1], y[2], y[3]) }
    @inline(__always) func second(_ x: V, _ y: V) -> V { V(x[4], x[5], x[6], x[7], y[4], y[5], y[6], y[7]) }
    @inline(__always) func store(_ v: V, _ c: Int) { UnsafeMutableRawPointer(dst + c * 8).storeBytes(of: v, as: V.self) }
    store(first(b0, b4), 0); store(second(b0, b4), 1)
    store(first(b1, b5), 2); store(second(b1, b5), 3)
    store(first(b2, b6), 4); store(second(b2, b6), 5)
    store(first(b3, b7), 6); store(second(b3, b7), 7)
}

// MARK: - Packing B

/// Copies `count` floats (non-overlapping), SIMD8 at a time.
@inlinable @inline(__always)
func copyFloats(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
    var t = 0
    while t + 8 <= count {
        UnsafeMutableRawPointer(dst + t).storeBytes(of: UnsafeRawPointer(src + t).loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
        t += 8
    }
    while t < count { dst[t] = src[t]; t += 1 }
}

@inlinable @inline(__always)
func zeroFloats(_ dst: UnsafeMutablePointer<Float>, _ count: Int) {
    var t = 0
    while t + 8 <= count { UnsafeMutableRawPointer(dst + t).storeBytes(of: SIMD8<Float>(), as: SIMD8<Float>.self); t += 8 }
    while t < count { dst[t] = 0; t += 1 }
}

/// Packs B_n[k0 ..< k0 + kc, j0 ..< j0 + cols] into dst[kk·nr + jj], columns cols ..< nr zero.
@inline(__always)
func packBPanel(_ b: F32GemmB, image: Int, k0: Int, kc: Int, j0: Int, cols: Int, nr: Int, into dst: UnsafeMutablePointer<Float>) {
    if cols < nr { for kk in 0 ..< kc { zeroFloats(dst + kk * nr + cols, nr - cols) } }
    switch b {
    case let .strided(base, rs, cs, bs):
        let origin = base + image * bs + k0 * rs + j0 * cs
        if cs == 1 {
            for kk in 0 ..< kc { copyFloats(origin + kk * rs, dst + kk * nr, cols) }
        } else if rs == 1 {
            for jj in 0 ..< cols {
                let src = origin + jj * cs
                let d = dst + jj
                for kk in 0 ..< kc { d[kk * nr] = src[kk] }
            }
        } else {
            for kk in 0 ..< kc {
                let src = origin + kk * rs
                let d = dst + kk * nr
                for jj in 0 ..< cols { d[jj] = src[jj * cs] }
            }
        }
    case let .im2col(s, input, upsampled):
        packIm2colPanel(s, input: input, upsampled: upsampled, image: image, k0: k0, kc: kc, j0: j0, cols: cols, nr: nr, into: dst)
    }
}

/// The im2col packer. Walks the panel's columns one output row ("segment") at a time; for each K index
/// (i, ky, kx), advanced incrementally, copies the segment's input run, clipped to the image with zeros
/// outside. Interior runs at stride 1 are plain vector copies (or, for an upsampled input, a vector load and
/// a lane-doubling shuffle); only runs that touch the padding pay for clipping, and only strides other than
/// 1 divide.
@inline(__always)
func packIm2colPanel(_ s: Conv2DShape, input: UnsafePointer<Float>, upsampled: Bool, image: Int,
                     k0: Int, kc: Int, j0: Int, cols: Int, nr: Int, into dst: UnsafeMutablePointer<Float>) {
    let (h, w, kern, stride) = (s.height, s.width, s.kernel, s.stride)
    let wo = s.outWidth
    // Stored input geometry: half size when the conv reads a virtual 2× upsampled image.
    let (sh, sw) = upsampled ? (h / 2, w / 2) : (h, w)
    let plane = sh * sw
    let img = input + image * s.inChannels * plane
    let kk2 = kern * kern
    var j = j0
    var off = 0
    while off < cols {
        let y = j / wo, x = j % wo
        let len = min(wo - x, cols - off)
        let ix0base = x * stride - s.padLeft
        let iybase = y * stride - s.padTop
        // The incremental decomposition k = (i·kh + ky)·kw + kx.
        var i = k0 / kk2
        let rem = k0 - i * kk2
        var ky = rem / kern
        var kx = rem - ky * kern
        var d = dst + off
        var remaining = kc
        while remaining > 0 {
            // The taps kx ..< kx + taps of input row (i, ky).
            let taps = min(kern - kx, remaining)
            let iy = iybase + ky
            if iy < 0 || iy >= h {
                for _ in 0 ..< taps { zeroFloats(d, len); d += nr }
            } else {
                let row = img + i * plane + (upsampled ? iy >> 1 : iy) * sw
                let ix0 = ix0base + kx
                if stride == 1 && (len == 16 || len == 8) && len <= w {
                    d = packIm2colRunS1(row: row, ix0: ix0, taps: taps, len: len, nr: nr, width: w, upsampled: upsampled, into: d)
                } else if stride == 2 && !upsampled && (len == 16 || len == 8) {
                    d = packIm2colRunS2(row: row, ix0: ix0, taps: taps, len: len, nr: nr, width: w, into: d)
                } else {
                    d = packIm2colRunClipped(row: row, ix0: ix0, taps: taps, len: len, nr: nr, stride: stride, width: w, upsampled: upsampled, into: d)
                }
            }
            remaining -= taps
            kx += taps
            if kx == kern {
                kx = 0; ky += 1
                if ky == kern { ky = 0; i += 1 }
            }
        }
        off += len
        j += len
    }
}

/// The taps of one input row at stride 1 for a run of len = 16 or 8 output pixels (len ≤ width): interior
/// taps are one vector load and store (or load + lane-doubling shuffle when upsampled), and a tap sticking
/// out by exactly one column — the 1-pixel padding of a 3×3 "same" convolution — is one in-bounds load and a
/// one-lane shift with a zero shifted in. Anything else goes to the clipped path. Returns d advanced by taps·nr.
@inline(__always)
func packIm2colRunS1(row: UnsafePointer<Float>, ix0: Int, taps: Int, len: Int, nr: Int, width w: Int, upsampled: Bool,
                     into dst: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
    typealias V16 = SIMD16<Float>
    typealias V8 = SIMD8<Float>
    @inline(__always) func load16(_ p: UnsafePointer<Float>) -> V16 { UnsafeRawPointer(p).loadUnaligned(as: V16.self) }
    @inline(__always) func load8(_ p: UnsafePointer<Float>) -> V8 { UnsafeRawPointer(p).loadUnaligned(as: V8.self) }
    @inline(__always) func store16(_ v: V16, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V16.self) }
    @inline(__always) func store8(_ v: V8, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V8.self) }
    var d = dst
    for tap in 0 ..< taps {
        let ix = ix0 + tap
        if ix >= 0 && ix + len <= w {
            if !upsampled {
                if len == 16 { store16(load16(row + ix), d) } else { store8(load8(row + ix), d) }
            } else {
                copyUpsampled(row, ix, d, len)
            }
        } else if ix == -1 {
            // Left padding: d = (0, x[0], …, x[len − 2]).
            if !upsampled {
                if len == 16 {
                    let v = load16(row)
                    store16(V16(0, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14]), d)
                } else {
                    let v = load8(row)
                    store8(V8(0, v[0], v[1], v[2], v[3], v[4], v[5], v[6]), d)
                }
            } else {
                // Upsampled x[t] = s[t >> 1]: (0, s0, s0, s1, s1, …).
                if len == 16 {
                    let v = load8(row)
                    store16(V16(0, v[0], v[0], v[1], v[1], v[2], v[2], v[3], v[3], v[4], v[4], v[5], v[5], v[6], v[6], v[7]), d)
                } else {
                    let v = UnsafeRawPointer(row).loadUnaligned(as: SIMD4<Float>.self)
                    store8(V8(0, v[0], v[0], v[1], v[1], v[2], v[2], v[3]), d)
                }
            }
        } else if ix + len == w + 1 {
            // Right padding: d = (x[ix], …, x[w − 1], 0).
            if !upsampled {
                if len == 16 {
                    let v = load16(row + ix - 1)
                    store16(V16(v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], 0), d)
                } else {
                    let v = load8(row + ix - 1)
                    store8(V8(v[1], v[2], v[3], v[4], v[5], v[6], v[7], 0), d)
                }
            } else {
                // ix = w − len + 1 is odd (w even, len even): (s0, s1, s1, …, s_last, s_last, 0) from s = row + ix>>1,
                // whose last element read, (ix + len − 2) >> 1 = w/2 − 1, is the row's last.
                let sp = row + (ix >> 1)
                if len == 16 {
                    let v = load8(sp)
                    store16(V16(v[0], v[1], v[1], v[2], v[2], v[3], v[3], v[4], v[4], v[5], v[5], v[6], v[6], v[7], v[7], 0), d)
                } else {
                    let v = UnsafeRawPointer(sp).loadUnaligned(as: SIMD4<Float>.self)
                    store8(V8(v[0], v[1], v[1], v[2], v[2], v[3], v[3], 0), d)
                }
            }
        } else {
            _ = packIm2colRunClipped(row: row, ix0: ix, taps: 1, len: len, nr: nr, stride: 1, width: w, upsampled: upsampled, into: d)
        }
        d += nr
    }
    return d
}

/// The taps of one input row at stride 2 for a run of len = 16 or 8 output pixels: interior taps gather the
/// even elements of two overlapping in-bounds vector loads (x[ix … ix + 2·len − 2]; nothing past that is
/// read), and so do 16-pixel runs whose first or last tap falls on a 1-pixel padding (the downsamplers'
/// (1,1,1,1) and (0,0,1,1) paddings); other taps touching the padding go to the clipped path. Returns d
/// advanced by taps·nr.
@inline(__always)
func packIm2colRunS2(row: UnsafePointer<Float>, ix0: Int, taps: Int, len: Int, nr: Int, width w: Int,
                     into dst: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
    var d = dst
    for tap in 0 ..< taps {
        let ix = ix0 + tap
        if ix >= 0 && ix + 2 * (len - 1) < w {
            let src = row + ix
            if len == 16 {
                let a = UnsafeRawPointer(src).loadUnaligned(as: SIMD16<Float>.self)
                let b = UnsafeRawPointer(src + 15).loadUnaligned(as: SIMD16<Float>.self)
                let v = SIMD16(a[0], a[2], a[4], a[6], a[8], a[10], a[12], a[14], b[1], b[3], b[5], b[7], b[9], b[11], b[13], b[15])
                UnsafeMutableRawPointer(d).storeBytes(of: v, as: SIMD16<Float>.self)
            } else {
                let a = UnsafeRawPointer(src).loadUnaligned(as: SIMD8<Float>.self)
                let b = UnsafeRawPointer(src + 7).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(d).storeBytes(of: SIMD8(a[0], a[2], a[4], a[6], b[1], b[3], b[5], b[7]), as: SIMD8<Float>.self)
            }
        } else if len == 16 && ix == -1 && w >= 31 {
            // Left padding of 1: (0, x1, x3, …, x29), from x[0 ..< 16] and x[15 ..< 31].
            let a = UnsafeRawPointer(row).loadUnaligned(as: SIMD16<Float>.self)
            let b = UnsafeRawPointer(row + 15).loadUnaligned(as: SIMD16<Float>.self)
            let v = SIMD16(0, a[1], a[3], a[5], a[7], a[9], a[11], a[13], a[15], b[2], b[4], b[6], b[8], b[10], b[12], b[14])
            UnsafeMutableRawPointer(d).storeBytes(of: v, as: SIMD16<Float>.self)
        } else if len == 16 && ix >= 0 && ix + 30 == w {
            // The last tap reads the right padding: (x[ix], x[ix+2], …, x[ix+28], 0), from x[ix ..< ix+16] and
            // x[ix+14 ..< ix+30].
            let src = row + ix
            let a = UnsafeRawPointer(src).loadUnaligned(as: SIMD16<Float>.self)
            let b = UnsafeRawPointer(src + 14).loadUnaligned(as: SIMD16<Float>.self)
            let v = SIMD16(a[0], a[2], a[4], a[6], a[8], a[10], a[12], a[14], b[2], b[4], b[6], b[8], b[10], b[12], b[14], 0)
            UnsafeMutableRawPointer(d).storeBytes(of: v, as: SIMD16<Float>.self)
        } else {
            _ = packIm2colRunClipped(row: row, ix0: ix, taps: 1, len: len, nr: nr, stride: 2, width: w, upsampled: false, into: d)
        }
        d += nr
    }
    return d
}

/// The taps of one input row for a run that touches the padding (or has a stride other than 1, or is not a
/// whole panel): per tap, zeros left of the image, the clipped copy, zeros right of it. Returns d advanced by
/// taps·nr.
@inline(never)
func packIm2colRunClipped(row: UnsafePointer<Float>, ix0: Int, taps: Int, len: Int, nr: Int, stride: Int, width w: Int,
                          upsampled: Bool, into dst: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
    var d = dst
    for tap in 0 ..< taps {
        let ix0 = ix0 + tap
        if stride == 1 {
            let lo = min(len, max(0, -ix0)), hi = max(lo, min(len, w - ix0))
            zeroFloats(d, lo)
            if !upsampled { copyFloats(row + ix0 + lo, d + lo, hi - lo) } else { copyUpsampled(row, ix0 + lo, d + lo, hi - lo) }
            zeroFloats(d + hi, len - hi)
        } else {
            // t in [lo, hi): 0 <= ix0 + t·stride < w
            let lo = ix0 >= 0 ? 0 : min(len, (-ix0 + stride - 1) / stride)
            let hi = w - ix0 <= 0 ? lo : max(lo, min(len, (w - ix0 + stride - 1) / stride))
            zeroFloats(d, lo)
            if !upsampled {
                let src = row + ix0
                for t in lo ..< hi { d[t] = src[t * stride] }
            } else {
                for t in lo ..< hi { d[t] = row[(ix0 + t * stride) >> 1] }
            }
            zeroFloats(d + hi, len - hi)
        }
        d += nr
    }
    return d
}

/// d[t] = row[(ix0 + t) >> 1] for t < count (a run of a 2× nearest-upsampled row); reads only
/// row[ix0 >> 1 ... (ix0 + count − 1) >> 1].
@inlinable @inline(__always)
func copyUpsampled(_ row: UnsafePointer<Float>, _ ix0: Int, _ d: UnsafeMutablePointer<Float>, _ count: Int) {
    var t = 0
    while t + 16 <= count {
        let s = row + ((ix0 + t) >> 1)
        // Even start: (s0, s0, s1, s1, …); odd start: (s0, s1, s1, s2, …, s8) — both interleave s[0..<8] with
        // itself or with s[1..<9].
        let v = UnsafeRawPointer(s).loadUnaligned(as: SIMD8<Float>.self)
        let u = (ix0 + t) & 1 == 0 ? v : UnsafeRawPointer(s + 1).loadUnaligned(as: SIMD8<Float>.self)
        let out = SIMD16(v[0], u[0], v[1], u[1], v[2], u[2], v[3], u[3], v[4], u[4], v[5], u[5], v[6], u[6], v[7], u[7])
        UnsafeMutableRawPointer(d + t).storeBytes(of: out, as: SIMD16<Float>.self)
        t += 16
    }
    if t + 8 <= count {
        let s = row + ((ix0 + t) >> 1)
        let v = UnsafeRawPointer(s).loadUnaligned(as: SIMD4<Float>.self)
        let u = (ix0 + t) & 1 == 0 ? v : UnsafeRawPointer(s + 1).loadUnaligned(as: SIMD4<Float>.self)
        UnsafeMutableRawPointer(d + t).storeBytes(of: SIMD8(v[0], u[0], v[1], u[1], v[2], u[2], v[3], u[3]), as: SIMD8<Float>.self)
        t += 8
    }
    while t < count { d[t] = row[(ix0 + t) >> 1]; t += 1 }
}

// MARK: - The driver

@inline(__always)
func callMicrokernel(_ tile: F32GemmTile, kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>,
                     ldc: Int, rows: Int, columns: Int, accumulate: Bool, bias: UnsafePointer<Float>?,
                     residual: UnsafePointer<Float>?, scale: Float) {
    switch tile {
    case .tile8x16:
        f32Gemm8x16SIMD(kc: kc, a: a, b: b, c: c, ldc: ldc, rows: rows, columns: columns, accumulate: accumulate,
                        bias: bias, residual: residual, scale: scale)
    case .tile8x8:
        f32Gemm8x8SIMD(kc: kc, a: a, b: b, c: c, ldc: ldc, rows: rows, columns: columns, accumulate: accumulate,
                       bias: bias, residual: residual, scale: scale)
    }
}

/// How a product is split into tasks: images × column chunks × row parts.
struct F32GemmTasks {
    let panelsPerImage: Int, chunks: Int, mPanels: Int, mParts: Int, batch: Int
    var count: Int { batch * chunks * mParts }

    init(m: Int, n: Int, batch: Int, nr: Int, threads: Int) {
        self.batch = batch
        panelsPerImage = max(1, (n + nr - 1) / nr)
        mPanels = max(1, (m + 7) / 8)
        let maxPanels = F32GemmBlocking.nc / nr
        var chunks = (panelsPerImage + maxPanels - 1) / maxPanels
        if threads > 1 {
            // Enough tasks for every thread, preferably a multiple of the thread count (static schedule).
            chunks = max(chunks, min(panelsPerImage, (threads + batch - 1) / batch))
            if (batch * chunks) % threads != 0 {
                var c = chunks
                while c <= min(panelsPerImage, 2 * chunks) {
                    if (batch * c) % threads == 0 { chunks = c; break }
                    c += 1
                }
            }
        }
        self.chunks = chunks
        let tasks = batch * chunks
        mParts = tasks >= threads ? 1 : min(mPanels, (threads + tasks - 1) / tasks)
    }
}

/// Packs all of A, panel-major [⌈m/8⌉][k][8], splitting the panels over the threads.
func packA(_ a: F32GemmA, m: Int, k: Int, into packed: UnsafeMutablePointer<Float>, threads: Threads) {
    let mPanels = (m + 7) / 8
    if mPanels == 0 { return }
    // Small products run on fewer threads than asked: a fork/join costs a few microseconds.
    let workers = min(threads.count, mPanels, max(1, m * k / 32768))
    threads.parallelFor(workers, PackATask(a: a, m: m, k: k, packed: packed, mPanels: mPanels, workers: workers))
}

/// Worker t of `workers` packs A panels [mPanels·t/workers, mPanels·(t+1)/workers).
private struct PackATask: ParallelTask {
    let a: F32GemmA
    let m: Int, k: Int
    let packed: UnsafeMutablePointer<Float>
    let mPanels: Int, workers: Int

    func run(_ t: Int) {
        for panel in Threads.share(t, of: mPanels, workers: workers) {
            packAPanel(a, m: m, k: k, panel: panel, into: packed + panel * k * 8)
        }
    }
}

/// Runs one blocked product. `scratch` must hold `F32GemmScratchLayout(m:n:k:).bytes(threads:)` bytes.
func runF32Gemm(_ p: F32GemmProblem, tile: F32GemmTile, scratch: UnsafeMutableRawPointer, threads: Threads) {
    let (m, n, k) = (p.m, p.n, p.k)
    if m == 0 || n == 0 || p.batch == 0 { return }
    var prepacked: UnsafePointer<Float>? = nil
    if case let .packed(pointer) = p.a { prepacked = pointer }
    let layout = F32GemmScratchLayout(m: m, n: n, k: k, prepackedA: prepacked != nil)
    let aligned = alignedFloats(scratch)
    let packedA = prepacked ?? UnsafePointer(aligned)
    let threadBase = aligned + layout.packedAFloats
    let nThreads = threads.count
    let nr = tile.nr
    let tasks = F32GemmTasks(m: m, n: n, batch: p.batch, nr: nr, threads: nThreads)

    // Phase 1: pack all of A once, panel-major [m/8][k][8], shared by every task (unless packed already).
    if prepacked == nil { packA(p.a, m: m, k: k, into: aligned, threads: threads) }

    // Phase 2: each worker runs a contiguous range of tasks with its own B micro-panel and bias slice.
    let taskCount = tasks.count
    // Small products run on fewer threads than asked: a fork/join costs a few microseconds. The split never
    // changes the arithmetic, so this does not change results.
    let workers = min(nThreads, taskCount, max(1, m * n * k * p.batch / 131_072))
    let blocks = F32GemmKBlocks(k: k)
    threads.parallelFor(workers, GemmTask(p: p, tile: tile, layout: layout, tasks: tasks, blocks: blocks, packedA: packedA,
                                          threadBase: threadBase, taskCount: taskCount, workers: workers))
}

/// Worker t of `workers` runs tasks [taskCount·t/workers, taskCount·(t+1)/workers), each with its own
/// slice of scratch (one B micro-panel and a bias row) at threadBase + t · layout.threadFloats.
private struct GemmTask: ParallelTask {
    let p: F32GemmProblem
    let tile: F32GemmTile
    let layout: F32GemmScratchLayout
    let tasks: F32GemmTasks
    let blocks: F32GemmKBlocks
    let packedA: UnsafePointer<Float>
    let threadBase: UnsafeMutablePointer<Float>
    let taskCount: Int, workers: Int

    func run(_ t: Int) {
        let (m, n, k) = (p.m, p.n, p.k)
        let nr = tile.nr
        let bPanel = threadBase + t * layout.threadFloats
        let biasSlice = bPanel + layout.panelFloats
        for task in Threads.share(t, of: taskCount, workers: workers) {
            let mPart = task % tasks.mParts
            let chunk = (task / tasks.mParts) % tasks.chunks
            let image = task / (tasks.mParts * tasks.chunks)
            let ppi = tasks.panelsPerImage
            let jp0 = chunk * ppi / tasks.chunks, jp1 = (chunk + 1) * ppi / tasks.chunks
            let ip0 = mPart * tasks.mPanels / tasks.mParts, ip1 = (mPart + 1) * tasks.mPanels / tasks.mParts
            if jp0 >= jp1 || ip0 >= ip1 { continue }
            let c = p.c + image * p.cBatchStride
            let residual = p.residual.map { $0 + image * p.cBatchStride }
            var bias = p.bias
            if let cb = p.channelBias {
                let row = cb + image * m
                if let b = p.bias {
                    for r in ip0 * 8 ..< min(m, ip1 * 8) { biasSlice[r] = b[r] + row[r] }
                } else {
                    for r in ip0 * 8 ..< min(m, ip1 * 8) { biasSlice[r] = row[r] }
                }
                bias = UnsafePointer(biasSlice)
            }
            for kb in 0 ..< blocks.count {
                let k0 = kb * blocks.size
                let kc = min(blocks.size, k - k0)
                let first = kb == 0, last = kb == blocks.count - 1
                for jp in jp0 ..< jp1 {
                    // Pack one kc × NR micro-panel of B (it stays in L1) and run every row panel of A against it.
                    let j0 = jp * nr
                    let cols = min(nr, n - j0)
                    packBPanel(p.b, image: image, k0: k0, kc: kc, j0: j0, cols: cols, nr: nr, into: bPanel)
                    for ip in ip0 ..< ip1 {
                        let r0 = ip * 8
                        callMicrokernel(tile, kc: kc, a: packedA + (ip * k + k0) * 8, b: bPanel,
                                        c: c + r0 * p.ldc + j0, ldc: p.ldc, rows: min(8, m - r0), columns: cols,
                                        accumulate: !first, bias: first ? bias.map { $0 + r0 } : nil,
                                        residual: last ? residual.map { $0 + r0 * p.ldc + j0 } : nil,
                                        scale: last ? p.scale : 1)
                    }
                }
            }
        }
    }
}
