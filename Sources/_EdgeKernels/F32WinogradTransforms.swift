/// The two 1-D transforms of one Winograd tile, applied to 8 tiles at once (one per lane of a `SIMD8<Float>`).
/// `conv2dWinogradF32` applies each twice — along rows, then along columns — so Bᵀ d B and Aᵀ M A cost 2α
/// calls of a short straight-line sequence that shares subexpressions, instead of 2α³ multiply-adds.
///
/// Contract, for both: reads vectors src + k·srcStride (k < α), writes dst + k·dstStride (k < α for `input`,
/// k < m for `output`); strides in floats, no alignment assumed, src and dst must not overlap.
/// (`@inlinable` so that a debug build, which compiles files one by one, still inlines them into the block loops.)
/// They compute exactly what `WinogradTile.inputTransform` / `outputTransform` say, in a different order.
@usableFromInline
protocol F32WinogradTransforms {
    static var tile: WinogradTile { get }
    /// dst = Bᵀ src.
    static func input(_ src: UnsafePointer<Float>, _ srcStride: Int, _ dst: UnsafeMutablePointer<Float>, _ dstStride: Int)
    /// dst = Aᵀ src.
    static func output(_ src: UnsafePointer<Float>, _ srcStride: Int, _ dst: UnsafeMutablePointer<Float>, _ dstStride: Int)
}

@usableFromInline typealias WinogradVector = SIMD8<Float>

@inlinable @inline(__always) func winogradLoad(_ p: UnsafePointer<Float>) -> WinogradVector {
    UnsafeRawPointer(p).loadUnaligned(as: WinogradVector.self)
}

@inlinable @inline(__always) func winogradStore(_ v: WinogradVector, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: WinogradVector.self)
}
