import XCTest
import _EdgeCore
import EdgeModelFile
import EdgeConvert
import EdgeDDIM

/// Fields a checkpoint's scheduler_config.json leaves out take each scheduler's own default, as
/// `XScheduler.from_config` gives them, so the model file records which fields were set.
final class SamplerConfigTests: XCTestCase {
    func config(_ json: String) throws -> NoiseScheduleConfig {
        try DiffusersConfig.scheduler(try JSONValue.parse(Array(json.utf8), context: "test"), file: "test").config
    }

    func testMissingFieldsTakeEachSchedulersDefault() throws {
        let bare = try config(#"{"num_train_timesteps": 1000, "beta_schedule": "linear", "trained_betas": null}"#)
        XCTAssertEqual(bare.givenFields, ["num_train_timesteps", "beta_schedule"], "null counts as unset")
        // timestep_spacing: DDIM's and PNDM's default is leading, the others' linspace.
        XCTAssertEqual(try AnySampler(SamplerSettings(kind: .ddim), schedulerConfig: bare, steps: 10).modelTimesteps.first, 900)
        XCTAssertEqual(try AnySampler(SamplerSettings(kind: .pndm), schedulerConfig: bare, steps: 10).modelTimesteps.first, 900)
        for kind in [SamplerKind.dpmpp2m, .unipc, .euler, .eulerAncestral] {
            XCTAssertEqual(try AnySampler(SamplerSettings(kind: kind), schedulerConfig: bare, steps: 10).modelTimesteps.first, 999, kind.rawValue)
        }
        // set_alpha_to_one: DDIM's default is true, PNDM's false (ᾱ after the last step: 1 or ᾱ₀).
        guard case .pndm(let pndm) = try AnySampler(SamplerSettings(kind: .pndm), schedulerConfig: bare, steps: 10) else { return XCTFail() }
        XCTAssertEqual(pndm.finalAlphaCumprod, pndm.alphasCumprod[0])
        guard case .ddim(let ddim) = try AnySampler(SamplerSettings(kind: .ddim), schedulerConfig: bare, steps: 10) else { return XCTFail() }
        XCTAssertEqual(ddim.schedule.finalAlphaCumprod, 1)

        let given = try config(#"{"timestep_spacing": "trailing", "set_alpha_to_one": true}"#)
        XCTAssertEqual(try AnySampler(SamplerSettings(kind: .dpmpp2m), schedulerConfig: given, steps: 10).modelTimesteps.first, 999)
        XCTAssertEqual(try AnySampler(SamplerSettings(kind: .pndm), schedulerConfig: given, steps: 10).modelTimesteps.last, 99)
        guard case .pndm(let pndmGiven) = try AnySampler(SamplerSettings(kind: .pndm), schedulerConfig: given, steps: 10) else { return XCTFail() }
        XCTAssertEqual(pndmGiven.finalAlphaCumprod, 1)
    }

    /// The record survives the model file; a file written before it existed counts every field as set.
    func testFieldsGivenInTheModelFile() throws {
        var config = try config(#"{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}"#)
        var metadata = Metadata()
        metadata.setSchedule(config)
        XCTAssertEqual(try metadata.schedule().givenFields, ["beta_schedule", "beta_start", "beta_end"])
        XCTAssertFalse(try metadata.schedule().isGiven("timestep_spacing"))
        config.givenFields = nil
        var old = Metadata()
        old.setSchedule(config)
        XCTAssertNil(old["scheduler.fields_given"])
        XCTAssertNil(try old.schedule().givenFields)
        XCTAssertTrue(try old.schedule().isGiven("timestep_spacing"))
        // The default model records its checkpoint's fields: the DDPM config has no set_alpha_to_one.
        let model = try ModelFile(path: repositoryRoot + "/models/ddpm-fashion-32.edm")
        XCTAssertTrue(model.schedule.isGiven("timestep_spacing"))
        XCTAssertFalse(model.schedule.isGiven("set_alpha_to_one"))
    }

    /// Degenerate and huge schedules build or are refused, never trap or take long: one training timestep
    /// (a σ table of one entry, where numpy's `_sigma_to_t` gives NaN), and Karras σ's for the largest T
    /// a model file may have, S = T (a linear search per σ would be 10¹⁰ comparisons).
    func testDegenerateAndHugeSchedules() throws {
        let one = try config(#"{"num_train_timesteps": 1}"#)
        for kind in SamplerKind.allCases {
            for settings in [SamplerSettings(kind: kind), SamplerSettings(kind: kind, karras: kind.hasKarrasSigmas)] {
                do {
                    let sampler = try AnySampler(settings, schedulerConfig: one, steps: 1)
                    XCTAssertTrue(sampler.modelTimesteps.allSatisfy(\.isFinite), settings.label)
                } catch let error as EdgeError {
                    XCTAssertEqual(error.kind, .usage, "\(settings.label): \(error)")
                }
            }
        }
        let huge = try config(#"{"num_train_timesteps": 100000, "beta_start": 0.00001, "beta_end": 0.0002}"#)
        let start = monotonicSeconds()
        let sampler = try AnySampler(SamplerSettings(kind: .dpmpp2m, karras: true), schedulerConfig: huge, steps: 100_000)
        XCTAssertEqual(sampler.evaluations, 100_000)
        XCTAssertLessThan(monotonicSeconds() - start, 10, "building a 100,000-step Karras schedule")
    }
}
