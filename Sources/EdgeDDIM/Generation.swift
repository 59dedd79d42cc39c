import Synchronization
import _EdgeCore
import EdgeModelFile
import EdgeImageIO

/// Asks a running generation to stop, from any thread: the run ends before its next UNet evaluation and
/// throws `GenerationCancelled`. One token may serve several runs; once cancelled it stays cancelled.
public final class CancellationToken: Sendable {
    private let cancelled = Atomic<Bool>(false)

    public init() {}

    /// Requests the stop. Safe from any thread, a signal handler's included (one atomic store).
    public func cancel() { cancelled.store(true, ordering: .releasing) }

    public var isCancelled: Bool { cancelled.load(ordering: .acquiring) }
}

/// What `ModelFile.generate` throws when its token or its progress callback stopped it. Nothing was produced.
public struct GenerationCancelled: Error, Sendable, Equatable, CustomStringConvertible {
    /// Steps (UNet evaluations) completed before the stop.
    public let completedEvaluations: Int
    public var description: String { "cancelled after \(completedEvaluations) UNet evaluation\(completedEvaluations == 1 ? "" : "s"); nothing was produced" }
}

/// The images of one generation, in the two forms callers use.
public struct GeneratedImages: Sendable {
    public let count: Int, channels: Int, height: Int, width: Int
    /// [count, channels, height, width] float32 in the model's range [−1, 1] as the pipeline returns it
    /// (diffusers' `output_type="np"` before its clamp: x₀, or the decoded images for latent diffusion).
    public let values: [Float]

    /// 8-bit pixels, image after image, each height × width × channels (interleaved RGB or gray), with
    /// diffusers' rounding (`numpy_to_pil`): rint(255·clamp(x/2 + 0.5, 0, 1)).
    public var pixels: [UInt8] {
        values.withUnsafeBufferPointer { imagePixels($0, count: count, channels: channels, height: height, width: width) }
    }

    /// The images tiled into one grid, as a PNG file's bytes: the very bytes `edge-ddim` writes for the same run.
    public func png() throws -> [UInt8] {
        PNG.encode(try values.withUnsafeBufferPointer { try EdgeImageIO.pixels(images: $0, count: count, channels: channels, height: height, width: width) })
    }

    /// Writes `png()` to `path`, atomically (a temporary file beside it, then a rename).
    public func writePNG(to path: String) throws {
        try writeFileAtomically(path, bytes: png())
    }
}

/// The engine's error: `description` is one line naming the file, field or value at fault.
public typealias EdgeDDIMError = EdgeError

extension SamplingOptions {
    /// The thread count as a number, for callers that do not deal in `Threads`: 0 or less means the default
    /// (OMP_NUM_THREADS, else every online core). Results do not depend on it.
    public var threadCount: Int {
        get { threads.count }
        set { threads = Threads(newValue > 0 ? newValue : nil) }
    }
}

extension ModelFile {
    /// Generates `options.count` images: diffusers' pipeline for this model (`DDIMPipeline`, `LDMPipeline` or
    /// `StableDiffusionPipeline`) with `options.seed`'s noise, so the pixels equal `edge-ddim`'s for the same
    /// options. Memory is allocated once, before the first step, and given back on return.
    ///
    /// Thread safety: a `ModelFile` is immutable and may be shared; each call builds its own pipeline, so calls
    /// on one model from several threads run side by side (each with its own working memory).
    /// - progress: called after each UNet evaluation with (evaluations done, total), on the calling thread.
    /// - cancel: checked before each UNet evaluation; see `CancellationToken`.
    /// - Throws: `EdgeDDIMError` for invalid options or a model that cannot run them, `GenerationCancelled`.
    public func generate(_ options: SamplingOptions, progress: ((_ done: Int, _ total: Int) -> Void)? = nil,
                         cancel: CancellationToken? = nil) throws -> GeneratedImages {
        try generate(options, progress: progress, stopWhen: { cancel?.isCancelled ?? false })
    }

    /// `generate` with the stop as a predicate, polled before each UNet evaluation (for a binding that has
    /// its own notion of cancelling, such as the C API's progress callback). It must not allocate.
    public func generate(_ options: SamplingOptions, progress: ((_ done: Int, _ total: Int) -> Void)?,
                         stopWhen shouldStop: @escaping () -> Bool) throws -> GeneratedImages {
        let pipeline = try SamplingPipeline(model: self, options: options)
        try cancellable(progress: progress, stopWhen: shouldStop) { progress, stop in try pipeline.run(progress: progress, stop: stop) }
        let shape = pipeline.outputShape
        return GeneratedImages(count: shape[0], channels: shape[1], height: shape[2], width: shape[3], values: Array(pipeline.output))
    }

    /// The shape of what `generate` returns for `options`, without loading anything: the options are
    /// validated as `generate` validates them (the same one-line errors).
    public func outputShape(for options: SamplingOptions) throws -> (count: Int, channels: Int, height: Int, width: Int) {
        try options.validate(trainTimesteps: schedule.numTrainTimesteps)
        let side = try SamplingPipeline.layout(model: self, options: options).latentSide
        guard let a = autoencoder else { return (options.count, unet.outChannels, side, side) }
        return (options.count, a.config.outChannels, side * a.config.downsampling, side * a.config.downsampling)
    }

}

extension DDIMInversion {
    /// `reconstruct` stopped by a token instead of a signal: images → x_T → images, throwing
    /// `GenerationCancelled` when `cancel` is raised.
    public func reconstruct(_ images: [Float], progress: ((_ step: Int, _ of: Int) -> Void)? = nil,
                            cancel: CancellationToken?) throws -> Reconstruction {
        try cancellable(progress: progress, stopWhen: { cancel?.isCancelled ?? false }) { progress, stop in
            try reconstruct(images, progress: progress, stop: stop)
        }
    }
}

extension Interpolation {
    /// `run` stopped by a token instead of a signal: K frames along the slerp from seed A's x_T to seed B's.
    public static func run(model: ModelFile, seedA: UInt64, seedB: UInt64, frames k: Int, options: SamplingOptions,
                           progress: ((_ step: Int, _ of: Int) -> Void)? = nil,
                           cancel: CancellationToken?) throws -> (shape: [Int], x0: [Float]) {
        try cancellable(progress: progress, stopWhen: { cancel?.isCancelled ?? false }) { progress, stop in
            try run(model: model, seedA: seedA, seedB: seedB, frames: k, options: options, progress: progress, stop: stop)
        }
    }
}

/// Runs `body` with a stop callback built from `shouldStop`, turning that stop into `GenerationCancelled`
/// (the loops' own stop speaks in signal numbers, which the command line's SIGINT handling needs).
private func cancellable<T>(progress: ((_ step: Int, _ of: Int) -> Void)?, stopWhen shouldStop: @escaping () -> Bool,
                            _ body: (_ progress: @escaping (Int, Int) -> Void, _ stop: @escaping () -> Int32?) throws -> T) throws -> T {
    var done = 0
    do {
        return try body({ step, total in
            done = step
            progress?(step, total)
        }, { shouldStop() ? cancelledCode : nil })
    } catch let stop as Interrupted where stop.signal == cancelledCode {
        throw GenerationCancelled(completedEvaluations: done)
    }
}

/// What the stop callback returns for a cancelled token: not a signal number (those are 1...64).
private let cancelledCode: Int32 = -1
