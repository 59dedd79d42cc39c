import Foundation
import XCTest
import _EdgeCore
import _EdgeQuant
import EdgeModelFile
@_spi(Testing) import EdgeUNet

/// The UNet forward pass against diffusers' own outputs (Tests/Fixtures/unet, written by
/// tools/reference/make_fixtures.py with the versions recorded in each io.safetensors).
final class UNetFixtureTests: XCTestCase {
    /// fp32 and fp16-weight models must match diffusers to 1e-4 max abs error (the issue's bar). The
    /// fixtures' weights are fp16 or bf16 values evaluated in fp32, so both weight types hold them exactly;
    /// what is left is fp32 summation order, about 1e-6 on these O(1) outputs.
    static let exactWeightsTolerance: Float = 1e-4
    /// int8 weights on the trained checkpoints: the issue's bar, 1% relative L2 error on epsilon versus fp32
    /// (measured 0.20% for ddpm-fashion-32 and 0.35% for ddpm-emoji-32).
    static let int8TrainedRelativeL2Tolerance = 0.01
    /// int8 weights on the random-weight fixtures: untrained weights with small fan-ins quantise worse than
    /// trained ones and the error compounds over every layer (measured 1.4–2.3%). This bar still catches a
    /// broken int8 path (wrong scale or row gives errors of order 1); the 1% bar holds for the trained models.
    static let int8RandomRelativeL2Tolerance = 0.04
    /// fp16 skip connections may grow int8's error against fp32 by this factor: a re-drawn rounding moves a
    /// single evaluation's error by a few percent either way (see the test); a systematic error (a wrong
    /// conversion, a skip restored from the wrong buffer) grows it many times.
    static let halfSkipErrorGrowth = 1.25
    /// Random-weight fixtures in the folder; fewer means the fixture generator lost cases.
    static let minimumRandomCases = 5

    /// Every random-weight fixture folder (those that carry their own weights).
    static func randomCases() -> [String] {
        let root = fixturesRoot + "/unet"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.filter { fileExists(root + "/" + $0 + "/config.json") }.sorted()
    }

    /// Runs the UNet of `model` on the fixture's inputs; returns the output and the per-stage maximum error.
    func run(_ model: ModelFile, _ io: FixtureIO, backend: UNetBackend, int8Activations: Bool? = nil) throws -> (output: [Float], stages: [String: Float]) {
        let sample = try io.tensor("sample"), timestep = try io.tensor("timestep")
        let unet = try UNet(model: model, batch: sample.shape[0], backend: backend, int8Activations: int8Activations)
        XCTAssertEqual(unet.int8Activations, int8Activations == true && backend == .fast && model.entries.contains { $0.type == .q8PerChannel })
        XCTAssertEqual(unet.sample.count, sample.values.count)
        _ = unet.sample.update(from: sample.values)
        _ = unet.timesteps.update(from: timestep.values)
        var stages: [String: Float] = [:]
        unet.run { name, values in
            if let expected = try? io.tensor("debug." + name) { stages[name] = maxAbsDifference(values, expected.values) }
        }
        return (Array(unet.output), stages)
    }

    func checkCase(_ name: String, folder: String, int8Tolerance: Double) throws {
        let io = try FixtureIO(fixturesRoot + "/unet/\(name)/io.safetensors")
        let expected = try io.tensor("output").values
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        var fp32Output: [Float] = []
        // fp16 holds fp16 checkpoints exactly; fp32 or bf16 ones only approximately, so those are compared
        // through fp32 alone.
        let sourceIsF16 = io.metadata["weights_dtype"] == "F16"
        for backend in UNetBackend.allCases {
            for weights in sourceIsF16 ? [WeightType.f32, .f16] : [.f32] {
                let model = try convertedModel(folder, weights: weights, into: temp)
                let (output, stages) = try run(model, io, backend: backend)
                let error = maxAbsDifference(output, expected)
                XCTAssertLessThanOrEqual(error, Self.exactWeightsTolerance,
                                         "\(name) \(weights) \(backend): max abs error \(error); per stage: \(stages.sorted { $0.key < $1.key })")
                if weights == .f32 { fp32Output = output }
            }
            // int8 weights with fp32 activations, and (fast backend) with int8 activations quantised per pixel.
            let int8Model = try convertedModel(folder, weights: .q8PerChannel, into: temp)
            for activations in backend == .fast ? [false, true] : [false] {
                let int8 = try run(int8Model, io, backend: backend, int8Activations: activations).output
                let relative = relativeL2(int8, fp32Output)
                print("\(name) int8 weights, \(activations ? "int8" : "fp32") activations, \(backend): relative L2 \(relative) vs fp32")
                XCTAssertLessThanOrEqual(relative, int8Tolerance, "\(name) int8 (activations int8: \(activations)) \(backend): relative L2 error \(relative) vs fp32")
            }
        }
    }

    func testRandomWeightConfigurations() throws {
        let cases = Self.randomCases()
        XCTAssertGreaterThanOrEqual(cases.count, Self.minimumRandomCases, "random-weight fixtures found: \(cases)")
        for name in cases {
            try checkCase(name, folder: fixturesRoot + "/unet/\(name)", int8Tolerance: Self.int8RandomRelativeL2Tolerance)
        }
    }

    /// Keeping skip connections in binary16 (by default only at 128×128 and larger, so never in these fixtures)
    /// rounds each skip value by ≤ 2⁻¹¹ relative before its reader quantises it to 8 bits per pixel. That flips
    /// some roundings, so ε moves by about as much as int8 already moves it from fp32 (measured 0.33% against
    /// 0.36% on ddpm-fashion-32): a fresh draw of the same quantisation noise, not more of it. So the bar is
    /// on the error against fp32: at most `halfSkipErrorGrowth` times the error with fp32 skips (measured 0.96
    /// and 1.006), and within the int8 bars. Also runs the to/from fp16 steps the default never schedules for
    /// small images.
    func testHalfSkipConnectionsStayCloseToFloatSkips() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        var cases = [("celebahq-like", fixturesRoot + "/unet/celebahq-like", Self.int8RandomRelativeL2Tolerance)]
        if let fashion = try? sharedCheckpoint("ddpm-fashion-32") { cases.append(("ddpm-fashion-32", fashion, Self.int8TrainedRelativeL2Tolerance)) }
        for (name, folder, tolerance) in cases {
            let io = try FixtureIO(fixturesRoot + "/unet/\(name)/io.safetensors")
            let sample = try io.tensor("sample"), timestep = try io.tensor("timestep")
            func evaluate(_ model: ModelFile, halfSkipsFrom: Int? = nil) throws -> (output: [Float], kinds: [String]) {
                let unet = try halfSkipsFrom.map {
                    try UNet(model: model, batch: sample.shape[0], int8Activations: true, halfSkipMinimumValues: $0)
                } ?? UNet(model: model, batch: sample.shape[0], int8Activations: model.entries.contains { $0.type == .q8PerChannel })
                _ = unet.sample.update(from: sample.values)
                _ = unet.timesteps.update(from: timestep.values)
                unet.run()
                return (Array(unet.output), unet.layers.map(\.kind))
            }
            let fp32 = try evaluate(convertedModel(folder, weights: .f32, into: temp)).output
            let int8Model = try convertedModel(folder, weights: .q8PerChannel, into: temp)
            let floatSkips = try evaluate(int8Model), halfSkips = try evaluate(int8Model, halfSkipsFrom: 0)
            XCTAssertFalse(floatSkips.kinds.contains("to_fp16"), "\(name): the default keeps small skips in fp32")
            XCTAssertTrue(halfSkips.kinds.contains("to_fp16") && halfSkips.kinds.contains("from_fp16"), "\(name): no skip kept in fp16")
            let int8Error = relativeL2(floatSkips.output, fp32), halfError = relativeL2(halfSkips.output, fp32)
            let moved = relativeL2(halfSkips.output, floatSkips.output)
            print("\(name) int8: relative L2 vs fp32 \(int8Error) with fp32 skips, \(halfError) with fp16 skips; fp16 skips moved ε by \(moved)")
            XCTAssertGreaterThan(moved, 0, "\(name): fp16 skips changed nothing")
            XCTAssertLessThanOrEqual(halfError, Self.halfSkipErrorGrowth * int8Error, name)
            XCTAssertLessThanOrEqual(halfError, tolerance, name)
        }
    }

    func testFashionCheckpoint() throws {
        try checkCase("ddpm-fashion-32", folder: try sharedCheckpoint("ddpm-fashion-32"), int8Tolerance: Self.int8TrainedRelativeL2Tolerance)
    }

    func testEmojiCheckpoint() throws {
        try checkCase("ddpm-emoji-32", folder: try sharedCheckpoint("ddpm-emoji-32"), int8Tolerance: Self.int8TrainedRelativeL2Tolerance)
    }
}
