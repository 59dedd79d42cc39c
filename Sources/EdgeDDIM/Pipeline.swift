import _EdgeCore
import EdgeModelFile
import EdgeUNet
import EdgeSampler

/// What to generate. Defaults are the command line's.
public struct SamplingOptions: Sendable {
    /// Denoising steps S, 1...num_train_timesteps (UNet evaluations: S for every sampler but PNDM).
    public var steps = 10
    /// The sampler and its options (default: DDIM, η = 0).
    public var sampler = SamplerSettings()
    /// DDIM's η ∈ [0, 1]: 0 is deterministic DDIM, 1 has DDPM's posterior variance.
    public var eta: Float {
        get { sampler.eta }
        set { sampler.eta = newValue }
    }
    /// Seed of the torch-compatible generator that draws x_T (and the per-step noise when η > 0).
    public var seed: UInt64 = 0
    /// Images to generate.
    public var count = 16
    /// Overrides the model's timestep spacing.
    public var spacing: NoiseScheduleConfig.TimestepSpacing? = nil
    /// Overrides the model's clip_sample.
    public var clipSample: Bool? = nil
    /// Images per UNet evaluation; nil picks min(count, `defaultBatch`). A larger batch uses more memory
    /// and gives the kernels more pixels per weight load.
    public var batch: Int? = nil
    /// Threads the kernels use.
    public var threads = Threads()
    /// Winograd 3×3 convolutions where they are faster (`UNet.init`'s `winograd`); false keeps the direct
    /// kernel, whose fp32 weights take a quarter of the memory of F(4,3)'s transformed ones.
    public var winograd = true

    public static let defaultBatch = 4
    public static let maxCount = 4096

    public init() {}

    public func validate(trainTimesteps: Int) throws {
        guard (1 ... trainTimesteps).contains(steps) else {
            throw EdgeError.usage("--steps must be in 1...\(trainTimesteps) (the model's num_train_timesteps), got \(steps)")
        }
        try sampler.validate()
        guard (1 ... Self.maxCount).contains(count) else { throw EdgeError.usage("--count must be in 1...\(Self.maxCount), got \(count)") }
        if let b = batch, !(1 ... Self.maxCount).contains(b) { throw EdgeError.usage("--batch must be in 1...\(Self.maxCount), got \(b)") }
    }

    public var effectiveBatch: Int { min(batch ?? Self.defaultBatch, count) }
}

/// diffusers' unconditional pipelines on an edge-ddim model: x_T from the seed (or given), the sampler's steps
/// with the UNet as the model callback, x₀ out — `DDIMPipeline` (or `DDPMPipeline`'s loop with another
/// scheduler) for a bare UNet; `LDMPipeline` for a model file with an autoencoder, which then decodes the
/// latents: image = decoder(latents / scaling_factor + shift_factor). Everything the loop touches — the UNet's
/// arena, x, the sampler's workspace, the generator's state, the decoder — is allocated here, before sampling
/// starts.
public final class SamplingPipeline {
    public let model: ModelFile
    public let unet: UNet
    /// The autoencoder's decoder (latent diffusion), one image at a time: at 256×256 its widest activations
    /// are 32 MB each, so decoding the whole batch at once would multiply the peak by the batch. Its
    /// activations share the UNet's arena (sized for the larger of the two), as the two never run at once.
    public let decoder: AutoencoderNetwork?
    /// [count, out_channels, H, W]: the decoded images (before /2 + 0.5 and the clamp), latent diffusion only.
    public let image: UnsafeMutableBufferPointer<Float>?
    /// The sampler, built from the model's scheduler config with the options' overrides.
    public let sampler: AnySampler
    public let options: SamplingOptions
    /// [count, C, S, S]: unit-variance x_T before `run` (`run` scales it by the sampler's init_noise_sigma,
    /// as diffusers' pipelines scale the latents they are given), x₀ after.
    public let x: UnsafeMutableBufferPointer<Float>
    private let workspace: SamplerWorkspace
    private var generator: TorchGenerator
    /// The sampler's init_noise_sigma, read once here (reading it through `AnySampler` boxes the sampler).
    private let initNoiseSigma: Float

    public init(model: ModelFile, options: SamplingOptions) throws {
        try options.validate(trainTimesteps: model.schedule.numTrainTimesteps)
        self.model = model
        self.options = options
        self.sampler = try AnySampler(options.sampler, schedulerConfig: Self.schedulerConfig(model: model, options: options), steps: options.steps)
        let u = model.unet
        // Latent diffusion: the UNet is done before the decoder starts, so their activations share one arena.
        var shared: Arena? = nil
        if let a = model.autoencoder {
            let unetArena = try UNet.memory(model: model, batch: options.effectiveBatch, threads: options.threads, winograd: options.winograd).arena
            let decoderArena = try AutoencoderNetwork.memory(a.config, .decoder(quantize: true), weights: model, prefix: a.prefix, batch: 1,
                                                             latentSide: u.sampleSize, threads: options.threads).arena
            shared = Arena(byteCount: max(unetArena, decoderArena))
        }
        self.unet = try UNet(model: model, batch: options.effectiveBatch, threads: options.threads, winograd: options.winograd, arena: shared)
        guard u.inChannels == u.outChannels else {
            throw EdgeError("model \(model.path): in_channels \(u.inChannels) ≠ out_channels \(u.outChannels); sampling needs a prediction the shape of its input")
        }
        let count = options.count * u.inChannels * u.sampleSize * u.sampleSize
        x = .allocate(capacity: count)
        x.initialize(repeating: 0)
        workspace = sampler.makeWorkspace(count: count)
        initNoiseSigma = sampler.initNoiseSigma
        generator = TorchGenerator(seed: options.seed)
        generator.fillNormal(x)
        if let a = model.autoencoder {
            let network = try AutoencoderNetwork(a.config, .decoder(quantize: true), weights: model, prefix: a.prefix, batch: 1,
                                                 latentSide: u.sampleSize, threads: options.threads, arena: shared)
            decoder = network
            let pixels = network.output.count * options.count
            image = .allocate(capacity: pixels)
            image!.initialize(repeating: 0)
        } else {
            decoder = nil
            image = nil
        }
    }

    deinit {
        x.deallocate()
        image?.deallocate()
    }

    /// What the pipeline produces: the decoded images for latent diffusion, else x₀.
    public var output: UnsafeBufferPointer<Float> { UnsafeBufferPointer(image ?? x) }
    /// Shape of `output`: [count, C, H, W].
    public var outputShape: [Int] {
        guard let decoder else { return shape }
        return [options.count, decoder.config.outChannels, decoder.outputSide, decoder.outputSide]
    }

    /// The model's scheduler config with the options' spacing and clip_sample overrides (which count as set).
    public static func schedulerConfig(model: ModelFile, options: SamplingOptions) -> NoiseScheduleConfig {
        var config = model.schedule
        if let s = options.spacing {
            config.timestepSpacing = s
            config.markGiven("timestep_spacing")
        }
        if let c = options.clipSample {
            config.clipSample = c
            config.markGiven("clip_sample")
        }
        return config
    }

    /// Shape of x: [count, C, S, S].
    public var shape: [Int] { [options.count, model.unet.inChannels, model.unet.sampleSize, model.unet.sampleSize] }

    /// Replaces the seeded x_T (for `--init-noise`): unit-variance noise, count·C·S·S floats.
    public func setInitialNoise(_ values: UnsafeBufferPointer<Float>) throws {
        guard values.count == x.count else { throw EdgeError("initial noise holds \(values.count) values, \(shape) needs \(x.count)") }
        _ = x.initialize(from: values)
    }

    /// Runs the sampler; on return `x` holds x₀ exactly as the last scheduler step returns it (unclamped).
    /// One run per pipeline: it starts by scaling x by init_noise_sigma, which is right for x_T only.
    /// - progress: called after each UNet evaluation with (evaluations done, total).
    /// - stop: polled before each evaluation; returning a signal number ends the run by throwing `Interrupted`
    ///   (the CLI passes `{ Interruption.signal }`). Must not allocate: it runs inside the sampling loop.
    public func run(progress: ((_ step: Int, _ of: Int) -> Void)? = nil, stop: (() -> Int32?)? = nil) throws {
        let unet = self.unet, count = options.count
        let sigma = initNoiseSigma
        if sigma != 1 { for i in 0..<x.count { x[i] = x[i] * sigma } }
        try sampler.run(x: x, generator: &generator, workspace: workspace,
                        model: { xt, t, out in
                            try evaluateInChunks(unet, count: count, xt: xt, t: t, out: out, stop: stop)
                        },
                        progress: progress)
        // LDMPipeline's last lines: latents / scaling_factor (+ shift_factor), `.decode`, image by image.
        if let decoder, let image { try Autoencoding.decode(decoder, latents: UnsafeBufferPointer(x), count: count, into: image, stop: stop) }
    }

    /// Bytes of working memory: the UNet arena plus x and the sampler's buffers (and the decoder and images).
    public var workingBytes: Int {
        // Spelled out step by step: Swift 6.0.3 (the boards' compiler) gives up type-checking it as one sum.
        let arena: Int = max(unet.arenaBytes, decoder?.arenaBytes ?? 0)
        let packed: Int = unet.packedWeightBytes + (decoder?.packedWeightBytes ?? 0)
        let samples: Int = x.count * 4 + sampler.workspaceBytes(count: x.count)
        let images: Int = (image?.count ?? 0) * 4
        return arena + packed + samples + images
    }

    /// Working memory a pipeline with `options` would need, without allocating it.
    public static func workingBytes(model: ModelFile, options: SamplingOptions) throws -> Int {
        try checkedWorkingBytes(model: model, options: options)
    }
}

/// The model callback of every sampling and inversion loop: calls `unet` on `count` images of `xt` at timestep
/// `t`, `unet.batch` at a time, writing the predictions to `out`. The UNet holds `batch` images; larger counts
/// go through it in chunks, so the random stream (drawn for the full shape) is the same whatever the batch.
/// `stop` is polled first; a signal number ends the loop by throwing `Interrupted`. Allocates nothing.
@inline(__always)
func evaluateInChunks(_ unet: UNet, count: Int, xt: UnsafeBufferPointer<Float>, t: Float, out: UnsafeMutableBufferPointer<Float>,
                      stop: (() -> Int32?)?) throws {
    if let signal = stop?() { throw Interrupted(signal: signal) }
    let perImage = unet.sample.count / unet.batch
    var first = 0
    while first < count {
        let n = min(unet.batch, count - first)
        let base = first * perImage
        unet.sample.baseAddress!.update(from: xt.baseAddress! + base, count: n * perImage)
        if n < unet.batch {
            // A short last chunk: zero the unused slots, so the UNet never reads stale or uninitialised data.
            (unet.sample.baseAddress! + n * perImage).update(repeating: 0, count: (unet.batch - n) * perImage)
        }
        unet.timesteps.update(repeating: t)
        unet.run()
        (out.baseAddress! + base).update(from: unet.output.baseAddress!, count: n * perImage)
        first += n
    }
}
