import _EdgeCore
import EdgeGraph
import EdgeModelFile

/// Reads diffusers' `config.json` (UNet2DModel) and `scheduler_config.json` into edge-ddim's configs.
/// Missing fields take diffusers' defaults; fields of the wrong type, out of range, or asking for a
/// feature edge-ddim does not implement are refused with a message naming the field.
public enum DiffusersConfig {
    /// Fields diffusers writes that do not change inference, or that are checked elsewhere.
    static let ignoredUNetFields: Set<String> = ["dropout", "num_train_timesteps", "_class_name", "_diffusers_version", "_name_or_path"]

    public struct Result {
        public var config: UNetConfig
        /// Fields present in config.json that this reader does not know (diffusers may add new ones).
        public var unknownFields: [String]
    }

    public static func unet(_ json: JSONValue, file: String = "config.json") throws -> Result {
        guard case .object(let members) = json else { throw EdgeError("\(file): not a JSON object") }
        var c = UNetConfig()
        var f = Fields(members: members, file: file)

        if let name = try f.optionalString("_class_name"), name != "UNet2DModel" {
            throw EdgeError("\(file): _class_name is \(name); only UNet2DModel checkpoints are supported")
        }
        c.sampleSize = try f.squareSampleSize()
        c.inChannels = try f.int("in_channels") ?? c.inChannels
        c.outChannels = try f.int("out_channels") ?? c.outChannels
        c.centerInputSample = try f.bool("center_input_sample") ?? c.centerInputSample
        try f.require("time_embedding_type", oneOf: ["positional"], default: "positional", why: "only the positional (sinusoidal) time embedding is supported")
        if case .some(let v) = try f.optionalInt("time_embedding_dim") { c.timeEmbeddingDim = v }
        c.freqShift = try f.int("freq_shift") ?? c.freqShift
        c.flipSinToCos = try f.bool("flip_sin_to_cos") ?? c.flipSinToCos
        if let types = try f.strings("down_block_types") {
            c.downBlockTypes = try types.map {
                guard let t = UNetConfig.DownBlock(rawValue: $0) else { throw EdgeError("\(file): down_block_types entry \($0) is not supported (DownBlock2D or AttnDownBlock2D)") }
                return t
            }
        }
        if let types = try f.strings("up_block_types") {
            c.upBlockTypes = try types.map {
                guard let t = UNetConfig.UpBlock(rawValue: $0) else { throw EdgeError("\(file): up_block_types entry \($0) is not supported (UpBlock2D or AttnUpBlock2D)") }
                return t
            }
        }
        try f.require("mid_block_type", oneOf: ["UNetMidBlock2D"], default: "UNetMidBlock2D", why: "only UNetMidBlock2D is supported")
        if let channels = try f.ints("block_out_channels") { c.blockOutChannels = channels }
        c.layersPerBlock = try f.int("layers_per_block") ?? c.layersPerBlock
        c.midBlockScaleFactor = try f.double("mid_block_scale_factor") ?? c.midBlockScaleFactor
        c.downsamplePadding = try f.int("downsample_padding") ?? c.downsamplePadding
        try f.require("downsample_type", oneOf: ["conv"], default: "conv", why: "only convolutional downsampling is supported (resnet downsampling is not)")
        try f.require("upsample_type", oneOf: ["conv"], default: "conv", why: "only convolutional upsampling is supported (resnet upsampling is not)")
        try f.require("act_fn", oneOf: ["silu", "swish"], default: "silu", why: "only the silu activation is supported")
        switch try f.optionalInt("attention_head_dim") {
        case .none: break  // absent: keep diffusers' default of 8
        case .some(let v): c.attentionHeadDim = v
        }
        c.normNumGroups = try f.int("norm_num_groups") ?? c.normNumGroups
        if case .some(let v) = try f.optionalInt("attn_norm_num_groups") { c.attnNormNumGroups = v }
        c.normEps = try f.double("norm_eps") ?? c.normEps
        try f.require("resnet_time_scale_shift", oneOf: ["default"], default: "default", why: "only \"default\" is supported (scale_shift is not)")
        c.addAttention = try f.bool("add_attention") ?? c.addAttention
        for field in ["class_embed_type", "num_class_embeds"] {
            if let v = f.take(field), v != .null { throw EdgeError("\(file): \(field) is set; class-conditional UNets are not supported") }
        }
        for field in ignoredUNetFields { _ = f.take(field) }
        try c.validate()
        return Result(config: c, unknownFields: f.remainingKeys)
    }

    public struct ScheduleResult {
        public var config: NoiseScheduleConfig
        public var unknownFields: [String]
    }

    static let ignoredSchedulerFields: Set<String> = [
        "_class_name", "_diffusers_version", "variance_type", "dynamic_thresholding_ratio", "sample_max_value",
        "timestep_type", "set_alpha_to_zero",
    ]

    /// Reads a DDPMScheduler or DDIMScheduler config the way `DDIMScheduler.from_config` does.
    public static func scheduler(_ json: JSONValue, file: String = "scheduler_config.json") throws -> ScheduleResult {
        guard case .object(let members) = json else { throw EdgeError("\(file): not a JSON object") }
        var s = NoiseScheduleConfig()
        // What the file sets (null counts as unset): a scheduler made from this config takes its own
        // defaults for the rest, and those differ between diffusers' schedulers.
        s.givenFields = Set(members.filter { $0.1 != .null }.map(\.0))
        var f = Fields(members: members, file: file)
        s.numTrainTimesteps = try f.int("num_train_timesteps") ?? s.numTrainTimesteps
        guard (1 ... 100_000).contains(s.numTrainTimesteps) else { throw EdgeError("\(file): num_train_timesteps must be in 1...100000, got \(s.numTrainTimesteps)") }
        if let name = try f.optionalString("beta_schedule") {
            guard let b = NoiseScheduleConfig.BetaSchedule(rawValue: name) else {
                throw EdgeError("\(file): beta_schedule \(name) is not supported (linear, scaled_linear, squaredcos_cap_v2)")
            }
            s.betaSchedule = b
        }
        s.betaStart = try f.double("beta_start") ?? s.betaStart
        s.betaEnd = try f.double("beta_end") ?? s.betaEnd
        guard s.betaStart > 0, s.betaStart < 1, s.betaEnd > 0, s.betaEnd < 1 else {
            throw EdgeError("\(file): beta_start and beta_end must be in (0, 1), got \(s.betaStart) and \(s.betaEnd)")
        }
        switch f.take("trained_betas") {
        case nil, .null?: break
        case .array(let a)?:
            let betas = try a.map { v -> Double in
                switch v {
                case .int(let i): return Double(i)
                case .double(let d): return d
                default: throw EdgeError("\(file): trained_betas must be a list of numbers")
                }
            }
            guard betas.count == s.numTrainTimesteps else { throw EdgeError("\(file): trained_betas has \(betas.count) entries, num_train_timesteps is \(s.numTrainTimesteps)") }
            guard betas.allSatisfy({ $0 > 0 && $0 < 1 }) else { throw EdgeError("\(file): trained_betas entries must be in (0, 1)") }
            s.trainedBetas = betas
        default: throw EdgeError("\(file): trained_betas must be a list of numbers or null")
        }
        s.clipSample = try f.bool("clip_sample") ?? s.clipSample
        s.clipSampleRange = try f.double("clip_sample_range") ?? s.clipSampleRange
        guard s.clipSampleRange > 0 else { throw EdgeError("\(file): clip_sample_range must be positive, got \(s.clipSampleRange)") }
        if let name = try f.optionalString("prediction_type") {
            guard let p = NoiseScheduleConfig.PredictionType(rawValue: name) else {
                throw EdgeError("\(file): prediction_type \(name) is not supported (epsilon, v_prediction, sample)")
            }
            s.predictionType = p
        }
        s.stepsOffset = try f.int("steps_offset") ?? s.stepsOffset
        guard (0 ..< s.numTrainTimesteps).contains(s.stepsOffset) else { throw EdgeError("\(file): steps_offset must be in 0..<\(s.numTrainTimesteps), got \(s.stepsOffset)") }
        s.setAlphaToOne = try f.bool("set_alpha_to_one") ?? s.setAlphaToOne
        if let name = try f.optionalString("timestep_spacing") {
            guard let t = NoiseScheduleConfig.TimestepSpacing(rawValue: name), t != .quadratic else {
                throw EdgeError("\(file): timestep_spacing \(name) is not supported (leading, trailing, linspace)")
            }
            s.timestepSpacing = t
        }
        if try f.bool("thresholding") == true { throw EdgeError("\(file): thresholding is true; dynamic thresholding is not supported") }
        if try f.bool("rescale_betas_zero_snr") == true { throw EdgeError("\(file): rescale_betas_zero_snr is true; it is not supported") }
        for field in ignoredSchedulerFields { _ = f.take(field) }
        try s.validate(file: file)
        return ScheduleResult(config: s, unknownFields: f.remainingKeys)
    }
}

/// Typed, consuming access to a JSON object's fields: each accessor removes the field, so what is left
/// at the end is what nobody understood.
struct Fields {
    var members: [(String, JSONValue)]
    let file: String

    mutating func take(_ key: String) -> JSONValue? {
        guard let i = members.lastIndex(where: { $0.0 == key }) else { return nil }
        let v = members[i].1
        members.removeAll { $0.0 == key }
        return v
    }

    var remainingKeys: [String] { members.map(\.0) }

    /// `sample_size`: required; an integer, or [height, width] with height = width.
    mutating func squareSampleSize() throws -> Int {
        switch take("sample_size") {
        case nil, .null?: throw EdgeError("\(file): sample_size is missing; it is needed to plan memory")
        case .int(let v)?: return try checkedInt("sample_size", v)
        case .array(let a)?:
            guard a.count == 2, case .int(let h) = a[0], case .int(let w) = a[1] else { throw EdgeError("\(file): sample_size must be an integer or [height, width]") }
            guard h == w else { throw EdgeError("\(file): sample_size \(h)×\(w) is not square; only square samples are supported") }
            return try checkedInt("sample_size", h)
        default: throw EdgeError("\(file): sample_size must be an integer")
        }
    }

    func checkedInt(_ key: String, _ v: Int64) throws -> Int {
        // A range test, not abs(): abs(Int.min) traps, and -9223372036854775808 is valid JSON.
        guard let i = Int(exactly: v), (-(1 << 30) ... 1 << 30).contains(i) else { throw EdgeError("\(file): \(key) \(v) is out of range") }
        return i
    }

    /// Absent → nil; present → must be an integer (a float with an integral value, as some old configs
    /// write, is accepted).
    mutating func int(_ key: String) throws -> Int? {
        switch take(key) {
        case nil: return nil
        case .int(let v)?: return try checkedInt(key, v)
        case .double(let d)? where d.rounded() == d && abs(d) <= Double(1 << 30): return Int(d)
        case let v?: throw EdgeError("\(file): \(key) must be an integer, got \(describe(v))")
        }
    }

    /// Absent → nil (keep the default); null → .some(nil); integer → .some(value).
    mutating func optionalInt(_ key: String) throws -> Int?? {
        switch take(key) {
        case nil: return nil
        case .null?: return .some(nil)
        case .int(let v)?: return .some(try checkedInt(key, v))
        case let v?: throw EdgeError("\(file): \(key) must be an integer or null, got \(describe(v))")
        }
    }

    mutating func double(_ key: String) throws -> Double? {
        switch take(key) {
        case nil: return nil
        case .int(let v)?: return Double(v)
        case .double(let d)?:
            guard d.isFinite else { throw EdgeError("\(file): \(key) must be a finite number") }
            return d
        case let v?: throw EdgeError("\(file): \(key) must be a number, got \(describe(v))")
        }
    }

    mutating func bool(_ key: String) throws -> Bool? {
        switch take(key) {
        case nil: return nil
        case .bool(let b)?: return b
        case let v?: throw EdgeError("\(file): \(key) must be true or false, got \(describe(v))")
        }
    }

    mutating func optionalString(_ key: String) throws -> String? {
        switch take(key) {
        case nil, .null?: return nil
        case .string(let s)?: return s
        case let v?: throw EdgeError("\(file): \(key) must be a string, got \(describe(v))")
        }
    }

    mutating func strings(_ key: String) throws -> [String]? {
        switch take(key) {
        case nil: return nil
        case .array(let a)?:
            return try a.map {
                guard case .string(let s) = $0 else { throw EdgeError("\(file): \(key) must be a list of strings") }
                return s
            }
        case let v?: throw EdgeError("\(file): \(key) must be a list of strings, got \(describe(v))")
        }
    }

    mutating func ints(_ key: String) throws -> [Int]? {
        switch take(key) {
        case nil: return nil
        case .array(let a)?:
            return try a.map {
                guard case .int(let v) = $0 else { throw EdgeError("\(file): \(key) must be a list of integers") }
                return try checkedInt(key, v)
            }
        case let v?: throw EdgeError("\(file): \(key) must be a list of integers, got \(describe(v))")
        }
    }

    /// A string field that must be one of `allowed` when present and not null.
    mutating func require(_ key: String, oneOf allowed: [String], default: String, why: String) throws {
        let v = try optionalString(key) ?? `default`
        guard allowed.contains(v) else { throw EdgeError("\(file): \(key) is \"\(v)\"; \(why)") }
    }

    func describe(_ v: JSONValue) -> String {
        switch v {
        case .null: "null"
        case .bool(let b): "\(b)"
        case .int(let i): "\(i)"
        case .double(let d): "\(d)"
        case .string(let s): "\"\(s)\""
        case .array: "a list"
        case .object: "an object"
        }
    }
}
