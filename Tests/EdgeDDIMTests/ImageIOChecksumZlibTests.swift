import XCTest
import _EdgeCore
import EdgeImageIO

/// CRC-32, Adler-32 and zlib against Python's zlib (values and streams made by the fixture script).
final class ImageIOChecksumZlibTests: XCTestCase {
    struct Checksums: Decodable {
        struct Entry: Decodable {
            let kind: String
            let text: String?
            let length: Int?
            let crc32: UInt32
            let adler32: UInt32
        }
        let entries: [Entry]
    }

    /// The fixture script's deterministic bytes: x ← (1103515245·x + 12345) mod 2³¹ from x = 1, byte = x >> 16.
    static func patternBytes(_ n: Int) -> [UInt8] {
        var x: UInt64 = 1
        return (0..<n).map { _ in
            x = (1_103_515_245 &* x &+ 12345) % (1 << 31)
            return UInt8((x >> 16) & 0xFF)
        }
    }

    func testKnownVectors() {
        // The check values of the CRC catalogue and RFC 1950's example.
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.checksum([UInt8]()), 0)
        XCTAssertEqual(Adler32.checksum(Array("Wikipedia".utf8)), 0x11E6_0398)
        XCTAssertEqual(Adler32.checksum([UInt8]()), 1)
    }

    func testChecksumsMatchPythonZlib() throws {
        let manifest = try SamplerFixtures.json("checksums.json", as: Checksums.self)
        XCTAssertEqual(manifest.entries.count, 12)
        for e in manifest.entries {
            let bytes: [UInt8]
            switch e.kind {
            case "string": bytes = Array(e.text!.utf8)
            case "pattern": bytes = Self.patternBytes(e.length!)
            default: bytes = [UInt8](repeating: 0xFF, count: e.length!)
            }
            XCTAssertEqual(CRC32.checksum(bytes), e.crc32, "crc32 of \(e.kind) \(e.text ?? String(e.length!))")
            XCTAssertEqual(Adler32.checksum(bytes), e.adler32, "adler32 of \(e.kind) \(e.text ?? String(e.length!))")
            // Incremental updates give the same value as one pass.
            let half = bytes.count / 2
            XCTAssertEqual(CRC32().updated(with: bytes[..<half]).updated(with: bytes[half...]).value, e.crc32)
            XCTAssertEqual(Adler32().updated(with: bytes[..<half]).updated(with: bytes[half...]).value, e.adler32)
        }
    }

    func testInflatesPythonStreams() throws {
        let plain = try SamplerFixtures.bytes("zlib/plain.bin")
        for name in ["level0_stored", "level1", "level9_dynamic", "fixed", "huffman_only", "rle"] {
            let stream = try SamplerFixtures.bytes("zlib/\(name).zlib")
            XCTAssertEqual(try Zlib.decompress(stream), plain, name)
        }
    }

    func testRoundTripBothCompressions() throws {
        let plain = try SamplerFixtures.bytes("zlib/plain.bin")
        let inputs: [[UInt8]] = [[], [7], Array(repeating: 0, count: 70_000), Self.patternBytes(100_000), plain,
                                 Array("abcabcabcabcabcabcabcabcabcabcabcabc".utf8)]
        for input in inputs {
            for mode in [Zlib.Compression.stored, .fixedHuffman] {
                let stream = Zlib.compress(input, mode)
                XCTAssertEqual(try Zlib.decompress(stream), input, "\(mode), \(input.count) bytes")
            }
        }
        // LZ77 + fixed Huffman must actually compress repetitive data.
        XCTAssertLessThan(Zlib.compress(plain, .fixedHuffman).count, plain.count / 2)
        XCTAssertLessThan(Zlib.compress(Array(repeating: 0, count: 70_000), .fixedHuffman).count, 1000)
    }

    func testCorruptStreamsAreRefused() throws {
        let good = Zlib.compress(Array("hello hello hello hello".utf8))
        var badAdler = good
        badAdler[badAdler.count - 1] ^= 1
        XCTAssertThrowsError(try Zlib.decompress(badAdler)) { XCTAssertTrue("\($0)".contains("Adler-32"), "\($0)") }
        XCTAssertThrowsError(try Zlib.decompress(Array(good.prefix(good.count - 6)))) {
            XCTAssertTrue("\($0)".contains("truncated"), "\($0)")
        }
        XCTAssertThrowsError(try Zlib.decompress([0x78, 0x9D, 0x03, 0x00])) { XCTAssertTrue("\($0)".contains("header"), "\($0)") }
        // Block type 3 is reserved.
        XCTAssertThrowsError(try Zlib.decompress([0x78, 0x9C, 0x07, 0x00, 0x00, 0x00, 0x01])) {
            XCTAssertTrue("\($0)".contains("block type"), "\($0)")
        }
        XCTAssertThrowsError(try Zlib.decompress(Zlib.compress(Self.patternBytes(5000)), limit: 100)) {
            XCTAssertTrue("\($0)".contains("more than 100"), "\($0)")
        }
    }
}
