/// CLIPTokenizer's text clean-up and pre-tokenizer, as the `tokenizers` library runs them for transformers'
/// CLIPTokenizer:
///
/// - normalizer: NFC, every run of `\s` replaced by one space, lower-casing (char by char, Rust's
///   `char::to_lowercase`);
/// - pre-tokenizer: the regex
///   `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`, keeping the
///   matches and dropping what lies between them (white space), then ByteLevel's GPT-2 regex on each piece,
///   which splits the `<|startoftext|>` / `<|endoftext|>` pieces again into `<|`, the word and `|>`.
///
/// Both regexes are written out by hand (no regex engine), and the character classes and lower case come from
/// `UnicodeTables`, which records what the `tokenizers` library does, not what this Swift runtime's Unicode
/// data says. NFC comes from the standard library, confined to what that library's NFC acts on (`composed`).
enum TextSplitting {
    /// What the regexes see a code point as.
    enum CharacterClass: Equatable {
        case whitespace, letter, number, other
    }

    /// True when `value` lies in one of `table`'s flattened inclusive ranges (sorted, non-overlapping).
    static func inRanges(_ table: [UInt32], _ value: UInt32) -> Bool {
        var lo = 0, hi = table.count / 2
        while lo < hi {
            let mid = (lo + hi) / 2
            if value < table[2 * mid] {
                hi = mid
            } else if value > table[2 * mid + 1] {
                lo = mid + 1
            } else {
                return true
            }
        }
        return false
    }

    static func characterClass(_ scalar: Unicode.Scalar) -> CharacterClass {
        let v = scalar.value
        if v < 0x80 {
            // ASCII is most of every prompt: answer it without a table search.
            switch scalar {
            case "a"..."z", "A"..."Z": return .letter
            case "0"..."9": return .number
            case " ", "\t", "\n", "\u{0B}", "\u{0C}", "\r": return .whitespace
            default: return .other
            }
        }
        if inRanges(UnicodeTables.letters, v) { return .letter }
        if inRanges(UnicodeTables.numbers, v) { return .number }
        if inRanges(UnicodeTables.whitespace, v) { return .whitespace }
        return .other
    }

    /// Appends the lower case of `scalar` (one scalar, or more for a few such as U+0130 'İ').
    static func appendLowercase(_ scalar: Unicode.Scalar, to out: inout [Unicode.Scalar]) {
        let v = scalar.value
        if v < 0x80 {
            out.append((0x41 ... 0x5A).contains(v) ? Unicode.Scalar(UInt8(v) + 32) : scalar)
            return
        }
        if let expansion = UnicodeTables.lowercaseExpansions[v] {
            for e in expansion { if let s = Unicode.Scalar(e) { out.append(s) } }
            return
        }
        // The last run that starts at or before v; runs are sorted and do not overlap.
        let runs = UnicodeTables.lowercaseRuns
        var lo = 0, hi = runs.count / 4
        while lo < hi {
            let mid = (lo + hi) / 2
            if Int64(runs[4 * mid]) <= Int64(v) { lo = mid + 1 } else { hi = mid }
        }
        if lo > 0 {
            let r = 4 * (lo - 1)
            let first = Int64(runs[r]), last = Int64(runs[r + 1]), stride = Int64(runs[r + 2]), delta = Int64(runs[r + 3])
            let x = Int64(v)
            if x <= last, (x - first) % stride == 0, let mapped = Unicode.Scalar(UInt32(truncatingIfNeeded: x + delta)) {
                out.append(mapped)
                return
            }
        }
        out.append(scalar)
    }

    /// The normalizer: NFC, each run of white space to one space, then lower case.
    static func normalize(_ text: String) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.utf8.count)
        var inSpace = false
        for scalar in composed(text) {
            if characterClass(scalar) == .whitespace {
                if !inSpace { out.append(" ") }
                inSpace = true
            } else {
                inSpace = false
                appendLowercase(scalar, to: &out)
            }
        }
        return out
    }

    /// NFC as the `tokenizers` library computes it. Its Unicode data is older than the Swift runtime's (it does
    /// not know U+07FD, a Unicode 11 mark, and leaves it where it stands), so the standard library's NFC
    /// (`String._nfcCodeUnits`; Foundation's `precomposedStringWithCanonicalMapping` composed Hangul
    /// differently) runs only on runs of the code points `UnicodeTables.composing` lists, which that library's
    /// NFC acts on; every other code point is a starter that composes with nothing there, so it ends a run and
    /// is kept as it is. Within a run the two agree, Unicode's stability policy fixing the combining classes and
    /// compositions of characters once assigned.
    static func composed(_ text: String) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.utf8.count)
        var run = String.UnicodeScalarView()
        func flush() {
            guard !run.isEmpty else { return }
            out.append(contentsOf: String(decoding: String(run)._nfcCodeUnits, as: UTF8.self).unicodeScalars)
            run.removeAll(keepingCapacity: true)
        }
        for scalar in text.unicodeScalars {
            if inRanges(UnicodeTables.composing, scalar.value) {
                run.append(scalar)
            } else {
                flush()
                out.append(scalar)
            }
        }
        flush()
        return out
    }

    /// The pre-tokenizer: CLIP's regex, then ByteLevel's, as pieces of the normalized text.
    static func pieces(_ text: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
        var out: [ArraySlice<Unicode.Scalar>] = []
        for piece in scan(text[...], literals: true, numberRuns: false) {
            out.append(contentsOf: scan(piece, literals: false, numberRuns: true))
        }
        return out
    }

    private static let specialLiterals: [[Unicode.Scalar]] = [Array("<|startoftext|>".unicodeScalars), Array("<|endoftext|>".unicodeScalars)]
    private static let contractions: [[Unicode.Scalar]] = ["s", "t", "re", "ve", "m", "ll", "d"].map { Array($0.unicodeScalars) }

    /// One left-to-right pass of a regex of the form
    /// `[literals|]'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}(+)|[^\s\p{L}\p{N}]+`: at each position the first
    /// alternative that matches wins (a backtracking engine's ordered alternation); white space matches
    /// nothing and is dropped. `literals` adds CLIP's two special-token alternatives in front; `numberRuns`
    /// makes `\p{N}` greedy (GPT-2's `\p{N}+`) instead of CLIP's single digit.
    private static func scan(_ text: ArraySlice<Unicode.Scalar>, literals: Bool, numberRuns: Bool) -> [ArraySlice<Unicode.Scalar>] {
        var out: [ArraySlice<Unicode.Scalar>] = []
        var i = text.startIndex
        let end = text.endIndex
        func hasPrefix(_ p: [Unicode.Scalar], at start: Int) -> Bool {
            guard end - start >= p.count else { return false }
            for k in 0 ..< p.count where text[start + k] != p[k] { return false }
            return true
        }
        while i < end {
            var literal = 0
            if literals, let lit = specialLiterals.first(where: { hasPrefix($0, at: i) }) { literal = lit.count }
            if literal == 0, text[i] == "'", let c = contractions.first(where: { hasPrefix($0, at: i + 1) }) { literal = 1 + c.count }
            if literal > 0 {
                out.append(text[i ..< i + literal])
                i += literal
                continue
            }
            let kind = characterClass(text[i])
            var j = i + 1
            switch kind {
            case .whitespace:
                i = j
                continue
            case .letter, .other:
                while j < end, characterClass(text[j]) == kind { j += 1 }
            case .number:
                if numberRuns { while j < end, characterClass(text[j]) == .number { j += 1 } }
            }
            out.append(text[i ..< j])
            i = j
        }
        return out
    }
}
