import _EdgeCore
import EdgeModelFile
import EdgeUNet
import EdgeSampler

/// DDIM inversion and reconstruction on an edge-ddim model (DDIM paper §5.4): `invert` encodes clean images
/// into latents x_T with diffusers' `DDIMInverseScheduler` steps, `generate` decodes latents with the η = 0
/// DDIM steps of the same schedule. Like `SamplingPipeline`, everything the loops touch is allocated here.
///
/// Only `steps`, `count`, `spacing`, `clipSample`, `batch` and `threads` of the options are used: inversion
/// is defined for η = 0 only, and nothing is random.
///
/// Not re-entrant, and not `Sendable`: one call at a time, on one thread; one per thread sharing a `ModelFile`.
public final class DDIMInversion {
    public let model: ModelFile
    public let unet: UNet
    public let schedule: DDIMSchedule
    public let options: SamplingOptions
    /// [count, C, S, S]: images before `invert`, latents after; latents before `generate`, images after.
    public let x: UnsafeMutableBufferPointer<Float>
    private let workspace: SamplerWorkspace
    /// η = 0 DDIM over `schedule`, for `generate`; built here because building it allocates its tables.
    private let sampler: DDIMSampler
    /// η = 0 draws no noise; the loop takes a generator all the same. Made here because its state array
    /// is allocated on creation, which must not happen inside `generate`.
    private var unusedGenerator = TorchGenerator(seed: 0)

    public init(model: ModelFile, options: SamplingOptions) throws {
        var options = options
        options.eta = 0
        try options.validate(trainTimesteps: model.schedule.numTrainTimesteps)
        var config = model.schedule
        if let s = options.spacing { config.timestepSpacing = s }
        if let c = options.clipSample { config.clipSample = c }
        let u = model.unet
        guard u.inChannels == u.outChannels else {
            throw EdgeError("model \(model.path): in_channels \(u.inChannels) ≠ out_channels \(u.outChannels); DDIM needs a prediction the shape of its input")
        }
        self.model = model
        self.options = options
        self.schedule = try DDIMSchedule(config: config, steps: options.steps)
        self.sampler = try DDIMSampler(schedule: schedule, eta: 0)
        self.unet = try UNet(model: model, batch: options.effectiveBatch, threads: options.threads,
                             int8Activations: options.int8Activations, winograd: options.winograd)
        let count = options.count * u.inChannels * u.sampleSize * u.sampleSize
        x = .allocate(capacity: count)
        x.initialize(repeating: 0)
        workspace = SamplerWorkspace(count: count, for: sampler)
    }

    deinit { x.deallocate() }

    /// Shape of x: [count, C, S, S].
    public var shape: [Int] { [options.count, model.unet.inChannels, model.unet.sampleSize, model.unet.sampleSize] }

    /// Replaces x (images before `invert`, latents before `generate`); `values` must hold count·C·S·S floats.
    public func set(_ values: UnsafeBufferPointer<Float>) throws {
        guard values.count == x.count else { throw EdgeError("input holds \(values.count) values, \(shape) needs \(x.count)") }
        _ = x.initialize(from: values)
    }

    public func set(_ values: [Float]) throws {
        try values.withUnsafeBufferPointer { try set($0) }
    }

    /// Sets x from images [count, C, H, W] in [−1, 1]: the images themselves, or for latent diffusion their
    /// latents (`Autoencoding.encode`: encoder, then the scaling).
    public func setImages(_ images: [Float]) throws {
        guard model.autoencoder != nil else { return try set(images) }
        let (c, side) = Autoencoding.imageShape(model: model)
        try set(try Autoencoding.encode(model: model, images: images, shape: [options.count, c, side, side], threads: options.threads).values)
    }

    /// x after `generate` as images: x itself, or for latent diffusion the decoded latents.
    public func decodedImages() throws -> [Float] {
        guard model.autoencoder != nil else { return Array(x) }
        return try Autoencoding.decode(model: model, latents: Array(x), shape: shape, threads: options.threads).values
    }

    /// x: images → latents x_T, S inverse steps.
    /// - stop: polled before each step, as in `SamplingPipeline.run`; a signal number ends the loop by throwing
    ///   `Interrupted`, leaving x part way. Must not allocate.
    public func invert(progress: ((_ step: Int, _ of: Int) -> Void)? = nil, stop: (() -> Int32?)? = nil) throws {
        let unet = self.unet, count = options.count
        try ddimInvert(x: x, schedule: schedule, workspace: workspace,
                       model: { xt, t, out in try evaluateInChunks(unet, count: count, xt: xt, t: Float(t), out: out, stop: stop) },
                       progress: progress)
    }

    /// x: latents → images, S deterministic DDIM steps (what `DDIMPipeline` does with η = 0 from these latents).
    /// - stop: as in `invert`.
    public func generate(progress: ((_ step: Int, _ of: Int) -> Void)? = nil, stop: (() -> Int32?)? = nil) throws {
        let unet = self.unet, count = options.count
        try runSampler(sampler, x: x, generator: &unusedGenerator, workspace: workspace,
                       model: { xt, t, out in try evaluateInChunks(unet, count: count, xt: xt, t: t, out: out, stop: stop) },
                       progress: progress)
    }

    /// What a reconstruction measured.
    public struct Reconstruction: Sendable {
        /// The images given, [count, C, H, W] in [−1, 1].
        public var input: [Float]
        /// Their latents x_T (latent diffusion: of the images' autoencoder latents).
        public var latents: [Float]
        /// The images generated back from the latents (unclamped, as the last DDIM step returns them).
        public var output: [Float]
        /// Mean squared error per value between input and output shown as images in [0, 1]
        /// (`ImageDistance`), the DDIM paper's Table 2 measure.
        public var meanSquaredError: Double
        public var psnr: Double { ImageDistance.psnr(meanSquaredError: meanSquaredError) }
    }

    /// Inverts `images` ([count, C, H, W] in [−1, 1]) and generates them back with the same S steps; for latent
    /// diffusion through the autoencoder (encode → invert → generate → decode).
    /// - progress: called after each of the 2·S steps with (steps done, 2·S).
    /// - stop: as in `invert`, polled before each of the 2·S steps.
    public func reconstruct(_ images: [Float], progress: ((_ step: Int, _ of: Int) -> Void)? = nil,
                            stop: (() -> Int32?)? = nil) throws -> Reconstruction {
        try setImages(images)
        let total = 2 * schedule.count, half = schedule.count
        try invert(progress: progress.map { p in { step, _ in p(step, total) } }, stop: stop)
        let latents = Array(x)
        try generate(progress: progress.map { p in { step, _ in p(half + step, total) } }, stop: stop)
        let output = try decodedImages()
        return Reconstruction(input: images, latents: latents, output: output,
                              meanSquaredError: ImageDistance.meanSquaredError(images, output))
    }

    /// Working memory, as `SamplingPipeline.workingBytes`.
    public var workingBytes: Int { unet.arenaBytes + 3 * x.count * 4 }
}
