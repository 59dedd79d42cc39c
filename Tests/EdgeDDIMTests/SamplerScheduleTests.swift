import XCTest
import _EdgeCore
import EdgeSampler

/// ᾱ and timestep lists against diffusers' `DDIMScheduler` (0.42.1, torch 2.15), and argument validation.
final class SamplerScheduleTests: XCTestCase {
    /// ᾱ is built with the same float32 linspace (fused multiply-adds), the same double-accumulated cumprod and
    /// the same libm calls as torch/Python, so it is expected to match to the bit.
    static let alphaMaxUlps = 0

    struct Manifest: Decodable {
        struct Alphas: Decodable {
            let config: SamplerConfigJSON
            let file: String
            let final_alpha_cumprod_false: Float
        }
        struct Timesteps: Decodable {
            let num_train_timesteps: Int
            let spacing: String
            let steps_offset: Int
            let steps: Int
            let timesteps: [Int]
        }
        let alphas: [String: Alphas]
        let timesteps: [Timesteps]
    }

    func testAlphasCumprodMatchDiffusers() throws {
        let manifest = try SamplerFixtures.json("schedules.json", as: Manifest.self)
        XCTAssertEqual(manifest.alphas.count, 6)
        for (name, entry) in manifest.alphas.sorted(by: { $0.key < $1.key }) {
            let expected = try SamplerFixtures.floats(entry.file)
            let got = try NoiseSchedule.alphasCumprod(entry.config.config)
            XCTAssertEqual(got.count, expected.count, name)
            let worst = zip(got, expected).map { SamplerFixtures.ulpDistance($0, $1) }.max() ?? 0
            XCTAssertLessThanOrEqual(worst, Self.alphaMaxUlps, "\(name): ᾱ differs by \(worst) ulps")
            var config = entry.config.config
            config.setAlphaToOne = false
            XCTAssertEqual(try DDIMSchedule(config: config, steps: 1).finalAlphaCumprod, entry.final_alpha_cumprod_false, name)
            config.setAlphaToOne = true
            XCTAssertEqual(try DDIMSchedule(config: config, steps: 1).finalAlphaCumprod, 1, name)
        }
    }

    func testTimestepListsMatchDiffusers() throws {
        let manifest = try SamplerFixtures.json("schedules.json", as: Manifest.self)
        var checked = 0, trailingExtra = 0
        for entry in manifest.timesteps {
            var config = NoiseScheduleConfig()
            config.numTrainTimesteps = entry.num_train_timesteps
            config.timestepSpacing = NoiseScheduleConfig.TimestepSpacing(rawValue: entry.spacing)!
            config.stepsOffset = entry.steps_offset
            let label = "\(entry.spacing) T=\(entry.num_train_timesteps) S=\(entry.steps) offset=\(entry.steps_offset)"
            var expected = entry.timesteps
            if entry.spacing == "trailing" && expected.count == entry.steps + 1 {
                // diffusers' extra step at t = −1 (numpy arange length rounding), which DDIMSchedule drops.
                XCTAssertEqual(expected.last, -1, label)
                expected.removeLast()
                trailingExtra += 1
            }
            XCTAssertEqual(try DDIMSchedule.timesteps(config: config, steps: entry.steps), expected, label)
            checked += 1
        }
        XCTAssertGreaterThan(checked, 450)
        XCTAssertGreaterThan(trailingExtra, 0, "the fixtures include the trailing counts where numpy overshoots")
    }

    func testPreviousTimesteps() throws {
        var config = NoiseScheduleConfig()
        config.timestepSpacing = .leading
        config.stepsOffset = 1
        let leading = try DDIMSchedule(config: config, steps: 10)
        XCTAssertEqual(leading.timesteps, [901, 801, 701, 601, 501, 401, 301, 201, 101, 1])
        XCTAssertEqual(leading.previousTimesteps, [801, 701, 601, 501, 401, 301, 201, 101, 1, -99])

        // diffusers subtracts ⌊T/S⌋ whatever the spacing, even where that is not the next listed timestep.
        config.timestepSpacing = .trailing
        let trailing = try DDIMSchedule(config: config, steps: 7)
        XCTAssertEqual(trailing.timesteps, [999, 856, 713, 570, 428, 285, 142])
        XCTAssertEqual(trailing.previousTimesteps, trailing.timesteps.map { $0 - 142 })

        config.timestepSpacing = .quadratic
        config.stepsOffset = 0
        let quadratic = try DDIMSchedule(config: config, steps: 5)
        XCTAssertEqual(quadratic.timesteps, [800, 450, 200, 50, 0])
        XCTAssertEqual(quadratic.previousTimesteps, [450, 200, 50, 0, -1])
    }

    func testStepCoefficients() {
        let a: Float = 0.25, prev: Float = 0.64
        let deterministic = DDIMStepCoefficients(alphaProd: a, alphaProdPrevious: prev, eta: 0)
        XCTAssertEqual(deterministic.noiseScale, 0)
        XCTAssertEqual(deterministic.sqrtAlphaProd, 0.5)
        XCTAssertEqual(deterministic.sqrtAlphaProdPrevious, 0.8)
        XCTAssertEqual(deterministic.directionScale, (1 - prev).squareRoot())
        // η = 1: σ² = (1−ᾱ')/(1−ᾱ)·(1−ᾱ/ᾱ') is DDPM's posterior variance, and σ² + direction² = 1 − ᾱ'.
        let ddpm = DDIMStepCoefficients(alphaProd: a, alphaProdPrevious: prev, eta: 1)
        let sigma2 = (1 - prev) / (1 - a) * (1 - a / prev)
        XCTAssertEqual(ddpm.noiseScale * ddpm.noiseScale, sigma2, accuracy: Self.identityTolerance)
        XCTAssertEqual(ddpm.noiseScale * ddpm.noiseScale + ddpm.directionScale * ddpm.directionScale, 1 - prev,
                       accuracy: Self.identityTolerance)
    }
    /// The identities above hold exactly in real arithmetic; a few float32 roundings of O(1) values stay
    /// within a few ulps of 1.
    static let identityTolerance: Float = 4e-7

    func testValidation() {
        let config = NoiseScheduleConfig()
        for steps in [0, -3, 1001] {
            XCTAssertThrowsError(try DDIMSchedule(config: config, steps: steps)) { error in
                let e = error as? EdgeError
                XCTAssertEqual(e?.kind, .usage)
                XCTAssertTrue(e?.message.contains("1...1000") ?? false, "\(error)")
            }
        }
        XCTAssertNoThrow(try DDIMSchedule(config: config, steps: 1000))
        XCTAssertNoThrow(try DDIMSchedule(config: config, steps: 1))

        for eta: Float in [-0.01, 1.01, .nan, .infinity] {
            XCTAssertThrowsError(try validateEta(eta)) { error in
                XCTAssertEqual((error as? EdgeError)?.kind, .usage)
                XCTAssertTrue("\(error)".contains("eta"), "\(error)")
            }
        }
        XCTAssertNoThrow(try validateEta(0))
        XCTAssertNoThrow(try validateEta(1))

        var offset = NoiseScheduleConfig()
        offset.stepsOffset = 1
        XCTAssertThrowsError(try DDIMSchedule(config: offset, steps: 1000))  // t = 1000 is past ᾱ_999

        var trained = NoiseScheduleConfig()
        trained.trainedBetas = [0.1, 0.2]
        XCTAssertThrowsError(try DDIMSchedule(config: trained, steps: 1)) { error in
            XCTAssertTrue("\(error)".contains("trained_betas"), "\(error)")
        }
        var bad = NoiseScheduleConfig()
        bad.betaEnd = 1.5
        XCTAssertThrowsError(try NoiseSchedule.betas(bad))
    }
}
