#!/usr/bin/env bash
# Latent diffusion at full size: CompVis/ldm-celebahq-256's architecture with random weights (274 M-parameter
# UNet on 3×64×64 latents, VQ decoder to 256×256), checked against diffusers, converted to int8, one image in
# 10 steps; beside google/ddpm-celebahq-256's pixel-space UNet at the same image size and ONNX Runtime on the
# same LDM UNet. Run it alone on the machine: it times things.
#
#   tools/benchmarks/ldm_celebahq256.sh [--out DIR] [--threads T] [--rounds R] [--iterations K]
#
# Writes about 3 GB into DIR (default .build/full-size): the checkpoints (tools/reference/make_full_size.py),
# an ONNX export, the conversions. Needs python3 with torch, diffusers, onnx, onnxruntime (pip-installed when
# missing) and /usr/bin/time (Debian: time). Prints a markdown table; ratios are measured in one run.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.build/full-size threads=2 rounds=2 iterations=3
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
python3 -c "import torch, diffusers, onnx, onnxruntime" 2>/dev/null || python3 -m pip install -q -r tools/reference/requirements.txt onnx onnxruntime
[ -x /usr/bin/time ] || apt-get install -y -q time >/dev/null
mkdir -p "$out"
[ -f "$out/ldm-unet.onnx" ] || python3 tools/reference/make_full_size.py "$out" >&2
swift build -c release >&2
bin=.build/release
[ -f "$out/ldm-fp32.edm" ] || $bin/convert "$out/ldm-celebahq-256" "$out/ldm-fp32.edm" --weights fp32 >&2
[ -f "$out/ldm-int8.edm" ] || $bin/convert "$out/ldm-celebahq-256" "$out/ldm-int8.edm" --weights int8 >&2
[ -f "$out/ddpm-int8.edm" ] || $bin/convert "$out/ddpm-celebahq-256" "$out/ddpm-int8.edm" --weights int8 >&2

echo "== the one-off check: fp32 UNet and decoder against diffusers" >&2
EDGE_DDIM_FULL_SIZE="$(cd "$out" && pwd)" swift test --filter FullSizeCheckTests 2>&1 | grep -E "relative L2|error|Executed" >&2

field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"; }
smaller() { python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$1" "$2"; }
declare -A best
for r in $(seq "$rounds"); do
  # Interleaved, so every runtime sees the same machine load in each round.
  for variant in ort ldm-int8 ldm-fp32 ddpm-int8; do
    if [ $variant = ort ]; then
      o=$(python3 tools/benchmarks/peer_bench.py ort "$out/ldm-unet.onnx" --threads "$threads" --iterations "$iterations")
    else
      o=$($bin/edge-ddim bench --model "$out/$variant.edm" --threads "$threads" --iterations "$iterations" --json)
    fi
    ms=$(field "$o" unet_ms_median)
    echo "round $r $variant $ms ms" >&2
    if [ -z "${best[$variant]:-}" ] || smaller "$ms" "${best[$variant]}"; then best[$variant]=$ms; fi
  done
done

# One whole image: 10 DDIM steps and the decoder, peak resident memory from /usr/bin/time.
log=$out/sample.log
/usr/bin/time -v $bin/edge-ddim --model "$out/ldm-int8.edm" --steps 10 --count 1 --threads "$threads" --quiet \
  --output "$out/ldm.png" --latents "$out/latents.npy" 2> "$log" >/dev/null
sample_s=$(grep -o 'in [0-9.]* s (' "$log" | grep -o '[0-9.]*')
sample_rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1000}' "$log")
dlog=$out/decode.log
/usr/bin/time -v $bin/edge-ddim decode "$out/latents.npy" --model "$out/ldm-int8.edm" --threads "$threads" --output "$out/decoded.png" 2> "$dlog"
decode_s=$(grep -o 'in [0-9.]* s,' "$dlog" | grep -o '[0-9.]*')
decode_rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1000}' "$dlog")
ort_rss=$(/usr/bin/time -v python3 tools/benchmarks/peer_bench.py ort "$out/ldm-unet.onnx" --threads "$threads" --iterations 1 --evaluations-only 2>&1 >/dev/null \
  | awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1000}')
pixel_rss=$(/usr/bin/time -v $bin/edge-ddim bench --model "$out/ddpm-int8.edm" --threads "$threads" --iterations 1 2>&1 >/dev/null \
  | awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1000}')

ort=${best[ort]}
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[1]) / 1000:.2f}')" "$1"; }
echo
echo "256×256 images, batch 1, $threads threads, best median of $rounds rounds × $iterations evaluations; $(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), ONNX Runtime $(python3 -c 'import onnxruntime; print(onnxruntime.__version__)')"
echo
echo "| model and runtime | s per UNet evaluation | ÷ ONNX Runtime fp32 on the LDM UNet | peak RSS (MB) |"
echo "| --- | --- | --- | --- |"
echo "| ldm-celebahq-256 UNet (274 M, 3×64×64 latents), ONNX Runtime fp32 | $(secs "$ort") | 1.00 | $ort_rss (1 evaluation, Python) |"
echo "| ldm-celebahq-256 UNet, edge-ddim fp32 | $(secs "${best[ldm-fp32]}") | $(ratio "${best[ldm-fp32]}" "$ort") | |"
echo "| ldm-celebahq-256 UNet, edge-ddim int8 | $(secs "${best[ldm-int8]}") | $(ratio "${best[ldm-int8]}" "$ort") | |"
echo "| ddpm-celebahq-256 UNet (114 M, 3×256×256 pixels), edge-ddim int8 | $(secs "${best[ddpm-int8]}") | $(ratio "${best[ddpm-int8]}" "$ort") | $pixel_rss (1 evaluation) |"
echo
echo "| one image, edge-ddim int8, ldm-celebahq-256 | seconds | peak RSS (MB) |"
echo "| --- | --- | --- |"
echo "| 10 DDIM steps + VQ decode, load included (\`edge-ddim --model ldm-int8.edm --steps 10 --count 1\`) | $sample_s | $sample_rss |"
echo "| the decoder alone (\`edge-ddim decode\`, 3×64×64 → 3×256×256) | $decode_s | $decode_rss |"
