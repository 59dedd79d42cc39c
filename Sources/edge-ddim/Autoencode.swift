import ArgumentParser
import _EdgeCore
import EdgeDDIM
import EdgeImageIO
import EdgeModelFile

/// The options `decode` and `encode` share.
struct AutoencoderOptions: ParsableArguments {
    @Option(help: "Model file written by convert from a latent diffusion pipeline.")
    var model: String = defaultModelPath

    @Option(help: "Threads. Default: OMP_NUM_THREADS, else every online core.")
    var threads: Int?

    @OptionGroup var memory: MaxMemoryOption

    /// Validates the options and opens the model.
    func open() throws -> (ModelFile, Threads) {
        if let t = threads, !(1 ... 1024).contains(t) { throw EdgeError.usage("--threads must be in 1...1024, got \(t)") }
        return (try openModel(model, limit: try memory.limit()), Threads(threads))
    }
}

/// `decode LATENTS.npy`: a latent diffusion model's decoder on latents in the diffusion model's space (as
/// `sample --latents` writes them). All the work is in EdgeDDIM's `Autoencoding`.
struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Latent diffusion: decode latents (float32 N×C×h×w .npy, as sample --latents writes) into images.")

    @Argument(help: "Latents: float32 .npy of shape [N, C, h, h] in the diffusion model's space (divided by scaling_factor here, as LDMPipeline does).")
    var latents: String

    @OptionGroup var options: AutoencoderOptions

    @Option(help: "PNG file for the grid of images.")
    var output: String = "decoded.png"

    @Option(help: "Also write the decoded images (float32 N×C×H×W, before /2 + 0.5 and the clamp) to this .npy file.")
    var npy: String?

    func run() throws {
        try checkWritable(output)
        if let npy { try checkWritable(npy) }
        let (file, threads) = try options.open()
        let array = try NPY.read(path: latents)
        let start = monotonicSeconds()
        let (images, shape) = try Autoencoding.decode(model: file, latents: array.values, shape: array.shape, threads: threads)
        try images.withUnsafeBufferPointer {
            try PNG.write(images: $0, count: shape[0], channels: shape[1], height: shape[2], width: shape[3], to: output)
        }
        if let npy { try NPY.write(images, shape: shape, to: npy) }
        printError("done: decoded \(shape[0]) image\(shape[0] == 1 ? "" : "s") of \(shape[3])×\(shape[2]) in \(fixed(monotonicSeconds() - start, decimals: 2)) s, "
            + "peak memory \(megabytes(peakResidentBytes())); wrote \(output)" + (npy.map { " and \($0)" } ?? ""))
    }
}

/// `encode IMAGE`: a latent diffusion model's encoder, image to latents in the diffusion model's space.
struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Latent diffusion: encode an image into latents (float32 1×C×h×w .npy; decode reads them).")

    @Argument(help: "Image: an 8-bit gray or RGB PNG of the autoencoder's channels, or a float32 .npy [1,C,H,W] or [C,H,W] in [-1, 1]; H = W = the UNet's latent size times the autoencoder's downsampling.")
    var image: String

    @OptionGroup var options: AutoencoderOptions

    @Option(help: "Where to write the latents.")
    var output: String = "latents.npy"

    func run() throws {
        try checkWritable(output)
        let (file, threads) = try options.open()
        _ = try Autoencoding.component(file, "encode")
        let (channels, side) = Autoencoding.imageShape(model: file)
        let values = try ModelImage.load(path: image, channels: channels, size: side)
        let (latents, shape) = try Autoencoding.encode(model: file, images: values, shape: [1, channels, side, side], threads: threads)
        try NPY.write(latents, shape: shape, to: output)
        printError("done: encoded \(image) (\(side)×\(side)) into \(shape.map(String.init).joined(separator: "×")) latents; wrote \(output)")
    }
}
