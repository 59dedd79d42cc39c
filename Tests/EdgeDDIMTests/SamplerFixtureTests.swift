import Foundation
import XCTest
import _EdgeCore
import EdgeModelFile
import EdgeConvert
import EdgeDDIM
import EdgeImageIO

/// Every sampler against diffusers' generic loop (`x = randn · init_noise_sigma; for t: m = unet(scale_model_input(x, t), t);
/// x = step(m, t, x, generator).prev_sample`), from the fixtures of tools/reference/make_scheduler_fixtures.py
/// (Tests/Fixtures/samplers): timesteps, σ's, init_noise_sigma, x_T and x₀, and for the stochastic samplers
/// the sample after every step (which shows the per-step noise is diffusers').
///
/// `SamplerFixtureTests` covers the two small random-weight UNets over every spacing and prediction type each
/// scheduler accepts (and the configurations it refuses); `SamplerCheckpointTests` the two trained checkpoints
/// (fp32 conversions, seed 42, 4 images, S = 5, 10 and 20, and Karras variants).
enum SchedulerFixtures {
    static let folder = fixturesRoot + "/samplers"

    /// The bar for a whole sampling run: 1e-3 max abs error on x₀. diffusers' own float32 result is
    /// within 1e-4 of its float64 one on every small run (the fixture script refuses to write worse) and
    /// within 1.3e-4 on the checkpoints.
    static let trajectoryTolerance: Float = 1e-3
    /// x_T comes from our port of torch's generator, whose vectorised log/sin/cos round the last bits
    /// differently: a few ulps of values up to ~4.
    static let noiseTolerance: Float = 1e-5
    /// Euler's fractional timesteps (from np.interp and `_sigma_to_t` in double, then float32) may differ by an
    /// ulp of values up to 1000 (6e-5); integer timesteps must be equal, which this bound also enforces.
    static let timestepTolerance: Float = 1e-3
    /// σ tables are float32 values computed through float32 and double steps that libm may round differently:
    /// a few ulps.
    static let sigmaRelativeTolerance: Float = 1e-5

    struct Run {
        let name: String, model: String, kind: String, sampler: String
        let karras: Bool
        let overrides: [String: Any]
        let steps: Int, seed: UInt64
        let shape: [Int]
        let timesteps: [Float]
        let sigmas: [Float]?
        let initNoiseSigma: Float
        let xT: String, x0: String
        let trajectory: String?

        var settings: SamplerSettings {
            sampler == "pndm-prk" ? SamplerSettings(kind: .pndm, pndmPRK: true)
                : SamplerSettings(kind: SamplerKind(rawValue: sampler)!, karras: karras)
        }
    }

    struct Refusal {
        let sampler: String, karras: Bool, steps: Int
        let overrides: [String: Any]
        let message: String
    }

    static func manifest() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/samplers.json"))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw EdgeError("\(folder)/samplers.json is not a JSON object")
        }
        return object
    }

    static func runs(kind: String) throws -> [Run] {
        let all = try manifest()["runs"] as? [[String: Any]] ?? []
        return all.filter { $0["kind"] as? String == kind }.map { r in
            Run(name: r["name"] as! String, model: r["model"] as! String, kind: kind, sampler: r["sampler"] as! String,
                karras: r["karras"] as! Bool, overrides: r["overrides"] as? [String: Any] ?? [:],
                steps: r["steps"] as! Int, seed: UInt64(r["seed"] as! Int), shape: r["shape"] as! [Int],
                timesteps: (r["timesteps"] as! [Double]).map { Float($0) },
                sigmas: (r["sigmas"] as? [Double])?.map { Float($0) },
                initNoiseSigma: Float(r["init_noise_sigma"] as! Double),
                xT: r["x_T"] as! String, x0: r["x0"] as! String, trajectory: r["trajectory"] as? String)
        }
    }

    static func refusals() throws -> [Refusal] {
        let all = try manifest()["refusals"] as? [[String: Any]] ?? []
        return all.map { r in
            Refusal(sampler: r["sampler"] as! String, karras: r["karras"] as! Bool, steps: r["steps"] as! Int,
                    overrides: r["overrides"] as? [String: Any] ?? [:], message: r["message"] as? String ?? "")
        }
    }

    /// Copies a fixture UNet folder into `temp` with `overrides` merged into its scheduler_config.json (any
    /// JSON values, trained_betas lists included) and converts it to fp32, as a user would.
    static func smallModel(_ name: String, overrides: [String: Any], in temp: String) throws -> ModelFile {
        let target = temp + "/" + name
        try FileManager.default.copyItem(atPath: fixturesRoot + "/unet/" + name, toPath: target)
        try writeSchedulerConfig(from: fixturesRoot + "/unet/" + name, overrides: overrides, to: target + "/scheduler_config.json")
        return try convertedModel(target, weights: .f32, into: temp)
    }

    static func writeSchedulerConfig(from folder: String, overrides: [String: Any], to path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/scheduler_config.json"))
        guard var config = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw EdgeError("\(folder)/scheduler_config.json is not a JSON object")
        }
        for (key, value) in overrides { config[key] = value }
        try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]).write(to: URL(fileURLWithPath: path))
    }

    /// One run end to end on an opened model: schedule, x_T, every step of a stochastic sampler, x₀.
    /// Returns the x₀ max abs error.
    @discardableResult
    static func check(_ run: Run, model: ModelFile, file: StaticString = #filePath, line: UInt = #line) throws -> Float {
        var options = SamplingOptions()
        options.steps = run.steps
        options.sampler = run.settings
        options.seed = run.seed
        options.count = run.shape[0]
        let pipeline = try SamplingPipeline(model: model, options: options)
        XCTAssertEqual(pipeline.shape, run.shape, run.name, file: file, line: line)
        let timesteps = pipeline.sampler.modelTimesteps
        XCTAssertEqual(timesteps.count, run.timesteps.count, "\(run.name): timestep count", file: file, line: line)
        if timesteps.count == run.timesteps.count {
            let error = zip(timesteps, run.timesteps).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(error, timestepTolerance, "\(run.name): timesteps \(timesteps) vs \(run.timesteps)", file: file, line: line)
        }
        if let expected = run.sigmas {
            let sigmas = pipeline.sampler.sigmas ?? []
            XCTAssertEqual(sigmas.count, expected.count, "\(run.name): σ count", file: file, line: line)
            for (a, b) in zip(sigmas, expected) where abs(a - b) > sigmaRelativeTolerance * max(abs(b), 1e-3) {
                XCTFail("\(run.name): σ \(a) vs diffusers' \(b)", file: file, line: line)
                break
            }
        }
        XCTAssertEqual(pipeline.sampler.initNoiseSigma, run.initNoiseSigma, accuracy: run.initNoiseSigma * 1e-6,
                       "\(run.name): init_noise_sigma", file: file, line: line)
        let noise = try NPY.read(path: folder + "/" + run.xT, expectedShape: run.shape)
        let noiseError = maxAbsDifference(UnsafeBufferPointer(pipeline.x), noise)
        XCTAssertLessThanOrEqual(noiseError, noiseTolerance, "\(run.name): x_T max abs error \(noiseError)", file: file, line: line)

        var trajectory: [Float]? = nil
        if let t = run.trajectory { trajectory = try NPY.read(path: folder + "/" + t, expectedShape: [run.timesteps.count] + run.shape) }
        var worstStep: (error: Float, step: Int) = (0, 0)
        try pipeline.run(progress: { step, _ in
            guard let trajectory else { return }
            let n = pipeline.x.count
            let expected = Array(trajectory[(step - 1) * n ..< step * n])
            let e = maxAbsDifference(UnsafeBufferPointer(pipeline.x), expected)
            if e > worstStep.error { worstStep = (e, step) }
        })
        if trajectory != nil {
            XCTAssertLessThanOrEqual(worstStep.error, trajectoryTolerance, "\(run.name): step \(worstStep.step) max abs error \(worstStep.error)", file: file, line: line)
        }
        let x0 = try NPY.read(path: folder + "/" + run.x0, expectedShape: run.shape)
        let error = maxAbsDifference(UnsafeBufferPointer(pipeline.x), x0)
        XCTAssertLessThanOrEqual(error, trajectoryTolerance, "\(run.name): x₀ max abs error \(error)", file: file, line: line)
        return error
    }

    /// Runs `runs`, then prints the worst x₀ error per sampler (for the record; the assertions are in `check`).
    static func checkAll(_ runs: [Run], title: String, model: (Run) throws -> ModelFile) throws {
        var worst: [String: Float] = [:]
        for run in runs {
            let key = run.sampler + (run.karras ? " (karras)" : "")
            worst[key] = max(worst[key] ?? 0, try check(run, model: try model(run)))
        }
        print("\(title): worst x₀ max abs error per sampler: " + worst.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    }
}

final class SamplerFixtureTests: XCTestCase {
    func testSmallModelRuns() throws {
        let runs = try SchedulerFixtures.runs(kind: "small")
        XCTAssertGreaterThanOrEqual(runs.count, 100, "the fixture covers every sampler × spacing × prediction type")
        // Every sampler is in the fixture, with every spacing, and the stochastic ones with trajectories.
        for sampler in SamplerKind.allCases.map(\.rawValue) + ["pndm-prk"] {
            let mine = runs.filter { $0.sampler == sampler }
            XCTAssertEqual(Set(mine.compactMap { $0.overrides["timestep_spacing"] as? String }), ["leading", "trailing", "linspace"], sampler)
        }
        XCTAssertTrue(runs.contains { $0.trajectory != nil && $0.sampler == "euler-a" })
        XCTAssertTrue(runs.contains { $0.trajectory != nil && $0.sampler == "dpmpp-2m-sde" })
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        var k = 0
        try SchedulerFixtures.checkAll(runs, title: "small UNets, \(runs.count) runs") { run in
            k += 1
            let folder = temp + "/\(k)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
            return try SchedulerFixtures.smallModel(run.model, overrides: run.overrides, in: folder)
        }
    }

    /// Configurations diffusers refuses (a spacing it lacks, a prediction type the scheduler cannot use, PRK
    /// with fewer than 4 steps, a first timestep that repeats, on which diffusers' `index_for_timestep`
    /// starts at the second occurrence and fails at the last step) are refused when the sampler is built,
    /// with a usage error. DDIM's quadratic spacing is edge-ddim's own (the DDIM paper's), so not refused.
    func testRefusalsMatchDiffusers() throws {
        let refusals = try SchedulerFixtures.refusals()
        XCTAssertGreaterThan(refusals.count, 20)
        let base = fixturesRoot + "/unet/single-level-attn"
        var checked = 0
        for r in refusals {
            if r.sampler == "ddim" && (r.overrides["timestep_spacing"] as? String) == "quadratic" { continue }
            let temp = temporaryFolder()
            defer { removeFolder(temp) }
            let path = temp + "/scheduler_config.json"
            // A scheduler_config.json with quadratic spacing is already refused by `convert` (no diffusers
            // scheduler has it); the command line can still ask for it with --schedule quadratic.
            var overrides = r.overrides
            let quadratic = overrides.removeValue(forKey: "timestep_spacing") as? String == "quadratic"
            if !quadratic { overrides["timestep_spacing"] = r.overrides["timestep_spacing"] }
            try SchedulerFixtures.writeSchedulerConfig(from: base, overrides: overrides, to: path)
            let settings = r.sampler == "pndm-prk" ? SamplerSettings(kind: .pndm, pndmPRK: true)
                : SamplerSettings(kind: SamplerKind(rawValue: r.sampler)!, karras: r.karras)
            let context = "\(settings.label) \(r.overrides) S=\(r.steps) (diffusers: \(r.message))"
            do {
                var config = try DiffusersConfig.scheduler(try JSONValue.parse(Array(try Data(contentsOf: URL(fileURLWithPath: path))), context: path), file: path).config
                if quadratic {
                    config.timestepSpacing = .quadratic
                    config.markGiven("timestep_spacing")
                }
                _ = try AnySampler(settings, schedulerConfig: config, steps: r.steps)
                XCTFail("\(context): accepted")
            } catch let error as EdgeError {
                XCTAssertEqual(error.kind, .usage, "\(context): \(error)")
            }
            checked += 1
        }
        XCTAssertGreaterThan(checked, 20)
    }
}

/// The trained checkpoints (skipped under qemu and ThreadSanitizer, like PipelineFixtureTests: about a minute
/// natively for both).
final class SamplerCheckpointTests: XCTestCase {
    func check(checkpoint: String) throws {
        let folder = try sharedCheckpoint(checkpoint)
        let runs = try SchedulerFixtures.runs(kind: "checkpoint").filter { $0.model == checkpoint }
        XCTAssertEqual(runs.count, 27, "\(checkpoint): 8 samplers × S = 5, 10, 20, and 3 Karras runs")
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let model = try convertedModel(folder, weights: .f32, into: temp)
        try SchedulerFixtures.checkAll(runs, title: checkpoint) { _ in model }
    }

    func testFashionCheckpoint() throws { try check(checkpoint: "ddpm-fashion-32") }
    func testEmojiCheckpoint() throws { try check(checkpoint: "ddpm-emoji-32") }
}
