import _EdgeCore
import EdgeGraph

extension DiffusersConfig {
    /// Fields a UNet2DConditionModel config.json may carry that must keep diffusers' default (null, false or
    /// the value given), refused by name otherwise: SDXL's and other pipelines' additions edge-ddim does not run.
    static let conditionalUNetFixedFields: [(field: String, allowed: JSONValue, why: String)] = [
        ("only_cross_attention", .bool(false), "cross-attention-only transformer blocks are not supported"),
        ("dual_cross_attention", .bool(false), "dual cross-attention is not supported"),
        ("class_embed_type", .null, "class embeddings are not supported"),
        ("num_class_embeds", .null, "class embeddings are not supported"),
        ("addition_embed_type", .null, "added embeddings (SDXL's text_time) are not supported"),
        ("addition_time_embed_dim", .null, "added time embeddings (SDXL) are not supported"),
        ("projection_class_embeddings_input_dim", .null, "class-embedding projections (SDXL) are not supported"),
        ("encoder_hid_dim", .null, "an encoder_hid_proj is not supported"),
        ("encoder_hid_dim_type", .null, "an encoder_hid_proj is not supported"),
        ("time_cond_proj_dim", .null, "a timestep condition (LCM) is not supported"),
        ("time_embedding_act_fn", .null, "an activation after the time embedding is not supported"),
        ("timestep_post_act", .null, "an activation after the time embedding is not supported"),
        ("cross_attention_norm", .null, "a norm on the cross-attention context is not supported"),
        ("resnet_skip_time_act", .bool(false), "resnet_skip_time_act is not supported"),
        ("class_embeddings_concat", .bool(false), "class embeddings are not supported"),
        ("mid_block_only_cross_attention", .null, "cross-attention-only mid blocks are not supported"),
        ("reverse_transformer_layers_per_block", .null, "per-block transformer depths are not supported"),
        ("conv_in_kernel", .int(3), "only a 3×3 conv_in is supported"),
        ("conv_out_kernel", .int(3), "only a 3×3 conv_out is supported"),
        ("resnet_out_scale_factor", .int(1), "only resnet_out_scale_factor 1 is supported"),
    ]

    /// Fields that do not change inference here: edge-ddim computes attention in fp32 whatever
    /// `upcast_attention` says (it asks fp16 runtimes to upcast), and `dropout` is training-only.
    static let ignoredConditionalUNetFields: Set<String> = [
        "_class_name", "_diffusers_version", "_name_or_path", "dropout", "upcast_attention", "num_train_timesteps",
        "addition_embed_type_num_heads",   // read only with an addition_embed_type, which must be null
    ]

    /// Reads a diffusers `UNet2DConditionModel` config.json (Stable Diffusion 1.x, 2.x, SD-Turbo) into a
    /// `UNetConfig` with `conditioning`. Missing fields take diffusers' defaults; features edge-ddim does not
    /// run are refused by field name.
    public static func conditionalUNet(_ json: JSONValue, file: String = "config.json") throws -> Result {
        guard case .object(let members) = json else { throw EdgeError("\(file): not a JSON object") }
        var f = Fields(members: members, file: file)
        if let name = try f.optionalString("_class_name"), name != "UNet2DConditionModel" {
            throw EdgeError("\(file): _class_name is \(name); expected UNet2DConditionModel")
        }
        var c = UNetConfig()
        c.sampleSize = try f.squareSampleSize()
        c.inChannels = try f.int("in_channels") ?? 4
        c.outChannels = try f.int("out_channels") ?? 4
        c.centerInputSample = try f.bool("center_input_sample") ?? false
        c.flipSinToCos = try f.bool("flip_sin_to_cos") ?? true
        c.freqShift = try f.int("freq_shift") ?? 0
        try f.require("time_embedding_type", oneOf: ["positional"], default: "positional", why: "only the positional (sinusoidal) time embedding is supported")
        if case .some(let v) = try f.optionalInt("time_embedding_dim") { c.timeEmbeddingDim = v }
        c.blockOutChannels = try f.ints("block_out_channels") ?? [320, 640, 1280, 1280]
        let down = try f.strings("down_block_types") ?? ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
        c.downBlockTypes = try down.map {
            switch $0 {
            case "CrossAttnDownBlock2D": .attnDown
            case "DownBlock2D": .down
            default: throw EdgeError("\(file): down_block_types entry \($0) is not supported (CrossAttnDownBlock2D or DownBlock2D)")
            }
        }
        let up = try f.strings("up_block_types") ?? ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
        c.upBlockTypes = try up.map {
            switch $0 {
            case "CrossAttnUpBlock2D": .attnUp
            case "UpBlock2D": .up
            default: throw EdgeError("\(file): up_block_types entry \($0) is not supported (CrossAttnUpBlock2D or UpBlock2D)")
            }
        }
        try f.require("mid_block_type", oneOf: ["UNetMidBlock2DCrossAttn"], default: "UNetMidBlock2DCrossAttn",
                      why: "only UNetMidBlock2DCrossAttn is supported")
        c.layersPerBlock = try f.int("layers_per_block") ?? 2
        c.downsamplePadding = try f.int("downsample_padding") ?? 1
        c.midBlockScaleFactor = try f.double("mid_block_scale_factor") ?? 1
        try f.require("act_fn", oneOf: ["silu", "swish"], default: "silu", why: "only the silu activation is supported")
        c.normNumGroups = try f.int("norm_num_groups") ?? 32
        c.normEps = try f.double("norm_eps") ?? 1e-5
        try f.require("resnet_time_scale_shift", oneOf: ["default"], default: "default", why: "only \"default\" is supported (scale_shift is not)")
        try f.require("attention_type", oneOf: ["default"], default: "default", why: "only \"default\" attention is supported (gated is not)")
        let crossAttentionDim = try f.int("cross_attention_dim") ?? 1280
        // diffusers: `num_attention_heads = num_attention_heads or attention_head_dim` (SD configs name the head
        // count attention_head_dim); an integer applies to every block.
        let levels = c.blockOutChannels.count
        func headList(_ key: String) throws -> [Int]?? {
            switch f.take(key) {
            case nil: return nil
            case .null?: return .some(nil)
            case .int(let v)?: return .some([Int](repeating: try f.checkedInt(key, v), count: levels))
            case .array(let a)?:
                return .some(try a.map {
                    guard case .int(let v) = $0 else { throw EdgeError("\(file): \(key) must be an integer or a list of integers") }
                    return try f.checkedInt(key, v)
                })
            case let v?: throw EdgeError("\(file): \(key) must be an integer or a list of integers, got \(f.describe(v))")
            }
        }
        let explicitHeads = try headList("num_attention_heads")
        let headDim = try headList("attention_head_dim")
        let heads = (explicitHeads ?? nil) ?? (headDim ?? nil) ?? [Int](repeating: 8, count: levels)
        var k = UNetConfig.Conditioning(crossAttentionDim: crossAttentionDim, headsPerBlock: heads)
        k.useLinearProjection = try f.bool("use_linear_projection") ?? false
        switch f.take("transformer_layers_per_block") {
        case nil: break
        case .int(let v)?: k.transformerLayersPerBlock = try f.checkedInt("transformer_layers_per_block", v)
        case let v?: throw EdgeError("\(file): transformer_layers_per_block must be one integer for every block, got \(f.describe(v))")
        }
        c.conditioning = k
        c.attentionHeadDim = nil
        for (field, allowed, why) in conditionalUNetFixedFields {
            guard let v = f.take(field) else { continue }
            let same = v == allowed || (allowed == .int(1) && v == .double(1))
            if !same { throw EdgeError("\(file): \(field) is \(f.describe(v)); \(why)") }
        }
        for field in ignoredConditionalUNetFields { _ = f.take(field) }
        try c.validate()
        return Result(config: c, unknownFields: f.remainingKeys)
    }
}
