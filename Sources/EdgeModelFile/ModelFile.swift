import _EdgeCore
import EdgeGraph
import _EdgeQuant
import EdgeText

/// The edge-ddim model file (`.edm`): one file holding the UNet config, the noise schedule and every
/// weight, laid out so the runtime maps it and reads weights in place. `docs/FORMAT.md` documents it byte
/// by byte; this file is the implementation of that document.
public enum ModelFormat {
    /// "EDGEDDIM" in ASCII.
    public static let magic: [UInt8] = Array("EDGEDDIM".utf8)
    /// Bumped on any change an older reader could misread. 2: a pipeline's components (an autoencoder
    /// beside the UNet, its tensors prefixed by the component's name). 3: text-to-image pipelines (a
    /// conditional UNet, a text encoder, the tokenizer as a byte-string metadata value).
    public static let version: UInt32 = 3
    /// Versions this build reads: 1 files hold a bare UNet and read as they always did.
    public static let readableVersions: ClosedRange<UInt32> = 1 ... 3
    public static let headerBytes = 64
    /// Tensor data offsets are multiples of this: a cache line, and the widest SIMD load.
    public static let dataAlignment = 64
    /// Refuse tensors above this rank or dimension: no UNet weight is bigger, and it bounds what a hostile
    /// file can make us compute.
    public static let maxRank = 4
    public static let maxDimension = 1 << 24
    public static let maxTensors = 100_000
}

/// How a tensor's values are arranged. Version 1 has one layout; packed kernel layouts get new codes.
public enum TensorLayout: UInt8, Sendable {
    /// Row-major in the checkpoint's own dimension order (PyTorch's [O, I, kh, kw] for convolutions).
    case checkpoint = 0
}

/// One tensor to write.
public struct TensorRecord: Sendable {
    public var name: String
    public var type: WeightType
    public var shape: [Int]
    /// The encoded values: `count · type.elementBytes` bytes.
    public var values: [UInt8]
    /// One fp32 scale per `shape[0]` for `.q8PerChannel`.
    public var scales: [Float]?

    public init(name: String, type: WeightType, shape: [Int], values: [UInt8], scales: [Float]? = nil) {
        self.name = name; self.type = type; self.shape = shape; self.values = values; self.scales = scales
    }

    public var elementCount: Int { shape.reduce(1, *) }
}

/// Serialises a model. The whole file is built in memory (a UNet is at most a few hundred MB) and written
/// atomically, so a failed conversion never leaves a partial model file.
public enum ModelFileWriter {
    public static func encode(metadata: Metadata, tensors: [TensorRecord]) -> [UInt8] {
        var meta = ByteWriter()
        metadata.encode(into: &meta)

        // Lay out the data section first so the directory can hold final offsets.
        var dataOffsets: [(values: Int, scales: Int)] = []
        var dataSize = 0
        for t in tensors {
            precondition(t.values.count == t.elementCount * t.type.elementBytes, "\(t.name): value bytes do not match its shape")
            precondition((t.type == .q8PerChannel) == (t.scales != nil) && (t.scales?.count ?? t.shape[0]) == t.shape[0])
            let values = dataSize
            dataSize = alignUp(dataSize + t.values.count, ModelFormat.dataAlignment)
            var scales = 0
            if let s = t.scales {
                scales = dataSize
                dataSize = alignUp(dataSize + s.count * 4, ModelFormat.dataAlignment)
            }
            dataOffsets.append((values, scales))
        }

        var dir = ByteWriter()
        dir.u32(UInt32(tensors.count))
        for (t, o) in zip(tensors, dataOffsets) {
            let name = Array(t.name.utf8)
            dir.u16(UInt16(name.count)); dir.raw(name)
            dir.u8(t.type.rawValue)
            dir.u8(TensorLayout.checkpoint.rawValue)
            dir.u8(UInt8(t.shape.count))
            dir.u8(0)
            for d in t.shape { dir.u64(UInt64(d)) }
            dir.u64(UInt64(o.values))
            dir.u64(UInt64(t.values.count))
            dir.u64(UInt64(o.scales))
        }

        let metadataOffset = ModelFormat.headerBytes
        let directoryOffset = metadataOffset + meta.count
        let dataOffset = alignUp(directoryOffset + dir.count, ModelFormat.dataAlignment)

        var w = ByteWriter()
        w.raw(ModelFormat.magic)
        w.u32(ModelFormat.version)
        w.u32(0)
        w.u64(UInt64(metadataOffset)); w.u64(UInt64(meta.count))
        w.u64(UInt64(directoryOffset)); w.u64(UInt64(dir.count))
        w.u64(UInt64(dataOffset)); w.u64(UInt64(dataSize))
        precondition(w.count == ModelFormat.headerBytes)
        w.raw(meta.bytes)
        w.raw(dir.bytes)
        w.pad(toMultipleOf: ModelFormat.dataAlignment)
        for (t, o) in zip(tensors, dataOffsets) {
            precondition(w.count == dataOffset + o.values)
            w.raw(t.values)
            w.pad(toMultipleOf: ModelFormat.dataAlignment)
            if let s = t.scales {
                s.withUnsafeBytes { raw in
                    for f in raw.bindMemory(to: Float.self) { w.u32(f.bitPattern) }
                }
                w.pad(toMultipleOf: ModelFormat.dataAlignment)
            }
        }
        precondition(w.count == dataOffset + dataSize)
        return w.bytes
    }

    public static func write(_ path: String, metadata: Metadata, tensors: [TensorRecord]) throws {
        try writeFileAtomically(path, bytes: encode(metadata: metadata, tensors: tensors))
    }
}

/// A model file mapped read-only and validated: every offset, size and count is checked against the
/// file before anything is read through it.
///
/// Thread safety: immutable once opened (the mapping is read-only), so one `ModelFile` may be shared by any
/// number of threads, each running its own pipeline over it.
public final class ModelFile: @unchecked Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let type: WeightType
        public let shape: [Int]
        /// Byte offsets from the start of the file.
        public let valuesOffset: Int
        public let valuesBytes: Int
        public let scalesOffset: Int?
        public var elementCount: Int { shape.reduce(1, *) }
        /// One fp32 scale per output channel for int8, none otherwise.
        public var scalesBytes: Int { scalesOffset == nil ? 0 : 4 * shape[0] }
    }

    public let path: String
    public let metadata: Metadata
    public let unet: UNetConfig
    public let schedule: NoiseScheduleConfig
    /// The diffusers pipeline the file was converted from (`LDMPipeline`), nil for a bare UNet2DModel.
    public let pipeline: String?
    /// The pipeline's autoencoder, if it has one.
    public let autoencoder: AutoencoderComponent?
    /// A text-to-image pipeline's text encoder (`text_encoder`), with `tokenizer`; nil otherwise.
    public let textEncoder: TextEncoderComponent?
    /// The tokenizer of `textEncoder`, decoded from the file's compact form at open.
    public let tokenizer: CLIPTokenizer?

    /// A CLIP text encoder stored beside a conditional UNet, its tensors prefixed `text_encoder.`.
    public struct TextEncoderComponent: Sendable {
        public let name: String
        public let config: CLIPTextConfig
        public var prefix: String { name + "." }
    }

    /// Components a text-to-image pipeline adds (diffusers' attribute names).
    public static let textComponents = ["text_encoder", "tokenizer"]

    /// An autoencoder stored beside the UNet: its config and the component name (`vqvae`, `vae`) that
    /// prefixes its tensors (`vqvae.decoder.conv_in.weight`).
    public struct AutoencoderComponent: Sendable {
        public let name: String
        public let config: AutoencoderConfig
        public var prefix: String { name + "." }
    }

    /// Names of the pipeline components an autoencoder may be stored under (diffusers' pipeline attributes).
    public static let autoencoderComponents = ["vqvae", "vae"]
    /// In file order.
    public let entries: [Entry]
    private let index: [String: Int]
    private let file: MappedFile

    public convenience init(path: String) throws {
        try self.init(mapped: MappedFile(path: path))
    }

    public init(mapped: MappedFile) throws {
        file = mapped
        path = mapped.path
        let bytes = mapped.bytes
        let ctx = "model file \(mapped.path)"
        var r = ByteReader(bytes, context: ctx)
        guard bytes.count >= ModelFormat.headerBytes else {
            throw EdgeError("\(ctx): too short to be an edge-ddim model (\(bytes.count) bytes)")
        }
        guard Array(try r.bytes(8, "magic")) == ModelFormat.magic else {
            throw EdgeError("\(ctx): not an edge-ddim model file (wrong magic)")
        }
        let version = try r.u32("version")
        guard ModelFormat.readableVersions.contains(version) else {
            throw EdgeError("\(ctx): format version \(version) is not supported (this build reads versions \(ModelFormat.readableVersions.lowerBound) to \(ModelFormat.readableVersions.upperBound)); convert the checkpoint again")
        }
        _ = try r.u32("flags")
        let limit = bytes.count
        let metadataOffset = try r.size("metadata offset", limit: limit), metadataSize = try r.size("metadata size", limit: limit)
        let directoryOffset = try r.size("directory offset", limit: limit), directorySize = try r.size("directory size", limit: limit)
        let dataOffset = try r.size("data offset", limit: limit), dataSize = try r.size("data size", limit: limit)
        func section(_ offset: Int, _ size: Int, _ what: String) throws -> UnsafeRawBufferPointer {
            guard offset >= ModelFormat.headerBytes, size <= limit - offset else {
                throw EdgeError("\(ctx): \(what) (offset \(offset), \(size) bytes) lies outside the file (\(limit) bytes); the file is truncated or corrupt")
            }
            return UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + size])
        }
        guard dataOffset % ModelFormat.dataAlignment == 0 else { throw EdgeError("\(ctx): data offset \(dataOffset) is not 64-byte aligned") }
        var meta = ByteReader(try section(metadataOffset, metadataSize, "metadata"), context: ctx)
        var dir = ByteReader(try section(directoryOffset, directorySize, "tensor directory"), context: ctx)
        _ = try section(dataOffset, dataSize, "tensor data")

        metadata = try Metadata.decode(&meta)
        unet = try metadata.unet()
        schedule = try metadata.schedule()
        try unet.validate()
        // The converter validated the schedule, but the file may not come from the converter: the sampler
        // builds per-timestep tables from it and ranges like 1...T, which must not trap.
        try schedule.validate(file: ctx)
        var autoencoder: AutoencoderComponent? = nil
        var textEncoder: TextEncoderComponent? = nil
        var tokenizer: CLIPTokenizer? = nil
        if let (name, components) = try metadata.pipeline() {
            pipeline = name
            guard components.contains("unet") else { throw EdgeError("\(ctx): pipeline \(name) has no unet component") }
            let others = components.filter { $0 != "unet" && !Self.textComponents.contains($0) }
            if let odd = others.first(where: { !Self.autoencoderComponents.contains($0) }) {
                throw EdgeError("\(ctx): component \(odd) is not one this build runs (unet, \((Self.autoencoderComponents + Self.textComponents).joined(separator: ", ")))")
            }
            guard others.count <= 1 else { throw EdgeError("\(ctx): more than one autoencoder (\(others.joined(separator: ", ")))") }
            if let a = others.first {
                let config = try metadata.autoencoder(component: a)
                try config.validate()
                try Self.checkLatents(unet: unet, autoencoder: config, context: ctx)
                autoencoder = AutoencoderComponent(name: a, config: config)
            }
            let text = Self.textComponents.filter(components.contains)
            guard text.isEmpty || text.count == Self.textComponents.count else {
                throw EdgeError("\(ctx): a text encoder needs its tokenizer and the other way round; the file has only \(text[0])")
            }
            if !text.isEmpty {
                let config = try metadata.clipText(component: "text_encoder")
                try config.validate()
                let t = try CLIPTokenizer(compactForm: try metadata.tokenizerBytes(component: "tokenizer"), context: "\(ctx): tokenizer")
                try Self.checkText(unet: unet, textEncoder: config, tokenizer: t, context: ctx)
                textEncoder = TextEncoderComponent(name: "text_encoder", config: config)
                tokenizer = t
            }
        } else {
            pipeline = nil
        }
        guard (unet.conditioning == nil) == (textEncoder == nil) else {
            throw EdgeError("\(ctx): " + (textEncoder == nil ? "the UNet is conditional but the file has no text encoder" : "the text encoder has no conditional UNet to feed"))
        }
        self.autoencoder = autoencoder
        self.textEncoder = textEncoder
        self.tokenizer = tokenizer

        let count = Int(try dir.u32("tensor count"))
        guard count <= ModelFormat.maxTensors else { throw EdgeError("\(ctx): \(count) tensors is more than the limit of \(ModelFormat.maxTensors)") }
        var entries: [Entry] = []
        var index: [String: Int] = [:]
        for _ in 0 ..< count {
            let name = try dir.utf8(Int(try dir.u16("tensor name length")), "tensor name")
            let typeCode = try dir.u8("type of \(name)")
            guard let type = WeightType(rawValue: typeCode) else { throw EdgeError("\(ctx): tensor \(name) has unknown weight type \(typeCode)") }
            let layout = try dir.u8("layout of \(name)")
            guard TensorLayout(rawValue: layout) != nil else { throw EdgeError("\(ctx): tensor \(name) has unknown layout \(layout)") }
            let rank = Int(try dir.u8("rank of \(name)"))
            _ = try dir.u8("reserved")
            guard (1 ... ModelFormat.maxRank).contains(rank) else { throw EdgeError("\(ctx): tensor \(name) has rank \(rank)") }
            var shape: [Int] = []
            var elements = 1
            for _ in 0 ..< rank {
                let d = try dir.size("dimension of \(name)", limit: ModelFormat.maxDimension)
                guard d >= 1 else { throw EdgeError("\(ctx): tensor \(name) has a zero dimension") }
                let (product, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow, product <= limit else { throw EdgeError("\(ctx): tensor \(name) claims \(shape + [d]) elements, more than the file holds") }
                elements = product
                shape.append(d)
            }
            let valuesOffset = try dir.size("offset of \(name)", limit: dataSize)
            let valuesBytes = try dir.size("size of \(name)", limit: dataSize)
            let scalesOffset = try dir.size("scales offset of \(name)", limit: dataSize)
            guard valuesBytes == elements * type.elementBytes else {
                throw EdgeError("\(ctx): tensor \(name) holds \(valuesBytes) bytes but its shape \(shape) as \(type) needs \(elements * type.elementBytes)")
            }
            guard valuesOffset % ModelFormat.dataAlignment == 0, valuesBytes <= dataSize - valuesOffset else {
                throw EdgeError("\(ctx): tensor \(name) lies outside the data section or is misaligned; the file is truncated or corrupt")
            }
            var scales: Int? = nil
            if type == .q8PerChannel {
                guard scalesOffset % ModelFormat.dataAlignment == 0, shape[0] * 4 <= dataSize - scalesOffset else {
                    throw EdgeError("\(ctx): scales of tensor \(name) lie outside the data section; the file is truncated or corrupt")
                }
                scales = dataOffset + scalesOffset
            }
            guard index[name] == nil else { throw EdgeError("\(ctx): tensor \(name) appears twice") }
            index[name] = entries.count
            entries.append(Entry(name: name, type: type, shape: shape, valuesOffset: dataOffset + valuesOffset, valuesBytes: valuesBytes, scalesOffset: scales))
        }
        self.entries = entries
        self.index = index
    }

    /// A latent diffusion UNet reads and writes what the autoencoder's decoder reads (VQ: the codebook's
    /// width, before quantisation; KL: latent_channels).
    public static func checkLatents(unet: UNetConfig, autoencoder a: AutoencoderConfig, context: String) throws {
        let channels = a.embedDim
        guard unet.inChannels == channels, unet.outChannels == channels else {
            throw EdgeError("\(context): the UNet has \(unet.inChannels) input and \(unet.outChannels) output channels but the \(a.kind.rawValue)'s latents have \(channels)")
        }
    }

    /// The conditional UNet attends to what the text encoder writes: the tokenizer's T ids, each row as wide as
    /// the UNet's cross-attention, every id inside the encoder's vocabulary.
    public static func checkText(unet: UNetConfig, textEncoder c: CLIPTextConfig, tokenizer: CLIPTokenizer, context: String) throws {
        guard let k = unet.conditioning else { throw EdgeError("\(context): the UNet is not conditional, so it cannot read a text encoder's output") }
        guard k.crossAttentionDim == c.hiddenSize else {
            throw EdgeError("\(context): the UNet's cross_attention_dim is \(k.crossAttentionDim) but the text encoder's hidden_size is \(c.hiddenSize)")
        }
        guard tokenizer.config.maxLength <= c.maxPositionEmbeddings else {
            throw EdgeError("\(context): the tokenizer makes \(tokenizer.config.maxLength) tokens but the text encoder has \(c.maxPositionEmbeddings) positions")
        }
        guard let top = tokenizer.vocabulary.values.max(), top < c.vocabSize else {
            throw EdgeError("\(context): the tokenizer's ids reach past the text encoder's vocab_size \(c.vocabSize)")
        }
    }

    public func entry(_ name: String) throws -> Entry {
        guard let i = index[name] else { throw EdgeError("model file \(path): tensor \(name) is missing") }
        return entries[i]
    }

    /// A weight as an O × (everything else) matrix, in place in the mapping.
    public func matrix(_ name: String, shape expected: [Int]) throws -> WeightMatrix {
        let e = try entry(name)
        guard e.shape == expected else { throw EdgeError("model file \(path): tensor \(name) has shape \(e.shape), expected \(expected)") }
        let base = file.bytes.baseAddress!
        let scales = e.scalesOffset.map { (base + $0).assumingMemoryBound(to: Float.self) }
        return WeightMatrix(type: e.type, rows: e.shape[0], columns: e.elementCount / e.shape[0], values: base + e.valuesOffset, scales: scales)
    }

    /// An fp32 vector (biases and norm parameters are always stored fp32), in place in the mapping.
    public func vector(_ name: String, count: Int) throws -> UnsafePointer<Float> {
        try floats(name, shape: [count], why: "biases and norm parameters must be fp32")
    }

    /// An fp32 tensor of any shape that must not be quantised (a VQ codebook), in place in the mapping.
    public func floats(_ name: String, shape expected: [Int], why: String = "it must be stored fp32") throws -> UnsafePointer<Float> {
        let e = try entry(name)
        guard e.shape == expected else { throw EdgeError("model file \(path): tensor \(name) has shape \(e.shape), expected \(expected)") }
        guard e.type == .f32 else { throw EdgeError("model file \(path): tensor \(name) is \(e.type); \(why)") }
        return (file.bytes.baseAddress! + e.valuesOffset).assumingMemoryBound(to: Float.self)
    }

    /// Lets the kernel drop the resident pages of `weight`'s values (read from this file), after the runtime
    /// copied them into another layout; reading them again later is correct, just a page fault.
    public func dropResidentPages(of weight: WeightMatrix) {
        file.dropResidentPages(UnsafeRawBufferPointer(start: weight.values, count: weight.rows * weight.columns * weight.type.elementBytes))
    }

    /// Lets the kernel drop the resident pages of every tensor named `prefix`… (a component that has run and
    /// will not run again in this process, such as the text encoder).
    public func dropResidentPages(ofComponent prefix: String) {
        let base = file.bytes.baseAddress!
        for e in entries where e.name.hasPrefix(prefix) {
            file.dropResidentPages(UnsafeRawBufferPointer(start: base + e.valuesOffset, count: e.valuesBytes))
            if let s = e.scalesOffset { file.dropResidentPages(UnsafeRawBufferPointer(start: base + s, count: e.scalesBytes)) }
        }
    }

    /// Bytes of weight data, padding excluded.
    public var weightBytes: Int { entries.reduce(0) { $0 + $1.valuesBytes + $1.scalesBytes } }
    public var parameterCount: Int { entries.reduce(0) { $0 + $1.elementCount } }
    public var fileBytes: Int { file.bytes.count }
}
