import Foundation
import XCTest
import _EdgeCore
import _EdgeQuant
import EdgeConvert
import EdgeModelFile

/// Bad input to the converter and the model-file reader: every case must end in one clear EdgeError
/// naming what is wrong, and no output file.
final class ConverterErrorTests: XCTestCase {
    /// A small valid checkpoint to corrupt: the smallest random-weight fixture with a single safetensors file.
    func validFolder(in temp: String) throws -> String {
        let source = fixturesRoot + "/unet/cifar10-like"
        let folder = temp + "/checkpoint"
        try FileManager.default.copyItem(atPath: source, toPath: folder)
        return folder
    }

    /// Asserts that converting `folder` fails with a message containing every fragment, writing nothing.
    func assertRefused(_ folder: String, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        let output = folder + "-out.edm"
        do {
            try Converter.convert(folder: folder, output: output, weights: .q8PerChannel)
            XCTFail("conversion of \(folder) succeeded; expected an error containing \(fragments)", file: file, line: line)
        } catch let e as EdgeError {
            for f in fragments { XCTAssertTrue(e.message.contains(f), "message \"\(e.message)\" lacks \"\(f)\"", file: file, line: line) }
            XCTAssertFalse(e.message.contains("\n"), file: file, line: line)
        } catch {
            XCTFail("unexpected error type \(error)", file: file, line: line)
        }
        XCTAssertFalse(fileExists(output), "a failed conversion left \(output)", file: file, line: line)
        let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: (output as NSString).deletingLastPathComponent)) ?? []
        XCTAssertFalse(leftovers.contains { $0.contains(".partial-") }, "temporary file left: \(leftovers)", file: file, line: line)
    }

    func withFolder(_ body: (String) throws -> Void) throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        try body(try validFolder(in: temp))
    }

    var weightsName: String { SafetensorsCheckpoint.singleFile }

    func testValidFolderConverts() throws {
        try withFolder { folder in
            let report = try Converter.convert(folder: folder, output: folder + ".edm", weights: .q8PerChannel)
            XCTAssertGreaterThan(report.tensors, 0)
            XCTAssertNotNil(try? ModelFile(path: folder + ".edm"))
        }
    }

    func testMissingFiles() throws {
        assertRefused("/nonexistent/edge-ddim/folder", ["no such folder"])
        try withFolder { folder in
            try FileManager.default.removeItem(atPath: folder + "/config.json")
            assertRefused(folder, ["config.json is missing"])
        }
        try withFolder { folder in
            try FileManager.default.removeItem(atPath: folder + "/" + weightsName)
            assertRefused(folder, ["no diffusion_pytorch_model.safetensors"])
        }
    }

    func testTruncatedSafetensors() throws {
        try withFolder { folder in
            let path = folder + "/" + weightsName
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
            assertRefused(folder, [weightsName, "past the end of the data"])
        }
        try withFolder { folder in
            let path = folder + "/" + weightsName
            try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
            assertRefused(folder, [weightsName, "truncated"])
        }
    }

    /// Rewrites the safetensors header with `edit` applied to its JSON text, keeping the data.
    func editHeader(_ folder: String, _ edit: (String) -> String) throws {
        let path = folder + "/" + weightsName
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = edit(String(decoding: data[8 ..< 8 + n], as: UTF8.self))
        var out = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: Array(header.utf8))
        out.append(data[(8 + n)...])
        try out.write(to: URL(fileURLWithPath: path))
    }

    func testCorruptSafetensorsHeader() throws {
        try withFolder { folder in
            try editHeader(folder) { _ in "{not json" }
            assertRefused(folder, ["not valid JSON"])
        }
        try withFolder { folder in
            let path = folder + "/" + weightsName
            var data = try Data(contentsOf: URL(fileURLWithPath: path))
            data.replaceSubrange(0 ..< 8, with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Data($0) })
            try data.write(to: URL(fileURLWithPath: path))
            assertRefused(folder, ["header length", "out of range"])
        }
    }

    func testOffsetsPastTheEnd() throws {
        try withFolder { folder in
            try editHeader(folder) { h in
                // Push the conv_out bias far past the data.
                let r = h.range(of: "\"conv_out.bias\"")!
                let tail = h[r.upperBound...]
                let o = tail.range(of: "\"data_offsets\":[")!
                let close = tail[o.upperBound...].firstIndex(of: "]")!
                return h.replacingCharacters(in: o.upperBound ..< close, with: "999999990,999999994")
            }
            assertRefused(folder, ["conv_out.bias", "past the end"])
        }
    }

    func testUnknownDType() throws {
        try withFolder { folder in
            try editHeader(folder) { h in
                let r = h.range(of: "\"conv_out.bias\"")!
                let tail = h[r.upperBound...]
                let d = tail.range(of: "\"dtype\":\"F16\"")!
                return h.replacingCharacters(in: d, with: "\"dtype\":\"Q7\"")
            }
            assertRefused(folder, ["conv_out.bias", "unknown dtype Q7"])
        }
    }

    func testMissingAndMisshapenTensors() throws {
        try withFolder { folder in
            // Make the config describe more output channels than the checkpoint has.
            try editConfig(folder) { $0["out_channels"] = 7 }
            assertRefused(folder, ["conv_out", "shape"])
        }
        try withFolder { folder in
            try editConfig(folder) { $0["layers_per_block"] = 3 }
            assertRefused(folder, ["is missing from the checkpoint"])
        }
        try withFolder { folder in
            try editConfig(folder) { $0["layers_per_block"] = 1 }
            assertRefused(folder, ["is not part of the UNet"])
        }
    }

    func editConfig(_ folder: String, _ edit: (inout [String: Any]) -> Void) throws {
        let path = folder + "/config.json"
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
    }

    func testBadConfig() throws {
        try withFolder { folder in
            try Data("{\"sample_size\": 32,".utf8).write(to: URL(fileURLWithPath: folder + "/config.json"))
            assertRefused(folder, ["config.json is not valid JSON"])
        }
        let cases: [(String, Any, [String])] = [
            ("layers_per_block", "two", ["layers_per_block must be an integer"]),
            ("block_out_channels", [32, -4, 32, 32], ["block_out_channels", "1...16384"]),
            ("norm_eps", true, ["norm_eps must be a number"]),
            ("downsample_padding", 3, ["downsample_padding must be 0 or 1"]),
            ("sample_size", 30, ["sample_size", "divisible"]),
            ("down_block_types", ["DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D"], ["CrossAttnDownBlock2D is not supported"]),
            ("time_embedding_type", "fourier", ["time_embedding_type", "positional"]),
            ("resnet_time_scale_shift", "scale_shift", ["resnet_time_scale_shift", "scale_shift"]),
            ("class_embed_type", "timestep", ["class_embed_type"]),
            ("downsample_type", "resnet", ["downsample_type"]),
            ("upsample_type", "resnet", ["upsample_type"]),
            ("act_fn", "gelu", ["act_fn"]),
            ("norm_num_groups", 5, ["norm_num_groups", "does not divide"]),
        ]
        for (field, value, fragments) in cases {
            try withFolder { folder in
                try editConfig(folder) { $0[field] = value }
                assertRefused(folder, fragments)
            }
        }
    }

    func testBadSchedulerConfig() throws {
        let cases: [(String, Any, [String])] = [
            ("beta_schedule", "sigmoid", ["beta_schedule sigmoid"]),
            ("prediction_type", "flow", ["prediction_type flow"]),
            ("num_train_timesteps", 0, ["num_train_timesteps"]),
            ("thresholding", true, ["thresholding"]),
            ("clip_sample", "yes", ["clip_sample must be true or false"]),
        ]
        for (field, value, fragments) in cases {
            try withFolder { folder in
                let path = folder + "/scheduler_config.json"
                var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
                json[field] = value
                try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
                assertRefused(folder, fragments)
            }
        }
    }

    // MARK: model files

    func withModel(_ body: (String, Data) throws -> Void) throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let folder = try validFolder(in: temp)
        let path = temp + "/model.edm"
        try Converter.convert(folder: folder, output: path, weights: .q8PerChannel)
        try body(path, try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func assertModelRefused(_ path: String, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try ModelFile(path: path)
            XCTFail("model file \(path) was accepted", file: file, line: line)
        } catch let e as EdgeError {
            for f in fragments { XCTAssertTrue(e.message.contains(f), "message \"\(e.message)\" lacks \"\(f)\"", file: file, line: line) }
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }

    func testModelFileWrongMagic() throws {
        try withModel { path, data in
            var d = data
            d[0] = UInt8(ascii: "X")
            try d.write(to: URL(fileURLWithPath: path))
            assertModelRefused(path, ["wrong magic"])
        }
    }

    func testModelFileWrongVersion() throws {
        try withModel { path, data in
            var d = data
            d[8] = 99
            try d.write(to: URL(fileURLWithPath: path))
            assertModelRefused(path, ["version 99 is not supported"])
        }
    }

    func testModelFileTruncated() throws {
        try withModel { path, data in
            for keep in [10, 63, 200, data.count / 2, data.count - 1] {
                try data.prefix(keep).write(to: URL(fileURLWithPath: path))
                assertModelRefused(path, ["model file"])
            }
        }
    }

    func testModelFileMissing() {
        assertModelRefused("/nonexistent/model.edm", ["cannot open /nonexistent/model.edm"])
    }

    /// Every single-byte corruption of the header and directory is refused or yields a model whose
    /// tensors all lie inside the file: never a crash.
    func testModelFileByteFlipsNeverCrash() throws {
        try withModel { path, data in
            let limit = min(data.count, 4096)
            for i in stride(from: 0, to: limit, by: 7) {
                var d = data
                d[i] ^= 0xA5
                try d.write(to: URL(fileURLWithPath: path))
                if let model = try? ModelFile(path: path) {
                    for e in model.entries {
                        XCTAssertLessThanOrEqual(e.valuesOffset + e.valuesBytes, d.count)
                    }
                }
            }
        }
    }
}
