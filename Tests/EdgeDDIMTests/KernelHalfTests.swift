import XCTest
import _EdgeCore
import _EdgeKernels

/// convertF32ToF16 / convertF16ToF32 (bit operations, 16 lanes) against their scalar twins (the standard
/// library's Float16 on the clamped value): the same bits, over every magnitude binary16 can hold and past it.
final class KernelHalfTests: XCTestCase {
    func testConversionsMatchTheScalarTwinsBitwise() {
        var random = TestRandom(seed: 46)
        // Exponents −30…20 (below the smallest normal, through the normal range, past 65504), both signs, plus the
        // edges: ±0, the smallest normal and just below it, ties to even (1 + 2⁻¹¹, 1 + 3·2⁻¹¹), the largest
        // finite, what IEEE rounds to infinity (65520), and far past it.
        var values: [Float] = [0, -0.0, 0x1p-14, 0x1.fffffep-15, -0x1p-14, 1 + 0x1p-11, 1 + 3 * 0x1p-11, 65504, 65519, 65520, -70000, 1e30, 1]
        for _ in 0 ..< 20_000 { values.append(random.float() * Float(sign: .plus, exponent: random.int(-30 ... 20), significand: 1)) }
        for count in [values.count, 1, 15, 17, 40] {   // whole vectors and remainders
            let x = Array(values.prefix(count))
            var fast = [UInt16](repeating: 0xFFFF, count: count), slow = fast
            for threads in [1, 2] { convertF32ToF16(x, count: count, into: &fast, threads: Threads(threads)) }
            convertF32ToF16Ref(x, count: count, into: &slow)
            XCTAssertEqual(fast, slow, "encode, \(count) values")
            var back = [Float](repeating: .nan, count: count), backRef = back
            convertF16ToF32(fast, count: count, into: &back, threads: Threads(2))
            convertF16ToF32Ref(fast, count: count, into: &backRef)
            XCTAssertEqual(back.map(\.bitPattern), backRef.map(\.bitPattern), "decode, \(count) values")
        }
        // The format's promises: finite, within half an ulp of binary16 in the normal range, tiny values to ±0.
        var h = [UInt16](repeating: 0, count: values.count), y = [Float](repeating: 0, count: values.count)
        convertF32ToF16(values, count: values.count, into: &h, threads: Threads(1))
        convertF16ToF32(h, count: values.count, into: &y, threads: Threads(1))
        for (x, v) in zip(values, y) {
            XCTAssertTrue(v.isFinite)
            let m = abs(x)
            if m < 0x1p-14 { XCTAssertEqual(v, 0) } else if m <= 65504 { XCTAssertLessThanOrEqual(abs(v - x), m * 0x1p-11, "\(x)") } else { XCTAssertEqual(abs(v), 65504) }
        }
    }
}
