#!/usr/bin/env bash
# edge-ddim against its peers — ONNX Runtime, OpenVINO (fp32 forced, and its own default, bf16 on CPUs that
# have it) and ncnn (fp32, Winograd on) — on one UNet (edge-ddim: each weight type, int8 with fp32 activations,
# and fp32 with Winograd off), side by side in one run, interleaved, as ratios
# (absolute times on shared machines drift; ratios measured in the same minute do not), plus peak RSS.
#
#   tools/benchmarks/compare_peers.sh [--model fashion|cifar10|celebahq256] [--peers ort,openvino,ncnn | ort]
#                                     [--threads T] [--rounds R] [--iterations K] [--full-size DIR]
#
# fashion is the trained ../shared/models/ddpm-fashion-32 ($EDGE_DDIM_SHARED_MODELS); cifar10 and celebahq256
# are random-weight checkpoints of google/ddpm-cifar10-32's and google/ddpm-celebahq-256's architectures,
# written on first use by tools/reference/make_full_size.py into DIR (default .build/full-size). The peers'
# exports come from tools/reference/export_peers.py (cached in DIR/peers). Needs python3 with torch and
# diffusers (for the exports), onnxruntime, openvino, ncnn and pnnx (pip-installed when missing), and
# /usr/bin/time (Debian: time). Run it alone on the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
model=fashion peers=ort,openvino,ncnn threads=2 rounds=3 iterations=20 full=.build/full-size
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --peers) peers=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    --full-size) full=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
shared="${EDGE_DDIM_SHARED_MODELS:-$(pwd)/../shared/models}"
case "$model" in
  fashion) name=ddpm-fashion-32 checkpoint="$shared/ddpm-fashion-32" ;;
  cifar10) name=ddpm-cifar10-32 checkpoint="$full/ddpm-cifar10-32" ;;
  celebahq256) name=ddpm-celebahq-256 checkpoint="$full/ddpm-celebahq-256" ;;
  *) echo "--model must be fashion, cifar10 or celebahq256, got $model" >&2; exit 2 ;;
esac
python3 -c "import onnxruntime, openvino, ncnn, pnnx, numpy" 2>/dev/null || python3 -m pip install -q onnxruntime openvino ncnn pnnx onnx numpy
[ -x /usr/bin/time ] || { apt-get install -y -q time >/dev/null; }
if [ ! -d "$checkpoint" ]; then
  [ "$model" = fashion ] && { echo "no checkpoint at $checkpoint" >&2; exit 1; }
  echo "writing the full-size random-weight checkpoints into $full (tools/reference/make_full_size.py)" >&2
  python3 tools/reference/make_full_size.py "$full" --no-onnx >&2
fi
exports="$full/peers/$name"
if [ ! -f "$exports.ncnn.param" ]; then
  echo "exporting $checkpoint for the peers (tools/reference/export_peers.py)" >&2
  python3 tools/reference/export_peers.py "$checkpoint" "$exports" >&2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

swift build -c release >&2
bin=.build/release
for w in fp32 fp16 int8; do $bin/convert "$checkpoint" "$work/$w.edm" --weights $w >/dev/null; done

field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"; }
variants=()
for p in ${peers//,/ }; do
  case $p in
    ort) variants+=(ort) ;;
    openvino) variants+=(ov-f32 ov-default) ;;
    ncnn) variants+=(ncnn) ;;
    *) echo "unknown peer $p (ort, openvino, ncnn)" >&2; exit 2 ;;
  esac
done
variants+=(fp32 fp32-direct fp16 int8 int8-fp32act)
declare -A best label
for r in $(seq "$rounds"); do
  # Interleaved, so every runtime sees the same machine load in each round.
  for variant in "${variants[@]}"; do
    case $variant in
      ort) out=$(python3 tools/benchmarks/peer_bench.py ort "$exports.onnx" --threads "$threads" --iterations "$iterations") ;;
      ov-f32) out=$(python3 tools/benchmarks/peer_bench.py openvino "$exports.onnx" --precision f32 --threads "$threads" --iterations "$iterations") ;;
      ov-default) out=$(python3 tools/benchmarks/peer_bench.py openvino "$exports.onnx" --precision default --threads "$threads" --iterations "$iterations") ;;
      ncnn) out=$(python3 tools/benchmarks/peer_bench.py ncnn "$exports.ncnn.param" --threads "$threads" --iterations "$iterations") ;;
      int8-fp32act) out=$($bin/edge-ddim bench --model "$work/int8.edm" --threads "$threads" --iterations "$iterations" --int8-activations off --json) ;;
      fp32-direct) out=$($bin/edge-ddim bench --model "$work/fp32.edm" --threads "$threads" --iterations "$iterations" --winograd off --json) ;;
      *) out=$($bin/edge-ddim bench --model "$work/$variant.edm" --threads "$threads" --iterations "$iterations" --json) ;;
    esac
    if [ "$r" = 1 ]; then
      case $variant in
        ort|ov-*|ncnn)
          runtime=$(field "$out" runtime)
          case $runtime in ort) runtime="ONNX Runtime" ;; openvino) runtime=OpenVINO ;; esac
          what=""; [ "$variant" = ov-default ] && what=", its default"; [ "$variant" = ncnn ] && what=", Winograd on"
          label[$variant]="$runtime $(field "$out" version | cut -d- -f1) ($(field "$out" precision)$what)" ;;
        int8-fp32act) label[$variant]="edge-ddim int8 weights, fp32 activations" ;;
        fp32-direct) label[$variant]="edge-ddim fp32 weights, fp32 activations, Winograd off" ;;
        *) label[$variant]="edge-ddim $variant weights, $(field "$out" activations 2>/dev/null || echo fp32) activations" ;;
      esac
    fi
    ms=$(field "$out" unet_ms_median)
    echo "round $r $variant ${ms} ms" >&2
    prev=${best[$variant]:-}
    if [ -z "$prev" ] || python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$ms" "$prev"; then best[$variant]=$ms; fi
  done
done

# Peak resident memory: a whole 10-step generation of one image, and 10 evaluations of each peer in Python.
rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1000}'; }
mem_int8=$(rss $bin/edge-ddim --model "$work/int8.edm" --steps 10 --count 1 --threads "$threads" --quiet --output "$work/m.png")
mem_fp32=$(rss $bin/edge-ddim --model "$work/fp32.edm" --steps 10 --count 1 --threads "$threads" --quiet --output "$work/m.png")

ort=${best[ort]:-}
echo
echo "$name, batch 1, $threads threads, best median of $rounds rounds × $iterations evaluations; $(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
echo "| runtime | ms per UNet evaluation | time ÷ ONNX Runtime fp32 |"
echo "| --- | --- | --- |"
for variant in "${variants[@]}"; do
  ratio=$([ -n "$ort" ] && python3 -c "print(f'{${best[$variant]} / $ort:.2f}')" || echo "")
  printf "| %s | %.2f | %s |\n" "${label[$variant]}" "${best[$variant]}" "$ratio"
done
echo
echo "| peak resident memory | MB |"
echo "| --- | --- |"
echo "| edge-ddim --steps 10 --count 1 (int8 conversion) | $mem_int8 |"
echo "| edge-ddim --steps 10 --count 1 (fp32 conversion, Winograd weights) | $mem_fp32 |"
for p in ${peers//,/ }; do
  case $p in
    ort) echo "| ONNX Runtime fp32, 10 evaluations (Python process) | $(rss python3 tools/benchmarks/peer_bench.py ort "$exports.onnx" --threads "$threads" --iterations 10 --evaluations-only) |" ;;
    openvino) echo "| OpenVINO fp32, 10 evaluations (Python process) | $(rss python3 tools/benchmarks/peer_bench.py openvino "$exports.onnx" --precision f32 --threads "$threads" --iterations 10 --evaluations-only) |" ;;
    ncnn) echo "| ncnn fp32, 10 evaluations (Python process) | $(rss python3 tools/benchmarks/peer_bench.py ncnn "$exports.ncnn.param" --threads "$threads" --iterations 10 --evaluations-only) |" ;;
  esac
done
