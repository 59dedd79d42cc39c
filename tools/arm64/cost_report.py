#!/usr/bin/env python3
"""The ARM cost report: AArch64 instructions per UNet evaluation, counted under qemu-user by the TCG plugin in
tools/arm64/insn-count, for edge-ddim's aarch64 builds (and, from a file, its peers').

    tools/arm64/cost_report.py --binary cortex-a72=PATH [--binary cortex-a76=PATH]
                               --model ddpm-fashion-32=FP32_FILE,INT8_FILE [--model ddpm-cifar10-32=...]
                               --sysroot DIR --plugin LIB [--peers FILE] [--baseline FILE [--check]]
                               [--out FILE] [--table] [--jobs N]

Time under emulation means nothing; instruction counts barely move from run to run: the guest runs on one
thread, so the plugin's counters are exact, and two runs of the same binary and model differ by about 1e-5 of
the count (start-up and allocator paths; measured 2026-12-07), far inside REGRESSION_LIMIT.
Each (CPU, model, configuration) is run as `edge-ddim bench --threads 1 --iterations K` with K = 1 and K = 2
(one warm-up, then K timed evaluations), and one evaluation is the difference, so start-up, model loading,
weight packing and the first evaluation's one-off work are left out. The configurations:

    edge-ddim-fp32         fp32 weights (Winograd 3×3 convolutions where the layer picks them)
    edge-ddim-int8         int8 weights, int8 activations (sdot on cortex-a76; smull/smlal/sadalp on cortex-a72)
    edge-ddim-int8-weights int8 weights widened to fp32, fp32 activations (--int8-activations off)

qemu's `-cpu cortex-a72` reports no dot product, so the cortex-a72 build runs as on a Pi 4.

--peers merges a file shaped like the output (tools/arm64/peer_cost.sh writes ONNX Runtime's and ncnn's counts
from their aarch64 wheels under the same plugin). --check compares every count measured in this run with
--baseline and fails if one grew by more than REGRESSION_LIMIT or has no baseline entry; --table prints the
README's table. Output (--out): {"cortex-a72": {"ddpm-fashion-32": {"edge-ddim-fp32": N, ...}, ...}, ...,
"classes": {same keys: {"dot": N, "simd_mac": N, ...}}, "about": {...}}.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile

# A count may grow by this fraction before CI fails (the boards issue's rule: more than 10 % is a
# regression unless the committed baseline is updated in the same commit).
REGRESSION_LIMIT = 0.10

CONFIGS = {  # name: (weights file index in --model, extra bench flags)
    "edge-ddim-fp32": (0, []),
    "edge-ddim-int8": (1, ["--int8-activations", "on"]),
    "edge-ddim-int8-weights": (1, ["--int8-activations", "off"]),
}
CLASSES = ["dot", "simd_mac", "simd_other", "load_store", "branch", "other"]


def fail(message):
    print(f"cost_report: {message}", file=sys.stderr)
    sys.exit(1)


def count(cpu, binary, model, flags, iterations, sysroot, plugin):
    """The plugin's class counts for one whole `bench` process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "counts.json")
        command = ["qemu-aarch64", "-cpu", cpu, "-L", sysroot, "-plugin", f"{plugin},out={out}", binary, "bench",
                   "--model", model, "--threads", "1", "--iterations", str(iterations), "--json", *flags]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        run = subprocess.run(command, env=env, capture_output=True, text=True)
        if run.returncode != 0:
            fail(f"{' '.join(command)} exited {run.returncode}: {run.stderr.strip().splitlines()[-1:] or ''}")
        with open(out) as f:
            return json.load(f)


def per_evaluation(job):
    cpu, binary, model_name, config, path, flags, sysroot, plugin = job
    one = count(cpu, binary, path, flags, 1, sysroot, plugin)
    two = count(cpu, binary, path, flags, 2, sysroot, plugin)
    classes = {k: two[k] - one[k] for k in CLASSES}
    if any(v < 0 for v in classes.values()):
        fail(f"{cpu} {model_name} {config}: a second evaluation counted fewer instructions than the first run ({classes})")
    return cpu, model_name, config, two["total"] - one["total"], classes


def pairs(values, what):
    result = {}
    for v in values:
        key, sep, rest = v.partition("=")
        if not sep or not rest:
            fail(f"--{what} wants NAME=VALUE, got {v!r}")
        result[key] = rest
    return result


def table(report):
    """Markdown: one row per CPU and runtime, one column per model, millions of instructions and the ratio to
    ONNX Runtime's count on the same CPU and model."""
    cpus = [c for c in report if c not in ("classes", "about")]
    models = sorted({m for c in cpus for m in report[c]})
    runtimes = ["edge-ddim-fp32", "edge-ddim-int8-weights", "edge-ddim-int8", "onnxruntime-fp32", "ncnn-fp32"]
    lines = ["| CPU (build) | runtime | " + " | ".join(models) + " |", "| --- | --- |" + " --- |" * len(models)]
    for cpu in cpus:
        for runtime in runtimes:
            cells = []
            for model in models:
                entry = report[cpu].get(model, {})
                n, ort = entry.get(runtime), entry.get("onnxruntime-fp32")
                if n is None:
                    cells.append("")
                else:
                    cells.append(f"{n / 1e6:,.0f} M" + (f" · {n / ort:.2f}" if ort else ""))
            if any(cells):
                lines.append(f"| {cpu} | {runtime} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", action="append", default=[], help="CPU=PATH of an aarch64 edge-ddim built for it")
    parser.add_argument("--model", action="append", default=[], help="NAME=FP32_FILE,INT8_FILE")
    parser.add_argument("--sysroot", required=True)
    parser.add_argument("--plugin", required=True)
    parser.add_argument("--peers")
    parser.add_argument("--baseline")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--out")
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    binaries, models = pairs(args.binary, "binary"), pairs(args.model, "model")
    if args.check and not args.baseline:
        fail("--check needs --baseline")
    jobs = []
    for cpu, binary in binaries.items():
        if not os.access(binary, os.X_OK):
            fail(f"no executable {binary}")
        for name, files in models.items():
            files = files.split(",")
            if len(files) != 2 or not all(os.path.isfile(f) for f in files):
                fail(f"--model {name}= wants two existing model files (fp32,int8), got {files}")
            for config, (index, flags) in CONFIGS.items():
                jobs.append((cpu, binary, name, config, files[index], flags, args.sysroot, args.plugin))

    report = {"about": {"unit": "AArch64 instructions per UNet evaluation, batch 1, one thread (qemu-user TCG plugin "
                                 "tools/arm64/insn-count)", "written_by": "tools/arm64/cost_report.py"}, "classes": {}}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for cpu, name, config, total, classes in pool.map(per_evaluation, jobs):
            report.setdefault(cpu, {}).setdefault(name, {})[config] = total
            report["classes"].setdefault(cpu, {}).setdefault(name, {})[config] = classes
            print(f"{cpu} {name} {config}: {total:,} instructions per evaluation "
                  f"({', '.join(f'{k} {v:,}' for k, v in classes.items())})", flush=True)
    measured = [(c, m, k) for c in binaries for m in models for k in CONFIGS]
    for cpu in binaries:
        for name in models:
            e = report[cpu][name]
            print(f"{cpu} {name}: int8 ÷ fp32 = {e['edge-ddim-int8'] / e['edge-ddim-fp32']:.3f}, "
                  f"int8 weights with fp32 activations ÷ fp32 = {e['edge-ddim-int8-weights'] / e['edge-ddim-fp32']:.3f}")

    if args.peers:
        with open(args.peers) as f:
            peers = json.load(f)
        for cpu, per_model in peers.items():
            if cpu in ("about", "classes") or not isinstance(per_model, dict):
                continue
            for name, entries in per_model.items():
                for runtime, n in entries.items():
                    if isinstance(n, (int, float)):
                        report.setdefault(cpu, {}).setdefault(name, {})[runtime] = n
        report["about"]["peers"] = peers.get("about", args.peers)

    status = 0
    if args.baseline:
        with open(args.baseline) as f:
            baseline = json.load(f)
        for cpu, name, config in measured:
            now, then = report[cpu][name][config], baseline.get(cpu, {}).get(name, {}).get(config)
            if then is None:
                print(f"cost_report: {cpu} {name} {config}: no baseline entry in {args.baseline}", file=sys.stderr)
                status = 1
                continue
            change = now / then - 1
            verdict = "REGRESSION" if change > REGRESSION_LIMIT else "ok"
            print(f"{cpu} {name} {config}: {now:,} vs baseline {then:,} ({change:+.1%}) {verdict}")
            if change > REGRESSION_LIMIT:
                status = 1
        if status and args.check:
            print(f"cost_report: instruction counts grew by more than {REGRESSION_LIMIT:.0%} against {args.baseline} "
                  "(or lack an entry there); if that is intended, update the baseline in the same commit", file=sys.stderr)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    if args.table:
        print(table(report))
    sys.exit(status if args.check else 0)


if __name__ == "__main__":
    main()
