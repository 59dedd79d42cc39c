import _EdgeCore

/// A float32 array read from or written to a NumPy `.npy` file (C order).
public struct NPYArray: Equatable, Sendable {
    public var shape: [Int]
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        self.shape = shape
        self.values = values
    }
}

/// NumPy's `.npy` format (numpy.lib.format) restricted to what the engine exchanges: float32
/// little-endian (`'<f4'`), C order, any rank. Reads versions 1.0, 2.0 and 3.0; writes 1.0 (2.0 if the
/// header would not fit in 65535 bytes).
///
/// File layout: magic `\x93NUMPY`, major, minor, header length (u16 LE for 1.0, u32 LE for 2.0/3.0), the
/// header — a Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with
/// spaces and a newline so the data starts at a multiple of 64 — then the raw values.
public enum NPY {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]

    /// Reads a file. Throws a one-line error naming the file for anything but '<f4' C-order data of the
    /// exact length its shape implies.
    public static func read(path: String, maxBytes: Int = Int.max) throws -> NPYArray {
        try decode(readWholeFile(path, maxBytes: maxBytes), context: path)
    }

    /// Reads a file that must have `expectedShape`; the error names both shapes otherwise.
    public static func read(path: String, expectedShape: [Int]) throws -> [Float] {
        // The data size is known: refuse a far larger file before copying it (a header is at most 4 GiB
        // in principle, but a real one is under 1 KB; 1 MiB is generous).
        if let count = checkedProduct(expectedShape), let bytes = checkedProduct([count, 4]) {
            let size = try MappedFile(path: path).bytes.count
            guard size <= bytes + (1 << 20) else {
                throw EdgeError("\(path): shape mismatch: the file has \(size) bytes, more than \(describe(expectedShape)) float32 values need")
            }
        }
        let array = try read(path: path)
        guard array.shape == expectedShape else {
            throw EdgeError("\(path): shape mismatch: the file holds \(describe(array.shape)), expected \(describe(expectedShape))")
        }
        return array.values
    }

    /// Writes `values` with `shape` atomically (temporary file in the same folder, then rename).
    public static func write(_ values: [Float], shape: [Int], to path: String) throws {
        try writeFileAtomically(path, bytes: encode(values, shape: shape))
    }

    public static func decode(_ bytes: [UInt8], context: String = "npy") throws -> NPYArray {
        guard bytes.count >= 10 else { throw EdgeError("\(context): truncated (\(bytes.count) bytes, no .npy header)") }
        guard Array(bytes[0..<6]) == magic else { throw EdgeError("\(context): not a .npy file (bad magic)") }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw EdgeError("\(context): truncated .npy header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw EdgeError("\(context): unsupported .npy version \(major).\(bytes[7])")
        }
        guard headerStart + headerLength <= bytes.count else {
            throw EdgeError("\(context): truncated .npy header (needs \(headerLength) bytes)")
        }
        let header = try Header(parsing: Array(bytes[headerStart..<headerStart + headerLength]), context: context)
        guard header.descr == "<f4" else {
            throw EdgeError("\(context): dtype '\(header.descr)' is not supported (need '<f4', float32 little-endian)")
        }
        guard !header.fortranOrder else { throw EdgeError("\(context): Fortran-order arrays are not supported (need C order)") }
        guard let count = elementCount(header.shape), count <= Int.max / 4 else {
            throw EdgeError("\(context): shape \(describe(header.shape)) is too large")
        }
        let dataStart = headerStart + headerLength
        let available = bytes.count - dataStart
        guard available == count * 4 else {
            throw EdgeError(available < count * 4
                ? "\(context): truncated data: shape \(describe(header.shape)) needs \(count * 4) bytes, the file has \(available)"
                : "\(context): \(available - count * 4) unexpected bytes after the data of shape \(describe(header.shape))")
        }
        var values = [Float](repeating: 0, count: count)
        for i in 0..<count {
            let o = dataStart + 4 * i
            let bits = UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
            values[i] = Float(bitPattern: bits)
        }
        return NPYArray(shape: header.shape, values: values)
    }

    public static func encode(_ values: [Float], shape: [Int]) throws -> [UInt8] {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw EdgeError("npy shape \(describe(shape)) has a negative dimension") }
        guard shape.reduce(1, *) == values.count else {
            throw EdgeError("npy shape \(describe(shape)) needs \(shape.reduce(1, *)) values, got \(values.count)")
        }
        var dict = Array("{'descr': '<f4', 'fortran_order': False, 'shape': \(describe(shape)), }".utf8)
        // Pad with spaces so that magic + version + length + header (ending in '\n') is a multiple of 64.
        let version1 = (10 + dict.count + 1 + 63) / 64 * 64 - 10 <= 65535
        let prefix = version1 ? 10 : 12
        let total = (prefix + dict.count + 1 + 63) / 64 * 64
        dict += [UInt8](repeating: 0x20, count: total - prefix - dict.count - 1)
        dict.append(0x0A)
        var out = magic + [version1 ? 1 : 2, 0]
        let n = dict.count
        out += version1 ? [UInt8(n & 0xFF), UInt8(n >> 8)]
                        : [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF), UInt8((n >> 16) & 0xFF), UInt8(n >> 24)]
        out += dict
        out.reserveCapacity(out.count + 4 * values.count)
        for v in values {
            let bits = v.bitPattern
            out += [UInt8(bits & 0xFF), UInt8((bits >> 8) & 0xFF), UInt8((bits >> 16) & 0xFF), UInt8(bits >> 24)]
        }
        return out
    }

    /// ∏ shape, or nil on overflow (a corrupt header must not trap).
    static func elementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            count = product
        }
        return count
    }

    /// A shape as Python prints a tuple: (2, 3), (5,), ().
    public static func describe(_ shape: [Int]) -> String {
        shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }

    /// The three keys of the header dict, parsed from the Python literal without evaluating it.
    struct Header {
        var descr = ""
        var fortranOrder = false
        var shape: [Int] = []

        init(parsing bytes: [UInt8], context: String) throws {
            var p = Parser(bytes: bytes, context: context)
            var seen = Set<String>()
            try p.expect("{")
            while true {
                p.skipSpace()
                if p.peek() == "}" { break }
                let key = try p.string()
                try p.expect(":")
                switch key {
                case "descr":
                    p.skipSpace()
                    guard p.peek() == "'" || p.peek() == "\"" else {
                        throw EdgeError("\(context): structured dtypes are not supported (need '<f4')")
                    }
                    descr = try p.string()
                case "fortran_order": fortranOrder = try p.boolean()
                case "shape": shape = try p.tuple()
                default: throw EdgeError("\(context): unexpected key '\(key)' in the .npy header")
                }
                seen.insert(key)
                p.skipSpace()
                if p.peek() == "," { p.index += 1 } else { break }
            }
            try p.expect("}")
            for key in ["descr", "fortran_order", "shape"] where !seen.contains(key) {
                throw EdgeError("\(context): the .npy header has no '\(key)'")
            }
        }
    }

    struct Parser {
        let bytes: [UInt8]
        let context: String
        var index = 0

        func peek() -> Character? { index < bytes.count ? Character(UnicodeScalar(bytes[index])) : nil }

        mutating func skipSpace() {
            while index < bytes.count && (bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x09) { index += 1 }
        }

        func fail(_ what: String) -> EdgeError {
            EdgeError("\(context): malformed .npy header (expected \(what) at offset \(index))")
        }

        mutating func expect(_ c: Character) throws {
            skipSpace()
            guard peek() == c else { throw fail("'\(c)'") }
            index += 1
        }

        mutating func string() throws -> String {
            skipSpace()
            guard let quote = peek(), quote == "'" || quote == "\"" else { throw fail("a string") }
            index += 1
            let start = index
            while index < bytes.count && Character(UnicodeScalar(bytes[index])) != quote { index += 1 }
            guard index < bytes.count else { throw fail("a closing quote") }
            defer { index += 1 }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        mutating func boolean() throws -> Bool {
            skipSpace()
            for (word, value) in [("True", true), ("False", false)] {
                let w = Array(word.utf8)
                if index + w.count <= bytes.count && Array(bytes[index..<index + w.count]) == w {
                    index += w.count
                    return value
                }
            }
            throw fail("True or False")
        }

        mutating func tuple() throws -> [Int] {
            try expect("(")
            var values: [Int] = []
            while true {
                skipSpace()
                if peek() == ")" { break }
                let start = index
                while index < bytes.count && (0x30...0x39).contains(bytes[index]) { index += 1 }
                // A trailing 'L' is how Python 2 wrote long integers in old files.
                guard index > start, let v = Int(String(decoding: bytes[start..<index], as: UTF8.self)) else {
                    throw fail("a dimension")
                }
                if peek() == "L" { index += 1 }
                // NumPy's own limit (NPY_MAXDIMS); a header of thousands of dimensions is not an array.
                guard values.count < 64 else { throw EdgeError("\(context): the .npy shape has more than 64 dimensions") }
                values.append(v)
                skipSpace()
                if peek() == "," { index += 1 } else { break }
            }
            try expect(")")
            return values
        }
    }
}
