/// fp32 GEMM microkernel, 8×16 tile, `SIMD16<Float>` (x86-64 AVX-512: 8 zmm accumulators, one zmm of B per k,
/// A broadcast from memory). The default tile on x86-64; compiled and tested on every architecture.
///
/// Computes one MR×NR = 8×16 tile of C over one K block of `kc` terms:
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
/// - `b`: packed B panel, [kc][16]; columns ≥ `columns` zero-padded. Exactly 16·kc floats are read.
/// - `c`: row-major with leading dimension `ldc` (floats); `residual`, when given, has the same layout and
///   must not alias `c` unless this is the only K block.
/// - `bias`: `rows` floats, or nil. The driver passes it on the first K block only, and `residual`/`scale`
///   on the last K block only, so a blocked product is ((acc₀ + bias) + acc₁ + … + residual) · scale.
/// - No alignment is assumed (unaligned vector loads and stores); nothing past the stated extents is read.
/// - 1 ≤ rows ≤ 8, 1 ≤ columns ≤ 16, kc ≥ 0.
///
/// The arithmetic of every element is independent of the tile shape, so this kernel and `f32Gemm8x8SIMD`
/// produce bitwise-identical results.
public func f32Gemm8x16SIMD(kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                            c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int,
                            accumulate: Bool, bias: UnsafePointer<Float>?,
                            residual: UnsafePointer<Float>?, scale: Float) {
    precondition(kc >= 0 && rows >= 1 && rows <= 8 && columns >= 1 && columns <= 16 && ldc >= columns)
    typealias V = SIMD16<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V(), c6 = V(), c7 = V()
    var ap = a, bp = UnsafeRawPointer(b)
    var k = kc
    while k >= 2 {
        let b0 = bp.loadUnaligned(as: V.self)
        c0 = c0.addingProduct(ap[0], b0); c1 = c1.addingProduct(ap[1], b0)
        c2 = c2.addingProduct(ap[2], b0); c3 = c3.addingProduct(ap[3], b0)
        c4 = c4.addingProduct(ap[4], b0); c5 = c5.addingProduct(ap[5], b0)
        c6 = c6.addingProduct(ap[6], b0); c7 = c7.addingProduct(ap[7], b0)
        let b1 = bp.loadUnaligned(fromByteOffset: 64, as: V.self)
        c0 = c0.addingProduct(ap[8], b1); c1 = c1.addingProduct(ap[9], b1)
        c2 = c2.addingProduct(ap[10], b1); c3 = c3.addingProduct(ap[11], b1)
        c4 = c4.addingProduct(ap[12], b1); c5 = c5.addingProduct(ap[13], b1)
        c6 = c6.addingProduct(ap[14], b1); c7 = c7.addingProduct(ap[15], b1)
        ap += 16; bp += 128; k -= 2
    }
    if k == 1 {
        let b0 = bp.loadUnaligned(as: V.self)
        c0 = c0.addingProduct(ap[0], b0); c1 = c1.addingProduct(ap[1], b0)
        c2 = c2.addingProduct(ap[2], b0); c3 = c3.addingProduct(ap[3], b0)
        c4 = c4.addingProduct(ap[4], b0); c5 = c5.addingProduct(ap[5], b0)
        c6 = c6.addingProduct(ap[6], b0); c7 = c7.addingProduct(ap[7], b0)
    }

    @inline(__always) func store(_ acc: V, _ r: Int) {
        let row = c + r * ldc
        var v = acc
        if columns == 16 {
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
