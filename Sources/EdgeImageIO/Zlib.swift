import _EdgeCore

/// zlib streams (RFC 1950) around DEFLATE (RFC 1951), enough for PNG: a compressor writing stored blocks or
/// one fixed-Huffman block with LZ77 matches, and a full decompressor (stored, fixed and dynamic Huffman).
public enum Zlib {
    public enum Compression: Sendable, Equatable {
        /// Stored (uncompressed) blocks: fastest, output slightly larger than the input.
        case stored
        /// Greedy LZ77 (hash chains, 32 KiB window) coded with the fixed Huffman tables of RFC 1951 §3.2.6.
        case fixedHuffman
    }

    /// A zlib stream: 2-byte header, DEFLATE data, big-endian Adler-32 of `data`.
    public static func compress(_ data: [UInt8], _ compression: Compression = .fixedHuffman) -> [UInt8] {
        // CMF 0x78: deflate with a 32 KiB window; FLG chosen so that (CMF·256 + FLG) mod 31 = 0.
        var out: [UInt8] = [0x78, compression == .stored ? 0x01 : 0x5E]
        switch compression {
        case .stored: appendStored(data, to: &out)
        case .fixedHuffman: appendFixedHuffman(data, to: &out)
        }
        let adler = Adler32.checksum(data)
        out += [UInt8(adler >> 24), UInt8((adler >> 16) & 0xFF), UInt8((adler >> 8) & 0xFF), UInt8(adler & 0xFF)]
        return out
    }

    /// Decompresses a zlib stream and checks its Adler-32. `limit` bounds the output size (a corrupt or
    /// hostile stream cannot make it allocate more). Throws a one-line error naming `context`.
    public static func decompress(_ stream: [UInt8], limit: Int = 1 << 30, context: String = "zlib stream") throws -> [UInt8] {
        guard stream.count >= 2 else { throw EdgeError("\(context): truncated (no zlib header)") }
        let cmf = stream[0], flg = stream[1]
        guard cmf & 0x0F == 8, cmf >> 4 <= 7 else {
            throw EdgeError("\(context): not a deflate zlib stream (CMF 0x\(String(cmf, radix: 16)))")
        }
        guard (UInt16(cmf) << 8 | UInt16(flg)) % 31 == 0 else { throw EdgeError("\(context): corrupt zlib header check bits") }
        guard flg & 0x20 == 0 else { throw EdgeError("\(context): zlib preset dictionaries are not supported") }
        var inflater = Inflater(stream, start: 2, limit: limit, context: context)
        try inflater.run()
        let end = inflater.byteAlignedPosition
        guard end + 4 <= stream.count else { throw EdgeError("\(context): truncated (missing Adler-32)") }
        let stored = stream[end..<end + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let actual = Adler32.checksum(inflater.output)
        guard stored == actual else {
            throw EdgeError("\(context): Adler-32 mismatch (stored 0x\(String(stored, radix: 16)), computed 0x\(String(actual, radix: 16)))")
        }
        return inflater.output
    }

    // MARK: Compression

    private static func appendStored(_ data: [UInt8], to out: inout [UInt8]) {
        // A stored block holds at most 65535 bytes; an empty input still needs one (final) block.
        var start = 0
        repeat {
            let count = min(65535, data.count - start)
            let final: UInt8 = start + count == data.count ? 1 : 0
            out.append(final)  // BFINAL, BTYPE = 00, then padding to the byte boundary
            out += [UInt8(count & 0xFF), UInt8(count >> 8), UInt8(~count & 0xFF), UInt8((~count >> 8) & 0xFF)]
            out += data[start..<start + count]
            start += count
        } while start < data.count
    }

    private static func appendFixedHuffman(_ data: [UInt8], to out: inout [UInt8]) {
        var writer = BitWriter()
        writer.write(1, bits: 1)  // BFINAL
        writer.write(1, bits: 2)  // BTYPE = 01 (fixed Huffman)
        let n = data.count
        let hashBits = 15
        let windowSize = 1 << 15
        let maxChain = 48
        // head[h]: latest position whose 3-byte hash is h; previous[p & mask]: the position before it.
        var head = [Int32](repeating: -1, count: 1 << hashBits)
        var previous = [Int32](repeating: -1, count: windowSize)
        data.withUnsafeBufferPointer { d in
            @inline(__always) func hash(_ p: Int) -> Int {
                let v = UInt32(d[p]) | UInt32(d[p + 1]) << 8 | UInt32(d[p + 2]) << 16
                return Int((v &* 2_654_435_761) >> UInt32(32 - hashBits))
            }
            @inline(__always) func insert(_ p: Int) {
                let h = hash(p)
                previous[p & (windowSize - 1)] = head[h]
                head[h] = Int32(p)
            }
            var p = 0
            while p < n {
                var bestLength = 0
                var bestDistance = 0
                if p + 3 <= n {
                    var candidate = Int(head[hash(p)])
                    var chain = maxChain
                    let maxLength = min(258, n - p)
                    while candidate >= 0 && p - candidate <= 32768 && chain > 0 {
                        if d[candidate + bestLength] == d[p + bestLength] || bestLength == 0 {
                            var length = 0
                            while length < maxLength && d[candidate + length] == d[p + length] { length += 1 }
                            if length > bestLength {
                                bestLength = length
                                bestDistance = p - candidate
                                if length == maxLength { break }
                            }
                        }
                        let next = Int(previous[candidate & (windowSize - 1)])
                        // The ring buffer is reused every 32 KiB: a link to a later position is stale.
                        if next >= candidate { break }
                        candidate = next
                        chain -= 1
                    }
                }
                if bestLength >= 3 {
                    writeLength(bestLength, &writer)
                    writeDistance(bestDistance, &writer)
                    for q in p..<(p + bestLength) where q + 3 <= n { insert(q) }
                    p += bestLength
                } else {
                    writeLiteralOrLength(symbol: Int(d[p]), &writer)
                    if p + 3 <= n { insert(p) }
                    p += 1
                }
            }
        }
        writeLiteralOrLength(symbol: 256, &writer)  // end of block
        writer.flush()
        out += writer.bytes
    }

    /// Fixed literal/length code (RFC 1951 §3.2.6): 0–143 → 8 bits from 0x30, 144–255 → 9 bits from 0x190,
    /// 256–279 → 7 bits from 0, 280–287 → 8 bits from 0xC0. Huffman codes go most-significant bit first.
    private static func writeLiteralOrLength(symbol: Int, _ writer: inout BitWriter) {
        switch symbol {
        case 0...143: writer.writeHuffman(0x30 + symbol, length: 8)
        case 144...255: writer.writeHuffman(0x190 + symbol - 144, length: 9)
        case 256...279: writer.writeHuffman(symbol - 256, length: 7)
        default: writer.writeHuffman(0xC0 + symbol - 280, length: 8)
        }
    }

    private static func writeLength(_ length: Int, _ writer: inout BitWriter) {
        var code = 28
        while lengthBase[code] > length { code -= 1 }
        writeLiteralOrLength(symbol: 257 + code, &writer)
        writer.write(UInt32(length - lengthBase[code]), bits: lengthExtra[code])
    }

    private static func writeDistance(_ distance: Int, _ writer: inout BitWriter) {
        var code = 29
        while distanceBase[code] > distance { code -= 1 }
        writer.writeHuffman(code, length: 5)
        writer.write(UInt32(distance - distanceBase[code]), bits: distanceExtra[code])
    }

    static let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
                             131, 163, 195, 227, 258]
    static let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    static let distanceBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
                               2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    static let distanceExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
                                13, 13]
}

/// DEFLATE bit packing: data fields least-significant bit first, Huffman codes most-significant bit first.
private struct BitWriter {
    var bytes: [UInt8] = []
    private var buffer: UInt64 = 0
    private var count = 0

    mutating func write(_ value: UInt32, bits: Int) {
        guard bits > 0 else { return }
        buffer |= UInt64(value & ((1 << UInt32(bits)) - 1)) << UInt64(count)
        count += bits
        while count >= 8 {
            bytes.append(UInt8(buffer & 0xFF))
            buffer >>= 8
            count -= 8
        }
    }

    mutating func writeHuffman(_ code: Int, length: Int) {
        var reversed: UInt32 = 0
        for i in 0..<length where code & (1 << i) != 0 { reversed |= 1 << UInt32(length - 1 - i) }
        write(reversed, bits: length)
    }

    mutating func flush() {
        if count > 0 { bytes.append(UInt8(buffer & 0xFF)) }
        buffer = 0
        count = 0
    }
}

/// A canonical Huffman code in the form of zlib's `puff.c`: how many codes of each length, and the symbols
/// ordered by (length, symbol). Decoding walks the lengths one bit at a time.
private struct Huffman {
    var counts = [Int](repeating: 0, count: 16)
    var symbols: [Int]

    /// Throws if the lengths over-subscribe the code space (more codes than a prefix code can hold).
    init(lengths: ArraySlice<Int>, context: String) throws {
        symbols = [Int](repeating: 0, count: lengths.count)
        for l in lengths { counts[l] += 1 }
        var left = 1
        for len in 1..<16 {
            left <<= 1
            left -= counts[len]
            guard left >= 0 else { throw EdgeError("\(context): invalid Huffman code lengths (over-subscribed)") }
        }
        var offsets = [Int](repeating: 0, count: 16)
        for len in 1..<15 { offsets[len + 1] = offsets[len] + counts[len] }
        for (symbol, l) in zip(0..., lengths) where l != 0 {
            symbols[offsets[l]] = symbol
            offsets[l] += 1
        }
        counts[0] = 0
    }
}

/// The DEFLATE decoder (RFC 1951 §3.2): blocks until BFINAL, each stored, fixed or dynamic Huffman.
private struct Inflater {
    let input: [UInt8]
    let limit: Int
    let context: String
    var position: Int
    var bitBuffer: UInt32 = 0
    var bitCount = 0
    var output: [UInt8] = []

    init(_ input: [UInt8], start: Int, limit: Int, context: String) {
        self.input = input
        self.position = start
        self.limit = limit
        self.context = context
    }

    /// The byte after the last one consumed (unused bits of a partial byte are discarded).
    var byteAlignedPosition: Int { position }

    mutating func bits(_ n: Int) throws -> Int {
        while bitCount < n {
            guard position < input.count else { throw EdgeError("\(context): truncated deflate data") }
            bitBuffer |= UInt32(input[position]) << UInt32(bitCount)
            position += 1
            bitCount += 8
        }
        let value = Int(bitBuffer & ((1 << UInt32(n)) - 1))
        bitBuffer = n == 32 ? 0 : bitBuffer >> UInt32(n)
        bitCount -= n
        return value
    }

    mutating func decode(_ h: Huffman) throws -> Int {
        var code = 0, first = 0, index = 0
        for len in 1..<16 {
            code |= try bits(1)
            let count = h.counts[len]
            if code - count < first { return h.symbols[index + (code - first)] }
            index += count
            first += count
            first <<= 1
            code <<= 1
        }
        throw EdgeError("\(context): invalid Huffman code in deflate data")
    }

    mutating func run() throws {
        var final = false
        while !final {
            final = try bits(1) == 1
            switch try bits(2) {
            case 0: try stored()
            case 1: try codes(Self.fixedLiterals, Self.fixedDistances)
            case 2: try dynamic()
            default: throw EdgeError("\(context): invalid deflate block type 3")
            }
        }
        // Drop the partial byte: the zlib trailer starts at the next byte boundary.
        bitBuffer = 0
        bitCount = 0
    }

    mutating func stored() throws {
        bitBuffer = 0
        bitCount = 0
        guard position + 4 <= input.count else { throw EdgeError("\(context): truncated stored block header") }
        let len = Int(input[position]) | Int(input[position + 1]) << 8
        let nlen = Int(input[position + 2]) | Int(input[position + 3]) << 8
        guard len == ~nlen & 0xFFFF else { throw EdgeError("\(context): corrupt stored block length") }
        position += 4
        guard position + len <= input.count else { throw EdgeError("\(context): truncated stored block") }
        guard output.count + len <= limit else { throw EdgeError("\(context): inflates to more than \(limit) bytes") }
        output += input[position..<position + len]
        position += len
    }

    static let fixedLiterals: Huffman = {
        var lengths = [Int](repeating: 8, count: 288)
        for i in 144..<256 { lengths[i] = 9 }
        for i in 256..<280 { lengths[i] = 7 }
        return try! Huffman(lengths: lengths[...], context: "fixed code")
    }()
    static let fixedDistances: Huffman = try! Huffman(lengths: [Int](repeating: 5, count: 30)[...], context: "fixed code")

    mutating func dynamic() throws {
        let nlen = try bits(5) + 257
        let ndist = try bits(5) + 1
        let ncode = try bits(4) + 4
        guard nlen <= 286, ndist <= 30 else { throw EdgeError("\(context): bad dynamic block counts") }
        let order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
        var lengths = [Int](repeating: 0, count: 19)
        for i in 0..<ncode { lengths[order[i]] = try bits(3) }
        let lengthCode = try Huffman(lengths: lengths[...], context: context)
        lengths = [Int](repeating: 0, count: nlen + ndist)
        var index = 0
        while index < nlen + ndist {
            let symbol = try decode(lengthCode)
            if symbol < 16 {
                lengths[index] = symbol
                index += 1
                continue
            }
            var value = 0
            var repeatCount: Int
            switch symbol {
            case 16:
                guard index > 0 else { throw EdgeError("\(context): repeat with no previous code length") }
                value = lengths[index - 1]
                repeatCount = 3 + (try bits(2))
            case 17: repeatCount = 3 + (try bits(3))
            default: repeatCount = 11 + (try bits(7))
            }
            guard index + repeatCount <= nlen + ndist else { throw EdgeError("\(context): too many code lengths") }
            for _ in 0..<repeatCount {
                lengths[index] = value
                index += 1
            }
        }
        guard lengths[256] != 0 else { throw EdgeError("\(context): dynamic block has no end-of-block code") }
        let literals = try Huffman(lengths: lengths[0..<nlen], context: context)
        let distances = try Huffman(lengths: lengths[nlen...], context: context)
        try codes(literals, distances)
    }

    mutating func codes(_ literals: Huffman, _ distances: Huffman) throws {
        while true {
            let symbol = try decode(literals)
            if symbol < 256 {
                guard output.count < limit else { throw EdgeError("\(context): inflates to more than \(limit) bytes") }
                output.append(UInt8(symbol))
            } else if symbol == 256 {
                return
            } else {
                let code = symbol - 257
                guard code < 29 else { throw EdgeError("\(context): invalid length code \(symbol)") }
                let length = Zlib.lengthBase[code] + (try bits(Zlib.lengthExtra[code]))
                let distanceCode = try decode(distances)
                guard distanceCode < 30 else { throw EdgeError("\(context): invalid distance code \(distanceCode)") }
                let distance = Zlib.distanceBase[distanceCode] + (try bits(Zlib.distanceExtra[distanceCode]))
                guard distance <= output.count else {
                    throw EdgeError("\(context): distance \(distance) reaches before the start of the data")
                }
                guard output.count + length <= limit else { throw EdgeError("\(context): inflates to more than \(limit) bytes") }
                // Byte by byte: a match may overlap the bytes it is producing (distance < length).
                let from = output.count - distance
                for k in 0..<length { output.append(output[from + k]) }
            }
        }
    }
}
