import Foundation
import XCTest
import _EdgeCore
import _EdgeQuant
import EdgeModelFile
import EdgeDDIM
import EdgeImageIO

/// Every prediction type × timestep spacing × η, end to end against diffusers' DDIMPipeline, on two small
/// random-weight UNets (Tests/Fixtures/unet/single-level-attn, 1 channel, and two-level-midscale, 3 channels).
/// The fixtures (Tests/Fixtures/sampler/small-pipeline, written by
/// tools/reference/make_small_pipeline_fixtures.py) also vary beta_schedule, clip_sample, set_alpha_to_one,
/// steps_offset and the step count across the runs. Each run rewrites a copy of the model folder's
/// scheduler_config.json with the run's overrides, converts it to fp32 as a user would, and samples.
final class PipelineSmallModelTests: XCTestCase {
    /// The bar for a full sampling run: 1e-3 max abs error on x₀.
    static let trajectoryTolerance: Float = 1e-3
    /// x_T is drawn by our port of torch's generator; torch's vectorised log/sin/cos round the last bits
    /// differently (a few ulps of values up to ~4), so x_T agrees to 1e-5, not bit for bit.
    static let noiseTolerance: Float = 1e-5

    struct Run: Decodable {
        let name: String
        let fixture: String
        let overrides: [String: JSONScalar]
        let steps: Int
        let eta: Float
        let seed: UInt64
        let shape: [Int]
        let x_T: String
        let x0: String
        let timesteps: [Int]
    }
    struct Manifest: Decodable { let runs: [Run] }

    /// A scheduler_config.json value: the overrides are strings, numbers and booleans.
    enum JSONScalar: Decodable {
        case string(String), bool(Bool), int(Int), double(Double)
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let i = try? c.decode(Int.self) { self = .int(i) }
            else if let d = try? c.decode(Double.self) { self = .double(d) }
            else { self = .string(try c.decode(String.self)) }
        }
        var any: Any {
            switch self {
            case .string(let s): return s
            case .bool(let b): return b
            case .int(let i): return i
            case .double(let d): return d
            }
        }
    }

    let folder = fixturesRoot + "/sampler/small-pipeline"

    func manifest() throws -> Manifest {
        try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/small_pipeline.json")))
    }

    /// Copies the fixture model folder into `temp` with the run's overrides merged into scheduler_config.json.
    func modelFolder(for run: Run, in temp: String) throws -> String {
        let source = fixturesRoot + "/unet/" + run.fixture
        let target = temp + "/" + run.fixture
        try FileManager.default.copyItem(atPath: source, toPath: target)
        let configPath = target + "/scheduler_config.json"
        let data = try Data(contentsOf: URL(fileURLWithPath: configPath))
        guard var config = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw EdgeError("\(source)/scheduler_config.json is not a JSON object")
        }
        for (key, value) in run.overrides { config[key] = value.any }
        try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]).write(to: URL(fileURLWithPath: configPath))
        return target
    }

    func check(fixture: String) throws {
        let runs = try manifest().runs.filter { $0.fixture == fixture }
        XCTAssertEqual(runs.count, 18, "\(fixture): expected the 3 × 3 × 2 grid")
        for run in runs {
            let temp = temporaryFolder()
            defer { removeFolder(temp) }
            let model = try convertedModel(try modelFolder(for: run, in: temp), weights: .f32, into: temp)
            var options = SamplingOptions()
            options.steps = run.steps
            options.eta = run.eta
            options.seed = run.seed
            options.count = run.shape[0]
            let pipeline = try SamplingPipeline(model: model, options: options)
            XCTAssertEqual(pipeline.shape, run.shape, run.name)
            XCTAssertEqual(pipeline.sampler.modelTimesteps, run.timesteps.map(Float.init), "\(run.name): timesteps")
            let expectedNoise = try NPY.read(path: folder + "/" + run.x_T, expectedShape: run.shape)
            let noiseError = maxAbsDifference(UnsafeBufferPointer(pipeline.x), expectedNoise)
            XCTAssertLessThanOrEqual(noiseError, Self.noiseTolerance, "\(run.name): x_T max abs error \(noiseError)")
            try pipeline.run()
            let expected = try NPY.read(path: folder + "/" + run.x0, expectedShape: run.shape)
            let error = maxAbsDifference(UnsafeBufferPointer(pipeline.x), expected)
            XCTAssertLessThanOrEqual(error, Self.trajectoryTolerance, "\(run.name) \(run.overrides.mapValues(\.any)): x₀ max abs error \(error)")
        }
    }

    func testOneChannelModel() throws { try check(fixture: "single-level-attn") }
    func testThreeChannelModel() throws { try check(fixture: "two-level-midscale") }
}
