#!/usr/bin/env bash
# edge-ddim against ONNX Runtime on ddpm-fashion-32, side by side in one run, as ratios (absolute times
# on shared machines drift; ratios measured in the same minute do not).
#
#   tools/benchmarks/compare_peers.sh [--threads T] [--rounds R] [--iterations K]
#
# Needs: the reference checkpoint folder (../shared/models/ddpm-fashion-32 or $EDGE_DDIM_SHARED_MODELS),
# its ONNX export (../shared/baselines/ddpm-fashion-32.onnx, or made by tools/reference/export_onnx.py),
# python3 with onnxruntime and numpy (installed with pip when missing), /usr/bin/time (Debian: time).
set -euo pipefail
cd "$(dirname "$0")/../.."
threads=2 rounds=3 iterations=20
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
shared="${EDGE_DDIM_SHARED_MODELS:-$(pwd)/../shared/models}"
checkpoint="$shared/ddpm-fashion-32"
onnx="${EDGE_DDIM_ONNX:-$(dirname "$shared")/baselines/ddpm-fashion-32.onnx}"
[ -d "$checkpoint" ] || { echo "no checkpoint at $checkpoint" >&2; exit 1; }
python3 -c "import onnxruntime, numpy" 2>/dev/null || python3 -m pip install -q onnxruntime numpy
[ -x /usr/bin/time ] || { apt-get install -y -q time >/dev/null; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ ! -f "$onnx" ]; then
  echo "exporting $checkpoint to ONNX (needs torch and diffusers)" >&2
  python3 tools/reference/export_onnx.py "$checkpoint" "$work/model.onnx"
  onnx="$work/model.onnx"
fi

swift build -c release >&2
bin=.build/release
$bin/convert "$checkpoint" "$work/fp32.edm" --weights fp32 >/dev/null
$bin/convert "$checkpoint" "$work/fp16.edm" --weights fp16 >/dev/null
$bin/convert "$checkpoint" "$work/int8.edm" --weights int8 >/dev/null

field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"; }
declare -A best activations
for r in $(seq "$rounds"); do
  # Interleaved, so every runtime sees the same machine load in each round.
  for variant in ort fp32 fp16 int8 int8-fp32act; do
    if [ $variant = ort ]; then
      out=$(python3 tools/benchmarks/ort_bench.py "$onnx" --threads "$threads" --iterations "$iterations")
    elif [ $variant = int8-fp32act ]; then
      out=$($bin/edge-ddim bench --model "$work/int8.edm" --threads "$threads" --iterations "$iterations" --int8-activations off --json)
    else
      out=$($bin/edge-ddim bench --model "$work/$variant.edm" --threads "$threads" --iterations "$iterations" --json)
    fi
    [ "$r" = 1 ] && activations[$variant]=$(field "$out" activations 2>/dev/null || echo fp32)
    ms=$(field "$out" unet_ms_median)
    echo "round $r $variant ${ms} ms" >&2
    prev=${best[$variant]:-}
    if [ -z "$prev" ] || python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$ms" "$prev"; then best[$variant]=$ms; fi
  done
done

# Peak resident memory: a whole 10-step generation of one image, and 10 ORT evaluations in Python.
rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1000}'; }
mem_int8=$(rss $bin/edge-ddim --model models/ddpm-fashion-32.edm --steps 10 --count 1 --threads "$threads" --quiet --output "$work/m.png")
mem_ort=$(rss python3 tools/benchmarks/ort_bench.py "$onnx" --threads "$threads" --iterations 10 --evaluations-only)

ort=${best[ort]}
echo
echo "ddpm-fashion-32, batch 1, $threads threads, best median of $rounds rounds × $iterations evaluations; $(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
echo "| runtime | ms per UNet evaluation | time ÷ ONNX Runtime fp32 |"
echo "| --- | --- | --- |"
printf "| ONNX Runtime %s fp32 | %.2f | 1.00 |\n" "$(python3 -c 'import onnxruntime; print(onnxruntime.__version__)')" "$ort"
for variant in fp32 fp16 int8 int8-fp32act; do
  printf "| edge-ddim %s weights, %s activations | %.2f | %.2f |\n" "${variant%-fp32act}" "${activations[$variant]}" "${best[$variant]}" "$(python3 -c "print(${best[$variant]} / $ort)")"
done
echo
echo "| peak resident memory | MB |"
echo "| --- | --- |"
echo "| edge-ddim --steps 10 --count 1 (default int8 model) | $mem_int8 |"
echo "| ONNX Runtime fp32, 10 evaluations (Python process) | $mem_ort |"
