/// How a weight tensor's elements are stored. Defined once here; the model file, the converter and the
/// kernels all use these codes, and `docs/FORMAT.md` documents them byte by byte.
///
/// - `f32`: IEEE 754 binary32, little-endian, 4 bytes per element.
/// - `f16`: IEEE 754 binary16, little-endian, 2 bytes per element, rounded to nearest even from fp32.
/// - `q8PerChannel`: one signed byte per element, q ∈ [-127, 127], plus one fp32 scale per output channel
///   (the tensor's first dimension). The value is w = scale[o] · q. Symmetric, zero point 0; -128 is never
///   written, so negation is exact and the range is symmetric. A channel whose weights are all zero gets
///   scale 0 (and all q = 0): dequantising gives exact zeros, never NaN or inf.
public enum WeightType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0
    case f16 = 1
    case q8PerChannel = 2

    /// Bytes per element of the value array (scales excluded).
    public var elementBytes: Int {
        switch self {
        case .f32: 4
        case .f16: 2
        case .q8PerChannel: 1
        }
    }

    public var description: String {
        switch self {
        case .f32: "fp32"
        case .f16: "fp16"
        case .q8PerChannel: "int8"
        }
    }
}

/// A read-only view of a 2-D weight matrix stored in one of the `WeightType` formats: `rows` output
/// channels, each `columns` long (a conv weight [O, I, kh, kw] is O rows of I·kh·kw). Points into the
/// mapped model file; it owns nothing.
public struct WeightMatrix: @unchecked Sendable {
    public let type: WeightType
    public let rows: Int
    public let columns: Int
    /// `rows · columns` elements of `type`, row-major.
    public let values: UnsafeRawPointer
    /// `rows` fp32 scales for `.q8PerChannel`, nil otherwise.
    public let scales: UnsafePointer<Float>?

    public init(type: WeightType, rows: Int, columns: Int, values: UnsafeRawPointer, scales: UnsafePointer<Float>?) {
        precondition(rows >= 0 && columns >= 0)
        precondition((type == .q8PerChannel) == (scales != nil), "q8 weights need scales; others must not have them")
        self.type = type
        self.rows = rows
        self.columns = columns
        self.values = values
        self.scales = scales
    }

    /// Writes row `r` as fp32 into `out[0 ..< columns]`: the reference dequantisation every kernel is
    /// checked against.
    public func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < rows)
        let start = r * columns
        switch type {
        case .f32:
            let src = values.assumingMemoryBound(to: Float.self) + start
            out.update(from: src, count: columns)
        case .f16:
            dequantizeF16Ref(values.assumingMemoryBound(to: UInt16.self) + start, count: columns, into: out)
        case .q8PerChannel:
            dequantizeQ8Ref(values.assumingMemoryBound(to: Int8.self) + start, scale: scales![r], count: columns, into: out)
        }
    }
}
