// libFuzzer target: CLIP's tokenizer. An input whose first byte is even is a compact serialised tokenizer
// (CompactForm.swift) to parse; an accepted one must encode a prompt and serialise back to the same bytes. An
// odd first byte makes the rest a prompt (invalid UTF-8 decodes to U+FFFD) for the real CLIP tokenizer built
// from Tests/Fixtures/tokenizer with SD 2.x's config (its "!" special token and a normalized bos): every
// encoding must be model_max_length ids from the vocabulary, bos first, eos before the padding.
import _EdgeCore
import EdgeConvert
import EdgeText

/// Built once per process; immutable afterwards. Run from the repository root (tools/fuzz/run.sh does).
let clip: CLIPTokenizer = {
    do {
        let root = "Tests/Fixtures/tokenizer"
        let vocab = try DiffusersTokenizer.vocabulary(try JSONValue.parse(try readWholeFile(root + "/vocab.json"), context: "vocab.json"), file: "vocab.json")
        let merges = try DiffusersTokenizer.merges(try readWholeFile(root + "/merges.txt"), file: "merges.txt")
        let config = try DiffusersTokenizer.config(
            tokenizerConfig: try JSONValue.parse(try readWholeFile(root + "/sd2/tokenizer_config.json"), context: "tokenizer_config.json"),
            file: "tokenizer_config.json",
            specialTokensMap: try JSONValue.parse(try readWholeFile(root + "/sd2/special_tokens_map.json"), context: "special_tokens_map.json"),
            mapFile: "special_tokens_map.json", vocabulary: vocab)
        return try CLIPTokenizer(vocabulary: vocab, merges: merges, config: config)
    } catch {
        fatalError("fuzz set-up (run from the repository root): \(error)")
    }
}()

let clipIDs = Set(clip.vocabulary.values)

func check(_ tokenizer: CLIPTokenizer, _ prompt: String, known: Set<Int32>) {
    let ids = tokenizer.encode(prompt)
    let tokens = tokenizer.tokens(prompt)
    precondition(tokens.allSatisfy { known.contains($0) })
    let body = Array(tokens.prefix(tokenizer.config.maxLength - 2))
    let padding = Array(repeating: tokenizer.padID, count: tokenizer.config.maxLength - 2 - body.count)
    precondition(ids == [tokenizer.bosID] + body + [tokenizer.eosID] + padding)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizer(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let rest = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    if data[0] & 1 == 0 {
        guard let tokenizer = try? CLIPTokenizer(compactForm: rest, context: "fuzz") else { return 0 }
        check(tokenizer, "a photo of an astronaut, <|endoftext|> 123 Ünïcödé 😀!", known: Set(tokenizer.vocabulary.values))
        precondition(tokenizer.compactForm() == rest, "compact form does not round-trip")
    } else {
        check(clip, String(decoding: rest, as: UTF8.self), known: clipIDs)
    }
    return 0
}
