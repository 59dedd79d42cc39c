#!/usr/bin/env python3
"""Generate Tests/Fixtures/samplers/: what diffusers' schedulers produce, for the Swift sampler tests.

Everything the Swift tests compare against is computed here with diffusers (the oracle) and committed, so the
tests never need Python.  The models:

    ddpm-fashion-32, ddpm-emoji-32   the real checkpoints in --shared (1 / 3 channels, 32×32, fp16 weights)
    single-level-attn                random-weight fixture of make_fixtures.py (Tests/Fixtures/unet/), 1 ch, 8×8
    two-level-midscale               random-weight fixture, 3 channels, 8×8 (F16 weights)

All are loaded with UNet2DModel.from_pretrained(folder, torch_dtype=torch.float32) (the fp32 conversion) and
run on the CPU.  The reference loop, for every run:

    config = <folder>/scheduler_config.json as a dict (DDPMScheduler.load_config), updated with the run's overrides
    scheduler = Cls.from_config(config, **sampler_kwargs)     # keys absent from the JSON take Cls's own defaults
    scheduler.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x = scheduler.step(unet(scheduler.scale_model_input(x, t), t).sample, t, x,
                           [generator=g if step() has that parameter], [eta=0.0 for ddim]).prev_sample
    x0 = x                                                     # no /2+0.5, no clamp

Samplers (name: class, from_config kwargs):

    ddim          DDIMScheduler (step eta=0.0; clip_sample and set_alpha_to_one as the JSON / DDIM's defaults say)
    dpmpp-2m      DPMSolverMultistepScheduler algorithm_type dpmsolver++, solver_order 2, midpoint, lower_order_final
    dpmpp-2m-sde  the same with algorithm_type sde-dpmsolver++ (stochastic)
    unipc         UniPCMultistepScheduler with its defaults (bh2, order 2, predict_x0)
    pndm          PNDMScheduler skip_prk_steps True; pndm-prk: skip_prk_steps False
    euler         EulerDiscreteScheduler; euler-a: EulerAncestralDiscreteScheduler (stochastic)
    +karras       use_karras_sigmas True, for dpmpp-2m, unipc and euler

step() takes a generator for ddim, dpmpp-2m(-sde), euler and euler-a (not pndm, unipc).  The two stochastic
samplers draw exactly one torch.randn(x.shape) float32 per step (the last step included) from the generator
that drew x_T; the script checks this by comparing the generator's next draws with a fresh one.

Runs (138 small + 54 checkpoint):

 1. Checkpoints: each real checkpoint × every sampler × S ∈ {5, 10, 20}, plus the three +karras samplers at
    S = 10; seed 42, shape [4, C, 32, 32], no overrides (the checkpoint's own config: linear betas, epsilon,
    leading spacing, clip_sample true).  x0 only.
 2. Small fixtures (the table SMALL_RUNS): every (sampler, timestep_spacing, prediction_type) cell that
    diffusers accepts on BOTH small models (126 runs), plus four +karras runs per karras sampler (two per
    model).  beta_schedule linear / scaled_linear / squaredcos_cap_v2 (beta ranges as in BETA_RANGES),
    steps_offset 0 / 1 (it only moves "leading" timesteps; rows with other spacings that say 1 check that it
    is ignored), S ∈ {3, 4, 5, 7, 10, 13, 20}, two trained_betas runs (T = 250, TRAINED_BETAS; beta_schedule
    "linear" is written too because DPMSolver's karras path rounds the timesteps only when beta_schedule is
    not squaredcos_cap_v2, even with trained_betas).  Batch 2; seeds 0 / 1234 (single-level-attn), 42 / 7
    (two-level-midscale).  The stochastic samplers also save x after every step ([steps, N, C, H, W]).
    check_small_coverage enforces the coverage rules.
 3. Probes (no UNet; zero model output on a [1,1,4,4] sample): every sampler (+karras) × prediction_type ×
    spacing ∪ {"quadratic"} with set_timesteps(10) and one step; pndm-prk with S = 1, 2, 3; ddim with
    S = 1001 > T; the cosine schedule with Karras sigmas (S = 5, 10, 20, all steps); every sampler with
    num_train_timesteps = 10 and S = 20 (all steps); every sampler with trailing spacing and S = 61 (numpy's
    arange gives 62 values, the last -1; all steps).  What diffusers raised (or that it accepted) is in
    "probes"; the refused ones are also in "refusals".

Timestep counts: len(scheduler.timesteps) (= UNet evaluations) is checked against S for ddim, dpmpp, unipc,
euler(-a); S + 1 for pndm (the second timestep is evaluated twice by the PLMS warm-up); S + 9 for pndm-prk
(12 Runge-Kutta evaluations on the last 4 timesteps + S - 3 PLMS steps; S < 4 is refused by set_timesteps).
None of the step counts used here is a trailing count with an extra timestep (the first such count for
T = 1000 is 61, then 103, 121, ...; see the probes).

Numerical conditioning (fp64_gap).  Every small run is also run in float64 and fp64_gap = max|x0_fp32 −
x0_fp64| is recorded; the script refuses to write a run with fp64_gap > GAP_LIMIT = 1e-4.  The float64 run is
float64 throughout: a float64 copy of the UNet, float64 x, float64 copies of the scheduler's float32 tables
(betas, alphas_cumprod, final_alpha_cumprod, sigmas, ...; their values are the float32 ones diffusers made),
and for DPMSolverMultistep, Euler and EulerAncestral a step() whose `sample = sample.to(torch.float32)` (diffusers
"upcasts" to float32 there, which would silently make a float64 run float32) is replaced by a cast to the model
output's dtype.  That step is compiled from the class's own source (fp64_step) with randn_tensor drawing
float32 (the same numbers) and converting them to float64.  Every run also repeats the float32 loop with this
patched step and asserts the trajectory is bit-identical to diffusers' own.  The timesteps, their embedding
(computed in float32 by diffusers even for a float64 UNet) and the noise are the same in both runs.

Measured with S = 10, seed 0, every sampler × spacing × prediction × beta schedule on both models (the gap
limit is absolute; random-weight UNets are not denoisers, so "epsilon" outputs make x0 huge):

    epsilon, squaredcos_cap_v2, trailing/linspace (t = 999, ᾱ = 2.4e-9): 1e-2 – 4e-2 (|x0| 7e4 – 1e5) for every
        sampler (DDIM with clip_sample on single-level-attn: 3e-5).  Avoided.
    epsilon, linear, trailing/linspace (t = 999, ᾱ = 4e-5, |x0| up to 800): 4e-5 – 4.1e-4.  Avoided; epsilon with
        trailing/linspace uses scaled_linear (or trained betas), where the sweep gave 3e-6 – 1.3e-4 (the 1.3e-4:
        DDIM trailing on single-level-attn; the committed rows are at most 5.3e-5).
    epsilon + Karras sigmas, linear: dpmpp-2m / unipc 1.7e-4 – 4.4e-4 (their Karras sigmas always start at σ_999
        whatever the spacing), euler 3e-5 – 1.7e-4 (σ_max follows the spacing).  Only euler+karras leading keeps it.
        With trained betas (σ_max = 60) the sweep gave 1.5e-5 – 1.1e-4; the unipc+karras trained row measured
        6.3e-5 with epsilon and uses v_prediction instead.
    epsilon, linear, leading: 3e-5 – 1.5e-4 at S = 10 (t = 900).  Kept in five rows (S = 3 or 5, and
        euler+karras at S = 10: at most 3.2e-5); two rows that measured 1.1e-4 (dpmpp-2m-sde, two-level-midscale,
        S = 10) and 6.5e-5 (unipc, single-level-attn, S = 10) were moved to squaredcos_cap_v2 and to S = 5.
    v_prediction / sample, squaredcos_cap_v2, trailing/linspace for euler, euler-a, pndm, pndm-prk:
        3.7e-5 – 1.4e-3 (their state is kept at σ_999 = 2.0e4 scale, or multiplied by √(ᾱ_prev/ᾱ_999)).  Avoided;
        the cosine schedule appears with leading spacing there (and with euler+karras, 2e-6).
    Everything else (v_prediction / sample): 4e-7 – 1e-5.
    Karras sigmas with squaredcos_cap_v2 on dpmpp-2m / unipc do not run at all: see the probes.

The committed runs' worst fp64_gap is in the manifest ("worst_fp64_gap", 5.3e-5).  The checkpoint runs have
fp64_gap null (a float64 pass would double the run time); measured once the same way at S = 10, seed 42:
3.6e-6 – 1.3e-4 (the largest: pndm on ddpm-emoji-32, |x0| up to 3.5; ddim 3.6e-6 / 5.1e-6), so a test of the
checkpoint runs needs a tolerance of a few 1e-4.

Written (float32 little-endian C-order .npy):

    <model>_seed<seed>_xT.npy              x_T = torch.randn(shape, generator=seed), before init_noise_sigma
    <run>_x0.npy                           the final x
    <run>_trajectory.npy                   stochastic small runs: x after every step, [steps, N, C, H, W]
    samplers.json                          versions; per sampler class/kwargs; per checkpoint sha256 and JSON
                                           config; "runs" (see README); "probes"; "refusals"; trained_betas

Deterministic: one torch thread, fixed seeds, sorted JSON keys; running the script again gives byte-identical
files.  It deletes Tests/Fixtures/samplers/ first.  About 3–4 minutes on one CPU thread.

Usage:  python3 tools/reference/make_scheduler_fixtures.py [--shared ../shared/models] [--skip-checkpoints]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import inspect
import json
import shutil
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import torch

import diffusers
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, PNDMScheduler, UNet2DModel, UniPCMultistepScheduler)
from diffusers.utils.torch_utils import randn_tensor

REPO_ROOT = Path(__file__).resolve().parents[2]
UNET_DIR = REPO_ROOT / "Tests" / "Fixtures" / "unet"
OUT_DIR = REPO_ROOT / "Tests" / "Fixtures" / "samplers"
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "models"

CHECKPOINTS = ["ddpm-fashion-32", "ddpm-emoji-32"]
SMALL = ["single-level-attn", "two-level-midscale"]
SHORT_MODEL = {"single-level-attn": "sla", "two-level-midscale": "tlm"}

# ------------------------------------------------------------------------------------------- samplers

DPM_KW = {"algorithm_type": "dpmsolver++", "solver_order": 2, "solver_type": "midpoint", "lower_order_final": True}
SAMPLERS = {
    # name: (class, kwargs for from_config, extra step() kwargs)
    "ddim": (DDIMScheduler, {}, {"eta": 0.0}),
    "dpmpp-2m": (DPMSolverMultistepScheduler, dict(DPM_KW), {}),
    "dpmpp-2m-sde": (DPMSolverMultistepScheduler, dict(DPM_KW, algorithm_type="sde-dpmsolver++"), {}),
    "unipc": (UniPCMultistepScheduler, {}, {}),
    "pndm": (PNDMScheduler, {"skip_prk_steps": True}, {}),
    "pndm-prk": (PNDMScheduler, {"skip_prk_steps": False}, {}),
    "euler": (EulerDiscreteScheduler, {}, {}),
    "euler-a": (EulerAncestralDiscreteScheduler, {}, {}),
}
KARRAS = ["dpmpp-2m", "unipc", "euler"]       # samplers run with use_karras_sigmas=True as well
STOCHASTIC = ["dpmpp-2m-sde", "euler-a"]      # draw noise in step(): the small runs also save the trajectory
SPACINGS = ["leading", "trailing", "linspace"]
PREDICTIONS = ["epsilon", "v_prediction", "sample"]
REFUSED_PREDICTION = {"pndm": "sample", "pndm-prk": "sample", "euler-a": "sample"}  # checked in probe_refusals
SHORT_PRED = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}
SHORT_BETA = {"linear": "lin", "scaled_linear": "scl", "squaredcos_cap_v2": "cos", "trained": "trained"}
BETA_RANGES = {"linear": (0.0001, 0.02), "scaled_linear": (0.00085, 0.012), "squaredcos_cap_v2": (0.0001, 0.02)}

# A made-up trained_betas schedule (T = 250, β from 4e-4 to 0.08 along a power 1.5 curve, ᾱ_249 = 2.8e-4),
# stored as float32-representable doubles so that reading the list as double or float gives the same betas.
TRAINED_T = 250
TRAINED_BETAS = [float(np.float32(0.0004 + 0.0796 * (i / (TRAINED_T - 1)) ** 1.5)) for i in range(TRAINED_T)]


# The small runs. model: sla = single-level-attn, tlm = two-level-midscale; sampler[+karras]; pred: eps / v / x0
# (= sample); beta: lin / scl / cos (= squaredcos_cap_v2) / trained (TRAINED_BETAS, T = 250); steps_offset; S; seed.
# Measured fp64 gaps decided the beta column of the epsilon rows (see the module docstring).
SMALL_RUNS = """
# model sampler            spacing   pred beta   offset  S  seed
sla  ddim                 leading   eps  lin       0   3     0
sla  ddim                 leading   v    scl       1   7     0
sla  ddim                 leading   x0   cos       0  20  1234
sla  ddim                 trailing  eps  scl       1   5  1234
sla  ddim                 trailing  v    scl       0  13     0
sla  ddim                 trailing  x0   cos       1   4     0
sla  ddim                 linspace  eps  scl       0  10  1234
sla  ddim                 linspace  v    scl       1   3  1234
sla  ddim                 linspace  x0   cos       0   7     0
tlm  ddim                 leading   eps  cos       1  20    42
tlm  ddim                 leading   v    cos       0   5    42
tlm  ddim                 leading   x0   lin       1  13     7
tlm  ddim                 trailing  eps  scl       0   4     7
tlm  ddim                 trailing  v    cos       1  10    42
tlm  ddim                 trailing  x0   lin       0   3    42
tlm  ddim                 linspace  eps  scl       1   7     7
tlm  ddim                 linspace  v    cos       0  20     7
tlm  ddim                 linspace  x0   lin       1   5    42

sla  dpmpp-2m             leading   eps  cos       1  20     0
sla  dpmpp-2m             leading   v    cos       0   5     0
sla  dpmpp-2m             leading   x0   lin       1  13  1234
sla  dpmpp-2m             trailing  eps  scl       0   4  1234
sla  dpmpp-2m             trailing  v    cos       1  10     0
sla  dpmpp-2m             trailing  x0   lin       0   3     0
sla  dpmpp-2m             linspace  eps  scl       1   7  1234
sla  dpmpp-2m             linspace  v    cos       0  20  1234
sla  dpmpp-2m             linspace  x0   lin       1   5     0
tlm  dpmpp-2m             leading   eps  scl       0  13    42
tlm  dpmpp-2m             leading   v    lin       1   4    42
tlm  dpmpp-2m             leading   x0   scl       0  10     7
tlm  dpmpp-2m             trailing  eps  scl       1   3     7
tlm  dpmpp-2m             trailing  v    lin       0   7    42
tlm  dpmpp-2m             trailing  x0   scl       1  20    42
tlm  dpmpp-2m             linspace  eps  scl       0   5     7
tlm  dpmpp-2m             linspace  v    lin       1  13     7
tlm  dpmpp-2m             linspace  x0   scl       0   4    42

sla  dpmpp-2m-sde         leading   eps  scl       0  13     0
sla  dpmpp-2m-sde         leading   v    lin       1   4     0
sla  dpmpp-2m-sde         leading   x0   scl       0  10  1234
sla  dpmpp-2m-sde         trailing  eps  scl       1   3  1234
sla  dpmpp-2m-sde         trailing  v    lin       0   7     0
sla  dpmpp-2m-sde         trailing  x0   scl       1  20     0
sla  dpmpp-2m-sde         linspace  eps  scl       0   5  1234
sla  dpmpp-2m-sde         linspace  v    lin       1  13  1234
sla  dpmpp-2m-sde         linspace  x0   scl       0   4     0
tlm  dpmpp-2m-sde         leading   eps  cos       1  10    42
tlm  dpmpp-2m-sde         leading   v    scl       0   3    42
tlm  dpmpp-2m-sde         leading   x0   cos       1   7     7
tlm  dpmpp-2m-sde         trailing  eps  scl       0  20     7
tlm  dpmpp-2m-sde         trailing  v    scl       1   5    42
tlm  dpmpp-2m-sde         trailing  x0   cos       0  13    42
tlm  dpmpp-2m-sde         linspace  eps  scl       1   4     7
tlm  dpmpp-2m-sde         linspace  v    scl       0  10     7
tlm  dpmpp-2m-sde         linspace  x0   cos       1   3    42

sla  unipc                leading   eps  lin       1   5     0
sla  unipc                leading   v    scl       0   3     0
sla  unipc                leading   x0   cos       1   7  1234
sla  unipc                trailing  eps  scl       0  20  1234
sla  unipc                trailing  v    scl       1   5     0
sla  unipc                trailing  x0   cos       0  13     0
sla  unipc                linspace  eps  scl       1   4  1234
sla  unipc                linspace  v    scl       0  10  1234
sla  unipc                linspace  x0   cos       1   3     0
tlm  unipc                leading   eps  cos       0   7    42
tlm  unipc                leading   v    cos       1  20    42
tlm  unipc                leading   x0   lin       0   5     7
tlm  unipc                trailing  eps  scl       1  13     7
tlm  unipc                trailing  v    cos       0   4    42
tlm  unipc                trailing  x0   lin       1  10    42
tlm  unipc                linspace  eps  scl       0   3     7
tlm  unipc                linspace  v    cos       1   7     7
tlm  unipc                linspace  x0   lin       0  20    42

sla  pndm                 leading   eps  cos       0   7     0
sla  pndm                 leading   v    cos       1  20     0
sla  pndm                 trailing  eps  scl       0   5  1234
sla  pndm                 trailing  v    scl       1  13  1234
sla  pndm                 linspace  eps  scl       0   4     0
sla  pndm                 linspace  v    scl       1  10     0
tlm  pndm                 leading   eps  scl       1   3    42
tlm  pndm                 leading   v    lin       0   7    42
tlm  pndm                 trailing  eps  scl       1  20     7
tlm  pndm                 trailing  v    lin       0   5     7
tlm  pndm                 linspace  eps  scl       1  13    42
tlm  pndm                 linspace  v    lin       0   4    42

sla  pndm-prk             leading   eps  cos       1   4     0
sla  pndm-prk             leading   v    lin       0  10     0
sla  pndm-prk             trailing  eps  scl       1  13  1234
sla  pndm-prk             trailing  v    lin       0   5  1234
sla  pndm-prk             linspace  eps  scl       0   7     0
sla  pndm-prk             linspace  v    scl       1  20     0
tlm  pndm-prk             leading   eps  lin       0   5    42
tlm  pndm-prk             leading   v    cos       1  13    42
tlm  pndm-prk             trailing  eps  scl       0  10     7
tlm  pndm-prk             trailing  v    scl       1   4     7
tlm  pndm-prk             linspace  eps  scl       1  20    42
tlm  pndm-prk             linspace  v    lin       0   7    42

sla  euler                leading   eps  lin       0   3     0
sla  euler                leading   v    scl       1   7     0
sla  euler                leading   x0   cos       0  20  1234
sla  euler                trailing  eps  scl       1   5  1234
sla  euler                trailing  v    lin       0  13     0
sla  euler                trailing  x0   scl       1   4     0
sla  euler                linspace  eps  scl       0  10  1234
sla  euler                linspace  v    scl       1   3  1234
sla  euler                linspace  x0   lin       0   7     0
tlm  euler                leading   eps  cos       1  20    42
tlm  euler                leading   v    cos       0   5    42
tlm  euler                leading   x0   lin       1  13     7
tlm  euler                trailing  eps  scl       0   4     7
tlm  euler                trailing  v    trained   1  10    42
tlm  euler                trailing  x0   lin       0   3    42
tlm  euler                linspace  eps  scl       1   7     7
tlm  euler                linspace  v    lin       0  20     7
tlm  euler                linspace  x0   scl       1   5    42

sla  euler-a              leading   eps  cos       1  20     0
sla  euler-a              leading   v    cos       0   5     0
sla  euler-a              trailing  eps  scl       1  13  1234
sla  euler-a              trailing  v    lin       0   4  1234
sla  euler-a              linspace  eps  scl       1  10     0
sla  euler-a              linspace  v    lin       0   3     0
tlm  euler-a              leading   eps  scl       0   7    42
tlm  euler-a              leading   v    lin       1  20    42
tlm  euler-a              trailing  eps  scl       0   5     7
tlm  euler-a              trailing  v    scl       1  13     7
tlm  euler-a              linspace  eps  scl       0   4    42
tlm  euler-a              linspace  v    scl       1  10    42

sla  dpmpp-2m+karras      leading   eps  scl       1  10     0
sla  dpmpp-2m+karras      linspace  x0   lin       0   5  1234
tlm  dpmpp-2m+karras      trailing  v    lin       0  13    42
tlm  dpmpp-2m+karras      leading   x0   scl       1   4     7

sla  unipc+karras         trailing  v    trained   0   7     0
sla  unipc+karras         leading   v    lin       1  20  1234
tlm  unipc+karras         linspace  eps  scl       0  10     7
tlm  unipc+karras         leading   x0   lin       1   3    42

sla  euler+karras         leading   eps  lin       1  10     0
sla  euler+karras         trailing  v    cos       0  13  1234
tlm  euler+karras         linspace  x0   cos       0   5    42
tlm  euler+karras         trailing  eps  scl       1  20     7
"""


def sampler_kwargs(sampler: str, karras: bool) -> dict:
    kw = dict(SAMPLERS[sampler][1])
    if karras:
        assert sampler in KARRAS
        kw["use_karras_sigmas"] = True
    return kw


def step_kwargs(scheduler, sampler: str, generator: torch.Generator) -> dict:
    kw = dict(SAMPLERS[sampler][2])
    if "generator" in inspect.signature(scheduler.step).parameters:
        kw["generator"] = generator
    return kw


def expected_count(sampler: str, steps: int) -> int:
    """len(scheduler.timesteps) diffusers normally produces (= the number of UNet evaluations)."""
    if sampler == "pndm":
        return steps + 1      # PLMS: the second timestep is evaluated twice
    if sampler == "pndm-prk":
        return steps + 9      # 12 Runge-Kutta evaluations on the last 4 timesteps + S - 3 PLMS steps
    return steps


# ------------------------------------------------------------------------------- the reference loop


def build_scheduler(sampler: str, karras: bool, base_config: dict, overrides: dict):
    config = dict(base_config)
    config.update(overrides)
    cls = SAMPLERS[sampler][0]
    scheduler = cls.from_config(config, **sampler_kwargs(sampler, karras))
    for key, value in overrides.items():
        assert scheduler.config[key] == value, f"override {key} did not reach {cls.__name__}"
    return scheduler


_FP64_STEPS: dict = {}


def fp64_step(cls):
    """cls.step with the float32 casts that diffusers writes into DPMSolverMultistep / Euler / EulerAncestral
    step() removed, so that the fp64 run is float64 throughout (see the module docstring).

    The function is cls.step's own source with `sample = sample.to(torch.float32)` replaced by
    `sample = sample.to(model_output.dtype)`, compiled in a copy of the scheduler module's globals in which
    `randn_tensor` draws float32 (the same numbers as the fp32 run) and converts them to model_output's dtype."""
    if cls in _FP64_STEPS:
        return _FP64_STEPS[cls]
    module = sys.modules[cls.__module__]
    src = textwrap.dedent(inspect.getsource(cls.step))
    cast = "sample = sample.to(torch.float32)"
    count = src.count(cast)
    src = src.replace(cast, "sample = sample.to(model_output.dtype)")
    g = dict(module.__dict__)

    def randn_f32(shape, generator=None, device=None, dtype=None, layout=None):
        return randn_tensor(shape, generator=generator, device=device, dtype=torch.float32,
                            layout=layout).to(_FP64_TARGET[0])

    g["randn_tensor"] = randn_f32
    exec(compile(src, f"<fp64 {cls.__name__}.step>", "exec"), g)
    _FP64_STEPS[cls] = (g["step"], count)
    return _FP64_STEPS[cls]


_FP64_TARGET = [torch.float64]
TABLES = ["betas", "alphas", "alphas_cumprod", "final_alpha_cumprod", "sigmas", "alpha_t", "sigma_t", "lambda_t"]


def make_fp64(scheduler, target=torch.float64):
    """Float64 copies of the scheduler's float32 tables (made by diffusers in float32, so the values are the
    float32 ones) and the patched step(). With target=float32 only the step is replaced (used to check that
    the patched step reproduces diffusers' own bit for bit)."""
    if target == torch.float64:
        for name in TABLES:
            value = scheduler.__dict__.get(name)
            if isinstance(value, torch.Tensor) and value.dtype == torch.float32:
                setattr(scheduler, name, value.to(torch.float64))
    fn, _ = fp64_step(type(scheduler))
    scheduler.step = types.MethodType(fn, scheduler)


def run_loop(unet, sampler: str, karras: bool, base_config: dict, overrides: dict, steps: int, seed: int,
             shape: tuple, dtype=torch.float32, patched: bool = False):
    """The reference loop of the module docstring. Returns a dict with x_T, x0, the per-step trajectory,
    the timesteps given to the UNet, the sigmas and init_noise_sigma."""
    scheduler = build_scheduler(sampler, karras, base_config, overrides)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps.clone()
    sigmas = scheduler.sigmas.clone() if isinstance(getattr(scheduler, "sigmas", None), torch.Tensor) else None
    init_sigma = scheduler.init_noise_sigma
    if patched or dtype == torch.float64:
        _FP64_TARGET[0] = dtype
        make_fp64(scheduler, dtype)
    g = torch.Generator().manual_seed(seed)
    x_T = torch.randn(shape, generator=g)
    x = x_T.to(dtype) * scheduler.init_noise_sigma
    trajectory, unet_t = [], []
    with torch.no_grad():
        for t in scheduler.timesteps:
            unet_t.append(t)
            m = unet(scheduler.scale_model_input(x, t), t).sample
            assert m.dtype == dtype
            x = scheduler.step(m, t, x, **step_kwargs(scheduler, sampler, g)).prev_sample
            assert x.dtype == dtype, f"{sampler}: step returned {x.dtype}"
            trajectory.append(x.clone())
    assert torch.equal(torch.stack(unet_t), timesteps)
    if sampler in STOCHASTIC:
        # One torch.randn(shape) per step, from the generator that drew x_T (checked, not assumed).
        h = torch.Generator().manual_seed(seed)
        for _ in range(1 + len(timesteps)):
            torch.randn(shape, generator=h)
        assert torch.equal(torch.randn(16, generator=g), torch.randn(16, generator=h)), f"{sampler}: noise draws"
    return {"x_T": x_T, "x0": x, "trajectory": torch.stack(trajectory), "timesteps": timesteps, "sigmas": sigmas,
            "init_noise_sigma": float(init_sigma)}


# ------------------------------------------------------------------------------------------- output


def save_npy(path: Path, array) -> None:
    if isinstance(array, torch.Tensor):
        array = array.numpy()
    assert array.dtype == np.float32, array.dtype
    np.save(path, np.ascontiguousarray(array, dtype="<f4"))


def versions() -> dict:
    return {"torch": torch.__version__, "diffusers": diffusers.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0], "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}


EFFECTIVE_KEYS = ["num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "prediction_type",
                  "timestep_spacing", "steps_offset", "set_alpha_to_one", "clip_sample", "clip_sample_range",
                  "thresholding", "skip_prk_steps", "algorithm_type", "solver_order", "solver_type",
                  "lower_order_final", "euler_at_final", "final_sigmas_type", "lambda_min_clipped", "predict_x0",
                  "disable_corrector", "use_karras_sigmas", "interpolation_type", "timestep_type", "sigma_min",
                  "sigma_max", "rescale_betas_zero_snr"]


def effective_config(sampler: str, karras: bool, base_config: dict, overrides: dict) -> dict:
    """The scheduler fields that matter, as the scheduler ended up with them (JSON + overrides + class defaults).
    Only the class's own __init__ parameters: diffusers keeps the JSON's DDPM-only keys (clip_sample, ...) in
    .config of classes that ignore them."""
    s = build_scheduler(sampler, karras, base_config, overrides)
    params = inspect.signature(type(s).__init__).parameters
    out = {k: s.config[k] for k in EFFECTIVE_KEYS if k in s.config and k in params}
    out["trained_betas"] = s.config.get("trained_betas") is not None
    out["class"] = type(s).__name__
    if "lambda_min_clipped" in out and out["lambda_min_clipped"] == -float("inf"):
        out["lambda_min_clipped"] = "-inf"
    return out


def run_record(name, model, kind, sampler, karras, overrides, steps, seed, shape, result, xt_file) -> dict:
    ts = result["timesteps"]
    return {
        "name": name, "model": model, "kind": kind, "sampler": sampler, "karras": karras,
        "overrides": overrides, "steps": steps, "seed": seed, "shape": list(shape),
        "timesteps": [float(t) for t in ts], "timesteps_dtype": str(ts.dtype).replace("torch.", ""),
        "sigmas": None if result["sigmas"] is None else [float(s) for s in result["sigmas"]],
        "init_noise_sigma": result["init_noise_sigma"],
        "x_T": xt_file, "x0": f"{name}_x0.npy", "trajectory": None, "fp64_gap": None,
        "max_abs_x0": float(result["x0"].abs().max()),
    }


def parse_small_runs() -> list[dict]:
    models = {v: k for k, v in SHORT_MODEL.items()}
    preds = {v: k for k, v in SHORT_PRED.items()}
    betas = {v: k for k, v in SHORT_BETA.items()}
    rows = []
    for line in SMALL_RUNS.splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        m, s, spacing, pred, beta, offset, steps, seed = line.split()
        sampler, _, k = s.partition("+")
        rows.append({"model": models[m], "sampler": sampler, "karras": k == "karras", "spacing": spacing,
                     "prediction_type": preds[pred], "beta": betas[beta], "steps_offset": int(offset),
                     "steps": int(steps), "seed": int(seed)})
    return rows


def small_overrides(row: dict) -> dict:
    ov = {"prediction_type": row["prediction_type"], "timestep_spacing": row["spacing"],
          "steps_offset": row["steps_offset"]}
    if row["beta"] == "trained":
        # beta_schedule is written too: DPMSolverMultistep's karras path looks at it even with trained_betas.
        ov.update(trained_betas=TRAINED_BETAS, num_train_timesteps=TRAINED_T, beta_schedule="linear")
    else:
        start, end = BETA_RANGES[row["beta"]]
        ov.update(beta_schedule=row["beta"], beta_start=start, beta_end=end)
    return ov


def small_name(row: dict) -> str:
    k = "-karras" if row["karras"] else ""
    return (f"{SHORT_MODEL[row['model']]}_{row['sampler']}{k}_{row['spacing']}_{SHORT_PRED[row['prediction_type']]}"
            f"_{SHORT_BETA[row['beta']]}_off{row['steps_offset']}_S{row['steps']}")


GAP_LIMIT = 1e-4


def check_small_coverage(rows: list[dict]) -> None:
    names = [small_name(r) for r in rows]
    assert len(set(names)) == len(names), "duplicate small run names"
    for sampler in SAMPLERS:
        for spacing in SPACINGS:
            for pred in PREDICTIONS:
                if REFUSED_PREDICTION.get(sampler) == pred:
                    continue
                for model in SMALL:
                    assert any(r["sampler"] == sampler and not r["karras"] and r["spacing"] == spacing and
                               r["prediction_type"] == pred and r["model"] == model for r in rows), \
                        f"missing cell {sampler} {spacing} {pred} on {model}"
        mine = [r for r in rows if r["sampler"] == sampler and not r["karras"]]
        assert {r["beta"] for r in mine} >= set(BETA_RANGES), f"{sampler}: not every beta_schedule"
        assert {r["steps_offset"] for r in mine if r["spacing"] == "leading"} == {0, 1}, f"{sampler}: steps_offset"
    for sampler in KARRAS:
        mine = [r for r in rows if r["sampler"] == sampler and r["karras"]]
        assert len(mine) >= 2 and {r["model"] for r in mine} == set(SMALL), f"{sampler} karras runs"
    assert 1 <= sum(r["beta"] == "trained" for r in rows) <= 2
    assert {r["steps"] for r in rows} == {3, 4, 5, 7, 10, 13, 20}
    for r in rows:
        if r["prediction_type"] == "epsilon" and r["spacing"] != "leading" and not (r["sampler"] == "euler" and r["karras"]):
            assert r["beta"] in ("scaled_linear", "trained"), f"{small_name(r)}: ill-conditioned (see docstring)"


# ------------------------------------------------------------------------------------ checkpoints


CKPT_STEPS = [5, 10, 20]
CKPT_KARRAS_STEPS = 10
CKPT_SEED = 42
CKPT_BATCH = 4


def make_checkpoint_runs(shared: Path, manifest: dict) -> None:
    for ckpt in CHECKPOINTS:
        folder = shared / ckpt
        if not (folder / "config.json").exists():
            sys.exit(f"error: checkpoint {folder} not found (pass --shared /path/to/shared/models)")
        files = sorted(folder.glob("diffusion_pytorch_model*.safetensors"))
        sha = hashlib.sha256()
        for f in files:
            sha.update(f.read_bytes())
        unet = UNet2DModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
        DDPMScheduler.from_pretrained(folder)  # the folder's scheduler loads as a DDPMScheduler
        base = dict(DDPMScheduler.load_config(folder / "scheduler_config.json"))
        c, size = unet.config.in_channels, unet.config.sample_size
        shape = (CKPT_BATCH, c, size, size)
        x_T = torch.randn(shape, generator=torch.Generator().manual_seed(CKPT_SEED))
        xt_file = f"{ckpt}_seed{CKPT_SEED}_xT.npy"
        save_npy(OUT_DIR / xt_file, x_T)
        manifest["checkpoints"][ckpt] = {
            "checkpoint_sha256": sha.hexdigest(), "weights_files": [f.name for f in files],
            "scheduler_config": {k: v for k, v in base.items() if not k.startswith("_")}}
        jobs = [(s, False, S) for s in SAMPLERS for S in CKPT_STEPS] + [(s, True, CKPT_KARRAS_STEPS) for s in KARRAS]
        for sampler, karras, steps in jobs:
            result = run_loop(unet, sampler, karras, base, {}, steps, CKPT_SEED, shape)
            assert torch.equal(result["x_T"], x_T)
            assert len(result["timesteps"]) == expected_count(sampler, steps), (sampler, result["timesteps"])
            assert torch.isfinite(result["x0"]).all()
            name = f"{ckpt}_{sampler}{'-karras' if karras else ''}_S{steps}"
            save_npy(OUT_DIR / f"{name}_x0.npy", result["x0"])
            rec = run_record(name, ckpt, "checkpoint", sampler, karras, {}, steps, CKPT_SEED, shape, result, xt_file)
            rec["checkpoint_sha256"] = sha.hexdigest()
            rec["sampler_kwargs"] = sampler_kwargs(sampler, karras)
            rec["effective_config"] = effective_config(sampler, karras, base, {})
            manifest["runs"].append(rec)
            print(f"{name}: {len(result['timesteps'])} evaluations, max |x0| {rec['max_abs_x0']:.4g}", flush=True)


# ------------------------------------------------------------------------------------- small runs


def make_small_runs(manifest: dict) -> None:
    rows = parse_small_runs()
    check_small_coverage(rows)
    worst = 0.0
    for model in SMALL:
        folder = UNET_DIR / model
        unet = UNet2DModel.from_pretrained(folder, torch_dtype=torch.float32).eval()
        unet64 = copy.deepcopy(unet).double()
        base = dict(DDPMScheduler.load_config(folder / "scheduler_config.json"))
        c, size = unet.config.in_channels, unet.config.sample_size
        shape = (2, c, size, size)
        noise = {}
        for row in [r for r in rows if r["model"] == model]:
            seed = row["seed"]
            if seed not in noise:
                x_T = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
                noise[seed] = (x_T, f"{model}_seed{seed}_xT.npy")
                save_npy(OUT_DIR / noise[seed][1], x_T)
            sampler, karras, steps = row["sampler"], row["karras"], row["steps"]
            overrides = small_overrides(row)
            name = small_name(row)
            r32 = run_loop(unet, sampler, karras, base, overrides, steps, seed, shape)
            assert torch.equal(r32["x_T"], noise[seed][0])
            n = len(r32["timesteps"])
            assert n == expected_count(sampler, steps), f"{name}: {n} timesteps"
            assert torch.isfinite(r32["x0"]).all(), name
            # The fp64 machinery with float32 tensors must be diffusers itself, bit for bit.
            check = run_loop(unet, sampler, karras, base, overrides, steps, seed, shape, patched=True)
            assert torch.equal(check["trajectory"], r32["trajectory"]), f"{name}: patched step differs"
            r64 = run_loop(unet64, sampler, karras, base, overrides, steps, seed, shape, dtype=torch.float64)
            assert torch.equal(r64["timesteps"], r32["timesteps"])
            gap = float((r32["x0"].double() - r64["x0"]).abs().max())
            if gap > GAP_LIMIT:
                sys.exit(f"error: {name}: fp64_gap {gap:.3g} > {GAP_LIMIT:g}: replace this row of SMALL_RUNS")
            worst = max(worst, gap)
            save_npy(OUT_DIR / f"{name}_x0.npy", r32["x0"])
            rec = run_record(name, model, "small", sampler, karras, overrides, steps, seed, shape, r32, noise[seed][1])
            rec["fp64_gap"] = gap
            rec["sampler_kwargs"] = sampler_kwargs(sampler, karras)
            rec["effective_config"] = effective_config(sampler, karras, base, overrides)
            if sampler in STOCHASTIC:
                rec["trajectory"] = f"{name}_trajectory.npy"
                save_npy(OUT_DIR / rec["trajectory"], r32["trajectory"])
            manifest["runs"].append(rec)
            print(f"{name}: {n} evaluations, max |x0| {rec['max_abs_x0']:.3g}, fp64_gap {gap:.2g}", flush=True)
    manifest["worst_fp64_gap"] = worst
    print(f"worst fp64_gap {worst:.3g}")


# --------------------------------------------------------------------------------------- refusals


def probe(sampler: str, karras: bool, base: dict, overrides: dict, steps: int, full_loop: bool) -> dict:
    """set_timesteps(steps) and one step (or all of them with full_loop) with a zero model output on a
    [1,1,4,4] sample; what diffusers did."""
    out = {"sampler": sampler, "karras": karras, "overrides": overrides, "steps": steps,
           "full_loop": full_loop, "error_type": None, "message": None, "stage": None, "timesteps": None}
    stage = "from_config"
    try:
        s = build_scheduler(sampler, karras, base, overrides)
        stage = "set_timesteps"
        s.set_timesteps(steps)
        out["timesteps"] = [float(t) for t in s.timesteps]
        g = torch.Generator().manual_seed(0)
        x = torch.randn((1, 1, 4, 4), generator=g) * s.init_noise_sigma
        for i, t in enumerate(s.timesteps if full_loop else s.timesteps[:1]):
            stage = f"step {i}"
            s.scale_model_input(x, t)
            x = s.step(torch.zeros_like(x), t, x, **step_kwargs(s, sampler, g)).prev_sample
        out["stage"] = "accepted"
        out["finite"] = bool(torch.isfinite(x).all())
    except Exception as e:  # noqa: BLE001 - recording whatever diffusers raises is the point
        out.update(stage=stage, error_type=type(e).__name__, message=str(e))
    return out


def make_refusals(manifest: dict) -> None:
    base = dict(DDPMScheduler.load_config(UNET_DIR / SMALL[0] / "scheduler_config.json"))
    lin = {"beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02}
    probes = []
    for sampler in SAMPLERS:
        for karras in [False, True] if sampler in KARRAS else [False]:
            for pred in PREDICTIONS:
                for spacing in SPACINGS + ["quadratic"]:
                    ov = dict(lin, prediction_type=pred, timestep_spacing=spacing)
                    probes.append(probe(sampler, karras, base, ov, 10, False))
    # Fewer than 4 steps with the Runge-Kutta warm-up; more steps than training timesteps (DDIM checks).
    for steps in [1, 2, 3]:
        probes.append(probe("pndm-prk", False, base, dict(lin), steps, False))
    probes.append(probe("ddim", False, base, dict(lin), 1001, False))
    # Configs whose first timestep is duplicated (index_for_timestep then starts at index 1): the cosine
    # schedule with Karras sigmas (DPMSolver truncates the fractional timesteps instead of rounding them,
    # UniPC rounds, both give [998|999, 998|999, ...]), and T = 10 with 20 steps.
    cos = {"beta_schedule": "squaredcos_cap_v2"}
    for sampler in ["dpmpp-2m", "unipc"]:
        for steps in CKPT_STEPS:
            probes.append(probe(sampler, True, base, dict(cos), steps, True))
    for sampler in SAMPLERS:
        for spacing in SPACINGS:
            ov = dict(lin, num_train_timesteps=10, timestep_spacing=spacing)
            probes.append(probe(sampler, False, base, ov, 20, True))
    # Trailing spacing with a step count for which numpy's arange gives S+1 values (the last one -1).
    for sampler in SAMPLERS:
        probes.append(probe(sampler, False, base, dict(lin, timestep_spacing="trailing"), 61, True))
    manifest["probes"] = probes
    manifest["refusals"] = [{k: p[k] for k in ["sampler", "overrides", "karras", "steps", "stage", "error_type",
                                                 "message", "full_loop"]}
                            for p in probes if p["error_type"] is not None]
    for p in probes:
        if p["error_type"] is not None:
            print(f"refused: {p['sampler']}{' karras' if p['karras'] else ''} {p['overrides']} S={p['steps']} "
                  f"at {p['stage']}: {p['error_type']}: {p['message'][:120]}")


# ------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED,
                    help="folder holding ddpm-fashion-32/ and ddpm-emoji-32/ (default ../shared/models)")
    ap.add_argument("--skip-checkpoints", action="store_true",
                    help="leave out the checkpoint runs (quick check; do not commit the result)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    diffusers.utils.logging.set_verbosity_error()
    if OUT_DIR.exists():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)
    manifest = {
        "versions": versions(),
        "how": "Cls.from_config(<folder>/scheduler_config.json updated with overrides, **sampler_kwargs); "
               "set_timesteps(steps); g = torch.Generator().manual_seed(seed); x = torch.randn(shape, generator=g) "
               "* init_noise_sigma; for t in timesteps: x = step(unet(scale_model_input(x, t), t).sample, t, x, "
               "[generator=g if step() takes one], [eta=0 for ddim]).prev_sample; x0 = x",
        "samplers": {name: {"class": cls.__name__, "kwargs": kw, "step_kwargs": skw,
                            "step_takes_generator": "generator" in inspect.signature(cls.step).parameters,
                            "stochastic": name in STOCHASTIC, "karras_variant": name in KARRAS}
                     for name, (cls, kw, skw) in SAMPLERS.items()},
        "fp64_patched_casts": {cls.__name__: fp64_step(cls)[1] for cls, _, _ in SAMPLERS.values()},
        "gap_limit": GAP_LIMIT,
        "trained_betas": TRAINED_BETAS, "checkpoints": {}, "runs": [], "refusals": [], "probes": [],
    }
    if not args.skip_checkpoints:
        make_checkpoint_runs(args.shared, manifest)
    make_small_runs(manifest)
    make_refusals(manifest)
    (OUT_DIR / "samplers.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    total = sum(f.stat().st_size for f in OUT_DIR.iterdir())
    print(f"{len(manifest['runs'])} runs, {len(manifest['refusals'])} refusals, {total:,} bytes in {OUT_DIR}")


if __name__ == "__main__":
    main()
