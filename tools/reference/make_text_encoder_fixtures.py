#!/usr/bin/env python3
"""Generate Tests/Fixtures/text_encoder/: small random-weight transformers CLIPTextModels of the two Stable
Diffusion text-encoder kinds, with what transformers computes from them on the CPU in float32.

Cases (each a folder as save_pretrained writes it: config.json + model.safetensors with fp16 weights, plus
io.safetensors):

    clip-l-small   OpenAI CLIP ViT-L/14's layout (SD 1.x) at reduced width: hidden_act quick_gelu, hidden 64,
                   4 heads (d = 16), intermediate 160, 2 layers, 77 positions, vocabulary 1000.
    clip-h-small   OpenCLIP ViT-H/14's layout (SD 2.x, SD-Turbo) at reduced width: hidden_act gelu, hidden 48,
                   3 heads (d = 16), intermediate 120, 3 layers, 77 positions, vocabulary 1000.

io.safetensors (float32; token-major, as transformers returns them):

    input_ids          [2, 77]        token ids (as float): a start token, seeded random ids, an end token,
                                      then padding, like a tokenised prompt (the first shorter than the second)
    last_hidden_state  [2, 77, D]     CLIPTextModel(input_ids).last_hidden_state (no attention mask, as
                                      diffusers' pipelines call it)
    hidden_states.i    [2, 77, D]     output_hidden_states: i = 0 the embeddings, i = l after layer l

full_size_counts.json: the parameter counts of SD 1.x's and SD 2.x's full-size text encoders as torch counts
them (built on the meta device: no weights), with their configs.

Weights are random (seeded, scaled by 1/√fan_in, rounded to fp16); the references come from the reloaded fp16
files evaluated in float32. Deterministic: one torch thread, fixed seeds; a second run writes the same tensors
(safetensors may order the header's metadata keys differently).

Usage:  python3 tools/reference/make_text_encoder_fixtures.py
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_autoencoder_fixtures import randomize  # noqa: E402  (the same seeded, fp16-rounded weights)

ROOT = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "text_encoder"

CASES = {
    "clip-l-small": dict(hidden_act="quick_gelu", hidden_size=64, num_attention_heads=4, intermediate_size=160, num_hidden_layers=2),
    "clip-h-small": dict(hidden_act="gelu", hidden_size=48, num_attention_heads=3, intermediate_size=120, num_hidden_layers=3),
}
VOCAB, POSITIONS = 1000, 77
BOS, EOS = VOCAB - 2, VOCAB - 1  # where CLIP's <|startoftext|> and <|endoftext|> sit: the vocabulary's end


def hub_layout(path: Path) -> None:
    """transformers 5 saves CLIPTextModel's tensors without the `text_model.` prefix; every Stable Diffusion
    checkpoint on the hub (saved by transformers 4) has it, and transformers 5 still reads it. Rewrite the file
    in the hub's layout, the one users have."""
    from safetensors.torch import load_file
    tensors = load_file(str(path))
    save_file({k if k.startswith("text_model.") else "text_model." + k: v for k, v in tensors.items()}, str(path), metadata={"format": "pt"})


def input_ids(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for length in (9, 30):
        words = torch.randint(0, VOCAB - 2, (length,), generator=g).tolist()
        row = [BOS] + words + [EOS]
        rows.append(row + [EOS] * (POSITIONS - len(row)))  # SD 1.x pads with the end token
    return torch.tensor(rows, dtype=torch.int64)


def main() -> None:
    torch.set_num_threads(1)
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    for seed, (name, fields) in enumerate(CASES.items(), start=40):
        folder = ROOT / name
        config = CLIPTextConfig(vocab_size=VOCAB, max_position_embeddings=POSITIONS, layer_norm_eps=1e-5,
                                bos_token_id=BOS, eos_token_id=EOS, pad_token_id=EOS, projection_dim=32, **fields)
        model = CLIPTextModel(config).eval()
        randomize(model, seed)
        model.to(torch.float16).save_pretrained(folder, safe_serialization=True)
        hub_layout(folder / "model.safetensors")
        reloaded = CLIPTextModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
        for (k, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
            assert torch.equal(a.to(torch.float32), b), f"{name}: {k} changed on reload"
        model.to(torch.float32)
        ids = input_ids(seed)
        with torch.no_grad():
            out = reloaded(input_ids=ids, output_hidden_states=True)
        tensors = {"input_ids": ids.to(torch.float32), "last_hidden_state": out.last_hidden_state}
        for i, h in enumerate(out.hidden_states):
            tensors[f"hidden_states.{i}"] = h
        save_file({k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}, str(folder / "io.safetensors"),
                  metadata={"torch_version": torch.__version__, "transformers_version": transformers.__version__, "case": name})
        print(f"{name}: {sum(p.numel() for p in reloaded.parameters())} parameters, |last_hidden_state| max "
              f"{out.last_hidden_state.abs().max().item():.3f}")
    # The full-size text encoders' parameter counts as torch counts them (numel; no weights written), for the
    # graph's own count: SD 1.x's CLIP ViT-L/14 and SD 2.x's OpenCLIP ViT-H/14 (23 of 24 layers, as diffusers
    # ships it), with the configs Stable Diffusion's text_encoder/config.json files give.
    full = {
        "sd1": dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    max_position_embeddings=77, hidden_act="quick_gelu"),
        "sd2": dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                    max_position_embeddings=77, hidden_act="gelu"),
    }
    counts = {}
    for name, fields in full.items():
        with torch.device("meta"):
            counts[name] = {"config": fields, "parameters": sum(p.numel() for p in CLIPTextModel(CLIPTextConfig(**fields)).parameters())}
    (ROOT / "full_size_counts.json").write_text(json.dumps(counts, indent=2) + "\n")
    (ROOT / "versions.json").write_text(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__}, indent=2) + "\n")


if __name__ == "__main__":
    main()
