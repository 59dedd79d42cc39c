import Foundation
import XCTest
import _EdgeCore
import EdgeGraph
import _EdgeQuant
import EdgeConvert
import EdgeDDIM
import EdgeModelFile

/// Model files that claim more than they hold or more than the machine has: refused with one clear line
/// before anything sized by the claim is allocated.
final class HardeningLimitsTests: XCTestCase {
    /// A valid one-level config and one tensor, encoded by the real writer.
    func tinyModel(_ edit: (inout Metadata) -> Void = { _ in }) -> [UInt8] {
        var u = UNetConfig()
        u.sampleSize = 8
        u.inChannels = 1
        u.outChannels = 1
        u.blockOutChannels = [8]
        u.downBlockTypes = [.down]
        u.upBlockTypes = [.up]
        u.normNumGroups = 4
        u.attentionHeadDim = nil
        var m = Metadata()
        m.set("edge_ddim.weights", .string("fp32"))
        m.setUNet(u)
        m.setSchedule(NoiseScheduleConfig())
        edit(&m)
        let weight = [Float](repeating: 0.5, count: 8 * 9).withUnsafeBytes { Array($0) }
        return ModelFileWriter.encode(metadata: m, tensors: [TensorRecord(name: "conv_in.weight", type: .f32, shape: [8, 1, 3, 3], values: weight)])
    }

    func open(_ bytes: [UInt8]) throws -> ModelFile {
        try bytes.withUnsafeBytes { try ModelFile(mapped: MappedFile(copying: $0, path: "hostile.edm")) }
    }

    func assertRefused(_ bytes: [UInt8], _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try open(bytes), file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(error is EdgeError, "\(error)", file: file, line: line)
            for f in fragments { XCTAssertTrue(message.contains(f), "\"\(message)\" lacks \"\(f)\"", file: file, line: line) }
        }
    }

    /// Offset of tensor `name`'s first dimension in an encoded model file.
    func dimensionOffset(_ bytes: [UInt8], _ name: String) -> Int {
        let needle = Array(name.utf8)
        let start = (0 ... bytes.count - needle.count).first { Array(bytes[$0 ..< $0 + needle.count]) == needle }!
        return start + needle.count + 4  // type, layout, rank, reserved
    }

    func patchU64(_ bytes: inout [UInt8], at offset: Int, _ value: UInt64) {
        for i in 0 ..< 8 { bytes[offset + i] = UInt8((value >> (8 * UInt64(i))) & 0xFF) }
    }

    func testTinyModelOpens() throws {
        let model = try open(tinyModel())
        XCTAssertEqual(model.entries.map(\.shape), [[8, 1, 3, 3]])
    }

    func testHugeTensorIsRefused() {
        var bytes = tinyModel()
        let dims = dimensionOffset(bytes, "conv_in.weight")
        // 2²⁴ × 2²⁴ × 3 × 3 values of a 1 KB file.
        patchU64(&bytes, at: dims, 1 << 24)
        patchU64(&bytes, at: dims + 8, 1 << 24)
        assertRefused(bytes, ["conv_in.weight", "more than the file holds"])
        // One dimension past the per-dimension bound, and a size field past the data section.
        var wide = tinyModel()
        patchU64(&wide, at: dimensionOffset(wide, "conv_in.weight"), 1 << 62)
        assertRefused(wide, ["dimension of conv_in.weight", "out of range"])
        var long = tinyModel()
        patchU64(&long, at: dimensionOffset(long, "conv_in.weight") + 4 * 8 + 8, UInt64.max)
        assertRefused(long, ["size of conv_in.weight", "out of range"])
    }

    func testHugeConfigIsRefused() {
        assertRefused(tinyModel { $0.set("unet.sample_size", .int(1_000_000)) }, ["sample_size", "1...4096"])
        assertRefused(tinyModel { $0.set("unet.block_out_channels", .ints([1 << 40])) }, ["block_out_channels"])
        assertRefused(tinyModel { $0.set("unet.block_out_channels", .ints(Array(repeating: 8, count: 100_000))) }, ["block_out_channels", "1 to 12"])
    }

    /// Review finding: the schedule stored in a model file was not validated; T = 0 then trapped in
    /// SamplingOptions.validate (`1...0`), and a huge T sized the sampler's tables.
    func testHostileScheduleIsRefused() {
        assertRefused(tinyModel { $0.set("scheduler.num_train_timesteps", .int(0)) }, ["num_train_timesteps"])
        assertRefused(tinyModel { $0.set("scheduler.num_train_timesteps", .int(1 << 50)) }, ["num_train_timesteps"])
        assertRefused(tinyModel { $0.set("scheduler.beta_end", .double(.nan)) }, ["beta_end"])
        assertRefused(tinyModel { $0.set("scheduler.trained_betas", .doubles([0.5])) }, ["trained_betas"])
        assertRefused(tinyModel { $0.set("scheduler.steps_offset", .int(-1)) }, ["steps_offset"])
    }

    func testHeaderSizesAreChecked() {
        var bytes = tinyModel()
        patchU64(&bytes, at: 24, UInt64.max)  // metadata size
        assertRefused(bytes, ["metadata size", "out of range"])
        bytes = tinyModel()
        patchU64(&bytes, at: 32, UInt64(bytes.count - 1))  // directory offset at the last byte, size unchanged
        assertRefused(bytes, ["tensor directory", "outside the file"])
    }

    func testByteCountParsing() throws {
        XCTAssertEqual(parseByteCount("1048576"), 1 << 20)
        XCTAssertEqual(parseByteCount("512K"), 512 << 10)
        XCTAssertEqual(parseByteCount("300M"), 300 << 20)
        XCTAssertEqual(parseByteCount("300mb"), 300 << 20)
        XCTAssertEqual(parseByteCount("2G"), 2 << 30)
        XCTAssertEqual(parseByteCount("2GiB"), 2 << 30)
        for bad in ["", "0", "-1", "1.5G", "G", "12X", "99999999999999999999", "9000000000000T", " 1M"] {
            XCTAssertNil(parseByteCount(bad), bad)
        }
        XCTAssertGreaterThan(MemoryLimit.physicalMemory.bytes, 1 << 26)
        XCTAssertEqual(try MemoryLimit(option: nil), MemoryLimit.physicalMemory)
        XCTAssertThrowsError(try MemoryLimit(option: "lots"))
        XCTAssertNil(checkedProduct([1 << 32, 1 << 32]))
        XCTAssertNil(checkedProduct([3, -1]))
        XCTAssertEqual(checkedProduct([Int]()), 1)
    }

    /// A converted model whose config is valid but whose working memory is large: sample_size 512, so every
    /// activation of one image is 512 × 512 × 16 values (16 MB).
    func bigModel(in temp: String) throws -> String {
        let folder = temp + "/checkpoint"
        try FileManager.default.copyItem(atPath: fixturesRoot + "/unet/two-level-midscale", toPath: folder)
        let configPath = folder + "/config.json"
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as! [String: Any]
        config["sample_size"] = 512
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        let path = temp + "/big.edm"
        try Converter.convert(folder: folder, output: path, weights: .f16)
        try FileManager.default.removeItem(atPath: folder)
        return path
    }

    func testModelNeedingMoreMemoryThanTheLimitIsRefusedBeforeAllocating() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let path = try bigModel(in: temp)
        let model = try ModelFile(path: path)
        var options = SamplingOptions()
        options.count = 1
        let need = try SamplingPipeline.workingBytes(model: model, options: options)
        XCTAssertGreaterThan(need, 16 << 20)
        XCTAssertThrowsError(try MemoryLimit(bytes: need / 2).check(model: model, options: options)) { error in
            XCTAssertTrue("\(error)".contains("more than --max-memory"), "\(error)")
        }
        XCTAssertNoThrow(try MemoryLimit(bytes: need + model.fileBytes).check(model: model, options: options))
        XCTAssertThrowsError(try MemoryLimit(bytes: 1 << 20).check(model: model, batch: 1, threads: .single))

        // The default limit, physical memory: 4096 images of 512 × 512 in one batch are far beyond it.
        options.count = 4096
        options.batch = 4096
        XCTAssertGreaterThan(try SamplingPipeline.workingBytes(model: model, options: options), MemoryLimit.physicalMemory.bytes)
        XCTAssertThrowsError(try MemoryLimit.physicalMemory.check(model: model, options: options))

        // The command line: one line, exit 1, nothing written, for sample, info, bench, interpolate and invert alike. --steps 1
        // bounds the damage if a refusal ever stops working.
        let runs: [(arguments: [String], limit: String)] = [
            (["--model", path, "--steps", "1", "--count", "1", "--output", "out.png"], "1.0 MB"),
            (["--model", path, "--steps", "1", "--count", "4096", "--batch", "4096", "--output", "out.png"], "\(megabytes(MemoryLimit.physicalMemory.bytes))"),
            (["info", path], "1.0 MB"),
            (["bench", "--model", path, "--iterations", "1"], "1.0 MB"),
            (["interpolate", "--model", path, "--seed-a", "0", "--seed-b", "1", "--frames", "2", "--steps", "1", "--output", "out.png"], "1.0 MB"),
            (["invert", PaperFixtures.folder + "/single-level-attn_input.png", "--model", path, "--steps", "1", "--output", "out.npy"], "1.0 MB"),
        ]
        for (arguments, limit) in runs {
            let outcome = try runTool("edge-ddim", arguments + (limit == "1.0 MB" ? ["--max-memory", "1M"] : []), in: temp)
            XCTAssertEqual(outcome.status, 1, "\(arguments): \(outcome.stderr)")
            XCTAssertEqual(outcome.stderr.split(separator: "\n").count, 1, outcome.stderr)
            XCTAssertTrue(outcome.stderr.contains("more than --max-memory \(limit)"), outcome.stderr)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: temp), ["big.edm"])
        let bad = try runTool("edge-ddim", ["info", path, "--max-memory", "lots"], in: temp)
        XCTAssertEqual(bad.status, 2, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("--max-memory must be a byte count"), bad.stderr)
    }
}
