#!/usr/bin/env python3
"""Writes full-size random-weight Stable Diffusion pipelines, for the one-off check and the benchmark in
tools/benchmarks/sd_full_size.sh (too large to commit: 2.1 GB of fp16 weights for sd15, 2.5 GB for sd21, and 3.4 GB
per ONNX export; 11.6 GB in all):

    OUT/sd15/   runwayml/stable-diffusion-v1-5's architecture as a StableDiffusionPipeline folder (fp16 safetensors,
                safety_checker and feature_extractor None, requires_safety_checker false):
                unet: UNet2DConditionModel, 4×64×64 latents, block_out_channels [320, 640, 1280, 1280],
                      layers_per_block 2, 3 × CrossAttnDownBlock2D + DownBlock2D / UpBlock2D + 3 × CrossAttnUpBlock2D,
                      attention_head_dim 8 (8 heads per block), cross_attention_dim 768 (859,520,964 parameters)
                vae: AutoencoderKL, block_out_channels [128, 256, 512, 512], layers_per_block 2, latent_channels 4,
                     sample_size 512, scaling_factor 0.18215 (83,653,863 parameters)
                text_encoder: CLIPTextModel, CLIP ViT-L/14's text tower: hidden 768, intermediate 3072, 12 layers,
                      12 heads, quick_gelu, 49,408 tokens, 77 positions (123,060,480 parameters); tensor names with the
                      hub's `text_model.` prefix
                tokenizer: Tests/Fixtures/tokenizer/sd1's configs, vocab.json and merges.txt copied (not symlinks: OUT
                      is outside the repository)
                scheduler: SD 1.5's PNDMScheduler scheduler_config.json, byte for byte
    OUT/sd21/   stabilityai/stable-diffusion-2-1's: the unet with sample_size 96, attention_head_dim [5, 10, 20, 20]
                (heads per block: d = 64), use_linear_projection, upcast_attention, cross_attention_dim 1024
                (865,910,724 parameters); the vae as SD 1.5's with sample_size 768; text_encoder OpenCLIP ViT-H/14's
                text tower as diffusers ships it (hidden 1024, intermediate 4096, 23 of its 24 layers, 16 heads,
                gelu; 340,387,840 parameters); Tests/Fixtures/tokenizer/sd2's configs (pad "!", id 0); SD 2.1's
                DDIMScheduler scheduler_config.json (v_prediction), byte for byte

Every architecture field is the hub's config.json value (UNETS, VAES, TEXT_ENCODERS below; fields the hub files
lack take diffusers' / transformers' defaults, as they do for users). The saved config.json files are the ones
diffusers 0.42 / transformers 5 write (every field spelled out), not the hub's shorter ones.

Per pipeline, computed on the CPU from the saved folder reloaded in float32 (checked equal to the in-memory
weights), all float32:

    OUT/<name>/io.safetensors
        prompt_ids                   [1, 77]       tokenizer(PROMPT, padding="max_length", max_length=77, truncation=True)
        prompt_embeds                [1, 77, D]    text_encoder(prompt_ids).last_hidden_state (= pipe.encode_prompt)
        unet_sample                  [1, 4, S, S]  seeded randn
        unet_timestep                [1]           500 (the UNet gets int64)
        unet_encoder_hidden_states   [1, 77, D]    prompt_embeds
        unet_output                  [1, 4, S, S]  unet(sample, timestep, encoder_hidden_states).sample, float32
        unet_output_fp64             [1, 4, S, S]  the same weights (fp16 values, exact in float64) and inputs in
                                                   float64 — the sinusoidal time embedding too (diffusers computes it
                                                   in float32 whatever the model's dtype) — cast to float32
        decoder_latents              [1, 4, S, S]  seeded randn
        decoder_image                [1, 3, 8S, 8S] vae.decode(decoder_latents).sample (no scaling_factor: the decoder
                                                   alone)
    OUT/<name>/errors.json   torch's own float32 error against float64 (relative L2 ‖a − b‖/‖b‖ and max abs), the
                             part of it the float32 sinusoid causes, and the ONNX check below
    OUT/<name>/counts.json   parameter counts per component as torch counts them (numel)
    OUT/<name>/unet.onnx     unless --no-onnx: the UNet alone in fp32 for ONNX Runtime, opset 17, TorchScript exporter,
    OUT/<name>/unet.onnx.data  weights as external data in one file (the protobuf limit is 2 GB). Inputs sample
                             float32 [2, 4, S, S], timestep float32 [1] (broadcast over the batch, as diffusers does),
                             encoder_hidden_states float32 [2, 77, D]; output float32 [2, 4, S, S]: batch 2 is one
                             classifier-free guidance step. Loaded back with ONNX Runtime (2 threads) and compared with
                             torch on [negative "", prompt] embeddings (relative L2 printed and stored).

Memory: the float64 UNet (6.9 GB) is loaded from the folder only after the float32 pipeline and the ONNX Runtime
session are freed; the peak is the reload check (the in-memory and the reloaded float32 pipeline: 10.6 GB for sd15,
11.3 GB for sd21). Every phase prints its wall time and the process's resident memory; on 2 cores sd15 takes about
5 minutes, sd21 about 7 (its float64 UNet evaluation at 96×96: 63 s).

Usage:  python3 tools/reference/make_full_size_sd.py OUT [--no-onnx] [--only sd15|sd21] [--threads T]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import shutil
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import diffusers
import numpy as np
import torch
import transformers
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_autoencoder_fixtures import randomize  # noqa: E402  (the same seeded, fp16-rounded weights)
from make_sd_pipeline_fixtures import SCHEDULERS, TOKENIZER, check_weights, hub_layout, load  # noqa: E402

PROMPT = "a photograph of an astronaut riding a horse"
TIMESTEP = 500
ONNX_BATCH = 2

# Architecture fields of the hub's unet/config.json, vae/config.json and text_encoder/config.json:
# https://huggingface.co/runwayml/stable-diffusion-v1-5/tree/main and
# https://huggingface.co/stabilityai/stable-diffusion-2-1/tree/main.
UNET_COMMON = dict(
    act_fn="silu", block_out_channels=(320, 640, 1280, 1280), center_input_sample=False,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    downsample_padding=1, flip_sin_to_cos=True, freq_shift=0, in_channels=4, layers_per_block=2, mid_block_scale_factor=1,
    norm_eps=1e-5, norm_num_groups=32, out_channels=4,
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))
UNETS = {
    "sd15": dict(UNET_COMMON, attention_head_dim=8, cross_attention_dim=768, sample_size=64),
    "sd21": dict(UNET_COMMON, attention_head_dim=(5, 10, 20, 20), cross_attention_dim=1024, sample_size=96,
                 dual_cross_attention=False, num_class_embeds=None, only_cross_attention=False,
                 use_linear_projection=True, upcast_attention=True),
}
VAE_COMMON = dict(act_fn="silu", block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                  in_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32, out_channels=3,
                  up_block_types=("UpDecoderBlock2D",) * 4,
                  scaling_factor=0.18215)  # not in the hub's two vae configs (written before the field existed): the default
VAES = {"sd15": dict(VAE_COMMON, sample_size=512), "sd21": dict(VAE_COMMON, sample_size=768)}
# The special-token ids (0, 2, 1) are the hub's (transformers' old defaults; the tokenizer has 49406, 49407 and its
# pad); like projection_dim they do not change last_hidden_state.
TEXT_COMMON = dict(attention_dropout=0.0, bos_token_id=0, dropout=0.0, eos_token_id=2, initializer_factor=1.0,
                   initializer_range=0.02, layer_norm_eps=1e-5, max_position_embeddings=77, pad_token_id=1, vocab_size=49408)
TEXT_ENCODERS = {
    "sd15": dict(TEXT_COMMON, hidden_act="quick_gelu", hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                 num_hidden_layers=12, projection_dim=768),
    "sd21": dict(TEXT_COMMON, hidden_act="gelu", hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
                 num_hidden_layers=23, projection_dim=512),
}
TOKENIZER_LAYOUT = {"sd15": "sd1", "sd21": "sd2"}
SCHEDULER_LAYOUT = {"sd15": "sd1", "sd21": "sd2"}
SEEDS = {"sd15": 100, "sd21": 110}  # unet, vae, text encoder: seed, +1, +2; inputs: +3; the ONNX check: +4


def resident() -> str:
    """The process's resident memory now and at its peak (VmHWM), in GB."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    gb = lambda key: int(status[key].split()[0]) / 1e6  # noqa: E731  (kB)
    return f"RSS {gb('VmRSS'):.1f} GB, peak {gb('VmHWM'):.1f} GB"


def release_memory() -> None:
    """Collects and hands freed heap pages back to the kernel (glibc keeps them otherwise, and the float64 UNet
    comes after the float32 pipeline)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@contextmanager
def phase(label: str, timings: dict):
    print(f"[{time.strftime('%H:%M:%S')}] {label} …", flush=True)
    t0 = time.perf_counter()
    yield
    seconds = time.perf_counter() - t0
    timings[label] = round(seconds, 1)
    release_memory()
    print(f"[{time.strftime('%H:%M:%S')}] {label}: {seconds:.1f} s ({resident()})", flush=True)


def relative_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item()


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


def exact_sinusoid(proj) -> None:
    """Makes a diffusers `Timesteps` module compute its embedding in float64. diffusers builds it in float32 even
    for a float64 model (get_timestep_embedding's arange(dtype=float32), timesteps.float()); at t = 500 that is an
    argument error up to 500 · 2⁻²⁴ ≈ 3e-5, more than the rest of the float32 UNet's rounding. The UNet casts the
    result to the sample's dtype."""
    def forward(timesteps: torch.Tensor) -> torch.Tensor:
        half = proj.num_channels // 2
        exponent = -math.log(10000) * torch.arange(half, dtype=torch.float64) / (half - proj.downscale_freq_shift)
        emb = proj.scale * timesteps[:, None].to(torch.float64) * torch.exp(exponent)[None, :]
        emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
        if proj.flip_sin_to_cos:
            emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
        if proj.num_channels % 2 == 1:
            emb = torch.nn.functional.pad(emb, (0, 1, 0, 0))
        return emb

    proj.forward = forward


class ConditionalUNetSample(torch.nn.Module):
    """The conditional UNet as a function of (sample, timestep, encoder_hidden_states), as the exporter traces it."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states).sample


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def write_tokenizer(folder: Path, layout: str) -> None:
    """The layout's two config files and the 1.4 MB vocabulary files, all copied."""
    folder.mkdir(parents=True)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(TOKENIZER / layout / name, folder / name)
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(TOKENIZER / name, folder / name)


def build(folder: Path, name: str) -> dict[str, torch.nn.Module]:
    """Saves a random pipeline of the named architecture to folder; returns its in-memory fp32 modules."""
    seed = SEEDS[name]
    shutil.rmtree(folder, ignore_errors=True)
    write_tokenizer(folder / "tokenizer", TOKENIZER_LAYOUT[name])
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    assert tokenizer.bos_token_id == 49406 and tokenizer.eos_token_id == 49407 and tokenizer.model_max_length == 77
    unet = UNet2DConditionModel(**UNETS[name]).eval()
    randomize(unet, seed)
    vae = AutoencoderKL(**VAES[name]).eval()
    randomize(vae, seed + 1)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT_ENCODERS[name])).eval()
    randomize(text_encoder, seed + 2)
    _, scheduler_config = SCHEDULERS[SCHEDULER_LAYOUT[name]]
    scheduler_cls = getattr(diffusers, scheduler_config["_class_name"])
    scheduler = scheduler_cls.from_config({k: v for k, v in scheduler_config.items() if not k.startswith("_")})
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    pipe.to(torch.float32)
    hub_layout(folder / "text_encoder" / "model.safetensors")
    shutil.rmtree(folder / "tokenizer")
    write_tokenizer(folder / "tokenizer", TOKENIZER_LAYOUT[name])
    write_json(folder / "scheduler" / "scheduler_config.json", scheduler_config)
    # The architecture fields, as read back from the saved configs, are the hub's (transformers writes only the
    # fields that differ from its defaults).
    saved = {"unet": dict(UNet2DConditionModel.load_config(folder / "unet")), "vae": dict(AutoencoderKL.load_config(folder / "vae")),
             "text_encoder": CLIPTextConfig.from_pretrained(folder / "text_encoder").to_dict()}
    for component, fields in (("unet", UNETS[name]), ("vae", VAES[name]), ("text_encoder", TEXT_ENCODERS[name])):
        for k, v in fields.items():
            want, got = (list(v) if isinstance(v, tuple) else v), saved[component].get(k)
            assert (list(got) if isinstance(got, tuple) else got) == want, f"{name}/{component}/config.json: {k} is {got!r}, not {want!r}"
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder}


def counts_of(pipe: StableDiffusionPipeline) -> dict[str, int]:
    def n(module, prefixes=None):
        return sum(p.numel() for k, p in module.named_parameters() if prefixes is None or k.startswith(prefixes))

    return {"unet": n(pipe.unet), "text_encoder": n(pipe.text_encoder), "vae": n(pipe.vae),
            "vae_decoder": n(pipe.vae, ("decoder.", "post_quant_conv.")),
            "vae_encoder": n(pipe.vae, ("encoder.", "quant_conv."))}


def export_onnx(unet: UNet2DConditionModel, inputs: tuple, folder: Path) -> None:
    """TorchScript export (the >2 GB model goes out as one external-data file per tensor into a scratch folder),
    then one unet.onnx + unet.onnx.data."""
    scratch = folder / "onnx-export.tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    with torch.no_grad(), warnings.catch_warnings():
        # Shape checks in diffusers' forward (asserts, the upsample-size test) become constants: the shapes are static.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False: the TorchScript exporter, as export_peers.py
        torch.onnx.export(ConditionalUNetSample(unet), inputs, str(scratch / "unet.onnx"),
                          input_names=["sample", "timestep", "encoder_hidden_states"], output_names=["output"],
                          opset_version=17, dynamo=False)
    print(f"  exported: {len(list(scratch.iterdir()))} files in {scratch.name}/ ({resident()})", flush=True)


def consolidate_onnx(folder: Path) -> None:
    import onnx
    scratch = folder / "onnx-export.tmp"
    model = onnx.load(str(scratch / "unet.onnx"))
    for f in ("unet.onnx", "unet.onnx.data"):
        (folder / f).unlink(missing_ok=True)
    onnx.save_model(model, str(folder / "unet.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="unet.onnx.data", size_threshold=1024)
    del model
    shutil.rmtree(scratch)


def check_onnx(folder: Path, feeds: dict[str, np.ndarray], expected: np.ndarray, threads: int) -> dict:
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    t0 = time.perf_counter()
    session = ort.InferenceSession(str(folder / "unet.onnx"), options, providers=["CPUExecutionProvider"])
    loaded = time.perf_counter() - t0
    described = [(i.name, i.type, i.shape) for i in session.get_inputs()]
    t0 = time.perf_counter()
    got = session.run(None, feeds)[0]
    ran = time.perf_counter() - t0
    del session
    e = {"relative_l2": relative_l2(torch.from_numpy(got), torch.from_numpy(expected)),
         "max_abs": max_abs(torch.from_numpy(got), torch.from_numpy(expected)),
         "batch": ONNX_BATCH, "inputs": [f"{n} {t} {s}" for n, t, s in described],
         "onnxruntime": ort.__version__, "session_seconds": round(loaded, 1), "run_seconds": round(ran, 1)}
    print(f"  ONNX Runtime {ort.__version__} vs torch fp32 (batch {ONNX_BATCH}): relative L2 {e['relative_l2']:.3g}, "
          f"max abs {e['max_abs']:.3g}; session {loaded:.1f} s, one run {ran:.1f} s", flush=True)
    return e


def make(root: Path, name: str, onnx: bool, threads: int) -> None:
    folder = root / name
    timings: dict[str, float] = {}
    print(f"== {name} → {folder}", flush=True)
    with phase(f"{name}: build, randomize, save fp16", timings):
        modules = build(folder, name)
    with phase(f"{name}: reload fp32, check weights", timings):
        pipe = load(folder)
        check_weights(pipe, modules, name)
        del modules
    counts = counts_of(pipe)
    write_json(folder / "counts.json", counts)
    print(f"  counts: {json.dumps(counts)}", flush=True)

    tok, unet = pipe.tokenizer, pipe.unet
    s = unet.config.sample_size
    tensors: dict[str, torch.Tensor] = {}
    errors: dict = {"about": "Written by tools/reference/make_full_size_sd.py: torch's float32 error against float64 on the "
                             "unet_* inputs (relative L2 = ||a - b|| / ||b||), its part from diffusers' float32 sinusoidal "
                             "time embedding, and the ONNX export against torch float32."}
    with phase(f"{name}: tokenizer and text encoder", timings):
        ids = tok(PROMPT, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
        negative_ids = tok("", padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            prompt_embeds = pipe.text_encoder(ids)[0]
            negative_embeds = pipe.text_encoder(negative_ids)[0]
            assert torch.equal(prompt_embeds, pipe.encode_prompt(PROMPT, torch.device("cpu"), 1, False)[0])
        tensors.update(prompt_ids=ids.to(torch.float32), prompt_embeds=prompt_embeds)
        print(f"  ids {ids[0, :12].tolist()}…, embeddings {list(prompt_embeds.shape)} max|x| {prompt_embeds.abs().max().item():.4g}")

    g = torch.Generator().manual_seed(SEEDS[name] + 3)
    sample = torch.randn((1, unet.config.in_channels, s, s), generator=g)
    latents = torch.randn((1, pipe.vae.config.latent_channels, s, s), generator=g)
    timestep = torch.tensor([TIMESTEP])
    with phase(f"{name}: UNet fp32, batch 1", timings):
        with torch.no_grad():
            unet_output = unet(sample, timestep, encoder_hidden_states=prompt_embeds).sample
    tensors.update(unet_sample=sample, unet_timestep=timestep.to(torch.float32), unet_encoder_hidden_states=prompt_embeds.clone(),
                   unet_output=unet_output)
    with phase(f"{name}: UNet fp32 with the float64 sinusoid", timings):
        exact_sinusoid(unet.time_proj)
        with torch.no_grad():
            exact_t = unet(sample, timestep, encoder_hidden_states=prompt_embeds).sample
        del unet.time_proj.forward  # back to the class's forward
    with phase(f"{name}: VAE decode fp32 ({8 * s}×{8 * s})", timings):
        with torch.no_grad():
            image = pipe.vae.decode(latents).sample
    tensors.update(decoder_latents=latents, decoder_image=image)

    if onnx:
        g = torch.Generator().manual_seed(SEEDS[name] + 4)
        x2 = torch.randn((ONNX_BATCH, unet.config.in_channels, s, s), generator=g)
        t2 = torch.tensor([float(TIMESTEP)])
        c2 = torch.cat([negative_embeds, prompt_embeds])
        with phase(f"{name}: UNet fp32, batch {ONNX_BATCH} (the ONNX check's torch side)", timings):
            with torch.no_grad():
                y2 = unet(x2, t2, encoder_hidden_states=c2).sample
        with phase(f"{name}: ONNX export", timings):
            export_onnx(unet, (x2, t2, c2), folder)
    del pipe, unet
    release_memory()
    if onnx:
        with phase(f"{name}: ONNX consolidate into unet.onnx + unet.onnx.data", timings):
            consolidate_onnx(folder)
        with phase(f"{name}: ONNX Runtime load and check", timings):
            errors["onnx_vs_torch_fp32"] = check_onnx(folder, {"sample": x2.numpy(), "timestep": t2.numpy(),
                                                                "encoder_hidden_states": c2.numpy()}, y2.numpy(), threads)

    with phase(f"{name}: UNet fp64, batch 1", timings):
        unet64 = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float64).eval()
        assert all(p.dtype == torch.float64 for p in unet64.parameters())
        exact_sinusoid(unet64.time_proj)
        with torch.no_grad():
            output64 = unet64(sample.double(), timestep, encoder_hidden_states=prompt_embeds.double()).sample
        del unet64
    tensors["unet_output_fp64"] = output64
    errors["unet_fp32_vs_fp64"] = {"relative_l2": relative_l2(unet_output, output64), "max_abs": max_abs(unet_output, output64),
                                   "fp64_max_abs_value": output64.abs().max().item()}
    errors["sinusoid_float32_vs_float64"] = {
        "about": "torch float32 UNet with diffusers' float32 sinusoid vs the same with the float64 sinusoid rounded to float32",
        "relative_l2": relative_l2(unet_output, exact_t), "max_abs": max_abs(unet_output, exact_t)}
    errors["unet_fp32_exact_sinusoid_vs_fp64"] = {"relative_l2": relative_l2(exact_t, output64), "max_abs": max_abs(exact_t, output64)}
    e = errors["unet_fp32_vs_fp64"]
    print(f"  torch fp32 vs fp64 UNet: relative L2 {e['relative_l2']:.3g}, max abs {e['max_abs']:.3g} "
          f"(float32 sinusoid alone: relative L2 {errors['sinusoid_float32_vs_float64']['relative_l2']:.3g}; "
          f"fp32 with the exact sinusoid vs fp64: {errors['unet_fp32_exact_sinusoid_vs_fp64']['relative_l2']:.3g})", flush=True)

    save_file({k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}, str(folder / "io.safetensors"),
              metadata={"torch_version": torch.__version__, "diffusers_version": diffusers.__version__,
                        "transformers_version": transformers.__version__, "prompt": PROMPT, "case": name})
    errors["seconds"] = timings
    errors["torch_threads"] = threads
    write_json(folder / "errors.json", errors)
    for k, v in tensors.items():
        print(f"  {k:28s} {str(list(v.shape)):18s} max|x| {v.abs().max().item():.4g}")
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    print(f"wrote {folder} ({size / 1e9:.2f} GB)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--only", choices=sorted(UNETS))
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch and ONNX Runtime threads")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    a.out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, transformers {transformers.__version__}, "
          f"{a.threads} threads", flush=True)
    for name in [a.only] if a.only else sorted(UNETS):
        make(a.out, name, not a.no_onnx, a.threads)
        release_memory()


if __name__ == "__main__":
    main()
