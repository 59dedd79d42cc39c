import Foundation
import XCTest
import _EdgeCore
import EdgeModelFile
import EdgeSampler
import EdgeImageIO
import EdgeDDIM

/// Spherical interpolation between two seeds' x_T (DDIM paper eq. 67) and its η = 0 decoding, against the
/// fixtures of tools/reference/make_paper_fixtures.py (slerp in float64 numpy, sampling with diffusers).
final class PaperInterpolationTests: XCTestCase {
    /// Both sides compute the weights in double and round each latent value to float32 once; x_T itself comes
    /// from our port of torch's randn, which agrees with torch to 1e-5 (PipelineSmallModelTests.noiseTolerance).
    static let latentTolerance: Float = 1e-5
    /// The bar for a full sampling run: 1e-3 max abs error on x₀.
    static let sampleTolerance: Float = 1e-3

    func check(_ run: PaperFixtures.SlerpRun, model: ModelFile) throws {
        let c = run.shape[1], size = run.shape[2]
        let latents = try Interpolation.latents(seedA: run.seed_a, seedB: run.seed_b, frames: run.frames, channels: c, size: size)
        let expected = try NPY.read(path: PaperFixtures.folder + "/" + run.latents, expectedShape: run.shape)
        let latentError = maxAbsDifference(latents, expected)
        XCTAssertLessThanOrEqual(latentError, Self.latentTolerance, "\(run.name): latents max abs error \(latentError)")
        var options = SamplingOptions()
        options.steps = run.steps
        let (shape, x0) = try Interpolation.run(model: model, seedA: run.seed_a, seedB: run.seed_b, frames: run.frames, options: options)
        XCTAssertEqual(shape, run.shape)
        let expectedX0 = try NPY.read(path: PaperFixtures.folder + "/" + run.x0, expectedShape: run.shape)
        let error = maxAbsDifference(x0, expectedX0)
        XCTAssertLessThanOrEqual(error, Self.sampleTolerance, "\(run.name): x₀ max abs error \(error)")
        print("interpolation \(run.name): max abs error latents \(latentError), x₀ \(error)")
    }

    func testInterpolationMatchesDiffusersOnSmallModels() throws {
        let runs = try PaperFixtures.load().slerp.filter { $0.model != "ddpm-fashion-32" }
        XCTAssertEqual(runs.count, 2)
        for run in runs {
            let temp = temporaryFolder()
            defer { removeFolder(temp) }
            try check(run, model: try paperModel(run.model, in: temp))
        }
    }

    func testInterpolationMatchesDiffusersOnTrainedCheckpoint() throws {
        let folder = try sharedCheckpoint("ddpm-fashion-32")
        let runs = try PaperFixtures.load().slerp.filter { $0.model == "ddpm-fashion-32" }
        XCTAssertEqual(runs.count, 1, "the fixtures were written without the shared checkpoint")
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let model = try convertedModel(folder, weights: .f32, into: temp)
        for run in runs { try check(run, model: model) }
    }

    /// The end frames are the seeds' own x_T, the one `sample --seed N --count 1` starts from.
    func testEndFramesAreTheSeedsLatents() throws {
        let n = 3 * 8 * 8
        let z = try Interpolation.latents(seedA: 5, seedB: 9, frames: 6, channels: 3, size: 8)
        XCTAssertEqual(z.count, 6 * n)
        var a = TorchGenerator(seed: 5), b = TorchGenerator(seed: 9)
        // The spherical weights at α = 0 and 1 are sin θ / sin θ and sin 0 / sin θ: exact up to one rounding.
        XCTAssertLessThanOrEqual(maxAbsDifference(Array(z[0..<n]), a.normal(count: n)), 1e-6)
        XCTAssertLessThanOrEqual(maxAbsDifference(Array(z[5 * n..<6 * n]), b.normal(count: n)), 1e-6)
    }

    /// θ ≈ 0 (the same seed twice), θ = π (opposite latents) and a zero latent have no unique great circle and
    /// 0/0 weights: linear interpolation, finite, no NaN.
    func testDegenerateAnglesFallBackToLinear() throws {
        let same = try Interpolation.latents(seedA: 3, seedB: 3, frames: 5, channels: 1, size: 8)
        let n = 64
        for f in 1..<5 {
            XCTAssertEqual(Array(same[f * n..<(f + 1) * n]), Array(same[0..<n]), "frame \(f) of a seed with itself")
        }
        var g = TorchGenerator(seed: 11)
        let z = g.normal(count: n)
        let cases: [(String, [Float])] = [("opposite", z.map { -$0 }), ("zero", [Float](repeating: 0, count: n)),
                                          ("nearly parallel", z.map { $0 * (1 + 1e-7) })]
        for (name, other) in cases {
            var out = [Float](repeating: .nan, count: 3 * n)
            z.withUnsafeBufferPointer { a in other.withUnsafeBufferPointer { b in out.withUnsafeMutableBufferPointer {
                Slerp.interpolate(a, b, frames: 3, into: $0)
            } } }
            XCTAssertTrue(out.allSatisfy(\.isFinite), "\(name): non-finite values")
            let midpoint = (0..<n).map { 0.5 * z[$0] + 0.5 * other[$0] }
            // Linear interpolation at α = 1/2, up to float rounding of values of order 1.
            XCTAssertLessThanOrEqual(maxAbsDifference(Array(out[n..<2 * n]), midpoint), 1e-6, name)
        }
    }

    /// The reason for slerp: between two orthogonal latents of equal norm, every frame keeps that norm (a
    /// linear midpoint would have 1/√2 of it).
    func testSlerpKeepsTheNormBetweenOrthogonalLatents() {
        let n = 4
        let a: [Float] = [2, 0, 0, 0], b: [Float] = [0, 2, 0, 0]
        var out = [Float](repeating: 0, count: 5 * n)
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in out.withUnsafeMutableBufferPointer {
            Slerp.interpolate(pa, pb, frames: 5, into: $0)
        } } }
        for f in 0..<5 {
            let norm = (0..<n).reduce(Float(0)) { $0 + out[f * n + $1] * out[f * n + $1] }.squareRoot()
            XCTAssertEqual(norm, 2, accuracy: 1e-5, "frame \(f)")
        }
    }

    func testFrameCountIsValidated() {
        XCTAssertThrowsError(try Interpolation.latents(seedA: 0, seedB: 1, frames: 1, channels: 1, size: 8)) { error in
            XCTAssertEqual((error as? EdgeError)?.kind, .usage)
        }
    }
}
