import XCTest
import AllocationCounter
import _EdgeCore
import EdgeModelFile
import EdgeConvert
import EdgeDDIM

/// The sampling loop allocates nothing: every buffer is planned and allocated when the pipeline is built.
final class AllocationTests: XCTestCase {
    /// Allocations made while `body` runs.
    func allocations(_ body: () throws -> Void) rethrows -> UInt64 {
        let before = edge_test_allocation_count()
        try body()
        return edge_test_allocation_count() - before
    }

    /// Every sampler and option: a 10-step and a 20-step run allocate nothing (so as much as each other),
    /// multistep history and PNDM's saved samples included.
    func testSamplingLoopAllocatesNothing() throws {
        let model = try ModelFile(path: repositoryRoot + "/models/ddpm-fashion-32.edm")
        // The counter must see allocations at all, or a zero below would prove nothing.
        XCTAssertGreaterThan(allocations { _ = [Int](repeating: 1, count: 100) }, 0)
        var settings = SamplerKind.allCases.map { SamplerSettings(kind: $0) }
        settings += [SamplerSettings(kind: .ddim, eta: 1), SamplerSettings(kind: .pndm, pndmPRK: true)]
        settings += SamplerKind.allCases.filter(\.hasKarrasSigmas).map { SamplerSettings(kind: $0, karras: true) }
        var warmedUp = false
        for setting in settings {
            var counts: [Int: UInt64] = [:]
            for steps in [10, 20] {
                var options = SamplingOptions()
                options.steps = steps
                options.sampler = setting
                options.count = 1
                options.threads = Threads(2)
                let pipeline = try SamplingPipeline(model: model, options: options)
                // One warm-up run starts OpenMP's thread team, which allocates once per process.
                if !warmedUp { try pipeline.run(); warmedUp = true }
                let n = try fewestAllocations(attempts: 2) { try pipeline.run() }
                XCTAssertEqual(n, 0, "\(setting.label), \(steps) steps: \(n) heap allocations inside the sampling loop")
                counts[steps] = n
            }
            XCTAssertEqual(counts[10], counts[20], setting.label)
        }
    }

    /// Latent diffusion: the sampling loop and the decoder after it allocate nothing either.
    func testLatentDiffusionAllocatesNothing() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let path = temp + "/ldm.edm"
        try Converter.convert(folder: fixturesRoot + "/autoencoder/ldm-small", output: path, weights: .q8PerChannel)
        let model = try ModelFile(path: path)
        for steps in [10, 20] {
            var options = SamplingOptions()
            options.steps = steps
            options.count = 3
            options.batch = 2
            options.threads = Threads(2)
            let pipeline = try SamplingPipeline(model: model, options: options)
            try pipeline.run()
            let n = try fewestAllocations(attempts: 2) { try pipeline.run() }
            XCTAssertEqual(n, 0, "LDMPipeline, \(steps) steps: \(n) heap allocations while sampling and decoding")
        }
    }
}
