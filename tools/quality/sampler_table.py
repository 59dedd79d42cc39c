#!/usr/bin/env python3
"""Drive the edge-ddim binary to measure each sampler's quality per step count S, cache the results, and
write the paper-style tables and plots.

Two tables, for the default model (models/ddpm-fashion-32.edm) unless --model says otherwise:

  fd   Sample quality: FD to the Fashion-MNIST test set (tools/quality/fd.py) of N images (default 1000)
       from `edge-ddim sample --sampler NAME --steps S --count N --seed SEED --batch 4 --quiet --npy …`.
       Configurations: ddim with η = 0, 0.5, 1; dpmpp-2m; dpmpp-2m-sde; unipc; pndm; euler; euler-a.
  ode  ODE accuracy of the deterministic samplers (ddim η = 0, dpmpp-2m, unipc, pndm, euler): RMSE of x₀,
       pixels in [0, 1] (clamp(x/2 + 0.5, 0, 1), no 8-bit rounding), against the converged
       probability-flow ODE solution from the same x_T: `edge-ddim sample --sampler ddim --steps 1000
       --eta 0 --no-clip-sample` on the same seed, M images (default 100). ddim runs here use
       --no-clip-sample too (clipping x̂₀ changes the ODE); the other samplers do not clip.

Every result is one record in a JSON cache (default docs/quality/sampler-quality.json) keyed by table,
sampler, η, S, N or M, seed, schedule, model sha256, edge-ddim version (`edge-ddim --version`, else the git
commit of the last change to Sources/ and Package.swift, with a hash of uncommitted changes there) and the
classifier's sha256 (fd) or the reference's step count (ode). A sweep that is interrupted resumes: only
missing records are computed (--force recomputes them). The tables (stdout and
docs/quality/sampler-quality.md) and the plots (docs/sampler-fd.png, docs/sampler-rmse.png) are written from
the cache after every run and at the end; --report-only computes nothing.

    swift build -c release
    python3 tools/quality/sampler_table.py                       # everything (hours: see README.md)
    python3 tools/quality/sampler_table.py --dry-run             # what is missing, and the estimated time
    python3 tools/quality/sampler_table.py --samplers ddim-eta0,dpmpp-2m --steps 10,20 --tables fd
    python3 tools/quality/sampler_table.py --report-only
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import fd as fdlib  # noqa: E402  (tools/quality/fd.py)

DEFAULT_BINARY = REPO_ROOT / ".build" / "release" / "edge-ddim"
DEFAULT_MODEL = REPO_ROOT / "models" / "ddpm-fashion-32.edm"
DEFAULT_CACHE = REPO_ROOT / "docs" / "quality" / "sampler-quality.json"
DEFAULT_MARKDOWN = REPO_ROOT / "docs" / "quality" / "sampler-quality.md"
DEFAULT_FD_PLOT = REPO_ROOT / "docs" / "sampler-fd.png"
DEFAULT_RMSE_PLOT = REPO_ROOT / "docs" / "sampler-rmse.png"
DEFAULT_WORK = REPO_ROOT / ".build" / "quality"
DEFAULT_STEPS = [4, 5, 8, 10, 15, 20, 50]
CACHE_FORMAT = "edge-ddim sampler quality cache, version 1"
DEFAULT_SECONDS_PER_IMAGE_STEP = 0.008     # measured on the 2-core development machine


@dataclass(frozen=True)
class Config:
    name: str            # the name --samplers takes
    sampler: str         # edge-ddim --sampler
    eta: float | None    # --eta (ddim only)
    label: str           # row label in the tables and plots
    deterministic: bool


CONFIGS = [
    Config("ddim-eta0", "ddim", 0.0, "ddim η=0", True),
    Config("ddim-eta0.5", "ddim", 0.5, "ddim η=0.5", False),
    Config("ddim-eta1", "ddim", 1.0, "ddim η=1", False),
    Config("dpmpp-2m", "dpmpp-2m", None, "dpmpp-2m", True),
    Config("dpmpp-2m-sde", "dpmpp-2m-sde", None, "dpmpp-2m-sde", False),
    Config("unipc", "unipc", None, "unipc", True),
    Config("pndm", "pndm", None, "pndm", True),
    Config("euler", "euler", None, "euler", True),
    Config("euler-a", "euler-a", None, "euler-a", False),
]
BY_NAME = {c.name: c for c in CONFIGS}
# Work order: the most informative rows first.
CONFIG_PRIORITY = ["ddim-eta0", "dpmpp-2m", "unipc", "dpmpp-2m-sde", "euler", "euler-a", "pndm", "ddim-eta1",
                   "ddim-eta0.5"]
HEAD_CONFIGS = {"ddim-eta0", "dpmpp-2m"}
STEPS_PRIORITY = [10, 20, 5, 8, 4, 15, 50]


def parse_samplers(text: str) -> list[Config]:
    if text.strip() == "all":
        return list(CONFIGS)
    names: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part == "ddim":
            names += ["ddim-eta0", "ddim-eta0.5", "ddim-eta1"]
        elif part in BY_NAME:
            names.append(part)
        else:
            raise argparse.ArgumentTypeError(
                f"unknown sampler {part!r}; choose from ddim (all three η), {', '.join(BY_NAME)}")
    return [c for c in CONFIGS if c.name in names]


def parse_steps(text: str) -> list[int]:
    try:
        steps = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--steps takes comma-separated integers, not {text!r}")
    if not steps or steps[0] < 1:
        raise argparse.ArgumentTypeError("--steps needs positive step counts")
    return steps


# ----------------------------------------------------------------------------------------------------------
# Identity of the model and of the binary
# ----------------------------------------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.decode("utf-8", "replace") if out.returncode == 0 else None


SOURCE_PATHS = ["Sources", "Package.swift"]


def sources_digest(repo: Path) -> str:
    """sha256 over the paths and contents of Sources/ and Package.swift (tracked and untracked files that
    git does not ignore), so the key follows what the binary is built from, committed or not."""
    listing = _git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *SOURCE_PATHS)
    if listing is not None:
        paths = sorted({p for p in listing.split("\0") if p})
    else:
        paths = sorted(str(p.relative_to(repo)) for d in SOURCE_PATHS for p in
                       ([repo / d] if (repo / d).is_file() else (repo / d).rglob("*")) if p.is_file())
    h = hashlib.sha256()
    for rel in paths:
        p = repo / rel
        if p.is_file():
            h.update(rel.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def binary_version(binary: Path) -> tuple[str, str, str | None]:
    """(version key, a description for people, a warning or None).

    The key is `edge-ddim --version` if the binary has that; else, for a binary inside a git checkout,
    "sources:" + sources_digest (Sources/ and Package.swift only, so commits of docs or tools, or committing
    the very tree that was built, keep the cache valid), with the git commit in the description; else the
    binary's own sha256."""
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, timeout=60)
        text = out.stdout.decode("utf-8", "replace").strip()
        if out.returncode == 0 and text:
            return text.splitlines()[0], text.splitlines()[0], None
    except (OSError, subprocess.TimeoutExpired):
        pass
    top = _git(binary.resolve().parent, "rev-parse", "--show-toplevel")
    if top:
        repo = Path(top.strip())
        key = f"sources:{sources_digest(repo)[:16]}"
        head = (_git(repo, "rev-parse", "--short=12", "HEAD") or "?").strip()
        dirty = (_git(repo, "status", "--porcelain", "--untracked-files=all", "--", *SOURCE_PATHS) or "").strip()
        desc = f"git {head}" + (" with uncommitted changes in Sources/" if dirty else "") + f" ({key})"
        warning = None
        newest = max((p.stat().st_mtime for d in SOURCE_PATHS for p in
                      ([repo / d] if (repo / d).is_file() else (repo / d).rglob("*")) if p.is_file()), default=0)
        if newest > binary.stat().st_mtime:
            warning = (f"{binary} is older than the newest file in Sources/: it may not be what {key} names; "
                       f"run `swift build -c release` first")
        return key, desc, warning
    key = f"binary-sha256:{sha256_file(binary)[:16]}"
    return key, key, None


# ----------------------------------------------------------------------------------------------------------
# Cache
# ----------------------------------------------------------------------------------------------------------

KEY_FIELDS = ("table", "sampler", "eta", "steps", "count", "seed", "schedule", "model_sha256",
              "edge_ddim_version", "classifier_sha256", "ode_steps")


def record_key(r: dict) -> tuple:
    return tuple(json.dumps(r.get(k)) for k in KEY_FIELDS)


class Cache:
    def __init__(self, path: Path):
        self.path = path
        self.records: dict[tuple, dict] = {}
        if path.exists():
            data = json.loads(path.read_text())
            for r in data.get("records", []):
                self.records[record_key(r)] = r

    def get(self, key: dict) -> dict | None:
        return self.records.get(record_key(key))

    def put(self, record: dict) -> None:
        self.records[record_key(record)] = record
        self.save()

    def save(self) -> None:
        order = {c.name: i for i, c in enumerate(CONFIGS)}
        def sort_key(r):
            return (r["table"], r["model_sha256"], r["edge_ddim_version"], r.get("count", 0), r.get("seed", 0),
                    str(r.get("schedule")), order.get(config_name(r["sampler"], r.get("eta")), 99), r["steps"])
        rows = sorted(self.records.values(), key=sort_key)
        body = ",\n".join(" " + json.dumps(r, sort_keys=True, ensure_ascii=False) for r in rows)
        text = "{\"format\": " + json.dumps(CACHE_FORMAT) + ",\n\"records\": [\n" + body + "\n]}\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)


def config_name(sampler: str, eta) -> str:
    if sampler == "ddim":
        return f"ddim-eta{eta:g}" if eta is not None else "ddim-eta0"
    return sampler


# ----------------------------------------------------------------------------------------------------------
# Jobs
# ----------------------------------------------------------------------------------------------------------

@dataclass
class Job:
    table: str                  # "fd", "ode" or "ode-reference"
    config: Config
    steps: int
    count: int
    key: dict
    rank: tuple = field(default=())

    @property
    def image_steps(self) -> int:
        return self.steps * self.count

    def describe(self) -> str:
        if self.table == "ode-reference":
            return f"ODE reference (ddim η=0, {self.steps} steps, no clipping) M={self.count}"
        return f"{self.table} {self.config.label} S={self.steps} {'N' if self.table == 'fd' else 'M'}={self.count}"


@dataclass
class Context:
    args: argparse.Namespace
    model_sha256: str
    version: str
    classifier_sha256: str
    version_desc: str = ""

    def base_key(self, table: str, config: Config, steps: int, count: int) -> dict:
        key = {"table": table, "sampler": config.sampler, "eta": config.eta, "steps": steps, "count": count,
               "seed": self.args.seed, "schedule": self.args.schedule, "model_sha256": self.model_sha256,
               "edge_ddim_version": self.version, "classifier_sha256": None, "ode_steps": None}
        if table == "fd":
            key["classifier_sha256"] = self.classifier_sha256
        elif table == "ode":
            key["ode_steps"] = self.args.ode_steps
        elif table == "ode-reference":
            key["schedule"] = None    # every spacing gives all T timesteps at S = T
        return key

    def reference_key(self) -> dict:
        return self.base_key("ode-reference", BY_NAME["ddim-eta0"], self.args.ode_steps, self.args.ode_count)

    def reference_ok(self, cache: Cache) -> bool:
        """The reference run is cached and its x₀ file is there, unchanged."""
        rec, path = cache.get(self.reference_key()), self.reference_path()
        return rec is not None and path.exists() and sha256_file(path) == rec.get("reference_sha256")

    def reference_path(self) -> Path:
        h = hashlib.sha256(json.dumps(self.reference_key(), sort_keys=True).encode()).hexdigest()[:16]
        return self.args.work_dir / f"ode-reference-{h}.npy"


def plan(ctx: Context, cache: Cache) -> list[Job]:
    args = ctx.args
    steps_rank = {s: i for i, s in enumerate(sorted(args.steps, key=lambda s: (
        STEPS_PRIORITY.index(s) if s in STEPS_PRIORITY else len(STEPS_PRIORITY), s)))}
    head_steps = {s for s, i in steps_rank.items() if i < 2}
    crank = {n: i for i, n in enumerate(CONFIG_PRIORITY)}
    jobs: list[Job] = []
    configs = args.samplers
    if "fd" in args.tables:
        for c in configs:
            for s in args.steps:
                tier = (0 if c.name in HEAD_CONFIGS else 2) if s in head_steps else 4
                jobs.append(Job("fd", c, s, args.count, ctx.base_key("fd", c, s, args.count),
                                (tier, steps_rank[s], crank[c.name])))
    jobs = [j for j in jobs if args.force or cache.get(j.key) is None]
    ode_configs = [c for c in configs if c.deterministic]
    if "ode" in args.tables and ode_configs:
        ode_jobs = []
        for c in ode_configs:
            for s in args.steps:
                tier = 1 if s in head_steps else 3
                ode_jobs.append(Job("ode", c, s, args.ode_count, ctx.base_key("ode", c, s, args.ode_count),
                                    (tier, steps_rank[s], crank[c.name])))
        ode_jobs = [j for j in ode_jobs if args.force or cache.get(j.key) is None]
        if ode_jobs and (args.force or not ctx.reference_ok(cache)):
            ref = ctx.reference_key()
            ode_jobs.append(Job("ode-reference", BY_NAME["ddim-eta0"], args.ode_steps, args.ode_count, ref,
                                (1, -1, -1)))
        jobs += ode_jobs
    jobs.sort(key=lambda j: j.rank)
    return jobs


def sample_command(ctx: Context, config: Config, steps: int, count: int, npy: Path, png: Path,
                   ode: bool = False, reference: bool = False) -> list[str]:
    """The edge-ddim command of one run. The ODE reference is ddim η=0 with no clipping and no --schedule
    (at S = T every spacing gives all timesteps)."""
    args = ctx.args
    cmd = [str(args.edge_ddim), "sample", "--model", str(args.model)]
    if config.sampler != "ddim":                        # today's binary knows only ddim and has no --sampler
        cmd += ["--sampler", config.sampler]
    cmd += ["--steps", str(steps), "--count", str(count), "--seed", str(args.seed), "--batch", "4", "--quiet",
            "--npy", str(npy), "--output", str(png)]
    if config.sampler == "ddim":
        cmd += ["--eta", "0" if reference else f"{config.eta:g}"]
        if ode or reference:
            cmd += ["--no-clip-sample"]
    if args.schedule and not reference:
        cmd += ["--schedule", args.schedule]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    return cmd


class RunError(RuntimeError):
    pass


def run_sample(cmd: list[str]) -> float:
    """Runs edge-ddim; its output only matters if it fails. The child is ended if we are interrupted."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate()
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    seconds = time.time() - t0
    if proc.returncode != 0:
        text = (err.decode("utf-8", "replace") + out.decode("utf-8", "replace")).strip()
        tail = "\n    ".join(text.splitlines()[-6:])
        raise RunError(f"edge-ddim exited with {proc.returncode}: {' '.join(cmd)}\n    {tail}")
    return seconds


def unit_rmse(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(RMSE over all pixels, the largest per-image RMSE), pixels clamp(x/2 + 0.5, 0, 1) in float64."""
    ua = fdlib.samples_to_unit(a).astype(np.float64)
    ub = fdlib.samples_to_unit(b).astype(np.float64)
    if ua.shape != ub.shape:
        raise RunError(f"sample shape {ua.shape} differs from the reference's {ub.shape}")
    d2 = (ua - ub) ** 2
    return float(np.sqrt(d2.mean())), float(np.sqrt(d2.reshape(d2.shape[0], -1).mean(axis=1)).max())


def shown_command(cmd: list[str], npy: Path, png: Path) -> list[str]:
    """The command as recorded: no binary, scratch paths as x0.npy / grid.png, repository paths relative."""
    out = []
    for a in cmd[1:]:
        if a == str(npy):
            a = "x0.npy"
        elif a == str(png):
            a = "grid.png"
        elif a.startswith("/"):
            a = _rel(Path(a))
        out.append(a)
    return out


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def execute(job: Job, ctx: Context, cache: Cache, binary_sha: str, tmp: Path) -> str:
    """Runs one job, stores its record, returns a one-line result."""
    args = ctx.args
    npy, png = tmp / "x0.npy", tmp / "grid.png"
    for p in (npy, png):
        p.unlink(missing_ok=True)
    info = {"edge_ddim": ctx.version_desc, "model": _rel(args.model), "binary_sha256": binary_sha}
    if job.table == "ode-reference":
        cmd = sample_command(ctx, job.config, job.steps, job.count, npy, png, reference=True)
        seconds = run_sample(cmd)
        info["timestamp"] = now()                      # when the run finished
        x = np.load(npy)
        dest = ctx.reference_path()
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(npy), dest)
        cache.put({**job.key, **info, "wall_seconds": round(seconds, 2), "command": shown_command(cmd, npy, png),
                   "reference_npy": _rel(dest), "reference_sha256": sha256_file(dest)})
        return f"{x.shape[0]} images in {seconds:.0f} s"
    ode = job.table == "ode"
    cmd = sample_command(ctx, job.config, job.steps, job.count, npy, png, ode=ode)
    seconds = run_sample(cmd)
    info["timestamp"] = now()
    x = fdlib.load_samples(npy)
    if x.shape[0] != job.count:
        raise RunError(f"{npy}: {x.shape[0]} images, expected {job.count}")
    nonfinite = int((~np.isfinite(x)).sum())
    record = {**job.key, **info, "wall_seconds": round(seconds, 2), "command": shown_command(cmd, npy, png),
              "nonfinite": nonfinite}
    if ode:
        ref = np.load(ctx.reference_path())
        rmse, worst = unit_rmse(x, ref[:job.count])
        record.update(rmse=round(rmse, 6), rmse_worst_image=round(worst, 6))
        result = f"RMSE {rmse:.5f}"
    else:
        value = fdlib.fd_of_samples(x)
        record.update(fd=round(value, 4))
        result = f"FD {value:.3f}"
    cache.put(record)
    return result + f" in {seconds:.0f} s" + (f" ({nonfinite} non-finite values)" if nonfinite else "")


def fmt_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def prior_rate(cache: Cache, ctx: Context) -> float:
    """Seconds per image-step from cached records of this model and binary, else the default."""
    secs = work = 0.0
    for r in cache.records.values():
        if r.get("model_sha256") == ctx.model_sha256 and r.get("edge_ddim_version") == ctx.version \
                and r.get("wall_seconds") and r["table"] in ("fd", "ode", "ode-reference"):
            secs += r["wall_seconds"]
            work += r["steps"] * r["count"]
    return secs / work if work >= 2000 else DEFAULT_SECONDS_PER_IMAGE_STEP


# ----------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------

def floor_record(ctx: Context, cache: Cache, compute: bool) -> dict | None:
    """FD of the first N training images (the floor at N), cached; computed only if the dataset is here."""
    key = {"table": "fd-floor", "sampler": "training-images", "eta": None, "steps": 0, "count": ctx.args.count,
           "seed": None, "schedule": None, "model_sha256": "", "edge_ddim_version": "",
           "classifier_sha256": ctx.classifier_sha256, "ode_steps": None}
    rec = cache.get(key)
    if rec is None and compute:
        try:
            pixels = fdlib.training_pixels(ctx.args.count)
        except OSError:
            return None
        if pixels.shape[0] < ctx.args.count:
            return None
        rec = {**key, "fd": round(fdlib.fd_of_pixels(pixels), 4), "timestamp": now()}
        cache.put(rec)
    return rec


def table_cells(ctx: Context, cache: Cache, table: str) -> tuple[dict, list[Config], int]:
    args = ctx.args
    configs = args.samplers if table == "fd" else [c for c in args.samplers if c.deterministic]
    count = args.count if table == "fd" else args.ode_count
    cells, missing = {}, 0
    for c in configs:
        for s in args.steps:
            rec = cache.get(ctx.base_key(table, c, s, count))
            if rec is None:
                missing += 1
            else:
                cells[(c.name, s)] = rec
    return cells, configs, missing


def markdown(ctx: Context, cache: Cache, floor: dict | None) -> str:
    args = ctx.args
    out = ["# Sampler quality", "",
           "Written by `tools/quality/sampler_table.py` from `" + _rel(args.cache) + "`; see "
           "`tools/quality/README.md`.", "",
           f"- model: `{_rel(args.model)}` (sha256 `{ctx.model_sha256[:16]}…`)",
           f"- edge-ddim: {ctx.version_desc or ctx.version}",
           f"- seed {args.seed}, batch 4, timestep spacing: "
           + (f"`{args.schedule}`" if args.schedule else "each sampler's default (the model's is `leading`)"),
           ""]
    header = "| sampler | " + " | ".join(f"S={s}" for s in args.steps) + " |"
    rule = "| --- |" + " ---: |" * len(args.steps)
    total_seconds = 0.0
    for table in [t for t in ("fd", "ode") if t in args.tables]:
        cells, configs, missing = table_cells(ctx, cache, table)
        if not configs:
            continue
        if table == "fd":
            out += [f"## FD to the Fashion-MNIST test set (N = {args.count}; lower is better)", "",
                    "Fréchet distance in the 128-d features of the small classifier "
                    f"(`tools/reference/fashion-classifier`, sha256 `{ctx.classifier_sha256[:16]}…`), "
                    "images 8-bit as in the PNGs. The FD of "
                    + (f"{args.count} training images is **{floor['fd']:.2f}**: the floor at this N."
                       if floor else "training images (the floor) is not in the cache: a sweep computes it "
                       "where the Fashion-MNIST dataset is installed."), ""]
            field_, fmt = "fd", "{:.2f}"
        else:
            out += [f"## ODE accuracy (M = {args.ode_count}; lower is better)", "",
                    "RMSE of x₀, pixels in [0, 1] (clamped, not rounded), against the probability-flow ODE "
                    f"solution from the same x_T (ddim η=0, {args.ode_steps} steps, `--no-clip-sample`); "
                    "ddim runs with `--no-clip-sample`.", ""]
            field_, fmt = "rmse", "{:.4f}"
        out += [header, rule]
        for c in configs:
            row = []
            for s in args.steps:
                rec = cells.get((c.name, s))
                row.append("" if rec is None else fmt.format(rec[field_]))
                if rec is not None:
                    total_seconds += rec.get("wall_seconds") or 0
            out.append(f"| {c.label} | " + " | ".join(row) + " |")
        n = len(configs) * len(args.steps)
        out += ["", f"{n - missing} of {n} cells measured"
                + (f"; **{missing} missing** (blank)." if missing else "."), ""]
    if "ode" in args.tables:
        ref = cache.get(ctx.reference_key())
        if ref:
            total_seconds += ref.get("wall_seconds") or 0
    out += [f"Wall time of the runs shown (edge-ddim only): {fmt_duration(total_seconds)}.", ""]
    return "\n".join(out)


def _rel(p: Path) -> str:
    p = Path(p).resolve()
    return str(p.relative_to(REPO_ROOT)) if p.is_relative_to(REPO_ROOT) else str(p)


def plot(ctx: Context, cache: Cache, table: str, path: Path, floor: dict | None) -> bool:
    cells, configs, _ = table_cells(ctx, cache, table)
    if not cells:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator, ScalarFormatter
    field_ = "fd" if table == "fd" else "rmse"
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    markers = ["o", "s", "^", "D", "v", "P", "X", "*", "h"]
    for i, c in enumerate(CONFIGS):
        if c not in configs:
            continue
        pts = [(s, cells[(c.name, s)][field_]) for s in ctx.args.steps if (c.name, s) in cells]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker=markers[i % len(markers)], color=f"C{i}", label=c.label, markersize=5,
                    linewidth=1.5,
                    linestyle="-" if c.deterministic else "--")
    ax.set_xscale("log")
    if table == "fd":
        if floor:
            ax.axhline(floor["fd"], color="gray", linewidth=1, linestyle=":",
                       label=f"{ctx.args.count} training images")
        ax.set_ylabel(f"FD to the test set (N = {ctx.args.count})")
        ax.set_title("Sample quality: FD against steps (lower is better)")
        ax.set_ylim(bottom=0)
    else:
        ax.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.tick_params(axis="y", which="minor", labelsize=8)
        ax.set_ylabel(f"RMSE of x₀ vs the {ctx.args.ode_steps}-step ODE (pixels in [0, 1])")
        ax.set_title(f"ODE accuracy: RMSE against steps (M = {ctx.args.ode_count})")
    ax.xaxis.set_major_locator(FixedLocator(ctx.args.steps))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("steps S (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9, ncol=2 if len(configs) > 5 else 1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return True


def report(ctx: Context, cache: Cache, compute_floor: bool, quiet: bool = False) -> None:
    floor = floor_record(ctx, cache, compute_floor) if "fd" in ctx.args.tables else None
    text = markdown(ctx, cache, floor)
    if not quiet:
        print(text)
    if ctx.args.markdown:
        ctx.args.markdown.parent.mkdir(parents=True, exist_ok=True)
        ctx.args.markdown.write_text(text)
    if "fd" in ctx.args.tables and ctx.args.fd_plot:
        plot(ctx, cache, "fd", ctx.args.fd_plot, floor)
    if "ode" in ctx.args.tables and ctx.args.rmse_plot:
        plot(ctx, cache, "ode", ctx.args.rmse_plot, None)


# ----------------------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description="Measure edge-ddim's samplers: FD and ODE-accuracy tables "
                                             "(see tools/quality/README.md).")
    ap.add_argument("--edge-ddim", type=Path, default=DEFAULT_BINARY,
                    help="the edge-ddim binary (default: .build/release/edge-ddim; `swift build -c release`)")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="default: models/ddpm-fashion-32.edm")
    ap.add_argument("--samplers", type=parse_samplers, default="all",
                    help="comma-separated subset of: ddim (= ddim-eta0,ddim-eta0.5,ddim-eta1), "
                         + ", ".join(BY_NAME) + " (default: all)")
    ap.add_argument("--steps", type=parse_steps, default=",".join(map(str, DEFAULT_STEPS)),
                    help="comma-separated step counts S (default: 4,5,8,10,15,20,50)")
    ap.add_argument("--tables", type=lambda t: [x for x in t.split(",") if x], default="fd,ode",
                    help="fd, ode or fd,ode (default)")
    ap.add_argument("--count", type=int, default=1000, help="images per FD configuration, N (default 1000)")
    ap.add_argument("--ode-count", type=int, default=100,
                    help="images per ODE-accuracy configuration, M (default 100)")
    ap.add_argument("--seed", type=int, default=0, help="default 0")
    ap.add_argument("--schedule", choices=["leading", "trailing", "linspace", "quadratic"], default=None,
                    help="pass --schedule to every run (part of the cache key); default: each sampler's own")
    ap.add_argument("--threads", type=int, default=None, help="pass --threads to edge-ddim")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                    help="JSON results cache (default: docs/quality/sampler-quality.json)")
    ap.add_argument("--markdown", type=Path, default=DEFAULT_MARKDOWN,
                    help="markdown tables to write (default: docs/quality/sampler-quality.md)")
    ap.add_argument("--fd-plot", type=Path, default=DEFAULT_FD_PLOT, help="default: docs/sampler-fd.png")
    ap.add_argument("--rmse-plot", type=Path, default=DEFAULT_RMSE_PLOT, help="default: docs/sampler-rmse.png")
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK,
                    help="scratch folder: the ODE reference x₀ and temporary outputs (default: .build/quality)")
    ap.add_argument("--force", action="store_true", help="recompute records that are already cached")
    ap.add_argument("--report-only", action="store_true", help="compute nothing; write the tables and plots")
    ap.add_argument("--cached-version", default=None,
                    help="with --report-only: report the records of this edge-ddim version key (as the cache and the "
                         "markdown name it, e.g. sources:4972fb3edd337622) instead of the built binary's")
    ap.add_argument("--dry-run", action="store_true", help="list the missing runs and the estimated time")
    ap.add_argument("--ode-steps", type=int, default=1000, help=argparse.SUPPRESS)   # testing only
    args = ap.parse_args()
    for t in args.tables:
        if t not in ("fd", "ode"):
            ap.error(f"--tables: unknown table {t!r}")
    if not args.samplers:
        ap.error("--samplers selects nothing")
    args.model = args.model.resolve()
    args.edge_ddim = args.edge_ddim.resolve()
    if not args.model.exists():
        ap.error(f"no model at {args.model}")

    cache = Cache(args.cache)
    model_sha = sha256_file(args.model)
    classifier_sha = fdlib.classifier_sha256()
    if args.cached_version is not None:
        if not args.report_only:
            ap.error("--cached-version goes with --report-only")
        named = [r for r in cache.records.values() if r.get("edge_ddim_version") == args.cached_version and r.get("timestamp")]
        if not named:
            ap.error(f"--cached-version: no records of {args.cached_version} in {args.cache}")
        version = args.cached_version
        version_desc = max(named, key=lambda r: r["timestamp"]).get("edge_ddim", version)
        warning, binary_sha = None, ""
    elif args.edge_ddim.exists():
        version, version_desc, warning = binary_version(args.edge_ddim)
        binary_sha = sha256_file(args.edge_ddim)
    elif args.report_only:
        versions = [r for r in cache.records.values() if r.get("model_sha256") == model_sha and r.get("timestamp")]
        newest = max(versions, key=lambda r: r["timestamp"]) if versions else {}
        version = newest.get("edge_ddim_version", "unknown")
        version_desc = newest.get("edge_ddim", version)
        warning, binary_sha = f"no binary at {args.edge_ddim}: reporting the newest version in the cache", ""
    else:
        print(f"no edge-ddim binary at {args.edge_ddim}: run `swift build -c release` in {REPO_ROOT} first",
              file=sys.stderr)
        return 2
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    ctx = Context(args, model_sha, version, classifier_sha, version_desc)

    if args.report_only:
        report(ctx, cache, compute_floor=False)
        return 0

    if "fd" in args.tables:
        fdlib.classifier()                 # fail now, not after the first run, if the classifier is unusable
    jobs = plan(ctx, cache)
    total_work = sum(j.image_steps for j in jobs)
    rate = prior_rate(cache, ctx)
    print(f"edge-ddim {version_desc}; model sha256 {model_sha[:16]}…; {len(jobs)} runs to do, "
          f"{total_work:,} image-steps, about {fmt_duration(total_work * rate)} at {rate * 1000:.1f} ms per "
          f"image-step", flush=True)
    if args.dry_run:
        for j in jobs:
            print(f"  {j.describe():<48} {j.image_steps:>9,} image-steps  ~{fmt_duration(j.image_steps * rate)}")
        return 0

    if "fd" in args.tables:
        floor_record(ctx, cache, compute=True)     # ~1 s, where the dataset is installed
    args.work_dir.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    failed_configs: set[tuple[str, str]] = set()
    done_work, done_secs = 0, 0.0
    t_start = time.time()
    with tempfile.TemporaryDirectory(dir=args.work_dir, prefix="run-") as tmpdir:
        for i, job in enumerate(jobs, 1):
            skip = None
            if (job.table, job.config.name) in failed_configs:
                skip = "an earlier run of this sampler failed"
            elif job.table == "ode" and not ctx.reference_path().exists():
                skip = "no ODE reference"
            if skip:
                print(f"[{i}/{len(jobs)}] {job.describe()}: skipped ({skip})", flush=True)
                failures.append(job.describe() + " (skipped)")
                done_work += job.image_steps
                continue
            left = total_work - done_work
            est = done_secs / done_work if done_work >= 2000 else rate
            print(f"[{i}/{len(jobs)}] {job.describe()} (~{fmt_duration(job.image_steps * est)}; "
                  f"{fmt_duration(left * est)} left) …", end=" ", flush=True)
            t0 = time.time()
            try:
                result = execute(job, ctx, cache, binary_sha, Path(tmpdir))
            except (RunError, ValueError, OSError) as e:
                print("FAILED", flush=True)
                print(f"    {e}", file=sys.stderr, flush=True)
                failures.append(job.describe())
                failed_configs.add((job.table, job.config.name))
                done_work += job.image_steps
                continue
            print(result, flush=True)
            done_work += job.image_steps
            done_secs += time.time() - t0
            if job.table != "ode-reference":
                report(ctx, cache, compute_floor=False, quiet=True)
    print(f"done in {fmt_duration(time.time() - t_start)}" + (f"; {len(failures)} runs failed" if failures else ""),
          file=sys.stderr)
    report(ctx, cache, compute_floor=True)
    if failures:
        print("failed: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: the finished runs are cached; run the same command again to resume", file=sys.stderr)
        sys.exit(130)
