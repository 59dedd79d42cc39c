#!/usr/bin/env python3
"""Generate Tests/Fixtures/sd_pipeline/: tiny random-weight diffusers StableDiffusionPipelines in the layouts of
Stable Diffusion 1.x, 2.x and SD-Turbo, with what diffusers computes from them on the CPU in float32 when it samples
with DDIM.

Folders (each as StableDiffusionPipeline.save_pretrained writes it, fp16 weights, safety_checker and
feature_extractor None, requires_safety_checker false; plus io.safetensors and cases.json):

    sd1-tiny     SD 1.x's layout at reduced size.
                 unet: UNet2DConditionModel, 4×8×8 latents, block_out_channels [32, 64], layers_per_block 1,
                       CrossAttnDownBlock2D + DownBlock2D / UpBlock2D + CrossAttnUpBlock2D, cross_attention_dim 16,
                       attention_head_dim 4 (4 heads), norm_num_groups 8.
                 vae: AutoencoderKL, block_out_channels [16, 32] (vae_scale_factor 2: 16×16 images), 2 ×
                       DownEncoderBlock2D / UpDecoderBlock2D, layers_per_block 1, latent_channels 4, norm_num_groups 8,
                       scaling_factor 0.18215.
                 text_encoder: CLIPTextModel, the real 49,408-token vocabulary, hidden 16, intermediate 32, 2 layers,
                       4 heads, 77 positions, quick_gelu; saved with the hub's `text_model.` tensor-name prefix.
                 tokenizer/: Tests/Fixtures/tokenizer/sd1/'s tokenizer_config.json and special_tokens_map.json, and
                       vocab.json / merges.txt as relative symlinks to ../../../tokenizer/ (the real CLIP BPE).
                 scheduler/: runwayml/stable-diffusion-v1-5's PNDMScheduler scheduler_config.json, byte for byte.
    sd2-tiny     SD 2.x's layout: the unet with use_linear_projection, attention_head_dim [2, 4] (heads per block),
                 upcast_attention; text encoder gelu; Tests/Fixtures/tokenizer/sd2/'s configs (pads with "!", id 0);
                 scheduler/: stabilityai/stable-diffusion-2-1's DDIMScheduler config (v_prediction), byte for byte.
    turbo-tiny   SD-Turbo's layout: unet/, vae/, text_encoder/, tokenizer/ are relative symlinks to ../sd2-tiny/<name>;
                 only model_index.json and scheduler/ (stabilityai/sd-turbo's EulerDiscreteScheduler config: trailing
                 spacing, epsilon, byte for byte) are its own.

The scheduler files are the hub's (see SCHEDULERS for their sources), so fields they lack take diffusers' defaults.
The references use what edge-ddim uses: `pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)`, η = 0.

io.safetensors (float32), for every case <c> of the folder (CASES):

    <c>.prompt_ids       [1, 77]         tokenizer(prompt, padding="max_length", max_length=77, truncation=True)
    <c>.negative_ids     [1, 77]         the same for negative_prompt ("" when it is null); only if guidance > 1
    <c>.prompt_embeds    [1, 77, 16]     pipe.encode_prompt(...)[0] (text_encoder(ids).last_hidden_state)
    <c>.negative_embeds  [1, 77, 16]     pipe.encode_prompt(...)[1]; only if guidance > 1
    <c>.latents_init     [N, 4, 8, 8]    torch.randn(shape, generator=torch.Generator().manual_seed(seed)): the noise
                                         the pipeline draws (checked), before init_noise_sigma (1 for DDIM)
    <c>.latents          [N, 4, 8, 8]    pipe(..., output_type="latent").images (the last DDIM step, not scaled)
    <c>.image            [N, 16, 16, 3]  pipe(..., output_type="np").images, in [0, 1]

and one UNet evaluation with the CFG batch layout [negative, prompt]:

    unet.sample                 [2, 4, 8, 8]   seeded randn
    unet.timestep               [2]            integer timesteps (as float; the UNet gets int64)
    unet.encoder_hidden_states  [2, 77, 16]    the first case's [negative_embeds, prompt_embeds] (turbo: prompt twice)
    unet.out                    [2, 4, 8, 8]   unet(sample, timestep, encoder_hidden_states).sample

cases.json: the cases (name, prompt, negative_prompt, guidance_scale, num_inference_steps, seed,
num_images_per_prompt, height, width), the DDIM timesteps, the effective DDIM config, and fp32_vs_fp64_max_abs:
max |fp32 − fp64| of `latents` and `image` when the same pipeline runs in float64 (modules converted exactly from
the fp32 ones, the same float32 noise cast to float64 and passed as `latents=`, DDIM's ᾱ tables recomputed in
float64) — torch's own float32 error, a floor for the Swift side's tolerances.

Weights are random (seeded, scaled by 1/√fan_in, rounded to fp16, like the other fixture scripts); the references
come from the saved folder reloaded with StableDiffusionPipeline.from_pretrained(dtype=float32), whose
parameters the script checks are the in-memory ones. Deterministic: one torch thread, fixed seeds; a second run
writes the same tensors (safetensors may order the header's metadata keys differently).

Usage:  python3 tools/reference/make_sd_pipeline_fixtures.py
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import diffusers
import numpy as np
import safetensors
import torch
import transformers
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_autoencoder_fixtures import randomize  # noqa: E402  (the same seeded, fp16-rounded weights)

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "Tests" / "Fixtures"
ROOT = FIXTURES / "sd_pipeline"
TOKENIZER = FIXTURES / "tokenizer"

# The hub's scheduler_config.json files, field for field and in their order (json.dumps(indent=2) + "\n" gives the
# hub's exact sizes: 308, 345 and 553 bytes).
SCHEDULERS = {
    "sd1": ("https://huggingface.co/runwayml/stable-diffusion-v1-5/blob/main/scheduler/scheduler_config.json", {
        "_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
        "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
        "clip_sample": False}),
    "sd2": ("https://huggingface.co/stabilityai/stable-diffusion-2-1/blob/main/scheduler/scheduler_config.json", {
        "_class_name": "DDIMScheduler", "_diffusers_version": "0.8.0", "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False, "num_train_timesteps": 1000,
        "prediction_type": "v_prediction", "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
        "trained_betas": None}),
    "turbo": ("https://huggingface.co/stabilityai/sd-turbo/blob/b335f733db09ff60444334351a3bbf6ab4b64332/scheduler/"
              "scheduler_config.json", {
        "_class_name": "EulerDiscreteScheduler", "_diffusers_version": "0.24.0.dev0", "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False, "interpolation_type": "linear",
        "num_train_timesteps": 1000, "prediction_type": "epsilon", "sample_max_value": 1.0, "set_alpha_to_one": False,
        "sigma_max": None, "sigma_min": None, "skip_prk_steps": True, "steps_offset": 1, "timestep_spacing": "trailing",
        "timestep_type": "discrete", "trained_betas": None, "use_karras_sigmas": False}),
}

UNET_COMMON = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
                   down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                   up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16, norm_num_groups=8)
UNETS = {
    "sd1": dict(UNET_COMMON, attention_head_dim=4),
    "sd2": dict(UNET_COMMON, attention_head_dim=(2, 4), use_linear_projection=True, upcast_attention=True),
}
VAE = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
           up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(16, 32), layers_per_block=1, latent_channels=4,
           norm_num_groups=8, sample_size=16, scaling_factor=0.18215)
TEXT = dict(vocab_size=49408, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, layer_norm_eps=1e-5, projection_dim=16)
HIDDEN_ACT = {"sd1": "quick_gelu", "sd2": "gelu"}


def case(name, prompt, negative_prompt, guidance_scale, steps, seed, count=1):
    return dict(name=name, prompt=prompt, negative_prompt=negative_prompt, guidance_scale=guidance_scale,
                num_inference_steps=steps, seed=seed, num_images_per_prompt=count, height=16, width=16)


CASES = {
    "sd1-tiny": [case("cfg", "a photo of an astronaut riding a horse on mars", "blurry, low quality", 7.5, 10, 0),
                 case("count2", "A red cube on a table, 4k!", None, 7.5, 10, 42, count=2)],
    "sd2-tiny": [case("cfg", "an oil painting of a lighthouse at dusk", "people", 7.5, 10, 7)],
    "turbo-tiny": [case("turbo", "a cinematic shot of a baby racoon wearing an intricate italian priest robe", None,
                        0.0, 1, 3)],
}
UNET_TIMESTEPS = [901, 401]


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def hub_layout(path: Path) -> None:
    """transformers 5 saves CLIPTextModel's tensors without the `text_model.` prefix; every Stable Diffusion
    checkpoint on the hub (saved by transformers 4) has it, and transformers 5 still reads it."""
    tensors = load_file(str(path))
    save_file({k if k.startswith("text_model.") else "text_model." + k: v for k, v in tensors.items()}, str(path),
              metadata={"format": "pt"})


def write_tokenizer(folder: Path, kind: str) -> None:
    """The layout's two config files, copied; the 1.4 MB vocabulary files as relative symlinks to the shared ones."""
    folder.mkdir(parents=True)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(TOKENIZER / kind / name, folder / name)
    for name in ("vocab.json", "merges.txt"):
        target = os.path.relpath(TOKENIZER / name, folder)
        os.symlink(target, folder / name)
        assert (folder / name).resolve() == (TOKENIZER / name).resolve()


def build(folder: Path, kind: str, seed: int) -> dict[str, torch.nn.Module]:
    """Saves a tiny random pipeline of the given layout to folder; returns its in-memory fp32 modules."""
    with tempfile.TemporaryDirectory() as scratch:
        write_tokenizer(Path(scratch) / "tokenizer", kind)
        tokenizer = CLIPTokenizer.from_pretrained(Path(scratch) / "tokenizer")
    assert tokenizer.bos_token_id == 49406 and tokenizer.eos_token_id == 49407 and tokenizer.model_max_length == 77
    unet = UNet2DConditionModel(**UNETS[kind]).eval()
    randomize(unet, seed)
    vae = AutoencoderKL(**VAE).eval()
    randomize(vae, seed + 1)
    text_encoder = CLIPTextModel(CLIPTextConfig(hidden_act=HIDDEN_ACT[kind], bos_token_id=tokenizer.bos_token_id,
                                                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                                **TEXT)).eval()
    randomize(text_encoder, seed + 2)
    _, scheduler_config = SCHEDULERS[kind]
    scheduler_cls = getattr(diffusers, scheduler_config["_class_name"])
    scheduler = scheduler_cls.from_config({k: v for k, v in scheduler_config.items() if not k.startswith("_")})
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    pipe.to(torch.float32)
    hub_layout(folder / "text_encoder" / "model.safetensors")
    shutil.rmtree(folder / "tokenizer")
    write_tokenizer(folder / "tokenizer", kind)
    write_json(folder / "scheduler" / "scheduler_config.json", scheduler_config)
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder}


def make_turbo(folder: Path, source: Path) -> None:
    folder.mkdir(parents=True)
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        os.symlink(os.path.relpath(source / name, folder), folder / name, target_is_directory=True)
    index = json.loads((source / "model_index.json").read_text())
    _, scheduler_config = SCHEDULERS["turbo"]
    index["scheduler"] = ["diffusers", scheduler_config["_class_name"]]
    # diffusers writes model_index.json as json.dumps(indent=2, sort_keys=True) + "\n"
    (folder / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    (folder / "scheduler").mkdir()
    write_json(folder / "scheduler" / "scheduler_config.json", scheduler_config)


def load(folder: Path) -> StableDiffusionPipeline:
    pipe = StableDiffusionPipeline.from_pretrained(folder, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        module.eval()
    return pipe


def check_weights(pipe: StableDiffusionPipeline, modules: dict[str, torch.nn.Module], label: str) -> None:
    for name, module in modules.items():
        loaded = getattr(pipe, name).state_dict()
        original = module.state_dict()
        assert loaded.keys() == original.keys(), f"{label}/{name}: parameter names differ"
        for k, v in original.items():
            assert loaded[k].dtype == torch.float32 and torch.equal(loaded[k], v), f"{label}/{name}: {k} changed on reload"


def float64_tables(scheduler: DDIMScheduler) -> None:
    """DDIM's ᾱ tables in float64 (diffusers builds them in float32), for the float64 run."""
    c = scheduler.config
    assert c.beta_schedule == "scaled_linear" and c.trained_betas is None
    betas = torch.linspace(c.beta_start**0.5, c.beta_end**0.5, c.num_train_timesteps, dtype=torch.float64) ** 2
    scheduler.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    scheduler.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64) if c.set_alpha_to_one else scheduler.alphas_cumprod[0]


def run_case(pipe: StableDiffusionPipeline, c: dict, tensors: dict, record: dict) -> None:
    name, guided = c["name"], c["guidance_scale"] > 1
    count = c["num_images_per_prompt"]
    tok = pipe.tokenizer

    def ids(text):
        return tok(text, padding="max_length", max_length=tok.model_max_length, truncation=True,
                   return_tensors="pt").input_ids

    prompt_ids = ids(c["prompt"])
    with torch.no_grad():
        prompt_embeds, negative_embeds = pipe.encode_prompt(c["prompt"], torch.device("cpu"), 1, guided,
                                                            c["negative_prompt"])
        assert torch.equal(prompt_embeds, pipe.text_encoder(prompt_ids)[0])
    tensors[f"{name}.prompt_ids"] = prompt_ids.to(torch.float32)
    tensors[f"{name}.prompt_embeds"] = prompt_embeds
    if guided:
        negative_ids = ids(c["negative_prompt"] or "")
        with torch.no_grad():
            assert torch.equal(negative_embeds, pipe.text_encoder(negative_ids)[0])
        tensors[f"{name}.negative_ids"] = negative_ids.to(torch.float32)
        tensors[f"{name}.negative_embeds"] = negative_embeds
    else:
        assert negative_embeds is None

    shape = (count, pipe.unet.config.in_channels, c["height"] // pipe.vae_scale_factor, c["width"] // pipe.vae_scale_factor)
    latents_init = torch.randn(shape, generator=torch.Generator().manual_seed(c["seed"]))
    drawn = []
    prepare = pipe.prepare_latents

    def capture(*args, **kwargs):
        out = prepare(*args, **kwargs)
        drawn.append(out)
        return out

    def call(output_type, latents=None):
        with torch.no_grad():
            return pipe(prompt=c["prompt"], negative_prompt=c["negative_prompt"], guidance_scale=c["guidance_scale"],
                        num_inference_steps=c["num_inference_steps"], num_images_per_prompt=count, height=c["height"],
                        width=c["width"], eta=0.0, generator=torch.Generator().manual_seed(c["seed"]), latents=latents,
                        output_type=output_type).images

    pipe.prepare_latents = capture
    latents = call("latent")
    image = torch.from_numpy(np.ascontiguousarray(call("np")))
    pipe.prepare_latents = prepare
    assert pipe.scheduler.init_noise_sigma == 1.0
    assert len(drawn) == 2 and all(torch.equal(d, latents_init) for d in drawn), f"{name}: the pipeline drew other noise"
    assert torch.equal(call("latent", latents=latents_init.clone()), latents), f"{name}: latents= changes the result"
    tensors[f"{name}.latents_init"] = latents_init
    tensors[f"{name}.latents"] = latents
    tensors[f"{name}.image"] = image
    record["ddim_timesteps"] = pipe.scheduler.timesteps.tolist()

    # The same in float64: exact conversions of the fp32 modules, the same noise, DDIM's tables in float64.
    pipe.to(torch.float64)
    float64_tables(pipe.scheduler)
    latents64 = call("latent", latents=latents_init.to(torch.float64))
    image64 = torch.from_numpy(np.ascontiguousarray(call("np", latents=latents_init.to(torch.float64))))
    pipe.to(torch.float32)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    assert latents64.dtype == torch.float64
    record["fp32_vs_fp64_max_abs"] = {
        "latents": (latents.double() - latents64).abs().max().item(),
        "image": (image.double() - image64.double()).abs().max().item(),
    }


def write_folder(folder: Path, modules: dict | None, seed: int) -> dict:
    pipe = load(folder)
    if modules is not None:
        check_weights(pipe, modules, folder.name)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    ddim_config = {k: v for k, v in pipe.scheduler.config.items() if not k.startswith("_")}
    tensors, records = {}, []
    for c in CASES[folder.name]:
        record = dict(c)
        run_case(pipe, c, tensors, record)
        records.append(record)

    first = CASES[folder.name][0]["name"]
    prompt = tensors[f"{first}.prompt_embeds"]
    negative = tensors.get(f"{first}.negative_embeds", prompt)
    context = torch.cat([negative, prompt])
    g = torch.Generator().manual_seed(seed)
    sample = torch.randn(2, pipe.unet.config.in_channels, pipe.unet.config.sample_size, pipe.unet.config.sample_size,
                         generator=g)
    timestep = torch.tensor(UNET_TIMESTEPS)
    with torch.no_grad():
        out = pipe.unet(sample, timestep, encoder_hidden_states=context).sample
    tensors.update({"unet.sample": sample, "unet.timestep": timestep.to(torch.float32),
                    "unet.encoder_hidden_states": context, "unet.out": out})

    save_file({k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}, str(folder / "io.safetensors"),
              metadata={"torch_version": torch.__version__, "diffusers_version": diffusers.__version__,
                        "transformers_version": transformers.__version__, "case": folder.name})
    source = {"sd1-tiny": "sd1", "sd2-tiny": "sd2", "turbo-tiny": "turbo"}[folder.name]
    cases = {
        "about": "Written by tools/reference/make_sd_pipeline_fixtures.py. References: diffusers' StableDiffusionPipeline "
                 "with pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config), eta 0, CPU, float32, from the "
                 "reloaded fp16 folder; io.safetensors holds <case>.<tensor>.",
        "scheduler_config_source": SCHEDULERS[source][0],
        "ddim_config": ddim_config,
        "unet_eval": {"timestep": UNET_TIMESTEPS, "sample_seed": seed,
                      "encoder_hidden_states": f"[{first}.negative_embeds, {first}.prompt_embeds]"
                      if f"{first}.negative_embeds" in tensors else f"[{first}.prompt_embeds, {first}.prompt_embeds]"},
        "cases": records,
    }
    write_json(folder / "cases.json", cases)
    for k, v in tensors.items():
        print(f"  {k:34s} {str(list(v.shape)):16s} max|x| {v.abs().max().item():.4g}")
    for r in records:
        e = r["fp32_vs_fp64_max_abs"]
        print(f"  {r['name']}: fp32 vs fp64 max abs: latents {e['latents']:.3g}, image {e['image']:.3g}")
    return cases


def main() -> None:
    torch.set_num_threads(1)
    diffusers.utils.logging.set_verbosity_error()  # progress bars and notes about accelerate / to(dtype)
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.use_deterministic_algorithms(True)
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    modules = {"sd1-tiny": build(ROOT / "sd1-tiny", "sd1", 60), "sd2-tiny": build(ROOT / "sd2-tiny", "sd2", 70)}
    make_turbo(ROOT / "turbo-tiny", ROOT / "sd2-tiny")
    for seed, name in enumerate(("sd1-tiny", "sd2-tiny", "turbo-tiny"), start=80):
        print(name)
        write_folder(ROOT / name, modules.get(name, modules["sd2-tiny"]), seed)
    write_json(ROOT / "versions.json", {"torch": torch.__version__, "diffusers": diffusers.__version__,
                                        "transformers": transformers.__version__, "safetensors": safetensors.__version__,
                                        "numpy": np.__version__})
    total = 0
    for top, dirs, files in os.walk(ROOT):  # symlinked folders are listed, not followed
        for name in sorted(dirs + files):
            f = Path(top) / name
            if f.is_symlink():
                print(f"{f.relative_to(REPO_ROOT)} -> {os.readlink(f)}")
            elif f.is_file():
                total += f.stat().st_size
                print(f"{f.relative_to(REPO_ROOT)}  {f.stat().st_size} bytes")
        dirs.sort()
    print(f"total {total} bytes of files (symlinks not counted)")

if __name__ == "__main__":
    main()
