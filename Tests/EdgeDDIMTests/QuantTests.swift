import XCTest
import _EdgeQuant

final class QuantTests: XCTestCase {
    /// Round-to-nearest int8 is off by at most half a step of max|w|/127 per element.
    static let q8HalfStep: Float = 0.5 / 127

    func testQ8RoundTripWithinHalfAStep() {
        var random = TestRandom(seed: 1)
        for count in [1, 2, 7, 64, 577] {
            let w = random.floats(count).map { $0 * 3 }
            var q = [Int8](repeating: 0, count: count), back = [Float](repeating: 0, count: count)
            let scale = quantizeQ8Ref(w, count: count, into: &q)
            dequantizeQ8Ref(q, scale: scale, count: count, into: &back)
            let maxAbs = w.map(abs).max()!
            XCTAssertEqual(scale, maxAbs / 127)
            XCTAssertTrue(q.allSatisfy { $0 >= -127 })
            // The largest-magnitude element maps to ±127 exactly.
            XCTAssertEqual(q.map { abs(Int($0)) }.max(), 127)
            for i in 0 ..< count { XCTAssertLessThanOrEqual(abs(back[i] - w[i]), maxAbs * Self.q8HalfStep * 1.0001) }
        }
    }

    func testQ8ZeroChannelGetsZeroScale() {
        let w = [Float](repeating: 0, count: 9)
        var q = [Int8](repeating: 5, count: 9), back = [Float](repeating: 1, count: 9)
        let scale = quantizeQ8Ref(w, count: 9, into: &q)
        XCTAssertEqual(scale, 0)
        XCTAssertEqual(q, [Int8](repeating: 0, count: 9))
        dequantizeQ8Ref(q, scale: scale, count: 9, into: &back)
        XCTAssertEqual(back, w)
        XCTAssertTrue(back.allSatisfy(\.isFinite))
    }

    func testF16AndBF16AreExactOnRepresentableValues() {
        let values: [Float] = [0, 1, -2.5, 0.0001220703125, 65504, -0.333251953125]
        var half = [UInt16](repeating: 0, count: values.count), back = [Float](repeating: 0, count: values.count)
        quantizeF16Ref(values, count: values.count, into: &half)
        dequantizeF16Ref(half, count: values.count, into: &back)
        XCTAssertEqual(back, values)
        let bf: [UInt16] = [0x3F80, 0xC020, 0x0000]  // 1, -2.5, 0
        dequantizeBF16Ref(bf, count: 3, into: &back)
        XCTAssertEqual(Array(back.prefix(3)), [1, -2.5, 0])
    }

    func testWeightMatrixRowsDequantise() {
        // Two rows of three int8 values with different scales.
        let q: [Int8] = [1, -2, 127, 0, 0, 0]
        let scales: [Float] = [0.5, 0]
        q.withUnsafeBytes { values in
            scales.withUnsafeBufferPointer { s in
                let m = WeightMatrix(type: .q8PerChannel, rows: 2, columns: 3, values: values.baseAddress!, scales: s.baseAddress!)
                var row = [Float](repeating: 9, count: 3)
                m.dequantizeRow(0, into: &row)
                XCTAssertEqual(row, [0.5, -1, 63.5])
                m.dequantizeRow(1, into: &row)
                XCTAssertEqual(row, [0, 0, 0])
            }
        }
    }
}
