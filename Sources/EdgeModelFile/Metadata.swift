import _EdgeCore
import EdgeGraph

/// One value of the model file's metadata section. The tags are the bytes written before each value;
/// `docs/FORMAT.md` lists them.
public enum MetadataValue: Equatable, Sendable {
    case int(Int64)          // tag 1: i64
    case double(Double)      // tag 2: f64
    case bool(Bool)          // tag 3: u8 0 or 1
    case string(String)      // tag 4: u32 length + UTF-8
    case ints([Int64])       // tag 5: u32 count + count × i64
    case doubles([Double])   // tag 6: u32 count + count × f64
    case strings([String])   // tag 7: u32 count + count × (u32 length + UTF-8)
    case null                // tag 8: no payload (an optional config field that is unset)
    case bytes([UInt8])      // tag 9: u32 count + count bytes (an embedded blob: the tokenizer's compact form)

    var tag: UInt8 {
        switch self {
        case .int: 1
        case .double: 2
        case .bool: 3
        case .string: 4
        case .ints: 5
        case .doubles: 6
        case .strings: 7
        case .null: 8
        case .bytes: 9
        }
    }
}

/// Ordered key → value pairs, as stored.
public struct Metadata: Equatable, Sendable {
    public private(set) var entries: [(key: String, value: MetadataValue)] = []

    public init() {}

    public static func == (a: Metadata, b: Metadata) -> Bool {
        a.entries.count == b.entries.count && zip(a.entries, b.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    public mutating func set(_ key: String, _ value: MetadataValue) {
        if let i = entries.firstIndex(where: { $0.key == key }) { entries[i].value = value } else { entries.append((key, value)) }
    }

    public subscript(key: String) -> MetadataValue? { entries.first { $0.key == key }?.value }

    func encode(into w: inout ByteWriter) {
        w.u32(UInt32(entries.count))
        for (key, value) in entries {
            let k = Array(key.utf8)
            w.u16(UInt16(k.count)); w.raw(k)
            w.u8(value.tag)
            func string(_ s: String) { let b = Array(s.utf8); w.u32(UInt32(b.count)); w.raw(b) }
            switch value {
            case .int(let v): w.u64(UInt64(bitPattern: v))
            case .double(let v): w.f64(v)
            case .bool(let v): w.u8(v ? 1 : 0)
            case .string(let s): string(s)
            case .ints(let a): w.u32(UInt32(a.count)); a.forEach { w.u64(UInt64(bitPattern: $0)) }
            case .doubles(let a): w.u32(UInt32(a.count)); a.forEach { w.f64($0) }
            case .strings(let a): w.u32(UInt32(a.count)); a.forEach(string)
            case .null: break
            case .bytes(let b): w.u32(UInt32(b.count)); w.raw(b)
            }
        }
    }

    static func decode(_ r: inout ByteReader) throws -> Metadata {
        var m = Metadata()
        let count = Int(try r.u32("metadata count"))
        // Each entry takes at least 3 bytes, so a count larger than that is corrupt, not a reason to loop.
        guard count <= r.remaining / 3 else { throw EdgeError("\(r.context): metadata count \(count) exceeds the section") }
        for _ in 0 ..< count {
            let keyLength = Int(try r.u16("metadata key length"))
            let key = try r.utf8(keyLength, "metadata key")
            let tag = try r.u8("type of \(key)")
            func string() throws -> String { try r.utf8(Int(try r.u32("length of \(key)")), key) }
            func arrayCount(_ elementBytes: Int) throws -> Int {
                let n = Int(try r.u32("count of \(key)"))
                guard n <= r.remaining / elementBytes else { throw EdgeError("\(r.context): \(key) claims \(n) elements past the end of the section") }
                return n
            }
            let value: MetadataValue
            switch tag {
            case 1: value = .int(Int64(bitPattern: try r.u64(key)))
            case 2: value = .double(try r.f64(key))
            case 3:
                let b = try r.u8(key)
                guard b <= 1 else { throw EdgeError("\(r.context): \(key) is a bool stored as \(b)") }
                value = .bool(b == 1)
            case 4: value = .string(try string())
            case 5: value = .ints(try (0 ..< arrayCount(8)).map { _ in Int64(bitPattern: try r.u64(key)) })
            case 6: value = .doubles(try (0 ..< arrayCount(8)).map { _ in try r.f64(key) })
            case 7: value = .strings(try (0 ..< arrayCount(4)).map { _ in try string() })
            case 8: value = .null
            case 9: value = .bytes(Array(try r.bytes(try arrayCount(1), key)))
            default: throw EdgeError("\(r.context): metadata \(key) has unknown type tag \(tag)")
            }
            m.entries.append((key, value))
        }
        return m
    }
}

/// Typed look-ups that name the key when it is missing or of the wrong type.
extension Metadata {
    func int(_ key: String) throws -> Int {
        guard case .int(let v)? = self[key], let i = Int(exactly: v) else { throw EdgeError("model file: metadata \(key) is missing or not an integer") }
        return i
    }
    func optionalInt(_ key: String) throws -> Int? {
        if case .null? = self[key] { return nil }
        return try int(key)
    }
    func double(_ key: String) throws -> Double {
        guard case .double(let v)? = self[key] else { throw EdgeError("model file: metadata \(key) is missing or not a number") }
        return v
    }
    func bool(_ key: String) throws -> Bool {
        guard case .bool(let v)? = self[key] else { throw EdgeError("model file: metadata \(key) is missing or not a bool") }
        return v
    }
    func string(_ key: String) throws -> String {
        guard case .string(let v)? = self[key] else { throw EdgeError("model file: metadata \(key) is missing or not a string") }
        return v
    }
    func ints(_ key: String) throws -> [Int] {
        guard case .ints(let v)? = self[key] else { throw EdgeError("model file: metadata \(key) is missing or not a list of integers") }
        return try v.map { guard let i = Int(exactly: $0) else { throw EdgeError("model file: metadata \(key) is out of range") }; return i }
    }
    func bytes(_ key: String) throws -> [UInt8] {
        guard case .bytes(let v)? = self[key] else { throw EdgeError("model file: metadata \(key) is missing or not a byte string") }
        return v
    }
    func strings(_ key: String) throws -> [String] {
        guard case .strings(let v)? = self[key] else { throw EdgeError("model file: metadata \(key) is missing or not a list of strings") }
        return v
    }
    func enumValue<E: RawRepresentable>(_ key: String, _: E.Type) throws -> E where E.RawValue == String {
        let s = try string(key)
        guard let e = E(rawValue: s) else { throw EdgeError("model file: metadata \(key) has unknown value \"\(s)\"") }
        return e
    }
}

/// The configs as metadata: keys are diffusers' own config.json / scheduler_config.json field names,
/// prefixed `unet.` and `scheduler.`.
extension Metadata {
    public mutating func setUNet(_ c: UNetConfig) {
        set("unet.sample_size", .int(Int64(c.sampleSize)))
        set("unet.in_channels", .int(Int64(c.inChannels)))
        set("unet.out_channels", .int(Int64(c.outChannels)))
        set("unet.center_input_sample", .bool(c.centerInputSample))
        set("unet.flip_sin_to_cos", .bool(c.flipSinToCos))
        set("unet.freq_shift", .int(Int64(c.freqShift)))
        set("unet.down_block_types", .strings(c.downBlockTypes.map(\.rawValue)))
        set("unet.up_block_types", .strings(c.upBlockTypes.map(\.rawValue)))
        set("unet.block_out_channels", .ints(c.blockOutChannels.map(Int64.init)))
        set("unet.layers_per_block", .int(Int64(c.layersPerBlock)))
        set("unet.mid_block_scale_factor", .double(c.midBlockScaleFactor))
        set("unet.downsample_padding", .int(Int64(c.downsamplePadding)))
        set("unet.attention_head_dim", c.attentionHeadDim.map { .int(Int64($0)) } ?? .null)
        set("unet.norm_num_groups", .int(Int64(c.normNumGroups)))
        set("unet.attn_norm_num_groups", c.attnNormNumGroups.map { .int(Int64($0)) } ?? .null)
        set("unet.norm_eps", .double(c.normEps))
        set("unet.time_embedding_dim", c.timeEmbeddingDim.map { .int(Int64($0)) } ?? .null)
        set("unet.add_attention", .bool(c.addAttention))
        if let k = c.conditioning {
            set("unet._class_name", .string("UNet2DConditionModel"))
            set("unet.cross_attention_dim", .int(Int64(k.crossAttentionDim)))
            set("unet.num_attention_heads", .ints(k.headsPerBlock.map(Int64.init)))
            set("unet.use_linear_projection", .bool(k.useLinearProjection))
            set("unet.transformer_layers_per_block", .int(Int64(k.transformerLayersPerBlock)))
        }
    }

    public func unet() throws -> UNetConfig {
        var c = UNetConfig()
        c.sampleSize = try int("unet.sample_size")
        c.inChannels = try int("unet.in_channels")
        c.outChannels = try int("unet.out_channels")
        c.centerInputSample = try bool("unet.center_input_sample")
        c.flipSinToCos = try bool("unet.flip_sin_to_cos")
        c.freqShift = try int("unet.freq_shift")
        c.downBlockTypes = try strings("unet.down_block_types").map {
            guard let t = UNetConfig.DownBlock(rawValue: $0) else { throw EdgeError("model file: unknown down block type \($0)") }
            return t
        }
        c.upBlockTypes = try strings("unet.up_block_types").map {
            guard let t = UNetConfig.UpBlock(rawValue: $0) else { throw EdgeError("model file: unknown up block type \($0)") }
            return t
        }
        c.blockOutChannels = try ints("unet.block_out_channels")
        c.layersPerBlock = try int("unet.layers_per_block")
        c.midBlockScaleFactor = try double("unet.mid_block_scale_factor")
        c.downsamplePadding = try int("unet.downsample_padding")
        c.attentionHeadDim = try optionalInt("unet.attention_head_dim")
        c.normNumGroups = try int("unet.norm_num_groups")
        c.attnNormNumGroups = try optionalInt("unet.attn_norm_num_groups")
        c.normEps = try double("unet.norm_eps")
        c.timeEmbeddingDim = try optionalInt("unet.time_embedding_dim")
        c.addAttention = try bool("unet.add_attention")
        if self["unet._class_name"] != nil {
            let name = try string("unet._class_name")
            guard name == "UNet2DConditionModel" else { throw EdgeError("model file: metadata unet._class_name is \(name); expected UNet2DConditionModel") }
            var k = UNetConfig.Conditioning(crossAttentionDim: try int("unet.cross_attention_dim"), headsPerBlock: try ints("unet.num_attention_heads"))
            k.useLinearProjection = try bool("unet.use_linear_projection")
            k.transformerLayersPerBlock = try int("unet.transformer_layers_per_block")
            c.conditioning = k
        }
        return c
    }

    public mutating func setSchedule(_ s: NoiseScheduleConfig) {
        set("scheduler.num_train_timesteps", .int(Int64(s.numTrainTimesteps)))
        set("scheduler.beta_schedule", .string(s.betaSchedule.rawValue))
        set("scheduler.beta_start", .double(s.betaStart))
        set("scheduler.beta_end", .double(s.betaEnd))
        set("scheduler.trained_betas", s.trainedBetas.map { .doubles($0) } ?? .null)
        set("scheduler.clip_sample", .bool(s.clipSample))
        set("scheduler.clip_sample_range", .double(s.clipSampleRange))
        set("scheduler.prediction_type", .string(s.predictionType.rawValue))
        set("scheduler.steps_offset", .int(Int64(s.stepsOffset)))
        set("scheduler.set_alpha_to_one", .bool(s.setAlphaToOne))
        set("scheduler.timestep_spacing", .string(s.timestepSpacing.rawValue))
        if let given = s.givenFields { set("scheduler.fields_given", .strings(given.sorted())) }
    }

    public func schedule() throws -> NoiseScheduleConfig {
        var s = NoiseScheduleConfig()
        s.numTrainTimesteps = try int("scheduler.num_train_timesteps")
        s.betaSchedule = try enumValue("scheduler.beta_schedule", NoiseScheduleConfig.BetaSchedule.self)
        s.betaStart = try double("scheduler.beta_start")
        s.betaEnd = try double("scheduler.beta_end")
        switch self["scheduler.trained_betas"] {
        case .null?: s.trainedBetas = nil
        case .doubles(let b)?: s.trainedBetas = b
        default: throw EdgeError("model file: metadata scheduler.trained_betas is missing or not a list of numbers")
        }
        s.clipSample = try bool("scheduler.clip_sample")
        s.clipSampleRange = try double("scheduler.clip_sample_range")
        s.predictionType = try enumValue("scheduler.prediction_type", NoiseScheduleConfig.PredictionType.self)
        s.stepsOffset = try int("scheduler.steps_offset")
        s.setAlphaToOne = try bool("scheduler.set_alpha_to_one")
        s.timestepSpacing = try enumValue("scheduler.timestep_spacing", NoiseScheduleConfig.TimestepSpacing.self)
        // Optional: files converted before it was recorded lack it, and then every field counts as given.
        if self["scheduler.fields_given"] != nil { s.givenFields = Set(try strings("scheduler.fields_given")) }
        return s
    }
}

/// A pipeline's components (format version 2): `edge_ddim.pipeline` names the diffusers pipeline class,
/// `edge_ddim.components` its components with weights. An autoencoder component's config is stored under
/// `<component>.` with diffusers' field names, and `<component>._class_name` says VQModel or AutoencoderKL.
extension Metadata {
    public mutating func setPipeline(_ name: String, components: [String]) {
        set("edge_ddim.pipeline", .string(name))
        set("edge_ddim.components", .strings(components))
    }

    /// nil for a bare UNet2DModel file (every version-1 file).
    public func pipeline() throws -> (name: String, components: [String])? {
        guard self["edge_ddim.pipeline"] != nil else { return nil }
        return (try string("edge_ddim.pipeline"), try strings("edge_ddim.components"))
    }

    public mutating func setAutoencoder(_ c: AutoencoderConfig, component p: String) {
        set("\(p)._class_name", .string(c.kind.rawValue))
        set("\(p).in_channels", .int(Int64(c.inChannels)))
        set("\(p).out_channels", .int(Int64(c.outChannels)))
        set("\(p).block_out_channels", .ints(c.blockOutChannels.map(Int64.init)))
        set("\(p).layers_per_block", .int(Int64(c.layersPerBlock)))
        set("\(p).latent_channels", .int(Int64(c.latentChannels)))
        set("\(p).sample_size", .int(Int64(c.sampleSize)))
        set("\(p).norm_num_groups", .int(Int64(c.normNumGroups)))
        set("\(p).mid_block_add_attention", .bool(c.midBlockAddAttention))
        set("\(p).scaling_factor", .double(c.scalingFactor))
        set("\(p).shift_factor", c.shiftFactor.map { .double($0) } ?? .null)
        set("\(p).force_upcast", .bool(c.forceUpcast))
        set("\(p).num_vq_embeddings", .int(Int64(c.numVQEmbeddings)))
        set("\(p).vq_embed_dim", c.vqEmbedDim.map { .int(Int64($0)) } ?? .null)
        set("\(p).use_quant_conv", .bool(c.useQuantConv))
        set("\(p).use_post_quant_conv", .bool(c.usePostQuantConv))
    }

    public func autoencoder(component p: String) throws -> AutoencoderConfig {
        var c = AutoencoderConfig(kind: try enumValue("\(p)._class_name", AutoencoderConfig.Kind.self))
        c.inChannels = try int("\(p).in_channels")
        c.outChannels = try int("\(p).out_channels")
        c.blockOutChannels = try ints("\(p).block_out_channels")
        c.layersPerBlock = try int("\(p).layers_per_block")
        c.latentChannels = try int("\(p).latent_channels")
        c.sampleSize = try int("\(p).sample_size")
        c.normNumGroups = try int("\(p).norm_num_groups")
        c.midBlockAddAttention = try bool("\(p).mid_block_add_attention")
        c.scalingFactor = try double("\(p).scaling_factor")
        c.shiftFactor = self["\(p).shift_factor"] == .null ? nil : try double("\(p).shift_factor")
        c.forceUpcast = try bool("\(p).force_upcast")
        c.numVQEmbeddings = try int("\(p).num_vq_embeddings")
        c.vqEmbedDim = try optionalInt("\(p).vq_embed_dim")
        c.useQuantConv = try bool("\(p).use_quant_conv")
        c.usePostQuantConv = try bool("\(p).use_post_quant_conv")
        return c
    }
}

/// A text-to-image pipeline's text side (format version 3): the text encoder's config under `<component>.`
/// with transformers' CLIPTextConfig field names, and the tokenizer's compact form (`EdgeText`) as one blob.
extension Metadata {
    public mutating func setCLIPText(_ c: CLIPTextConfig, component p: String) {
        set("\(p)._class_name", .string("CLIPTextModel"))
        set("\(p).vocab_size", .int(Int64(c.vocabSize)))
        set("\(p).hidden_size", .int(Int64(c.hiddenSize)))
        set("\(p).intermediate_size", .int(Int64(c.intermediateSize)))
        set("\(p).num_hidden_layers", .int(Int64(c.numHiddenLayers)))
        set("\(p).num_attention_heads", .int(Int64(c.numAttentionHeads)))
        set("\(p).max_position_embeddings", .int(Int64(c.maxPositionEmbeddings)))
        set("\(p).hidden_act", .string(c.hiddenAct.rawValue))
        set("\(p).layer_norm_eps", .double(c.layerNormEps))
    }

    public func clipText(component p: String) throws -> CLIPTextConfig {
        let name = try string("\(p)._class_name")
        guard name == "CLIPTextModel" else { throw EdgeError("model file: metadata \(p)._class_name is \(name); expected CLIPTextModel") }
        var c = CLIPTextConfig()
        c.vocabSize = try int("\(p).vocab_size")
        c.hiddenSize = try int("\(p).hidden_size")
        c.intermediateSize = try int("\(p).intermediate_size")
        c.numHiddenLayers = try int("\(p).num_hidden_layers")
        c.numAttentionHeads = try int("\(p).num_attention_heads")
        c.maxPositionEmbeddings = try int("\(p).max_position_embeddings")
        c.hiddenAct = try enumValue("\(p).hidden_act", CLIPTextConfig.Activation.self)
        c.layerNormEps = try double("\(p).layer_norm_eps")
        return c
    }

    /// The tokenizer's compact form (`CLIPTokenizer.compactForm()`), stored under `<component>.edgeclip`.
    public mutating func setTokenizer(_ compactForm: [UInt8], component p: String) {
        set("\(p).edgeclip", .bytes(compactForm))
    }

    public func tokenizerBytes(component p: String) throws -> [UInt8] { try bytes("\(p).edgeclip") }
}
