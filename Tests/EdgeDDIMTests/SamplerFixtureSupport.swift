import Foundation
import XCTest
import _EdgeCore
import EdgeImageIO

/// Where the sampler / image-I/O fixtures live: `Tests/Fixtures/sampler/`, found from this file's path so the
/// tests run from any working directory. They are made by `tools/reference/make_sampler_fixtures.py`.
enum SamplerFixtures {
    static let directory: String = {
        var parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(2)  // "EdgeDDIMTests/<this file>"
        return parts.joined(separator: "/") + "/Fixtures/sampler/"
    }()

    static func path(_ relative: String) -> String { directory + relative }

    static func bytes(_ relative: String) throws -> [UInt8] {
        try readWholeFile(path(relative))
    }

    static func json<T: Decodable>(_ relative: String, as type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(bytes(relative)))
    }

    static func floats(_ relative: String) throws -> [Float] {
        try NPY.read(path: path(relative)).values
    }

    /// Distance in units in the last place between two floats (0 when bit-identical, and for +0 vs −0).
    static func ulpDistance(_ a: Float, _ b: Float) -> Int {
        if a == b { return 0 }
        if a.isNaN || b.isNaN { return Int.max }
        func ordered(_ x: Float) -> Int {
            let bits = Int(Int32(bitPattern: x.bitPattern))
            return bits < 0 ? Int(Int32.min) - bits : bits
        }
        return abs(ordered(a) - ordered(b))
    }

    /// A fresh temporary folder, removed when the test finishes.
    static func temporaryDirectory(_ test: XCTestCase) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("edge-ddim-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }
}

/// A `NoiseScheduleConfig` as the fixture script writes it (diffusers' `scheduler_config.json` keys; absent
/// keys keep diffusers' defaults, which are also `NoiseScheduleConfig`'s).
struct SamplerConfigJSON: Decodable {
    let num_train_timesteps: Int?
    let beta_schedule: String?
    let beta_start: Double?
    let beta_end: Double?
    let trained_betas: [Double]?
    let clip_sample: Bool?
    let clip_sample_range: Double?
    let prediction_type: String?
    let steps_offset: Int?
    let set_alpha_to_one: Bool?
    let timestep_spacing: String?

    var config: NoiseScheduleConfig {
        var c = NoiseScheduleConfig()
        if let v = num_train_timesteps { c.numTrainTimesteps = v }
        if let v = beta_schedule { c.betaSchedule = NoiseScheduleConfig.BetaSchedule(rawValue: v)! }
        if let v = beta_start { c.betaStart = v }
        if let v = beta_end { c.betaEnd = v }
        c.trainedBetas = trained_betas
        if let v = clip_sample { c.clipSample = v }
        if let v = clip_sample_range { c.clipSampleRange = v }
        if let v = prediction_type { c.predictionType = NoiseScheduleConfig.PredictionType(rawValue: v)! }
        if let v = steps_offset { c.stepsOffset = v }
        if let v = set_alpha_to_one { c.setAlphaToOne = v }
        if let v = timestep_spacing { c.timestepSpacing = NoiseScheduleConfig.TimestepSpacing(rawValue: v)! }
        return c
    }
}
