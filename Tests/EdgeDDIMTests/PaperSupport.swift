import Foundation
import XCTest
import _EdgeCore
import EdgeModelFile

/// The fixtures of tools/reference/make_paper_fixtures.py (Tests/Fixtures/paper/paper.json).
struct PaperFixtures: Decodable {
    struct Inversion: Decodable {
        let name: String
        let fixture: String
        let overrides: [String: PipelineSmallModelTests.JSONScalar]
        let steps: Int
        let shape: [Int]
        let x0: String
        let xT: String
        let recon: String
        let inverse_timesteps: [Int]
    }
    struct PNGInversion: Decodable {
        let fixture: String
        let png: String
        let steps: Int
        let shape: [Int]
        let xT: String
    }
    struct SlerpRun: Decodable {
        let name: String
        let model: String
        let seed_a: UInt64
        let seed_b: UInt64
        let frames: Int
        let steps: Int
        let shape: [Int]
        let latents: String
        let x0: String
    }
    struct Shared: Decodable {
        let name: String
        let steps: Int
        let shape: [Int]
        let x0: String
        let xT: String
        let recon: String
        let recon_mse: Double
    }
    struct GoodPNG: Decodable {
        let file: String
        let width: Int
        let height: Int
        let channels: Int
        let pixels: [UInt8]
        let filters: [Int]
        let writer: String
    }
    struct BadPNG: Decodable {
        let file: String
        let mentions: String
    }

    let inversion: [Inversion]
    let png_inversion: [PNGInversion]
    let slerp: [SlerpRun]
    let shared: [Shared]
    let png_good: [GoodPNG]
    let png_bad: [BadPNG]

    static let folder = fixturesRoot + "/paper"

    static func load() throws -> PaperFixtures {
        try JSONDecoder().decode(PaperFixtures.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/paper.json")))
    }
}

/// Copies the fixture model folder `name` into `temp` (a fresh folder per model) with `overrides` merged into
/// its scheduler_config.json, and converts it to fp32 as a user would.
func paperModel(_ name: String, overrides: [String: PipelineSmallModelTests.JSONScalar] = [:], in temp: String) throws -> ModelFile {
    let source = fixturesRoot + "/unet/" + name
    let target = temp + "/" + name
    try FileManager.default.copyItem(atPath: source, toPath: target)
    let configPath = target + "/scheduler_config.json"
    let data = try Data(contentsOf: URL(fileURLWithPath: source + "/scheduler_config.json"))
    guard var config = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw EdgeError("\(source)/scheduler_config.json is not a JSON object")
    }
    for (key, value) in overrides { config[key] = value.any }
    try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]).write(to: URL(fileURLWithPath: configPath))
    return try convertedModel(target, weights: .f32, into: temp)
}
