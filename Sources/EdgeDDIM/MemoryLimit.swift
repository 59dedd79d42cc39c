import _EdgeCore
import EdgeSampler
import EdgeModelFile
import EdgeUNet

/// The most memory a command may plan to use (`--max-memory`). A model is checked against it after its
/// file is validated and before anything sized by its config is allocated, so a config asking for more than
/// the machine has ends in one line instead of an allocation failure or the OOM killer.
public struct MemoryLimit: Sendable, Equatable {
    public let bytes: Int

    public init(bytes: Int) { self.bytes = bytes }

    /// The machine's physical memory (the default limit); 1 TiB where the system does not say.
    public static var physicalMemory: MemoryLimit { MemoryLimit(bytes: physicalMemoryBytes() ?? 1 << 40) }

    /// `--max-memory` text: `BYTES`, `NNK`, `NNM`, `NNG` (binary multiples); nil means the default.
    public init(option text: String?) throws {
        guard let text else { self = .physicalMemory; return }
        guard let n = parseByteCount(text) else {
            throw EdgeError.usage("--max-memory must be a byte count such as 536870912, 512M or 2G, got \(text)")
        }
        self.bytes = n
    }

    /// What running `model` needs: the working memory (planned, allocated at load) plus the weights read in
    /// place from the mapped file, whose pages are read on every step and so stay resident. Weights repacked at
    /// load are not counted there: their mapped pages are given back once copied (the copy is working memory).
    public struct Need: Sendable {
        public let workingBytes: Int
        public let fileBytes: Int
        public var total: Int { checkedSum(workingBytes, fileBytes) ?? Int.max }
        public init(workingBytes: Int, fileBytes: Int) { self.workingBytes = workingBytes; self.fileBytes = fileBytes }
    }

    /// Throws a one-line error when `need` exceeds the limit.
    public func check(_ need: Need, model: String, what: String) throws {
        guard need.total > bytes else { return }
        throw EdgeError("model \(model): \(what) needs \(megabytes(need.total)) (working memory \(megabytes(need.workingBytes)) + weights read in place from the model file \(megabytes(need.fileBytes))), more than --max-memory \(megabytes(bytes)); lower --count or --batch, or raise --max-memory")
    }

    /// Checks a sampling run with `options`; computes the plan without allocating it. `DDIMInversion` plans
    /// the same buffers, so it is checked here too (`task` names the run in the message).
    public func check(model: ModelFile, options: SamplingOptions, task: String = "sampling") throws {
        let need = try SamplingPipeline.need(model: model, options: options)
        try check(need, model: model.path, what: "\(task) \(options.count) image\(options.count == 1 ? "" : "s") in batches of \(options.effectiveBatch)")
    }

    /// Checks one UNet of `batch` images (the bench command).
    public func check(model: ModelFile, batch: Int, threads: Threads, winograd: Bool = true) throws {
        let m = try UNet.memory(model: model, batch: batch, threads: threads, winograd: winograd)
        // Input, output and timesteps are in the arena; the benchmark adds nothing of its own worth counting.
        try check(Need(workingBytes: m.total, fileBytes: m.readInPlace), model: model.path, what: "a UNet for batch \(batch)")
    }
}

extension SamplingPipeline {
    /// `workingBytes(model:options:)` with every product checked: the sizes come from a file.
    static func checkedWorkingBytes(model: ModelFile, options: SamplingOptions) throws -> Int {
        try need(model: model, options: options).workingBytes
    }

    /// The working memory of a run and the mapped weight bytes it reads in place. Each phase — text encoder,
    /// UNet, decoder — allocates its own memory after the one before has freed it, and reads in place only its
    /// own weights that are not repacked: the working memory is the largest phase's plus what lives throughout
    /// (x, the sampler's buffers, the images), and the mapped bytes the largest phase's (an upper bound on the
    /// sum at any moment, as the phases' mapped bytes are small beside their working memory).
    public static func need(model: ModelFile, options: SamplingOptions) throws -> MemoryLimit.Need {
        try options.validate(trainTimesteps: model.schedule.numTrainTimesteps)
        let u = model.unet
        let layout = try layout(model: model, options: options)
        let side = layout.latentSide
        let unet = try UNet.memory(model: model, batch: layout.unetBatch, threads: options.threads, int8Activations: options.int8Activations,
                                   winograd: options.winograd, sampleSize: side)
        // x and the sampler's buffers (model output, noise, its history, a scaled input for Euler):
        // count × C × S × S floats each.
        let sampler = try AnySampler(options.sampler, schedulerConfig: schedulerConfig(model: model, options: options), steps: options.steps)
        let perSample = 1 + 2 + sampler.historyBuffers + (sampler.scalesModelInput ? 1 : 0)
        // Latent diffusion: the decoder (one image at a time, loaded once the UNet is released) and the images.
        var network = unet.total
        var mapped = unet.readInPlace
        var imageBytes: Int? = 0
        if let a = model.autoencoder {
            let d = try AutoencoderNetwork.memory(a.config, .decoder(quantize: true), weights: model, prefix: a.prefix, batch: 1,
                                                  latentSide: side, threads: options.threads)
            network = max(network, d.total)
            mapped = max(mapped, d.readInPlace)
            let imageSide = side * a.config.downsampling
            imageBytes = checkedProduct([options.count, a.config.outChannels, imageSide, imageSide, 4])
        }
        guard let buffers = checkedProduct([perSample, options.count, u.inChannels, side, side, 4]),
              let total = checkedSum(network, buffers), let imageBytes, let withDecoder = checkedSum(total, imageBytes) else {
            throw EdgeError("model \(model.path): \(options.count) images of \(u.inChannels)×\(side)×\(side) need more memory than can be counted")
        }
        // Text to image: the text encoder runs (and is freed, its pages given back) before the rest is allocated.
        var text = 0
        if options.prompt != nil, let m = try PromptEmbeddings.memory(model: model, guided: layout.guided, threads: options.threads) {
            text = m.total
            mapped = max(mapped, m.readInPlace)
        }
        return MemoryLimit.Need(workingBytes: max(withDecoder, text), fileBytes: mapped)
    }
}

extension SamplingPipeline {
    /// The UNet's memory for `options`: the arena (activations and scratch) and the weights packed at load.
    public static func unetMemory(model: ModelFile, options: SamplingOptions) throws -> PlannedMemory {
        let layout = try layout(model: model, options: options)
        return try UNet.memory(model: model, batch: layout.unetBatch, threads: options.threads, sampleSize: layout.latentSide)
    }

    /// The decoder's arena and packed weights (one image at a time), nil for a pixel-space model. A sampling
    /// pipeline loads it after releasing the UNet (`checkedWorkingBytes` counts the larger of the two).
    public static func decoderWorkingBytes(model: ModelFile, threads: Threads) throws -> Int? {
        guard let a = model.autoencoder else { return nil }
        return try AutoencoderNetwork.workingBytes(a.config, .decoder(quantize: true), weights: model, prefix: a.prefix, batch: 1,
                                                   latentSide: model.unet.sampleSize, threads: threads)
    }
}
