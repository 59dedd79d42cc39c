import ArgumentParser
import _EdgeCore
import EdgeDDIM
import EdgeImageIO

/// The image argument and model option `invert` and `reconstruct` share.
struct InversionInput: ParsableArguments {
    @Argument(help: "Image: an 8-bit gray or RGB PNG of the model's size and channels, or a float32 .npy of shape [1,C,H,W] or [C,H,W] in [-1, 1].")
    var image: String

    @Option(help: "Model file written by convert.")
    var model: String = defaultModelPath

    @Option(help: "DDIM steps S, 1 to the model's num_train_timesteps.")
    var steps: Int = 10

    @Option(help: "Threads. Default: OMP_NUM_THREADS, else every online core.")
    var threads: Int?

    @Flag(inversion: .prefixedNo, help: "Clip the predicted x₀ in both directions, as the model's clip_sample would. Default: off, as in the DDIM paper's reconstructions: clipping is not invertible, and with it the default model's reconstruction error grows with the steps instead of falling.")
    var clipSample = false

    @Flag(help: "No progress lines.")
    var quiet = false

    @OptionGroup var memory: MaxMemoryOption

    /// Validates the options, opens the model, reads the image: everything that can fail before the UNet runs.
    /// Installs the SIGINT / SIGTERM handlers: from here on they stop the loops at a step boundary.
    func prepare() throws -> (DDIMInversion, [Float]) {
        if let t = threads, !(1 ... 1024).contains(t) { throw EdgeError.usage("--threads must be in 1...1024, got \(t)") }
        let limit = try memory.limit()
        try Interruption.install()
        let file = try openModel(model, limit: limit)
        try refuseTextToImage(file, command: "inversion")
        var options = SamplingOptions()
        options.steps = steps
        options.count = 1
        options.clipSample = clipSample
        options.threads = Threads(threads)
        try options.validate(trainTimesteps: file.schedule.numTrainTimesteps)
        try limit.check(model: file, options: options, task: "inverting")
        let (channels, side) = Autoencoding.imageShape(model: file)
        let values = try ModelImage.load(path: image, channels: channels, size: side)
        return (try DDIMInversion(model: file, options: options), values)
    }
}

struct Invert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode an image into its latent x_T by DDIM inversion (η = 0, diffusers' DDIMInverseScheduler).")

    @OptionGroup var input: InversionInput

    @Option(help: "Where to write x_T (float32 1×C×H×W .npy; sample --init-noise reads it).")
    var output: String = "xT.npy"

    func run() throws {
        try checkWritable(output)
        let start = monotonicSeconds()
        let (inversion, image) = try input.prepare()
        try inversion.setImages(image)
        try interruptible(total: input.steps, quiet: input.quiet) { progress, stop in
            try inversion.invert(progress: progress, stop: stop)
        }
        try NPY.write(Array(inversion.x), shape: inversion.shape, to: output)
        printError("done: \(input.steps) inverse steps in \(fixed(monotonicSeconds() - start, decimals: 2)) s; wrote \(output)")
    }
}

struct Reconstruct: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Invert an image and generate it back with the same steps; print MSE and PSNR (images in [0, 1]).")

    @OptionGroup var input: InversionInput

    @Option(help: "Also write the input and its reconstruction side by side to this PNG.")
    var output: String?

    func run() throws {
        if let output { try checkWritable(output) }
        let (inversion, image) = try input.prepare()
        let result = try interruptible(total: 2 * input.steps, quiet: input.quiet) { progress, stop in
            try inversion.reconstruct(image, progress: progress, stop: stop)
        }
        if let output {
            let (channels, side) = Autoencoding.imageShape(model: inversion.model)
            let shape = [1, channels, side, side]
            try (result.input + result.output).withUnsafeBufferPointer {
                try PNG.write(images: $0, count: 2, channels: shape[1], height: shape[2], width: shape[3], to: output,
                              layout: GridLayout(columns: 2))
            }
        }
        print("steps \(input.steps)  mse \(formatted(result.meanSquaredError))  psnr \(fixed(result.psnr, decimals: 2)) dB")
    }
}
