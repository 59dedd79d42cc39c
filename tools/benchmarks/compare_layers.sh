#!/usr/bin/env bash
# Layer by layer: the int8 path (int8 weights and activations) against the fp32 path (fp32 weights, Winograd
# where it is faster) on the same UNet, from `edge-ddim bench --json`, the two runs interleaved over rounds.
#
#   tools/benchmarks/compare_layers.sh FP32.edm INT8.edm [--threads T] [--rounds R] [--iterations K]
#
# FP32.edm and INT8.edm are conversions of one checkpoint (`convert CKPT X.edm --weights fp32|int8`). Each
# layer's time is its median over the rounds of `bench`'s per-layer median over K evaluations. The int8 path folds
# a GroupNorm (+ SiLU) into the convolution reading it and reads concatenations in place, so an int8
# convolution of kind `group_norm_silu+…` or `concat+…` is compared with the fp32 path's norm (normN for convN)
# plus its convolution (plus, for a ResNet block's conv1, the concatenation it reads): the work the fused step
# replaces. A skip connection's conversions to and from fp16 exist only on the int8 path and are listed apart;
# only the int8 path's int8 layers (kernel "q8") are compared: the rest run the same fp32 kernels on both
# (conv_norm_out, the time embedding, and what Q8Policy leaves to fp32: conv_in, 1×1 layers of small images).
# Prints a markdown table, the slowest ratio, and exits 1 if an int8 layer took longer than its fp32 twin
# (layers under 0.05 ms are listed but not judged: there the clock and the fork/joins are the measurement).
# Run it alone on the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { echo "usage: $0 FP32.edm INT8.edm [--threads T] [--rounds R] [--iterations K]" >&2; exit 2; }
fp32=$1 int8=$2; shift 2
threads=2 rounds=3 iterations=5
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
for f in "$fp32" "$int8"; do [ -f "$f" ] || { echo "no model file $f" >&2; exit 2; }; done
swift build -c release >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for r in $(seq "$rounds"); do
  for v in fp32 int8; do
    model=$fp32; [ $v = int8 ] && model=$int8
    .build/release/edge-ddim bench --model "$model" --threads "$threads" --iterations "$iterations" --json > "$work/$v-$r.json"
  done
  echo "round $r done" >&2
done
python3 - "$work" "$rounds" "$fp32" "$int8" <<'EOF'
import json, statistics, sys
work, rounds, fp32_path, int8_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def load(v):
    runs = [json.load(open(f"{work}/{v}-{r}.json")) for r in range(1, rounds + 1)]
    names = [l["name"] for l in runs[0]["layers"]]
    kinds = {l["name"]: l["kind"] for l in runs[0]["layers"]}
    kernels = {l["name"]: l["kernel"] for l in runs[0]["layers"]}
    ms = {n: statistics.median(run["layers"][i]["ms"] for run in runs) for i, n in enumerate(names)}
    return runs[0], names, kinds, kernels, ms
f_run, f_names, f_kinds, f_kernels, f_ms = load("fp32")
i_run, i_names, i_kinds, i_kernels, i_ms = load("int8")
if not i_run["activations"].startswith("int8"):
    sys.exit(f"{int8_path} ran with {i_run['activations']} activations: not an int8 model on a CPU with a dot product")
rows, extra, worst = [], [], (0.0, "")
for n in i_names:
    k = i_kinds[n]
    if "(skip to fp16)" in n or "(skip from fp16)" in n:
        extra.append((n, i_ms[n])); continue
    if n not in f_ms:
        sys.exit(f"layer {n} of the int8 program has no fp32 twin")
    if i_kernels[n] != "q8":
        continue   # the same fp32 kernel on both paths
    twin, parts = f_ms[n], [n]
    prefix, _, last = n.rpartition(".")
    if "group_norm" in k and last.startswith("conv"):
        norm = f"{prefix}.norm{last[4:]}" if last[4:] in ("1", "2") else None
        if norm in f_ms: twin += f_ms[norm]; parts.append(norm)
    if k.startswith("concat+") and last == "conv1" and f"{prefix}.concat" in f_ms:
        twin += f_ms[f"{prefix}.concat"]; parts.append(f"{prefix}.concat")
    ratio = i_ms[n] / twin if twin > 0 else float("inf")
    if i_ms[n] >= 0.05 and ratio > worst[0]: worst = (ratio, n)
    rows.append((n, k, twin, i_ms[n], ratio, len(parts) > 1))
print(f"{int8_path} (int8, {i_run['activations']}) against {fp32_path} (fp32), {i_run['threads']} threads, batch {i_run['batch']}, "
      f"median of {rounds} rounds × {i_run['iterations']} evaluations\n")
print("| layer | int8 kind | fp32 kernel | fp32 ms (* with norm/concat) | int8 ms | int8 ÷ fp32 |")
print("| --- | --- | --- | --- | --- | --- |")
for n, k, t, m, r, fused in rows:
    print(f"| {n} | {k} | {f_kernels[n]} | {t:.2f}{' *' if fused else ''} | {m:.2f} | {r:.2f} |")
total_f = sum(f_ms.values()); total_i = sum(i_ms.values())
print(f"\nfp16 skip conversions (int8 path only): {len(extra)} steps, {sum(m for _, m in extra):.2f} ms")
print(f"sum of layers: fp32 {total_f:.1f} ms, int8 {total_i:.1f} ms ({total_i / total_f:.2f}×); {len(rows)} int8 layers compared")
slower = [(n, r) for n, _, t, m, r, _ in rows if m >= 0.05 and r > 1]
print(f"slowest int8 layer against fp32 (of those ≥ 0.05 ms): {worst[1]} at {worst[0]:.2f}×")
if slower:
    print("int8 layers slower than fp32: " + ", ".join(f"{n} ({r:.2f}×)" for n, r in slower))
    sys.exit(1)
print("no int8 layer is slower than its fp32 twin")
EOF
