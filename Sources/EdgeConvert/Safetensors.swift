import _EdgeCore
import _EdgeQuant

/// A safetensors file (https://huggingface.co/docs/safetensors), mapped and validated:
///
///     u64 little-endian N | N bytes of JSON header | data
///
/// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative
/// to the start of the data), plus an optional "__metadata__" string map. Every offset, shape and size
/// is checked against the file before a tensor is read.
public final class SafetensorsFile: @unchecked Sendable {
    public enum DType: String, Sendable {
        case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
        case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8", bool = "BOOL"
        case f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"

        var bytes: Int {
            switch self {
            case .f64, .i64, .u64: 8
            case .f32, .i32, .u32: 4
            case .f16, .bf16, .i16, .u16: 2
            case .i8, .u8, .bool, .f8e4m3, .f8e5m2: 1
            }
        }
    }

    public struct Tensor: Sendable {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        /// Absolute byte range in the file.
        public let range: Range<Int>
        public var elementCount: Int { shape.reduce(1, *) }
    }

    /// A header larger than this is refused rather than parsed (real ones are tens of kB).
    public static let maxHeaderBytes = 100 << 20

    public let path: String
    public let metadata: [String: String]
    /// In header order.
    public let tensors: [Tensor]
    private let index: [String: Int]
    private let file: MappedFile

    /// Dimensions per tensor accepted (PyTorch allows 64; UNet weights have at most 4).
    public static let maxRank = 16

    public convenience init(path: String) throws {
        try self.init(mapped: MappedFile(path: path))
    }

    public init(mapped: MappedFile) throws {
        file = mapped
        let path = mapped.path
        self.path = path
        let bytes = file.bytes
        var r = ByteReader(bytes, context: path)
        let headerLength = try r.size("safetensors header length", limit: Self.maxHeaderBytes)
        guard headerLength <= r.remaining else {
            throw EdgeError("\(path): safetensors header claims \(headerLength) bytes but only \(r.remaining) follow; the file is truncated or not safetensors")
        }
        let header = try JSONValue.parse(try r.bytes(headerLength, "safetensors header"), context: "\(path) header")
        let dataStart = 8 + headerLength
        let dataSize = bytes.count - dataStart
        guard case .object(let members) = header else { throw EdgeError("\(path): safetensors header is not a JSON object") }

        var metadata: [String: String] = [:]
        var tensors: [Tensor] = []
        var index: [String: Int] = [:]
        for (name, value) in members {
            if name == "__metadata__" {
                guard case .object(let m) = value else { throw EdgeError("\(path): __metadata__ is not an object") }
                for (k, v) in m {
                    guard case .string(let s) = v else { throw EdgeError("\(path): __metadata__.\(k) is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard case .string(let dtypeName)? = value["dtype"] else { throw EdgeError("\(path): tensor \(name) has no dtype") }
            guard let dtype = DType(rawValue: dtypeName) else { throw EdgeError("\(path): tensor \(name) has unknown dtype \(dtypeName)") }
            guard case .array(let dims)? = value["shape"] else { throw EdgeError("\(path): tensor \(name) has no shape") }
            guard dims.count <= Self.maxRank else { throw EdgeError("\(path): tensor \(name) has \(dims.count) dimensions, more than \(Self.maxRank)") }
            var shape: [Int] = []
            var elements = 1
            for d in dims {
                guard case .int(let v) = d, v >= 0, v <= Int64(Int32.max) else { throw EdgeError("\(path): tensor \(name) has an invalid shape") }
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(v))
                guard !overflow, product <= bytes.count else { throw EdgeError("\(path): tensor \(name) shape \(dims.count)-D claims more elements than the file holds") }
                elements = product
                shape.append(Int(v))
            }
            guard case .array(let offsets)? = value["data_offsets"], offsets.count == 2,
                  case .int(let begin) = offsets[0], case .int(let end) = offsets[1] else {
                throw EdgeError("\(path): tensor \(name) has no valid data_offsets")
            }
            guard begin >= 0, begin <= end, end <= Int64(dataSize) else {
                throw EdgeError("\(path): tensor \(name) data_offsets [\(begin), \(end)] lie past the end of the data (\(dataSize) bytes); the file is truncated or corrupt")
            }
            guard Int(end - begin) == elements * dtype.bytes else {
                throw EdgeError("\(path): tensor \(name) holds \(end - begin) bytes but shape \(shape) of \(dtypeName) needs \(elements * dtype.bytes)")
            }
            guard index[name] == nil else { throw EdgeError("\(path): tensor \(name) appears twice") }
            index[name] = tensors.count
            tensors.append(Tensor(name: name, dtype: dtype, shape: shape, range: dataStart + Int(begin) ..< dataStart + Int(end)))
        }
        self.metadata = metadata
        self.tensors = tensors
        self.index = index
    }

    public func tensor(_ name: String) -> Tensor? { index[name].map { tensors[$0] } }

    /// The tensor's values as fp32 (F32, F16 and BF16 convert exactly; other dtypes are refused).
    public func floats(_ t: Tensor) throws -> [Float] {
        let raw = UnsafeRawBufferPointer(rebasing: file.bytes[t.range])
        let n = t.elementCount
        return try [Float](unsafeUninitializedCapacity: n) { out, count in
            // The data section is not guaranteed aligned for the element type: copy through loadUnaligned.
            switch t.dtype {
            case .f32:
                for i in 0 ..< n { out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
            case .f16:
                for i in 0 ..< n { out[i] = Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))) }
            case .bf16:
                for i in 0 ..< n { out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
            default:
                throw EdgeError("\(path): tensor \(t.name) has dtype \(t.dtype.rawValue); only F32, F16 and BF16 are supported")
            }
            count = n
        }
    }
}

/// The weights of a diffusers model folder: one `diffusion_pytorch_model.safetensors`, or shards listed in
/// `diffusion_pytorch_model.safetensors.index.json` ({"weight_map": {tensor: shard file}}).
public struct SafetensorsCheckpoint {
    /// diffusers' file names (`save_pretrained` of a model: UNet, autoencoder).
    public static let singleFile = "diffusion_pytorch_model.safetensors"
    public static let indexFile = "diffusion_pytorch_model.safetensors.index.json"
    /// transformers' (a pipeline's text encoder): `model.safetensors`, sharded behind `model.safetensors.index.json`.
    public static let transformersStem = "model"

    /// Every tensor by name, with the file holding it.
    public let tensors: [(tensor: SafetensorsFile.Tensor, file: SafetensorsFile)]
    /// The on-disk dtypes found, for the converter's summary.
    public var dtypes: Set<String> { Set(tensors.map { $0.tensor.dtype.rawValue }) }

    /// - stem: the file names' stem: diffusers' `diffusion_pytorch_model` (default) or transformers' `model`.
    public init(folder: String, stem: String = "diffusion_pytorch_model") throws {
        let singleFile = stem + ".safetensors", indexFile = stem + ".safetensors.index.json"
        let single = folder + "/" + singleFile
        let indexPath = folder + "/" + indexFile
        if fileExists(single) {
            let f = try SafetensorsFile(path: single)
            tensors = f.tensors.map { ($0, f) }
            return
        }
        guard fileExists(indexPath) else {
            let pickle = stem == Self.transformersStem ? "pytorch_model.bin" : stem + ".bin"
            let hint = fileExists(folder + "/" + pickle)
                ? " (found \(pickle): pickle checkpoints are not read; re-save with save_pretrained(..., safe_serialization=True))" : ""
            throw EdgeError("\(folder): no \(singleFile) or \(indexFile)\(hint)")
        }
        let index = try Converter.readConfigJSON(indexPath)
        guard case .object(let map)? = index["weight_map"] else { throw EdgeError("\(indexPath): weight_map is missing or not an object") }
        var shards: [String: SafetensorsFile] = [:]
        var out: [(SafetensorsFile.Tensor, SafetensorsFile)] = []
        for (name, value) in map {
            guard case .string(let shard) = value else { throw EdgeError("\(indexPath): weight_map.\(name) is not a file name") }
            // A shard name must stay inside the folder: no paths.
            guard !shard.isEmpty, !shard.contains("/"), shard != "..", shard != "." else { throw EdgeError("\(indexPath): shard name \"\(shard)\" is not a plain file name") }
            if shards[shard] == nil { shards[shard] = try SafetensorsFile(path: folder + "/" + shard) }
            guard let t = shards[shard]!.tensor(name) else { throw EdgeError("\(indexPath): tensor \(name) is not in shard \(shard)") }
            out.append((t, shards[shard]!))
        }
        tensors = out
    }
}
