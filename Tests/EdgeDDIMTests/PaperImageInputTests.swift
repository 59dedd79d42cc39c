import Foundation
import XCTest
import _EdgeCore
import EdgeImageIO
import EdgeDDIM

/// Images as `invert` and `reconstruct` read them: PNGs written by PIL (every optimisation / compression
/// setting) and by the fixture script with each of the five scanline filters forced, bad files, and the
/// command line's exit statuses and outputs.
final class PaperImageInputTests: XCTestCase {
    /// x_T from `edge-ddim invert` against diffusers' inversion of the same PNG: the 1e-3 bar.
    static let inversionTolerance: Float = 1e-3

    func testDecodesEveryFilterAndPillowSetting() throws {
        let fixtures = try PaperFixtures.load()
        var filters = Set<Int>()
        for png in fixtures.png_good {
            let grid = try PNG.read(path: PaperFixtures.folder + "/" + png.file)
            XCTAssertEqual([grid.width, grid.height, grid.channels], [png.width, png.height, png.channels], png.file)
            XCTAssertEqual(grid.pixels, png.pixels, "\(png.file) (\(png.writer)): pixels differ")
            filters.formUnion(png.filters)
        }
        XCTAssertEqual(filters, [0, 1, 2, 3, 4], "every filter type must be exercised")
        XCTAssertTrue(fixtures.png_good.contains { $0.writer.hasPrefix("PIL") && $0.channels == 1 })
        XCTAssertTrue(fixtures.png_good.contains { $0.writer.hasPrefix("PIL") && $0.channels == 3 })
    }

    func testRefusesBadPNGsWithOneLine() throws {
        let fixtures = try PaperFixtures.load()
        XCTAssertGreaterThanOrEqual(fixtures.png_bad.count, 6)
        for bad in fixtures.png_bad {
            let path = PaperFixtures.folder + "/" + bad.file
            XCTAssertThrowsError(try ModelImage.load(path: path, channels: 1, size: 13), bad.file) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(bad.mentions), "\(bad.file): \(message) lacks \(bad.mentions)")
                XCTAssertTrue(message.contains(path), "\(bad.file): \(message) does not name the file")
                XCTAssertFalse(message.contains("\n"))
            }
        }
    }

    /// Pixel v becomes v/127.5 − 1, channel-major; the model's channel count and size are enforced.
    func testModelImageMapping() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let pixels: [UInt8] = [0, 255, 10, 20, 30, 40, 128, 1, 2, 3, 4, 5]  // 2×2 RGB
        try PNG.write(PixelGrid(width: 2, height: 2, channels: 3, pixels: pixels), to: temp + "/rgb.png")
        let values = try ModelImage.load(path: temp + "/rgb.png", channels: 3, size: 2)
        for y in 0..<2 {
            for x in 0..<2 {
                for c in 0..<3 {
                    XCTAssertEqual(values[(c * 2 + y) * 2 + x], Float(pixels[(y * 2 + x) * 3 + c]) / 127.5 - 1)
                }
            }
        }
        XCTAssertThrowsError(try ModelImage.load(path: temp + "/rgb.png", channels: 1, size: 2)) { XCTAssertTrue("\($0)".contains("RGB")) }
        XCTAssertThrowsError(try ModelImage.load(path: temp + "/rgb.png", channels: 3, size: 4)) { XCTAssertTrue("\($0)".contains("2×2")) }
        try NPY.write(values, shape: [1, 3, 2, 2], to: temp + "/a.npy")
        XCTAssertEqual(try ModelImage.load(path: temp + "/a.npy", channels: 3, size: 2), values)
        try NPY.write(values, shape: [3, 2, 2], to: temp + "/b.npy")
        XCTAssertEqual(try ModelImage.load(path: temp + "/b.npy", channels: 3, size: 2), values)
        try NPY.write(values.map { $0 * 2 }, shape: [3, 2, 2], to: temp + "/range.npy")
        XCTAssertThrowsError(try ModelImage.load(path: temp + "/range.npy", channels: 3, size: 2)) { XCTAssertTrue("\($0)".contains("[-1, 1]")) }
        try NPY.write(values, shape: [12], to: temp + "/flat.npy")
        XCTAssertThrowsError(try ModelImage.load(path: temp + "/flat.npy", channels: 3, size: 2)) { XCTAssertTrue("\($0)".contains("shape")) }
    }

    // MARK: Command line

    var defaultModel: String { repositoryRoot + "/models/ddpm-fashion-32.edm" }

    func run(_ arguments: [String], in folder: String) throws -> ToolOutcome {
        try runTool("edge-ddim", arguments, in: folder)
    }

    func assertFails(_ arguments: [String], status: Int32, mentions: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let outcome = try run(arguments, in: temp)
        XCTAssertEqual(outcome.status, status, "\(arguments): \(outcome.stderr)", file: file, line: line)
        XCTAssertEqual(outcome.stderr.split(separator: "\n").count, 1, "\(arguments): stderr was \(outcome.stderr)", file: file, line: line)
        XCTAssertTrue(outcome.stderr.contains(mentions), "\(arguments): \(outcome.stderr) lacks \(mentions)", file: file, line: line)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: temp), [], "\(arguments) left files", file: file, line: line)
    }

    func testBadImagesAndOptionsFailCleanly() throws {
        let fixtures = try PaperFixtures.load()
        let m = ["--model", defaultModel]
        for bad in fixtures.png_bad {
            let path = PaperFixtures.folder + "/" + bad.file
            try assertFails(["invert", path, "--output", "x.npy"] + m, status: 1, mentions: bad.mentions)
            try assertFails(["reconstruct", path, "--output", "r.png"] + m, status: 1, mentions: bad.mentions)
        }
        // A valid PNG of the wrong size for the 32×32 model.
        let small = PaperFixtures.folder + "/png/pil_gray_optimize.png"
        try assertFails(["invert", small, "--output", "x.npy"] + m, status: 1, mentions: "32×32")
        try assertFails(["invert", "/nonexistent/image.png"] + m, status: 1, mentions: "/nonexistent/image.png")
        try assertFails(["invert", small, "--steps", "0"] + m, status: 2, mentions: "--steps")
        try assertFails(["reconstruct", small, "--steps", "1001"] + m, status: 2, mentions: "--steps")
        try assertFails(["invert"] + m, status: 2, mentions: "image")
        try assertFails(["interpolate", "--seed-a", "0", "--seed-b", "1", "--frames", "1"] + m, status: 2, mentions: "--frames")
        try assertFails(["interpolate", "--seed-a", "0"] + m, status: 2, mentions: "seed-b")
        try assertFails(["interpolate", "--seed-a", "0", "--seed-b", "1", "--steps", "0"] + m, status: 2, mentions: "--steps")
        try assertFails(["interpolate", "--seed-a", "0", "--seed-b", "1", "--output", "/nonexistent/s.png"] + m, status: 1, mentions: "does not exist")
        try assertFails(["eval", "--reference", "/nonexistent/ref.edm"] + m, status: 1, mentions: "/nonexistent/ref.edm")
        try assertFails(["eval", "--steps", "10,x"] + m, status: 2, mentions: "--steps")
    }

    /// `edge-ddim invert` on a PIL-written PNG gives diffusers' x_T for it (both small models: gray with
    /// --clip-sample as its config says, RGB without, as its config says).
    func testInvertCommandMatchesDiffusers() throws {
        for fixture in try PaperFixtures.load().png_inversion {
            let temp = temporaryFolder()
            defer { removeFolder(temp) }
            let model = try paperModel(fixture.fixture, in: temp)
            let clip = model.schedule.clipSample ? ["--clip-sample"] : []
            let outcome = try run(["invert", PaperFixtures.folder + "/" + fixture.png, "--model", model.path, "--steps", "\(fixture.steps)",
                                   "--output", "xT.npy", "--quiet"] + clip, in: temp)
            XCTAssertEqual(outcome.status, 0, outcome.stderr)
            let xT = try NPY.read(path: temp + "/xT.npy", expectedShape: fixture.shape)
            let expected = try NPY.read(path: PaperFixtures.folder + "/" + fixture.xT, expectedShape: fixture.shape)
            let error = maxAbsDifference(xT, expected)
            XCTAssertLessThanOrEqual(error, Self.inversionTolerance, "\(fixture.fixture): x_T max abs error \(error)")
            print("edge-ddim invert \(fixture.png): max abs error x_T \(error)")
        }
    }

    func testReconstructAndInterpolateWriteTheirOutputs() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let model = try paperModel("two-level-midscale", in: temp)
        let png = PaperFixtures.folder + "/two-level-midscale_input.png"
        let outcome = try run(["reconstruct", png, "--model", model.path, "--steps", "5", "--output", "side.png", "--quiet"], in: temp)
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        XCTAssertTrue(outcome.stdout.hasPrefix("steps 5  mse "), outcome.stdout)
        XCTAssertTrue(outcome.stdout.contains(" dB"), outcome.stdout)
        let side = try PNG.read(path: temp + "/side.png")
        XCTAssertEqual([side.width, side.height, side.channels], [2 * 8 + 2, 8, 3])
        // The left tile is the input itself: its pixels map to [-1, 1] and back exactly.
        let input = try PNG.read(path: png)
        for y in 0..<8 {
            XCTAssertEqual(Array(side.pixels[(y * side.width) * 3..<(y * side.width + 8) * 3]), Array(input.pixels[y * 24..<(y + 1) * 24]))
        }
        let strip = try run(["interpolate", "--model", model.path, "--seed-a", "1", "--seed-b", "2", "--frames", "3", "--steps", "4",
                             "--output", "strip.png", "--npy", "strip.npy", "--quiet"], in: temp)
        XCTAssertEqual(strip.status, 0, strip.stderr)
        let grid = try PNG.read(path: temp + "/strip.png")
        XCTAssertEqual([grid.width, grid.height], [3 * 8 + 2 * 2, 8])
        XCTAssertEqual(try NPY.read(path: temp + "/strip.npy").shape, [3, 3, 8, 8])
    }
}
