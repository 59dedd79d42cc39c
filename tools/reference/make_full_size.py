#!/usr/bin/env python3
"""Writes full-size random-weight checkpoints of two published architectures, for the one-off check and the
benchmark in tools/benchmarks/ldm_celebahq256.sh (too large to commit: about 1 GB in all):

    OUT/ldm-celebahq-256/    CompVis/ldm-celebahq-256 as an LDMPipeline folder: unet (UNet2DModel, 3×64×64
                             latents, block_out_channels [224, 448, 672, 896], DownBlock2D + 3 × AttnDownBlock2D,
                             3 × AttnUpBlock2D + UpBlock2D, attention_head_dim 32), vqvae (VQModel,
                             block_out_channels [128, 256, 512], latent_channels 3, 8192 codebook entries,
                             layers_per_block 2, no scaling_factor in its config, as the original revision),
                             scheduler (DDIMScheduler, scaled_linear 0.0015…0.0195, clip_sample false)
    OUT/ddpm-celebahq-256/   google/ddpm-celebahq-256's UNet2DModel (256×256 pixels, 113.7 M parameters)
    OUT/ddpm-cifar10-32/     google/ddpm-cifar10-32's UNet2DModel (32×32 pixels, 35.7 M parameters)
    OUT/io.safetensors       diffusers in float32 on the CPU, from the same fp16-rounded weights:
                             unet_sample [1,3,64,64], unet_timestep [1] (= 500), unet_output;
                             decoder_latents [1,3,64,64], decoder_image (vqvae.decode(latents).sample)
    OUT/ldm-unet.onnx        the LDM UNet for ONNX Runtime (tools/benchmarks/peer_bench.py), fp32, opset 17
    OUT/counts.json          parameter counts as torch counts them (numel), per component

Usage:  python3 tools/reference/make_full_size.py OUT [--no-onnx]   (peers' exports: tools/reference/export_peers.py)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from diffusers import DDIMScheduler, LDMPipeline, UNet2DModel, VQModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_autoencoder_fixtures import randomize  # noqa: E402  (the same seeded, fp16-rounded weights)
from export_peers import UNetSample  # noqa: E402


def ldm_unet() -> UNet2DModel:
    return UNet2DModel(sample_size=64, in_channels=3, out_channels=3, block_out_channels=(224, 448, 672, 896), layers_per_block=2,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                       attention_head_dim=32, flip_sin_to_cos=True, freq_shift=0, downsample_padding=1)


def ldm_vqvae() -> VQModel:
    return VQModel(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                   block_out_channels=(128, 256, 512), layers_per_block=2, latent_channels=3, sample_size=256, num_vq_embeddings=8192,
                   norm_num_groups=32)


def ddpm_cifar10_unet() -> UNet2DModel:
    return UNet2DModel(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 256), layers_per_block=2,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                       attention_head_dim=None, flip_sin_to_cos=False, freq_shift=1, downsample_padding=0, norm_eps=1e-6)


def ddpm_celebahq_unet() -> UNet2DModel:
    return UNet2DModel(sample_size=256, in_channels=3, out_channels=3, block_out_channels=(128, 128, 256, 256, 512, 512), layers_per_block=2,
                       down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
                       attention_head_dim=None, flip_sin_to_cos=False, freq_shift=1, downsample_padding=0, norm_eps=1e-6)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--no-onnx", action="store_true")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    unet, vqvae = ldm_unet(), ldm_vqvae()
    randomize(unet, 1)
    randomize(vqvae, 2)
    unet.eval()
    vqvae.eval()
    scheduler = DDIMScheduler(beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear", clip_sample=False, num_train_timesteps=1000)
    pipe = LDMPipeline(vqvae=vqvae, unet=unet, scheduler=scheduler)
    pipe.to(torch.float16).save_pretrained(a.out / "ldm-celebahq-256", safe_serialization=True)
    pipe.to(torch.float32)
    # The original revision of the vqvae config has no scaling_factor (diffusers issue #6725).
    config_path = a.out / "ldm-celebahq-256" / "vqvae" / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("scaling_factor", None)
    config_path.write_text(json.dumps(config, indent=2) + "\n")

    pixel = ddpm_celebahq_unet()
    randomize(pixel, 3)
    cifar = ddpm_cifar10_unet()
    randomize(cifar, 4)
    for name, m in [("ddpm-celebahq-256", pixel), ("ddpm-cifar10-32", cifar)]:
        m.to(torch.float16).save_pretrained(a.out / name, safe_serialization=True)
        (a.out / name / "scheduler_config.json").write_text(json.dumps(
            {"_class_name": "DDPMScheduler", "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02, "num_train_timesteps": 1000,
             "clip_sample": True}, indent=2) + "\n")

    g = torch.Generator().manual_seed(7)
    sample = torch.randn((1, 3, 64, 64), generator=g)
    latents = torch.randn((1, 3, 64, 64), generator=g)
    timestep = torch.tensor([500])
    with torch.no_grad():
        unet_output = unet(sample, timestep).sample
        image = vqvae.decode(latents).sample
    save_file({"unet_sample": sample, "unet_timestep": timestep.to(torch.float32), "unet_output": unet_output.contiguous(),
               "decoder_latents": latents, "decoder_image": image.contiguous()}, str(a.out / "io.safetensors"))

    counts = {"ldm-unet": sum(p.numel() for p in unet.parameters()),
              "ldm-vqvae": sum(p.numel() for p in vqvae.parameters()),
              "ldm-vqvae-decoder": sum(p.numel() for n, p in vqvae.named_parameters()
                                       if n.startswith(("decoder.", "post_quant_conv.", "quantize."))),
              "ddpm-celebahq-256": sum(p.numel() for p in pixel.parameters()),
              "ddpm-cifar10-32": sum(p.numel() for p in cifar.parameters())}
    (a.out / "counts.json").write_text(json.dumps(counts, indent=2) + "\n")
    print(json.dumps(counts))

    if not a.no_onnx:
        with torch.no_grad():
            torch.onnx.export(UNetSample(unet), (sample, timestep), str(a.out / "ldm-unet.onnx"), input_names=["x", "t"],
                              output_names=["eps"], opset_version=17, dynamo=False)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
