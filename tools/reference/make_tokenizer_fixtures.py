#!/usr/bin/env python3
"""Writes Tests/Fixtures/tokenizer/ and Sources/EdgeText/UnicodeTables.swift from transformers' CLIPTokenizer.

- vocab.json and merges.txt: OpenAI's CLIP BPE (open_clip's bpe_simple_vocab_16e6.txt.gz, read from the
  open_clip_torch wheel) written the way CLIPTokenizer reads them: 256 byte symbols, the same with `</w>`,
  the 48,894 merges' results, <|startoftext|>, <|endoftext|> (49,408 entries); merges.txt is `#version: 0.2`
  and the merges, one a line.
- sd1/, sd2/, sd1_hub/, sd1_legacy/: tokenizer_config.json and special_tokens_map.json in the layouts
  diffusers pipelines ship (see CONFIGS); each is loaded with CLIPTokenizer.from_pretrained from a folder that
  also holds the shared vocab.json and merges.txt.
- corpus.json: several hundred prompts (hand-written edge cases plus seeded random ones) and, for every config,
  the input_ids transformers gives with diffusers' call (padding="max_length", max_length=model_max_length,
  truncation=True), stored up to the end of the attention mask; the rest is the config's pad_token_id, which
  the file records. The script checks that this reconstruction equals transformers' full output.
- UnicodeTables.swift: what the `tokenizers` library's own regex engine and Lowercase normalizer do to every
  code point (\\s, \\p{L}, \\p{N}; char::to_lowercase), so the Swift tokenizer does not depend on the Swift
  runtime's Unicode version. A Python re-implementation of the Swift splitting rules with these tables is
  compared with the real pre-tokenizer before anything is written.

Needs transformers and tokenizers (no torch); see tools/reference/README.md.
    python3 tools/reference/make_tokenizer_fixtures.py --wheel /tmp/oc/open_clip_torch-3.3.0-py3-none-any.whl
"""
import argparse
import gzip
import io
import json
import random
import shutil
import sys
import tempfile
import unicodedata
import zipfile
from pathlib import Path

import tokenizers
import transformers
from tokenizers import Regex, normalizers, pre_tokenizers
from transformers import CLIPTokenizer

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "Fixtures" / "tokenizer"
TABLES = ROOT / "Sources" / "EdgeText" / "UnicodeTables.swift"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode():
    """GPT-2's and CLIP's byte-to-character table: printable Latin-1 bytes stand for themselves, the rest
    take the code points from 256 up, in byte order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def read_bpe(wheel):
    with zipfile.ZipFile(wheel) as z:
        raw = z.read("open_clip/bpe_simple_vocab_16e6.txt.gz")
    return gzip.decompress(raw).decode("utf-8").split("\n")


def write_vocab(lines):
    # The same slice as open_clip's SimpleTokenizer and the hub's CLIP vocab: the first line is a header.
    merges = lines[1:49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges] + [BOS, EOS]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408 and len(merges) == 48894
    (OUT / "vocab.json").write_text(json.dumps({v: i for i, v in enumerate(vocab)}, ensure_ascii=False,
                                               separators=(",", ":")), encoding="utf-8")
    (OUT / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")


def added(content, normalized, legacy=False):
    token = {"content": content, "lstrip": False, "normalized": normalized, "rstrip": False, "single_word": False}
    return {"__type": "AddedToken", **token} if legacy else token


# tokenizer_config.json and special_tokens_map.json of each layout.
CONFIGS = {
    # SD 1.x as diffusers' own pipelines save it (transformers 4.2x, plain strings).
    "sd1": ({"add_prefix_space": False, "bos_token": BOS, "do_lower_case": True, "eos_token": EOS, "errors": "replace",
             "model_max_length": 77, "pad_token": EOS, "tokenizer_class": "CLIPTokenizer", "unk_token": EOS},
            {"bos_token": BOS, "eos_token": EOS, "pad_token": EOS, "unk_token": EOS}),
    # SD 2.x (OpenCLIP ViT-H): tokenizer_config.json still says <|endoftext|>, special_tokens_map.json pads with "!",
    # and the map wins; "!" also becomes a special token matched in the prompt.
    "sd2": ({"add_prefix_space": False, "bos_token": added(BOS, True, True), "do_lower_case": True,
             "eos_token": added(EOS, True, True), "errors": "replace", "model_max_length": 77,
             "name_or_path": "openai/clip-vit-large-patch14", "pad_token": EOS,
             "special_tokens_map_file": "./special_tokens_map.json", "tokenizer_class": "CLIPTokenizer",
             "unk_token": added(EOS, True, True)},
            {"bos_token": added(BOS, True), "eos_token": added(EOS, True), "pad_token": "!", "unk_token": added(EOS, True)}),
    # The hub's current layout of SD 1.x: added_tokens_decoder (normalized differs per token), token objects in the map.
    "sd1_hub": ({"add_prefix_space": False,
                 "added_tokens_decoder": {"49406": {**added(BOS, True), "special": True},
                                          "49407": {**added(EOS, False), "special": True}},
                 "bos_token": BOS, "clean_up_tokenization_spaces": True, "do_lower_case": True, "eos_token": EOS,
                 "errors": "replace", "model_max_length": 77, "pad_token": EOS, "tokenizer_class": "CLIPTokenizer",
                 "unk_token": EOS},
                {"bos_token": added(BOS, True), "eos_token": added(EOS, True), "pad_token": EOS, "unk_token": added(EOS, True)}),
    # CompVis/stable-diffusion-v1-4's older layout: AddedToken objects with "__type" in tokenizer_config.json.
    "sd1_legacy": ({"add_prefix_space": False, "bos_token": added(BOS, True, True), "do_lower_case": True,
                    "eos_token": added(EOS, True, True), "errors": "replace", "model_max_length": 77,
                    "name_or_path": "openai/clip-vit-large-patch14", "pad_token": EOS,
                    "special_tokens_map_file": "./special_tokens_map.json", "tokenizer_class": "CLIPTokenizer",
                    "unk_token": added(EOS, True, True)},
                   {"bos_token": added(BOS, True), "eos_token": added(EOS, True), "pad_token": EOS, "unk_token": added(EOS, True)}),
}


def write_configs():
    for name, (config, special) in CONFIGS.items():
        folder = OUT / name
        folder.mkdir()
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
        (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2, ensure_ascii=False) + "\n")


def load(name, scratch):
    """CLIPTokenizer.from_pretrained on a folder holding the config's two files and the shared vocab and merges."""
    folder = Path(scratch) / name
    folder.mkdir()
    for f in ["vocab.json", "merges.txt"]:
        shutil.copyfile(OUT / f, folder / f)
    for f in ["tokenizer_config.json", "special_tokens_map.json"]:
        shutil.copyfile(OUT / name / f, folder / f)
    return CLIPTokenizer.from_pretrained(str(folder))


# ---- prompts ----

HANDWRITTEN = [
    "", " ", "\t\n  \r", "a", "A", "a photo of a cat", "A photo of an astronaut riding a horse on Mars",
    "a photograph of an astronaut riding a horse", "portrait of a woman, oil on canvas, trending on artstation, 8k",
    "cyberpunk city at night, neon lights, rain, highly detailed, octane render",
    "Hello, World!", "hello world!!!", "wow!?!", "!", "!!", "! ! !", "a!b", "(((masterpiece))), [best quality], {ultra-detailed}",
    "(cat:1.2) AND (dog:0.8)", "a--b__c..d", "...", "—em dash– en dash‐", "“smart quotes” and ‘single’", "«guillemets» „low“",
    "it's", "It's", "IT'S", "don't", "DON'T", "you're", "we've", "I'm", "they'll", "she'd", "'s", "'tis", "''s", "rock'n'roll",
    "o'clock", "can't won't shouldn't", "the dog's bone's", "it’s (curly apostrophe)", "l'été à Paris",
    "1", "12", "2024", "3.14159", "1,000,000", "100%", "$5", "€20", "£3.50", "¥100", "1st 2nd 3rd 4th", "4k 8K uhd",
    "v1.5", "sd2.1", "x²+y³", "½ ¼ ¾", "Ⅻ ⅻ Ⅳ", "٣٤٥ ١٢", "१२३ ४", "①②③", "⁰¹²³", "𝟘𝟙𝟚", "1️⃣ 2️⃣ #️⃣",
    "café", "cafe\u0301", "naïve résumé", "nai\u0308ve", "Ångström", "A\u030angstro\u0308m", "\u212bngstr\u00f6m",
    "Crème brûlée", "Zürich", "ÉCOLE", "straße", "STRASSE", "ß ẞ", "İstanbul", "ISTANBUL", "ı dotless", "ΟΔΥΣΣΕΥΣ", "ὈΔΥΣΣΕΎΣ",
    "Σίσυφος", "Москва", "МОСКВА", "Київ", "Ǆemal ǅ ǆ", "ﬁne ﬂower ﬀ", "ＡＢＣ ａｂｃ ０１２", "Ⓐⓑ", "𝐀𝐁𝐂 𝒶𝒷",
    "日本の桜", "東京タワー", "中文提示词，高质量", "北京烤鸭 🦆", "한국어 프롬프트", "\u1100\u1161\u11a8 jamo", "\u110b\u1173\u11af\u1109\u1161",
    "ไทย ภาษา", "العربية جميلة", "עברית", "हिन्दी भाषा", "தமிழ்", "ქართული", "Ελληνικά", "tiếng Việt có dấu", "Ꭰ Cherokee ꭰ",
    "😀", "😀😀😀", "a 😀 b", "🐱‍👤 ninja cat", "👨‍👩‍👧‍👦 family", "👍🏽 thumbs", "👩🏿‍🚀 astronaut", "🏳️‍🌈 flag",
    "🇫🇷🇯🇵 flags", "❤️ heart", "☃ snowman ☀", "🦄unicorn🦄", "✨sparkles✨", "🫠 melting",
    "e\u0301\u0301\u0301", "a\u0328\u0301", "e\u0301\u0323", "\u1e9b\u0323", "\uac00\u0301\U00010F4B",
    "\ub2e4\u0301\u07fd nko", "s\u0899\u3099", "\u03b2\u0301\U00011F42", "a\u0301\u1df6", "x\u0345\u0301\u0316", "\u0301alone", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319algo",
    "tab\tseparated\tvalues", "new\nline", "carriage\r\nreturn", "multiple     spaces", "  leading and trailing  ",
    "nbsp\u00a0here", "ideographic\u3000space", "zero\u200bwidth", "joiner\u200dhere", "soft\u00adhyphen",
    "bom\ufeffin", "line\u2028sep", "para\u2029sep", "nel\u0085next", "thin\u2009space", "em\u2003space",
    "control\x00char", "esc\x1b[0m", "bell\x07", "del\x7f", "replacement\ufffd", "private\ue000use", "astral 𠜎𠜱𠝹",
    "<|startoftext|>", "<|endoftext|>", "<|startoftext|>a photo<|endoftext|>", "<|STARTOFTEXT|>x", "<|ENDOFTEXT|>",
    "<|EndOfText|> mixed", "a<|endoftext|>b", "<|endoftext|><|endoftext|>", "<|startoftext", "endoftext|>", "<|>",
    "<|endof text|>", "Ω<|endoftext|>\u0301", "<|endoftext|>!", "hi! <|endoftext|>!", "html <b>bold</b> &amp;",
    "url https://example.com/path?q=1&r=2#frag", "email someone@example.org", "C:\\Windows\\System32", "#hashtag @mention",
    "snake_case camelCase PascalCase kebab-case", "CamelCaseWordsTogether", "ALLCAPSWORD", "supercalifragilisticexpialidocious",
    "pneumonoultramicroscopicsilicovolcanoconiosis", "a" * 200, "ab" * 120, "lol" * 40, "!" * 100, "1" * 100,
    "😀" * 80, "日本" * 60, "a, " * 100, "the " * 100,
    ", ".join(["masterpiece", "best quality", "ultra detailed", "8k", "photorealistic", "sharp focus", "cinematic lighting",
               "volumetric fog", "depth of field", "bokeh", "golden hour", "rim light", "octane render", "unreal engine 5",
               "trending on artstation", "by greg rutkowski", "by alphonse mucha", "intricate", "elegant", "highly detailed",
               "digital painting", "concept art", "smooth", "illustration", "art by wlop", "4k wallpaper"]),
    "A serene landscape with rolling hills, a crystal-clear lake reflecting the snow-capped mountains, wildflowers in "
    "the foreground, soft morning mist, painted in the style of Albert Bierstadt, with dramatic clouds and rays of "
    "sunlight breaking through, ultra high resolution, award winning photograph, national geographic, 35mm film grain",
]

WORDS = ("a the of and photo portrait painting of cat dog astronaut horse city night forest river mountain castle dragon "
         "robot girl boy woman man old young red blue green golden silver dark bright misty rainy sunny neon cyberpunk "
         "steampunk fantasy medieval futuristic ancient abstract surreal minimalist detailed intricate beautiful cinematic "
         "lighting render unreal engine octane 8k 4k hdr masterpiece trending artstation by greg rutkowski alphonse mucha "
         "studio ghibli pixar disney watercolor oil canvas sketch charcoal pencil digital illustration concept art "
         "landscape seascape skyline sunset sunrise aurora galaxy nebula stars moon ocean waves beach desert jungle "
         "isn't it's we're they've I'm you'll he'd").split()
ACCENTED = "café naïve résumé jalapeño façade über Mädchen señor crème brûlée Ærø Øresund Łódź Škoda Čapek Ýmir þorn ðæt ŞİŞLİ".split()
SCRIPTS = "日本 桜の花 東京 山水画 龍 한국 서울 밤하늘 Москва Ελλάδα العربية עברית हिन्दी ไทย ქართ Հայ".split()
EMOJI = ["😀", "🐱", "🐉", "🌸", "🔥", "✨", "🎨", "🚀", "🌊", "❤️", "👍🏻", "👍🏿", "👩‍🎨", "🧑🏽‍🚀", "👨‍👩‍👧", "🏳️‍🌈", "🇯🇵", "☕", "⭐", "🌙"]
PUNCT = list(",.;:!?-_()[]{}<>\"'/\\|@#$%^&*+=~`") + ["...", "!!", "?!", "--", "—", "…", "、", "。", "「", "」", "·", "•"]
SPACES = [" ", " ", " ", "  ", "\t", "\n", " \n ", "\u00a0", "\u3000", "\u2009", ""]
COMBINING = ["\u0301", "\u0300", "\u0308", "\u0327", "\u0303", "\u030a", "\u0323"]


def random_prompt(rng, long=False):
    n = rng.randint(60, 160) if long else rng.randint(1, 30)
    parts = []
    for _ in range(n):
        r = rng.random()
        if r < 0.55:
            w = rng.choice(WORDS)
            c = rng.random()
            if c < 0.1:
                w = w.upper()
            elif c < 0.25:
                w = w.capitalize()
            parts.append(w)
        elif r < 0.63:
            parts.append(rng.choice(ACCENTED))
        elif r < 0.70:
            parts.append(rng.choice(SCRIPTS))
        elif r < 0.77:
            parts.append(rng.choice(EMOJI))
        elif r < 0.87:
            parts.append(rng.choice(PUNCT))
        elif r < 0.93:
            parts.append(str(rng.randint(0, 10 ** rng.randint(1, 6))))
        else:
            parts.append(rng.choice("aeiouxyz") + rng.choice(COMBINING))
        parts.append(rng.choice(SPACES))
    return "".join(parts)


def prompts():
    rng = random.Random(20260314)
    out = list(HANDWRITTEN)
    out += [random_prompt(rng) for _ in range(300)]
    out += [random_prompt(rng, long=True) for _ in range(90)]
    seen, unique = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return unique


# ---- Unicode tables from the tokenizers library ----

def all_code_points():
    return [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]


def matching(pattern, cps):
    """Code points that `tokenizers`' regex engine matches with a one-character pattern."""
    text = "".join(map(chr, cps))
    split = pre_tokenizers.Split(Regex(pattern), behavior="removed", invert=True)
    found = set()
    for piece, (start, end) in split.pre_tokenize_str(text):
        found.update(cps[start:end])
    return found


def ranges(cps):
    out = []
    for c in sorted(cps):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def lowercase_table(cps):
    sep = "\n"
    assert normalizers.Lowercase().normalize_str(sep) == sep
    cps = [c for c in cps if chr(c) != sep]
    lowered = normalizers.Lowercase().normalize_str(sep.join(map(chr, cps))).split(sep)
    assert len(lowered) == len(cps)
    single, multi = {}, {}
    for c, low in zip(cps, lowered):
        if low != chr(c):
            if len(low) == 1:
                single[c] = ord(low)
            else:
                multi[c] = [ord(x) for x in low]
    return single, multi


def delta_runs(single):
    """(first, last, stride, delta): every stride-th code point from first to last maps to itself + delta."""
    runs = []
    for c in sorted(single):
        d = single[c] - c
        if runs:
            first, last, stride, delta = runs[-1]
            if delta == d and (c - last == stride or (first == last and c - last in (1, 2))):
                runs[-1] = [first, c, c - last, delta]
                continue
        runs.append([c, c, 1, d])
    return runs


def nfc_relevant(cps):
    """Code points the tokenizers library's NFC does anything with: it changes them alone or after U+0345 (the
    highest combining class, so every other mark it knows reorders before it), or composes them (both parts and
    the result, from Python's decompositions, kept where tokenizers does compose them), and Hangul. Its Unicode
    data is older than Python's and Swift's (it does not reorder U+07FD, a Unicode 11 mark): the Swift side runs
    its NFC only on runs of these and passes everything else through, as tokenizers does."""
    nfc = normalizers.NFC()
    cps = [c for c in cps if c != 0x7C]  # "|" separates the probes (it composes with nothing)

    def probe(prefix):
        out = nfc.normalize_str("".join("|" + prefix + chr(c) for c in cps)).split("|")[1:]
        assert len(out) == len(cps)
        return out

    relevant = {c for c, alone, after in zip(cps, probe(""), probe("\u0345"))
                if alone != chr(c) or after != "\u0345" + chr(c)}
    for c in cps:
        d = unicodedata.decomposition(chr(c))
        parts = [] if not d or d.startswith("<") else [int(x, 16) for x in d.split()]
        if len(parts) == 2 and nfc.normalize_str("|" + chr(parts[0]) + chr(parts[1])) == "|" + chr(c):
            relevant.update(parts + [c])
    relevant |= set(range(0x1100, 0x1113)) | set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3)) | set(range(0xAC00, 0xD7A4))
    return relevant


def swift_array(values, per_line=12):
    lines = []
    for i in range(0, len(values), per_line):
        lines.append("        " + ", ".join(values[i:i + per_line]) + ",")
    return "\n".join(lines)


def write_tables():
    cps = all_code_points()
    letters = matching(r"[\p{L}]", cps)
    numbers = matching(r"[\p{N}]", cps)
    spaces = matching(r"\s", cps)
    assert not (letters & numbers) and not (letters & spaces) and not (numbers & spaces)
    # The normalizer's Replace(\s+, " ") must agree with the pre-tokenizer's \s: probe it separately.
    text = "".join("x" + chr(c) for c in cps)
    replaced = normalizers.Replace(Regex(r"\s+"), " ").normalize_str(text)
    assert len(replaced) == len(text)
    replace_spaces = {c for c, r in zip(cps, replaced[1::2]) if r == " " and chr(c) != " "} | {0x20}
    assert replace_spaces == spaces, sorted(replace_spaces ^ spaces)[:20]
    single, multi = lowercase_table(cps)
    runs = delta_runs(single)
    composing = nfc_relevant(cps)
    assert sum((r[1] - r[0]) // r[2] + 1 for r in runs) == len(single)

    def hexs(v):
        return f"0x{v:X}" if v >= 0 else f"-0x{-v:X}"

    flat = lambda rs: [hexs(x) for r in rs for x in r]
    multi_lines = "\n".join(f"        0x{c:X}: [{', '.join(f'0x{x:X}' for x in multi[c])}]," for c in sorted(multi))
    TABLES.write_text(f"""// Generated by tools/reference/make_tokenizer_fixtures.py with tokenizers {tokenizers.__version__} (transformers
// {transformers.__version__}, Python {sys.version.split()[0]}); do not edit. What the `tokenizers` library's regex engine
// (Oniguruma) matches with \\s, \\p{{L}} and \\p{{N}}, and what its Lowercase normalizer (Rust's char::to_lowercase) gives,
// for every code point: the Swift runtime's own Unicode data is a different version on the boards (Swift 6.0.3) and
// here, and CLIPTokenizer's ids follow the tokenizers library's.

/// Code point tables of CLIP's text clean-up and pre-tokenizer; ranges are flattened inclusive pairs, sorted.
enum UnicodeTables {{
    /// \\s of the pre-tokenizer regex and of the whitespace clean-up ({len(spaces)} code points).
    static let whitespace: [UInt32] = [
{swift_array(flat(ranges(spaces)))}
    ]

    /// \\p{{L}} ({len(letters)} code points).
    static let letters: [UInt32] = [
{swift_array(flat(ranges(letters)))}
    ]

    /// What the tokenizers library's NFC acts on ({len(composing)} code points): marks it reorders, characters it
    /// decomposes or composes, Hangul. Others pass through unchanged, whatever a newer Unicode says of them.
    static let composing: [UInt32] = [
{swift_array(flat(ranges(composing)))}
    ]

    /// \\p{{N}} ({len(numbers)} code points).
    static let numbers: [UInt32] = [
{swift_array(flat(ranges(numbers)))}
    ]

    /// One-scalar lower-case mappings ({len(single)} code points) as runs (first, last, stride, delta): every
    /// stride-th code point from first to last lower-cases to itself + delta.
    static let lowercaseRuns: [Int32] = [
{swift_array(flat(runs), per_line=16)}
    ]

    /// Code points whose lower case is more than one scalar.
    static let lowercaseExpansions: [UInt32: [UInt32]] = [
{multi_lines}
    ]
}}
""")
    return letters, numbers, spaces, single, multi, composing


# ---- a Python copy of the Swift splitting rules, checked against the real pre-tokenizer ----

def split_like_swift(text, letters, numbers, spaces):
    """CLIP's split regex by hand, then ByteLevel's GPT-2 regex on each piece (it re-splits <|endoftext|>)."""
    cls = lambda ch: "s" if ord(ch) in spaces else "l" if ord(ch) in letters else "n" if ord(ch) in numbers else "o"

    def scan(text, literals, runs_of):
        pieces, i, n = [], 0, len(text)
        while i < n:
            lit = next((x for x in literals if text.startswith(x, i)), None)
            if lit is None and text[i] == "'":
                lit = next(("'" + c for c in ("s", "t", "re", "ve", "m", "ll", "d") if text.startswith(c, i + 1)), None)
            if lit:
                pieces.append(lit)
                i += len(lit)
                continue
            k = cls(text[i])
            if k == "s":
                i += 1
                continue
            j = i + 1
            if k in runs_of:
                while j < n and cls(text[j]) == k:
                    j += 1
            pieces.append(text[i:j])
            i = j
        return pieces

    return [q for p in scan(text, (BOS, EOS), "lo") for q in scan(p, (), "lno")]


def check_splitting(tok, texts, letters, numbers, spaces):
    backend = tok.backend_tokenizer
    byte_char = bytes_to_unicode()
    for t in texts:
        normal = backend.normalizer.normalize_str(t)
        want = [p for p, _ in backend.pre_tokenizer.pre_tokenize_str(normal)]
        got = ["".join(byte_char[b] for b in p.encode("utf-8")) for p in split_like_swift(normal, letters, numbers, spaces)]
        assert want == got, (t, want, got)


def random_texts(rng, count):
    pools = [range(0x20, 0x7F), range(0xA0, 0x250), range(0x300, 0x370), range(0x370, 0x530), range(0x1100, 0x1200),
             range(0x2000, 0x2070), range(0x3000, 0x3100), range(0xAC00, 0xAC40), range(0x1F300, 0x1F700), range(0x10000, 0x10100)]
    out = []
    for _ in range(count):
        chars = []
        for _ in range(rng.randint(1, 40)):
            pool = rng.choice(pools)
            c = rng.choice(pool)
            if not 0xD800 <= c <= 0xDFFF:
                chars.append(chr(c))
        out.append("".join(chars))
    return out


def corpus_of(texts, toks):
    """corpus.json's content: each text's ids under each loaded config."""
    configs, entries = {}, []
    for name, tok in toks.items():
        assert tok.model_max_length == 77
        configs[name] = {"pad_token_id": tok.pad_token_id, "pad_token": str(tok.pad_token),
                         "model_max_length": tok.model_max_length, "truncated_prompts": 0}
    for text in texts:
        ids = {}
        for name, tok in toks.items():
            enc = tok(text, padding="max_length", max_length=tok.model_max_length, truncation=True)
            full, mask = enc["input_ids"], enc["attention_mask"]
            length = sum(mask)
            assert mask == [1] * length + [0] * (len(mask) - length) and len(full) == 77
            assert full == full[:length] + [tok.pad_token_id] * (77 - length)
            ids[name] = full[:length]
            if len(tok(text)["input_ids"]) > tok.model_max_length:
                configs[name]["truncated_prompts"] += 1
        entries.append({"prompt": text, "ids": ids})
    return {
        "about": "input_ids of transformers' CLIPTokenizer(prompt, padding='max_length', max_length=77, truncation=True) "
                 "for each config folder, up to the end of the attention mask; the rest is that config's pad_token_id. "
                 "Written by tools/reference/make_tokenizer_fixtures.py.",
        "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
        "configs": configs, "prompts": entries,
    }


def any_scalar_texts(rng, count):
    """Prompts of random code points from the whole of Unicode (no surrogates) mixed with words: they reach
    scripts and combining marks the hand-written corpus does not, and whatever Unicode version differences
    there are between the Swift runtime's NFC and the tokenizers library's."""
    out = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.5:
                parts.append(rng.choice(WORDS))
            else:
                c = rng.randrange(0x30000) if rng.random() < 0.9 else rng.randrange(0x110000)
                if not 0xD800 <= c <= 0xDFFF:
                    parts.append(chr(c))
            parts.append(rng.choice(SPACES))
        out.append("".join(parts))
    return out


def mark_texts(rng, count):
    """Short prompts of a base letter and random combining marks (and unassigned code points): where NFC
    reorders and composes, and where Unicode versions disagree."""
    marks = [c for c in range(0x300, 0x20000) if unicodedata.category(chr(c)) in ("Mn", "Mc", "Cn")]
    bases = "aeiouAEIOUnNcCsSzZ가나다ㄱαβ"
    return [rng.choice(bases) + "".join(chr(rng.choice(marks)) for _ in range(rng.randint(1, 3))) + " "
            + rng.choice(bases) + "\u0301" + chr(rng.choice(marks)) for _ in range(count)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", help="open_clip_torch wheel (pip download open_clip_torch --no-deps); required unless --extra")
    ap.add_argument("--extra", type=int, metavar="N",
                    help="write nothing into the repository; instead write N prompts of random code points and N of "
                         "random combining marks (seed --seed) with the sd1 and sd2 ids to --extra-out, for "
                         "TokenizerTests' EDGE_DDIM_TOKENIZER_EXTRA check")
    ap.add_argument("--extra-out", default="/tmp/tokenizer-extra.json")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    if args.extra:
        with tempfile.TemporaryDirectory() as scratch:
            toks = {name: load(name, scratch) for name in ["sd1", "sd2"]}
            rng = random.Random(args.seed)
            corpus = corpus_of(any_scalar_texts(rng, args.extra) + mark_texts(rng, args.extra), toks)
        Path(args.extra_out).write_text(json.dumps(corpus, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
        print(f"{2 * args.extra} random prompts in {args.extra_out}")
        return
    if not args.wheel:
        ap.error("--wheel is required")
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    write_vocab(read_bpe(args.wheel))
    write_configs()
    letters, numbers, spaces, single, multi, composing = write_tables()
    print(f"tables: {len(letters)} letters, {len(numbers)} numbers, {len(spaces)} spaces, "
          f"{len(single)} + {len(multi)} lower-case mappings, {len(composing)} NFC code points")

    texts = prompts()
    with tempfile.TemporaryDirectory() as scratch:
        toks = {name: load(name, scratch) for name in CONFIGS}
        check_splitting(toks["sd1"], texts + random_texts(random.Random(7), 20000) + any_scalar_texts(random.Random(8), 5000),
                        letters, numbers, spaces)
        corpus = corpus_of(texts, toks)
    (OUT / "corpus.json").write_text(json.dumps(corpus, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    truncated = ", ".join(f"{name} {c['truncated_prompts']}" for name, c in corpus["configs"].items())
    print(f"{len(corpus['prompts'])} prompts x {len(corpus['configs'])} configs (truncated: {truncated}); fixture {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
