#!/usr/bin/env python3
"""Generate the UNet2DModel reference fixtures under Tests/Fixtures/unet/.

Every case is a folder ``Tests/Fixtures/unet/<case>/`` holding ``io.safetensors``:

    sample                  [N,C,H,W] float32   UNet input
    timestep                [N]       float32   integer timesteps (the model is called with int64)
    output                  [N,C,H,W] float32   unet(sample, timestep).sample, fp32, CPU
    debug.time_embedding    [N,D]               output of unet.time_embedding
    debug.conv_in                               output of unet.conv_in
    debug.down_blocks.{i}                       hidden state (first element of the block's output tuple)
    debug.mid_block
    debug.up_blocks.{i}
    debug.conv_norm_out                         GroupNorm output, before SiLU

with string metadata torch_version, diffusers_version, case, weights_dtype
(and checkpoint / checkpoint_sha256 for the real checkpoints).

Random-weight cases hold every debug tensor.  For the two real checkpoints the full set would be 3.2 MB
per case (64-128 channels at 32x32, N=2), so by default (--real-debug small) they keep only the
low-resolution ones: debug.time_embedding, debug.down_blocks.2, debug.down_blocks.3, debug.mid_block.
Consumers must treat every debug.* tensor as optional.

Random-weight cases also hold the model itself (config.json, diffusion_pytorch_model*.safetensors,
scheduler_config.json).  Their weights are rounded to the storage dtype before saving, and the reference
output is computed from the folder reloaded with ``UNet2DModel.from_pretrained(folder,
torch_dtype=torch.float32)``, so what is on disk is exactly what was evaluated.

The real checkpoints (ddpm-fashion-32, ddpm-emoji-32) are read from --shared and only their io is stored.

Usage:  python3 tools/reference/make_fixtures.py [--shared /path/to/shared/models]
                                                 [--real-debug small|all|none] [--check-sensitivity]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import safetensors
import torch
from torch import nn

import diffusers
from diffusers import DDPMScheduler, UNet2DModel
from safetensors.torch import save_file

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = REPO_ROOT / "Tests" / "Fixtures" / "unet"
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "models"

REAL_DEBUG_MAX_ELEMENTS = 4096

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}

# diffusers' ModelMixin._fix_state_dict_keys_on_load maps these (old AttentionBlock) names to the
# current Attention names for every module built with _from_deprecated_attn_block=True.
DEPRECATED_ATTENTION_NAMES = {  # current name -> deprecated name (as in the google/ddpm-* checkpoints)
    "to_q": "query",
    "to_k": "key",
    "to_v": "value",
    "to_out.0": "proj_attn",
}

# ---------------------------------------------------------------------------------------------------
# Published google configs (diffusers 0.0.4 format: only these fields, alphabetical order).
# google/ddpm-cifar10-32, verbatim except block_out_channels (published: [128, 256, 256, 256]).
CIFAR10_PUBLISHED_FIELDS = {
    "_class_name": "UNet2DModel",
    "_diffusers_version": "0.0.4",
    "act_fn": "silu",
    "attention_head_dim": None,
    "block_out_channels": [128, 256, 256, 256],
    "center_input_sample": False,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "in_channels": 3,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-06,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 32,
    "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
}
# google/ddpm-celebahq-256 (same as ddpm-cat-256 / church-256 / bedroom-256).
CELEBAHQ_PUBLISHED_FIELDS = {
    "_class_name": "UNet2DModel",
    "_diffusers_version": "0.0.4",
    "act_fn": "silu",
    "attention_head_dim": None,
    "block_out_channels": [128, 128, 256, 256, 512, 512],
    "center_input_sample": False,
    "down_block_types": [
        "DownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D",
    ],
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "in_channels": 3,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-06,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 256,
    "time_embedding_type": "positional",
    "up_block_types": [
        "UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D",
    ],
}


def published_like(published: dict, **overrides) -> dict:
    cfg = dict(published)
    for k, v in overrides.items():
        assert k in cfg, k
        cfg[k] = v
    return cfg


# ---------------------------------------------------------------------------------------------------
# Cases.
#   config:        UNet2DModel kwargs (or, with legacy_config=True, the exact config.json to write,
#                  in the published 0.0.4 format with missing fields left to diffusers' defaults)
#   timesteps:     one per batch item
#   dtype:         on-disk dtype of the weights
#   shard:         max_shard_size for save_pretrained (None = one file)
#   scheduler:     DDPMScheduler kwargs
RANDOM_CASES = [
    dict(
        name="cifar10-like",
        description=(
            "google/ddpm-cifar10-32 published config (0.0.4 format, missing fields defaulted) with "
            "block_out_channels 32x4; head dim null (1 head), downsample_padding 0, flip_sin_to_cos false, "
            "freq_shift 1, eps 1e-6, 32 groups (1 channel per group, so the timestep cannot change the "
            "output: check debug.time_embedding); DEPRECATED attention tensor names "
            "(query/key/value/proj_attn); fp16 weights"
        ),
        legacy_config=True,
        config=published_like(CIFAR10_PUBLISHED_FIELDS, block_out_channels=[32, 32, 32, 32]),
        deprecated_attention_names=True,
        timesteps=[999],
        dtype="F16",
        shard=None,
        seed=1001,
        scheduler=dict(
            num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
            variance_type="fixed_large", clip_sample=True, prediction_type="epsilon",
        ),
    ),
    dict(
        name="celebahq-like",
        description=(
            "google/ddpm-celebahq-256 published config (0.0.4 format, missing fields defaulted) scaled to "
            "a 64x64 model with six levels, block_out_channels 8x6 and norm_num_groups 4 (size budget); "
            "AttnDown/AttnUp only at level 4 (4x4, head dim null = one head), downsample_padding 0, "
            "flip_sin_to_cos false, freq_shift 1, eps 1e-6; bf16 weights"
        ),
        legacy_config=True,
        config=published_like(
            CELEBAHQ_PUBLISHED_FIELDS, sample_size=64, block_out_channels=[8, 8, 8, 8, 8, 8],
            norm_num_groups=4,
        ),
        deprecated_attention_names=False,
        timesteps=[37],
        dtype="BF16",
        shard=None,
        seed=1002,
        scheduler=dict(
            num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
            variance_type="fixed_small", clip_sample=True, prediction_type="epsilon",
        ),
    ),
    dict(
        name="single-level-attn",
        description=(
            "one level (block_out_channels [16], no down/upsampling), 3 layers per block, AttnDown/AttnUp "
            "with attention_head_dim 8 (2 heads), mid block without attention (add_attention false), "
            "1 channel in/out, 4 groups, eps 1e-5, flip true / shift 0; fp32 weights; batch 3"
        ),
        legacy_config=False,
        config=dict(
            sample_size=8, in_channels=1, out_channels=1,
            block_out_channels=(16,), layers_per_block=3,
            down_block_types=("AttnDownBlock2D",), up_block_types=("AttnUpBlock2D",),
            attention_head_dim=8, norm_num_groups=4, norm_eps=1e-5,
            flip_sin_to_cos=True, freq_shift=0, add_attention=False,
        ),
        deprecated_attention_names=False,
        timesteps=[0, 500, 999],
        dtype="F32",
        shard=None,
        seed=1003,
        scheduler=dict(
            num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
            variance_type="fixed_small", clip_sample=True, prediction_type="epsilon",
        ),
    ),
    dict(
        name="two-level-midscale",
        description=(
            "two levels (16,16), 1 layer per block, DownBlock2D+AttnDownBlock2D / AttnUpBlock2D+UpBlock2D, "
            "attention_head_dim 16 (= channels: 1 head), mid attention with attn_norm_num_groups 4 "
            "(resnets 8 groups), "
            "mid_block_scale_factor sqrt(2) (resnets and mid attention), time_embedding_dim 48 (explicit), "
            "flip_sin_to_cos false / freq_shift 0, downsample_padding 1, eps 1e-5; 8x8 input, batch 2"
        ),
        legacy_config=False,
        config=dict(
            sample_size=8, in_channels=3, out_channels=3,
            block_out_channels=(16, 16), layers_per_block=1,
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=16, norm_num_groups=8, attn_norm_num_groups=4, norm_eps=1e-5,
            flip_sin_to_cos=False, freq_shift=0, time_embedding_dim=48,
            mid_block_scale_factor=1.41421356, downsample_padding=1,
        ),
        deprecated_attention_names=False,
        timesteps=[999, 1],
        dtype="F16",
        shard=None,
        seed=1004,
        scheduler=dict(
            num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            variance_type="fixed_small", clip_sample=False, prediction_type="epsilon",
        ),
    ),
    dict(
        name="three-level-sharded",
        description=(
            "three levels (16,16,16), 1 layer per block, in 3 / out 1, center_input_sample true, "
            "AttnDown at levels 1-2 / AttnUp at levels 0-1 with attention_head_dim 8 (2 heads, mid 2 heads), "
            "8 groups, flip_sin_to_cos true / freq_shift 1, time_embedding_dim 96 (explicit), "
            "downsample_padding 1, eps 1e-5; fp16 weights sharded over several files + index.json; 8x8, batch 3"
        ),
        legacy_config=False,
        config=dict(
            sample_size=8, in_channels=3, out_channels=1, center_input_sample=True,
            block_out_channels=(16, 16, 16), layers_per_block=1,
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=8, norm_num_groups=8, norm_eps=1e-5,
            flip_sin_to_cos=True, freq_shift=1, time_embedding_dim=96, downsample_padding=1,
        ),
        deprecated_attention_names=False,
        timesteps=[640, 0, 999],
        dtype="F16",
        shard="64KB",
        seed=1005,
        scheduler=dict(
            num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
            variance_type="fixed_small", clip_sample=True, prediction_type="v_prediction",
        ),
    ),
]

REAL_CASES = [
    dict(
        name="ddpm-fashion-32",
        description="real trained checkpoint ddpm-fashion-32 (Fashion-MNIST, 1 channel), fp16 weights evaluated in fp32",
        timesteps=[999, 10],
        seed=2001,
    ),
    dict(
        name="ddpm-emoji-32",
        description="real trained checkpoint ddpm-emoji-32 (Noto emoji, 3 channels), fp16 weights evaluated in fp32",
        timesteps=[500, 0],
        seed=2002,
    ),
]


# ---------------------------------------------------------------------------------------------------
def reinit_weights(model: nn.Module, gen: torch.Generator) -> None:
    """Replace diffusers' default init (zero-ish output layers, identity norms) with random weights
    that keep activations O(1) and make every layer matter."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.GroupNorm):
                module.weight.copy_(1.0 + 0.15 * torch.randn(module.weight.shape, generator=gen))
                module.bias.copy_(0.15 * torch.randn(module.bias.shape, generator=gen))
            elif isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) / math.sqrt(fan_in))
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
        leftover = [n for n, p in model.named_parameters()
                    if not any(p is q for m in model.modules()
                               if isinstance(m, (nn.GroupNorm, nn.Conv2d, nn.Linear))
                               for q in m.parameters(recurse=False))]
        assert not leftover, f"parameters not re-initialised: {leftover}"


def round_to(model: nn.Module, dtype: torch.dtype) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.data = p.data.to(dtype).to(torch.float32)


def capture_forward(unet: UNet2DModel, sample: torch.Tensor, timesteps: torch.Tensor):
    """Run unet in fp32 and return (output, {debug name: tensor})."""
    captured: dict[str, torch.Tensor] = {}
    handles = []

    def hook(name):
        def fn(_module, _inputs, output):
            t = output[0] if isinstance(output, (tuple, list)) else output
            captured[name] = t.detach().to(torch.float32).clone().contiguous()
        return fn

    handles.append(unet.time_embedding.register_forward_hook(hook("debug.time_embedding")))
    handles.append(unet.conv_in.register_forward_hook(hook("debug.conv_in")))
    for i, block in enumerate(unet.down_blocks):
        handles.append(block.register_forward_hook(hook(f"debug.down_blocks.{i}")))
    if unet.mid_block is not None:
        handles.append(unet.mid_block.register_forward_hook(hook("debug.mid_block")))
    for i, block in enumerate(unet.up_blocks):
        handles.append(block.register_forward_hook(hook(f"debug.up_blocks.{i}")))
    handles.append(unet.conv_norm_out.register_forward_hook(hook("debug.conv_norm_out")))
    try:
        with torch.no_grad():
            out = unet(sample, timesteps).sample
    finally:
        for h in handles:
            h.remove()
    return out.to(torch.float32).contiguous(), captured


def safetensors_dtypes(paths) -> set[str]:
    dtypes = set()
    for path in paths:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        dtypes |= {v["dtype"] for k, v in header.items() if k != "__metadata__"}
    return dtypes


def weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("diffusion_pytorch_model*.safetensors"))
    assert files, f"no weights in {folder}"
    return files


def write_io(folder: Path, case: str, sample, timesteps, output, debug, weights_dtype, extra_meta=None):
    tensors = {
        "sample": sample.to(torch.float32).contiguous(),
        "timestep": timesteps.to(torch.float32).contiguous(),
        "output": output,
    }
    tensors.update(debug)
    meta = {
        "torch_version": torch.__version__,
        "diffusers_version": diffusers.__version__,
        "case": case,
        "weights_dtype": weights_dtype,
    }
    if extra_meta:
        meta.update(extra_meta)
    path = folder / "io.safetensors"
    save_file(tensors, str(path), metadata=meta)
    canonicalize_metadata_order(path)


def canonicalize_metadata_order(path: Path) -> None:
    """safetensors serialises __metadata__ from a hash map, so its key order (and the file's bytes) vary
    from run to run.  Rewrite the header in place with sorted metadata keys (same length, same offsets)
    so that regenerating the fixtures gives byte-identical files."""
    with open(path, "r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        raw = f.read(n)
        header = json.loads(raw)
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        new = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        assert len(new) <= n, (len(new), n)
        new = new + b" " * (n - len(new))
        f.seek(8)
        f.write(new)
    with safetensors.safe_open(str(path), "pt") as check:
        assert check.metadata() == header["__metadata__"]


def make_inputs(config, timesteps, seed):
    gen = torch.Generator().manual_seed(seed)
    size = config["sample_size"]
    h, w = (size, size) if isinstance(size, int) else size
    n = len(timesteps)
    sample = torch.randn((n, config["in_channels"], h, w), generator=gen)
    return sample, torch.tensor(timesteps, dtype=torch.int64)


def describe_stats(output, debug) -> str:
    parts = [f"out std {output.std().item():.3g}"]
    stds = [t.std().item() for t in debug.values()]
    parts.append(f"debug std {min(stds):.3g}..{max(stds):.3g}")
    return ", ".join(parts)


def sensitivity_check(unet: UNet2DModel, sample, timesteps, reference) -> list[str]:
    """Perturb every parameter tensor by 1% (relative, random direction) and list those whose
    effect on the output is below 1e-5 relative."""
    weak = []
    ref_norm = reference.norm().item()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            saved = p.data.clone()
            p.data += 0.01 * p.data.abs().mean() * torch.randn(p.shape, generator=gen) + 0.01 * p.data
            out = unet(sample, timesteps).sample
            p.data = saved
            rel = (out - reference).norm().item() / ref_norm
            if rel < 1e-5:
                weak.append(f"{name} ({rel:.1e})")
    return weak


# ---------------------------------------------------------------------------------------------------
def make_random_case(spec: dict, check_sensitivity: bool) -> None:
    name = spec["name"]
    folder = OUT_DIR / name
    folder.mkdir(parents=True)
    storage = DTYPES[spec["dtype"]]

    torch.manual_seed(spec["seed"])
    cfg = spec["config"]
    if spec["legacy_config"]:
        kwargs = {k: v for k, v in cfg.items() if not k.startswith("_")}
    else:
        kwargs = dict(cfg)
    model = UNet2DModel(**kwargs).eval()
    reinit_weights(model, torch.Generator().manual_seed(spec["seed"]))
    round_to(model, storage)

    sample, timesteps = make_inputs(kwargs, spec["timesteps"], spec["seed"] + 1)
    expected, _ = capture_forward(model, sample, timesteps)

    # --- write the model folder
    if spec["deprecated_attention_names"]:
        assert spec["shard"] is None, "diffusers only renames deprecated attention keys for unsharded files"
        state = {k: v.to(storage).contiguous() for k, v in model.state_dict().items()}
        renamed = {}
        n_renamed = 0
        for k, v in state.items():
            new_k = k
            if ".attentions." in k:
                for new, old in DEPRECATED_ATTENTION_NAMES.items():
                    for suffix in ("weight", "bias"):
                        if k.endswith(f".{new}.{suffix}"):
                            new_k = k[: -len(f"{new}.{suffix}")] + f"{old}.{suffix}"
                            n_renamed += 1
            renamed[new_k] = v
        assert n_renamed > 0
        save_file(renamed, str(folder / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    else:
        model.to(storage).save_pretrained(
            folder, safe_serialization=True, max_shard_size=spec["shard"] or "10GB"
        )
        model.to(torch.float32)

    if spec["legacy_config"]:
        (folder / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")

    DDPMScheduler(**spec["scheduler"]).save_config(folder)

    files = weight_files(folder)
    if spec["shard"]:
        assert len(files) > 1 and (folder / "diffusion_pytorch_model.safetensors.index.json").exists(), \
            f"{name}: expected a sharded checkpoint, got {files}"
    else:
        assert len(files) == 1
    on_disk = safetensors_dtypes(files)
    assert on_disk == {spec["dtype"]}, (name, on_disk)

    # --- reference: reload from disk in fp32
    unet = UNet2DModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
    reloaded_keys = set(unet.state_dict().keys())
    assert reloaded_keys == set(model.state_dict().keys())
    for k, v in unet.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), f"{name}: {k} differs after reload"
    if spec["legacy_config"]:
        # every published field must come back unchanged
        for k, v in cfg.items():
            if not k.startswith("_"):
                got = unet.config[k]
                got = list(got) if isinstance(got, tuple) else got
                assert got == v, (name, k, got, v)

    output, debug = capture_forward(unet, sample, timesteps)
    assert torch.equal(output, expected), f"{name}: output differs after reload"
    assert torch.isfinite(output).all()
    write_io(folder, spec["description"], sample, timesteps, output, debug, spec["dtype"])
    print(f"  {name}: N={len(spec['timesteps'])} {spec['dtype']} files={len(files)} "
          f"params={sum(p.numel() for p in unet.parameters())}  {describe_stats(output, debug)}")

    if check_sensitivity:
        weak = sensitivity_check(unet, sample, timesteps, output)
        print(f"    sensitivity: {len(weak)} weak parameter tensors" + (f": {weak}" if weak else ""))


def select_real_debug(debug: dict, mode: str) -> dict:
    if mode == "all":
        return debug
    if mode == "none":
        return {}
    # "small": keep the low-resolution intermediates only (<= REAL_DEBUG_MAX_ELEMENTS floats each), so the
    # two real-checkpoint fixtures stay small; for the 32x32 checkpoints at N=2 this keeps
    # debug.time_embedding, debug.down_blocks.2, debug.down_blocks.3 and debug.mid_block.
    return {k: v for k, v in debug.items() if v.numel() <= REAL_DEBUG_MAX_ELEMENTS}


def make_real_case(spec: dict, shared: Path, real_debug: str) -> None:
    name = spec["name"]
    src = shared / name
    if not (src / "config.json").exists():
        sys.exit(f"error: checkpoint {src} not found (pass --shared /path/to/shared/models)")
    folder = OUT_DIR / name
    folder.mkdir(parents=True)
    files = weight_files(src)
    dtypes = safetensors_dtypes(files)
    assert len(dtypes) == 1, dtypes
    sha = hashlib.sha256()
    for f in files:
        sha.update(f.read_bytes())

    unet = UNet2DModel.from_pretrained(src, torch_dtype=torch.float32).eval()
    sample, timesteps = make_inputs(dict(unet.config), spec["timesteps"], spec["seed"])
    output, debug = capture_forward(unet, sample, timesteps)
    assert torch.isfinite(output).all()
    debug = select_real_debug(debug, real_debug)
    write_io(folder, spec["description"], sample, timesteps, output, debug, dtypes.pop(),
             extra_meta={"checkpoint": name, "checkpoint_sha256": sha.hexdigest()})
    print(f"  {name}: N={len(spec['timesteps'])}  {describe_stats(output, debug)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED,
                    help="folder holding ddpm-fashion-32/ and ddpm-emoji-32/ (default: %(default)s)")
    ap.add_argument("--real-debug", choices=("small", "all", "none"), default="small",
                    help="debug intermediates stored for the two real checkpoints: 'small' (default) keeps only "
                         f"those of at most {REAL_DEBUG_MAX_ELEMENTS} floats (time_embedding, down_blocks.2/.3, "
                         "mid_block), 'all' keeps every one (+6.3 MB), 'none' keeps none")
    ap.add_argument("--check-sensitivity", action="store_true",
                    help="also check that every parameter tensor of the random cases affects the output")
    args = ap.parse_args()

    torch.set_grad_enabled(False)
    torch.use_deterministic_algorithms(True)
    # One intra-op thread: with 2+ threads the fp32 results move by ~1 ulp (1e-7 relative) from run to run
    # configuration, which is harmless for tests but makes regenerated files differ byte-wise.
    torch.set_num_threads(1)
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, safetensors {safetensors.__version__}, "
          f"numpy {np.__version__}")

    missing = [str(args.shared / c["name"]) for c in REAL_CASES if not (args.shared / c["name"] / "config.json").exists()]
    if missing:  # check before deleting anything
        sys.exit(f"error: checkpoint(s) not found: {', '.join(missing)} (pass --shared /path/to/shared/models)")

    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)

    for spec in REAL_CASES:
        make_real_case(spec, args.shared, args.real_debug)
    for spec in RANDOM_CASES:
        make_random_case(spec, args.check_sensitivity)

    total = sum(f.stat().st_size for f in OUT_DIR.rglob("*") if f.is_file())
    print(f"total size of {OUT_DIR.relative_to(REPO_ROOT)}: {total} bytes ({total / 2**20:.2f} MiB)")


if __name__ == "__main__":
    main()
