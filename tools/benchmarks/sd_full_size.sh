#!/usr/bin/env bash
# Stable Diffusion at full size: runwayml/stable-diffusion-v1-5's and stabilityai/stable-diffusion-2-1's
# architectures with random weights (860 M / 866 M-parameter UNets, CLIP ViT-L/14 and OpenCLIP ViT-H/14 text
# encoders, the 84 M-parameter AutoencoderKL), checked against diffusers (FullSizeSDCheckTests), converted, one
# 512×512 SD 1.5 image in 20 DDIM steps with classifier-free guidance; beside ONNX Runtime on the same UNet at
# batch 2 (one guided step). Run it alone on the machine: it times things.
#
#   tools/benchmarks/sd_full_size.sh [--out DIR] [--threads T] [--rounds R] [--iterations K] [--skip-generate] [--sd21]
#
#   --skip-generate  use the pipelines already in DIR (tools/reference/make_full_size_sd.py DIR); by default the
#                    missing ones are written first
#   --sd21           also time SD 2.1's UNet (4×96×96 latents; ONNX Runtime's attention matrices are 3.4 GB there)
#
# Writes about 23 GB into DIR (default .build/full-size-sd): the pipelines with their references and ONNX exports
# (tools/reference/make_full_size_sd.py), the conversions sd15-int8, sd15-fp32, sd21-fp32, sd21-int8. Needs python3
# with torch, diffusers, transformers, onnx, onnxruntime (pip-installed when missing; PYTHON=/path/to/python picks
# another interpreter) and /usr/bin/time (Debian: time). Prints a markdown table; ratios are measured in one run.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.build/full-size-sd threads=2 rounds=1 iterations=3 generate=1 sd21=0
python=${PYTHON:-python3}
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    --skip-generate) generate=0; shift ;;
    --sd21) sd21=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
prompt="a photograph of an astronaut riding a horse"
negative="blurry, low quality"
"$python" -c "import torch, diffusers, transformers, onnx, onnxruntime" 2>/dev/null \
  || "$python" -m pip install -q -r tools/reference/requirements.txt onnx onnxruntime
[ -x /usr/bin/time ] || apt-get install -y -q time >/dev/null
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Runs a command with its stderr and /usr/bin/time -v's report in a log; shows the log's end when it fails.
logged() {
  local log=$1
  shift
  if ! /usr/bin/time -v "$@" 2> "$log"; then
    tail -n 30 "$log" >&2
    echo "failed: $* (log: $log)" >&2
    exit 1
  fi
}
field() { "$python" -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
smaller() { "$python" -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$1" "$2"; }
rss_mb() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1000}' "$1"; }
calc() { "$python" -c "import sys; a = [float(x) for x in sys.argv[2:]]; print(f'{eval(sys.argv[1]):.2f}')" "$@"; }

# (a) The pipelines, their references and ONNX exports.
for name in sd15 sd21; do
  if [ -f "$out/$name/io.safetensors" ] && [ -f "$out/$name/unet.onnx" ]; then continue; fi
  if [ $generate = 0 ]; then
    echo "--skip-generate: $out/$name lacks io.safetensors or unet.onnx (tools/reference/make_full_size_sd.py $out --only $name)" >&2
    exit 1
  fi
  "$python" tools/reference/make_full_size_sd.py "$out" --only $name --threads "$threads" >&2
done

# (b) Build and convert.
swift build -c release >&2
bin=.build/release
for c in sd15:int8 sd15:fp32 sd21:fp32 sd21:int8; do
  name=${c%%:*} weights=${c##*:}
  [ -f "$out/$name-$weights.edm" ] || $bin/convert "$out/$name" "$out/$name-$weights.edm" --weights "$weights" >&2
done

# (c) The one-off check: tokenizer, text embeddings, one fp32 UNet evaluation against float64, the decoder. A debug
# build (the engine targets are -O in debug too): `swift test -c release` would rebuild .build/release with
# testable imports under the binaries timed below.
echo "== the one-off check: FullSizeSDCheckTests (log: $out/check.log)" >&2
if EDGE_DDIM_FULL_SIZE_SD="$out" swift test --filter FullSizeSDCheckTests > "$out/check.log" 2>&1; then
  check=passed
else
  check=FAILED
fi
grep -E "max abs|relative L2|error:|Executed" "$out/check.log" >&2 || true

# (f) ONNX Runtime on the exported UNet: batch 2, one warm-up, K timed runs, the JSON fields of
# `edge-ddim bench --json` (peer_bench.py feeds x and t only; these exports take encoder_hidden_states too).
ort_bench=$out/ort_bench.py
cat > "$ort_bench" <<'PY'
import json, statistics, sys, time
import numpy as np
import onnxruntime as ort
path, threads, iterations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
options.inter_op_num_threads = 1
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
feeds = {}
for i in session.get_inputs():
    shape = [d if isinstance(d, int) else 1 for d in i.shape]
    feeds[i.name] = np.full(shape, 500.0, np.float32) if i.name == "timestep" else rng.standard_normal(shape).astype(np.float32)
session.run(None, feeds)  # warm-up
times = []
for _ in range(iterations):
    t0 = time.perf_counter()
    session.run(None, feeds)
    times.append(time.perf_counter() - t0)
print(json.dumps({"unet_ms_median": statistics.median(times) * 1e3, "unet_ms_min": min(times) * 1e3, "threads": threads,
                  "batch": feeds["sample"].shape[0], "version": ort.__version__}))
PY

# UNet evaluations at batch 2 (one guided step), interleaved so every runtime sees the same machine load per round.
# edge-ddim bench fills the sample with seeded noise and t = 500; the context stays as allocated (zeros): the time
# does not depend on it.
variants="sd15-ort sd15-fp32 sd15-int8"
if [ $sd21 = 1 ]; then variants="$variants sd21-ort sd21-fp32 sd21-int8"; fi
declare -A best rss
for r in $(seq "$rounds"); do
  for variant in $variants; do
    name=${variant%%-*} kind=${variant#*-}
    tlog=$out/bench-$variant.log
    if [ "$kind" = ort ]; then
      o=$(logged "$tlog" "$python" "$ort_bench" "$out/$name/unet.onnx" "$threads" "$iterations")
    else
      o=$(logged "$tlog" $bin/edge-ddim bench --model "$out/$variant.edm" --count 2 --threads "$threads" --iterations "$iterations" --json)
    fi
    ms=$(field "$o" unet_ms_median)
    echo "round $r $variant $ms ms (batch 2)" >&2
    if [ -z "${best[$variant]:-}" ] || smaller "$ms" "${best[$variant]}"; then best[$variant]=$ms; fi
    rss[$variant]=$(rss_mb "$tlog")
  done
done

# (d) One SD 1.5 image, int8: 512×512, 20 DDIM steps, guidance 7.5, seed 0. The progress lines on stderr
# ("step k/20  elapsed E s  remaining R s") are timed from after the text encoder and the UNet's load.
log=$out/sd15-sample.log
logged "$log" $bin/edge-ddim --model "$out/sd15-int8.edm" --prompt "$prompt" --negative-prompt "$negative" --guidance 7.5 \
  --steps 20 --seed 0 --threads "$threads" --output "$out/sd15-int8.png" --latents "$out/sd15-int8-latents.npy" >/dev/null
steps=$(grep -c '^step [0-9]*/' "$log" || true)
[ "$steps" -ge 2 ] || { echo "no progress lines in $log" >&2; exit 1; }
first=$(grep -m1 '^step 1/' "$log" | awk '{print $4}')
last=$(grep '^step [0-9]*/' "$log" | tail -n 1 | awk '{print $4}')
sample_s=$(grep -o 'in [0-9.]* s (' "$log" | grep -o '[0-9.]*')
per_eval=$(grep -o '([0-9.]* s per evaluation' "$log" | grep -o '[0-9.]*')
sample_rss=$(rss_mb "$log")
per_step=$(calc 'a[0] / a[1]' "$last" "$steps")
steady=$(calc '(a[1] - a[0]) / (a[2] - 1)' "$first" "$last" "$steps")
# The decode inside the run: the done line's "decoding D s" (the decoder's build and the decode) where it has one;
# else its "s per evaluation" is (the steps + the decode) ÷ steps, timed from where the step lines start.
decoding=$(grep -o 'decoding [0-9.]* s' "$log" | grep -o '[0-9.]*' || true)
if [ -n "$decoding" ]; then
  decode_in_run=$decoding decode_how="the done line's decoding time, decoder build included"
else
  decode_in_run=$(calc 'a[0] * a[2] - a[1]' "$per_eval" "$last" "$steps")
  decode_how="the done line's s per evaluation × $steps − step $steps's elapsed"
fi

# (e) The decoder alone on the generation's latents: `edge-ddim decode` times building the decoder (packing its
# weights) and the decode together, not the model file's open.
dlog=$out/sd15-decode.log
logged "$dlog" $bin/edge-ddim decode "$out/sd15-int8-latents.npy" --model "$out/sd15-int8.edm" --threads "$threads" \
  --output "$out/sd15-int8-decoded.png" >/dev/null
decode_s=$(grep -o 'in [0-9.]* s,' "$dlog" | grep -o '[0-9.]*')
decode_rss=$(rss_mb "$dlog")

secs() { calc 'a[0] / 1000' "$1"; }
echo
echo "Stable Diffusion, random weights, $threads threads; best median of $rounds round(s) × $iterations evaluations; $(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), ONNX Runtime $("$python" -c 'import onnxruntime; print(onnxruntime.__version__)'); FullSizeSDCheckTests $check"
echo
echo "| UNet, batch 2 (one guided step) | s per UNet evaluation | ÷ ONNX Runtime fp32 | peak RSS (MB) |"
echo "| --- | --- | --- | --- |"
for name in sd15 sd21; do
  [ -n "${best[$name-ort]:-}" ] || continue
  side=64
  [ $name = sd21 ] && side=96
  ort=${best[$name-ort]}
  echo "| $name UNet (4×$side×$side latents), ONNX Runtime fp32 | $(secs "$ort") | 1.00 | ${rss[$name-ort]} (Python, load included) |"
  echo "| $name UNet, edge-ddim fp32 | $(secs "${best[$name-fp32]}") | $(calc 'a[0] / a[1]' "${best[$name-fp32]}" "$ort") | ${rss[$name-fp32]} |"
  echo "| $name UNet, edge-ddim int8 | $(secs "${best[$name-int8]}") | $(calc 'a[0] / a[1]' "${best[$name-int8]}" "$ort") | ${rss[$name-int8]} |"
done
echo
echo "| one SD 1.5 image, edge-ddim int8, 512×512, 20 DDIM steps, guidance 7.5 | seconds | peak RSS (MB) |"
echo "| --- | --- | --- |"
echo "| per step (UNet at batch 2 + DDIM update): step $steps's elapsed ÷ $steps | $per_step | |"
echo "| per step over steps 2–$steps (without step 1's first touch of the weights) | $steady | |"
echo "| the decode inside the run ($decode_how) | $decode_in_run | |"
echo "| the whole run, model open and text encoder included (\`edge-ddim --model sd15-int8.edm --prompt … --steps 20\`) | $sample_s | $sample_rss |"
echo "| the decoder alone (\`edge-ddim decode\`, 4×64×64 → 3×512×512, decoder build included) | $decode_s | $decode_rss |"
