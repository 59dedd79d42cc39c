/// fp32 GEMM microkernel, 8×8 tile, `SIMD8<Float>` (ARM64 NEON: 8 SIMD8 accumulators = 16 q registers, two
/// q registers of B and two of A per k, `fmla` by element). The default tile on ARM64; compiled and tested on every architecture
/// (on x86-64 it runs on 8 ymm accumulators).
///
/// Computes one MR×NR = 8×8 tile of C over one K block of `kc` terms:
///
///     acc[r, j] = Σ_{k < kc} A[k][r] · B[k][j]          (one FMA chain per element, k ascending, from 0)
///     v = acc;  if accumulate { v = C[r, j] + v };  if bias { v = v + bias[r] }
///     if residual { v = v + residual[r, j] };  if scale != 1 { v = v · scale };  C[r, j] = v
///
/// for r < rows, j < columns; nothing else of C (or of `residual`) is read or written.
///
/// Contract:
/// - `a`: packed A panel, `kc` groups of 8 floats ([kc][8], row r of the tile at lane r). Rows ≥ `rows` must
///   be zero-padded by the packer (they are computed and discarded). Exactly 8·kc floats are read.
/// - `b`: packed B panel, [kc][8]; columns ≥ `columns` zero-padded. Exactly 8·kc floats are read.
/// - `c`: row-major with leading dimension `ldc` (floats); `residual`, when given, has the same layout and
///   must not alias `c` unless this is the only K block.
/// - `bias`: `rows` floats, or nil. The driver passes it on the first K block only, and `residual`/`scale`
///   on the last K block only, so a blocked product is ((acc₀ + bias) + acc₁ + … + residual) · scale.
/// - No alignment is assumed (unaligned vector loads and stores); nothing past the stated extents is read.
/// - 1 ≤ rows ≤ 8, 1 ≤ columns ≤ 8, kc ≥ 0.
///
/// The arithmetic of every element is independent of the tile shape, so this kernel and `f32Gemm8x16SIMD`
/// produce bitwise-identical results.
public func f32Gemm8x8SIMD(kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                            c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int,
                            accumulate: Bool, bias: UnsafePointer<Float>?,
                            residual: UnsafePointer<Float>?, scale: Float) {
    precondition(kc >= 0 && rows >= 1 && rows <= 8 && columns >= 1 && columns <= 8 && ldc >= columns)
    typealias V = SIMD8<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V(), c6 = V(), c7 = V()
    // A is loaded as two 4-lane vectors per k and used lane by lane, which NEON does with `fmla v.4s, v.4s, v.s[i]`
    // (no scalar loads or dups).
    var ap = UnsafeRawPointer(a), bp = UnsafeRawPointer(b)
    var k = kc
    @inline(__always) func step(_ aOffset: Int, _ bOffset: Int) {
        let b0 = bp.loadUnaligned(fromByteOffset: bOffset, as: V.self)
        let lo = ap.loadUnaligned(fromByteOffset: aOffset, as: SIMD4<Float>.self)
        let hi = ap.loadUnaligned(fromByteOffset: aOffset + 16, as: SIMD4<Float>.self)
        c0 = c0.addingProduct(lo[0], b0); c1 = c1.addingProduct(lo[1], b0)
        c2 = c2.addingProduct(lo[2], b0); c3 = c3.addingProduct(lo[3], b0)
        c4 = c4.addingProduct(hi[0], b0); c5 = c5.addingProduct(hi[1], b0)
        c6 = c6.addingProduct(hi[2], b0); c7 = c7.addingProduct(hi[3], b0)
    }
    while k >= 2 {
        step(0, 0)
        step(32, 32)
        ap += 64; bp += 64; k -= 2
    }
    if k == 1 { step(0, 0) }

    @inline(__always) func store(_ acc: V, _ r: Int) {
        let row = c + r * ldc
        var v = acc
        if columns == 8 {
            if accumulate { v = UnsafeRawPointer(row).loadUnaligned(as: V.self) + v }
            if let bias { v = v + bias[r] }
            if let residual { v = v + UnsafeRawPointer(residual + r * ldc).loadUnaligned(as: V.self) }
            if scale != 1 { v = v * scale }
            UnsafeMutableRawPointer(row).storeBytes(of: v, as: V.self)
        } else {
            if accumulate { var old = V(); for j in 0 ..< columns { old[j] = row[j] }; v = old + v }
            if let bias { v = v + bias[r] }
            if let residual { var rv = V(); let rr = residual + r * ldc; for j in 0 ..< columns { rv[j] = rr[j] }; v = v + rv }
            if scale != 1 { v = v * scale }
            for j in 0 ..< columns { row[j] = v[j] }
        }
    }
    store(c0, 0)
    if rows > 1 { store(c1, 1) }
    if rows > 2 { store(c2, 2) }
    if rows > 3 { store(c3, 3) }
    if rows > 4 { store(c4, 4) }
    if rows > 5 { store(c5, 5) }
    if rows > 6 { store(c6, 6) }
    if rows > 7 { store(c7, 7) }
}
