import ArgumentParser
import _EdgeCore
import EdgeDDIM
import EdgeModelFile
import EdgeImageIO

/// The model the commands use when --model is not given: the int8 conversion of ddpm-fashion-32, installed or in
/// the repository's models/ (`DefaultModel`).
let defaultModelPath = DefaultModel.path

/// Opens and validates a model, and refuses it when even one image at a time would need more memory than
/// `limit`: every command that loads a model gets that check, with or without its own `--max-memory`.
func openModel(_ path: String, limit: MemoryLimit = .physicalMemory) throws -> ModelFile {
    guard fileExists(path) else {
        let hint = path == defaultModelPath ? DefaultModel.searchedPlaces : ""
        throw EdgeError("model \(path) not found\(hint)")
    }
    let file = try ModelFile(path: path)
    var smallest = SamplingOptions()
    smallest.count = 1
    if file.textEncoder != nil { smallest.prompt = "" }
    try limit.check(model: file, options: smallest)
    return file
}

/// For the commands that do not take a prompt yet (inversion, interpolation, evaluation): a text-to-image model is
/// refused by name instead of being run with an empty context.
func refuseTextToImage(_ file: ModelFile, command: String) throws {
    guard file.textEncoder != nil else { return }
    throw EdgeError.usage("\(command) of a text-to-image model (\(file.path)) is not supported yet; generate with --prompt")
}

extension NoiseScheduleConfig.TimestepSpacing: ExpressibleByArgument {}

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate a grid of images (the default command).")

    @Option(help: "Model file written by convert.")
    var model: String = defaultModelPath

    @Option(help: "Denoising steps S (UNet evaluations), 1 to the model's num_train_timesteps.")
    var steps: Int = 10

    @OptionGroup var sampling: SamplerOption

    @Option(help: "DDIM's η in [0, 1]: 0 is deterministic DDIM, 1 is DDPM-like.")
    var eta: Float = 0

    @Option(help: "Seed; the same seed gives diffusers' DDIMPipeline(generator=torch.Generator().manual_seed(seed)) noise.")
    var seed: UInt64 = 0

    @Option(help: "Images to generate. Default: --init-noise's count, else 16 (a grid), 1 for a text-to-image model (diffusers' num_images_per_prompt).")
    var count: Int?

    @Option(help: "Text to image: what to draw (tokenized as the model's CLIPTokenizer does: truncated to its 77 tokens).")
    var prompt: String?

    @Option(help: "Text to image: what classifier-free guidance steers away from. Default: the empty prompt.")
    var negativePrompt: String?

    @Option(help: "Text to image: classifier-free guidance scale G (ε = ε_u + G·(ε_c − ε_u)); 1 or less runs the prompt alone, as for SD-Turbo's 0.")
    var guidance: Float = 7.5

    @Option(help: "Text to image: image width in pixels. Default: the model's (diffusers' sample_size × the VAE's scale factor).")
    var width: Int?

    @Option(help: "Text to image: image height in pixels; equal to the width (square images only).")
    var height: Int?

    @Option(help: "Timestep spacing: leading (the paper's uniform), trailing, linspace or quadratic. Default: the model's.")
    var schedule: NoiseScheduleConfig.TimestepSpacing?

    @Flag(inversion: .prefixedNo, help: "Clip the predicted x₀ to the model's clip_sample_range. Default: the model's clip_sample.")
    var clipSample: Bool?

    @Option(help: "Threads. Default: OMP_NUM_THREADS, else every online core.")
    var threads: Int?

    @Option(help: "Images per UNet evaluation (memory versus speed). Default: min(count, 4).")
    var batch: Int?

    @Option(help: "PNG file for the grid of images.")
    var output: String = "samples.png"

    @Option(help: "Also write the final x₀ (float32 N×C×H×W, unclamped) to this .npy file; for latent diffusion, the decoded images.")
    var npy: String?

    @Option(help: "Latent diffusion: also write the final latents (float32 N×C×h×w, before the decoder) to this .npy file.")
    var latents: String?

    @Option(help: "Start from this x_T (float32 N×C×H×W .npy of unit-variance noise, scaled by the sampler's init_noise_sigma as diffusers scales given latents) instead of seeded noise.")
    var initNoise: String?

    @Option(help: ArgumentHelp("3×3 convolutions with fp32 activations: Winograd where it is faster (on), or the direct kernel, whose fp32 weights take a quarter of the memory (off).",
                               valueName: "on|off"))
    var winograd: String = "on"

    @Option(help: ArgumentHelp("int8 models: quantise activations to int8 too (auto: where the CPU has a dot-product instruction; the two paths' images differ slightly).",
                               valueName: "auto|on|off"))
    var int8Activations: String = "auto"

    @Flag(help: "No progress lines.")
    var quiet = false

    @OptionGroup var memory: MaxMemoryOption

    /// An x_T file larger than this is refused before it is read (4096 images of 4×128×128 latents are 1 GiB).
    static let maxInitNoiseBytes = 1 << 30

    func run() throws {
        if let t = threads, !(1 ... 1024).contains(t) { throw EdgeError.usage("--threads must be in 1...1024, got \(t)") }
        var options = SamplingOptions()
        options.steps = steps
        guard eta.isFinite, eta >= 0, eta <= 1 else { throw EdgeError.usage("--eta must be in [0, 1], got \(eta)") }
        options.sampler = try sampling.settings(eta: eta)
        options.seed = seed
        options.prompt = prompt
        options.negativePrompt = negativePrompt
        options.guidance = guidance
        options.width = width
        options.height = height
        options.spacing = schedule
        options.clipSample = clipSample
        options.batch = batch
        options.threads = Threads(threads)
        guard winograd == "on" || winograd == "off" else { throw EdgeError.usage("--winograd must be on or off, got \(winograd)") }
        options.winograd = winograd == "on"
        options.int8Activations = try parseInt8Activations(int8Activations)
        try checkWritable(output)
        if let npy { try checkWritable(npy) }
        if let latents { try checkWritable(latents) }
        let limit = try memory.limit()
        // From here on SIGINT / SIGTERM stop the run at the next step boundary instead of killing it.
        try Interruption.install()

        let start = monotonicSeconds()
        let file = try openModel(model, limit: limit)
        // --init-noise decides how many images when --count is not given: its first dimension.
        var noise: NPYArray? = nil
        if let initNoise {
            let array = try NPY.read(path: initNoise, maxBytes: Self.maxInitNoiseBytes)
            if let count, array.shape.first != count {
                throw EdgeError.usage("--init-noise \(initNoise) holds \(array.shape.first ?? 0) images (shape \(array.shape)) but --count is \(count)")
            }
            noise = array
        }
        options.count = count ?? noise?.shape.first ?? (file.textEncoder == nil ? 16 : 1)
        try options.validate(trainTimesteps: file.schedule.numTrainTimesteps)
        try limit.check(model: file, options: options)
        if latents != nil, file.autoencoder == nil {
            throw EdgeError.usage("--latents: model \(model) has no autoencoder (it samples in pixel space; --npy writes x₀)")
        }
        let pipeline = try SamplingPipeline(model: file, options: options)
        if let e = pipeline.embeddings, e.truncated {
            let what = e.promptTokens > e.keptTokens ? "the prompt has \(e.promptTokens) tokens" : "the negative prompt has \(e.negativeTokens) tokens"
            printError("warning: \(what); the text encoder reads the first \(e.keptTokens), as CLIPTokenizer truncates")
        }
        if let noise, let initNoise {
            guard noise.shape == pipeline.shape else {
                throw EdgeError("\(initNoise): shape mismatch: the file holds \(noise.shape), the model's x_T is \(pipeline.shape)")
            }
            try noise.values.withUnsafeBufferPointer { try pipeline.setInitialNoise($0) }
        }
        let loop = monotonicSeconds()
        let evaluations = pipeline.sampler.evaluations
        var done = 0
        do {
            try pipeline.run(progress: { step, total in
                done = step
                guard !quiet else { return }
                let elapsed = monotonicSeconds() - loop
                let remaining = elapsed / Double(step) * Double(total - step)
                printError("step \(step)/\(total)  elapsed \(fixed(elapsed, decimals: 1)) s  remaining \(fixed(remaining, decimals: 1)) s")
            }, stop: { Interruption.signal })
            // A signal during the last step: the images are complete, but the user asked to stop.
            try Interruption.throwIfRequested()
        } catch let stop as Interrupted {
            throw Interrupted(signal: stop.signal, detail: "stopped after step \(done) of \(evaluations); nothing written")
        }
        // The loop's seconds per evaluation leave out the decoder, which runs once after it.
        let decoding = pipeline.decodingSeconds
        let sampling = monotonicSeconds() - loop - (decoding ?? 0)
        let shape = pipeline.outputShape
        let x0 = pipeline.output
        try PNG.write(images: x0, count: shape[0], channels: shape[1], height: shape[2], width: shape[3], to: output)
        if let npy { try NPY.write(Array(x0), shape: shape, to: npy) }
        if let latents { try NPY.write(Array(pipeline.x), shape: pipeline.shape, to: latents) }
        let total = monotonicSeconds() - start
        let count = options.count
        printError("done: \(count) image\(count == 1 ? "" : "s"), \(options.sampler.label), \(steps) steps"
            + (evaluations == steps ? "" : " (\(evaluations) UNet evaluations)") + " in \(fixed(total, decimals: 2)) s "
            + "(\(fixed(sampling / Double(evaluations), decimals: 3)) s per evaluation" + (decoding.map { ", decoding \(fixed($0, decimals: 2)) s" } ?? "")
            + "), peak memory \(megabytes(peakResidentBytes())); wrote \(output)"
            + (npy.map { " and \($0)" } ?? "") + (latents.map { " and \($0)" } ?? ""))
    }
}
