/// F(2×2, 3×3) transforms, SIMD8 (8 tiles per vector). Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],
/// Aᵀ = [1 1 1 0; 0 1 −1 −1]: additions only.
@usableFromInline
enum F32WinogradF2x3SIMD8: F32WinogradTransforms {
    @usableFromInline static var tile: WinogradTile { .f2x3 }

    @inlinable @inline(__always)
    static func input(_ s: UnsafePointer<Float>, _ ss: Int, _ d: UnsafeMutablePointer<Float>, _ ds: Int) {
        let d0 = winogradLoad(s), d1 = winogradLoad(s + ss), d2 = winogradLoad(s + 2 * ss), d3 = winogradLoad(s + 3 * ss)
        winogradStore(d0 - d2, d)
        winogradStore(d1 + d2, d + ds)
        winogradStore(d2 - d1, d + 2 * ds)
        winogradStore(d1 - d3, d + 3 * ds)
    }

    @inlinable @inline(__always)
    static func output(_ s: UnsafePointer<Float>, _ ss: Int, _ d: UnsafeMutablePointer<Float>, _ ds: Int) {
        let m0 = winogradLoad(s), m1 = winogradLoad(s + ss), m2 = winogradLoad(s + 2 * ss), m3 = winogradLoad(s + 3 * ss)
        winogradStore(m0 + m1 + m2, d)
        winogradStore(m1 - m2 - m3, d + ds)
    }
}
