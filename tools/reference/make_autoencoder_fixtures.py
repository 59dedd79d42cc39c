#!/usr/bin/env python3
"""Generate Tests/Fixtures/autoencoder/: small random-weight diffusers autoencoders (VQModel, AutoencoderKL) and
a small LDMPipeline, with what diffusers computes from them on the CPU in float32.

Cases (each a folder as diffusers' save_pretrained writes it, plus io.safetensors, all float32):

    vq-small       VQModel: 2 levels (block_out_channels [32, 64]), layers_per_block 1, latent_channels 3,
                   16 codebook entries, norm_num_groups 8, 16×16 images → 3×8×8 latents.
    kl-sd-small    AutoencoderKL with Stable Diffusion 1.x's block layout (4 × DownEncoderBlock2D /
                   UpDecoderBlock2D, layers_per_block 2, latent_channels 4, scaling_factor 0.18215) at reduced
                   width (block_out_channels [32, 32, 64, 64], norm_num_groups 16), 32×32 images → 4×4×4.
    ldm-small      LDMPipeline folder (model_index.json, unet/ UNet2DModel on 3×8×8 latents, vqvae/ as vq-small,
                   scheduler/ DDIMScheduler with v-prediction), and a 10-step run (η = 0).

io.safetensors of vq-small and kl-sd-small:

    latents            [2, C, h, w]   decoder input (seeded randn; for VQ: what VQModel.decode receives)
    decoded            [2, 3, H, W]   .decode(latents).sample (VQ: quantised first, force_not_quantize=False)
    decoded_unquantized[2, 3, H, W]   VQ only: .decode(latents, force_not_quantize=True).sample
    quantized          [2, C, h, w]   VQ only: quantize(latents)[0], i.e. latents + (codebook[k] − latents)
    indices            [2·h·w]        VQ only: the chosen codebook rows k (as float), in (n, y, x) order
    image              [2, 3, H, W]   encoder input (seeded rand in [-1, 1])
    encoded            [2, C, h, w]   VQ: .encode(image).latents; KL: .encode(image).latent_dist.mean
    encoded_logvar     [2, C, h, w]   KL only: latent_dist.logvar

Weights are stored as fp16 (the references are computed in float32 from the same fp16-rounded values).

ldm-small/io.safetensors: `xT` [2, 3, 8, 8] (torch.randn with the pipeline's generator, seed 0), `latents`
(the last scheduler step's prev_sample), `image` (LDMPipeline(..., output_type="np") transposed to NCHW, i.e.
clamp(decode(latents / scaling_factor) / 2 + 0.5, 0, 1)).

Deterministic: one torch thread, fixed seeds; running the script again gives byte-identical files.

Usage:  python3 tools/reference/make_autoencoder_fixtures.py
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

import diffusers
from diffusers import AutoencoderKL, DDIMScheduler, LDMPipeline, UNet2DModel, VQModel

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = REPO_ROOT / "Tests" / "Fixtures" / "autoencoder"
BATCH = 2


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Every parameter from a seeded normal, scaled like a trained layer (1/√fan_in), so activations stay O(1)
    through deep stacks and no layer is negligible; norms near 1, biases small."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                base = 1.0 if name.endswith("weight") and "norm" in name else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            elif "embedding" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)
            # Stored as fp16 (half the fixture's size); the references are computed from these rounded values.
            p.copy_(p.to(torch.float16).to(torch.float32))


def save_model(model, folder: Path) -> None:
    """save_pretrained with fp16 weights (exact: randomize rounded them), the model itself left in fp32."""
    model.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    model.to(torch.float32)


def save(folder: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file({k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}, str(folder / "io.safetensors"))


def vq_small() -> VQModel:
    m = VQModel(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(32, 64), layers_per_block=1,
                latent_channels=3, sample_size=16, num_vq_embeddings=16, norm_num_groups=8, scaling_factor=1.0)
    randomize(m, 1)
    return m.eval()


def kl_sd_small() -> AutoencoderKL:
    m = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                      up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(32, 32, 64, 64), layers_per_block=2,
                      latent_channels=4, norm_num_groups=16, sample_size=32, scaling_factor=0.18215)
    randomize(m, 2)
    return m.eval()


def write_vq(folder: Path, m: VQModel) -> None:
    save_model(m, folder)
    c = m.config
    side = c.sample_size // 2 ** (len(c.block_out_channels) - 1)
    g = torch.Generator().manual_seed(10)
    latents = torch.randn((BATCH, c.latent_channels, side, side), generator=g)
    image = torch.rand((BATCH, c.in_channels, c.sample_size, c.sample_size), generator=g) * 2 - 1
    with torch.no_grad():
        quantized, _, (_, _, indices) = m.quantize(latents)
        save(folder, {
            "latents": latents,
            "decoded": m.decode(latents).sample,
            "decoded_unquantized": m.decode(latents, force_not_quantize=True).sample,
            "quantized": quantized,
            "indices": indices.reshape(-1).to(torch.float32),
            "image": image,
            "encoded": m.encode(image).latents,
        })


def write_kl(folder: Path, m: AutoencoderKL) -> None:
    save_model(m, folder)
    c = m.config
    side = c.sample_size // 2 ** (len(c.block_out_channels) - 1)
    g = torch.Generator().manual_seed(20)
    latents = torch.randn((BATCH, c.latent_channels, side, side), generator=g)
    image = torch.rand((BATCH, c.in_channels, c.sample_size, c.sample_size), generator=g) * 2 - 1
    with torch.no_grad():
        dist = m.encode(image).latent_dist
        save(folder, {
            "latents": latents,
            "decoded": m.decode(latents).sample,
            "image": image,
            "encoded": dist.mean,
            "encoded_logvar": dist.logvar,
        })


def write_ldm(folder: Path) -> None:
    vqvae = vq_small()
    unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(32, 64), layers_per_block=1,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                       attention_head_dim=8, norm_num_groups=8)
    randomize(unet, 3)
    unet.eval()
    scheduler = DDIMScheduler(beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, num_train_timesteps=1000,
                              # A random ε-predictor drives DDIM's latents to |x| ~ 100 (x₀ = (x − √(1−ᾱ)ε)/√ᾱ with
                              # ᾱ small early on, and random ε is not x's noise); with v-prediction
                              # x₀ = √ᾱ·x − √(1−ᾱ)·v stays O(1), like a trained model's latents.
                              prediction_type="v_prediction")
    pipe = LDMPipeline(vqvae=vqvae, unet=unet, scheduler=scheduler)
    pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    pipe.to(torch.float32)
    shape = (BATCH, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    xT = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    # The pipeline's own loop, with the last latents kept: LDMPipeline.__call__ draws the same x_T from the
    # generator (randn_tensor on the CPU), runs scheduler.step over the timesteps and decodes.
    final = {}
    orig_step = scheduler.step

    def step(*args, **kwargs):
        out = orig_step(*args, **kwargs)
        final["latents"] = out.prev_sample
        return out

    scheduler.step = step
    with torch.no_grad():
        image = pipe(batch_size=BATCH, generator=torch.Generator().manual_seed(0), num_inference_steps=10, eta=0.0,
                     output_type="np").images
    scheduler.step = orig_step
    save(folder, {"xT": xT, "latents": final["latents"], "image": torch.from_numpy(np.ascontiguousarray(image.transpose(0, 3, 1, 2)))})


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)
    write_vq(OUT_DIR / "vq-small", vq_small())
    write_kl(OUT_DIR / "kl-sd-small", kl_sd_small())
    write_ldm(OUT_DIR / "ldm-small")
    (OUT_DIR / "versions.json").write_text(json.dumps(
        {"torch": torch.__version__, "diffusers": diffusers.__version__, "numpy": np.__version__}, indent=2) + "\n")
    for f in sorted(OUT_DIR.rglob("*")):
        if f.is_file():
            print(f"{f.relative_to(REPO_ROOT)}  {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
