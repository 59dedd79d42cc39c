#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora into Tests/Fuzz/corpus/TARGET (a few KB each).

npy and png seeds are the committed test fixtures; tokenizer seeds are small compact tokenizers and prompts
from the tokenizer fixture; config seeds are the fixtures' config files; safetensors
and model-file seeds are written here, byte by byte as docs/FORMAT.md and the safetensors spec describe, so
that each seed is small and valid (a fuzzer mutates valid files far more usefully than noise).
Standard library only:  python3 tools/fuzz/make_corpus.py
"""
import json
import shutil
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "Fuzz" / "corpus"
FIXTURES = ROOT / "Tests" / "Fixtures"


def fresh(target):
    folder = OUT / target
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def f32(values):
    return struct.pack(f"<{len(values)}f", *values)


def f16(values):
    return struct.pack(f"<{len(values)}e", *values)


def write_safetensors():
    folder = fresh("safetensors")
    (folder / "f32_2x3.safetensors").write_bytes(
        safetensors([("conv.weight", "F32", [2, 3], f32([0.5, -1, 2, 0, 1e-3, 3]))], {"format": "pt"}))
    (folder / "mixed.safetensors").write_bytes(safetensors([
        ("a.bias", "F16", [4], f16([1, -2, 0.5, 0])),
        ("b.weight", "BF16", [2, 2], struct.pack("<4H", 0x3F80, 0xBF80, 0x4000, 0)),
        ("c.scalar", "F32", [], f32([7])),
        ("d.empty", "F32", [0, 3], b""),
        ("e.ints", "I64", [2], struct.pack("<2q", 1, -1)),
    ]))
    (folder / "empty.safetensors").write_bytes(safetensors([], {}))


def write_config():
    folder = fresh("config")
    for fixture in ["single-level-attn", "two-level-midscale", "cifar10-like"]:
        for name in ["config.json", "scheduler_config.json"]:
            source = FIXTURES / "unet" / fixture / name
            if source.exists():
                (folder / f"{fixture}-{name}").write_bytes(source.read_bytes())
    tiny = {"sample_size": [8, 8], "block_out_channels": [8], "down_block_types": ["DownBlock2D"],
            "up_block_types": ["UpBlock2D"], "norm_num_groups": 4, "attention_head_dim": None,
            "layers_per_block": 1, "in_channels": 1, "out_channels": 1, "time_embedding_dim": 16,
            "num_train_timesteps": 10, "beta_schedule": "squaredcos_cap_v2", "trained_betas": [0.1] * 10,
            "timestep_spacing": "trailing", "prediction_type": "v_prediction", "steps_offset": 1,
            "escaped": "\u00e9\\n\ud83d\ude00", "numbers": [-0.0, 1e-300, 12345678901234567890, -9223372036854775807]}
    (folder / "tiny-both.json").write_text(json.dumps(tiny, ensure_ascii=True))
    # Regression seeds: inputs that crashed earlier versions (see HardeningParserTests).
    (folder / "regression-int-min.json").write_text('{"sample_size": 8, "in_channels": -9223372036854775808}')
    # Autoencoder configs and a pipeline's model_index.json (tools/reference/make_autoencoder_fixtures.py).
    for case in ["vq-small", "kl-sd-small"]:
        (folder / f"{case}-config.json").write_bytes((FIXTURES / "autoencoder" / case / "config.json").read_bytes())
    (folder / "ldm-small-model_index.json").write_bytes((FIXTURES / "autoencoder" / "ldm-small" / "model_index.json").read_bytes())
    # A Stable Diffusion pipeline's index and its conditional UNet's and text encoder's configs
    # (tools/reference/make_sd_pipeline_fixtures.py).
    for case in ["sd1-tiny", "sd2-tiny"]:
        sd = FIXTURES / "sd_pipeline" / case
        (folder / f"{case}-unet-config.json").write_bytes((sd / "unet" / "config.json").read_bytes())
        (folder / f"{case}-text_encoder-config.json").write_bytes((sd / "text_encoder" / "config.json").read_bytes())
    (folder / "sd1-tiny-model_index.json").write_bytes((FIXTURES / "sd_pipeline" / "sd1-tiny" / "model_index.json").read_bytes())


def metadata_value(value):
    if value is None:
        return b"\x08"
    if isinstance(value, bool):
        return b"\x03" + bytes([value])
    if isinstance(value, int):
        return b"\x01" + struct.pack("<q", value)
    if isinstance(value, float):
        return b"\x02" + struct.pack("<d", value)
    if isinstance(value, str):
        raw = value.encode()
        return b"\x04" + struct.pack("<I", len(raw)) + raw
    if all(isinstance(v, int) for v in value) and value:
        return b"\x05" + struct.pack("<I", len(value)) + struct.pack(f"<{len(value)}q", *value)
    if all(isinstance(v, float) for v in value) and value:
        return b"\x06" + struct.pack("<I", len(value)) + struct.pack(f"<{len(value)}d", *value)
    out = b"\x07" + struct.pack("<I", len(value))
    for s in value:
        raw = s.encode()
        out += struct.pack("<I", len(raw)) + raw
    return out


def model_file(unet, scheduler, tensors, version=1, extra=()):
    """tensors: list of (name, type code, shape, values bytes, scales bytes or None); FORMAT.md, version 1 or 2
    (`extra`: more metadata entries, for version 2's components)."""
    entries = [("edge_ddim.weights", "int8")] + [("unet." + k, v) for k, v in unet.items()] \
        + [("scheduler." + k, v) for k, v in scheduler.items()] + list(extra)
    meta = struct.pack("<I", len(entries))
    for key, value in entries:
        raw = key.encode()
        meta += struct.pack("<H", len(raw)) + raw + metadata_value(value)
    data, placed = b"", []
    for name, code, shape, values, scales in tensors:
        offset = len(data)
        data += values + b"\0" * (-len(values) % 64)
        scales_offset = 0
        if scales is not None:
            scales_offset = len(data)
            data += scales + b"\0" * (-len(scales) % 64)
        placed.append((name, code, shape, offset, len(values), scales_offset))
    directory = struct.pack("<I", len(placed))
    for name, code, shape, offset, size, scales_offset in placed:
        raw = name.encode()
        directory += struct.pack("<H", len(raw)) + raw + bytes([code, 0, len(shape), 0])
        directory += struct.pack(f"<{len(shape)}Q", *shape) + struct.pack("<3Q", offset, size, scales_offset)
    directory_offset = 64 + len(meta)
    data_offset = directory_offset + len(directory)
    data_offset += -data_offset % 64
    header = b"EDGEDDIM" + struct.pack("<II6Q", version, 0, 64, len(meta), directory_offset, len(directory), data_offset, len(data))
    body = header + meta + directory
    return body + b"\0" * (data_offset - len(body)) + data


def write_modelfile():
    folder = fresh("modelfile")
    unet = {"sample_size": 8, "in_channels": 1, "out_channels": 1, "center_input_sample": False,
            "flip_sin_to_cos": True, "freq_shift": 0, "down_block_types": ["DownBlock2D"],
            "up_block_types": ["UpBlock2D"], "block_out_channels": [8], "layers_per_block": 1,
            "mid_block_scale_factor": 1.0, "downsample_padding": 1, "attention_head_dim": 8,
            "norm_num_groups": 4, "attn_norm_num_groups": None, "norm_eps": 1e-5, "time_embedding_dim": None,
            "add_attention": True}
    scheduler = {"num_train_timesteps": 20, "beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02,
                 "trained_betas": None, "clip_sample": True, "clip_sample_range": 1.0,
                 "prediction_type": "epsilon", "steps_offset": 0, "set_alpha_to_one": True,
                 "timestep_spacing": "leading"}
    conv = bytes((i * 7) % 255 for i in range(8 * 9))
    tensors = [
        ("conv_in.weight", 2, [8, 1, 3, 3], conv, f32([0.01 * (i + 1) for i in range(8)])),
        ("conv_in.bias", 0, [8], f32([0.1] * 8), None),
        ("time_embedding.linear_1.weight", 1, [32, 8], f16([0.25] * 256), None),
    ]
    (folder / "tiny.edm").write_bytes(model_file(unet, scheduler, tensors))
    betas = dict(scheduler, trained_betas=[0.05] * 20, timestep_spacing="trailing", prediction_type="sample")
    (folder / "trained-betas.edm").write_bytes(model_file(dict(unet, attention_head_dim=None), betas, tensors[1:2]))
    # Regression seed: T = 0 made edge-ddim trap on `1...T` before the stored schedule was validated.
    (folder / "regression-zero-timesteps.edm").write_bytes(model_file(unet, dict(scheduler, num_train_timesteps=0), tensors[1:2]))
    # Version 2: an LDMPipeline with a tiny VQ autoencoder beside a 3-channel UNet (its tensors prefixed vqvae.).
    vq = {"_class_name": "VQModel", "in_channels": 3, "out_channels": 3, "block_out_channels": [8], "layers_per_block": 1,
          "latent_channels": 3, "sample_size": 8, "norm_num_groups": 4, "mid_block_add_attention": True,
          "scaling_factor": 1.0, "shift_factor": None, "force_upcast": False, "num_vq_embeddings": 4,
          "vq_embed_dim": None, "use_quant_conv": True, "use_post_quant_conv": True}
    extra = [("edge_ddim.pipeline", "LDMPipeline"), ("edge_ddim.components", ["unet", "vqvae"])] \
        + [("vqvae." + k, v) for k, v in vq.items()]
    vq_tensors = [("vqvae.quantize.embedding.weight", 0, [4, 3], f32([0.5] * 12), None),
                  ("vqvae.decoder.conv_in.bias", 0, [8], f32([0.0] * 8), None)]
    (folder / "ldm-v2.edm").write_bytes(model_file(dict(unet, in_channels=3, out_channels=3), scheduler, tensors[1:2] + vq_tensors,
                                                    version=2, extra=extra))


def compact_tokenizer(tokens, merges, specials, max_length=77, bos=None, eos=None, pad=None):
    """CompactForm.swift's layout: tokens in id order, merges as id pairs, specials as (id, normalized)."""
    ids = {t: i for i, t in enumerate(tokens)}
    out = b"EDGECLIP" + struct.pack("<8I", 1, max_length, len(tokens), len(merges), len(specials), ids[bos], ids[eos], ids[pad])
    for i, t in enumerate(tokens):
        raw = t.encode()
        out += struct.pack("<IH", i, len(raw)) + raw
    for a, b in merges:
        out += struct.pack("<II", ids[a], ids[b])
    for t, normalized in specials:
        out += struct.pack("<IB", ids[t], normalized)
    return out


def write_tokenizer():
    """Compact tokenizers (prefixed by an even byte) built from the fixture vocabulary's 512 byte symbols, and
    prompts (prefixed by an odd byte) from the fixture corpus."""
    folder = fresh("tokenizer")
    fixture = FIXTURES / "tokenizer"
    vocab = json.loads((fixture / "vocab.json").read_text(encoding="utf-8"))
    by_id = sorted(vocab, key=vocab.get)
    symbols = by_id[:512]  # 256 byte symbols, then the same with </w>
    merges = [("a", "b"), ("ab", "c</w>"), ("t", "h"), ("th", "e</w>"), ("!", "!</w>")]
    tokens = symbols + ["ab", "abc</w>", "th", "the</w>", "!!</w>", "<|startoftext|>", "<|endoftext|>"]
    (folder / "small.bin").write_bytes(b"\x00" + compact_tokenizer(
        tokens, merges, [("<|startoftext|>", 1), ("<|endoftext|>", 0), ("!", 0)], bos="<|startoftext|>", eos="<|endoftext|>", pad="!"))
    (folder / "short.bin").write_bytes(b"\x02" + compact_tokenizer(
        tokens, merges[:1], [("<|endoftext|>", 0)], max_length=2, bos="<|startoftext|>", eos="<|endoftext|>", pad="<|endoftext|>"))
    prompts = json.loads((fixture / "corpus.json").read_text(encoding="utf-8"))["prompts"]
    for i, entry in enumerate(prompts[:: max(1, len(prompts) // 24)]):
        (folder / f"prompt-{i:02}.txt").write_bytes(b"\x01" + entry["prompt"].encode())


def write_capi():
    """The C API target's seeds: a 16-byte options header and a prompt (as capi.swift lays them out) before the
    model-file seeds, so the fuzzer starts from models that open and options that pass or fail one check each."""
    folder = fresh("capi")
    models = sorted((OUT / "modelfile").glob("*.edm"))
    #          steps count+1 sampler eta threads batch size flags seed guidance prompt-length png-w png-h
    headers = {
        "defaults": (10, 2, 0, 0, 1, 1, 0, 0, 3, 75, 0, 0, 0),
        "generate": (2, 2, 1, 0, 3, 2, 0, 8, 5, 75, 0, 0, 0),
        "prompt": (4, 2, 8, 100, 1, 1, 8, 1 | 2 | 8, 0, 75, 5, 3, 4),
        "bad-struct": (10, 2, 3, 0, 1, 1, 0, 4, 0, 75, 0, 0, 0),
        "png": (0, 0, 0, 255, 0, 0, 0, 16, 0, 0, 0, 7, 7),
    }
    for name, (steps, count, sampler, eta, threads, batch, size, flags, seed, guidance, plen, w, h) in headers.items():
        prompt = b"a cat"[:plen]
        header = bytes([steps, count, sampler, eta, threads, batch, size, flags]) + struct.pack("<I", seed) \
            + bytes([guidance, len(prompt), w, h])
        for model in models[:2]:
            (folder / f"{name}-{model.stem}.bin").write_bytes(header + prompt + model.read_bytes())


def copy_fixtures(target, source, pattern):
    folder = fresh(target)
    for path in sorted(source.glob(pattern)):
        shutil.copyfile(path, folder / path.name)


if __name__ == "__main__":
    write_safetensors()
    write_config()
    write_modelfile()
    write_tokenizer()
    write_capi()
    copy_fixtures("npy", FIXTURES / "sampler" / "npy", "*.npy")
    copy_fixtures("png", FIXTURES / "sampler" / "png", "*.png")
    for folder in sorted(OUT.iterdir()):
        files = list(folder.iterdir())
        print(f"{folder.name}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")
