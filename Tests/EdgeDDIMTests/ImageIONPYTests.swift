import Foundation
import XCTest
import _EdgeCore
import EdgeImageIO

/// .npy reading and writing against files numpy wrote.
final class ImageIONPYTests: XCTestCase {
    /// numpy's (arange(120) − 60)/7 in float32: each value one float subtraction and one float division.
    static let reference: [Float] = (0..<120).map { (Float($0) - 60) / 7 }

    func testReadsNumpyFiles() throws {
        for file in ["npy/f4_v1_2x3x4x5.npy", "npy/f4_v2_2x3x4x5.npy"] {
            let a = try NPY.read(path: SamplerFixtures.path(file))
            XCTAssertEqual(a.shape, [2, 3, 4, 5], file)
            XCTAssertEqual(a.values, Self.reference, file)
        }
        XCTAssertEqual(try NPY.read(path: SamplerFixtures.path("npy/f4_v1_1d_7.npy")), NPYArray(shape: [7], values: (0..<7).map { Float($0) * 0.25 }))
        XCTAssertEqual(try NPY.read(path: SamplerFixtures.path("npy/f4_v1_scalar_count1.npy"), expectedShape: [1, 1, 1, 1]), [1.5])
    }

    func testWritesWhatNumpyWrites() throws {
        let numpy = try SamplerFixtures.bytes("npy/f4_v1_2x3x4x5.npy")
        XCTAssertEqual(try NPY.encode(Self.reference, shape: [2, 3, 4, 5]), numpy)
        XCTAssertEqual(try NPY.encode((0..<7).map { Float($0) * 0.25 }, shape: [7]),
                       try SamplerFixtures.bytes("npy/f4_v1_1d_7.npy"))
    }

    func testRefusals() throws {
        let cases: [(String, String)] = [
            ("npy/f8_2x3.npy", "'<f8'"),
            ("npy/bigendian_f4_2x3.npy", "'>f4'"),
            ("npy/fortran_f4_2x3.npy", "Fortran"),
        ]
        for (file, expect) in cases {
            XCTAssertThrowsError(try NPY.read(path: SamplerFixtures.path(file))) { error in
                XCTAssertTrue("\(error)".contains(expect), "\(file): \(error)")
                XCTAssertTrue("\(error)".contains(file), "the error names the file: \(error)")
            }
        }
        let good = try SamplerFixtures.bytes("npy/f4_v1_2x3x4x5.npy")
        XCTAssertThrowsError(try NPY.decode(Array(good.dropLast(3)))) {
            XCTAssertTrue("\($0)".contains("truncated"), "\($0)")
        }
        XCTAssertThrowsError(try NPY.decode(Array(good.prefix(40)))) { XCTAssertTrue("\($0)".contains("truncated"), "\($0)") }
        XCTAssertThrowsError(try NPY.decode(good + [0, 0, 0, 0])) { XCTAssertTrue("\($0)".contains("unexpected"), "\($0)") }
        var badMagic = good
        badMagic[1] = UInt8(ascii: "X")
        XCTAssertThrowsError(try NPY.decode(badMagic)) { XCTAssertTrue("\($0)".contains("magic"), "\($0)") }
        XCTAssertThrowsError(try NPY.read(path: SamplerFixtures.path("npy/f4_v1_2x3x4x5.npy"), expectedShape: [2, 3, 4, 6])) {
            let text = "\($0)"
            XCTAssertTrue(text.contains("(2, 3, 4, 5)") && text.contains("(2, 3, 4, 6)"), text)
        }
        XCTAssertThrowsError(try NPY.read(path: SamplerFixtures.path("npy/missing.npy"))) {
            XCTAssertTrue("\($0)".contains("missing.npy"), "\($0)")
        }
    }

    func testRoundTripAndAtomicWrite() throws {
        let dir = try SamplerFixtures.temporaryDirectory(self)
        let values: [Float] = [0, -0.0, 1.5, .infinity, -.greatestFiniteMagnitude, .leastNonzeroMagnitude, 3.25, 1e-20]
        for shape in [[8], [2, 4], [1, 2, 2, 2], [2, 1, 1, 4, 1]] {
            let path = dir + "/a.npy"
            try NPY.write(values, shape: shape, to: path)
            let back = try NPY.read(path: path)
            XCTAssertEqual(back.shape, shape)
            XCTAssertEqual(back.values.map(\.bitPattern), values.map(\.bitPattern))
            let bytes = try readWholeFile(path)
            let headerEnd = 10 + Int(bytes[8]) + Int(bytes[9]) << 8
            XCTAssertEqual(headerEnd % 64, 0, "data starts 64-byte aligned, as numpy writes it")
            XCTAssertEqual(bytes[headerEnd - 1], 0x0A)
        }
        XCTAssertThrowsError(try NPY.write(values, shape: [3, 3], to: dir + "/b.npy")) {
            XCTAssertTrue("\($0)".contains("(3, 3)"), "\($0)")
        }
        XCTAssertThrowsError(try NPY.write(values, shape: [8], to: "/nonexistent-edge-ddim-dir/a.npy")) {
            XCTAssertTrue("\($0)".contains("/nonexistent-edge-ddim-dir/a.npy"), "\($0)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["a.npy"])
    }
}
