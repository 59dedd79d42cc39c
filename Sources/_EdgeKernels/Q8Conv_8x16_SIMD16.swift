/// int8 convolution tile kernel, 8 output channels × 16 positions, portable Swift SIMD (SIMD16<Int32>).
///
/// - **dtype / op**: Int8 weights × UInt8 activations → exact Int32 per tap, combined in fp32 (see
///   `conv2dQ8Ref` for the formula): `out[r][j] = Σ_t fma(Float(d_t[r][j]), scale[P_j + off_t], ·)`, taps in order.
/// - **ISA**: any. Each 4-channel group is widened to Int32 and multiplied lane-wise (4 multiply-adds per
///   weight byte group). It is the bit-exact twin of `Q8Conv_8x16_AVX512VNNI` (C) and the path on CPUs
///   without a dot-product instruction; the UNet only picks it there if asked (it is slower than fp32).
/// - **Contract**: `a` = one weight panel of `Q8ConvWeights` ([T][C4][8][4]); `sums` = its [T][8];
///   `b` = the quantised image at position P (plane 0), blocks `planeBytes` apart; per tap t it reads the
///   64 bytes at `b + 4·offsets[t]` of every block, and 16 `scales` / `zeros` from `offsets[t]` on —
///   the caller guarantees all of that lies inside the buffers (positions past the image's last valid one
///   are padding). Writes `out` [8][16] fp32. No alignment assumed.
@inline(__always)
func q8ConvTile8x16SIMD(a: UnsafePointer<Int8>, sums: UnsafePointer<Int32>, b: UnsafePointer<UInt8>, planeBytes: Int, blocks: Int,
                        offsets: UnsafePointer<Int32>, taps: Int, scales: UnsafePointer<Float>, zeros: UnsafePointer<Int32>,
                        out: UnsafeMutablePointer<Float>) {
    typealias I = SIMD16<Int32>
    typealias F = SIMD16<Float>
    var f0 = F(), f1 = F(), f2 = F(), f3 = F(), f4 = F(), f5 = F(), f6 = F(), f7 = F()
    for t in 0 ..< taps {
        let off = Int(offsets[t])
        var a0 = I(), a1 = I(), a2 = I(), a3 = I(), a4 = I(), a5 = I(), a6 = I(), a7 = I()
        var w = a + t * blocks * 32
        var src = UnsafeRawPointer(b + 4 * off)
        for _ in 0 ..< blocks {
            let words = src.loadUnaligned(as: SIMD16<UInt32>.self)
            let x0 = I(truncatingIfNeeded: words & 0xFF), x1 = I(truncatingIfNeeded: (words &>> 8) & 0xFF)
            let x2 = I(truncatingIfNeeded: (words &>> 16) & 0xFF), x3 = I(truncatingIfNeeded: words &>> 24)
            @inline(__always) func dot(_ r: Int) -> I {
                let p = w + 4 * r
                return x0 &* Int32(p[0]) &+ x1 &* Int32(p[1]) &+ x2 &* Int32(p[2]) &+ x3 &* Int32(p[3])
            }
            a0 &+= dot(0); a1 &+= dot(1); a2 &+= dot(2); a3 &+= dot(3)
            a4 &+= dot(4); a5 &+= dot(5); a6 &+= dot(6); a7 &+= dot(7)
            w += 32
            src += planeBytes
        }
        let scale = UnsafeRawPointer(scales + off).loadUnaligned(as: F.self)
        let zero = UnsafeRawPointer(zeros + off).loadUnaligned(as: I.self)
        let s = sums + t * 8
        f0 = f0.addingProduct(F(a0 &- zero &* s[0]), scale); f1 = f1.addingProduct(F(a1 &- zero &* s[1]), scale)
        f2 = f2.addingProduct(F(a2 &- zero &* s[2]), scale); f3 = f3.addingProduct(F(a3 &- zero &* s[3]), scale)
        f4 = f4.addingProduct(F(a4 &- zero &* s[4]), scale); f5 = f5.addingProduct(F(a5 &- zero &* s[5]), scale)
        f6 = f6.addingProduct(F(a6 &- zero &* s[6]), scale); f7 = f7.addingProduct(F(a7 &- zero &* s[7]), scale)
    }
    let o = UnsafeMutableRawPointer(out)
    o.storeBytes(of: f0, toByteOffset: 0, as: F.self); o.storeBytes(of: f1, toByteOffset: 64, as: F.self)
    o.storeBytes(of: f2, toByteOffset: 128, as: F.self); o.storeBytes(of: f3, toByteOffset: 192, as: F.self)
    o.storeBytes(of: f4, toByteOffset: 256, as: F.self); o.storeBytes(of: f5, toByteOffset: 320, as: F.self)
    o.storeBytes(of: f6, toByteOffset: 384, as: F.self); o.storeBytes(of: f7, toByteOffset: 448, as: F.self)
}
