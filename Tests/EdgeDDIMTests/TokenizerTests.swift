import Foundation
import XCTest
import _EdgeCore
import EdgeConvert
import EdgeText

/// CLIP's tokenizer against transformers' CLIPTokenizer: Tests/Fixtures/tokenizer/corpus.json holds the ids
/// transformers gives for every prompt under every config layout (tools/reference/make_tokenizer_fixtures.py).
final class TokenizerTests: XCTestCase {
    static let root = fixturesRoot + "/tokenizer"

    struct Corpus {
        /// Config folder name to transformers' pad_token_id.
        var padIDs: [String: Int32] = [:]
        var maxLength: [String: Int] = [:]
        /// Prompt and, per config, transformers' input_ids up to the end of the attention mask.
        var prompts: [(text: String, ids: [String: [Int32]])] = []
        /// Per config, how many prompts transformers truncates.
        var truncated: [String: Int] = [:]
    }

    static func corpus(_ path: String = root + "/corpus.json") throws -> Corpus {
        let json = try JSONValue.parse(try readWholeFile(path), context: path)
        var c = Corpus()
        guard case .object(let configs)? = json["configs"], case .array(let prompts)? = json["prompts"] else { throw EdgeError("corpus.json: unexpected layout") }
        for (name, value) in configs {
            guard case .int(let pad)? = value["pad_token_id"], case .int(let length)? = value["model_max_length"],
                  case .int(let truncated)? = value["truncated_prompts"] else { throw EdgeError("corpus.json: config \(name)") }
            c.padIDs[name] = Int32(pad)
            c.maxLength[name] = Int(length)
            c.truncated[name] = Int(truncated)
        }
        for p in prompts {
            guard let text = p["prompt"]?.stringValue, case .object(let perConfig)? = p["ids"] else { throw EdgeError("corpus.json: bad prompt entry") }
            var ids: [String: [Int32]] = [:]
            for (name, list) in perConfig {
                guard case .array(let values) = list else { throw EdgeError("corpus.json: bad ids") }
                ids[name] = try values.map { guard case .int(let v) = $0 else { throw EdgeError("corpus.json: bad id") }; return Int32(v) }
            }
            c.prompts.append((text, ids))
        }
        return c
    }

    /// transformers' full input_ids: the stored ids, then its pad_token_id up to model_max_length.
    static func expected(_ corpus: Corpus, _ ids: [Int32], config: String) -> [Int32] {
        ids + Array(repeating: corpus.padIDs[config] ?? -1, count: (corpus.maxLength[config] ?? 0) - ids.count)
    }

    /// A pipeline's tokenizer/ folder for a config: its two JSON files beside links to the shared vocab and merges.
    func tokenizerFolder(_ config: String) throws -> String {
        let dir = try SamplerFixtures.temporaryDirectory(self)
        let fm = FileManager.default
        for name in ["vocab.json", "merges.txt"] { try fm.createSymbolicLink(atPath: dir + "/" + name, withDestinationPath: Self.root + "/" + name) }
        for name in ["tokenizer_config.json", "special_tokens_map.json"] { try fm.copyItem(atPath: Self.root + "/\(config)/" + name, toPath: dir + "/" + name) }
        return dir
    }

    static let configs = ["sd1", "sd2", "sd1_hub", "sd1_legacy"]

    func testCorpusMatchesTransformers() throws {
        let corpus = try Self.corpus()
        XCTAssertGreaterThanOrEqual(corpus.prompts.count, 500)
        XCTAssertEqual(Set(corpus.padIDs.keys), Set(Self.configs))
        for config in Self.configs {
            let tokenizer = try DiffusersTokenizer.read(folder: try tokenizerFolder(config))
            var mismatches = 0, truncated = 0
            for (text, ids) in corpus.prompts {
                guard let want = ids[config] else { XCTFail("no ids for \(config)"); continue }
                let got = tokenizer.encode(text)
                if got != Self.expected(corpus, want, config: config) {
                    mismatches += 1
                    if mismatches <= 5 { XCTFail("\(config): \(text.debugDescription) gives \(got), transformers \(want)") }
                }
                if tokenizer.tokens(text).count > tokenizer.config.maxLength - 2 { truncated += 1 }
            }
            XCTAssertEqual(mismatches, 0, "\(config): \(mismatches) of \(corpus.prompts.count) prompts differ")
            XCTAssertEqual(truncated, corpus.truncated[config], "\(config): prompts truncated")
            print("tokenizer corpus, \(config): \(corpus.prompts.count - mismatches) of \(corpus.prompts.count) prompts equal transformers' ids; \(truncated) truncated")
        }
    }

    func testTruncationKeepsEOSLast() throws {
        let tokenizer = try DiffusersTokenizer.read(folder: try tokenizerFolder("sd1"))
        let corpus = try Self.corpus()
        let long = try XCTUnwrap(corpus.prompts.first { tokenizer.tokens($0.text).count > 200 })
        let ids = tokenizer.encode(long.text)
        XCTAssertEqual(ids.count, 77)
        XCTAssertEqual(ids.first, tokenizer.bosID)
        XCTAssertEqual(ids.last, tokenizer.eosID)
        XCTAssertEqual(Array(ids[1 ..< 76]), Array(tokenizer.tokens(long.text).prefix(75)))
        XCTAssertEqual(ids, Self.expected(corpus, try XCTUnwrap(long.ids["sd1"]), config: "sd1"))
    }

    func testPaddingComesFromTheConfig() throws {
        let corpus = try Self.corpus()
        let sd1 = try DiffusersTokenizer.read(folder: try tokenizerFolder("sd1"))
        let sd2 = try DiffusersTokenizer.read(folder: try tokenizerFolder("sd2"))
        XCTAssertEqual(sd1.padID, corpus.padIDs["sd1"])
        XCTAssertEqual(sd2.padID, corpus.padIDs["sd2"])
        XCTAssertNotEqual(sd1.padID, sd2.padID)
        let short = sd2.encode("a photo of a cat")
        XCTAssertEqual(short.count, 77)
        let end = try XCTUnwrap(short.firstIndex(of: sd2.eosID))
        XCTAssertTrue(short[(end + 1)...].allSatisfy { $0 == sd2.padID })
    }

    func testEmptyPrompt() throws {
        let corpus = try Self.corpus()
        let empty = try XCTUnwrap(corpus.prompts.first { $0.text.isEmpty })
        for config in Self.configs {
            let tokenizer = try DiffusersTokenizer.read(folder: try tokenizerFolder(config))
            XCTAssertEqual(tokenizer.tokens(""), [])
            XCTAssertEqual(tokenizer.encode(""), Self.expected(corpus, try XCTUnwrap(empty.ids[config]), config: config))
        }
    }

    func testVeryLongInputStaysFast() throws {
        let tokenizer = try DiffusersTokenizer.read(folder: try tokenizerFolder("sd1"))
        // One 200,000-letter word and 50,000 punctuation marks: BPE's heap keeps this O(n log n).
        let start = DispatchTime.now().uptimeNanoseconds
        XCTAssertEqual(tokenizer.encode(String(repeating: "ab", count: 100_000)).count, 77)
        XCTAssertEqual(tokenizer.encode(String(repeating: "!?", count: 25_000)).count, 77)
        XCTAssertLessThan(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9, 20)
    }

    func testCompactFormRoundTrip() throws {
        let corpus = try Self.corpus()
        for config in ["sd2", "sd1_hub"] {
            let tokenizer = try DiffusersTokenizer.read(folder: try tokenizerFolder(config))
            let bytes = tokenizer.compactForm()
            let back = try CLIPTokenizer(compactForm: bytes)
            XCTAssertEqual(back.config, tokenizer.config)
            XCTAssertEqual(back.vocabulary, tokenizer.vocabulary)
            XCTAssertTrue(back.merges.elementsEqual(tokenizer.merges) { $0 == $1 })
            XCTAssertEqual(back.compactForm(), bytes)
            for (text, ids) in corpus.prompts {
                XCTAssertEqual(back.encode(text), Self.expected(corpus, try XCTUnwrap(ids[config]), config: config))
            }
            print("tokenizer compact form (\(config)): \(bytes.count) bytes")
        }
    }

    func testCompactFormRejectsBadInput() throws {
        let bytes = try DiffusersTokenizer.read(folder: try tokenizerFolder("sd1")).compactForm()
        // Every cut in the header and the first entries, then a spread through the body.
        var cuts = Array(0 ..< 200) + Array(stride(from: 200, to: bytes.count, by: bytes.count / 97))
        cuts.append(bytes.count - 1)
        for cut in cuts {
            XCTAssertThrowsError(try CLIPTokenizer(compactForm: Array(bytes[..<cut])), "accepted \(cut) of \(bytes.count) bytes")
        }
        func patched(_ offset: Int, _ value: UInt8) -> [UInt8] {
            var b = bytes
            b[offset] = value
            return b
        }
        let bad: [(String, [UInt8], String)] = [
            ("magic", patched(0, 0x41), "bad magic"),
            ("version", patched(8, 9), "version 9"),
            ("max length", patched(12, 1), "model_max_length 1"),
            ("vocabulary size", patched(19, 0x7F), "vocabulary entries"),
            ("merge count", patched(23, 0x7F), "merges"),
            ("trailing byte", bytes + [0], "follow"),
            ("special flags", patched(bytes.count - 1, 7), "flags"),
            ("first id", patched(40, 5), "vocabulary"),
        ]
        for (what, input, message) in bad {
            XCTAssertThrowsError(try CLIPTokenizer(compactForm: input, context: "t.bin"), what) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(message) && text.hasPrefix("t.bin") && !text.contains("\n"), "\(what): \(text)")
            }
        }
    }

    /// A tokenizer folder whose files are replaced one at a time by malformed ones: each is refused, naming the file.
    func testMalformedFilesAreRefused() throws {
        let fm = FileManager.default
        let smallVocab = #"{"a": 0, "b": 1, "ab</w>": 2, "<|startoftext|>": 3, "<|endoftext|>": 4}"#
        let cases: [(file: String, content: String?, message: String)] = [
            ("vocab.json", nil, "vocab.json is missing"),
            ("merges.txt", nil, "merges.txt is missing"),
            ("tokenizer_config.json", nil, "tokenizer_config.json is missing"),
            ("vocab.json", "[1, 2]", "vocab.json: not a JSON object"),
            ("vocab.json", #"{"a": "zero"}"#, "vocab.json: the id of"),
            ("vocab.json", #"{"a": -1}"#, "vocab.json: the id of"),
            ("vocab.json", #"{"a": 0, "a": 1}"#, "appears twice"),
            ("vocab.json", #"{"a": 0"#, "vocab.json is not valid JSON"),
            ("vocab.json", smallVocab, "merge 1's first token"),
            ("merges.txt", "#version: 0.2\nt h\nthree parts here\n", "merges.txt: line 3"),
            ("merges.txt", "#version: 0.2\n\nt h\n", "merges.txt: line 2"),
            ("merges.txt", "#version: 0.2\nzzqq xxyy\n", "merge 1's first token"),
            ("merges.txt", "\u{FF}", "merges.txt: not valid UTF-8"),
            ("tokenizer_config.json", "{", "tokenizer_config.json is not valid JSON"),
            ("special_tokens_map.json", #"{"pad_token": "<|nosuchtoken|>"}"#, "special_tokens_map.json: pad_token \"<|nosuchtoken|>\" is not in vocab.json"),
            ("tokenizer_config.json", #"{"bos_token": "<|startoftext|>"}"#, "model_max_length is missing"),
            ("tokenizer_config.json", #"{"model_max_length": 1e30}"#, "model_max_length is not an integer"),
            ("tokenizer_config.json", #"{"model_max_length": 1000000}"#, "out of range"),
            ("tokenizer_config.json", #"{"model_max_length": 77, "tokenizer_class": "T5Tokenizer"}"#, "only CLIPTokenizer"),
            ("special_tokens_map.json", #"{"bos_token": {"content": "<|startoftext|>", "lstrip": true}}"#, "special_tokens_map.json: bos_token.lstrip is true"),
            ("tokenizer_config.json", #"{"model_max_length": 77, "added_tokens_decoder": {"5": {"content": "<|endoftext|>"}}}"#, "added_tokens_decoder[5]"),
            ("tokenizer_config.json", #"{"model_max_length": 77, "additional_special_tokens": ["<x>"]}"#, "additional_special_tokens is not supported"),
            ("special_tokens_map.json", "[]", "special_tokens_map.json: not a JSON object"),
            ("special_tokens_map.json", #"{"pad_token": 5}"#, "special_tokens_map.json: pad_token is neither"),
            ("special_tokens_map.json", #"{"pad_token": {"normalized": true}}"#, "special_tokens_map.json: pad_token has no content"),
        ]
        for (file, content, message) in cases {
            let dir = try tokenizerFolder("sd1")
            let path = dir + "/" + file
            try fm.removeItem(atPath: path)
            if let content { try Data(content.utf8).write(to: URL(fileURLWithPath: path)) }
            if content == "\u{FF}" { try Data([0xFF]).write(to: URL(fileURLWithPath: path)) }
            XCTAssertThrowsError(try DiffusersTokenizer.read(folder: dir), "\(file): \(content ?? "missing")") { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(message) && !text.contains("\n"), "\(file) \(content ?? "missing"): \(text)")
            }
        }
        // special_tokens_map.json is optional (newer transformers writes tokenizer_config.json alone).
        let dir = try tokenizerFolder("sd1")
        try fm.removeItem(atPath: dir + "/special_tokens_map.json")
        XCTAssertEqual(try DiffusersTokenizer.read(folder: dir).padID, try Self.corpus().padIDs["sd1"])
    }

    /// A larger random corpus written on demand (`make_tokenizer_fixtures.py --extra 6000`, random code points from
    /// all of Unicode): mismatches are counted and listed, not failed, because the Swift runtime's NFC follows its
    /// own Unicode version (a mark newer than the runtime's data composes differently from `tokenizers`). The
    /// committed corpus above must match exactly.
    func testExtraRandomCorpusWhenGiven() throws {
        guard let path = ProcessInfo.processInfo.environment["EDGE_DDIM_TOKENIZER_EXTRA"] else {
            throw XCTSkip("set EDGE_DDIM_TOKENIZER_EXTRA to a file from make_tokenizer_fixtures.py --extra N")
        }
        let corpus = try Self.corpus(path)
        for config in corpus.padIDs.keys.sorted() {
            let tokenizer = try DiffusersTokenizer.read(folder: try tokenizerFolder(config))
            var mismatches: [String] = []
            for (text, ids) in corpus.prompts where tokenizer.encode(text) != Self.expected(corpus, ids[config] ?? [], config: config) {
                mismatches.append(text.unicodeScalars.map { $0.value < 0x80 ? String($0) : "U+" + String($0.value, radix: 16, uppercase: true) + " " }.joined())
            }
            print("tokenizer extra corpus, \(config): \(corpus.prompts.count - mismatches.count) of \(corpus.prompts.count) equal transformers' ids")
            for m in mismatches.prefix(10) { print("  differs: \(m)") }
        }
    }

    /// The fuzz seeds (tools/fuzz/make_corpus.py writes them from CompactForm.swift's description, in Python)
    /// parse, round-trip, and encode.
    func testFuzzSeedsFollowTheDocumentedFormat() throws {
        let folder = repositoryRoot + "/Tests/Fuzz/corpus/tokenizer"
        var parsed = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: folder).sorted() where name.hasSuffix(".bin") {
            let bytes = Array(try readWholeFile(folder + "/" + name).dropFirst())
            let tokenizer = try CLIPTokenizer(compactForm: bytes, context: name)
            XCTAssertEqual(tokenizer.compactForm(), bytes, name)
            let ids = tokenizer.encode("abc the!!")
            XCTAssertEqual(ids.count, tokenizer.config.maxLength)
            XCTAssertEqual(ids.first, tokenizer.bosID)
            parsed += 1
        }
        XCTAssertEqual(parsed, 2)
    }

    /// The public initialiser from vocabulary, merges and config gives what the folder reader gives.
    func testDirectInitialiserMatchesFolderReader() throws {
        let corpus = try Self.corpus()
        let vocab = try DiffusersTokenizer.vocabulary(try JSONValue.parse(try readWholeFile(Self.root + "/vocab.json"), context: "v"), file: "v")
        let merges = try DiffusersTokenizer.merges(try readWholeFile(Self.root + "/merges.txt"), file: "m")
        XCTAssertEqual(vocab.count, 49408)
        XCTAssertEqual(merges.count, 48894)
        // sd1's config is CLIPTokenizer's defaults: bos, eos and pad (= eos) matched as written.
        let tokenizer = try CLIPTokenizer(vocabulary: vocab, merges: merges, config: CLIPTokenizer.Config())
        let fromFolder = try DiffusersTokenizer.read(folder: try tokenizerFolder("sd1"))
        XCTAssertEqual(tokenizer.config, fromFolder.config)
        for (text, ids) in corpus.prompts.prefix(100) {
            XCTAssertEqual(tokenizer.encode(text), Self.expected(corpus, try XCTUnwrap(ids["sd1"]), config: "sd1"))
        }
    }

    /// Which special tokens are matched in the lower-cased text follows the config: sd1_hub's
    /// added_tokens_decoder marks bos `normalized`, so "<|STARTOFTEXT|>" is bos there and BPE pieces in sd1;
    /// "!" is a special token (pad) only in sd2.
    func testSpecialTokenMatchingFollowsTheConfig() throws {
        let sd1 = try DiffusersTokenizer.read(folder: try tokenizerFolder("sd1"))
        let hub = try DiffusersTokenizer.read(folder: try tokenizerFolder("sd1_hub"))
        let sd2 = try DiffusersTokenizer.read(folder: try tokenizerFolder("sd2"))
        XCTAssertEqual(hub.config.specialTokens.first { $0.content == "<|startoftext|>" }?.normalized, true)
        XCTAssertEqual(hub.config.specialTokens.first { $0.content == "<|endoftext|>" }?.normalized, false)
        XCTAssertEqual(hub.tokens("<|STARTOFTEXT|>x").first, hub.bosID)
        XCTAssertNotEqual(sd1.tokens("<|STARTOFTEXT|>x").first, sd1.bosID)
        XCTAssertEqual(sd2.tokens("wow!"), sd2.tokens("wow") + [sd2.padID])
        XCTAssertNotEqual(sd1.tokens("wow!").last, sd1.padID)
        // The ids themselves are the corpus's (transformers'): these prompts are in it.
        let corpus = try Self.corpus()
        for text in ["<|STARTOFTEXT|>x", "!"] {
            let entry = try XCTUnwrap(corpus.prompts.first { $0.text == text })
            XCTAssertEqual(hub.encode(text), Self.expected(corpus, try XCTUnwrap(entry.ids["sd1_hub"]), config: "sd1_hub"))
            XCTAssertEqual(sd2.encode(text), Self.expected(corpus, try XCTUnwrap(entry.ids["sd2"]), config: "sd2"))
        }
    }

    /// The tokenizers library's NFC has older Unicode data than the Swift runtime: it leaves a Unicode 11 mark
    /// (U+10F4B, U+07FD) after U+0301 where the runtime's NFC moves it, and the ids follow the library.
    func testMarksNewerThanTheLibrarysNFCStayInPlace() throws {
        let corpus = try Self.corpus()
        let tokenizer = try DiffusersTokenizer.read(folder: try tokenizerFolder("sd1"))
        for text in ["\u{AC00}\u{301}\u{10F4B}", "\u{B2E4}\u{301}\u{7FD} nko"] {
            // The runtime's NFC alone would reorder the two marks.
            XCTAssertNotEqual(String(decoding: text._nfcCodeUnits, as: UTF8.self).unicodeScalars.map(\.value), text.unicodeScalars.map(\.value))
            let entry = try XCTUnwrap(corpus.prompts.first { $0.text == text })
            XCTAssertEqual(tokenizer.encode(text), Self.expected(corpus, try XCTUnwrap(entry.ids["sd1"]), config: "sd1"))
        }
    }

    /// SD 2.x's tokenizer_config.json names `<|endoftext|>` as pad and its special_tokens_map.json `!`; the map
    /// wins, as in transformers (whose pad_token_id the corpus records).
    func testSpecialTokensMapOverridesTokenizerConfig() throws {
        let config = try JSONValue.parse(try readWholeFile(Self.root + "/sd2/tokenizer_config.json"), context: "sd2")
        let map = try JSONValue.parse(try readWholeFile(Self.root + "/sd2/special_tokens_map.json"), context: "sd2")
        XCTAssertEqual(config["pad_token"], .string("<|endoftext|>"))
        XCTAssertEqual(map["pad_token"], .string("!"))
        let tokenizer = try DiffusersTokenizer.read(folder: try tokenizerFolder("sd2"))
        XCTAssertEqual(tokenizer.config.pad, "!")
        XCTAssertEqual(tokenizer.padID, try Self.corpus().padIDs["sd2"])
    }
}
