import _EdgeCore
import EdgeGraph

extension DiffusersConfig {
    /// Fields diffusers writes that do not change inference.
    static let ignoredAutoencoderFields: Set<String> = ["_diffusers_version", "_name_or_path", "lookup_from_codebook"]

    public struct AutoencoderResult {
        public var config: AutoencoderConfig
        /// Fields present in config.json that this reader does not know (diffusers may add new ones).
        public var unknownFields: [String]
        /// Whether config.json sets scaling_factor (else `config` holds diffusers' default).
        public var scalingFactorGiven: Bool
    }

    /// Reads a `VQModel` or `AutoencoderKL` config.json (which one from `_class_name`). Missing fields take
    /// diffusers' defaults — including `scaling_factor` 0.18215 for both, which is wrong for
    /// CompVis/ldm-celebahq-256 (its vqvae config predates the field; see `convert --scaling-factor`).
    /// Features edge-ddim does not run are refused by field name.
    public static func autoencoder(_ json: JSONValue, file: String = "config.json") throws -> AutoencoderResult {
        guard case .object(let members) = json else { throw EdgeError("\(file): not a JSON object") }
        var f = Fields(members: members, file: file)
        guard let name = try f.optionalString("_class_name") else {
            throw EdgeError("\(file): _class_name is missing; it must say VQModel or AutoencoderKL")
        }
        guard let kind = AutoencoderConfig.Kind(rawValue: name) else {
            throw EdgeError("\(file): _class_name is \(name); only VQModel and AutoencoderKL autoencoders are supported")
        }
        var c = AutoencoderConfig(kind: kind)
        c.sampleSize = try f.squareSampleSize()
        c.inChannels = try f.int("in_channels") ?? c.inChannels
        c.outChannels = try f.int("out_channels") ?? c.outChannels
        if let channels = try f.ints("block_out_channels") { c.blockOutChannels = channels }
        for (field, only) in [("down_block_types", "DownEncoderBlock2D"), ("up_block_types", "UpDecoderBlock2D")] {
            // diffusers' default is one block, whatever block_out_channels says.
            let types = try f.strings(field) ?? [only]
            if let other = types.first(where: { $0 != only }) {
                throw EdgeError("\(file): \(field) entry \(other) is not supported (only \(only))")
            }
            guard types.count == c.blockOutChannels.count else {
                throw EdgeError("\(file): \(field) must have one entry per block_out_channels entry (\(c.blockOutChannels.count)), got \(types.count)")
            }
        }
        c.layersPerBlock = try f.int("layers_per_block") ?? c.layersPerBlock
        try f.require("act_fn", oneOf: ["silu", "swish"], default: "silu", why: "only the silu activation is supported")
        c.latentChannels = try f.int("latent_channels") ?? c.latentChannels
        c.normNumGroups = try f.int("norm_num_groups") ?? c.normNumGroups
        let scaling = try f.double("scaling_factor")
        c.scalingFactor = scaling ?? c.scalingFactor
        c.midBlockAddAttention = try f.bool("mid_block_add_attention") ?? c.midBlockAddAttention
        c.forceUpcast = try f.bool("force_upcast") ?? c.forceUpcast
        switch kind {
        case .vq:
            c.numVQEmbeddings = try f.int("num_vq_embeddings") ?? c.numVQEmbeddings
            if case .some(let v) = try f.optionalInt("vq_embed_dim") { c.vqEmbedDim = v }
            try f.require("norm_type", oneOf: ["group"], default: "group", why: "only \"group\" is supported (spatial norm, as in MoVQ, is not)")
        case .kl:
            c.shiftFactor = try f.doubleOrNull("shift_factor")
            for field in ["latents_mean", "latents_std"] {
                if let v = f.take(field), v != .null { throw EdgeError("\(file): \(field) is set; per-channel latent statistics are not supported") }
            }
            c.useQuantConv = try f.bool("use_quant_conv") ?? c.useQuantConv
            c.usePostQuantConv = try f.bool("use_post_quant_conv") ?? c.usePostQuantConv
        }
        for field in ignoredAutoencoderFields { _ = f.take(field) }
        try c.validate()
        return AutoencoderResult(config: c, unknownFields: f.remainingKeys, scalingFactorGiven: scaling != nil)
    }
}

extension DiffusersConfig {
    /// A pipeline folder's model_index.json: the pipeline class and its components' classes
    /// (`"unet": ["diffusers", "UNet2DModel"]`; a null entry, an optional component left out, is skipped).
    public static func pipelineIndex(_ json: JSONValue, file: String = "model_index.json") throws -> (pipeline: String, components: [String: String]) {
        guard case .object(let members) = json else { throw EdgeError("\(file): not a JSON object") }
        guard let pipeline = json["_class_name"]?.stringValue else { throw EdgeError("\(file): _class_name is missing or not a string; it names the diffusers pipeline") }
        var components: [String: String] = [:]
        for (key, value) in members where !key.hasPrefix("_") {
            switch value {
            // save_pretrained writes [null, null] for a component set to None (a pipeline without its safety checker).
            case .null, .array([.null, .null]): continue
            // A pipeline's own settings beside its components (StableDiffusionPipeline's requires_safety_checker).
            case .bool, .int, .double: continue
            case .array(let pair) where pair.count == 2 && pair[1].stringValue != nil:
                guard components[key] == nil else { throw EdgeError("\(file): component \(key) appears twice") }
                components[key] = pair[1].stringValue
            default: throw EdgeError("\(file): component \(key) must be [library, class] or null")
            }
        }
        return (pipeline, components)
    }
}

extension Fields {
    /// Absent or null → nil; else a finite number.
    mutating func doubleOrNull(_ key: String) throws -> Double? {
        if case .null? = members.last(where: { $0.0 == key })?.1 {
            _ = take(key)
            return nil
        }
        return try double(key)
    }
}
