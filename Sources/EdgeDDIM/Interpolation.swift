import _EdgeCore
import EdgeModelFile
import EdgeSampler

/// Interpolation in the latent space of deterministic DDIM (DDIM paper §5.3, appendix D.5): two seeds give
/// two x_T, `Slerp` walks the great circle between them in K frames, and η = 0 DDIM decodes every frame.
/// Since η = 0 sampling is a fixed map from x_T to x₀, neighbouring latents give neighbouring images.
public enum Interpolation {
    /// Frames allowed: at least the two end points; at most what one run can sample.
    public static let frames = 2 ... SamplingOptions.maxCount

    /// The x_T a seed gives for one image: `torch.randn([1, C, H, W], generator=manual_seed(seed))`, what
    /// `sample --seed seed --count 1` (and diffusers' DDIMPipeline with batch_size 1) start from.
    public static func latent(seed: UInt64, channels: Int, size: Int) -> [Float] {
        var generator = TorchGenerator(seed: seed)
        return generator.normal(count: channels * size * size)
    }

    /// The K latents from seed A's x_T to seed B's, [K, C, H, W].
    public static func latents(seedA: UInt64, seedB: UInt64, frames k: Int, channels: Int, size: Int) throws -> [Float] {
        guard frames.contains(k) else { throw EdgeError.usage("--frames must be in \(frames.lowerBound)...\(frames.upperBound), got \(k)") }
        let a = latent(seed: seedA, channels: channels, size: size)
        let b = latent(seed: seedB, channels: channels, size: size)
        var out = [Float](repeating: 0, count: k * a.count)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { Slerp.interpolate(pa, pb, frames: k, into: $0) }
            }
        }
        return out
    }

    /// Samples the K frames with `options.sampler` (DDIM with η = 0 unless another sampler is chosen: a
    /// stochastic one breaks the x_T → x₀ map) and `options.steps` steps (options.count, eta and seed are set
    /// here). Each latent is unit-variance noise, scaled by the sampler's init_noise_sigma as every x_T is.
    /// Returns the shape [K, C, H, W] and x₀ as the last DDIM step gives it (unclamped); for latent diffusion the
    /// latents are interpolated and the frames are the decoded images.
    /// - stop: polled before each step, as in `SamplingPipeline.run`.
    public static func run(model: ModelFile, seedA: UInt64, seedB: UInt64, frames k: Int, options: SamplingOptions,
                           progress: ((_ step: Int, _ of: Int) -> Void)? = nil,
                           stop: (() -> Int32?)? = nil) throws -> (shape: [Int], x0: [Float]) {
        let u = model.unet
        let z = try latents(seedA: seedA, seedB: seedB, frames: k, channels: u.inChannels, size: u.sampleSize)
        var options = options
        options.count = k
        options.eta = 0
        let pipeline = try SamplingPipeline(model: model, options: options)
        try z.withUnsafeBufferPointer { try pipeline.setInitialNoise($0) }
        try pipeline.run(progress: progress, stop: stop)
        return (pipeline.outputShape, Array(pipeline.output))
    }
}
