/// Bounds-checked little-endian reads from untrusted bytes. Every read checks the remaining length first
/// and throws a one-line error naming `context`, so a truncated or corrupt file is refused, never read past.
public struct ByteReader {
    public let bytes: UnsafeRawBufferPointer
    public private(set) var offset: Int
    public let context: String

    public init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0, context: String) {
        self.bytes = bytes
        self.offset = offset
        self.context = context
    }

    public var remaining: Int { bytes.count - offset }

    public mutating func need(_ count: Int, _ what: String) throws {
        guard count >= 0, count <= remaining else {
            throw EdgeError("\(context): truncated while reading \(what) (needs \(count) bytes at offset \(offset), \(max(remaining, 0)) left)")
        }
    }

    public mutating func u8(_ what: String) throws -> UInt8 {
        try need(1, what)
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func u16(_ what: String) throws -> UInt16 {
        try need(2, what)
        defer { offset += 2 }
        return UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    public mutating func u32(_ what: String) throws -> UInt32 {
        try need(4, what)
        defer { offset += 4 }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    public mutating func u64(_ what: String) throws -> UInt64 {
        try need(8, what)
        defer { offset += 8 }
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// A u64 that must fit in `Int` and not exceed `limit`.
    public mutating func size(_ what: String, limit: Int = Int.max) throws -> Int {
        let v = try u64(what)
        guard v <= UInt64(limit) else { throw EdgeError("\(context): \(what) \(v) is out of range (limit \(limit))") }
        return Int(v)
    }

    public mutating func f64(_ what: String) throws -> Double {
        Double(bitPattern: try u64(what))
    }

    public mutating func bytes(_ count: Int, _ what: String) throws -> UnsafeRawBufferPointer {
        try need(count, what)
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + count])
    }

    public mutating func utf8(_ count: Int, _ what: String) throws -> String {
        let raw = try bytes(count, what)
        guard let s = String(validating: raw, as: UTF8.self) else { throw EdgeError("\(context): \(what) is not valid UTF-8") }
        return s
    }
}

/// Little-endian serialisation into a growing byte array (used when writing files, never while sampling).
public struct ByteWriter {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public var count: Int { bytes.count }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    public mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    public mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    public mutating func f64(_ v: Double) { u64(v.bitPattern) }
    public mutating func raw(_ b: UnsafeRawBufferPointer) { bytes.append(contentsOf: b) }
    public mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }
    public mutating func pad(toMultipleOf alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }
    /// Overwrites 8 bytes at `offset` (for header fields filled in once the sizes are known).
    public mutating func patchU64(at offset: Int, _ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { src in
            for i in 0 ..< 8 { bytes[offset + i] = src[i] }
        }
    }
}

/// Rounds `n` up to a multiple of `alignment` (a power of two).
@inlinable public func alignUp(_ n: Int, _ alignment: Int) -> Int {
    (n + alignment - 1) & ~(alignment - 1)
}
