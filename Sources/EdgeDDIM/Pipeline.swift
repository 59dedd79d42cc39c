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
    /// int8 models: quantise the activations to int8 too (`UNet.init`'s `int8Activations`). nil picks the
    /// CPU's default: on where it has a dot-product instruction (VNNI, sdot), else int8 weights with fp32
    /// activations. The two paths give slightly different images; forcing one gives the same image on every CPU.
    public var int8Activations: Bool? = nil
    /// Text to image: the prompt. A text-to-image model needs one; the others refuse it.
    public var prompt: String? = nil
    /// What classifier-free guidance steers away from; nil is the empty prompt, as in diffusers.
    public var negativePrompt: String? = nil
    /// Classifier-free guidance scale G: ε = ε_u + G·(ε_c − ε_u). G ≤ 1 runs the prompt's pass alone
    /// (diffusers' `do_classifier_free_guidance` is G > 1).
    public var guidance: Float = 7.5
    /// Text to image: the image's width and height in pixels; nil takes the other, or diffusers' default (the
    /// UNet's sample_size × the VAE's scale factor).
    public var width: Int? = nil
    public var height: Int? = nil

    public var guided: Bool { guidance > 1 }

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
        guard guidance.isFinite, (0 ... 1000).contains(guidance) else { throw EdgeError.usage("--guidance must be in [0, 1000], got \(guidance)") }
    }

    public var effectiveBatch: Int { min(batch ?? Self.defaultBatch, count) }
}

/// diffusers' unconditional pipelines on an edge-ddim model: x_T from the seed (or given), the sampler's steps
/// with the UNet as the model callback, x₀ out — `DDIMPipeline` (or `DDPMPipeline`'s loop with another
/// scheduler) for a bare UNet; `LDMPipeline` for a model file with an autoencoder, which then decodes the
/// latents: image = decoder(latents / scaling_factor + shift_factor); `StableDiffusionPipeline` for one with a
/// text encoder, whose prompt embeddings condition the UNet. Everything the sampling loop touches — the UNet's
/// arena, x, the sampler's workspace, the generator's state — is allocated here, before sampling starts.
///
/// The phases run one after another and each gives its memory back before the next takes its own, as
/// stable-diffusion.cpp's `free_params_immediately` does: the text encoder in `init`, before the UNet is
/// loaded; the UNet (its packed weights and arena) at the end of sampling, before the decoder is loaded. The
/// peak is that of the largest phase, not their sum: for Stable Diffusion 1.5 at 512×512 the UNet's int8
/// weights alone are 0.86 GB and the decoder's activations several hundred MB.
///
/// Not re-entrant, and not `Sendable`: one pipeline makes one run, on one thread. Several threads generating
/// from one model each make their own pipeline (`ModelFile.generate` does), sharing the `ModelFile`.
public final class SamplingPipeline {
    public let model: ModelFile
    /// The UNet; for latent diffusion nil once `run` has sampled (released before the decoder loads).
    public private(set) var unet: UNet?
    /// [count, out_channels, H, W]: the decoded images (before /2 + 0.5 and the clamp), latent diffusion only.
    public let image: UnsafeMutableBufferPointer<Float>?
    /// The sampler, built from the model's scheduler config with the options' overrides.
    public let sampler: AnySampler
    public let options: SamplingOptions
    /// Text to image: the prompt's embeddings (the UNet's context holds them); nil for the other models.
    public let embeddings: PromptEmbeddings?
    /// The classifier-free guidance scale, nil when the UNet runs the prompt's pass alone.
    public let guidance: Float?
    /// S: the latents' (or pixel-space images') side, the UNet's sample_size unless `--width` changes it.
    public let latentSide: Int
    /// [count, C, S, S]: unit-variance x_T before `run` (`run` scales it by the sampler's init_noise_sigma,
    /// as diffusers' pipelines scale the latents they are given), x₀ after.
    public let x: UnsafeMutableBufferPointer<Float>
    private let workspace: SamplerWorkspace
    private var generator: TorchGenerator
    /// The sampler's init_noise_sigma, read once here (reading it through `AnySampler` boxes the sampler).
    private let initNoiseSigma: Float

    public init(model: ModelFile, options: SamplingOptions) throws {
        try options.validate(trainTimesteps: model.schedule.numTrainTimesteps)
        let layout = try Self.layout(model: model, options: options)
        self.model = model
        self.options = options
        self.latentSide = layout.latentSide
        self.sampler = try AnySampler(options.sampler, schedulerConfig: Self.schedulerConfig(model: model, options: options), steps: options.steps)
        let u = model.unet
        // Text to image: the prompt is encoded first, so the text encoder is gone before the UNet is loaded.
        embeddings = try options.prompt.map {
            try PromptEmbeddings.encode(model: model, prompt: $0, negativePrompt: options.negativePrompt, guided: layout.guided, threads: options.threads)
        }
        guidance = layout.guided ? options.guidance : nil
        let unet = try UNet(model: model, batch: layout.unetBatch, threads: options.threads, int8Activations: options.int8Activations,
                            winograd: options.winograd, sampleSize: layout.latentSide)
        self.unet = unet
        unetBytes = unet.arenaBytes + unet.packedWeightBytes
        guard u.inChannels == u.outChannels else {
            throw EdgeError("model \(model.path): in_channels \(u.inChannels) ≠ out_channels \(u.outChannels); sampling needs a prediction the shape of its input")
        }
        if let embeddings, let context = unet.context {
            // [unconditional × b, conditional × b] with guidance (diffusers' torch.cat([negative, prompt])), else
            // [conditional × b]: the same for every chunk of images, so written once.
            let slot = embeddings.conditional.count, b = unet.batch / (layout.guided ? 2 : 1)
            for i in 0 ..< unet.batch {
                let source = layout.guided && i < b ? embeddings.unconditional! : embeddings.conditional
                source.withUnsafeBufferPointer { (context.baseAddress! + i * slot).update(from: $0.baseAddress!, count: slot) }
            }
        }
        let count = options.count * u.inChannels * layout.latentSide * layout.latentSide
        x = .allocate(capacity: count)
        x.initialize(repeating: 0)
        workspace = sampler.makeWorkspace(count: count)
        initNoiseSigma = sampler.initNoiseSigma
        generator = TorchGenerator(seed: options.seed)
        generator.fillNormal(x)
        if let a = model.autoencoder {
            let m = try AutoencoderNetwork.memory(a.config, .decoder(quantize: true), weights: model, prefix: a.prefix, batch: 1,
                                                  latentSide: layout.latentSide, threads: options.threads)
            decoderBytes = m.arena + m.packedWeights
            let side = layout.latentSide * a.config.downsampling
            image = .allocate(capacity: options.count * a.config.outChannels * side * side)
            image!.initialize(repeating: 0)
        } else {
            decoderBytes = nil
            image = nil
        }
    }

    /// The UNet's arena and packed weights; the decoder's (planned at load, allocated after sampling).
    private let unetBytes: Int
    private let decoderBytes: Int?

    deinit {
        x.deallocate()
        image?.deallocate()
    }

    /// What the pipeline produces: the decoded images for latent diffusion, else x₀.
    public var output: UnsafeBufferPointer<Float> { UnsafeBufferPointer(image ?? x) }
    /// Shape of `output`: [count, C, H, W].
    public var outputShape: [Int] {
        guard let a = model.autoencoder else { return shape }
        let side = latentSide * a.config.downsampling
        return [options.count, a.config.outChannels, side, side]
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
    public var shape: [Int] { [options.count, model.unet.inChannels, latentSide, latentSide] }

    /// Replaces the seeded x_T (for `--init-noise`): unit-variance noise, count·C·S·S floats.
    public func setInitialNoise(_ values: UnsafeBufferPointer<Float>) throws {
        guard values.count == x.count else { throw EdgeError("initial noise holds \(values.count) values, \(shape) needs \(x.count)") }
        _ = x.initialize(from: values)
    }

    /// Runs the sampler; on return `x` holds x₀ exactly as the last scheduler step returns it (unclamped), and
    /// for latent diffusion `image` the decoded images: the UNet is released after the last step, then the
    /// decoder is loaded and run one image at a time (at 256×256 its widest activations are 32 MB each, so the
    /// whole batch at once would multiply the peak by the batch); the decoding allocates only at its start.
    /// One run per pipeline: it starts by scaling x by init_noise_sigma, which is right for x_T only.
    /// - progress: called after each UNet evaluation with (evaluations done, total).
    /// - stop: polled before each evaluation; returning a signal number ends the run by throwing `Interrupted`
    ///   (the CLI passes `{ Interruption.signal }`). Must not allocate: it runs inside the sampling loop.
    public func run(progress: ((_ step: Int, _ of: Int) -> Void)? = nil, stop: (() -> Int32?)? = nil) throws {
        try sample(progress: progress, stop: stop)
        guard let a = model.autoencoder, let image else { return }
        // LDMPipeline's and StableDiffusionPipeline's last lines: latents / scaling_factor (+ shift_factor),
        // `.decode`, here image by image, after the UNet has given its memory back.
        self.unet = nil
        let start = monotonicSeconds()
        let decoder = try AutoencoderNetwork(a.config, .decoder(quantize: true), weights: model, prefix: a.prefix, batch: 1,
                                             latentSide: latentSide, threads: options.threads)
        try Autoencoding.decode(decoder, latents: UnsafeBufferPointer(x), count: options.count, into: image, stop: stop)
        decodingSeconds = monotonicSeconds() - start
    }

    /// Seconds `run` spent loading the decoder and decoding (latent diffusion), nil before.
    public private(set) var decodingSeconds: Double?

    /// The sampling loop (a function of its own, so that nothing here holds the UNet once it returns).
    private func sample(progress: ((_ step: Int, _ of: Int) -> Void)?, stop: (() -> Int32?)?) throws {
        guard let unet = self.unet else { throw EdgeError("this pipeline has run and released its UNet; make another to sample again") }
        let count = options.count, guidance = self.guidance
        let sigma = initNoiseSigma
        if sigma != 1 { for i in 0..<x.count { x[i] = x[i] * sigma } }
        try sampler.run(x: x, generator: &generator, workspace: workspace,
                        model: { xt, t, out in
                            if let guidance {
                                try evaluateGuided(unet, count: count, guidance: guidance, xt: xt, t: t, out: out, stop: stop)
                            } else {
                                try evaluateInChunks(unet, count: count, xt: xt, t: t, out: out, stop: stop)
                            }
                        },
                        progress: progress)
    }

    /// Bytes of working memory at the peak: the larger of the UNet (arena and packed weights) and the decoder,
    /// plus x, the sampler's buffers and the images, which live throughout.
    public var workingBytes: Int {
        // Spelled out step by step: Swift 6.0.3 (the boards' compiler) gives up type-checking it as one sum.
        let network: Int = max(unetBytes, decoderBytes ?? 0)
        let samples: Int = x.count * 4 + sampler.workspaceBytes(count: x.count)
        let images: Int = (image?.count ?? 0) * 4
        return network + samples + images
    }

    /// Working memory a pipeline with `options` would need, without allocating it.
    public static func workingBytes(model: ModelFile, options: SamplingOptions) throws -> Int {
        try checkedWorkingBytes(model: model, options: options)
    }
}

/// Sizes every buffer of a pipeline derives from.
struct PipelineLayout {
    /// S of the [C, S, S] latents (or pixel-space images).
    var latentSide: Int
    /// Images the UNet holds: the batch, twice over with classifier-free guidance.
    var unetBatch: Int
    var guided: Bool
}

extension SamplingPipeline {
    /// The text options checked against the model, and the sizes they imply. Width and height follow
    /// diffusers' defaults; they must be equal (the graphs are square) and a multiple of the VAE's scale factor
    /// times the UNet's downsampling, which diffusers pads around and edge-ddim does not.
    static func layout(model: ModelFile, options: SamplingOptions) throws -> PipelineLayout {
        let u = model.unet
        guard let autoencoder = model.autoencoder, model.textEncoder != nil else {
            for (given, flag) in [(options.prompt != nil, "--prompt"), (options.negativePrompt != nil, "--negative-prompt"),
                                  (options.width != nil, "--width"), (options.height != nil, "--height")] where given {
                throw EdgeError.usage("\(flag): model \(model.path) has no text encoder (it is not a text-to-image model)")
            }
            return PipelineLayout(latentSide: u.sampleSize, unetBatch: options.effectiveBatch, guided: false)
        }
        guard options.prompt != nil else { throw EdgeError.usage("model \(model.path) makes images from text: give --prompt TEXT") }
        let factor = autoencoder.config.downsampling
        let fallback = u.sampleSize * factor
        let width = options.width ?? options.height ?? fallback, height = options.height ?? options.width ?? fallback
        let multiple = factor << (u.levels - 1)
        for (value, flag) in [(width, "--width"), (height, "--height")] {
            guard value >= multiple, value <= 4096, value % multiple == 0 else {
                throw EdgeError.usage("\(flag) must be a multiple of \(multiple) from \(multiple) to 4096 for this model (the VAE's factor \(factor) times the UNet's \(1 << (u.levels - 1)) downsamplings), got \(value)")
            }
        }
        guard width == height else { throw EdgeError.usage("--width \(width) and --height \(height) differ; edge-ddim makes square images only (for now)") }
        return PipelineLayout(latentSide: width / factor, unetBatch: options.effectiveBatch * (options.guided ? 2 : 1), guided: options.guided)
    }
}

/// The model callback with classifier-free guidance, as `StableDiffusionPipeline` computes it: the UNet holds b
/// images twice, [x × b | x × b] against the context [unconditional × b | conditional × b], and
/// ε = ε_u + G·(ε_c − ε_u) per image. Allocates nothing.
@inline(__always)
func evaluateGuided(_ unet: UNet, count: Int, guidance: Float, xt: UnsafeBufferPointer<Float>, t: Float, out: UnsafeMutableBufferPointer<Float>,
                    stop: (() -> Int32?)?) throws {
    if let signal = stop?() { throw Interrupted(signal: signal) }
    let b = unet.batch / 2
    let perImage = unet.sample.count / unet.batch, half = b * perImage
    let sample = unet.sample.baseAddress!, eps = unet.output.baseAddress!
    var first = 0
    while first < count {
        let n = min(b, count - first)
        let base = first * perImage
        for copy in 0 ..< 2 {
            (sample + copy * half).update(from: xt.baseAddress! + base, count: n * perImage)
            if n < b { (sample + copy * half + n * perImage).update(repeating: 0, count: (b - n) * perImage) }
        }
        unet.timesteps.update(repeating: t)
        unet.run()
        for i in 0 ..< n * perImage {
            let u = eps[i], c = eps[half + i]
            out[base + i] = u + guidance * (c - u)
        }
        first += n
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
