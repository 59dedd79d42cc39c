import _EdgeCore

/// The tokenizer's compact serialised form: vocabulary, merges and config in one little-endian byte string that a
/// model file can embed (about 1 MB for CLIP's 49,408 tokens, against 1.4 MB of vocab.json + merges.txt).
///
///     offset  size  field
///     0       8     magic "EDGECLIP"
///     8       4     u32 format version, 1
///     12      4     u32 model_max_length (2...4096)
///     16      4     u32 V, vocabulary entries
///     20      4     u32 M, merges
///     24      4     u32 S, special tokens
///     28      4     u32 bos id
///     32      4     u32 eos id
///     36      4     u32 pad id
///     40      ...   V entries, ids strictly increasing: u32 id (< 2^31), u16 byte length L (≥ 1), L bytes of UTF-8
///     ...     8·M   M merges in rank order: u32 left id, u32 right id (the merged token is the vocabulary's
///                   entry for left + right)
///     ...     5·S   S special tokens: u32 id, u8 flags (bit 0: matched in normalized text; other bits 0)
///
/// Nothing may follow. Ids refer to vocabulary entries; every other check is `CLIPTokenizer.init`'s.
extension CLIPTokenizer {
    static let compactMagic: [UInt8] = Array("EDGECLIP".utf8)
    static let compactVersion: UInt32 = 1

    /// This tokenizer in the compact form above.
    public func compactForm() -> [UInt8] {
        var w = ByteWriter()
        w.raw(Self.compactMagic)
        w.u32(Self.compactVersion)
        w.u32(UInt32(config.maxLength))
        let entries = vocabulary.sorted { $0.value < $1.value }
        w.u32(UInt32(entries.count))
        w.u32(UInt32(merges.count))
        w.u32(UInt32(config.specialTokens.count))
        for id in [bosID, eosID, padID] { w.u32(UInt32(bitPattern: id)) }
        for (token, id) in entries {
            w.u32(UInt32(bitPattern: id))
            let bytes = Array(token.utf8)
            w.u16(UInt16(truncatingIfNeeded: bytes.count))
            w.raw(bytes)
        }
        for m in merges {
            w.u32(UInt32(bitPattern: m.left))
            w.u32(UInt32(bitPattern: m.right))
        }
        for s in config.specialTokens {
            w.u32(UInt32(bitPattern: vocabulary[s.content] ?? -1))
            w.u8(s.normalized ? 1 : 0)
        }
        return w.bytes
    }

    /// Reads the compact form; `context` names the source in errors. Refuses truncated, oversized or
    /// inconsistent input with a one-line error.
    public init(compactForm bytes: [UInt8], context: String = "tokenizer") throws {
        let (vocabulary, merges, config) = try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw, context: context)
            guard Array(try r.bytes(8, "magic")) == Self.compactMagic else { throw EdgeError("\(context): not a tokenizer (bad magic)") }
            let version = try r.u32("format version")
            guard version == Self.compactVersion else { throw EdgeError("\(context): tokenizer format version \(version) is not supported (1)") }
            let maxLength = Int(try r.u32("model_max_length"))
            let vocabularyCount = Int(try r.u32("vocabulary size"))
            let mergeCount = Int(try r.u32("merge count"))
            let specialCount = Int(try r.u32("special token count"))
            let bos = try r.u32("bos id"), eos = try r.u32("eos id"), pad = try r.u32("pad id")
            // Each count is checked against the bytes left before anything is reserved for it.
            try r.need(vocabularyCount * 7, "\(vocabularyCount) vocabulary entries")
            var tokens: [UInt32: String] = [:]
            var vocabulary: [String: Int32] = [:]
            tokens.reserveCapacity(vocabularyCount)
            vocabulary.reserveCapacity(vocabularyCount)
            var lastID: Int64 = -1
            for i in 0 ..< vocabularyCount {
                let id = try r.u32("vocabulary entry \(i)'s id")
                guard Int64(id) > lastID, id <= UInt32(Int32.max) else {
                    throw EdgeError("\(context): vocabulary entry \(i)'s id \(id) is not above the previous one or too large")
                }
                lastID = Int64(id)
                let length = Int(try r.u16("vocabulary entry \(i)'s length"))
                guard length > 0 else { throw EdgeError("\(context): vocabulary entry \(i) is empty") }
                let token = try r.utf8(length, "vocabulary entry \(i)")
                guard vocabulary.updateValue(Int32(id), forKey: token) == nil else {
                    throw EdgeError("\(context): vocabulary entry \(i) \(quoted(token)) appears twice")
                }
                tokens[id] = token
            }
            func token(_ id: UInt32, _ what: String) throws -> String {
                guard let t = tokens[id] else { throw EdgeError("\(context): \(what) id \(id) is not in the vocabulary") }
                return t
            }
            try r.need(mergeCount * 8, "\(mergeCount) merges")
            var merges: [(String, String)] = []
            merges.reserveCapacity(mergeCount)
            for i in 0 ..< mergeCount {
                merges.append((try token(try r.u32("merge \(i)"), "merge \(i)'s first"), try token(try r.u32("merge \(i)"), "merge \(i)'s second")))
            }
            try r.need(specialCount * 5, "\(specialCount) special tokens")
            var specials: [SpecialToken] = []
            for i in 0 ..< specialCount {
                let content = try token(try r.u32("special token \(i)"), "special token \(i)'s")
                let flags = try r.u8("special token \(i)'s flags")
                guard flags <= 1 else { throw EdgeError("\(context): special token \(i)'s flags \(flags) are not 0 or 1") }
                specials.append(SpecialToken(content, normalized: flags == 1))
            }
            guard r.remaining == 0 else { throw EdgeError("\(context): \(r.remaining) bytes follow the tokenizer") }
            let config = Config(maxLength: maxLength, bos: try token(bos, "bos"), eos: try token(eos, "eos"), pad: try token(pad, "pad"),
                                specialTokens: specials)
            return (vocabulary, merges, config)
        }
        do {
            try self.init(vocabulary: vocabulary, merges: merges, config: config)
        } catch let e as EdgeError {
            throw EdgeError("\(context): \(e.message)")
        }
    }
}
