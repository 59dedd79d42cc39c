import Foundation
import XCTest
// The example below must need nothing but the umbrella module: this test target depends on EdgeDDIM alone.
import EdgeDDIM

// example begin
func generateExample(model path: String, output: String) throws {
    let model = try ModelFile(path: path)                     // immutable: share it between threads
    var options = SamplingOptions()                           // DDIM, 10 steps, η = 0
    options.seed = 3                                          // diffusers' torch.manual_seed(3) noise
    options.count = 2
    let cancel = CancellationToken()                          // cancel.cancel() from any thread stops a run
    let images = try model.generate(options, progress: { done, total in print("step \(done)/\(total)") }, cancel: cancel)
    try images.writePNG(to: output)                           // what `edge-ddim --seed 3 --count 2` writes
    let pixels: [UInt8] = images.pixels                       // count × height × width × channels bytes
    let values: [Float] = images.values                       // count × channels × height × width, in [-1, 1]
    print("\(pixels.count) bytes, \(values.count) floats")

    options.sampler = SamplerSettings(kind: .dpmpp2m)         // any diffusers sampler, by name
    let inversion = try DDIMInversion(model: model, options: options)
    let roundTrip = try inversion.reconstruct(images.values, cancel: cancel)  // images → x_T → images
    let frames = try Interpolation.run(model: model, seedA: 1, seedB: 2, frames: 4, options: options, cancel: cancel)
    print("reconstruction PSNR \(roundTrip.psnr) dB; \(frames.shape[0]) interpolated frames")
}
// example end

/// The library's documented example, compiled against `import EdgeDDIM` alone and run: it writes the command's PNG.
final class LibraryExampleTests: XCTestCase {
    let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    func testExampleRunsAndWritesTheCommandsPNG() throws {
        let temp = NSTemporaryDirectory() + "edge-ddim-example-\(getpid())"
        try FileManager.default.createDirectory(atPath: temp, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: temp) }
        let model = repository + "/models/ddpm-fashion-32.edm"
        try generateExample(model: model, output: temp + "/library.png")

        let command = Process()
        command.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("edge-ddim")
        command.arguments = ["--model", model, "--seed", "3", "--count", "2", "--output", temp + "/command.png", "--quiet"]
        try command.run()
        command.waitUntilExit()
        XCTAssertEqual(command.terminationStatus, 0)
        let expected = try XCTUnwrap(FileManager.default.contents(atPath: temp + "/command.png"))
        XCTAssertEqual(FileManager.default.contents(atPath: temp + "/library.png"), expected)
    }

    /// The example in the DocC catalog is this file's, line for line, so the documentation cannot drift.
    func testDocumentationShowsThisExample() throws {
        let source = try String(contentsOfFile: #filePath, encoding: .utf8)
        let tested = try XCTUnwrap(source.components(separatedBy: "// example begin\n").dropFirst().first?.components(separatedBy: "// example end").first)
        let article = try String(contentsOfFile: repository + "/Sources/EdgeDDIM/EdgeDDIM.docc/EdgeDDIM.md", encoding: .utf8)
        let shown = try XCTUnwrap(article.components(separatedBy: "```swift\nimport EdgeDDIM\n\n").dropFirst().first?.components(separatedBy: "```").first)
        XCTAssertEqual(shown, tested)
        XCTAssertLessThanOrEqual(tested.split(separator: "\n").count, 20, "the example should stay at about 20 lines")
    }
}
