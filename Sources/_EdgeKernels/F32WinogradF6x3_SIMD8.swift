/// F(6×6, 3×3) transforms, SIMD8 (8 tiles per vector), points 0, ±1, ±2, ±½, ∞ (the rows of `WinogradTile.f6x3`'s
/// matrices, paired so each pair shares its even and odd halves):
///
///     Bᵀ d:  r0 = d0 − d6 + 5.25(d4 − d2)                        r7 = d7 − d1 + 5.25(d3 − d5)
///            r1,2 = (d2 + d6 − 4.25d4) ± (d1 + d5 − 4.25d3)
///            r3,4 = (0.25d2 − 1.25d4 + d6) ± (0.5d1 − 2.5d3 + 2d5)
///            r5,6 = (4d2 − 5d4 + d6) ± (2d1 − 2.5d3 + 0.5d5)
///     Aᵀ m:  with a = m1 + m2, b = m1 − m2, c = m3 + m4, e = m3 − m4, f = m5 + m6, h = m5 − m6:
///            y0 = m0 + a + c + f,  y1 = b + 2e + h/2,  y2 = a + 4c + f/4,  y3 = b + 8e + h/8,
///            y4 = a + 16c + f/16,  y5 = b + 32e + h/32 + m7
@usableFromInline
enum F32WinogradF6x3SIMD8: F32WinogradTransforms {
    @usableFromInline static var tile: WinogradTile { .f6x3 }

    @inlinable @inline(__always)
    static func input(_ s: UnsafePointer<Float>, _ ss: Int, _ d: UnsafeMutablePointer<Float>, _ ds: Int) {
        let d0 = winogradLoad(s), d1 = winogradLoad(s + ss), d2 = winogradLoad(s + 2 * ss), d3 = winogradLoad(s + 3 * ss)
        let d4 = winogradLoad(s + 4 * ss), d5 = winogradLoad(s + 5 * ss), d6 = winogradLoad(s + 6 * ss), d7 = winogradLoad(s + 7 * ss)
        winogradStore(d0 - d6 + 5.25 * (d4 - d2), d)
        let e1 = d2 + d6 - 4.25 * d4, o1 = d1 + d5 - 4.25 * d3
        winogradStore(e1 + o1, d + ds)
        winogradStore(e1 - o1, d + 2 * ds)
        let e3 = 0.25 * d2 - 1.25 * d4 + d6, o3 = 0.5 * d1 - 2.5 * d3 + 2 * d5
        winogradStore(e3 + o3, d + 3 * ds)
        winogradStore(e3 - o3, d + 4 * ds)
        let e5 = 4 * d2 - 5 * d4 + d6, o5 = 2 * d1 - 2.5 * d3 + 0.5 * d5
        winogradStore(e5 + o5, d + 5 * ds)
        winogradStore(e5 - o5, d + 6 * ds)
        winogradStore(d7 - d1 + 5.25 * (d3 - d5), d + 7 * ds)
    }

    @inlinable @inline(__always)
    static func output(_ s: UnsafePointer<Float>, _ ss: Int, _ d: UnsafeMutablePointer<Float>, _ ds: Int) {
        let m0 = winogradLoad(s), m1 = winogradLoad(s + ss), m2 = winogradLoad(s + 2 * ss), m3 = winogradLoad(s + 3 * ss)
        let m4 = winogradLoad(s + 4 * ss), m5 = winogradLoad(s + 5 * ss), m6 = winogradLoad(s + 6 * ss), m7 = winogradLoad(s + 7 * ss)
        let a = m1 + m2, b = m1 - m2, c = m3 + m4, e = m3 - m4, f = m5 + m6, h = m5 - m6
        winogradStore(m0 + a + c + f, d)
        winogradStore(b + 2 * e + 0.5 * h, d + ds)
        winogradStore(a + 4 * c + 0.25 * f, d + 2 * ds)
        winogradStore(b + 8 * e + 0.125 * h, d + 3 * ds)
        winogradStore(a + 16 * c + 0.0625 * f, d + 4 * ds)
        winogradStore(b + 32 * e + 0.03125 * h + m7, d + 5 * ds)
    }
}
