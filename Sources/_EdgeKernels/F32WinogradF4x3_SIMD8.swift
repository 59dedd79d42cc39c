/// F(4×4, 3×3) transforms, SIMD8 (8 tiles per vector), points 0, ±1, ±2, ∞:
///
///     Bᵀ d:  r0 = 4d0 − 5d2 + d4                      r5 = 4d1 − 5d3 + d5
///            r1,2 = (d4 − 4d2) ± (d3 − 4d1)            r3,4 = (d4 − d2) ± 2(d3 − d1)
///     Aᵀ m:  with a = m1 + m2, b = m1 − m2, c = m3 + m4, e = m3 − m4:
///            y0 = m0 + a + c,  y1 = b + 2e,  y2 = a + 4c,  y3 = b + 8e + m5
@usableFromInline
enum F32WinogradF4x3SIMD8: F32WinogradTransforms {
    @usableFromInline static var tile: WinogradTile { .f4x3 }

    @inlinable @inline(__always)
    static func input(_ s: UnsafePointer<Float>, _ ss: Int, _ d: UnsafeMutablePointer<Float>, _ ds: Int) {
        let d0 = winogradLoad(s), d1 = winogradLoad(s + ss), d2 = winogradLoad(s + 2 * ss)
        let d3 = winogradLoad(s + 3 * ss), d4 = winogradLoad(s + 4 * ss), d5 = winogradLoad(s + 5 * ss)
        let p = d4 - 4 * d2, q = d3 - 4 * d1
        let u = d4 - d2, w = 2 * (d3 - d1)
        winogradStore(4 * d0 - 5 * d2 + d4, d)
        winogradStore(p + q, d + ds)
        winogradStore(p - q, d + 2 * ds)
        winogradStore(u + w, d + 3 * ds)
        winogradStore(u - w, d + 4 * ds)
        winogradStore(4 * d1 - 5 * d3 + d5, d + 5 * ds)
    }

    @inlinable @inline(__always)
    static func output(_ s: UnsafePointer<Float>, _ ss: Int, _ d: UnsafeMutablePointer<Float>, _ ds: Int) {
        let m0 = winogradLoad(s), m1 = winogradLoad(s + ss), m2 = winogradLoad(s + 2 * ss)
        let m3 = winogradLoad(s + 3 * ss), m4 = winogradLoad(s + 4 * ss), m5 = winogradLoad(s + 5 * ss)
        let a = m1 + m2, b = m1 - m2, c = m3 + m4, e = m3 - m4
        winogradStore(m0 + a + c, d)
        winogradStore(b + 2 * e, d + ds)
        winogradStore(a + 4 * c, d + 2 * ds)
        winogradStore(b + 8 * e + m5, d + 3 * ds)
    }
}
