import XCTest
import AllocationCounter
import _EdgeCore
import EdgeModelFile
import EdgeConvert
import EdgeDDIM
import EdgeUNet
import EdgeSampler
import _EdgeQuant

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

    /// Every convolution kernel the lowering picks runs without allocating: Winograd with weights transformed at
    /// load (fp32, fp16) and per call (int8 weights, fp32 activations), the direct kernel (`winograd: false`) and
    /// int8 activations, on a UNet with 32 channels at 32×32 (F(4,3) at 32 and 16 pixels).
    func testEveryConvolutionKernelAllocatesNothing() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        for weights in [WeightType.f32, .f16, .q8PerChannel] {
            let path = temp + "/cifar10-like-\(weights).edm"
            try Converter.convert(folder: fixturesRoot + "/unet/cifar10-like", output: path, weights: weights)
            let model = try ModelFile(path: path)
            for int8 in weights == .q8PerChannel ? [false, true] : [false] {
                for winograd in [true, false] {
                    let unet = try UNet(model: model, batch: 1, threads: Threads(2), int8Activations: int8, winograd: winograd)
                    unet.sample.update(repeating: 0.5)
                    unet.timesteps.update(repeating: 500)
                    unet.run()
                    let n = try fewestAllocations(attempts: 2) { unet.run() }
                    XCTAssertEqual(n, 0, "\(weights) weights, int8 activations \(int8), winograd \(winograd): \(n) heap allocations per evaluation")
                }
            }
        }
    }

    /// The sampling loop on full-size models, when $EDGE_DDIM_ALLOCATION_MODELS names them (colon-separated .edm
    /// paths, e.g. the conversions of tools/reference/make_full_size.py's google/ddpm-cifar10-32): a 2-step and a
    /// 4-step run of one image allocate nothing. Skipped otherwise (no full-size model is a fixture).
    func testFullSizeSamplingLoopsAllocateNothing() throws {
        guard let list = ProcessInfo.processInfo.environment["EDGE_DDIM_ALLOCATION_MODELS"] else {
            throw XCTSkip("EDGE_DDIM_ALLOCATION_MODELS is not set")
        }
        for path in list.split(separator: ":").map(String.init) {
            let model = try ModelFile(path: path)
            for steps in [2, 4] {
                var options = SamplingOptions()
                options.steps = steps
                options.count = 1
                options.threads = Threads(2)
                let pipeline = try SamplingPipeline(model: model, options: options)
                try pipeline.run()
                let n = try fewestAllocations(attempts: 1) { try pipeline.run() }
                XCTAssertEqual(n, 0, "\(path), \(steps) steps: \(n) heap allocations inside the sampling loop")
                print("\(path), \(steps) steps: \(n) heap allocations inside the sampling loop")
            }
        }
    }

    /// Latent diffusion: the sampling loop allocates nothing either, and neither does the decoder once loaded (the
    /// pipeline loads it after the last step, when the UNet has given its memory back).
    func testLatentDiffusionAllocatesNothing() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let path = temp + "/ldm.edm"
        try Converter.convert(folder: fixturesRoot + "/autoencoder/ldm-small", output: path, weights: .q8PerChannel)
        let model = try ModelFile(path: path)
        for steps in [10, 20] {
            var options = SamplingOptions()
            options.steps = steps
            options.count = 2
            options.batch = 2
            options.threads = Threads(2)
            let pipeline = try SamplingPipeline(model: model, options: options)
            let unet = try XCTUnwrap(pipeline.unet)
            let sampler = pipeline.sampler
            let workspace = sampler.makeWorkspace(count: pipeline.x.count)
            var generator = TorchGenerator(seed: 0)
            let x = pipeline.x
            let loop = { try sampler.run(x: x, generator: &generator, workspace: workspace,
                                         model: { xt, t, out in
                                             // The pipeline's callback for a batch that holds every image.
                                             _ = unet.sample.update(fromContentsOf: xt)
                                             unet.timesteps.update(repeating: t)
                                             unet.run()
                                             _ = out.update(fromContentsOf: unet.output)
                                         },
                                         progress: nil) }
            try loop()
            let n = try fewestAllocations(attempts: 2) { try loop() }
            XCTAssertEqual(n, 0, "LDMPipeline, \(steps) steps: \(n) heap allocations while sampling")
        }
        let a = try XCTUnwrap(model.autoencoder)
        let decoder = try AutoencoderNetwork(a.config, .decoder(quantize: true), weights: model, prefix: a.prefix, batch: 1, latentSide: 8, threads: Threads(2))
        decoder.run()
        let n = fewestAllocations(attempts: 2) { decoder.run() }
        XCTAssertEqual(n, 0, "the decoder: \(n) heap allocations")
    }

    /// The pipeline gives the UNet back before decoding, and a second run says so instead of sampling without it.
    func testLatentDiffusionReleasesTheUNetBeforeDecoding() throws {
        let temp = temporaryFolder()
        defer { removeFolder(temp) }
        let path = temp + "/ldm.edm"
        try Converter.convert(folder: fixturesRoot + "/autoencoder/ldm-small", output: path, weights: .q8PerChannel)
        var options = SamplingOptions()
        options.steps = 2
        options.count = 1
        let pipeline = try SamplingPipeline(model: try ModelFile(path: path), options: options)
        weak var unet = pipeline.unet
        XCTAssertNotNil(unet)
        try pipeline.run()
        XCTAssertNil(unet, "the UNet outlived sampling")
        XCTAssertThrowsError(try pipeline.run()) { XCTAssertTrue("\($0)".contains("has run and released its UNet"), "\($0)") }
    }
}
