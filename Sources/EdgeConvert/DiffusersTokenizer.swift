import _EdgeCore
import EdgeText

/// Reads a diffusers pipeline's `tokenizer/` folder (vocab.json, merges.txt, tokenizer_config.json and, if
/// present, special_tokens_map.json) into a `CLIPTokenizer`, resolving the special tokens the way transformers
/// 5's `CLIPTokenizer.from_pretrained` does (checked against it on the layouts in Tests/Fixtures/tokenizer):
///
/// - bos, eos, unk and pad (and sep, cls, mask if set) come from special_tokens_map.json, else
///   tokenizer_config.json, else CLIPTokenizer's defaults (`<|startoftext|>`; `<|endoftext|>` for eos, unk and
///   pad). SD 2.x's map says pad `!` while its config still says `<|endoftext|>`: the map wins, so SD 2.x pads
///   with id 0.
/// - Each becomes a token matched in the prompt. Whether it is matched in the normalized (lower-cased) text is
///   its `added_tokens_decoder` entry's `normalized` when it has one; otherwise the last of these tokens (in
///   the order of `specialTokenKeys`) with that content decides: a plain string is not normalized, an
///   AddedToken object says.
/// - `model_max_length` is required: it is the encoding's length.
///
/// Errors are one line naming the file.
public enum DiffusersTokenizer {
    /// transformers' special-token attributes in its order (the order decides which flags win), with
    /// CLIPTokenizer's defaults; CLIP's configs set no sep, cls or mask token.
    public static let specialTokenKeys: [(key: String, fallback: String?)] = [
        ("bos_token", "<|startoftext|>"), ("eos_token", "<|endoftext|>"), ("unk_token", "<|endoftext|>"), ("sep_token", nil),
        ("pad_token", "<|endoftext|>"), ("cls_token", nil), ("mask_token", nil),
    ]

    public static func read(folder: String) throws -> CLIPTokenizer {
        func bytes(_ name: String, required: Bool = true) throws -> [UInt8]? {
            let path = folder + "/" + name
            guard fileExists(path) else {
                if required { throw EdgeError("\(path) is missing") }
                return nil
            }
            return try readWholeFile(path, maxBytes: maxConfigFileBytes)
        }
        let vocabPath = folder + "/vocab.json", mergesPath = folder + "/merges.txt"
        let configPath = folder + "/tokenizer_config.json", mapPath = folder + "/special_tokens_map.json"
        let vocab = try vocabulary(try JSONValue.parse(try bytes("vocab.json") ?? [], context: vocabPath), file: vocabPath)
        let mergeList = try merges(try bytes("merges.txt") ?? [], file: mergesPath)
        let configJSON = try JSONValue.parse(try bytes("tokenizer_config.json") ?? [], context: configPath)
        let mapJSON = try bytes("special_tokens_map.json", required: false).map { try JSONValue.parse($0, context: mapPath) }
        let config = try self.config(tokenizerConfig: configJSON, file: configPath, specialTokensMap: mapJSON, mapFile: mapPath, vocabulary: vocab)
        do {
            return try CLIPTokenizer(vocabulary: vocab, merges: mergeList, config: config)
        } catch let e as EdgeError {
            // The tokenizer's checks concern the files together (a merge missing from the vocabulary...).
            let message = e.message.hasPrefix("tokenizer: ") ? String(e.message.dropFirst("tokenizer: ".count)) : e.message
            throw EdgeError("\(folder): \(message)")
        }
    }

    /// vocab.json: one JSON object of token to non-negative id, each token and id once.
    public static func vocabulary(_ json: JSONValue, file: String) throws -> [String: Int32] {
        guard case .object(let members) = json else { throw EdgeError("\(file): not a JSON object of token to id") }
        var vocab: [String: Int32] = [:]
        vocab.reserveCapacity(members.count)
        for (token, value) in members {
            guard case .int(let v) = value, let id = Int32(exactly: v), id >= 0 else {
                throw EdgeError("\(file): the id of \(token.debugDescription.prefix(60)) is not an integer from 0 to \(Int32.max)")
            }
            guard vocab.updateValue(id, forKey: token) == nil else { throw EdgeError("\(file): token \(token.debugDescription.prefix(60)) appears twice") }
        }
        return vocab
    }

    /// merges.txt as the `tokenizers` library reads it: lines starting with `#version` are skipped, every other
    /// line is two tokens separated by one space (a trailing `\r` is dropped, as Rust's `lines()` does).
    public static func merges(_ bytes: [UInt8], file: String) throws -> [(String, String)] {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw EdgeError("\(file): not valid UTF-8") }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        var out: [(String, String)] = []
        out.reserveCapacity(lines.count)
        for (number, rawLine) in lines.enumerated() {
            let line = rawLine.last == "\r" ? rawLine.dropLast() : rawLine[...]
            if line.hasPrefix("#version") { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw EdgeError("\(file): line \(number + 1) is not two tokens separated by one space")
            }
            out.append((String(parts[0]), String(parts[1])))
        }
        return out
    }

    /// The special tokens, pad token and length from tokenizer_config.json and special_tokens_map.json.
    public static func config(tokenizerConfig: JSONValue, file: String, specialTokensMap: JSONValue?, mapFile: String,
                              vocabulary: [String: Int32]) throws -> CLIPTokenizer.Config {
        guard case .object = tokenizerConfig else { throw EdgeError("\(file): not a JSON object") }
        if let map = specialTokensMap { guard case .object = map else { throw EdgeError("\(mapFile): not a JSON object") } }
        if let name = tokenizerConfig["tokenizer_class"] {
            guard let s = name.stringValue, ["CLIPTokenizer", "CLIPTokenizerFast"].contains(s) else {
                throw EdgeError("\(file): tokenizer_class is \(name); only CLIPTokenizer is supported")
            }
        }
        let maxLength: Int
        switch tokenizerConfig["model_max_length"] {
        case .int(let v)?:
            guard let n = Int(exactly: v), (2 ... CLIPTokenizer.Config.maxLengthLimit).contains(n) else {
                throw EdgeError("\(file): model_max_length \(v) is out of range (2...\(CLIPTokenizer.Config.maxLengthLimit))")
            }
            maxLength = n
        case nil, .null?: throw EdgeError("\(file): model_max_length is missing; it is the length of every encoding")
        default: throw EdgeError("\(file): model_max_length is not an integer")
        }
        for key in ["additional_special_tokens", "extra_special_tokens"] {
            for (source, name) in [(tokenizerConfig, file), (specialTokensMap, mapFile)] {
                switch source?[key] {
                case nil, .null?: break
                case .array(let a)? where a.isEmpty: break
                case .object(let o)? where o.isEmpty: break
                default: throw EdgeError("\(name): \(key) is not supported (CLIP tokenizers have none)")
                }
            }
        }

        // added_tokens_decoder: id -> AddedToken; its flags win for its content.
        var decoded: [String: Bool] = [:]
        switch tokenizerConfig["added_tokens_decoder"] {
        case nil, .null?: break
        case .object(let entries)?:
            for (key, value) in entries {
                let token = try addedToken(value, file: file, field: "added_tokens_decoder[\(key)]")
                guard let id = Int32(key), vocabulary[token.content] == id else {
                    throw EdgeError("\(file): added_tokens_decoder[\(key)] \(token.content.debugDescription.prefix(60)) is not vocab.json's token \(key); tokens beyond the vocabulary are not supported")
                }
                decoded[token.content] = token.normalized
            }
        default: throw EdgeError("\(file): added_tokens_decoder is not an object")
        }

        var contents: [String: String] = [:]
        var order: [String] = []
        var normalized: [String: Bool] = [:]
        for (key, fallback) in specialTokenKeys {
            let token: CLIPTokenizer.SpecialToken, source: String
            if let v = specialTokensMap?[key], v != .null {
                (token, source) = (try addedToken(v, file: mapFile, field: key), mapFile)
            } else if let v = tokenizerConfig[key], v != .null {
                (token, source) = (try addedToken(v, file: file, field: key), file)
            } else if let fallback {
                (token, source) = (CLIPTokenizer.SpecialToken(fallback), "\(file) (CLIPTokenizer's default)")
            } else {
                continue
            }
            guard vocabulary[token.content] != nil else {
                throw EdgeError("\(source): \(key) \(token.content.debugDescription.prefix(60)) is not in vocab.json; tokens beyond the vocabulary are not supported")
            }
            contents[key] = token.content
            if normalized.updateValue(token.normalized, forKey: token.content) == nil { order.append(token.content) }
        }
        for content in decoded.keys.sorted() where normalized[content] == nil { order.append(content) }
        let specials = order.map { CLIPTokenizer.SpecialToken($0, normalized: decoded[$0] ?? normalized[$0] ?? false) }
        return CLIPTokenizer.Config(maxLength: maxLength, bos: contents["bos_token"] ?? "", eos: contents["eos_token"] ?? "",
                                    pad: contents["pad_token"] ?? "", specialTokens: specials)
    }

    /// A token given as a string, or as an AddedToken object (`content`, `normalized`, `lstrip`, ...).
    static func addedToken(_ value: JSONValue, file: String, field: String) throws -> CLIPTokenizer.SpecialToken {
        switch value {
        case .string(let s):
            guard !s.isEmpty else { throw EdgeError("\(file): \(field) is empty") }
            return CLIPTokenizer.SpecialToken(s)
        case .object:
            guard let content = value["content"]?.stringValue, !content.isEmpty else { throw EdgeError("\(file): \(field) has no content string") }
            func flag(_ name: String) throws -> Bool {
                switch value[name] {
                case nil, .null?: return false
                case .bool(let b)?: return b
                default: throw EdgeError("\(file): \(field).\(name) is not true or false")
                }
            }
            for name in ["lstrip", "rstrip", "single_word"] where try flag(name) {
                throw EdgeError("\(file): \(field).\(name) is true; only tokens matched exactly are supported")
            }
            return CLIPTokenizer.SpecialToken(content, normalized: try flag("normalized"))
        default:
            throw EdgeError("\(file): \(field) is neither a string nor a token object")
        }
    }
}
