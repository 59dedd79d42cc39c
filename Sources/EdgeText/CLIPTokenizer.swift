import _EdgeCore

/// CLIP's byte-level BPE tokenizer, giving the ids of transformers' `CLIPTokenizer` called the way diffusers
/// calls it: `tokenizer(prompt, padding="max_length", max_length=model_max_length, truncation=True)`.
///
/// The steps are those of the `tokenizers` pipeline transformers 5 builds for CLIPTokenizer:
/// 1. special tokens (bos, eos, pad, unk and `added_tokens_decoder`'s) are cut out of the prompt as they stand,
///    leftmost-longest; those marked `normalized` are cut out of the normalized text instead (step 2);
/// 2. the rest is normalized (NFC, white space runs to one space, lower case) and split into pieces
///    (`TextSplitting`);
/// 3. each piece's UTF-8 bytes become byte symbols (GPT-2's byte-to-character table), the last with the `</w>`
///    end-of-word suffix, and are merged by BPE, lowest merge rank first;
/// 4. the ids are truncated to `maxLength - 2`, framed by bos and eos, and padded with the pad token to `maxLength`.
///
/// It is built from a checkpoint's vocabulary, merges and tokenizer config (see `DiffusersTokenizer` in
/// EdgeConvert), or from its compact serialised form (`CompactForm.swift`). Construction validates everything,
/// so `encode` cannot fail.
public struct CLIPTokenizer: Sendable {
    /// A token matched in the prompt itself before BPE. CLIP's are the special tokens; SD 2.x's pad token "!"
    /// is one too, so a "!" in an SD 2.x prompt is id 0, not BPE's "!</w>" (transformers does the same).
    public struct SpecialToken: Equatable, Sendable {
        public var content: String
        /// Matched in the normalized text (lower-cased...) rather than in the prompt as written.
        public var normalized: Bool

        public init(_ content: String, normalized: Bool = false) {
            self.content = content
            self.normalized = normalized
        }
    }

    /// What a checkpoint's tokenizer_config.json / special_tokens_map.json say (token contents, not ids).
    public struct Config: Equatable, Sendable {
        /// `model_max_length`: every encoding is exactly this long.
        public var maxLength: Int
        public var bos: String
        public var eos: String
        /// SD 1.x pads with `<|endoftext|>` (49407), SD 2.x with `!` (0).
        public var pad: String
        /// Cut out of the prompt before BPE, each one id; every content must be a vocabulary token. The
        /// default is bos, eos and pad, matched as written (CLIPTokenizer's own defaults).
        public var specialTokens: [SpecialToken]

        /// A sanity bound on `model_max_length` (CLIP's text encoders take 77 positions).
        public static let maxLengthLimit = 4096

        public init(maxLength: Int = 77, bos: String = "<|startoftext|>", eos: String = "<|endoftext|>", pad: String = "<|endoftext|>",
                    specialTokens: [SpecialToken]? = nil) {
            self.maxLength = maxLength
            self.bos = bos
            self.eos = eos
            self.pad = pad
            self.specialTokens = specialTokens ?? [SpecialToken(bos), SpecialToken(eos)] + (pad == eos ? [] : [SpecialToken(pad)])
        }
    }

    public let config: Config
    public let bosID: Int32
    public let eosID: Int32
    public let padID: Int32
    /// Token content to id, as vocab.json gives it.
    public let vocabulary: [String: Int32]
    /// The merges as id pairs, in rank order (merges.txt's order).
    public let merges: [(left: Int32, right: Int32)]

    /// (left id << 32 | right id) to the merge's rank and the merged token's id.
    private let mergeTable: [UInt64: (rank: Int32, result: Int32)]
    /// Id of each byte's symbol, and of the same symbol with `</w>` (a word's last byte).
    private let byteIDs: [Int32]
    private let lastByteIDs: [Int32]
    /// Special tokens matched before normalization, and after it, as UTF-8 with their ids.
    private let rawSpecials: [(bytes: [UInt8], id: Int32)]
    private let normalizedSpecials: [(bytes: [UInt8], id: Int32)]

    public static let endOfWordSuffix = "</w>"

    /// GPT-2's and CLIP's byte-to-character table: printable Latin-1 bytes stand for themselves, the others take
    /// the code points from U+0100 up, in byte order, so every byte has a visible one-character symbol.
    public static let byteSymbols: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0 ..< 256 {
            let printable = (0x21 ... 0x7E).contains(b) || (0xA1 ... 0xAC).contains(b) || (0xAE ... 0xFF).contains(b)
            // Both are valid scalars: a byte value, or 256 + at most 68.
            table[b] = Unicode.Scalar(printable ? UInt32(b) : next) ?? " "
            if !printable { next += 1 }
        }
        return table
    }()

    /// `merges`: token pairs in rank order (a later duplicate of a pair takes the later rank, as in `tokenizers`).
    /// Throws when a merge's parts or result, a byte symbol, or a configured token is not in the vocabulary.
    public init(vocabulary: [String: Int32], merges: [(String, String)], config: Config) throws {
        guard (2 ... Config.maxLengthLimit).contains(config.maxLength) else {
            throw EdgeError("tokenizer: model_max_length \(config.maxLength) is out of range (2...\(Config.maxLengthLimit))")
        }
        func id(_ token: String, _ what: String) throws -> Int32 {
            guard let id = vocabulary[token] else { throw EdgeError("tokenizer: \(what) \(quoted(token)) is not in the vocabulary") }
            return id
        }
        // What the compact form can hold, and what a vocabulary must be: non-empty tokens with distinct ids.
        var ids = Set<Int32>()
        ids.reserveCapacity(vocabulary.count)
        for (token, id) in vocabulary {
            guard !token.isEmpty, token.utf8.count <= Int(UInt16.max) else { throw EdgeError("tokenizer: a vocabulary token is empty or longer than \(UInt16.max) bytes") }
            guard id >= 0 else { throw EdgeError("tokenizer: vocabulary token \(quoted(token)) has a negative id \(id)") }
            guard ids.insert(id).inserted else { throw EdgeError("tokenizer: vocabulary id \(id) is given to two tokens") }
        }
        var table: [UInt64: (rank: Int32, result: Int32)] = [:]
        var pairs: [(left: Int32, right: Int32)] = []
        table.reserveCapacity(merges.count)
        pairs.reserveCapacity(merges.count)
        guard merges.count < Int(Int32.max) else { throw EdgeError("tokenizer: too many merges (\(merges.count))") }
        for (rank, (a, b)) in merges.enumerated() {
            let left = try id(a, "merge \(rank + 1)'s first token"), right = try id(b, "merge \(rank + 1)'s second token")
            let result = try id(a + b, "merge \(rank + 1)'s result")
            table[Self.pairKey(left, right)] = (Int32(rank), result)
            pairs.append((left, right))
        }
        var byteIDs: [Int32] = [], lastByteIDs: [Int32] = []
        for symbol in Self.byteSymbols {
            byteIDs.append(try id(String(Character(symbol)), "byte symbol"))
            lastByteIDs.append(try id(String(Character(symbol)) + Self.endOfWordSuffix, "byte symbol"))
        }
        var raw: [(bytes: [UInt8], id: Int32)] = [], normalized: [(bytes: [UInt8], id: Int32)] = []
        for token in config.specialTokens {
            guard !token.content.isEmpty else { throw EdgeError("tokenizer: a special token is empty") }
            let tokenID = try id(token.content, "special token")
            if token.normalized {
                // Matched against normalized text, so its own content is normalized too (as `tokenizers` does).
                var s = String.UnicodeScalarView()
                s.append(contentsOf: TextSplitting.normalize(token.content))
                guard !s.isEmpty else { throw EdgeError("tokenizer: special token \(quoted(token.content)) normalizes to nothing") }
                normalized.append((Array(String(s).utf8), tokenID))
            } else {
                raw.append((Array(token.content.utf8), tokenID))
            }
        }
        self.config = config
        self.bosID = try id(config.bos, "bos_token")
        self.eosID = try id(config.eos, "eos_token")
        self.padID = try id(config.pad, "pad_token")
        self.vocabulary = vocabulary
        self.merges = pairs
        self.mergeTable = table
        self.byteIDs = byteIDs
        self.lastByteIDs = lastByteIDs
        self.rawSpecials = raw
        self.normalizedSpecials = normalized
    }

    /// The prompt's ids: exactly `config.maxLength` of them, bos first, eos after the (truncated) tokens, then padding.
    public func encode(_ prompt: String) -> [Int32] {
        let body = tokens(prompt).prefix(config.maxLength - 2)
        var ids: [Int32] = [bosID]
        ids.reserveCapacity(config.maxLength)
        ids.append(contentsOf: body)
        ids.append(eosID)
        ids.append(contentsOf: repeatElement(padID, count: config.maxLength - ids.count))
        return ids
    }

    /// The prompt's token ids before truncation, framing and padding.
    public func tokens(_ prompt: String) -> [Int32] {
        var ids: [Int32] = []
        for segment in Self.split(Array(prompt.utf8), on: rawSpecials) {
            switch segment {
            case .special(let id):
                ids.append(id)
            case .text(let bytes):
                var normalized = String.UnicodeScalarView()
                normalized.append(contentsOf: TextSplitting.normalize(String(decoding: bytes, as: UTF8.self)))
                for inner in Self.split(Array(String(normalized).utf8), on: normalizedSpecials) {
                    switch inner {
                    case .special(let id):
                        ids.append(id)
                    case .text(let text):
                        let scalars = Array(String(decoding: text, as: UTF8.self).unicodeScalars)
                        for piece in TextSplitting.pieces(scalars) { bpe(piece, into: &ids) }
                    }
                }
            }
        }
        return ids
    }

    private enum Segment {
        case text(ArraySlice<UInt8>)
        case special(Int32)
    }

    /// Cuts `text` at every occurrence of a special token, leftmost first and the longest at one position (the
    /// `tokenizers` library's Aho-Corasick LeftmostLongest). Matching whole UTF-8 strings in UTF-8 never
    /// splits a character, so the text segments stay valid UTF-8.
    private static func split(_ text: [UInt8], on specials: [(bytes: [UInt8], id: Int32)]) -> [Segment] {
        guard !specials.isEmpty else { return [.text(text[...])] }
        var out: [Segment] = []
        var start = 0, i = 0
        while i < text.count {
            var best: (length: Int, id: Int32)?
            for s in specials where s.bytes.count > (best?.length ?? 0) && s.bytes.count <= text.count - i {
                if text[i ..< i + s.bytes.count].elementsEqual(s.bytes) { best = (s.bytes.count, s.id) }
            }
            if let best {
                if start < i { out.append(.text(text[start ..< i])) }
                out.append(.special(best.id))
                i += best.length
                start = i
            } else {
                i += 1
            }
        }
        if start < text.count { out.append(.text(text[start...])) }
        return out
    }

    private static func pairKey(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }

    /// BPE of one piece, as `tokenizers`' `Word::merge_all`: a heap of candidate merges ordered by (rank,
    /// position); a popped merge whose symbols have changed since it was pushed is skipped. O(n log n) in the
    /// piece's length, so a very long word cannot stall it.
    private func bpe(_ piece: ArraySlice<Unicode.Scalar>, into ids: inout [Int32]) {
        var bytes: [UInt8] = []
        for s in piece { bytes.append(contentsOf: UTF8.encode(s).map { Array($0) } ?? []) }
        guard !bytes.isEmpty else { return }
        let n = bytes.count
        var symbol = bytes.map { byteIDs[Int($0)] }
        symbol[n - 1] = lastByteIDs[Int(bytes[n - 1])]
        if n == 1 {
            ids.append(symbol[0])
            return
        }
        var next = Array(1 ... n)  // n: none
        var prev = Array(-1 ..< n - 1)
        var alive = [Bool](repeating: true, count: n)
        var heap = MergeHeap()
        for p in 0 ..< n - 1 {
            if let m = mergeTable[Self.pairKey(symbol[p], symbol[p + 1])] { heap.push(.init(rank: m.rank, position: Int32(p), result: m.result)) }
        }
        while let top = heap.pop() {
            let p = Int(top.position)
            guard alive[p], next[p] < n else { continue }
            let q = next[p]
            guard let m = mergeTable[Self.pairKey(symbol[p], symbol[q])], m.result == top.result else { continue }
            symbol[p] = m.result
            alive[q] = false
            next[p] = next[q]
            if next[q] < n { prev[next[q]] = p }
            if prev[p] >= 0, let left = mergeTable[Self.pairKey(symbol[prev[p]], symbol[p])] {
                heap.push(.init(rank: left.rank, position: Int32(prev[p]), result: left.result))
            }
            if next[p] < n, let right = mergeTable[Self.pairKey(symbol[p], symbol[next[p]])] {
                heap.push(.init(rank: right.rank, position: Int32(p), result: right.result))
            }
        }
        var p = 0
        while p < n {
            ids.append(symbol[p])
            p = next[p]
        }
    }
}

/// A binary min-heap of candidate merges, lowest rank first, then leftmost.
private struct MergeHeap {
    struct Entry {
        var rank: Int32
        var position: Int32
        var result: Int32

        func precedes(_ other: Entry) -> Bool { rank != other.rank ? rank < other.rank : position < other.position }
    }

    private var items: [Entry] = []

    mutating func push(_ e: Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].precedes(items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var best = i
                if l < items.count, items[l].precedes(items[best]) { best = l }
                if r < items.count, items[r].precedes(items[best]) { best = r }
                if best == i { break }
                items.swapAt(i, best)
                i = best
            }
        }
        return first
    }
}

/// A token in an error message: quoted, with control characters escaped, cut short if long.
func quoted(_ s: String) -> String {
    let shown = s.unicodeScalars.prefix(40).map { $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0) }.joined()
    return "\"" + shown + (s.unicodeScalars.count > 40 ? "…" : "") + "\""
}
