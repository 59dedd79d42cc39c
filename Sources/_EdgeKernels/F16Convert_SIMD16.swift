import _EdgeCore

/// fp32 ⇄ fp16 for activations kept in half precision while they wait (the int8 path's skip connections):
/// half the bytes for a value that is read again only much later.
///
/// The stored format is IEEE binary16 restricted to normal numbers: x is rounded to the nearest binary16
/// (ties to even); |x| < 2⁻¹⁴ (binary16's smallest normal, 6.1e-5) is stored as ±0 and |x| > 65504 as ±65504,
/// so a stored value is always finite and converts back exactly. `convertF32ToF16Ref` / `convertF16ToF32Ref`
/// are the scalar twins (the standard library's Float16 on the clamped value); these give the same bits.
///
/// Why bit operations and not Float16 vectors: without F16C (this package builds for baseline x86-64) a
/// `SIMD16<Float16>` conversion is sixteen library calls; this is a multiply and a few integer ops per lane.
/// Encoding: y = clamp(|x|)·2⁻¹¹² moves binary16's exponent bias into fp32's field (exact: a power of two, and
/// y stays normal for every |x| ≥ 2⁻¹⁴), then the top 19 bits are rounded to 16 with round-half-even.
/// Decoding: the 15 magnitude bits shifted into place, times 2¹¹², sign restored.
///
/// - Threads: 64 k-value chunks over `threads`; results do not depend on the count. out must not alias x.
public func convertF32ToF16(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<UInt16>, threads: Threads) {
    let workers = min(threads.count, max(1, count / 65_536))
    threads.parallelFor(workers, LaneMapTask<EncodeHalf>(x: x, out: out, count: count, workers: workers))
}

/// The inverse of `convertF32ToF16`: exact.
public func convertF16ToF32(_ x: UnsafePointer<UInt16>, count: Int, into out: UnsafeMutablePointer<Float>, threads: Threads) {
    let workers = min(threads.count, max(1, count / 65_536))
    threads.parallelFor(workers, LaneMapTask<DecodeHalf>(x: x, out: out, count: count, workers: workers))
}

/// A 16-lane function, as a type (so the task that applies it is specialised, with no closure to carry).
private protocol LaneMap {
    associatedtype In: SIMDScalar
    associatedtype Out: SIMDScalar
    static func map(_ x: SIMD16<In>) -> SIMD16<Out>
}

private enum EncodeHalf: LaneMap {
    static func map(_ x: SIMD16<Float>) -> SIMD16<UInt16> { encodeHalf16(x) }
}

private enum DecodeHalf: LaneMap {
    static func map(_ x: SIMD16<UInt16>) -> SIMD16<Float> { decodeHalf16(x) }
}

/// Worker t maps its share of [0, count) 16 values at a time; a last partial vector goes through a padded copy.
private struct LaneMapTask<Map: LaneMap>: ParallelTask {
    let x: UnsafePointer<Map.In>, out: UnsafeMutablePointer<Map.Out>, count: Int, workers: Int

    func run(_ t: Int) {
        let range = Threads.share(t, of: count, workers: workers)
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            UnsafeMutableRawPointer(out + i).storeBytes(of: Map.map(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Map.In>.self)),
                                                        as: SIMD16<Map.Out>.self)
            i += 16
        }
        if i < range.upperBound {
            var v = SIMD16<Map.In>()
            for j in 0 ..< range.upperBound - i { v[j] = x[i + j] }
            let y = Map.map(v)
            for j in 0 ..< range.upperBound - i { out[i + j] = y[j] }
        }
    }
}

@inline(__always) func encodeHalf16(_ x: SIMD16<Float>) -> SIMD16<UInt16> {
    let bits = unsafeBitCast(x, to: SIMD16<UInt32>.self)
    let sign = (bits & 0x8000_0000) &>> 16
    var magnitude = unsafeBitCast(bits & 0x7FFF_FFFF, to: SIMD16<Float>.self)
    magnitude = magnitude.replacing(with: 65504, where: magnitude .> 65504)
    let tiny = magnitude .< 0x1p-14
    let y = unsafeBitCast(magnitude * 0x1p-112, to: SIMD16<UInt32>.self)
    var h = (y &+ 0x0FFF &+ ((y &>> 13) & 1)) &>> 13
    h = h.replacing(with: 0, where: tiny)
    return SIMD16<UInt16>(truncatingIfNeeded: h | sign)
}

@inline(__always) func decodeHalf16(_ h: SIMD16<UInt16>) -> SIMD16<Float> {
    let w = SIMD16<UInt32>(truncatingIfNeeded: h)
    let magnitude = unsafeBitCast((w & 0x7FFF) &<< 13, to: SIMD16<Float>.self) * 0x1p112
    return unsafeBitCast(unsafeBitCast(magnitude, to: SIMD16<UInt32>.self) | ((w & 0x8000) &<< 16), to: SIMD16<Float>.self)
}
