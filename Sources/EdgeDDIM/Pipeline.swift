import _EdgeCore
import EdgeModelFile
import EdgeUNet
import EdgeSampler

/// What to generate. Defaults are the command line's.
public struct SamplingOptions: Sendable {
    /// Denoising steps S (UNet evaluations), 1...num_train_timesteps.
    public var steps = 10
    /// η ∈ [0, 1]: 0 is deterministic DDIM, 1 has DDPM's posterior variance.
    public var eta: Float = 0
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

    public static let defaultBatch = 4
    public static let maxCount = 4096

    public init() {}

    public func validate(trainTimesteps: Int) throws {
        guard (1 ... trainTimesteps).contains(steps) else {
            throw EdgeError.usage("--steps must be in 1...\(trainTimesteps) (the model's num_train_timesteps), got \(steps)")
        }
        guard eta >= 0, eta <= 1 else { throw EdgeError.usage("--eta must be in [0, 1], got \(eta)") }
        guard (1 ... Self.maxCount).contains(count) else { throw EdgeError.usage("--count must be in 1...\(Self.maxCount), got \(count)") }
        if let b = batch, !(1 ... Self.maxCount).contains(b) { throw EdgeError.usage("--batch must be in 1...\(Self.maxCount), got \(b)") }
    }

    public var effectiveBatch: Int { min(batch ?? Self.defaultBatch, count) }
}

/// diffusers' `DDIMPipeline` on an edge-ddim model: x_T from the seed (or given), S DDIM steps with the
/// UNet as the model callback, x₀ out. Everything the loop touches — the UNet's arena, x, the sampler's
/// workspace, the generator's state — is allocated here, before sampling starts.
public final class DDIMPipeline {
    public let model: ModelFile
    public let unet: UNet
    public let schedule: DDIMSchedule
    public let options: SamplingOptions
    /// [count, C, S, S]: x_T before `run`, x₀ after.
    public let x: UnsafeMutableBufferPointer<Float>
    private let workspace: DDIMWorkspace
    private var generator: TorchGenerator

    public init(model: ModelFile, options: SamplingOptions) throws {
        try options.validate(trainTimesteps: model.schedule.numTrainTimesteps)
        var config = model.schedule
        if let s = options.spacing { config.timestepSpacing = s }
        if let c = options.clipSample { config.clipSample = c }
        self.model = model
        self.options = options
        self.schedule = try DDIMSchedule(config: config, steps: options.steps)
        self.unet = try UNet(model: model, batch: options.effectiveBatch, threads: options.threads)
        let u = model.unet
        guard u.inChannels == u.outChannels else {
            throw EdgeError("model \(model.path): in_channels \(u.inChannels) ≠ out_channels \(u.outChannels); DDIM needs a prediction the shape of its input")
        }
        let count = options.count * u.inChannels * u.sampleSize * u.sampleSize
        x = .allocate(capacity: count)
        x.initialize(repeating: 0)
        workspace = DDIMWorkspace(count: count)
        generator = TorchGenerator(seed: options.seed)
        generator.fillNormal(x)
    }

    deinit { x.deallocate() }

    /// Shape of x: [count, C, S, S].
    public var shape: [Int] { [options.count, model.unet.inChannels, model.unet.sampleSize, model.unet.sampleSize] }

    /// Replaces the seeded x_T (for `--init-noise`); `values` must hold count·C·S·S floats.
    public func setInitialNoise(_ values: UnsafeBufferPointer<Float>) throws {
        guard values.count == x.count else { throw EdgeError("initial noise holds \(values.count) values, \(shape) needs \(x.count)") }
        _ = x.initialize(from: values)
    }

    /// Runs the S steps; on return `x` holds x₀ exactly as the last scheduler step returns it (unclamped).
    /// - progress: called after each step with (steps done, total).
    /// - stop: polled before each step; returning a signal number ends the run by throwing `Interrupted`
    ///   (the CLI passes `{ Interruption.signal }`). Must not allocate: it runs inside the sampling loop.
    public func run(progress: ((_ step: Int, _ of: Int) -> Void)? = nil, stop: (() -> Int32?)? = nil) throws {
        let unet = self.unet, count = options.count
        try ddimSample(x: x, schedule: schedule, eta: options.eta, generator: &generator, workspace: workspace,
                       model: { xt, t, out in
                           try evaluateInChunks(unet, count: count, xt: xt, t: t, out: out, stop: stop)
                       },
                       progress: progress)
    }

    /// Bytes of working memory: the UNet arena plus x and the sampler's two buffers.
    public var workingBytes: Int { unet.arenaBytes + 3 * x.count * 4 }

    /// Working memory a pipeline with `options` would need, without allocating it.
    public static func workingBytes(model: ModelFile, options: SamplingOptions) throws -> Int {
        let u = model.unet
        return try UNet.arenaBytes(model: model, batch: options.effectiveBatch, threads: options.threads) + 3 * options.count * u.inChannels * u.sampleSize * u.sampleSize * 4
    }
}

/// The model callback of every sampling and inversion loop: calls `unet` on `count` images of `xt` at timestep
/// `t`, `unet.batch` at a time, writing the predictions to `out`. The UNet holds `batch` images; larger counts
/// go through it in chunks, so the random stream (drawn for the full shape) is the same whatever the batch.
/// `stop` is polled first; a signal number ends the loop by throwing `Interrupted`. Allocates nothing.
@inline(__always)
func evaluateInChunks(_ unet: UNet, count: Int, xt: UnsafeBufferPointer<Float>, t: Int, out: UnsafeMutableBufferPointer<Float>,
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
        unet.timesteps.update(repeating: Float(t))
        unet.run()
        (out.baseAddress! + base).update(from: unet.output.baseAddress!, count: n * perImage)
        first += n
    }
}
