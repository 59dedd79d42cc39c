import ArgumentParser
import _EdgeCore
import _EdgeQuant
import EdgeDDIM
import EdgeModelFile

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Describe a model file: config, parameters, weight types, memory.")

    @Argument(help: "Model file.")
    var model: String = defaultModelPath

    @Option(help: "Images to plan working memory for.")
    var count: Int = 1

    @Option(help: "Images per UNet evaluation. Default: min(count, 4).")
    var batch: Int?

    @OptionGroup var memory: MaxMemoryOption

    func run() throws {
        let limit = try memory.limit()
        let file = try openModel(model, limit: limit)
        var options = SamplingOptions()
        options.count = count
        options.batch = batch
        if file.textEncoder != nil { options.prompt = "" }
        try options.validate(trainTimesteps: file.schedule.numTrainTimesteps)
        try limit.check(model: file, options: options)
        let u = file.unet, s = file.schedule
        var types: [String: Int] = [:]
        for e in file.entries { types[e.type.description, default: 0] += 1 }
        let macs = u.multiplyAccumulates()
        print("model        \(model)")
        print("unet         \(u.sampleSize)×\(u.sampleSize), \(u.inChannels) → \(u.outChannels) channels, blocks \(u.blockOutChannels), \(u.layersPerBlock) layers per block")
        // A UNet2DConditionModel's attention blocks are diffusers' CrossAttn… blocks.
        let blockName = { (raw: String) in u.conditioning == nil ? raw : raw.replacing("Attn", with: "CrossAttn") }
        print("             down \(u.downBlockTypes.map { blockName($0.rawValue) }.joined(separator: ", "))")
        print("             up   \(u.upBlockTypes.map { blockName($0.rawValue) }.joined(separator: ", "))")
        if let k = u.conditioning {
            print("             UNet2DConditionModel: cross-attention over \(k.contextTokens)×\(k.crossAttentionDim) text embeddings, heads \(k.headsPerBlock), "
                + "\(k.useLinearProjection ? "linear" : "1×1 convolution") proj_in/out, groups \(u.normNumGroups), eps \(u.normEps)")
        } else {
            print("             mid attention \(u.addAttention), head dim \(u.attentionHeadDim.map(String.init) ?? "all channels"), groups \(u.normNumGroups), eps \(u.normEps)")
        }
        print("schedule     \(s.betaSchedule.rawValue) betas \(s.betaStart)…\(s.betaEnd), T = \(s.numTrainTimesteps), \(s.predictionType.rawValue), clip_sample \(s.clipSample), spacing \(s.timestepSpacing.rawValue)")
        print("parameters   \(file.parameterCount) in \(file.entries.count) tensors (\(types.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")))")
        print("weights      \(megabytes(file.weightBytes)) (file \(megabytes(file.fileBytes)), mapped; weights repacked at load into the kernels' layouts count in working mem, and their mapped pages are given back)")
        print("compute      \(fixed(2 * Double(macs) / 1e9, decimals: 2)) GFLOP per image per step")
        if let a = file.autoencoder {
            let c = a.config
            let side = Autoencoding.imageShape(model: file).side
            let decoding = AutoencoderGraph.decoder(c, batch: 1, latentSide: u.sampleSize)
            print("pipeline     \(file.pipeline ?? "?"): \(c.kind.rawValue) \(a.name), latents \(c.embedDim)×\(u.sampleSize)×\(u.sampleSize) → images \(c.outChannels)×\(side)×\(side), blocks \(c.blockOutChannels), scaling_factor \(c.scalingFactor)"
                + (c.shiftFactor.map { ", shift_factor \($0)" } ?? "") + (c.kind == .vq ? ", \(c.numVQEmbeddings) codebook entries" : ""))
            print("decoder      \(fixed(2 * decoding.multiplyAccumulateCount / 1e9, decimals: 2)) GFLOP per image, \(decoding.parameterCount) parameters; "
                + "working mem \(megabytes(try SamplingPipeline.decoderWorkingBytes(model: file, threads: options.threads) ?? 0)) (one image at a time)")
        }
        if let t = file.textEncoder, let tokenizer = file.tokenizer {
            let c = t.config
            print("text         CLIPTextModel \(c.numHiddenLayers) layers, hidden \(c.hiddenSize), \(c.numAttentionHeads) heads, \(c.hiddenAct.rawValue); "
                + "tokenizer of \(tokenizer.vocabulary.count) tokens, \(tokenizer.config.maxLength) per prompt; working mem "
                + "\(megabytes(try PromptEmbeddings.memory(model: file, guided: options.guided, threads: options.threads)?.total ?? 0)) (freed before the UNet loads)")
        }
        let unet = try SamplingPipeline.unetMemory(model: file, options: options)
        print("UNet mem     \(megabytes(unet.arena + unet.packedWeights)) (arena \(megabytes(unet.arena)) of activations and scratch, "
            + "packed weights \(megabytes(unet.packedWeights)); batch \(options.effectiveBatch)"
            + (file.textEncoder != nil && options.guided ? " × 2 for guidance" : "") + ")")
        let need = try SamplingPipeline.need(model: file, options: options)
        print("working mem  \(megabytes(need.workingBytes)) for --count \(count) (batch \(options.effectiveBatch)); with the weights read in place from "
            + "the file (\(megabytes(need.fileBytes))) a run needs at most \(megabytes(need.total))")
    }
}
