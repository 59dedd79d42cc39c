import _EdgeCore
import EdgeGraph
import _EdgeQuant
import EdgeModelFile
import EdgeText

/// Turns a diffusers UNet2DModel folder, or a pipeline folder, into an edge-ddim model file.
public enum Converter {
    public struct Report: Sendable {
        public var tensors = 0
        public var parameters = 0
        /// Bytes of weight data in the output (scales included, padding excluded).
        public var weightBytes = 0
        public var fileBytes = 0
        public var sourceDTypes: [String] = []
        /// The layer with the largest relative L2 weight error ‖W − Ŵ‖ / ‖W‖ from quantisation (nil for fp32).
        public var worstLayer: (name: String, relativeError: Double)?
        /// Fields of config.json / scheduler_config.json that were not recognised and were ignored.
        public var warnings: [String] = []
        /// Per component (unet, vqvae, ...), in the file's order.
        public var components: [ComponentReport] = []
    }

    public struct ComponentReport: Sendable {
        public var name: String
        public var tensors = 0
        public var parameters = 0
        /// The component's layer with the largest relative L2 weight error from quantisation (nil for fp32).
        public var worstLayer: (name: String, relativeError: Double)?
    }

    /// diffusers renamed the attention block's tensors; the published google/ddpm-* checkpoints still use
    /// the old names, which diffusers maps on load (`_convert_deprecated_attention_blocks`). This is the
    /// one place edge-ddim renames anything: every other name is the checkpoint's own.
    public static func canonicalName(_ name: String) -> String {
        guard name.contains(".attentions.") else { return name }
        let renames = [(".query.", ".to_q."), (".key.", ".to_k."), (".value.", ".to_v."), (".proj_attn.", ".to_out.0.")]
        for (old, new) in renames where name.contains(old) {
            return name.replacing(old, with: new, maxReplacements: 1)
        }
        return name
    }

    /// transformers saves a CLIPTextModel's tensors with the `text_model.` prefix (the hub's Stable Diffusion
    /// checkpoints) or, from version 5, without it; the graph names them with it.
    public static let clipTextPrefix = "text_model."

    /// A checkpoint tensor's name in `component`'s graph, or nil for a buffer that is not a parameter
    /// (older transformers saved the text encoder's `position_ids`, which are just 0..<T).
    static func canonicalName(_ name: String, component: String) -> String? {
        guard component == "text_encoder" else { return canonicalName(name) }
        let full = name.hasPrefix(clipTextPrefix) ? name : clipTextPrefix + name
        return full == clipTextPrefix + "embeddings.position_ids" ? nil : full
    }

    /// What `convert` may change from what the folder says.
    public struct Options: Sendable {
        /// Overrides the autoencoder's `scaling_factor` (see `autoencoderScalingFactor`).
        public var scalingFactor: Double? = nil
        public init(scalingFactor: Double? = nil) { self.scalingFactor = scalingFactor }
    }

    /// Reads, checks and encodes a diffusers folder; nothing is written. The folder is a bare UNet2DModel
    /// (config.json, scheduler_config.json, safetensors) or a pipeline (model_index.json and one folder per
    /// component: `LDMPipeline` — unet, vqvae, scheduler — or `DDPMPipeline` / `DDIMPipeline` — unet, scheduler).
    public static func convert(folder: String, weights: WeightType, options: Options = Options()) throws
        -> (metadata: Metadata, tensors: [TensorRecord], report: Report) {
        guard isDirectory(folder) else { throw EdgeError("\(folder): no such folder (expected a diffusers UNet2DModel or pipeline folder)") }
        if fileExists(folder + "/model_index.json") { return try convertPipeline(folder: folder, weights: weights, options: options) }
        guard fileExists(folder + "/config.json") else { throw EdgeError("\(folder): config.json is missing (and there is no model_index.json)") }
        guard options.scalingFactor == nil else { throw EdgeError.usage("--scaling-factor: \(folder) is a bare UNet2DModel, with no autoencoder") }
        var report = Report()
        var metadata = Metadata()
        var records: [TensorRecord] = []
        let unet = try readUNet(folder, report: &report)
        try encodeComponent(folder, expected: unet.parameterShapes(), prefix: "", weights: weights, into: &records, report: &report)
        metadata.set("edge_ddim.weights", .string(weights.description))
        metadata.setUNet(unet)
        metadata.setSchedule(try readSchedule(folder + "/scheduler_config.json", folder: folder, report: &report))
        return (metadata, records, report)
    }

    /// Pipelines `convert` understands, with the components each must have (besides the scheduler).
    static let pipelines: [String: [String]] = [
        "LDMPipeline": ["unet", "vqvae"], "DDPMPipeline": ["unet"], "DDIMPipeline": ["unet"],
        "StableDiffusionPipeline": ["unet", "vae", "text_encoder", "tokenizer"],
    ]

    /// Components a pipeline may carry that edge-ddim does not run: left out of the model file with a warning,
    /// as `StableDiffusionPipeline(..., safety_checker=None)` leaves them out.
    static let skippedComponents: [String: [String: String]] = [
        "StableDiffusionPipeline": [
            "safety_checker": "edge-ddim does not run the NSFW safety checker; images are not filtered",
            "feature_extractor": "it only prepares the safety checker's input",
            "image_encoder": "IP-Adapter image prompts are not supported",
        ],
    ]

    /// Classes each text-to-image component may have in model_index.json.
    static let textComponentClasses: [String: [String]] = [
        "text_encoder": ["CLIPTextModel"], "tokenizer": ["CLIPTokenizer", "CLIPTokenizerFast"],
    ]

    static func convertPipeline(folder: String, weights: WeightType, options: Options) throws -> (metadata: Metadata, tensors: [TensorRecord], report: Report) {
        let indexPath = folder + "/model_index.json"
        let index = try DiffusersConfig.pipelineIndex(try readConfigJSON(indexPath),
                                                      file: indexPath)
        let (pipeline, components) = (index.pipeline, index.components)
        guard let needed = pipelines[pipeline] else {
            throw EdgeError("\(indexPath): \(pipeline) is not supported (\(pipelines.keys.sorted().joined(separator: ", ")))")
        }
        for name in needed + ["scheduler"] where components[name] == nil {
            throw EdgeError("\(indexPath): \(pipeline) needs a \(name) component, which is missing")
        }
        var report = Report()
        let skippable = skippedComponents[pipeline] ?? [:]
        for extra in components.keys.sorted() where !(needed + ["scheduler"]).contains(extra) {
            guard let why = skippable[extra] else {
                throw EdgeError("\(indexPath): component \(extra) (\(components[extra]!)) is not part of \(pipeline) as edge-ddim runs it")
            }
            report.warnings.append("\(indexPath): component \(extra) (\(components[extra]!)) is not converted: \(why)")
        }
        for name in needed + ["scheduler"] where !isDirectory(folder + "/" + name) {
            throw EdgeError("\(folder): the \(name) folder is missing (model_index.json lists it)")
        }
        let conditional = needed.contains("text_encoder")
        let unetClass = conditional ? "UNet2DConditionModel" : "UNet2DModel"
        guard components["unet"] == unetClass else {
            throw EdgeError("\(indexPath): unet is \(components["unet"]!); \(pipeline) needs a \(unetClass)")
        }
        for (name, classes) in textComponentClasses.sorted(by: { $0.key < $1.key }) where needed.contains(name) && !classes.contains(components[name]!) {
            throw EdgeError("\(indexPath): \(name) is \(components[name]!); only \(classes.joined(separator: " or ")) is supported")
        }

        // Every config first, so that a mismatch between them is reported before any tensor is read.
        var unet = try readUNet(folder + "/unet", conditional: conditional, report: &report)
        var text: (config: CLIPTextConfig, tokenizer: CLIPTokenizer)? = nil
        if conditional {
            let path = folder + "/text_encoder/config.json"
            guard fileExists(path) else { throw EdgeError("\(folder)/text_encoder: config.json is missing") }
            let read = try DiffusersConfig.clipText(try readConfigJSON(path), file: path)
            report.warnings += read.unknownFields.map { "\(path): ignored unknown field \($0)" }
            let tokenizer = try DiffusersTokenizer.read(folder: folder + "/tokenizer")
            // The UNet's context is the text encoder's output: one row per token the tokenizer makes.
            unet.conditioning!.contextTokens = tokenizer.config.maxLength
            try ModelFile.checkText(unet: unet, textEncoder: read.config, tokenizer: tokenizer, context: folder)
            text = (read.config, tokenizer)
        }
        let autoencoderName = needed.first(where: { ModelFile.autoencoderComponents.contains($0) })
        var autoencoder: AutoencoderConfig? = nil
        if let name = autoencoderName {
            let path = folder + "/" + name + "/config.json"
            guard fileExists(path) else { throw EdgeError("\(folder)/\(name): config.json is missing") }
            let read = try DiffusersConfig.autoencoder(try readConfigJSON(path), file: path)
            report.warnings += read.unknownFields.map { "\(path): ignored unknown field \($0)" }
            guard read.config.kind.rawValue == components[name] else {
                throw EdgeError("\(indexPath): \(name) is \(components[name]!) but \(path) describes a \(read.config.kind.rawValue)")
            }
            var config = read.config
            config.scalingFactor = try autoencoderScalingFactor(read, override: options.scalingFactor, file: path, report: &report)
            try config.validate()
            try ModelFile.checkLatents(unet: unet, autoencoder: config, context: folder)
            autoencoder = config
        } else if options.scalingFactor != nil {
            throw EdgeError.usage("--scaling-factor: \(pipeline) has no autoencoder")
        }
        let schedule = try readSchedule(folder + "/scheduler/scheduler_config.json", folder: folder + "/scheduler", report: &report)

        var metadata = Metadata()
        var records: [TensorRecord] = []
        try encodeComponent(folder + "/unet", expected: unet.parameterShapes(), prefix: "", weights: weights, into: &records, report: &report)
        var stored = ["unet"]
        if let (config, tokenizer) = text {
            try encodeComponent(folder + "/text_encoder", expected: CLIPTextModelGraph.graph(config, batch: 1).parameters.map { ($0.name, $0.shape) },
                                prefix: "text_encoder.", model: "CLIPTextModel", stem: SafetensorsCheckpoint.transformersStem, weights: weights,
                                into: &records, report: &report)
            metadata.setCLIPText(config, component: "text_encoder")
            metadata.setTokenizer(tokenizer.compactForm(), component: "tokenizer")
            stored += ["text_encoder", "tokenizer"]
        }
        if let name = autoencoderName, let autoencoder {
            // The codebook is looked up, not multiplied: it stays fp32 like biases.
            try encodeComponent(folder + "/" + name, expected: AutoencoderGraph.parameters(autoencoder).map { ($0.name, $0.shape) },
                                prefix: name + ".", model: autoencoder.kind.rawValue, weights: weights,
                                keepFP32: ["quantize.embedding.weight"], into: &records, report: &report)
            metadata.setAutoencoder(autoencoder, component: name)
            stored.append(name)
        }
        metadata.set("edge_ddim.weights", .string(weights.description))
        metadata.setPipeline(pipeline, components: stored)
        metadata.setUNet(unet)
        metadata.setSchedule(schedule)
        return (metadata, records, report)
    }

    /// The scaling factor stored for an autoencoder: `override` if given; else the config's; else diffusers'
    /// default — except for a VQModel whose config lacks the field. Decided: such a VQModel gets 1.0. diffusers
    /// would divide by 0.18215 there (its default for both classes), which makes CompVis/ldm-celebahq-256 —
    /// whose vqvae config predates the field and whose UNet was trained on unscaled VQ latents — decode wrong
    /// images (diffusers issue #6725; the repository's later config revision sets 1.0). The converter says so
    /// in a warning; `--scaling-factor 0.18215` reproduces diffusers' behaviour.
    static func autoencoderScalingFactor(_ read: DiffusersConfig.AutoencoderResult, override: Double?, file: String, report: inout Report) throws -> Double {
        if let override {
            guard override.isFinite, override > 0 else { throw EdgeError.usage("--scaling-factor must be a positive number, got \(override)") }
            return override
        }
        if read.config.kind == .vq && !read.scalingFactorGiven {
            report.warnings.append("\(file): no scaling_factor; using 1.0 (VQ latents as the LDM UNets were trained on them), where diffusers would use its default 0.18215 (diffusers issue #6725); --scaling-factor overrides")
            return 1
        }
        return read.config.scalingFactor
    }

    /// A config file (config.json, scheduler_config.json, model_index.json) parsed, within the size limit.
    static func readConfigJSON(_ path: String) throws -> JSONValue {
        try JSONValue.parse(try readWholeFile(path, maxBytes: maxConfigFileBytes), context: path)
    }

    static func readUNet(_ folder: String, conditional: Bool = false, report: inout Report) throws -> UNetConfig {
        let configPath = folder + "/config.json"
        guard fileExists(configPath) else { throw EdgeError("\(folder): config.json is missing") }
        let json = try readConfigJSON(configPath)
        let unet = conditional ? try DiffusersConfig.conditionalUNet(json, file: configPath) : try DiffusersConfig.unet(json, file: configPath)
        report.warnings += unet.unknownFields.map { "\(configPath): ignored unknown field \($0)" }
        return unet.config
    }

    static func readSchedule(_ path: String, folder: String, report: inout Report) throws -> NoiseScheduleConfig {
        guard fileExists(path) else {
            report.warnings.append("\(folder): no scheduler_config.json; using DDPMScheduler's defaults (linear betas 1e-4 to 0.02, T = 1000, epsilon)")
            return NoiseScheduleConfig()
        }
        let s = try DiffusersConfig.scheduler(try readConfigJSON(path), file: path)
        report.warnings += s.unknownFields.map { "\(path): ignored unknown field \($0)" }
        return s.config
    }

    /// Checks the safetensors of `folder` against the `expected` tensors (names and shapes from the family's
    /// graph), then encodes them in that order, named `prefix + name`: matrices (rank ≥ 2) as `weights`, the
    /// rest and `keepFP32` as fp32.
    /// `model` names the family in errors ("UNet", "VQModel"); `stem` the safetensors files' name.
    static func encodeComponent(_ folder: String, expected: [(name: String, shape: [Int])], prefix: String, model: String = "UNet",
                                stem: String = "diffusion_pytorch_model", weights: WeightType, keepFP32: Set<String> = [],
                                into records: inout [TensorRecord], report: inout Report) throws {
        let checkpoint = try SafetensorsCheckpoint(folder: folder, stem: stem)
        report.sourceDTypes = Array(Set(report.sourceDTypes).union(checkpoint.dtypes)).sorted()
        var byName: [String: (SafetensorsFile.Tensor, SafetensorsFile)] = [:]
        let component = prefix.isEmpty ? "unet" : String(prefix.dropLast())
        for (t, f) in checkpoint.tensors {
            guard let name = canonicalName(t.name, component: component) else { continue }
            guard byName[name] == nil else { throw EdgeError("\(folder): tensor \(name) appears twice (under two spellings of its name)") }
            byName[name] = (t, f)
        }
        let expectedNames = Set(expected.map(\.name))
        if let extra = byName.keys.sorted().first(where: { !expectedNames.contains($0) }) {
            throw EdgeError("\(folder): checkpoint tensor \(extra) is not part of the \(model) that config.json describes")
        }
        var componentReport = ComponentReport(name: component)
        for (name, shape) in expected {
            guard let (t, file) = byName[name] else { throw EdgeError("\(folder): tensor \(name) is missing from the checkpoint") }
            guard t.shape == shape else { throw EdgeError("\(folder): tensor \(name) has shape \(t.shape), config.json implies \(shape)") }
            let values = try file.floats(t)
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw EdgeError("\(folder): tensor \(name) has a non-finite value at element \(bad)")
            }
            let type: WeightType = shape.count >= 2 && !keepFP32.contains(name) ? weights : .f32
            let (record, error) = encode(name: prefix + name, shape: shape, values: values, as: type)
            if let error, error > (componentReport.worstLayer?.relativeError ?? -1) { componentReport.worstLayer = (prefix + name, error) }
            records.append(record)
            componentReport.tensors += 1
            componentReport.parameters += values.count
            report.weightBytes += record.values.count + (record.scales?.count ?? 0) * 4
        }
        report.tensors += componentReport.tensors
        report.parameters += componentReport.parameters
        if let w = componentReport.worstLayer, w.relativeError > (report.worstLayer?.relativeError ?? -1) { report.worstLayer = w }
        report.components.append(componentReport)
    }

    /// Converts `folder` and writes the model file atomically to `output`.
    @discardableResult
    public static func convert(folder: String, output: String, weights: WeightType, options: Options = Options()) throws -> Report {
        let (metadata, records, partial) = try convert(folder: folder, weights: weights, options: options) as (Metadata, [TensorRecord], Report)
        var report = partial
        let bytes = ModelFileWriter.encode(metadata: metadata, tensors: records)
        try writeFileAtomically(output, bytes: bytes)
        report.fileBytes = bytes.count
        return report
    }

    /// Encodes one tensor; for lossy types also returns ‖W − Ŵ‖ / ‖W‖.
    static func encode(name: String, shape: [Int], values: [Float], as type: WeightType) -> (TensorRecord, Double?) {
        switch type {
        case .f32:
            let bytes = values.withUnsafeBytes { Array($0) }
            return (TensorRecord(name: name, type: .f32, shape: shape, values: bytes), nil)
        case .f16:
            var half = [UInt16](repeating: 0, count: values.count)
            values.withUnsafeBufferPointer { quantizeF16Ref($0.baseAddress!, count: values.count, into: &half) }
            var restored = [Float](repeating: 0, count: values.count)
            half.withUnsafeBufferPointer { dequantizeF16Ref($0.baseAddress!, count: values.count, into: &restored) }
            let bytes = half.withUnsafeBytes { Array($0) }
            return (TensorRecord(name: name, type: .f16, shape: shape, values: bytes), relativeError(values, restored))
        case .q8PerChannel:
            let rows = shape[0], columns = values.count / rows
            var q = [Int8](repeating: 0, count: values.count)
            var scales = [Float](repeating: 0, count: rows)
            var restored = [Float](repeating: 0, count: values.count)
            values.withUnsafeBufferPointer { w in
                q.withUnsafeMutableBufferPointer { qp in
                    restored.withUnsafeMutableBufferPointer { rp in
                        for r in 0 ..< rows {
                            scales[r] = quantizeQ8Ref(w.baseAddress! + r * columns, count: columns, into: qp.baseAddress! + r * columns)
                            dequantizeQ8Ref(qp.baseAddress! + r * columns, scale: scales[r], count: columns, into: rp.baseAddress! + r * columns)
                        }
                    }
                }
            }
            let bytes = q.withUnsafeBytes { Array($0) }
            return (TensorRecord(name: name, type: .q8PerChannel, shape: shape, values: bytes, scales: scales), relativeError(values, restored))
        }
    }

    static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in zip(a, b) { num += Double(x - y) * Double(x - y); den += Double(x) * Double(x) }
        return den == 0 ? 0 : (num / den).squareRoot()
    }
}
