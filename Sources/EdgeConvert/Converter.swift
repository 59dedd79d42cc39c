import _EdgeCore
import EdgeGraph
import _EdgeQuant
import EdgeModelFile

/// Turns a diffusers UNet2DModel folder into an edge-ddim model file.
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

    /// Reads, checks and encodes a checkpoint; nothing is written.
    public static func convert(folder: String, weights: WeightType) throws -> (metadata: Metadata, tensors: [TensorRecord], report: Report) {
        guard isDirectory(folder) else { throw EdgeError("\(folder): no such folder (expected a diffusers UNet2DModel folder with config.json)") }
        var report = Report()
        let configPath = folder + "/config.json"
        guard fileExists(configPath) else { throw EdgeError("\(folder): config.json is missing") }
        let unet = try DiffusersConfig.unet(try JSONValue.parse(try readWholeFile(configPath, maxBytes: maxConfigFileBytes), context: configPath), file: configPath)
        report.warnings += unet.unknownFields.map { "\(configPath): ignored unknown field \($0)" }

        let schedulerPath = folder + "/scheduler_config.json"
        var schedule = NoiseScheduleConfig()
        if fileExists(schedulerPath) {
            let s = try DiffusersConfig.scheduler(try JSONValue.parse(try readWholeFile(schedulerPath, maxBytes: maxConfigFileBytes), context: schedulerPath), file: schedulerPath)
            schedule = s.config
            report.warnings += s.unknownFields.map { "\(schedulerPath): ignored unknown field \($0)" }
        } else {
            report.warnings.append("\(folder): no scheduler_config.json; using DDPMScheduler's defaults (linear betas 1e-4 to 0.02, T = 1000, epsilon)")
        }

        let checkpoint = try SafetensorsCheckpoint(folder: folder)
        report.sourceDTypes = checkpoint.dtypes.sorted()
        var byName: [String: (SafetensorsFile.Tensor, SafetensorsFile)] = [:]
        for (t, f) in checkpoint.tensors {
            let name = canonicalName(t.name)
            guard byName[name] == nil else { throw EdgeError("\(folder): tensor \(name) appears twice (under its old and new attention names)") }
            byName[name] = (t, f)
        }

        let expected = unet.config.parameterShapes()
        let expectedNames = Set(expected.map(\.name))
        if let extra = byName.keys.sorted().first(where: { !expectedNames.contains($0) }) {
            throw EdgeError("\(folder): checkpoint tensor \(extra) is not part of the UNet that config.json describes")
        }
        var records: [TensorRecord] = []
        var worst: (String, Double)? = nil
        for (name, shape) in expected {
            guard let (t, file) = byName[name] else { throw EdgeError("\(folder): tensor \(name) is missing from the checkpoint") }
            guard t.shape == shape else { throw EdgeError("\(folder): tensor \(name) has shape \(t.shape), config.json implies \(shape)") }
            let values = try file.floats(t)
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw EdgeError("\(folder): tensor \(name) has a non-finite value at element \(bad)")
            }
            let type: WeightType = shape.count >= 2 ? weights : .f32
            let (record, error) = encode(name: name, shape: shape, values: values, as: type)
            if let error, error > (worst?.1 ?? -1) { worst = (name, error) }
            records.append(record)
            report.parameters += values.count
            report.weightBytes += record.values.count + (record.scales?.count ?? 0) * 4
        }
        report.tensors = records.count
        report.worstLayer = worst.map { (name: $0.0, relativeError: $0.1) }

        var metadata = Metadata()
        metadata.set("edge_ddim.weights", .string(weights.description))
        metadata.setUNet(unet.config)
        metadata.setSchedule(schedule)
        return (metadata, records, report)
    }

    /// Converts `folder` and writes the model file atomically to `output`.
    @discardableResult
    public static func convert(folder: String, output: String, weights: WeightType) throws -> Report {
        let (metadata, records, partial) = try convert(folder: folder, weights: weights) as (Metadata, [TensorRecord], Report)
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
