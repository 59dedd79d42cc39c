#!/usr/bin/env python3
"""Exports a diffusers UNet2DModel folder to ONNX for the peer benchmark (tools/benchmarks/compare_peers.sh):
inputs x float32 [1, C, S, S] and t int64 [1], output eps; opset 17; weights loaded as float32.

    python3 tools/reference/export_onnx.py ../shared/models/ddpm-fashion-32 /tmp/ddpm-fashion-32.onnx
"""
import sys

import torch
from diffusers import UNet2DModel


class Wrapper(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t):
        return self.unet(x, t).sample


def main():
    folder, output = sys.argv[1], sys.argv[2]
    unet = UNet2DModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
    c, s = unet.config.in_channels, unet.config.sample_size
    x = torch.randn(1, c, s, s)
    t = torch.tensor([500], dtype=torch.int64)
    with torch.no_grad():
        torch.onnx.export(Wrapper(unet), (x, t), output, input_names=["x", "t"], output_names=["eps"], opset_version=17, dynamo=False)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
