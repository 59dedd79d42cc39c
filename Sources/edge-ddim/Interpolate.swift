import ArgumentParser
import _EdgeCore
import EdgeDDIM
import EdgeImageIO

struct Interpolate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Spherically interpolate between two seeds' x_T and decode each frame with η = 0 DDIM or another sampler (DDIM paper §5.3).")

    @Option(help: "Model file written by convert.")
    var model: String = defaultModelPath

    @Option(name: .customLong("seed-a"), help: "Seed of the first end point (its x_T is sample --seed A --count 1's).")
    var seedA: UInt64

    @Option(name: .customLong("seed-b"), help: "Seed of the second end point.")
    var seedB: UInt64

    @Option(help: "Frames K, end points included (α = i/(K−1)).")
    var frames: Int = 8

    @Option(help: "Denoising steps S per frame.")
    var steps: Int = 10

    @OptionGroup var sampling: SamplerOption

    @Option(help: "Threads. Default: OMP_NUM_THREADS, else every online core.")
    var threads: Int?

    @Option(help: "Images per UNet evaluation. Default: min(frames, 4).")
    var batch: Int?

    @Option(help: "PNG file for the strip of K images in one row.")
    var output: String = "strip.png"

    @Option(help: "Also write the K x₀ images (float32 K×C×H×W, unclamped) to this .npy file.")
    var npy: String?

    @Flag(help: "No progress lines.")
    var quiet = false

    @OptionGroup var memory: MaxMemoryOption

    func run() throws {
        if let t = threads, !(1 ... 1024).contains(t) { throw EdgeError.usage("--threads must be in 1...1024, got \(t)") }
        guard Interpolation.frames.contains(frames) else {
            throw EdgeError.usage("--frames must be in \(Interpolation.frames.lowerBound)...\(Interpolation.frames.upperBound), got \(frames)")
        }
        var options = SamplingOptions()
        options.steps = steps
        options.sampler = try sampling.settings()
        options.count = frames
        options.batch = batch
        options.threads = Threads(threads)
        try checkWritable(output)
        if let npy { try checkWritable(npy) }
        let limit = try memory.limit()
        // From here on SIGINT / SIGTERM stop the run at the next step boundary instead of killing it.
        try Interruption.install()

        let start = monotonicSeconds()
        let file = try openModel(model, limit: limit)
        try refuseTextToImage(file, command: "interpolation")
        try options.validate(trainTimesteps: file.schedule.numTrainTimesteps)
        try limit.check(model: file, options: options)
        let (shape, x0) = try interruptible(total: steps, quiet: quiet) { progress, stop in
            try Interpolation.run(model: file, seedA: seedA, seedB: seedB, frames: frames, options: options,
                                  progress: progress, stop: stop)
        }
        try x0.withUnsafeBufferPointer {
            try PNG.write(images: $0, count: shape[0], channels: shape[1], height: shape[2], width: shape[3], to: output,
                          layout: GridLayout(columns: frames))
        }
        if let npy { try NPY.write(x0, shape: shape, to: npy) }
        printError("done: \(frames) frames from seed \(seedA) to seed \(seedB), \(steps) steps in \(fixed(monotonicSeconds() - start, decimals: 2)) s; wrote \(output)"
            + (npy.map { " and \($0)" } ?? ""))
    }
}

/// The per-step progress line the sampling commands print on stderr, or nil with --quiet.
func progressPrinter(quiet: Bool, label: String = "step") -> ((Int, Int) -> Void)? {
    guard !quiet else { return nil }
    let start = monotonicSeconds()
    return { step, total in
        let elapsed = monotonicSeconds() - start
        let remaining = elapsed / Double(step) * Double(total - step)
        printError("\(label) \(step)/\(total)  elapsed \(fixed(elapsed, decimals: 1)) s  remaining \(fixed(remaining, decimals: 1)) s")
    }
}
