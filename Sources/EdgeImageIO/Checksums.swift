/// CRC-32 (ISO-HDLC, as zlib and PNG use it): reflected polynomial 0xEDB88320, initial value and final XOR
/// 0xFFFFFFFF. Incremental: `CRC32().updated(with: a).updated(with: b).value == CRC32.checksum(a + b)`.
public struct CRC32: Sendable, Equatable {
    private var state: UInt32 = 0xFFFF_FFFF

    public init() {}

    /// The checksum of everything fed so far.
    public var value: UInt32 { state ^ 0xFFFF_FFFF }

    public mutating func update<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        var c = state
        for b in bytes {
            c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8)
        }
        state = c
    }

    public func updated<S: Sequence>(with bytes: S) -> CRC32 where S.Element == UInt8 {
        var copy = self
        copy.update(bytes)
        return copy
    }

    public static func checksum<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
        CRC32().updated(with: bytes).value
    }
}

/// Byte-at-a-time table: entry n is the CRC register after shifting byte n through eight reflected steps.
/// An immutable global, built once on first use.
private let crcTable: [UInt32] = (0..<256).map { n in
    var c = UInt32(n)
    for _ in 0..<8 {
        c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1
    }
    return c
}

/// Adler-32 (RFC 1950): a = 1 + Σ bytes, b = Σ a after each byte, both mod 65521; value = b·2¹⁶ + a.
public struct Adler32: Sendable, Equatable {
    private var a: UInt32 = 1
    private var b: UInt32 = 0

    public init() {}

    public var value: UInt32 { (b << 16) | a }

    public mutating func update<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
        // 5552 is the largest run for which b cannot overflow 32 bits before the modulo (zlib's NMAX).
        var pending = 0
        for byte in bytes {
            a &+= UInt32(byte)
            b &+= a
            pending += 1
            if pending == 5552 {
                a %= 65521
                b %= 65521
                pending = 0
            }
        }
        a %= 65521
        b %= 65521
    }

    public func updated<S: Sequence>(with bytes: S) -> Adler32 where S.Element == UInt8 {
        var copy = self
        copy.update(bytes)
        return copy
    }

    public static func checksum<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
        Adler32().updated(with: bytes).value
    }
}
