import _EdgeCore
import EdgeModelFile
import EdgeUNet
import EdgeText

/// Text to image: what `StableDiffusionPipeline.encode_prompt` computes before the denoising loop. The prompt
/// and the negative prompt (or "" without one) are tokenized to the tokenizer's T ids — truncated and padded as
/// `CLIPTokenizer(..., padding="max_length", truncation=True)` does — and encoded by the text encoder, whose
/// `last_hidden_state` is the conditional UNet's context. The unconditional embeddings exist only with
/// classifier-free guidance (guidance > 1).
public struct PromptEmbeddings: Sendable {
    /// [D, T], channel-major (the UNet's context layout): the prompt's.
    public let conditional: [Float]
    /// [D, T]: the negative prompt's (or the empty prompt's); nil without guidance.
    public let unconditional: [Float]?
    /// The prompt's tokens before truncation, and how many the tokenizer keeps (T − 2: start and end tokens).
    public let promptTokens: Int
    public let keptTokens: Int
    /// The negative prompt's tokens before truncation (0 without guidance).
    public let negativeTokens: Int

    /// Whether the prompt (or the negative prompt) lost tokens to truncation.
    public var truncated: Bool { promptTokens > keptTokens || negativeTokens > keptTokens }

    /// Tokenizes and encodes with `model`'s tokenizer and text encoder. The encoder's arena lives only for
    /// this call, and the pages of its weights are handed back to the kernel afterwards: the text encoder runs
    /// once per generation, before the UNet is loaded.
    public static func encode(model: ModelFile, prompt: String, negativePrompt: String?, guided: Bool, threads: Threads) throws -> PromptEmbeddings {
        guard let tokenizer = model.tokenizer, let text = model.textEncoder else {
            throw EdgeError.usage("--prompt: model \(model.path) has no text encoder (it is not a text-to-image model)")
        }
        let prompts = guided ? [negativePrompt ?? "", prompt] : [prompt]
        let ids = prompts.flatMap(tokenizer.encode)
        let tokens = tokenizer.config.maxLength
        let (d, t) = (text.config.hiddenSize, tokens)
        var embeddings: [[Float]] = []
        do {
            let encoder = try TextEncoderNetwork(text.config, weights: model, prefix: text.prefix, batch: prompts.count, tokens: tokens, threads: threads)
            try encoder.encode(ids)
            for i in prompts.indices { embeddings.append(Array(encoder.lastHiddenState[i * d * t ..< (i + 1) * d * t])) }
        }
        model.dropResidentPages(ofComponent: text.prefix)
        let kept = tokens - 2
        return PromptEmbeddings(conditional: embeddings[embeddings.count - 1], unconditional: guided ? embeddings[0] : nil,
                                promptTokens: tokenizer.tokens(prompt).count, keptTokens: kept,
                                negativeTokens: guided ? tokenizer.tokens(negativePrompt ?? "").count : 0)
    }

    /// The memory of `encode` (the text encoder's arena and packed weights, its weights read in place) without
    /// allocating it; nil for a model without a text encoder.
    public static func memory(model: ModelFile, guided: Bool, threads: Threads) throws -> PlannedMemory? {
        guard let tokenizer = model.tokenizer, let text = model.textEncoder else { return nil }
        return try TextEncoderNetwork.memory(text.config, weights: model, prefix: text.prefix, batch: guided ? 2 : 1,
                                             tokens: tokenizer.config.maxLength, threads: threads)
    }
}
