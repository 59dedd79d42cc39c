import Foundation
import XCTest
import _EdgeCore
import EdgeGraph
import _EdgeQuant
import EdgeConvert
import EdgeImageIO
import EdgeModelFile
import EdgeSampler

/// Hostile input to every parser (the inputs of tools/fuzz/run.sh): each must end in one EdgeError naming
/// what is wrong, never a trap, an out-of-bounds read or an allocation sized by an unchecked field.
/// Every crash the fuzzers or a review found has a case here, named after the bug.
final class HardeningParserTests: XCTestCase {
    func assertRefused<T>(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T) {
        do {
            _ = try body()
            XCTFail("accepted; expected an error containing \(fragments)", file: file, line: line)
        } catch let e as EdgeError {
            for f in fragments { XCTAssertTrue(e.message.contains(f), "message \"\(e.message)\" lacks \"\(f)\"", file: file, line: line) }
            XCTAssertFalse(e.message.contains("\n"), file: file, line: line)
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }

    // MARK: config.json

    func unetConfig(_ json: String) throws -> UNetConfig {
        try DiffusersConfig.unet(try JSONValue.parse(Array(json.utf8), context: "config.json")).config
    }

    /// Review finding: checkedInt used abs(), which traps on Int.min, a valid JSON integer.
    func testMostNegativeIntegerIsOutOfRangeNotATrap() {
        assertRefused(["in_channels", "out of range"]) { try unetConfig(#"{"sample_size": 8, "in_channels": -9223372036854775808}"#) }
        assertRefused(["sample_size", "out of range"]) { try unetConfig(#"{"sample_size": [-9223372036854775808, -9223372036854775808]}"#) }
        assertRefused(["block_out_channels", "out of range"]) { try unetConfig(#"{"sample_size": 8, "block_out_channels": [-9223372036854775808]}"#) }
    }

    /// Review finding: the FLOP count multiplied in Int, so a large (not yet validated) config trapped on
    /// overflow; and validate accepted configs whose activations and FLOPs overflow Int at large batches.
    func testHugeConfigsAreRefusedByNameAndCountedWithoutOverflow() throws {
        var c = UNetConfig()
        c.sampleSize = 4096
        c.blockOutChannels = [16384]
        c.downBlockTypes = [.attnDown]
        c.upBlockTypes = [.attnUp]
        c.attentionHeadDim = nil
        XCTAssertGreaterThan(c.multiplyAccumulates(), 0)  // trapped before
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("sample_size"), "\($0)") }
        assertRefused(["sample_size", "attention over"]) {
            try unetConfig(#"{"sample_size": 4096, "block_out_channels": [32], "down_block_types": ["AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D"]}"#)
        }
        assertRefused(["sample_size", "must be in 1...4096"]) { try unetConfig(#"{"sample_size": 1000000}"#) }
        // The published configs stay well inside every bound.
        for fixture in ["cifar10-like", "celebahq-like", "two-level-midscale"] {
            let json = try JSONValue.parse(readWholeFile(fixturesRoot + "/unet/\(fixture)/config.json"), context: fixture)
            XCTAssertNoThrow(try DiffusersConfig.unet(json), fixture)
        }
    }

    func testSchedulerConfigIsValidatedAsAWhole() {
        func scheduler(_ json: String) throws -> NoiseScheduleConfig {
            try DiffusersConfig.scheduler(try JSONValue.parse(Array(json.utf8), context: "scheduler_config.json")).config
        }
        assertRefused(["num_train_timesteps"]) { try scheduler(#"{"num_train_timesteps": 0}"#) }
        assertRefused(["clip_sample_range"]) { try scheduler(#"{"clip_sample_range": -1}"#) }
        assertRefused(["trained_betas"]) { try scheduler(#"{"num_train_timesteps": 2, "trained_betas": [0.1, 1.5]}"#) }
    }

    func testDeepAndMalformedJSON() {
        assertRefused(["nesting deeper"]) { try JSONValue.parse(Array(String(repeating: "[", count: 100_000).utf8), context: "deep") }
        assertRefused(["unpaired surrogate"]) { try JSONValue.parse(Array(#""\ud800\u0041""#.utf8), context: "s") }
        assertRefused(["invalid \\u escape"]) { try JSONValue.parse(Array(#""\udc00""#.utf8), context: "s") }
        assertRefused(["unterminated"]) { try JSONValue.parse(Array(#"{"a": [1, 2"#.utf8), context: "s") }
    }

    // MARK: safetensors

    func safetensors(_ header: String, data: [UInt8] = []) throws -> SafetensorsFile {
        var bytes = [UInt8]()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes += $0 }
        bytes += Array(header.utf8) + data
        return try bytes.withUnsafeBytes { try SafetensorsFile(mapped: MappedFile(copying: $0, path: "t.safetensors")) }
    }

    func testSafetensorsShapesAreBounded() throws {
        XCTAssertEqual(try safetensors(#"{"a": {"dtype": "F32", "shape": [1, 2], "data_offsets": [0, 8]}}"#, data: [UInt8](repeating: 0, count: 8)).tensors.count, 1)
        let rank17 = "[" + Array(repeating: "1", count: 17).joined(separator: ",") + "]"
        assertRefused(["17 dimensions"]) { try safetensors(#"{"a": {"dtype": "F32", "shape": \#(rank17), "data_offsets": [0, 4]}}"#, data: [0, 0, 0, 0]) }
        assertRefused(["more elements than the file holds"]) {
            try safetensors(#"{"a": {"dtype": "F32", "shape": [2147483647, 2147483647, 2147483647], "data_offsets": [0, 4]}}"#, data: [0, 0, 0, 0])
        }
        assertRefused(["invalid shape"]) { try safetensors(#"{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}"#) }
        assertRefused(["past the end"]) { try safetensors(#"{"a": {"dtype": "U8", "shape": [4], "data_offsets": [9223372036854775800, 9223372036854775804]}}"#) }
        assertRefused(["header length", "out of range"]) {
            try [UInt8](repeating: 0xFF, count: 16).withUnsafeBytes { try SafetensorsFile(mapped: MappedFile(copying: $0, path: "t")) }
        }
    }

    // MARK: .npy

    func npy(_ header: String, data: [UInt8] = []) -> [UInt8] {
        var h = Array(header.utf8)
        while (10 + h.count + 1) % 64 != 0 { h.append(0x20) }
        h.append(0x0A)
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.count & 0xFF), UInt8(h.count >> 8)] + h + data
    }

    func testNPYShapesAreBounded() {
        let many = "(" + Array(repeating: "1", count: 65).joined(separator: ", ") + ")"
        assertRefused(["more than 64 dimensions"]) { try NPY.decode(npy("{'descr': '<f4', 'fortran_order': False, 'shape': \(many), }", data: [0, 0, 0, 0])) }
        assertRefused(["too large"]) { try NPY.decode(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }")) }
        assertRefused(["a dimension"]) { try NPY.decode(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }")) }
        assertRefused(["truncated data"]) { try NPY.decode(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000,), }")) }
        // Version 2 with a header length past the end of the file.
        assertRefused(["truncated .npy header"]) { try NPY.decode([0x93] + Array("NUMPY".utf8) + [2, 0, 0xFF, 0xFF, 0xFF, 0x7F]) }
    }

    // MARK: PNG

    func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let t = Array(type.utf8)
        let crc = CRC32().updated(with: t).updated(with: data).value
        func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
        return be(UInt32(data.count)) + t + data + be(crc)
    }

    func testPNGDimensionsAndInflationAreBounded() {
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        func ihdr(_ w: UInt32, _ h: UInt32) -> [UInt8] {
            chunk("IHDR", [UInt8(w >> 24), UInt8((w >> 16) & 0xFF), UInt8((w >> 8) & 0xFF), UInt8(w & 0xFF),
                           UInt8(h >> 24), UInt8((h >> 16) & 0xFF), UInt8((h >> 8) & 0xFF), UInt8(h & 0xFF), 8, 6, 0, 0, 0])
        }
        assertRefused(["unsupported image size"]) { try PNG.decode(signature + ihdr(0xFFFF_FFFF, 0xFFFF_FFFF) + chunk("IEND", [])) }
        // 1×1 RGBA needs 5 bytes of scanline; a stream inflating to 65535 zero bytes must stop at the bound.
        let big = Zlib.compress([UInt8](repeating: 0, count: 65535))
        assertRefused(["inflates to more than 5 bytes"]) { try PNG.decode(signature + ihdr(1, 1) + chunk("IDAT", big) + chunk("IEND", [])) }
        // A chunk length near 2³¹ must not be added to the position unchecked.
        assertRefused(["truncated"]) { try PNG.decode(signature + [0x7F, 0xFF, 0xFF, 0xF0] + Array("IDAT".utf8)) }
    }
}
