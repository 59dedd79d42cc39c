#!/usr/bin/env python3
"""Generate Tests/Fixtures/paper/: references for DDIM inversion, slerp interpolation and PNG input
(issue 6, "the paper's other half": Song et al., DDIM, ICLR 2021, §5.3-5.4 and eq. 67).

Models: the random-weight fixture folders of make_fixtures.py (Tests/Fixtures/unet/<name>/), loaded in
float32 exactly as make_small_pipeline_fixtures.py loads them:

    single-level-attn     1 channel, 8×8
    two-level-midscale    3 channels, 8×8

and, when the shared checkpoint folder exists (--shared, default ../shared/models), ddpm-fashion-32.

Written (float32 little-endian .npy, C order, unless said otherwise):

  inversion: for each run (model × prediction type × spacing, other scheduler fields varied; the test applies
  the same `overrides` to a copy of the model folder's scheduler_config.json):
      <run>_x0.npy      the clean input, [2,C,H,W] in [-1, 1]
      <run>_xT.npy      DDIMInverseScheduler.from_config(config) after set_timesteps(S): for t in timesteps:
                        x = step(unet(x, t).sample, t, x).prev_sample
      <run>_recon.npy   DDIMScheduler.from_config(config), S steps, eta 0, from <run>_xT: the reconstruction
  png inversion: <model>_input.png (written by PIL, model size and channels) inverted with the folder's own
      scheduler config, 10 steps, from pixels v/127.5 - 1: <model>_png_xT.npy (what `edge-ddim invert` must give)
  slerp: x_T of seeds A and B, each torch.randn([1,C,H,W], generator=manual_seed(seed)); K frames
      z_i = sin((1-a)θ)/sin θ z_A + sin(aθ)/sin θ z_B, a = i/(K-1), θ = arccos(z_A·z_B/(|z_A||z_B|)), computed
      in float64 and rounded to float32 (<run>_latents.npy, [K,C,H,W]); each frame sampled with DDIMScheduler,
      S steps, eta 0 (the DDIMPipeline loop): <run>_x0.npy
  png/: PNGs written by PIL (gray "L" and RGB, each optimize / compress_level setting) and by hand with each
      of the five filter types forced on every row (PIL picks filters itself), with their pixels in
      paper.json; and bad ones: 16-bit, palette, gray+alpha, bad CRC, truncated, corrupt zlib data, wrong size,
      not a PNG.
  paper.json: versions, and every run with its parameters and files.

Deterministic: one torch thread, fixed seeds; running it again gives identical files.

Usage:  python3 tools/reference/make_paper_fixtures.py [--shared ../shared/models]
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image

import diffusers
from diffusers import DDIMInverseScheduler, DDIMScheduler, UNet2DModel

REPO_ROOT = Path(__file__).resolve().parents[2]
UNET_DIR = REPO_ROOT / "Tests" / "Fixtures" / "unet"
OUT_DIR = REPO_ROOT / "Tests" / "Fixtures" / "paper"
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "models"

BETA_RANGES = {"linear": (0.0001, 0.02), "scaled_linear": (0.00085, 0.012), "squaredcos_cap_v2": (0.0001, 0.02)}

# (prediction_type, timestep_spacing, beta_schedule, clip_sample, set_alpha_to_one, steps_offset, steps).
# "sample" prediction never meets set_alpha_to_one=True: the first inverse step then starts at ᾱ = 1, and
# ε = (x - √ᾱ·x̂₀)/√(1-ᾱ) divides by zero in diffusers too. epsilon never meets squaredcos_cap_v2 with
# trailing spacing (ᾱ_999 = 2.4e-9 amplifies float32 rounding 2e4×; see make_small_pipeline_fixtures.py).
INVERSION_RUNS = {
    "single-level-attn": [
        ("epsilon", "leading", "linear", True, True, 0, 10),
        ("epsilon", "trailing", "scaled_linear", False, False, 0, 7),
        ("v_prediction", "leading", "squaredcos_cap_v2", False, True, 1, 20),
        ("v_prediction", "trailing", "linear", True, False, 0, 5),
        ("sample", "leading", "scaled_linear", True, False, 1, 13),
        ("sample", "trailing", "linear", False, False, 0, 10),
    ],
    "two-level-midscale": [
        ("epsilon", "leading", "scaled_linear", False, False, 1, 20),
        ("epsilon", "trailing", "linear", True, True, 0, 13),
        ("v_prediction", "leading", "linear", True, False, 0, 7),
        ("v_prediction", "trailing", "squaredcos_cap_v2", True, True, 0, 10),
        ("sample", "leading", "linear", False, False, 0, 5),
        ("sample", "trailing", "scaled_linear", True, False, 0, 20),
    ],
}
SHORT = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}

# (model, seed A, seed B, frames, steps)
SLERP_RUNS = [("single-level-attn", 0, 1, 5, 10), ("two-level-midscale", 42, 7, 4, 20)]
SHARED_SLERP_RUNS = [("ddpm-fashion-32", 0, 1, 4, 10)]
SHARED_INVERSION_STEPS = [10, 20]


def save_npy(path: Path, array) -> None:
    np.save(path, np.ascontiguousarray(np.asarray(array), dtype="<f4"))


def load_unet(folder: Path) -> UNet2DModel:
    return UNet2DModel.from_pretrained(folder, torch_dtype=torch.float32).eval()


@torch.no_grad()
def invert(unet, config: dict, steps: int, x0: torch.Tensor) -> torch.Tensor:
    scheduler = DDIMInverseScheduler.from_config(config)
    scheduler.set_timesteps(steps)
    assert len(scheduler.timesteps) == steps, f"{len(scheduler.timesteps)} inverse timesteps for S={steps}"
    x = x0.clone()
    for t in scheduler.timesteps:
        x = scheduler.step(unet(x, t).sample, t, x).prev_sample
    return x


@torch.no_grad()
def generate(unet, config: dict, steps: int, xT: torch.Tensor) -> torch.Tensor:
    scheduler = DDIMScheduler.from_config(config)
    scheduler.set_timesteps(steps)
    x = xT.clone()
    for t in scheduler.timesteps:
        x = scheduler.step(unet(x, t).sample, t, x, eta=0.0).prev_sample
    return x


def smooth_images(n: int, c: int, size: int, seed: int) -> torch.Tensor:
    """Image-like inputs in [-1, 1]: a few random low-frequency blobs, not white noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((n, c, 3, 3), generator=g) * 2 - 1
    up = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)
    return up.clamp(-1, 1).to(torch.float32)


def slerp(z1: np.ndarray, z2: np.ndarray, frames: int) -> np.ndarray:
    a = z1.astype(np.float64).ravel()
    b = z2.astype(np.float64).ravel()
    theta = np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1))
    out = []
    for i in range(frames):
        alpha = i / (frames - 1)
        out.append((np.sin((1 - alpha) * theta) / np.sin(theta)) * a + (np.sin(alpha * theta) / np.sin(theta)) * b)
    return np.stack(out).astype(np.float32).reshape((frames,) + z1.shape[1:])


# ---------------------------------------------------------------- PNG files

def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def png_with_filter(pixels: np.ndarray, filter_type: int) -> bytes:
    """An 8-bit gray (H×W) or RGB (H×W×3) PNG with `filter_type` on every row, written from the specification."""
    h, w = pixels.shape[:2]
    bpp = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = pixels.reshape(h, w * bpp).astype(np.int64)
    raw = bytearray()
    for y in range(h):
        raw.append(filter_type)
        for i in range(w * bpp):
            x = int(rows[y, i])
            a = int(rows[y, i - bpp]) if i >= bpp else 0
            b = int(rows[y - 1, i]) if y > 0 else 0
            c = int(rows[y - 1, i - bpp]) if i >= bpp and y > 0 else 0
            predictor = [0, a, b, (a + b) // 2, paeth(a, b, c)][filter_type]
            raw.append((x - predictor) % 256)
    color = 0 if bpp == 1 else 2
    ihdr = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(bytes(raw), 9))
            + png_chunk(b"IEND", b""))


def filters_used(data: bytes) -> list[int]:
    """The filter byte of every row of an 8-bit non-interlaced PNG."""
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, color = ihdr[:4]
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    raw = zlib.decompress(idat)
    stride = w * bpp + 1
    return sorted({raw[y * stride] for y in range(h)})


def write_pngs(out: Path, manifest: dict) -> None:
    folder = out / "png"
    folder.mkdir()
    rng = np.random.default_rng(2021)
    good = []
    # Smooth gradients plus noise: every filter has something to predict, and PIL's heuristic picks several.
    yy, xx = np.mgrid[0:11, 0:13]
    gray = ((xx * 17 + yy * 9) % 256 + rng.integers(0, 40, size=xx.shape)).clip(0, 255).astype(np.uint8)
    rgb = np.stack([gray, (255 - gray), ((xx * 31) % 256).astype(np.uint8)], axis=2).astype(np.uint8)
    for kind, pixels in [("gray", gray), ("rgb", rgb)]:
        mode = "L" if kind == "gray" else "RGB"
        for setting, options in [("optimize", {"optimize": True}), ("level0", {"compress_level": 0}),
                                 ("level1", {"compress_level": 1}), ("level9", {"compress_level": 9}),
                                 ("default", {})]:
            name = f"pil_{kind}_{setting}.png"
            Image.fromarray(pixels, mode=mode).save(folder / name, **options)
            good.append({"file": f"png/{name}", "width": 13, "height": 11, "channels": 1 if kind == "gray" else 3,
                         "pixels": pixels.ravel().tolist(), "filters": filters_used((folder / name).read_bytes()),
                         "writer": f"PIL {PIL.__version__} save({options})"})
        for f in range(5):
            name = f"spec_{kind}_filter{f}.png"
            data = png_with_filter(pixels, f)
            (folder / name).write_bytes(data)
            with Image.open(folder / name) as check:
                assert np.array_equal(np.asarray(check), pixels), f"{name}: PIL reads other pixels"
            good.append({"file": f"png/{name}", "width": 13, "height": 11, "channels": 1 if kind == "gray" else 3,
                         "pixels": pixels.ravel().tolist(), "filters": [f], "writer": "this script, filter forced"})
    manifest["png_good"] = good

    bad = []
    base = (folder / "pil_gray_optimize.png").read_bytes()
    Image.fromarray((gray.astype(np.uint16) * 257)).save(folder / "bad_16bit.png")
    bad.append({"file": "png/bad_16bit.png", "mentions": "16-bit"})
    Image.fromarray(gray, mode="L").convert("P").save(folder / "bad_palette.png")
    bad.append({"file": "png/bad_palette.png", "mentions": "palette"})
    crc = bytearray(base)
    idat = crc.find(b"IDAT")
    crc[idat + 6] ^= 0x01  # a byte of the compressed data; the stored CRC no longer matches
    (folder / "bad_crc.png").write_bytes(bytes(crc))
    bad.append({"file": "png/bad_crc.png", "mentions": "CRC"})
    (folder / "bad_truncated.png").write_bytes(base[: len(base) // 2])
    bad.append({"file": "png/bad_truncated.png", "mentions": "truncated"})
    # Valid chunk framing and CRC around zlib data that is not a deflate stream.
    ihdr = struct.pack(">IIBBBBB", 13, 11, 8, 0, 0, 0, 0)
    junk = bytes([0x78, 0x9C]) + bytes([0xFF] * 40)
    (folder / "bad_zlib.png").write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", junk)
                                          + png_chunk(b"IEND", b""))
    bad.append({"file": "png/bad_zlib.png", "mentions": "image data"})
    (folder / "bad_not_png.png").write_bytes(b"this is not an image\n")
    bad.append({"file": "png/bad_not_png.png", "mentions": "not a PNG"})
    manifest["png_bad"] = bad


# ---------------------------------------------------------------- runs

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)
    manifest = {
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__, "numpy": np.__version__,
                     "pillow": PIL.__version__, "python": sys.version.split()[0]},
        "inversion": [], "png_inversion": [], "slerp": [],
    }
    for fixture, runs in INVERSION_RUNS.items():
        folder = UNET_DIR / fixture
        unet = load_unet(folder)
        base = dict(DDIMScheduler.load_config(folder / "scheduler_config.json"))
        c, size = unet.config.in_channels, unet.config.sample_size
        for k, (pred, spacing, beta, clip, one, offset, steps) in enumerate(runs):
            start, end = BETA_RANGES[beta]
            overrides = {"prediction_type": pred, "timestep_spacing": spacing, "beta_schedule": beta,
                         "beta_start": start, "beta_end": end, "clip_sample": clip, "set_alpha_to_one": one,
                         "steps_offset": offset}
            config = dict(base)
            config.update(overrides)
            x0 = smooth_images(2, c, size, seed=100 + k)
            xT = invert(unet, config, steps, x0)
            recon = generate(unet, config, steps, xT)
            assert torch.isfinite(xT).all() and torch.isfinite(recon).all()
            name = f"{fixture}_{SHORT[pred]}_{spacing}_S{steps}"
            save_npy(OUT_DIR / f"{name}_x0.npy", x0)
            save_npy(OUT_DIR / f"{name}_xT.npy", xT)
            save_npy(OUT_DIR / f"{name}_recon.npy", recon)
            inverse = DDIMInverseScheduler.from_config(config)
            inverse.set_timesteps(steps)
            manifest["inversion"].append({
                "name": name, "fixture": fixture, "overrides": overrides, "steps": steps, "shape": list(x0.shape),
                "x0": f"{name}_x0.npy", "xT": f"{name}_xT.npy", "recon": f"{name}_recon.npy",
                "inverse_timesteps": [int(t) for t in inverse.timesteps],
                "xT_max_abs": float(xT.abs().max()), "recon_max_abs_error": float((recon - x0).abs().max()),
            })
            print(f"{name}: |xT| max {xT.abs().max():.3g}, reconstruction error {float((recon - x0).abs().max()):.3g}", flush=True)

        # A PNG of the model's size and channels, inverted as `edge-ddim invert` reads it.
        pixels = ((smooth_images(1, c, size, seed=7)[0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        array = pixels[0].numpy() if c == 1 else pixels.permute(1, 2, 0).numpy()
        png_name = f"{fixture}_input.png"
        Image.fromarray(array, mode="L" if c == 1 else "RGB").save(OUT_DIR / png_name, optimize=True)
        x = (pixels.to(torch.float32) / 127.5 - 1).unsqueeze(0)
        xT = invert(unet, base, 10, x)
        save_npy(OUT_DIR / f"{fixture}_png_xT.npy", xT)
        manifest["png_inversion"].append({"fixture": fixture, "png": png_name, "steps": 10, "shape": list(x.shape),
                                          "xT": f"{fixture}_png_xT.npy"})

    def slerp_run(unet, config, model, seed_a, seed_b, frames, steps):
        c, size = unet.config.in_channels, unet.config.sample_size
        za = torch.randn((1, c, size, size), generator=torch.Generator().manual_seed(seed_a), dtype=torch.float32)
        zb = torch.randn((1, c, size, size), generator=torch.Generator().manual_seed(seed_b), dtype=torch.float32)
        latents = slerp(za.numpy(), zb.numpy(), frames)
        assert np.array_equal(latents[0], za.numpy()[0]) or np.abs(latents[0] - za.numpy()[0]).max() < 1e-6
        x0 = generate(unet, config, steps, torch.from_numpy(latents))
        name = f"{model}_slerp_{seed_a}_{seed_b}_K{frames}_S{steps}"
        save_npy(OUT_DIR / f"{name}_latents.npy", latents)
        save_npy(OUT_DIR / f"{name}_x0.npy", x0)
        manifest["slerp"].append({"name": name, "model": model, "seed_a": seed_a, "seed_b": seed_b, "frames": frames,
                                  "steps": steps, "shape": list(latents.shape), "latents": f"{name}_latents.npy",
                                  "x0": f"{name}_x0.npy"})
        print(f"{name}: done", flush=True)

    for model, a, b, frames, steps in SLERP_RUNS:
        folder = UNET_DIR / model
        slerp_run(load_unet(folder), dict(DDIMScheduler.load_config(folder / "scheduler_config.json")),
                  model, a, b, frames, steps)

    shared = args.shared / "ddpm-fashion-32"
    manifest["shared"] = []
    if shared.is_dir():
        unet = load_unet(shared)
        config = dict(DDIMScheduler.load_config(shared / "scheduler_config.json"))
        for model, a, b, frames, steps in SHARED_SLERP_RUNS:
            slerp_run(unet, config, model, a, b, frames, steps)
        # Real-looking inputs: the committed diffusers samples of this checkpoint (20 steps, eta 1), clamped.
        # Without x̂₀ clipping, as `edge-ddim invert` and `reconstruct` run by default: clipping is not
        # invertible, and with it this checkpoint's reconstruction error grows with S instead of falling.
        config = dict(config, clip_sample=False)
        x0 = np.load(REPO_ROOT / "Tests/Fixtures/sampler/pipeline/ddpm-fashion-32_S20_eta1_x0.npy")[:2]
        x0 = torch.from_numpy(np.clip(x0, -1, 1).astype(np.float32))
        for steps in SHARED_INVERSION_STEPS:
            xT = invert(unet, config, steps, x0)
            recon = generate(unet, config, steps, xT)
            name = f"ddpm-fashion-32_S{steps}"
            save_npy(OUT_DIR / f"{name}_x0.npy", x0)
            save_npy(OUT_DIR / f"{name}_xT.npy", xT)
            save_npy(OUT_DIR / f"{name}_recon.npy", recon)
            mse = float((((recon / 2 + 0.5).clamp(0, 1) - (x0 / 2 + 0.5).clamp(0, 1)) ** 2).mean())
            manifest["shared"].append({"name": name, "steps": steps, "overrides": {"clip_sample": False}, "shape": list(x0.shape), "x0": f"{name}_x0.npy",
                                       "xT": f"{name}_xT.npy", "recon": f"{name}_recon.npy", "recon_mse": mse})
            print(f"{name}: reconstruction MSE {mse:.3g}", flush=True)
    else:
        print(f"{shared} not found: no ddpm-fashion-32 runs", flush=True)

    write_pngs(OUT_DIR, manifest)
    (OUT_DIR / "paper.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
