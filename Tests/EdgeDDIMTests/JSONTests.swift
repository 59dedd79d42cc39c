import XCTest
import EdgeConvert

final class JSONTests: XCTestCase {
    func testParsesValues() throws {
        let v = try JSONValue.parse(Array(#"{"a": [1, -2.5e3, true, null, "x\u00e9\n"], "b": {"c": 9007199254740993}}"#.utf8), context: "t")
        XCTAssertEqual(v["a"], .array([.int(1), .double(-2500), .bool(true), .null, .string("xé\n")]))
        // Integers stay exact beyond 2^53.
        XCTAssertEqual(v["b"]?["c"], .int(9_007_199_254_740_993))
    }

    func testRejectsMalformedInput() {
        for text in ["", "{", "[1,]", "{\"a\" 1}", "01x", "\"\\q\"", "[1] 2", "\"\u{01}\"", String(repeating: "[", count: 100)] {
            XCTAssertThrowsError(try JSONValue.parse(Array(text.utf8), context: "t"), "accepted \(text)")
        }
    }
}
