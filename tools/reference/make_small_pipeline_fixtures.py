#!/usr/bin/env python3
"""Generate Tests/Fixtures/sampler/small-pipeline/: diffusers DDIMPipeline runs of two small random-weight UNets
for every prediction type × timestep spacing × η, with the other scheduler fields varied across runs.

The models are the random-weight fixture folders written by make_fixtures.py (Tests/Fixtures/unet/<name>/):

    single-level-attn     1 channel, 8×8, F32 weights
    two-level-midscale    3 channels, 8×8, F16 weights (loaded as float32, as the Swift fp32 conversion does)

For each run the folder's scheduler_config.json is loaded, the run's `overrides` are applied on top (the test
does the same to a copy of the folder before converting it), and

    DDIMPipeline(unet, DDIMScheduler.from_config(config))(batch_size=2, generator=torch.Generator().manual_seed(seed),
                                                           eta=eta, num_inference_steps=steps, output_type="np")

is called with the UNet in float32 on the CPU. Written (float32 little-endian .npy, C order):

    <fixture>_seed<seed>_xT.npy     x_T, the first UNet input (= torch.randn(shape, generator=seed)), [2,C,8,8]
    <run>_x0.npy                    the last scheduler step's prev_sample, i.e. x₀ before /2+0.5 and the clamp
    small_pipeline.json             versions, and per run: fixture, overrides, steps, eta, seed, shape, files,
                                    the timesteps diffusers used (scheduler.timesteps) and max |x₀|

Runs: the 18 cells prediction_type {epsilon, v_prediction, sample} × timestep_spacing {leading, trailing,
linspace} × η {0, 1} for each of the two models (36 runs). beta_schedule {linear, scaled_linear,
squaredcos_cap_v2}, clip_sample, set_alpha_to_one, steps_offset {0, 1} and steps {3, 5, 7, 10, 13, 20} are
spread over the cells (the table RUNS below: every value of every field on both models, not the full product).
Steps 3, 7 and 13 do not divide T = 1000, so with trailing and linspace spacing the previous timestep
t − ⌊T/S⌋ that diffusers uses is not the next listed one.

epsilon prediction is never combined with squaredcos_cap_v2 and a spacing that starts at t = 999 (trailing,
linspace): that schedule's ᾱ_999 is 2.4e-9 (β capped at 0.999), so x₀ = (x − √(1−ᾱ)·ε)/√ᾱ multiplies the
float32 rounding of ε by 2e4. With such runs diffusers' own float32 result differed from the same loop in
float64 by 0.02–0.04 (x₀ of magnitude 5e4–7e4 without clipping) and by 6.9e-4 with clipping, so they could
not be held to the 1e-3 bar by any float32 implementation. Other epsilon runs amplify at most 157× (linear,
t = 999). check_coverage enforces this.

Deterministic: one torch thread, fixed seeds; running the script again gives byte-identical files.

Usage:  python3 tools/reference/make_small_pipeline_fixtures.py
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

import diffusers
from diffusers import DDIMPipeline, DDIMScheduler, UNet2DModel

REPO_ROOT = Path(__file__).resolve().parents[2]
UNET_DIR = REPO_ROOT / "Tests" / "Fixtures" / "unet"
OUT_DIR = REPO_ROOT / "Tests" / "Fixtures" / "sampler" / "small-pipeline"

BATCH = 2
FIXTURES = ["single-level-attn", "two-level-midscale"]
SEEDS = {"single-level-attn": [0, 1234], "two-level-midscale": [42, 7]}

# beta_start / beta_end written with each beta_schedule (squaredcos_cap_v2 ignores them).
BETA_RANGES = {"linear": (0.0001, 0.02), "scaled_linear": (0.00085, 0.012), "squaredcos_cap_v2": (0.0001, 0.02)}

# (prediction_type, timestep_spacing, eta, beta_schedule, clip_sample, set_alpha_to_one, steps_offset, steps);
# the first 18 rows run on single-level-attn, the next 18 on two-level-midscale.
RUNS = [
    ("epsilon", "leading", 0.0, "squaredcos_cap_v2", True, True, 0, 3),
    ("epsilon", "leading", 1.0, "scaled_linear", False, False, 1, 7),
    ("epsilon", "trailing", 0.0, "linear", True, False, 1, 10),
    ("epsilon", "trailing", 1.0, "scaled_linear", False, True, 0, 13),
    ("epsilon", "linspace", 0.0, "linear", False, True, 1, 20),
    ("epsilon", "linspace", 1.0, "scaled_linear", True, False, 0, 5),
    ("v_prediction", "leading", 0.0, "linear", True, False, 1, 13),
    ("v_prediction", "leading", 1.0, "scaled_linear", False, True, 0, 10),
    ("v_prediction", "trailing", 0.0, "linear", True, True, 0, 7),
    ("v_prediction", "trailing", 1.0, "scaled_linear", True, False, 0, 20),
    ("v_prediction", "linspace", 0.0, "squaredcos_cap_v2", False, True, 1, 5),
    ("v_prediction", "linspace", 1.0, "linear", False, False, 1, 3),
    ("sample", "leading", 0.0, "squaredcos_cap_v2", True, True, 0, 20),
    ("sample", "leading", 1.0, "linear", False, False, 1, 5),
    ("sample", "trailing", 0.0, "scaled_linear", True, True, 0, 3),
    ("sample", "trailing", 1.0, "linear", True, True, 0, 10),
    ("sample", "linspace", 0.0, "scaled_linear", True, True, 0, 13),
    ("sample", "linspace", 1.0, "squaredcos_cap_v2", True, True, 0, 7),

    ("epsilon", "leading", 0.0, "scaled_linear", True, False, 1, 10),
    ("epsilon", "leading", 1.0, "squaredcos_cap_v2", False, False, 1, 7),
    ("epsilon", "trailing", 0.0, "scaled_linear", False, True, 1, 20),
    ("epsilon", "trailing", 1.0, "linear", True, False, 0, 5),
    ("epsilon", "linspace", 0.0, "linear", True, True, 0, 3),
    ("epsilon", "linspace", 1.0, "scaled_linear", False, False, 1, 20),
    ("v_prediction", "leading", 0.0, "linear", True, True, 0, 5),
    ("v_prediction", "leading", 1.0, "scaled_linear", False, False, 1, 3),
    ("v_prediction", "trailing", 0.0, "linear", False, False, 1, 10),
    ("v_prediction", "trailing", 1.0, "scaled_linear", False, False, 1, 13),
    ("v_prediction", "linspace", 0.0, "squaredcos_cap_v2", False, False, 1, 7),
    ("v_prediction", "linspace", 1.0, "linear", False, False, 1, 3),
    ("sample", "leading", 0.0, "scaled_linear", True, True, 0, 7),
    ("sample", "leading", 1.0, "squaredcos_cap_v2", False, True, 0, 10),
    ("sample", "trailing", 0.0, "squaredcos_cap_v2", True, False, 1, 13),
    ("sample", "trailing", 1.0, "linear", True, False, 0, 20),
    ("sample", "linspace", 0.0, "scaled_linear", False, True, 1, 5),
    ("sample", "linspace", 1.0, "linear", False, True, 0, 13),
]

SHORT = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}


def save_npy(path: Path, array: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(array, dtype="<f4"))


def check_coverage() -> None:
    """Every value of every field appears on each model; every cell of the 3×3×2 grid on each model."""
    for i, fixture in enumerate(FIXTURES):
        rows = RUNS[i * 18:(i + 1) * 18]
        assert len({r[:3] for r in rows}) == 18, f"{fixture}: the prediction × spacing × eta grid is incomplete"
        for col, values in [(3, BETA_RANGES.keys()), (4, [True, False]), (5, [True, False]), (6, [0, 1])]:
            assert set(values) <= {r[col] for r in rows}, f"{fixture}: column {col} misses a value"
    assert len(RUNS) == 18 * len(FIXTURES)
    for r in RUNS:
        assert not (r[0] == "epsilon" and r[3] == "squaredcos_cap_v2" and r[1] != "leading"), \
            f"{r}: ill-conditioned (see the module docstring)"


def run_one(pipe: DDIMPipeline, steps: int, eta: float, seed: int, x_T: torch.Tensor):
    """Runs the pipeline; returns (final prev_sample, scheduler.timesteps) and checks what was captured."""
    captured = {"first_input": None, "prev": []}

    def pre_hook(module, args):
        if captured["first_input"] is None:
            captured["first_input"] = args[0].clone()

    hook = pipe.unet.register_forward_pre_hook(pre_hook)
    orig_step = pipe.scheduler.step

    def step(*a, **k):
        r = orig_step(*a, **k)
        captured["prev"].append(r.prev_sample.clone())
        return r

    pipe.scheduler.step = step
    try:
        with torch.no_grad():
            image = pipe(batch_size=BATCH, generator=torch.Generator().manual_seed(seed), eta=eta,
                         num_inference_steps=steps, output_type="np").images
    finally:
        hook.remove()
        pipe.scheduler.step = orig_step
    assert torch.equal(captured["first_input"], x_T), "pipeline x_T differs from torch.randn(seed)"
    timesteps = [int(t) for t in pipe.scheduler.timesteps]
    assert len(captured["prev"]) == steps == len(timesteps), f"{len(captured['prev'])} steps run, asked for {steps}"
    x0 = captured["prev"][-1]
    check = (x0 / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(check, image), "captured x_0 does not give the pipeline's image"
    x0 = x0.numpy().astype(np.float32)
    assert np.all(np.isfinite(x0)), "non-finite x_0"
    return x0, timesteps


def main() -> None:
    torch.set_num_threads(1)
    check_coverage()
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)
    manifest = {
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__, "numpy": np.__version__,
                     "python": sys.version.split()[0]},
        "batch": BATCH,
        "how": "DDIMPipeline(unet fp32, DDIMScheduler.from_config(<fixture>/scheduler_config.json updated with "
               "overrides)), generator torch.Generator().manual_seed(seed), output_type np; x0 = the last "
               "scheduler step's prev_sample",
        "runs": [],
    }
    for i, fixture in enumerate(FIXTURES):
        folder = UNET_DIR / fixture
        unet = UNet2DModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
        base_config = DDIMScheduler.load_config(folder / "scheduler_config.json")
        c, size = unet.config.in_channels, unet.config.sample_size
        assert unet.config.out_channels == c
        shape = (BATCH, c, size, size)
        noise = {}
        for seed in SEEDS[fixture]:
            x_T = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
            name = f"{fixture}_seed{seed}_xT.npy"
            save_npy(OUT_DIR / name, x_T.numpy())
            noise[seed] = (x_T, name)
        for k, (pred, spacing, eta, beta, clip, one, offset, steps) in enumerate(RUNS[i * 18:(i + 1) * 18]):
            beta_start, beta_end = BETA_RANGES[beta]
            overrides = {"prediction_type": pred, "timestep_spacing": spacing, "beta_schedule": beta,
                         "beta_start": beta_start, "beta_end": beta_end, "clip_sample": clip,
                         "set_alpha_to_one": one, "steps_offset": offset}
            config = dict(base_config)
            config.update(overrides)
            pipe = DDIMPipeline(unet=unet, scheduler=DDIMScheduler.from_config(config))
            pipe.set_progress_bar_config(disable=True)
            for key, value in overrides.items():
                assert pipe.scheduler.config[key] == value, f"override {key} did not reach the scheduler"
            seed = SEEDS[fixture][(k // 2) % 2]
            x_T, xt_name = noise[seed]
            x0, timesteps = run_one(pipe, steps, eta, seed, x_T)
            name = f"{fixture}_{SHORT[pred]}_{spacing}_eta{int(eta)}_S{steps}"
            save_npy(OUT_DIR / f"{name}_x0.npy", x0)
            manifest["runs"].append({
                "name": name, "fixture": fixture, "overrides": overrides, "steps": steps, "eta": eta,
                "seed": seed, "shape": list(shape), "x_T": xt_name, "x0": f"{name}_x0.npy",
                "timesteps": timesteps, "x0_max_abs": float(np.abs(x0).max()),
            })
            print(f"{name}: timesteps {timesteps}, max |x0| {np.abs(x0).max():.4g}", flush=True)
    (OUT_DIR / "small_pipeline.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
