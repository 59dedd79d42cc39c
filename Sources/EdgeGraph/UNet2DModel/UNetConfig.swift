import _EdgeCore

/// The subset of diffusers' `UNet2DModel` configuration that edge-ddim runs, with diffusers' defaults.
/// Anything outside this subset is refused by the converter, by field name, before a model file exists.
public struct UNetConfig: Equatable, Sendable {
    public enum DownBlock: String, Sendable, CaseIterable { case down = "DownBlock2D", attnDown = "AttnDownBlock2D" }
    public enum UpBlock: String, Sendable, CaseIterable { case up = "UpBlock2D", attnUp = "AttnUpBlock2D" }

    public var sampleSize: Int = 32
    public var inChannels: Int = 3
    public var outChannels: Int = 3
    /// diffusers' `center_input_sample`: the UNet first maps x to 2x − 1.
    public var centerInputSample: Bool = false
    public var flipSinToCos: Bool = true
    public var freqShift: Int = 0
    public var downBlockTypes: [DownBlock] = [.down, .attnDown, .attnDown, .attnDown]
    public var upBlockTypes: [UpBlock] = [.attnUp, .attnUp, .attnUp, .up]
    public var blockOutChannels: [Int] = [224, 448, 672, 896]
    public var layersPerBlock: Int = 2
    public var midBlockScaleFactor: Double = 1
    /// 1: symmetric padding of 1; 0: pad right and bottom by one (the original DDPM TensorFlow code).
    public var downsamplePadding: Int = 1
    /// nil in config.json: one head over all channels.
    public var attentionHeadDim: Int? = 8
    public var normNumGroups: Int = 32
    /// Groups of the mid block's attention GroupNorm; nil means `normNumGroups`.
    public var attnNormNumGroups: Int? = nil
    public var normEps: Double = 1e-5
    /// Width of the time embedding MLP; nil means 4 · blockOutChannels[0].
    public var timeEmbeddingDim: Int? = nil
    public var addAttention: Bool = true
    /// Set for diffusers' `UNet2DConditionModel` (Stable Diffusion): the attention layers are
    /// `Transformer2DModel`s that also attend to a context (the text encoder's hidden states), the mid block
    /// always has one, and `CrossAttnDownBlock2D` / `CrossAttnUpBlock2D` are `.attnDown` / `.attnUp`.
    public var conditioning: Conditioning? = nil

    /// What a `UNet2DConditionModel`'s config adds to a `UNet2DModel`'s.
    public struct Conditioning: Equatable, Sendable {
        /// Width of the context (`cross_attention_dim`: 768 for SD 1.x, 1024 for SD 2.x).
        public var crossAttentionDim: Int
        /// Tokens of the context (the tokenizer's 77).
        public var contextTokens: Int = 77
        /// Heads of each down block's transformers (diffusers' `num_attention_heads`, which SD configs spell
        /// `attention_head_dim`); up block i uses entry levels − 1 − i, the mid block the last.
        public var headsPerBlock: [Int]
        /// proj_in / proj_out as `nn.Linear` (SD 2.x) rather than 1×1 `nn.Conv2d` (SD 1.x).
        public var useLinearProjection: Bool = false
        /// `BasicTransformerBlock`s per `Transformer2DModel`.
        public var transformerLayersPerBlock: Int = 1

        public init(crossAttentionDim: Int, headsPerBlock: [Int]) {
            self.crossAttentionDim = crossAttentionDim
            self.headsPerBlock = headsPerBlock
        }
    }

    public init() {}

    public var timeEmbedDim: Int { timeEmbeddingDim ?? blockOutChannels[0] * 4 }
    public var levels: Int { blockOutChannels.count }
    public var midAttentionGroups: Int { attnNormNumGroups ?? normNumGroups }

    /// Heads of an attention layer over `channels` channels.
    public func attentionHeads(channels: Int) -> Int {
        precondition(conditioning == nil, "a UNet2DConditionModel's heads are per block: attentionHeads(level:channels:)")
        guard let d = attentionHeadDim else { return 1 }
        return channels / d
    }

    /// Checks every value a UNet needs to be well formed; the message names the config.json field.
    public func validate() throws {
        let need = ConfigCheck.need, maxChannels = ConfigCheck.maxChannels
        try ConfigCheck.shape(sampleSize: sampleSize, inChannels: inChannels, outChannels: outChannels, blockOutChannels: blockOutChannels)
        try need(downBlockTypes.count == blockOutChannels.count, "down_block_types", "must have one entry per block_out_channels entry (\(blockOutChannels.count)), got \(downBlockTypes.count)")
        try need(upBlockTypes.count == blockOutChannels.count, "up_block_types", "must have one entry per block_out_channels entry (\(blockOutChannels.count)), got \(upBlockTypes.count)")
        try need((1 ... 16).contains(layersPerBlock), "layers_per_block", "must be in 1...16, got \(layersPerBlock)")
        try need(downsamplePadding == 0 || downsamplePadding == 1, "downsample_padding", "must be 0 or 1, got \(downsamplePadding)")
        try need(normNumGroups >= 1, "norm_num_groups", "must be positive, got \(normNumGroups)")
        try need(normEps > 0 && normEps < 1, "norm_eps", "must be in (0, 1), got \(normEps)")
        try need(midBlockScaleFactor.isFinite && midBlockScaleFactor > 0, "mid_block_scale_factor", "must be positive, got \(midBlockScaleFactor)")
        try need(freqShift >= 0 && freqShift < blockOutChannels[0] / 2, "freq_shift", "must be in 0..<\(blockOutChannels[0] / 2), got \(freqShift)")
        try need(blockOutChannels[0] >= 2, "block_out_channels", "first entry must be at least 2 for the sinusoidal time embedding")
        try need(timeEmbedDim >= 1 && timeEmbedDim <= 4 * maxChannels, "time_embedding_dim", "must be in 1...\(4 * maxChannels), got \(timeEmbedDim)")
        // The resolution halves once per level but the last: it must stay a whole number.
        let halvings = blockOutChannels.count - 1
        try need(sampleSize % (1 << halvings) == 0, "sample_size", "\(sampleSize) must be divisible by 2^\(halvings) for \(blockOutChannels.count) levels")
        // Every GroupNorm's channel count must divide into its groups.
        for c in blockOutChannels {
            try need(c % normNumGroups == 0, "norm_num_groups", "\(normNumGroups) does not divide block_out_channels entry \(c)")
        }
        if let g = attnNormNumGroups {
            try need(g >= 1 && blockOutChannels.last! % g == 0, "attn_norm_num_groups", "\(g) does not divide the mid block's \(blockOutChannels.last!) channels")
        }
        if let k = conditioning {
            try need((1 ... maxChannels).contains(k.crossAttentionDim), "cross_attention_dim", "must be in 1...\(maxChannels), got \(k.crossAttentionDim)")
            try need((1 ... 4096).contains(k.contextTokens), "max_position_embeddings", "the context must have 1...4096 tokens, got \(k.contextTokens)")
            try need((1 ... 16).contains(k.transformerLayersPerBlock), "transformer_layers_per_block", "must be in 1...16, got \(k.transformerLayersPerBlock)")
            try need(k.headsPerBlock.count == blockOutChannels.count, "attention_head_dim", "must have one entry per block_out_channels entry (\(blockOutChannels.count)), got \(k.headsPerBlock.count)")
            for (i, c) in blockOutChannels.enumerated() {
                let heads = k.headsPerBlock[i]
                try need(heads >= 1 && c % heads == 0, "attention_head_dim", "\(heads) heads do not divide block \(i)'s \(c) channels")
            }
        } else if let d = attentionHeadDim {
            try need(d >= 1, "attention_head_dim", "must be positive, got \(d)")
            for (i, c) in blockOutChannels.enumerated() where hasAttention(level: i) {
                try need(c % d == 0, "attention_head_dim", "\(d) does not divide \(c) channels of an attention layer")
            }
        }
        // Bounds on what one image costs, so that every size derived from the config (activations, the
        // arena, FLOP counts) stays far from Int overflow even at the largest batch, and an absurd config is
        // refused by name instead of failing an allocation. Each is orders of magnitude above real UNets.
        try ConfigCheck.activations(sampleSize: sampleSize, blockOutChannels: blockOutChannels)
        for i in blockOutChannels.indices {
            let side = sampleSize >> i
            if hasAttention(level: i) {
                let tokens = side * side
                try need(tokens * tokens <= Self.maxActivationFloats, "sample_size",
                         "\(sampleSize) puts attention over \(tokens) positions at level \(i): \(tokens)² scores per image, more than the limit of \(Self.maxActivationFloats)")
            }
        }
        let macs = multiplyAccumulateCount()
        try need(macs <= Double(Self.maxMultiplyAccumulates), "block_out_channels",
                 "and sample_size describe \(formatted(macs)) multiply-accumulates per image per step, more than the limit of \(formatted(Double(Self.maxMultiplyAccumulates)))")
    }

    /// Largest tensor per image, in values, a valid config may imply (2³² floats: 16 GiB).
    public static let maxActivationFloats = 1 << 32
    /// Largest compute per image per UNet evaluation a valid config may imply (2⁵⁰ ≈ 1.1e15; a 256×256
    /// DDPM needs about 1e11).
    public static let maxMultiplyAccumulates = 1 << 50

    /// Whether level `i` (resolution sampleSize / 2^i) holds an attention layer: in its down block, in the
    /// up block at the same resolution, or the mid block at the last level.
    func hasAttention(level i: Int) -> Bool {
        let n = blockOutChannels.count
        return downBlockTypes[i] == .attnDown || upBlockTypes[n - 1 - i] == .attnUp || ((addAttention || conditioning != nil) && i == n - 1)
    }

    /// Every parameter tensor of the model, by its diffusers name, with its shape, in the order diffusers'
    /// modules declare them: `UNet2DModelGraph`'s parameters, which the converter checks checkpoints against.
    public func parameterShapes() -> [(name: String, shape: [Int])] {
        UNet2DModelGraph.build(self, batch: 1).parameters.map { ($0.name, $0.shape) }
    }

    /// Multiply-accumulates of one UNet evaluation for one image (`Graph.multiplyAccumulateCount`).
    public func multiplyAccumulates() -> Int {
        Int(min(multiplyAccumulateCount(), Double(1 << 62)))
    }

    /// The same count in floating point, for the limit check in `validate()`.
    func multiplyAccumulateCount() -> Double {
        UNet2DModelGraph.build(self, batch: 1).multiplyAccumulateCount
    }
}
