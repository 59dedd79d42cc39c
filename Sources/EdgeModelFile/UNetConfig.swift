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

    public init() {}

    public var timeEmbedDim: Int { timeEmbeddingDim ?? blockOutChannels[0] * 4 }
    public var levels: Int { blockOutChannels.count }
    public var midAttentionGroups: Int { attnNormNumGroups ?? normNumGroups }

    /// Heads of an attention layer over `channels` channels.
    public func attentionHeads(channels: Int) -> Int {
        guard let d = attentionHeadDim else { return 1 }
        return channels / d
    }

    /// Checks every value a UNet needs to be well formed; the message names the config.json field.
    public func validate() throws {
        func need(_ ok: Bool, _ field: String, _ why: String) throws {
            if !ok { throw EdgeError("config.json: \(field) \(why)") }
        }
        let maxSide = 4096, maxChannels = 16384
        try need((1 ... maxSide).contains(sampleSize), "sample_size", "must be in 1...\(maxSide), got \(sampleSize)")
        try need((1 ... 64).contains(inChannels), "in_channels", "must be in 1...64, got \(inChannels)")
        try need((1 ... 64).contains(outChannels), "out_channels", "must be in 1...64, got \(outChannels)")
        try need(!blockOutChannels.isEmpty && blockOutChannels.count <= 12, "block_out_channels", "must have 1 to 12 entries, got \(blockOutChannels.count)")
        try need(blockOutChannels.allSatisfy { (1 ... maxChannels).contains($0) }, "block_out_channels", "entries must be in 1...\(maxChannels)")
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
        if let d = attentionHeadDim {
            try need(d >= 1, "attention_head_dim", "must be positive, got \(d)")
            for (i, c) in blockOutChannels.enumerated() where hasAttention(level: i) {
                try need(c % d == 0, "attention_head_dim", "\(d) does not divide \(c) channels of an attention layer")
            }
        }
        // Bounds on what one image costs, so that every size derived from the config (activations, the
        // arena, FLOP counts) stays far from Int overflow even at the largest batch, and an absurd config is
        // refused by name instead of failing an allocation. Each is orders of magnitude above real UNets.
        for (i, c) in blockOutChannels.enumerated() {
            let side = sampleSize >> i
            try need(side * side * c <= Self.maxActivationFloats, "sample_size",
                     "\(sampleSize) with \(c) channels at level \(i) makes activations of \(side * side * c) values per image, more than the limit of \(Self.maxActivationFloats)")
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
        return downBlockTypes[i] == .attnDown || upBlockTypes[n - 1 - i] == .attnUp || (addAttention && i == n - 1)
    }

    /// Every parameter tensor of the model, by its diffusers name, with its shape: the single source of
    /// truth that the converter checks checkpoints against and the UNet builder looks weights up in.
    public func parameterShapes() -> [(name: String, shape: [Int])] {
        var out: [(String, [Int])] = []
        func conv(_ p: String, _ o: Int, _ i: Int, _ k: Int) { out.append(("\(p).weight", [o, i, k, k])); out.append(("\(p).bias", [o])) }
        func linear(_ p: String, _ o: Int, _ i: Int) { out.append(("\(p).weight", [o, i])); out.append(("\(p).bias", [o])) }
        func norm(_ p: String, _ c: Int) { out.append(("\(p).weight", [c])); out.append(("\(p).bias", [c])) }
        func resnet(_ p: String, _ i: Int, _ o: Int) {
            norm("\(p).norm1", i); conv("\(p).conv1", o, i, 3)
            linear("\(p).time_emb_proj", o, timeEmbedDim)
            norm("\(p).norm2", o); conv("\(p).conv2", o, o, 3)
            if i != o { conv("\(p).conv_shortcut", o, i, 1) }
        }
        func attention(_ p: String, _ c: Int) {
            norm("\(p).group_norm", c)
            linear("\(p).to_q", c, c); linear("\(p).to_k", c, c); linear("\(p).to_v", c, c); linear("\(p).to_out.0", c, c)
        }
        let ch = blockOutChannels
        linear("time_embedding.linear_1", timeEmbedDim, ch[0])
        linear("time_embedding.linear_2", timeEmbedDim, timeEmbedDim)
        conv("conv_in", ch[0], inChannels, 3)
        var output = ch[0]
        for (i, type) in downBlockTypes.enumerated() {
            let input = output
            output = ch[i]
            for j in 0 ..< layersPerBlock {
                resnet("down_blocks.\(i).resnets.\(j)", j == 0 ? input : output, output)
                if type == .attnDown { attention("down_blocks.\(i).attentions.\(j)", output) }
            }
            if i != ch.count - 1 { conv("down_blocks.\(i).downsamplers.0.conv", output, output, 3) }
        }
        let mid = ch.last!
        resnet("mid_block.resnets.0", mid, mid)
        if addAttention { attention("mid_block.attentions.0", mid) }
        resnet("mid_block.resnets.1", mid, mid)
        let reversed = Array(ch.reversed())
        output = reversed[0]
        for (i, type) in upBlockTypes.enumerated() {
            let previous = output
            output = reversed[i]
            let input = reversed[min(i + 1, ch.count - 1)]
            for j in 0 ... layersPerBlock {
                let skip = j == layersPerBlock ? input : output
                let resnetIn = (j == 0 ? previous : output) + skip
                resnet("up_blocks.\(i).resnets.\(j)", resnetIn, output)
                if type == .attnUp { attention("up_blocks.\(i).attentions.\(j)", output) }
            }
            if i != ch.count - 1 { conv("up_blocks.\(i).upsamplers.0.conv", output, output, 3) }
        }
        norm("conv_norm_out", ch[0])
        conv("conv_out", outChannels, ch[0], 3)
        return out
    }

    /// Multiply-accumulates of one UNet evaluation for one image, counted over convolutions, linear layers
    /// and attention matmuls (norms and element-wise work excluded). FLOPs = 2 · MACs.
    public func multiplyAccumulates() -> Int {
        Int(min(multiplyAccumulateCount(), Double(1 << 62)))
    }

    /// The same count in floating point: counted in Int, a hostile config (accepted before validation)
    /// could overflow a product and trap.
    func multiplyAccumulateCount() -> Double {
        var macs = 0.0
        var side = sampleSize
        let ch = blockOutChannels
        func conv(_ o: Int, _ i: Int, _ k: Int, _ s: Int) { macs += Double(o) * Double(i) * Double(k * k) * Double(s) * Double(s) }
        func resnet(_ i: Int, _ o: Int, _ s: Int) {
            conv(o, i, 3, s); conv(o, o, 3, s); macs += Double(o) * Double(timeEmbedDim)
            if i != o { conv(o, i, 1, s) }
        }
        func attention(_ c: Int, _ s: Int) { let p = Double(s) * Double(s), c = Double(c); macs += 4 * p * c * c + 2 * p * p * c }
        macs += Double(timeEmbedDim) * Double(ch[0]) + Double(timeEmbedDim) * Double(timeEmbedDim)
        conv(ch[0], inChannels, 3, side)
        var output = ch[0]
        for i in 0 ..< ch.count {
            let input = output
            output = ch[i]
            for j in 0 ..< layersPerBlock {
                resnet(j == 0 ? input : output, output, side)
                if downBlockTypes[i] == .attnDown { attention(output, side) }
            }
            if i != ch.count - 1 { side /= 2; conv(output, output, 3, side) }
        }
        resnet(ch.last!, ch.last!, side); if addAttention { attention(ch.last!, side) }; resnet(ch.last!, ch.last!, side)
        let reversed = Array(ch.reversed())
        output = reversed[0]
        for i in 0 ..< ch.count {
            let previous = output
            output = reversed[i]
            let input = reversed[min(i + 1, ch.count - 1)]
            for j in 0 ... layersPerBlock {
                let skip = j == layersPerBlock ? input : output
                resnet((j == 0 ? previous : output) + skip, output, side)
                if upBlockTypes[i] == .attnUp { attention(output, side) }
            }
            if i != ch.count - 1 { side *= 2; conv(output, output, 3, side) }
        }
        conv(outChannels, ch[0], 3, side)
        return macs
    }
}
