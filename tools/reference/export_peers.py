#!/usr/bin/env python3
"""Exports a diffusers UNet2DModel folder for the peer runtimes of tools/benchmarks/peer_bench.py, weights as
float32:

    OUT.onnx                       ONNX Runtime and OpenVINO: inputs x float32 [1, C, S, S], t int64 [1]; opset 17
    OUT.ncnn.param, OUT.ncnn.bin   ncnn, through pnnx with fp16=0 (pnnx stores fp16 weights by default): inputs
                                   in0 (x, C×S×S) and in1 (t, float32); output out0
    OUT.ncnn.json                  the input geometry peer_bench.py feeds

pnnx leaves a `Tensor.to` layer for the timestep's dtype cast, which ncnn cannot run; t is fed as float32, so
the cast is a no-op and the layer is replaced by ncnn's `Noop`. The ncnn export is checked against diffusers
(max abs difference printed).

    python3 tools/reference/export_peers.py ../shared/models/ddpm-fashion-32 /tmp/peers/ddpm-fashion-32
"""
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DModel


class UNetSample(torch.nn.Module):
    """The UNet as a function of (x, t) returning the prediction tensor, as the exporters trace it; t may be int64
    (ONNX) or float32 (ncnn has no int64 blobs)."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t):
        return self.unet(x, t).sample


def main():
    folder, out = sys.argv[1], Path(sys.argv[2])
    out.parent.mkdir(parents=True, exist_ok=True)
    unet = UNet2DModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
    c, s = unet.config.in_channels, unet.config.sample_size
    x = torch.randn(1, c, s, s, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.onnx.export(UNetSample(unet), (x, torch.tensor([500], dtype=torch.int64)), str(out) + ".onnx", input_names=["x", "t"],
                          output_names=["eps"], opset_version=17, dynamo=False)
        expected = unet(x, torch.tensor([500])).sample.numpy()

    import pnnx
    t = torch.tensor([500.0])
    stem = str(out)
    # pnnx imports the Python module it writes under the .pt file's name with "-" as "_": let it name its
    # side files itself.
    pnnx.export(UNetSample(unet), stem + ".pt", inputs=(x, t), fp16=False, ncnnparam=stem + ".ncnn.param", ncnnbin=stem + ".ncnn.bin")
    param = Path(stem + ".ncnn.param")
    text = param.read_text()
    fixed, n = re.subn(r"^Tensor\.to(\s)", r"Noop\1", text, flags=re.M)
    param.write_text(fixed)
    Path(stem + ".ncnn.json").write_text(json.dumps({"channels": c, "sample_size": s, "tensor_to_replaced": n}) + "\n")

    import ncnn
    net = ncnn.Net()
    net.opt.use_fp16_storage = net.opt.use_fp16_arithmetic = net.opt.use_bf16_storage = False
    net.load_param(str(param))
    net.load_model(stem + ".ncnn.bin")
    ex = net.create_extractor()
    ex.input("in0", ncnn.Mat(x[0].numpy()))
    ex.input("in1", ncnn.Mat(t.numpy()))
    _, y = ex.extract("out0")
    got = np.array(y).reshape(expected.shape)
    print(f"wrote {out}.onnx and {out}.ncnn.param/.bin ({n} Tensor.to replaced); ncnn vs diffusers max abs {np.abs(got - expected).max():.2e}")


if __name__ == "__main__":
    main()
