#!/usr/bin/env python3
"""Generate the EdgeSampler / EdgeImageIO reference fixtures under Tests/Fixtures/sampler/.

Everything the Swift tests compare against is produced here with torch / diffusers / numpy / Pillow and
committed, so the tests themselves never need Python.  Layout (all arrays are .npy, float32 little-endian,
C order, unless stated otherwise):

    versions.json                 torch / diffusers / numpy / Pillow / Python versions used
    randn.json, randn/*.npy       torch.randn draws (CPU generator) for several seeds and sizes
    schedules.json                ᾱ files per noise-schedule config, and timestep lists per spacing
    schedules/*.npy               alphas_cumprod (float32, [T]) as DDIMScheduler computes it
    ddim.json, ddim_finals.npy    DDIM runs with an analytic "model" (see analytic_model) for a grid of
                                  configs; the finals of all cases concatenated (offset/count in ddim.json)
    checksums.json                zlib.crc32 / zlib.adler32 of given byte strings
    zlib/*                        raw zlib streams (several strategies) of zlib/plain.bin
    png/*.png, png.json           PNGs written by Pillow and by the reference writer below, their pixels,
                                  and malformed PNGs the decoder must refuse
    npy/*.npy                     .npy files written by numpy (v1.0, v2.0 header, f8, fortran, >f4)
    pipeline/                     DDIMPipeline runs of the real checkpoints (see make_pipeline_fixtures)

Usage:  python3 tools/reference/make_sampler_fixtures.py [--shared /work/shared/models] [--skip-pipeline]
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image

import diffusers
from diffusers import DDIMPipeline, DDIMScheduler, UNet2DModel

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = REPO_ROOT / "Tests" / "Fixtures" / "sampler"
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "models"

F32 = np.float32


def save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(array, dtype="<f4"))


def write_json(path: Path, obj, compact: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, separators=(",", ":"), sort_keys=True) if compact else json.dumps(obj, indent=1, sort_keys=True)
    path.write_text(text + "\n")


def versions() -> dict:
    return {
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "python": sys.version.split()[0],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


# ---------------------------------------------------------------------------------------------- randn

RANDN_SIZES = [1, 7, 15, 16, 17, 31, 32, 40, 1024, 4096]


def make_randn() -> None:
    """Fresh generator per (seed, size), plus one generator drawing a sequence of sizes.

    The sequence interleaves <16 draws (double-precision Box-Muller that caches its second value in the
    generator) with >=16 draws (float path that does not touch the cache), so the test sees the cache
    survive a >=16 call.
    """
    cases = []
    for seed in [0, 1, 42, 12345, 2**32 + 42]:
        chunks = []
        sizes = RANDN_SIZES if seed == 42 else [n for n in RANDN_SIZES if n <= 1024]
        for n in sizes:
            g = torch.Generator().manual_seed(seed)
            chunks.append(torch.randn(n, generator=g, dtype=torch.float32).numpy())
        name = f"fresh_seed{seed}"
        save_npy(OUT_DIR / "randn" / f"{name}.npy", np.concatenate(chunks))
        cases.append({"name": name, "seed": seed, "fresh_generator_per_size": True,
                      "sizes": sizes, "file": f"randn/{name}.npy"})
    for seed in [42, 7]:
        sequence = [7, 1, 16, 3, 5, 40, 15, 1, 1024, 9, 17, 2, 31, 32] + ([4096, 1] if seed == 42 else [1, 48])
        g = torch.Generator().manual_seed(seed)
        chunks = [torch.randn(n, generator=g, dtype=torch.float32).numpy() for n in sequence]
        name = f"sequence_seed{seed}"
        save_npy(OUT_DIR / "randn" / f"{name}.npy", np.concatenate(chunks))
        cases.append({"name": name, "seed": seed, "fresh_generator_per_size": False,
                      "sizes": sequence, "file": f"randn/{name}.npy"})
    write_json(OUT_DIR / "randn.json", {"cases": cases})


# ------------------------------------------------------------------------------------------ schedules


def scheduler_kwargs(cfg: dict) -> dict:
    """DDIMScheduler keyword arguments for one config dict (the NoiseScheduleConfig fields)."""
    kw = dict(cfg)
    if kw.get("timestep_spacing") == "quadratic":
        kw["timestep_spacing"] = "leading"  # diffusers has no quadratic spacing; timesteps set by hand
    return kw


def quadratic_timesteps(T: int, S: int, steps_offset: int) -> np.ndarray:
    """The DDIM paper's quadratic skip (ermongroup/ddim runners/diffusion.py): int(linspace(0, sqrt(0.8 T), S)^2),
    descending, then steps_offset added like diffusers' "leading" spacing."""
    seq = (np.linspace(0, np.sqrt(T * 0.8), S) ** 2).astype(np.int64)
    return seq[::-1].copy() + steps_offset


def timesteps_for(cfg: dict, S: int) -> list[int]:
    if cfg.get("timestep_spacing") == "quadratic":
        return quadratic_timesteps(cfg.get("num_train_timesteps", 1000), S, cfg.get("steps_offset", 0)).tolist()
    s = DDIMScheduler(**scheduler_kwargs(cfg))
    s.set_timesteps(S)
    return s.timesteps.numpy().tolist()


TRAINED_BETAS = (np.linspace(0.0002, 0.03, 200) ** 1.5 / 2 + 1e-5).tolist()

SCHEDULE_CONFIGS = {
    "linear": dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.0001, beta_end=0.02),
    "scaled_linear": dict(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
    "squaredcos": dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2"),
    "trained": dict(num_train_timesteps=200, trained_betas=TRAINED_BETAS),
    "linear_T4000": dict(num_train_timesteps=4000, beta_schedule="linear", beta_start=0.0001, beta_end=0.02),
    "linear_T50": dict(num_train_timesteps=50, beta_schedule="linear", beta_start=0.001, beta_end=0.05),
}


def make_schedules() -> None:
    alphas = {}
    for name, cfg in SCHEDULE_CONFIGS.items():
        s = DDIMScheduler(**cfg)
        save_npy(OUT_DIR / "schedules" / f"alphas_{name}.npy", s.alphas_cumprod.numpy())
        alphas[name] = {"config": cfg, "file": f"schedules/alphas_{name}.npy",
                        "final_alpha_cumprod_false": float(s.alphas_cumprod[0])}

    # Timestep lists: every spacing for a spread of step counts, including the trailing-spacing counts
    # where numpy's float arange yields S+1 values ending in -1 (see the Swift DDIMSchedule docs).
    lists = []
    for T in [1000, 50, 4000]:
        counts = sorted(set([1, 2, 3, 7, 10, 20, 25, 29, 31, 49, 50, 61, 100, 103, 121] + list(range(1, 12))))
        counts = [S for S in counts if S <= T] + ([333, 999, 1000] if T == 1000 else [T] if T == 50 else [])
        for spacing in ["leading", "trailing", "linspace", "quadratic"]:
            for offset in [0, 1]:
                for S in counts:
                    if S > 121 and offset == 1:
                        continue  # long lists only once: the size of the fixtures matters more
                    cfg = dict(num_train_timesteps=T, timestep_spacing=spacing, steps_offset=offset)
                    if spacing == "leading" and (S - 1) * (T // S) + offset >= T:
                        continue  # diffusers would index past alphas_cumprod: the Swift side throws (tested separately)
                    ts = timesteps_for(cfg, S)
                    lists.append({"num_train_timesteps": T, "spacing": spacing, "steps_offset": offset,
                                  "steps": S, "timesteps": ts})
    write_json(OUT_DIR / "schedules.json", {"alphas": alphas, "timesteps": lists}, compact=True)


# ------------------------------------------------------------------------------------- analytic DDIM


def analytic_model(x: np.ndarray, t: int) -> np.ndarray:
    """out_i = 0.5·x_i·cos(t/300) + 0.1·sin(i), evaluated so float32 Swift code can reproduce it bit for bit:
    cos and sin in double precision (libm, as Glibc's cos/sin in Swift), rounded to float32, and every
    float32 product and sum rounded separately (numpy's float32 ufuncs, no fused multiply-add)."""
    flat = x.reshape(-1).astype(F32)
    c = F32(math.cos(t / 300.0))
    s = np.array([math.sin(i) for i in range(flat.size)], dtype=F32)
    out = (F32(0.5) * flat) * c + F32(0.1) * s
    return out.reshape(x.shape).astype(F32)


def manual_ddim_step(sched: DDIMScheduler, model_output, timestep: int, prev_timestep: int, sample, eta: float,
                     generator) -> torch.Tensor:
    """diffusers' DDIMScheduler.step with an explicit previous timestep (copied operation for operation so the
    float32 rounding is the same); used for the quadratic spacing, which diffusers does not have."""
    cfg = sched.config
    alpha_prod_t = sched.alphas_cumprod[timestep]
    alpha_prod_t_prev = sched.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else sched.final_alpha_cumprod
    beta_prod_t = 1 - alpha_prod_t
    if cfg.prediction_type == "epsilon":
        pred_original_sample = (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
        pred_epsilon = model_output
    elif cfg.prediction_type == "sample":
        pred_original_sample = model_output
        pred_epsilon = (sample - alpha_prod_t ** (0.5) * pred_original_sample) / beta_prod_t ** (0.5)
    elif cfg.prediction_type == "v_prediction":
        pred_original_sample = (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output
        pred_epsilon = (alpha_prod_t**0.5) * model_output + (beta_prod_t**0.5) * sample
    else:
        raise ValueError(cfg.prediction_type)
    if cfg.clip_sample:
        pred_original_sample = pred_original_sample.clamp(-cfg.clip_sample_range, cfg.clip_sample_range)
    variance = sched._get_variance(timestep, prev_timestep)
    std_dev_t = eta * variance ** (0.5)
    pred_sample_direction = (1 - alpha_prod_t_prev - std_dev_t**2) ** (0.5) * pred_epsilon
    prev_sample = alpha_prod_t_prev ** (0.5) * pred_original_sample + pred_sample_direction
    if eta > 0:
        variance_noise = torch.randn(model_output.shape, generator=generator, dtype=model_output.dtype)
        prev_sample = prev_sample + std_dev_t * variance_noise
    return prev_sample


def run_ddim_case(cfg: dict, steps: int, eta: float, seed: int, shape: tuple, manual: bool = False):
    """The DDIMPipeline loop with the analytic model. Returns (timesteps, final sample, 16 draws after)."""
    quadratic = cfg.get("timestep_spacing") == "quadratic"
    sched = DDIMScheduler(**scheduler_kwargs(cfg))
    sched.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float32)  # what randn_tensor does for a CPU generator
    if quadratic:
        ts = quadratic_timesteps(sched.config.num_train_timesteps, steps, sched.config.steps_offset).tolist()
    else:
        ts = sched.timesteps.tolist()
    for i, t in enumerate(ts):
        out = torch.from_numpy(analytic_model(x.numpy(), int(t)))
        if quadratic or manual:
            prev = ts[i + 1] if quadratic and i + 1 < len(ts) else (
                -1 if quadratic else int(t) - sched.config.num_train_timesteps // steps)
            x = manual_ddim_step(sched, out, int(t), prev, x, eta, g)
        else:
            x = sched.step(out, torch.tensor(t), x, eta=eta, generator=g).prev_sample
    after = torch.randn(16, generator=g, dtype=torch.float32).numpy()
    return ts, x.numpy().astype(F32), after


def make_ddim_cases() -> None:
    shape = (2, 3, 4, 4)
    cases = []
    finals = []

    def add(name, cfg, steps, eta, seed=1234, shp=shape):
        full = dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.0001, beta_end=0.02,
                    trained_betas=None, clip_sample=True, clip_sample_range=1.0, prediction_type="epsilon",
                    steps_offset=0, set_alpha_to_one=True, timestep_spacing="leading")
        full.update(cfg)
        ts, final, after = run_ddim_case(full, steps, eta, seed, shp)
        if not np.all(np.isfinite(final)):
            raise SystemExit(f"case {name}: non-finite result")
        offset = sum(f.size for f in finals)
        finals.append(final.reshape(-1))
        cases.append({"name": name, "config": full, "steps": steps, "eta": eta, "seed": seed,
                      "shape": list(shp), "timesteps": [int(t) for t in ts], "offset": offset,
                      "count": int(final.size), "after": [float(v) for v in after]})

    # The manual step must reproduce diffusers' step exactly, or the quadratic cases prove nothing.
    base = dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=0.0001, beta_end=0.02,
                clip_sample=True, prediction_type="epsilon", set_alpha_to_one=True, timestep_spacing="leading")
    for eta in [0.0, 1.0]:
        for pred in ["epsilon", "v_prediction", "sample"]:
            c = dict(base, prediction_type=pred)
            _, a, a2 = run_ddim_case(c, 10, eta, 99, shape)
            _, b, b2 = run_ddim_case(c, 10, eta, 99, shape, manual=True)
            assert np.array_equal(a, b) and np.array_equal(a2, b2), "manual DDIM step differs from diffusers"

    step_counts = {"leading": 10, "trailing": 7, "linspace": 13, "quadratic": 10}
    for spacing in ["leading", "trailing", "linspace", "quadratic"]:
        for pred in ["epsilon", "v_prediction", "sample"]:
            for eta in [0.0, 1.0]:
                for clip in [True, False]:
                    for one in [True, False]:
                        name = f"{spacing}_{pred}_eta{eta:g}_clip{int(clip)}_one{int(one)}"
                        add(name, dict(timestep_spacing=spacing, prediction_type=pred, clip_sample=clip,
                                       set_alpha_to_one=one), step_counts[spacing], eta)
    # steps_offset, other beta schedules, a clip range, a fractional eta, odd step counts, a tiny (<16) shape.
    for spacing in ["leading", "trailing", "linspace", "quadratic"]:
        add(f"{spacing}_offset1", dict(timestep_spacing=spacing, steps_offset=1, set_alpha_to_one=False), 10, 1.0)
    add("squaredcos_v", dict(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                             timestep_spacing="trailing", clip_sample=False), 12, 0.0)
    add("squaredcos_eps_eta1", dict(beta_schedule="squaredcos_cap_v2"), 10, 1.0)
    add("scaled_linear_eps", dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                  steps_offset=1, set_alpha_to_one=False, clip_sample=False), 20, 0.0)
    add("scaled_linear_eta1", dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                   timestep_spacing="linspace"), 8, 1.0)
    add("trained_betas", dict(num_train_timesteps=200, trained_betas=TRAINED_BETAS), 10, 1.0)
    add("trained_betas_quadratic", dict(num_train_timesteps=200, trained_betas=TRAINED_BETAS,
                                        timestep_spacing="quadratic", prediction_type="sample"), 9, 0.0)
    add("clip_range_2", dict(clip_sample_range=2.0, prediction_type="sample"), 10, 0.0)
    add("clip_range_0p5_eta1", dict(clip_sample_range=0.5), 10, 1.0)
    add("eta_0p37", dict(), 10, 0.37)
    add("eta_0p37_trailing", dict(timestep_spacing="trailing"), 15, 0.37)
    add("one_step", dict(), 1, 1.0)
    add("fifty_steps", dict(), 50, 1.0)
    add("all_1000_steps", dict(), 1000, 0.0, shp=(1, 1, 4, 4))
    add("tiny_shape_eta1", dict(), 10, 1.0, seed=5, shp=(1, 1, 2, 2))
    add("tiny_shape_odd_eta1", dict(timestep_spacing="trailing"), 9, 1.0, seed=6, shp=(1, 3, 1, 1))
    add("tiny_shape_quadratic_eta1", dict(timestep_spacing="quadratic"), 6, 1.0, seed=8, shp=(1, 1, 3, 5))

    save_npy(OUT_DIR / "ddim_finals.npy", np.concatenate(finals))
    write_json(OUT_DIR / "ddim.json", {
        "model": "out_i = float32(0.5*x_i) * float32(cos(t/300)) + float32(0.1) * float32(sin(i)), "
                 "cos/sin in double, i = flat index",
        "x_T": "torch.randn(shape, generator=torch.Generator().manual_seed(seed)), then one randn(shape) per "
               "step when eta > 0; 'after' = torch.randn(16) drawn from the same generator after the loop",
        "cases": cases}, compact=True)


# ------------------------------------------------------------------------------------- checksums/zlib

CHECKSUM_STRINGS = ["", "a", "abc", "123456789", "message digest", "The quick brown fox jumps over the lazy dog"]


def pattern_bytes(n: int) -> bytes:
    """Deterministic bytes the Swift test regenerates: x_{k+1} = (1103515245 x_k + 12345) mod 2^31, byte = x >> 16."""
    out = bytearray()
    x = 1
    for _ in range(n):
        x = (1103515245 * x + 12345) % (1 << 31)
        out.append((x >> 16) & 0xFF)
    return bytes(out)


def make_checksums_and_zlib() -> None:
    entries = []
    for s in CHECKSUM_STRINGS:
        b = s.encode()
        entries.append({"kind": "string", "text": s, "crc32": zlib.crc32(b), "adler32": zlib.adler32(b)})
    for n in [1, 100, 5552, 5553, 100000]:  # 5552: the largest n for which Adler-32 sums need no reduction
        b = pattern_bytes(n)
        entries.append({"kind": "pattern", "length": n, "crc32": zlib.crc32(b), "adler32": zlib.adler32(b)})
    b = b"\xff" * 70000
    entries.append({"kind": "ff", "length": len(b), "crc32": zlib.crc32(b), "adler32": zlib.adler32(b)})
    write_json(OUT_DIR / "checksums.json", {"entries": entries})

    # Text-like data with long repeats (far matches) and a random tail (literals).
    words = [b"diffusion ", b"model ", b"noise ", b"schedule ", b"sampler ", b"edge ", b"png ", b"\n"]
    rng = np.random.RandomState(3)
    plain = b"".join(words[i] for i in rng.randint(0, len(words), 800)) + pattern_bytes(1500) + b"A" * 700
    (OUT_DIR / "zlib").mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "zlib" / "plain.bin").write_bytes(plain)
    streams = {"level0_stored": (0, zlib.Z_DEFAULT_STRATEGY), "level1": (1, zlib.Z_DEFAULT_STRATEGY),
               "level9_dynamic": (9, zlib.Z_DEFAULT_STRATEGY), "fixed": (9, zlib.Z_FIXED),
               "huffman_only": (9, zlib.Z_HUFFMAN_ONLY), "rle": (9, zlib.Z_RLE)}
    for name, (level, strategy) in streams.items():
        c = zlib.compressobj(level, zlib.DEFLATED, 15, 9, strategy)
        data = c.compress(plain) + c.flush()
        assert zlib.decompress(data) == plain
        (OUT_DIR / "zlib" / f"{name}.zlib").write_bytes(data)


# ------------------------------------------------------------------------------------------------ PNG


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_rows(pixels: np.ndarray, filters: list[int]) -> bytes:
    """PNG scanline filtering (8-bit), row r uses filters[r % len(filters)]."""
    h, w, ch = pixels.shape
    raw = pixels.reshape(h, w * ch).astype(np.int64)
    out = bytearray()
    for r in range(h):
        ft = filters[r % len(filters)]
        out.append(ft)
        prev = raw[r - 1] if r > 0 else np.zeros(w * ch, dtype=np.int64)
        for i in range(w * ch):
            x = int(raw[r, i])
            a = int(raw[r, i - ch]) if i >= ch else 0
            b = int(prev[i])
            c = int(prev[i - ch]) if i >= ch else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][ft]
            out.append((x - pred) & 0xFF)
    return bytes(out)


def reference_png(pixels: np.ndarray, filters: list[int], level: int = 9, strategy: int = zlib.Z_DEFAULT_STRATEGY,
                  idat_split: int | None = None, extra_chunks: bool = False, bit_depth: int = 8,
                  color_type: int | None = None, interlace: int = 0) -> bytes:
    h, w, ch = pixels.shape
    if color_type is None:
        color_type = {1: 0, 2: 4, 3: 2, 4: 6}[ch]
    c = zlib.compressobj(level, zlib.DEFLATED, 15, 9, strategy)
    data = c.compress(filter_rows(pixels, filters)) + c.flush()
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, interlace))
    if extra_chunks:
        out += png_chunk(b"tEXt", b"Comment\x00edge-ddim reference") + png_chunk(b"gAMA", struct.pack(">I", 45455))
    parts = [data] if idat_split is None else [data[i:i + idat_split] for i in range(0, len(data), idat_split)]
    for p in parts:
        out += png_chunk(b"IDAT", p)
    if extra_chunks:
        out += png_chunk(b"tIME", bytes(7))
    return out + png_chunk(b"IEND", b"")


def make_png() -> None:
    d = OUT_DIR / "png"
    d.mkdir(parents=True, exist_ok=True)
    cases = []

    def record(name: str, px: np.ndarray, how: str):
        cases.append({"file": f"png/{name}", "width": int(px.shape[1]), "height": int(px.shape[0]),
                      "channels": int(px.shape[2]), "pixels": px.reshape(-1).astype(int).tolist(), "how": how})

    rgb32 = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]],
                      [[0, 0, 0], [128, 128, 128], [255, 255, 255]]], dtype=np.uint8)
    Image.fromarray(rgb32, mode="RGB").save(d / "pillow_rgb_3x2.png")
    record("pillow_rgb_3x2.png", rgb32, "Pillow")
    gray = np.array([[0, 64, 128], [192, 255, 7]], dtype=np.uint8)
    Image.fromarray(gray, mode="L").save(d / "pillow_gray_3x2.png")
    record("pillow_gray_3x2.png", gray[..., None], "Pillow")
    rgba = np.concatenate([rgb32, np.array([[[255], [128], [0]], [[10], [20], [30]]], dtype=np.uint8)], axis=2)
    Image.fromarray(rgba, mode="RGBA").save(d / "pillow_rgba_3x2.png")
    record("pillow_rgba_3x2.png", rgba, "Pillow")

    rng = np.random.RandomState(11)
    # Smooth gradient plus noise, so every filter type has something to predict.
    yy, xx = np.mgrid[0:9, 0:7]
    base = np.stack([xx * 30, yy * 25, (xx + yy) * 12], axis=2)
    rgb = ((base + rng.randint(0, 40, base.shape)) % 256).astype(np.uint8)
    (d / "ref_filters_rgb_7x9.png").write_bytes(reference_png(rgb, [0, 1, 2, 3, 4]))
    record("ref_filters_rgb_7x9.png", rgb, "reference writer, filters 0,1,2,3,4 by row, zlib level 9 (dynamic Huffman)")
    g1 = ((xx * 37 + yy * 11 + rng.randint(0, 9, xx.shape)) % 256).astype(np.uint8)[..., None]
    (d / "ref_filters_gray_fixed.png").write_bytes(reference_png(g1, [4, 3, 2, 1, 0], strategy=zlib.Z_FIXED))
    record("ref_filters_gray_fixed.png", g1, "reference writer, filters 4,3,2,1,0, Z_FIXED (fixed Huffman)")
    (d / "ref_stored_rgb.png").write_bytes(reference_png(rgb, [2], level=0))
    record("ref_stored_rgb.png", rgb, "reference writer, filter 2, zlib level 0 (stored blocks)")
    ga = np.stack([g1[..., 0], (255 - g1[..., 0])], axis=2)
    (d / "ref_gray_alpha_split_idat.png").write_bytes(
        reference_png(ga, [1, 4], idat_split=7, extra_chunks=True))
    record("ref_gray_alpha_split_idat.png", ga, "reference writer, gray+alpha, IDAT split in 7-byte chunks, tEXt/gAMA/tIME")
    big = rng.randint(0, 256, (24, 21, 3)).astype(np.uint8)
    big[6:18] = np.clip(big[6:18] // 8 + np.arange(21)[None, :, None] * 11, 0, 255)  # compressible part
    Image.fromarray(big, mode="RGB").save(d / "pillow_rgb_21x24.png")
    record("pillow_rgb_21x24.png", big, "Pillow (adaptive filters, zlib)")

    # Files the decoder must refuse, with the reason the test expects in the message.
    bad = []
    (d / "bad_16bit.png").write_bytes(reference_png(gray[..., None].repeat(2, axis=2), [0], bit_depth=16, color_type=0))
    bad.append({"file": "png/bad_16bit.png", "expect": "16"})
    Image.fromarray(rgb32, mode="RGB").convert("P").save(d / "bad_palette.png")
    bad.append({"file": "png/bad_palette.png", "expect": "palette"})
    (d / "bad_interlaced.png").write_bytes(reference_png(rgb32, [0], interlace=1))
    bad.append({"file": "png/bad_interlaced.png", "expect": "interlace"})
    good = bytearray((d / "pillow_rgb_3x2.png").read_bytes())
    crc_at = 8 + 8 + 13  # the IHDR CRC
    good[crc_at] ^= 0x01
    (d / "bad_crc.png").write_bytes(bytes(good))
    bad.append({"file": "png/bad_crc.png", "expect": "CRC"})
    whole = (d / "ref_filters_rgb_7x9.png").read_bytes()
    (d / "bad_truncated.png").write_bytes(whole[: len(whole) - 30])
    bad.append({"file": "png/bad_truncated.png", "expect": "truncated"})
    (d / "bad_signature.png").write_bytes(b"\x89PNX" + whole[4:])
    bad.append({"file": "png/bad_signature.png", "expect": "signature"})
    write_json(OUT_DIR / "png.json", {"cases": cases, "bad": bad}, compact=True)


# ------------------------------------------------------------------------------------------------ npy


def make_npy() -> None:
    d = OUT_DIR / "npy"
    d.mkdir(parents=True, exist_ok=True)
    a = (np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5) - 60) / 7
    np.save(d / "f4_v1_2x3x4x5.npy", a)
    with open(d / "f4_v2_2x3x4x5.npy", "wb") as f:
        np.lib.format.write_array(f, a, version=(2, 0))
    np.save(d / "f4_v1_scalar_count1.npy", np.array([[[[1.5]]]], dtype=np.float32))
    np.save(d / "f4_v1_1d_7.npy", np.arange(7, dtype=np.float32) * 0.25)
    np.save(d / "f8_2x3.npy", np.arange(6, dtype=np.float64).reshape(2, 3))
    np.save(d / "fortran_f4_2x3.npy", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)))
    np.save(d / "bigendian_f4_2x3.npy", np.arange(6, dtype=">f4").reshape(2, 3))
    write_json(OUT_DIR / "npy.json", {
        "f4_v1_2x3x4x5.npy": "(arange(120).reshape(2,3,4,5) - 60) / 7, float32; the v2 file holds the same",
        "f4_v1_1d_7.npy": "arange(7) * 0.25",
        "f4_v1_scalar_count1.npy": "[[[[1.5]]]]"})


# ------------------------------------------------------------------------------------------- pipeline


INIT_NOISE_BATCH = {"ddpm-emoji-32": 1}  # one trajectory fixture; batch 1 keeps the fixtures small


def make_pipeline_fixtures(shared: Path) -> None:
    """DDIMPipeline(unet, DDIMScheduler.from_config(...)) runs of the real checkpoints."""
    out = OUT_DIR / "pipeline"
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    meta = {"versions": versions(), "checkpoints": {}}
    for ckpt in ["ddpm-fashion-32", "ddpm-emoji-32"]:
        path = shared / ckpt
        unet = UNet2DModel.from_pretrained(path, torch_dtype=torch.float32).eval()
        sched_cfg = DDIMScheduler.load_config(path / "scheduler_config.json")
        scheduler = DDIMScheduler.from_config(sched_cfg)
        pipe = DDIMPipeline(unet=unet, scheduler=scheduler)
        pipe.set_progress_bar_config(disable=True)
        c, h, w = unet.config.in_channels, unet.config.sample_size, unet.config.sample_size
        shape = (4, c, h, w)
        x_T = torch.randn(shape, generator=torch.Generator().manual_seed(42), dtype=torch.float32)
        save_npy(out / f"{ckpt}_xT.npy", x_T.numpy())
        runs = []
        for S in [10, 20]:
            for E in [0.0, 1.0]:
                captured = {"unet_inputs": [], "prev": []}
                hook = pipe.unet.register_forward_pre_hook(
                    lambda m, args, kw=None: captured["unet_inputs"].append((args[0].clone(), int(args[1]))))
                orig_step = pipe.scheduler.step

                def step(*a, _orig=orig_step, **k):
                    r = _orig(*a, **k)
                    captured["prev"].append(r.prev_sample.clone())
                    return r

                pipe.scheduler.step = step
                with torch.no_grad():
                    image = pipe(batch_size=4, generator=torch.Generator().manual_seed(42), eta=E,
                                 num_inference_steps=S, output_type="np").images
                hook.remove()
                pipe.scheduler.step = orig_step
                first_input = captured["unet_inputs"][0][0]
                assert torch.equal(first_input, x_T), "pipeline x_T differs from torch.randn(seed 42)"
                x0 = captured["prev"][-1]
                check = (x0 / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
                assert np.array_equal(check, image), "captured x_0 does not give the pipeline's image"
                tag = f"{ckpt}_S{S}_eta{int(E)}"
                save_npy(out / f"{tag}_x0.npy", x0.numpy())
                save_npy(out / f"{tag}_image.npy", image.astype(F32))
                runs.append({"steps": S, "eta": E, "x0": f"{tag}_x0.npy", "image": f"{tag}_image.npy",
                             "timesteps": [t for _, t in captured["unet_inputs"]]})
                if S == 10 and E == 0.0:
                    # The same images as diffusers' numpy_to_pil would make, side by side, written by Pillow.
                    pil = pipe.numpy_to_pil(image)
                    strip = Image.new(pil[0].mode, (w * len(pil), h))
                    for i, im in enumerate(pil):
                        strip.paste(im, (i * w, 0))
                    strip.save(out / f"{tag}_pil_strip.png")
        meta["checkpoints"][ckpt] = {
            "shape": list(shape), "seed": 42, "x_T": f"{ckpt}_xT.npy", "runs": runs,
            "pil_strip": f"{ckpt}_S10_eta0_pil_strip.png",
            "scheduler_config": {k: v for k, v in scheduler.config.items() if not k.startswith("_")},
        }
        if ckpt in INIT_NOISE_BATCH:
            # --init-noise trajectory: a given x_T (not from torch), S=10, eta=0, every x_t.
            given = np.random.RandomState(2024).standard_normal((INIT_NOISE_BATCH[ckpt], c, h, w)).astype(F32)
            save_npy(out / f"{ckpt}_init_noise_xT.npy", given)
            sched = DDIMScheduler.from_config(sched_cfg)
            sched.set_timesteps(10)
            x = torch.from_numpy(given.copy())
            traj = [x.numpy().copy()]
            with torch.no_grad():
                for t in sched.timesteps:
                    eps = unet(x, t).sample
                    x = sched.step(eps, t, x, eta=0.0).prev_sample
                    traj.append(x.numpy().copy())
            save_npy(out / f"{ckpt}_init_noise_trajectory.npy", np.stack(traj))
            meta["checkpoints"][ckpt]["init_noise"] = {
                "x_T": f"{ckpt}_init_noise_xT.npy", "steps": 10, "eta": 0.0,
                "trajectory": f"{ckpt}_init_noise_trajectory.npy", "timesteps": sched.timesteps.tolist(),
                "x_T_source": "numpy.random.RandomState(2024).standard_normal(shape).astype(float32)"}
        print(f"{ckpt}: done", flush=True)
    write_json(out / "pipeline.json", meta)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    ap.add_argument("--skip-pipeline", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    write_json(OUT_DIR / "versions.json", versions())
    make_randn()
    make_schedules()
    make_ddim_cases()
    make_checksums_and_zlib()
    make_png()
    make_npy()
    if not args.skip_pipeline:
        make_pipeline_fixtures(args.shared)


if __name__ == "__main__":
    main()
