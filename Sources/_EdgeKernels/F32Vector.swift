/// The vector width of the element-wise fp32 kernels (GroupNorm, softmax, SiLU): 16 lanes (one zmm) on
/// x86-64, 8 lanes (two q registers) on ARM64, where 16-lane temporaries would spill the polynomial.
#if arch(arm64)
typealias F32Vector = SIMD8<Float>
typealias I32Vector = SIMD8<Int32>
#else
typealias F32Vector = SIMD16<Float>
typealias I32Vector = SIMD16<Int32>
#endif

@inline(__always) func loadVector(_ p: UnsafePointer<Float>) -> F32Vector {
    UnsafeRawPointer(p).loadUnaligned(as: F32Vector.self)
}

@inline(__always) func storeVector(_ v: F32Vector, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F32Vector.self)
}

/// Loads `count` < lanes floats; the other lanes are `fill`.
@inline(__always) func loadPartialVector(_ p: UnsafePointer<Float>, _ count: Int, fill: Float) -> F32Vector {
    var v = F32Vector(repeating: fill)
    for l in 0 ..< count { v[l] = p[l] }
    return v
}

@inline(__always) func storePartialVector(_ v: F32Vector, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
    for l in 0 ..< count { p[l] = v[l] }
}

/// Lane-wise max / min by compare-and-blend. (The standard library's pointwiseMax / pointwiseMin / clamped
/// follow IEEE maximum/minimum NaN rules lane by lane and compile to scalar loops.) A NaN lane of `a` stays NaN
/// (the comparison is false); a NaN lane of `b` gives `a`'s lane.
@inline(__always) func vmax(_ a: F32Vector, _ b: F32Vector) -> F32Vector { a.replacing(with: b, where: a .< b) }
@inline(__always) func vmin(_ a: F32Vector, _ b: F32Vector) -> F32Vector { a.replacing(with: b, where: b .< a) }

/// e^x per lane: Cephes' expf (range reduction x = n·ln2 + r with a two-part ln2, degree-5 minimax
/// polynomial for e^r, 2^n built in the exponent field). Relative error ≤ 2 ulp over the clamped range
/// [−87.3, 88.3]; inputs below it give ≈ 1.2e−38 instead of a subnormal or 0, inputs above it ≈ 2.2e38
/// instead of inf; NaN stays NaN.
@_transparent func expVector(_ x: F32Vector) -> F32Vector {
    let x = vmin(vmax(x, F32Vector(repeating: -87.3)), F32Vector(repeating: 88.3))
    // t = x·log2(e) + 1.5·2²³: the float's low mantissa bits now hold round(x·log2(e)).
    let magic = F32Vector(repeating: 12_582_912)
    let t = magic.addingProduct(x, 1.442_695_04)
    let n = t - magic
    var r = x.addingProduct(n, -0.693_359_375)
    r = r.addingProduct(n, 2.121_944_4e-4)
    var p = F32Vector(repeating: 1.987_569_15e-4)
    p = F32Vector(repeating: 1.398_199_950_7e-3).addingProduct(p, r)
    p = F32Vector(repeating: 8.333_451_907_3e-3).addingProduct(p, r)
    p = F32Vector(repeating: 4.166_579_589_4e-2).addingProduct(p, r)
    p = F32Vector(repeating: 1.666_666_545_9e-1).addingProduct(p, r)
    p = F32Vector(repeating: 5.000_000_120_1e-1).addingProduct(p, r)
    let y = (r + 1).addingProduct(p, r * r)
    let bits = (unsafeBitCast(t, to: I32Vector.self) &- 0x4B40_0000 &+ 127) &<< 23
    return y * unsafeBitCast(bits, to: F32Vector.self)
}

/// SiLU per lane: y / (1 + e^(−y)).
@inline(__always) func siluVector(_ y: F32Vector) -> F32Vector {
    y / (1 + expVector(-y))
}

/// `siluVector` over 16 lanes, lane for lane the same values (for kernels that work in 16-pixel runs).
@inline(__always) func siluVector16(_ y: SIMD16<Float>) -> SIMD16<Float> {
    #if arch(arm64)
    SIMD16(lowHalf: siluVector(y.lowHalf), highHalf: siluVector(y.highHalf))
    #else
    siluVector(y)
    #endif
}
