import _EdgeCore

/// The subset of transformers' `CLIPTextConfig` that edge-ddim runs: the text encoders of Stable Diffusion
/// (OpenAI CLIP ViT-L/14 in SD 1.x: hidden 768, 12 layers, 12 heads, quick_gelu; OpenCLIP ViT-H/14 in SD 2.x
/// and SD-Turbo: hidden 1024, 23 of its 24 layers, 16 heads, gelu), with transformers' defaults.
public struct CLIPTextConfig: Equatable, Sendable {
    /// The MLP's activation (`hidden_act`).
    public enum Activation: String, Sendable, CaseIterable {
        /// x · σ(1.702·x), OpenAI CLIP.
        case quickGELU = "quick_gelu"
        /// torch's exact GELU, OpenCLIP.
        case gelu
    }

    public var vocabSize: Int = 49408
    public var hiddenSize: Int = 512
    public var intermediateSize: Int = 2048
    public var numHiddenLayers: Int = 12
    public var numAttentionHeads: Int = 8
    /// Rows of the position embedding: the longest sequence (77 for every Stable Diffusion tokenizer).
    public var maxPositionEmbeddings: Int = 77
    public var hiddenAct: Activation = .quickGELU
    public var layerNormEps: Double = 1e-5

    public init() {}

    public var headDimension: Int { hiddenSize / numAttentionHeads }

    /// Checks every value the graph needs; the message names the config.json field.
    public func validate() throws {
        let need = ConfigCheck.need
        try need((1 ... 1 << 20).contains(vocabSize), "vocab_size", "must be in 1...\(1 << 20), got \(vocabSize)")
        try need((1 ... 8192).contains(hiddenSize), "hidden_size", "must be in 1...8192, got \(hiddenSize)")
        try need((1 ... 65536).contains(intermediateSize), "intermediate_size", "must be in 1...65536, got \(intermediateSize)")
        try need((1 ... 128).contains(numHiddenLayers), "num_hidden_layers", "must be in 1...128, got \(numHiddenLayers)")
        try need((1 ... 256).contains(numAttentionHeads), "num_attention_heads", "must be in 1...256, got \(numAttentionHeads)")
        try need(hiddenSize % numAttentionHeads == 0, "num_attention_heads", "\(numAttentionHeads) does not divide hidden_size \(hiddenSize)")
        try need((1 ... 4096).contains(maxPositionEmbeddings), "max_position_embeddings", "must be in 1...4096, got \(maxPositionEmbeddings)")
        try need(layerNormEps.isFinite && layerNormEps > 0, "layer_norm_eps", "must be positive, got \(layerNormEps)")
    }
}
