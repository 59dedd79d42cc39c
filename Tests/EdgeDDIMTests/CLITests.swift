import Foundation
import XCTest
import EdgeImageIO
import EdgeDDIM

/// The two command-line tools as a user runs them: bad input gets one line on stderr, exit status 2 for
/// usage errors and 1 for runtime errors, and leaves no output file.
final class CLITests: XCTestCase {
    func run(_ tool: String, _ arguments: [String], in folder: String) throws -> ToolOutcome {
        try runTool(tool, arguments, in: folder)
    }

    var model: String { repositoryRoot + "/models/ddpm-fashion-32.edm" }

    func assertFails(_ tool: String, _ arguments: [String], status: Int32, mentions: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let outcome = try run(tool, arguments, in: temp)
        XCTAssertEqual(outcome.status, status, "\(arguments): \(outcome.stderr)", file: file, line: line)
        let lines = outcome.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "\(arguments): stderr was \(outcome.stderr)", file: file, line: line)
        XCTAssertTrue(outcome.stderr.contains(mentions), "\(arguments): \(outcome.stderr) lacks \(mentions)", file: file, line: line)
        let left = try FileManager.default.contentsOfDirectory(atPath: temp)
        XCTAssertEqual(left, [], "\(arguments) left \(left)", file: file, line: line)
    }

    func testUsageErrorsExitWithStatus2() throws {
        let m = ["--model", model]
        try assertFails("edge-ddim", m + ["--steps", "abc"], status: 2, mentions: "steps")
        try assertFails("edge-ddim", m + ["--steps", "0"], status: 2, mentions: "--steps must be in 1...1000")
        try assertFails("edge-ddim", m + ["--steps", "1001"], status: 2, mentions: "--steps must be in 1...1000")
        try assertFails("edge-ddim", m + ["--eta", "1.5"], status: 2, mentions: "--eta")
        try assertFails("edge-ddim", m + ["--eta", "nan"], status: 2, mentions: "--eta")
        try assertFails("edge-ddim", m + ["--eta", "x"], status: 2, mentions: "eta")
        try assertFails("edge-ddim", m + ["--count", "0"], status: 2, mentions: "--count")
        try assertFails("edge-ddim", m + ["--count", "-3"], status: 2, mentions: "count")
        try assertFails("edge-ddim", m + ["--threads", "0"], status: 2, mentions: "--threads")
        try assertFails("edge-ddim", m + ["--schedule", "cubic"], status: 2, mentions: "schedule")
        try assertFails("edge-ddim", m + ["--frobnicate"], status: 2, mentions: "frobnicate")
        try assertFails("edge-ddim", ["bench", "--model", model, "--iterations", "0"], status: 2, mentions: "--iterations")
        try assertFails("edge-ddim", ["bench", "--model", model, "--int8-activations", "maybe"], status: 2, mentions: "--int8-activations")
        try assertFails("edge-ddim", m + ["--int8-activations", "maybe"], status: 2, mentions: "--int8-activations must be auto, on or off")
    }

    /// `bench --json` lists every layer under the checkpoint's module names with a time, and says which
    /// activations the convolutions used.
    func testBenchJSONHasPerLayerTimings() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let outcome = try run("edge-ddim", ["bench", "--model", model, "--iterations", "2", "--threads", "1", "--json"], in: temp)
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let object = try JSONSerialization.jsonObject(with: Data(outcome.stdout.utf8)) as? [String: Any]
        let layers = object?["layers"] as? [[String: Any]] ?? []
        let names = layers.compactMap { $0["name"] as? String }
        // ddpm-fashion-32: time MLP, conv_in, 22 resnets' two convs and 10 shortcuts or resamplers, 6 attention
        // blocks, conv_out, and (fp32 activations) norms and concatenations, which the int8 path folds into the
        // convolutions reading them.
        XCTAssertGreaterThan(layers.count, 60)
        for name in ["conv_in", "down_blocks.1.attentions.0", "mid_block.resnets.1.conv2", "up_blocks.2.upsamplers.0.conv", "conv_out"] {
            XCTAssertTrue(names.contains(name), "no layer \(name) in \(names)")
        }
        XCTAssertTrue(layers.allSatisfy { ($0["ms"] as? Double).map { $0 >= 0 } ?? false })
        let activations = object?["activations"] as? String ?? ""
        XCTAssertTrue(activations == "fp32" || activations.hasPrefix("int8 ("), activations)
        let kinds = Set(layers.compactMap { $0["kind"] as? String })
        XCTAssertTrue(kinds.contains(activations == "fp32" ? "group_norm_silu" : "group_norm_silu+conv3x3_s1"), "\(kinds)")
    }

    func testRuntimeErrorsExitWithStatus1() throws {
        try assertFails("edge-ddim", ["--model", "/nonexistent/m.edm"], status: 1, mentions: "not found")
        try assertFails("edge-ddim", ["--model", model, "--output", "/nonexistent/folder/x.png"], status: 1, mentions: "does not exist")
        try assertFails("edge-ddim", ["--model", model, "--init-noise", "/nonexistent/x.npy"], status: 1, mentions: "/nonexistent/x.npy")
        try assertFails("edge-ddim", ["--model", "/etc/hostname"], status: 1, mentions: "model file")
        try assertFails("edge-ddim", ["info", "/nonexistent/m.edm"], status: 1, mentions: "not found")
        try assertFails("convert", ["/nonexistent/checkpoint", "/tmp/never.edm"], status: 1, mentions: "no such folder")
    }

    func testBadInitNoiseIsRefusedBeforeSampling() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        // Right dtype, wrong shape (the default count is 16 of 1×32×32).
        try NPY.write([Float](repeating: 0, count: 2 * 1 * 32 * 32), shape: [2, 1, 32, 32], to: temp + "/small.npy")
        // float64 data: a valid .npy, but not float32.
        var f8 = Array("\u{93}NUMPY".utf8.dropFirst(0))
        f8 = [0x93] + Array("NUMPY".utf8) + [1, 0]
        var header = Array("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 32, 32), }".utf8)
        while (10 + header.count + 1) % 64 != 0 { header.append(0x20) }
        header.append(0x0A)
        f8 += [UInt8(header.count & 0xFF), UInt8(header.count >> 8)] + header + [UInt8](repeating: 0, count: 8 * 1024)
        try Data(f8).write(to: URL(fileURLWithPath: temp + "/f8.npy"))
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: temp + "/junk.npy"))
        try NPY.write([Float](repeating: 0, count: 2 * 1 * 16 * 16), shape: [2, 1, 16, 16], to: temp + "/wrong.npy")
        try assertFails("edge-ddim", ["--model", model, "--init-noise", temp + "/wrong.npy"], status: 1, mentions: "shape")
        try assertFails("edge-ddim", ["--model", model, "--count", "3", "--init-noise", temp + "/small.npy"], status: 2, mentions: "holds 2 images")
        try assertFails("edge-ddim", ["--model", model, "--count", "1", "--init-noise", temp + "/f8.npy"], status: 1, mentions: "<f8")
        try assertFails("edge-ddim", ["--model", model, "--init-noise", temp + "/junk.npy"], status: 1, mentions: "junk.npy")
    }

    /// `--init-noise` with N images and no `--count` makes N images (not the default 16, which its shape would contradict).
    func testInitNoiseSetsTheCount() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        var random = TestRandom(seed: 5)
        try NPY.write(random.floats(3 * 32 * 32), shape: [3, 1, 32, 32], to: temp + "/xT.npy")
        let outcome = try run("edge-ddim", ["--model", model, "--init-noise", "xT.npy", "--steps", "2", "--quiet", "--npy", "x0.npy"], in: temp)
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertTrue(outcome.stderr.contains("done: 3 images"), outcome.stderr)
        XCTAssertEqual(try NPY.read(path: temp + "/x0.npy").shape, [3, 1, 32, 32])
    }

    func testSmallRunWritesPNGAndNPY() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let outcome = try run("edge-ddim", ["--model", model, "--count", "2", "--steps", "2", "--output", "g.png", "--npy", "x0.npy"], in: temp)
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let lines = outcome.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 3, "two progress lines and a summary: \(outcome.stderr)")
        XCTAssertTrue(lines.last!.contains("peak memory"))
        let png = try PNG.read(path: temp + "/g.png")
        XCTAssertEqual([png.width, png.height, png.channels], [2 * 32 + 2, 32, 1])
        let x0 = try NPY.read(path: temp + "/x0.npy")
        XCTAssertEqual(x0.shape, [2, 1, 32, 32])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: temp).sorted(), ["g.png", "x0.npy"])
    }

    /// `--int8-activations on|off` reaches the UNet: each gives the x₀ of the library run with the same
    /// `SamplingOptions.int8Activations`, and the two paths' x₀ differ (the default model has int8 weights).
    func testInt8ActivationsOptionPicksThePath() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let file = try ModelFile(path: model)
        var x0: [Bool: [Float]] = [:]
        for (flag, int8) in [("on", true), ("off", false)] {
            let outcome = try run("edge-ddim", ["--model", model, "--steps", "2", "--count", "1", "--quiet", "--int8-activations", flag,
                                                "--output", "\(flag).png", "--npy", "\(flag).npy"], in: temp)
            XCTAssertEqual(outcome.status, 0, outcome.stderr)
            var options = SamplingOptions()
            options.steps = 2
            options.count = 1
            options.int8Activations = int8
            let library = try file.generate(options)
            let command = try NPY.read(path: temp + "/\(flag).npy")
            XCTAssertEqual(command.values, library.values, "--int8-activations \(flag)")
            x0[int8] = command.values
        }
        XCTAssertNotEqual(x0[true], x0[false], "int8 and fp32 activations gave the same x0")
    }
}
