/// Reference quantisers and dequantisers: plain loops, the definition of each format.

/// Largest magnitude a q8 value takes. -128 is excluded to keep the range symmetric.
public let q8MaxMagnitude: Float = 127

/// Quantises one output channel of `count` fp32 weights to q8 and returns its scale.
///
/// scale = max|w| / 127; q = round-half-away-from-zero(w / scale), clamped to [-127, 127].
/// A channel with max|w| = 0 gets scale 0 and all-zero q, so it dequantises to exact zeros (never 0/0).
/// Non-finite weights are refused by the caller before this is reached.
public func quantizeQ8Ref(_ w: UnsafePointer<Float>, count: Int, into q: UnsafeMutablePointer<Int8>) -> Float {
    var maxAbs: Float = 0
    for i in 0 ..< count { maxAbs = max(maxAbs, abs(w[i])) }
    guard maxAbs > 0 else {
        q.initialize(repeating: 0, count: count)
        return 0
    }
    let scale = maxAbs / q8MaxMagnitude
    let inverse = 1 / scale
    for i in 0 ..< count {
        let v = (w[i] * inverse).rounded(.toNearestOrAwayFromZero)
        q[i] = Int8(max(-q8MaxMagnitude, min(q8MaxMagnitude, v)))
    }
    return scale
}

/// w = scale · q for each of `count` values.
@inlinable public func dequantizeQ8Ref(_ q: UnsafePointer<Int8>, scale: Float, count: Int, into out: UnsafeMutablePointer<Float>) {
    for i in 0 ..< count { out[i] = scale * Float(q[i]) }
}

/// fp32 → IEEE binary16 bit patterns, round to nearest even (the conversion the hardware performs).
public func quantizeF16Ref(_ w: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<UInt16>) {
    for i in 0 ..< count { out[i] = Float16(w[i]).bitPattern }
}

/// IEEE binary16 bit patterns → fp32 (exact: every binary16 value is a binary32 value).
@inlinable public func dequantizeF16Ref(_ h: UnsafePointer<UInt16>, count: Int, into out: UnsafeMutablePointer<Float>) {
    for i in 0 ..< count { out[i] = Float(Float16(bitPattern: h[i])) }
}

/// IEEE/bfloat16 bit patterns → fp32 (exact: bf16 is the top half of a binary32).
@inlinable public func dequantizeBF16Ref(_ h: UnsafePointer<UInt16>, count: Int, into out: UnsafeMutablePointer<Float>) {
    for i in 0 ..< count { out[i] = Float(bitPattern: UInt32(h[i]) << 16) }
}
