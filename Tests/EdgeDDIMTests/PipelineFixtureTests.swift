import Foundation
import XCTest
import _EdgeCore
import _EdgeQuant
import EdgeModelFile
import EdgeDDIM
import EdgeImageIO

/// End to end against diffusers' DDIMPipeline (Tests/Fixtures/sampler/pipeline, written by
/// tools/reference/make_sampler_fixtures.py): fp32 conversions of the two reference checkpoints,
/// seed 42, 4 images, 10 and 20 steps, η 0 and 1.
final class PipelineFixtureTests: XCTestCase {
    /// The bar for a full sampling run: 1e-3 max abs error on x₀. Per-evaluation UNet error is
    /// ~1e-6; ten to twenty steps with clipping amplify it, but stay far below this.
    static let trajectoryTolerance: Float = 1e-3
    /// x_T is drawn by our port of torch's generator; torch's vectorised log/sin/cos round the last bits
    /// differently (NOTES.md measured 2.4e-7), so x_T agrees to a few ulps of values up to ~4.
    static let noiseTolerance: Float = 1e-5

    struct Run: Decodable { let eta: Float; let steps: Int; let x0: String; let timesteps: [Int] }
    struct InitNoise: Decodable { let steps: Int; let trajectory: String; let x_T: String }
    struct Checkpoint: Decodable { let runs: [Run]; let seed: UInt64; let shape: [Int]; let x_T: String; let init_noise: InitNoise?; let pil_strip: String? }
    struct Manifest: Decodable { let checkpoints: [String: Checkpoint] }

    let folder = fixturesRoot + "/sampler/pipeline"

    func manifest() throws -> Manifest {
        try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/pipeline.json")))
    }

    func check(_ name: String) throws {
        let source = try sharedCheckpoint(name)
        guard let entry = try manifest().checkpoints[name] else { return XCTFail("no pipeline fixture for \(name)") }
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let model = try convertedModel(source, weights: .f32, into: temp)
        let expectedNoise = try NPY.read(path: folder + "/" + entry.x_T, expectedShape: entry.shape)
        for run in entry.runs {
            var options = SamplingOptions()
            options.steps = run.steps
            options.eta = run.eta
            options.seed = entry.seed
            options.count = entry.shape[0]
            let pipeline = try SamplingPipeline(model: model, options: options)
            XCTAssertEqual(pipeline.shape, entry.shape)
            XCTAssertEqual(pipeline.sampler.modelTimesteps, run.timesteps.map(Float.init))
            XCTAssertLessThanOrEqual(maxAbsDifference(UnsafeBufferPointer(pipeline.x), expectedNoise), Self.noiseTolerance, "\(name): x_T")
            try pipeline.run()
            let expected = try NPY.read(path: folder + "/" + run.x0, expectedShape: entry.shape)
            let error = maxAbsDifference(UnsafeBufferPointer(pipeline.x), expected)
            XCTAssertLessThanOrEqual(error, Self.trajectoryTolerance, "\(name) steps \(run.steps) eta \(run.eta): max abs error \(error)")
            if run.steps == 10, run.eta == 0, let strip = entry.pil_strip {
                // The PNG path: our grid (one row, no gaps) against PIL's image of diffusers' output. Pixels
                // may differ by one level where x₀ sits within 1e-3 of a rounding boundary.
                let png = try PNG.read(path: folder + "/" + strip)
                let ours = try pixels(images: UnsafeBufferPointer(pipeline.x), count: entry.shape[0], channels: entry.shape[1],
                                      height: entry.shape[2], width: entry.shape[3], layout: GridLayout(columns: entry.shape[0], gap: 0))
                XCTAssertEqual(png.width, ours.width)
                XCTAssertEqual(png.height, ours.height)
                XCTAssertEqual(png.channels, ours.channels)
                let worst = zip(png.pixels, ours.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 99
                XCTAssertLessThanOrEqual(worst, 1, "\(name): PNG pixels differ by \(worst) levels")
            }
        }
        if let initNoise = entry.init_noise {
            let xT = try NPY.read(path: folder + "/" + initNoise.x_T)
            let trajectory = try NPY.read(path: folder + "/" + initNoise.trajectory)
            var options = SamplingOptions()
            options.steps = initNoise.steps
            options.count = xT.shape[0]
            let pipeline = try SamplingPipeline(model: model, options: options)
            try xT.values.withUnsafeBufferPointer { try pipeline.setInitialNoise($0) }
            let perStep = xT.values.count
            XCTAssertEqual(trajectory.shape[0], initNoise.steps + 1)
            var worst: Float = 0
            try pipeline.run { step, _ in
                let expected = Array(trajectory.values[step * perStep ..< (step + 1) * perStep])
                worst = max(worst, maxAbsDifference(UnsafeBufferPointer(pipeline.x), expected))
            }
            XCTAssertLessThanOrEqual(worst, Self.trajectoryTolerance, "\(name): --init-noise trajectory max abs error \(worst)")
        }
    }

    func testFashionPipeline() throws { try check("ddpm-fashion-32") }
    func testEmojiPipeline() throws { try check("ddpm-emoji-32") }
}
