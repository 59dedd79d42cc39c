import _EdgeCore
import EdgeGraph

extension DiffusersConfig {
    /// Fields transformers writes in a CLIPTextConfig that do not change inference (dropouts and initialisers
    /// are training-only; the special token ids matter to the tokenizer, which reads its own files; the
    /// projection is CLIPTextModelWithProjection's, which Stable Diffusion does not load).
    static let ignoredCLIPTextFields: Set<String> = [
        "_name_or_path", "transformers_version", "torch_dtype", "dtype", "attention_dropout", "dropout", "initializer_factor",
        "initializer_range", "bos_token_id", "eos_token_id", "pad_token_id", "projection_dim", "output_attentions",
        "output_hidden_states", "use_return_dict", "return_dict", "id2label", "label2id", "tie_word_embeddings",
    ]

    public struct CLIPTextResult {
        public var config: CLIPTextConfig
        /// Fields present in config.json that this reader does not know (transformers may add new ones).
        public var unknownFields: [String]
    }

    /// Reads a transformers `CLIPTextModel` config.json (a Stable Diffusion pipeline's `text_encoder/`).
    /// Missing fields take transformers' defaults; other architectures and activations are refused by name.
    public static func clipText(_ json: JSONValue, file: String = "config.json") throws -> CLIPTextResult {
        guard case .object(let members) = json else { throw EdgeError("\(file): not a JSON object") }
        var f = Fields(members: members, file: file)
        if let architectures = try f.strings("architectures"), architectures != ["CLIPTextModel"] {
            throw EdgeError("\(file): architectures is \(architectures); only CLIPTextModel text encoders are supported")
        }
        try f.require("model_type", oneOf: ["clip_text_model"], default: "clip_text_model", why: "only clip_text_model configs are supported")
        var c = CLIPTextConfig()
        c.vocabSize = try f.int("vocab_size") ?? c.vocabSize
        c.hiddenSize = try f.int("hidden_size") ?? c.hiddenSize
        c.intermediateSize = try f.int("intermediate_size") ?? c.intermediateSize
        c.numHiddenLayers = try f.int("num_hidden_layers") ?? c.numHiddenLayers
        c.numAttentionHeads = try f.int("num_attention_heads") ?? c.numAttentionHeads
        c.maxPositionEmbeddings = try f.int("max_position_embeddings") ?? c.maxPositionEmbeddings
        let act = try f.optionalString("hidden_act") ?? c.hiddenAct.rawValue
        guard let activation = CLIPTextConfig.Activation(rawValue: act) else {
            throw EdgeError("\(file): hidden_act is \"\(act)\"; only quick_gelu and gelu are supported")
        }
        c.hiddenAct = activation
        c.layerNormEps = try f.double("layer_norm_eps") ?? c.layerNormEps
        for field in ignoredCLIPTextFields { _ = f.take(field) }
        try c.validate()
        return CLIPTextResult(config: c, unknownFields: f.remainingKeys)
    }
}
