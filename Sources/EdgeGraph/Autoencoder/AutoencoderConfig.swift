import _EdgeCore

/// The subset of diffusers' `VQModel` and `AutoencoderKL` configuration that edge-ddim runs, with diffusers'
/// defaults. Both wrap the same `Encoder` and `Decoder` modules (`models/autoencoders/vae.py`); they differ in
/// what sits between them: a vector quantiser (VQ) or a diagonal Gaussian (KL, `double_z`).
public struct AutoencoderConfig: Equatable, Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case vq = "VQModel"
        case kl = "AutoencoderKL"
    }

    public var kind: Kind
    public var inChannels: Int = 3
    public var outChannels: Int = 3
    /// One `DownEncoderBlock2D` / `UpDecoderBlock2D` per entry (the only block types either model uses).
    public var blockOutChannels: [Int] = [64]
    public var layersPerBlock: Int = 1
    public var latentChannels: Int
    /// Image side; latents are sampleSize / 2^(levels − 1).
    public var sampleSize: Int = 32
    public var normNumGroups: Int = 32
    public var midBlockAddAttention: Bool = true
    /// Latents are divided by this before decoding (LDM, Stable Diffusion: z = (latent − shift) · scale).
    public var scalingFactor: Double = 0.18215
    /// AutoencoderKL only (SD 3, Flux); nil: no shift.
    public var shiftFactor: Double? = nil
    /// diffusers runs the autoencoder in fp32 even in fp16 pipelines; edge-ddim always runs fp32, recorded for info.
    public var forceUpcast: Bool
    /// VQModel: codebook size and entry width (nil: latentChannels).
    public var numVQEmbeddings: Int = 256
    public var vqEmbedDim: Int? = nil
    /// AutoencoderKL: whether quant_conv / post_quant_conv exist (diffusers' `use_quant_conv`, `use_post_quant_conv`).
    public var useQuantConv: Bool = true
    public var usePostQuantConv: Bool = true

    public init(kind: Kind) {
        self.kind = kind
        latentChannels = kind == .vq ? 3 : 4
        forceUpcast = kind == .kl
    }

    public var levels: Int { blockOutChannels.count }
    /// Image side ÷ latent side: the encoder halves the resolution at every level but the last.
    public var downsampling: Int { 1 << (levels - 1) }
    public var latentSide: Int { sampleSize / downsampling }
    /// Channels of the codebook entries (VQ) or of the quantised latents: what post_quant_conv reads.
    public var embedDim: Int { kind == .vq ? (vqEmbedDim ?? latentChannels) : latentChannels }

    /// Checks every value the graphs need; the message names the config.json field.
    public func validate() throws {
        let need = ConfigCheck.need
        try ConfigCheck.shape(sampleSize: sampleSize, inChannels: inChannels, outChannels: outChannels, blockOutChannels: blockOutChannels)
        try need((1 ... 64).contains(latentChannels), "latent_channels", "must be in 1...64, got \(latentChannels)")
        try need((1 ... 16).contains(layersPerBlock), "layers_per_block", "must be in 1...16, got \(layersPerBlock)")
        try need(normNumGroups >= 1, "norm_num_groups", "must be positive, got \(normNumGroups)")
        for c in blockOutChannels {
            try need(c % normNumGroups == 0, "norm_num_groups", "\(normNumGroups) does not divide block_out_channels entry \(c)")
        }
        try need(sampleSize % (1 << (levels - 1)) == 0, "sample_size", "\(sampleSize) must be divisible by 2^\(levels - 1) for \(levels) levels")
        try need(scalingFactor.isFinite && scalingFactor > 0, "scaling_factor", "must be positive, got \(scalingFactor)")
        if let s = shiftFactor { try need(s.isFinite, "shift_factor", "must be finite, got \(s)") }
        if kind == .vq {
            try need((1 ... 1 << 20).contains(numVQEmbeddings), "num_vq_embeddings", "must be in 1...\(1 << 20), got \(numVQEmbeddings)")
            try need((1 ... 64).contains(embedDim), "vq_embed_dim", "must be in 1...64, got \(embedDim)")
        }
        // As for the UNet: every tensor of one image, and the mid block's attention scores, far from Int overflow.
        try ConfigCheck.activations(sampleSize: sampleSize, blockOutChannels: blockOutChannels)
        if midBlockAddAttention {
            let tokens = latentSide * latentSide
            try need(tokens * tokens <= UNetConfig.maxActivationFloats, "sample_size",
                     "\(sampleSize) puts the mid block's attention over \(tokens) positions: \(tokens)² scores per image, more than the limit of \(UNetConfig.maxActivationFloats)")
        }
    }
}
