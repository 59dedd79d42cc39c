#!/usr/bin/env python3
"""Generate Tests/Fixtures/conditional_unet/: small random-weight diffusers UNet2DConditionModels of Stable
Diffusion's two layouts, with what diffusers computes from them on the CPU in float32.

Cases (each a folder as save_pretrained writes it, fp16 weights, plus io.safetensors):

    sd1-small   SD 1.x's layout at reduced size: proj_in / proj_out as 1×1 convolutions, one head count for
                every block (attention_head_dim 4, which diffusers reads as heads), cross_attention_dim 24;
                block_out_channels [32, 64], CrossAttnDownBlock2D + DownBlock2D, UpBlock2D + CrossAttnUpBlock2D,
                layers_per_block 1, norm_num_groups 8, 4×8×8 latents.
    sd2-small   SD 2.x's: use_linear_projection, a head count per block (attention_head_dim [2, 2, 4]),
                upcast_attention, cross_attention_dim 20; block_out_channels [32, 32, 64], CrossAttnDownBlock2D × 2
                + DownBlock2D, UpBlock2D + CrossAttnUpBlock2D × 2, layers_per_block 1, norm_num_groups 8, 4×16×16.

io.safetensors (float32):

    sample                 [2, 4, S, S]     seeded randn
    timestep               [2]              integer timesteps (as float)
    encoder_hidden_states  [2, 77, D]       seeded randn (token-major, as the pipeline passes the text encoder's)
    output                 [2, 4, S, S]     unet(sample, timestep, encoder_hidden_states).sample
    debug.down_blocks.i, debug.mid_block, debug.up_blocks.i   each block's hidden-state output (forward hooks)

Weights are random (seeded, scaled by 1/√fan_in, rounded to fp16); the references come from the reloaded fp16
files evaluated in float32. Deterministic: one torch thread, fixed seeds; a second run writes the same tensors
(safetensors may order the header's metadata keys differently).

Usage:  python3 tools/reference/make_conditional_unet_fixtures.py
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import diffusers
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_autoencoder_fixtures import randomize  # noqa: E402  (the same seeded, fp16-rounded weights)

ROOT = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "conditional_unet"

CASES = {
    "sd1-small": dict(sample_size=8, block_out_channels=(32, 64), layers_per_block=1,
                      down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                      cross_attention_dim=24, attention_head_dim=4, norm_num_groups=8),
    "sd2-small": dict(sample_size=16, block_out_channels=(32, 32, 64), layers_per_block=1,
                      down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                      up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                      cross_attention_dim=20, attention_head_dim=(2, 2, 4), use_linear_projection=True, upcast_attention=True,
                      norm_num_groups=8),
}


def main() -> None:
    torch.set_num_threads(1)
    shutil.rmtree(ROOT, ignore_errors=True)
    ROOT.mkdir(parents=True)
    for seed, (name, fields) in enumerate(CASES.items(), start=50):
        folder = ROOT / name
        model = UNet2DConditionModel(in_channels=4, out_channels=4, **fields).eval()
        randomize(model, seed)
        model.to(torch.float16).save_pretrained(folder, safe_serialization=True)
        reloaded = UNet2DConditionModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
        model.to(torch.float32)
        for (k, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
            assert torch.equal(a, b), f"{name}: {k} changed on reload"
        g = torch.Generator().manual_seed(seed)
        side = fields["sample_size"]
        sample = torch.randn(2, 4, side, side, generator=g)
        timestep = torch.tensor([999, 321])
        context = torch.randn(2, 77, fields["cross_attention_dim"], generator=g)
        debug = {}

        def hook(label):
            def save(_module, _inputs, output):
                debug[f"debug.{label}"] = output[0] if isinstance(output, tuple) else output
            return save

        for i, block in enumerate(reloaded.down_blocks):
            block.register_forward_hook(hook(f"down_blocks.{i}"))
        reloaded.mid_block.register_forward_hook(hook("mid_block"))
        for i, block in enumerate(reloaded.up_blocks):
            block.register_forward_hook(hook(f"up_blocks.{i}"))
        with torch.no_grad():
            output = reloaded(sample, timestep, encoder_hidden_states=context).sample
        tensors = {"sample": sample, "timestep": timestep.to(torch.float32), "encoder_hidden_states": context, "output": output, **debug}
        save_file({k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}, str(folder / "io.safetensors"),
                  metadata={"torch_version": torch.__version__, "diffusers_version": diffusers.__version__, "case": name})
        print(f"{name}: {sum(p.numel() for p in reloaded.parameters())} parameters, |output| max {output.abs().max().item():.3f}")
    (ROOT / "versions.json").write_text(json.dumps({"torch": torch.__version__, "diffusers": diffusers.__version__}, indent=2) + "\n")


if __name__ == "__main__":
    main()
