#!/usr/bin/env bash
# peer_cost.sh — AArch64 instructions that ONNX Runtime and ncnn (their official aarch64 wheels from PyPI)
# execute per UNet evaluation (batch 1, ONE thread, fp32), counted under qemu-user (repeatable within ~1e-5 of a run's count) with the
# TCG plugin tools/arm64/insn-count/insn_count.c, for each emulated CPU (default cortex-a72 and cortex-a76).
#
#   sudo PYTHON=/tmp/refvenv/bin/python tools/arm64/peer_cost.sh [--out FILE] [--models fashion,cifar10]
#        [--cpus "cortex-a72 cortex-a76"] [--work DIR] [--repeat] [--keep-counts]
#
# Writes FILE (default $WORK/peer-cost.json):
#   {"cortex-a72": {"ddpm-fashion-32": {"onnxruntime-fp32": N, "ncnn-fp32": N}, "ddpm-cifar10-32": {...}},
#    "cortex-a76": {...},
#    "classes": {CPU: {MODEL: {RUNTIME: {"total", "dot", "simd_mac", "simd_other", "load_store", "branch",
#                                        "other"}}}},
#    "about": {versions, method, determinism check}}
# N = count(1 warm-up + 2 evaluations) - count(1 warm-up + 1 evaluation), one steady-state evaluation; both
# runs are the same process with the same seeded inputs (tools/arm64/peer_count.py, the guest-side driver).
#
# Steps, all reused when their outputs exist (delete them to redo):
#   1. plugin       gcc → $WORK/libinsn_count.so
#   2. rootfs       $ARM64_WORK/peers-rootfs: mmdebstrap'd Debian trixie arm64 (python3 3.13, python3-venv,
#                   python3-pip) and a venv /opt/peers with `pip install onnxruntime ncnn numpy` (run in the
#                   chroot through binfmt's qemu-aarch64-static). All three have cp313 manylinux aarch64 wheels.
#                   Never the CI sysroot $ARM64_WORK/sysroot-arm64, which is not touched.
#   3. exports      $WORK/ddpm-fashion-32.{onnx,ncnn.param,ncnn.bin,ncnn.json} from $FASHION_CKPT (default
#                   $EDGE_DDIM_SHARED_MODELS/ddpm-fashion-32, else ../shared/models/ beside the repo) and $WORK/ddpm-cifar10-32.* from the random-weight
#                   google/ddpm-cifar10-32 checkpoint that tools/reference/make_full_size.py writes (same
#                   functions, same seed 4, but only that one model: $WORK/ckpt/ddpm-cifar10-32), through
#                   tools/reference/export_peers.py.
#   4. counts       qemu-aarch64 -cpu CPU -L ROOTFS -plugin ...,out=... ROOTFS/usr/bin/python3 peer_count.py,
#                   for each CPU (one after another), model, runtime and K in {1, 2}: $WORK/counts/*.json.
#                   --repeat runs the first (CPU, model, ort, K=1) again and records whether the totals match.
#                   --keep-counts reuses count files already in $WORK/counts (default: recount).
#   5. JSON         assembled by the host's python3 (standard library only).
#
# Needs: root (mmdebstrap, chroot), gcc, /usr/bin/qemu-aarch64 with -plugin (Debian 12's qemu-user 7.2; the
# static qemu has no plugin support), mmdebstrap + arch-test, binfmt for aarch64 (for the chroot's apt/pip),
# network access to deb.debian.org and PyPI, and PYTHON (default python3) with torch, diffusers, onnx, ncnn and
# pnnx for the exports (e.g. PYTHON=/tmp/refvenv/bin/python). Env: ARM64_WORK (default /var/tmp/edge-ddim-arm64),
# MIRROR (default http://deb.debian.org/debian), FASHION_CKPT, QEMU (default /usr/bin/qemu-aarch64),
# PEER_PIP_PACKAGES (default "onnxruntime ncnn numpy").
#
# Times when run on the 2-core x86 dev VM (qemu 7.2 TCG, shared with other work):
#   plugin < 1 s; rootfs 14 min (mmdebstrap 7.8 min, venv 2.5 min, pip install of the wheels 3.5 min, all
#   under qemu-aarch64-static); exports 24 s fashion, 44 s cifar10 (+15 s for the cifar10 checkpoint);
#   counts 2.0 min per CPU for fashion (K=1/K=2: ort 34/48 s, ncnn 17/22 s) and 6.4 min per CPU for cifar10
#   (ort 111/163 s, ncnn 44/64 s); --repeat 35 s; JSON < 1 s. about.stage_seconds in the JSON holds the
#   last invocation's stages only (reused steps show 0).
# Determinism: two runs of the same process agree on simd_mac exactly and on the total to ~1e-5 (15 k of
# 2.43 G instructions; a third run was 86 apart from the second): start-up and allocator code is not exactly
# repeatable, the compute kernels are.
set -euo pipefail

die() { echo "peer_cost.sh: $*" >&2; exit 1; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ARM64_WORK="${ARM64_WORK:-/var/tmp/edge-ddim-arm64}"
WORK="$ARM64_WORK/peers-work"
OUT=""
MODELS="fashion,cifar10"
CPUS="cortex-a72 cortex-a76"
REPEAT=0
KEEP=0
PYTHON="${PYTHON:-python3}"
QEMU="${QEMU:-/usr/bin/qemu-aarch64}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
FASHION_CKPT="${FASHION_CKPT:-${EDGE_DDIM_SHARED_MODELS:-$REPO/../shared/models}/ddpm-fashion-32}"
PEER_PIP_PACKAGES="${PEER_PIP_PACKAGES:-onnxruntime ncnn numpy}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

while [ $# -gt 0 ]; do
  case "$1" in
    --out)    [ $# -ge 2 ] || die "--out needs a FILE"; OUT="$2"; shift 2 ;;
    --models) [ $# -ge 2 ] || die "--models needs a list"; MODELS="$2"; shift 2 ;;
    --cpus)   [ $# -ge 2 ] || die "--cpus needs a list"; CPUS="$2"; shift 2 ;;
    --work)   [ $# -ge 2 ] || die "--work needs a DIR"; WORK="$2"; shift 2 ;;
    --repeat) REPEAT=1; shift ;;
    --keep-counts) KEEP=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
OUT="${OUT:-$WORK/peer-cost.json}"
ROOTFS="$ARM64_WORK/peers-rootfs"
PLUGIN="$WORK/libinsn_count.so"
GUEST_PY=/usr/bin/python3           # as the guest sees it; under -L it is $ROOTFS/usr/bin/python3
VENV=/opt/peers

case "$WORK" in "$REPO"|"$REPO"/*) die "--work must be outside the repository ($REPO)" ;; esac
case "$ROOTFS" in "$REPO"|"$REPO"/*) die "ARM64_WORK must be outside the repository ($REPO)" ;; esac

MODEL_NAMES=()
IFS=',' read -r -a _models <<< "$MODELS"
for m in "${_models[@]}"; do
  case "$m" in
    fashion|ddpm-fashion-32) MODEL_NAMES+=(ddpm-fashion-32) ;;
    cifar10|ddpm-cifar10-32) MODEL_NAMES+=(ddpm-cifar10-32) ;;
    *) die "unknown model '$m' (fashion, cifar10)" ;;
  esac
done
read -r -a CPU_LIST <<< "$CPUS"
[ ${#CPU_LIST[@]} -gt 0 ] || die "--cpus is empty"
[ ${#MODEL_NAMES[@]} -gt 0 ] || die "--models is empty"

[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap and chroot)"
command -v gcc >/dev/null || die "gcc not found"
[ -x "$QEMU" ] || die "$QEMU not found (apt-get install qemu-user)"
# (the outputs are captured first: with pipefail, grep -q closing the pipe early would fail the test)
QEMU_HELP="$("$QEMU" -h 2>&1 || true)"; QEMU_CPUS="$("$QEMU" -cpu help 2>&1 || true)"
grep -q -- '^-plugin' <<< "$QEMU_HELP" || die "$QEMU has no -plugin support (use Debian's dynamic qemu-user, not -static)"
for c in "${CPU_LIST[@]}"; do grep -qw -- "$c" <<< "$QEMU_CPUS" || die "$QEMU does not know -cpu $c"; done

mkdir -p "$WORK" "$WORK/counts"
T0=$(date +%s)
TIMES="$WORK/times.tsv"; : > "$TIMES"
ts() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
phase_start() { PH=$(date +%s); ts "== $1"; }
phase_end()   { ts "== $1 took $(( $(date +%s) - PH ))s"; printf '%s\t%s\n' "$1" "$(( $(date +%s) - PH ))" >> "$TIMES"; }

# ---------------------------------------------------------------- 1. plugin
phase_start "plugin"
SRC="$REPO/tools/arm64/insn-count/insn_count.c"
[ -f "$SRC" ] || die "$SRC missing"
if [ ! -f "$PLUGIN" ] || [ "$SRC" -nt "$PLUGIN" ]; then
  gcc -O2 -shared -fPIC -fvisibility=hidden -o "$PLUGIN" "$SRC" || die "plugin build failed"
fi
phase_end "plugin"

# ---------------------------------------------------------------- 2. peers rootfs
phase_start "rootfs"
if [ ! -f "$ROOTFS/.complete" ]; then
  command -v mmdebstrap >/dev/null || die "mmdebstrap not found (apt-get install mmdebstrap)"
  command -v arch-test  >/dev/null || die "arch-test not found (apt-get install arch-test; mmdebstrap needs it for arm64)"
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || die "no binfmt for qemu-aarch64 (apt-get install qemu-user-static binfmt-support)"
  [ -f "$KEYRING" ] || die "$KEYRING missing (apt-get install debian-archive-keyring)"
  LOG="$WORK/rootfs.log"
  rm -rf "$ROOTFS.tmp" "$ROOTFS"
  ts "mmdebstrap trixie arm64 → $ROOTFS (log $LOG)"
  mmdebstrap --arch=arm64 --variant=apt --keyring="$KEYRING" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    trixie "$ROOTFS.tmp" "deb $MIRROR trixie main" > "$LOG" 2>&1 || { tail -20 "$LOG" >&2; die "mmdebstrap failed (log $LOG)"; }
  # The chroot's pip cannot verify PyPI behind a TLS-intercepting proxy whose CA only the host trusts, so the
  # host's pip downloads the aarch64 cp3XX wheels (and their dependencies) and the chroot installs only those.
  GV="$(readlink -f "$ROOTFS.tmp/usr/bin/python3" | sed 's,.*/python,,')"
  ts "host pip download $PEER_PIP_PACKAGES (aarch64, cp$GV) → $WORK/wheels"
  # shellcheck disable=SC2086
  "$PYTHON" -m pip download --only-binary=:all: --implementation cp --python-version "$GV" \
    --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 \
    -d "$WORK/wheels" $PEER_PIP_PACKAGES >> "$LOG" 2>&1 || { tail -20 "$LOG" >&2; die "pip download of the aarch64 wheels failed (log $LOG)"; }
  rm -rf "$ROOTFS.tmp/tmp/wheels"; cp -a "$WORK/wheels" "$ROOTFS.tmp/tmp/wheels"
  ts "venv $VENV + pip install from those wheels (in the chroot, through qemu-aarch64-static)"
  # shellcheck disable=SC2086
  chroot "$ROOTFS.tmp" /bin/sh -c "python3 -m venv $VENV && $VENV/bin/pip install --no-index --find-links /tmp/wheels --no-cache-dir --disable-pip-version-check $PEER_PIP_PACKAGES" \
    >> "$LOG" 2>&1 || { tail -20 "$LOG" >&2; die "pip install in the rootfs failed (log $LOG)"; }
  rm -rf "$ROOTFS.tmp/tmp/wheels"
  mv "$ROOTFS.tmp" "$ROOTFS"
  touch "$ROOTFS/.complete"
fi
[ -x "$ROOTFS$GUEST_PY" ] || die "$ROOTFS$GUEST_PY missing"
GUEST_VER="$(readlink -f "$ROOTFS$GUEST_PY" | sed 's,.*/python,,')"           # e.g. 3.13
GUEST_SITE="$VENV/lib/python$GUEST_VER/site-packages"
[ -d "$ROOTFS$GUEST_SITE" ] || die "$ROOTFS$GUEST_SITE missing (delete $ROOTFS to rebuild)"
phase_end "rootfs"

# The counted program: the rootfs's own python binary (the venv's bin/python is an absolute symlink the host
# would resolve to its own python), with the venv's site-packages on PYTHONPATH. Under -L, the guest's
# absolute paths (/usr/lib/python3.13, /opt/peers/...) are looked up in ROOTFS first.
guest() {  # guest CPU PLUGIN_ARGS... -- ARGS...
  local cpu="$1"; shift
  local plugin=()
  while [ "$1" != "--" ]; do plugin+=("$1"); shift; done; shift
  env -i PATH=/usr/bin:/bin HOME=/tmp LANG=C.UTF-8 PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 \
      PYTHONPATH="$GUEST_SITE" OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE \
      "$QEMU" -cpu "$cpu" -L "$ROOTFS" "${plugin[@]}" "$ROOTFS$GUEST_PY" -S -s "$@"
}
# qemu 7.2 passes /proc/cpuinfo and /sys/devices/system/cpu through from the x86 host, and onnxruntime's
# import (its cpuinfo library) segfaults on that x86 view. Under -L, qemu opens ROOTFS/PATH first when it
# exists, so a one-core ARM view of the emulated CPU is written there (MIDR and Features as a real
# Cortex-A72/A76 Linux reports them; the Features are the HWCAPs qemu gives that -cpu). The CPU features the
# runtimes act on come from getauxval(AT_HWCAP), which qemu sets from -cpu.
fake_cpu() {  # fake_cpu CPU
  local part variant revision features
  case "$1" in
    cortex-a72) part=0xd08; variant=0x0; revision=3
                features="fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid" ;;
    cortex-a76) part=0xd0b; variant=0x4; revision=1
                features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
    *) die "no /proc/cpuinfo template for -cpu $1 (cortex-a72, cortex-a76)" ;;
  esac
  mkdir -p "$ROOTFS/proc" "$ROOTFS/sys/devices/system/cpu/cpu0/topology" "$ROOTFS/sys/devices/system/cpu/cpu0/cpufreq"
  printf 'processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
    "$features" "$variant" "$part" "$revision" > "$ROOTFS/proc/cpuinfo"
  local d="$ROOTFS/sys/devices/system/cpu"
  echo 0 > "$d/possible"; echo 0 > "$d/present"; echo 0 > "$d/online"; echo 0 > "$d/kernel_max"
  echo 0 > "$d/cpu0/topology/physical_package_id"; echo 0 > "$d/cpu0/topology/cluster_cpus_list"
  echo 0 > "$d/cpu0/topology/core_siblings_list"; echo 0 > "$d/cpu0/topology/thread_siblings_list"
  echo 2000000 > "$d/cpu0/cpufreq/cpuinfo_max_freq"; echo 2000000 > "$d/cpu0/cpufreq/cpuinfo_min_freq"
  # caches as Linux lists them (index0 L1d, index1 L1i, index2 L2); further indices, if the host has them, fall
  # through to the host's files
  local i level type size
  for i in 0 1 2; do
    case $i in 0) level=1; type=Data; size=32K ;; 1) level=1; type=Instruction; size=$([ "$1" = cortex-a72 ] && echo 48K || echo 64K) ;;
               2) level=2; type=Unified; size=$([ "$1" = cortex-a72 ] && echo 1024K || echo 512K) ;; esac
    mkdir -p "$d/cpu0/cache/index$i"
    echo $level > "$d/cpu0/cache/index$i/level"; echo $type > "$d/cpu0/cache/index$i/type"
    echo $size > "$d/cpu0/cache/index$i/size"; echo 0 > "$d/cpu0/cache/index$i/shared_cpu_list"
    echo 64 > "$d/cpu0/cache/index$i/coherency_line_size"
  done
}
fake_cpu "${CPU_LIST[0]}"
cp "$REPO/tools/arm64/peer_count.py" "$ROOTFS/opt/peer_count.py"
ABOUT="$(guest "${CPU_LIST[0]}" -- /opt/peer_count.py versions)" || die "the rootfs's python cannot import the peers under qemu"
ts "guest: $ABOUT"

# ---------------------------------------------------------------- 3. exports
phase_start "exports"
for model in "${MODEL_NAMES[@]}"; do
  stem="$WORK/$model"
  if [ -f "$stem.onnx" ] && [ -f "$stem.ncnn.param" ] && [ -f "$stem.ncnn.bin" ] && [ -f "$stem.ncnn.json" ]; then
    ts "$model: exports exist"; continue
  fi
  "$PYTHON" -c 'import torch, diffusers, onnx, ncnn, pnnx' 2>/dev/null \
    || die "PYTHON=$PYTHON lacks torch/diffusers/onnx/ncnn/pnnx (e.g. PYTHON=/tmp/refvenv/bin/python)"
  case "$model" in
    ddpm-fashion-32)
      ckpt="$FASHION_CKPT"
      [ -f "$ckpt/config.json" ] || die "fashion checkpoint $ckpt missing (set FASHION_CKPT)" ;;
    ddpm-cifar10-32)
      ckpt="$WORK/ckpt/ddpm-cifar10-32"
      if [ ! -f "$ckpt/config.json" ]; then
        ts "$model: random-weight checkpoint → $ckpt"
        (cd "$REPO" && "$PYTHON" - "$WORK/ckpt" <<'EOF'
# make_full_size.py's ddpm-cifar10-32, alone: the same architecture, seed and fp16 rounding.
import sys
from pathlib import Path
sys.path.insert(0, "tools/reference")
import torch
from make_full_size import ddpm_cifar10_unet
from make_autoencoder_fixtures import randomize
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
m = ddpm_cifar10_unet()
randomize(m, 4)
m.to(torch.float16).save_pretrained(out / "ddpm-cifar10-32", safe_serialization=True)
EOF
        ) > "$WORK/ckpt.log" 2>&1 || { tail -20 "$WORK/ckpt.log" >&2; die "cifar10-32 checkpoint failed (log $WORK/ckpt.log)"; }
      fi ;;
  esac
  ts "$model: export_peers.py $ckpt"
  (cd "$REPO" && "$PYTHON" tools/reference/export_peers.py "$ckpt" "$stem") > "$WORK/export-$model.log" 2>&1 \
    || { tail -20 "$WORK/export-$model.log" >&2; die "export of $model failed (log $WORK/export-$model.log)"; }
  grep '^wrote' "$WORK/export-$model.log" || true
done
phase_end "exports"

# ---------------------------------------------------------------- 4. counts
# The models are read by the guest from their host paths ($WORK is not in ROOTFS, so -L falls through).
count() {  # count CPU MODEL RUNTIME K OUTFILE
  local cpu="$1" model="$2" rt="$3" k="$4" out="$5" file
  case "$rt" in ort) file="$WORK/$model.onnx" ;; ncnn) file="$WORK/$model.ncnn.param" ;; esac
  if [ "$KEEP" = 1 ] && [ -s "$out" ]; then ts "  $cpu $model $rt K=$k: kept $(cat "$out")"; return; fi
  rm -f "$out"
  local s=$(date +%s)
  guest "$cpu" -plugin "$PLUGIN,out=$out" -- /opt/peer_count.py "$rt" "$file" --evaluations "$k" 2> "$out.log" \
    || { tail -5 "$out.log" >&2; die "$cpu $model $rt K=$k failed (log $out.log)"; }
  [ -s "$out" ] || die "$cpu $model $rt K=$k: the plugin wrote no $out"
  ts "  $cpu $model $rt K=$k: $(( $(date +%s) - s ))s $(grep -o '"total": *[0-9]*' "$out") | $(tail -1 "$out.log")"
}
for cpu in "${CPU_LIST[@]}"; do
  phase_start "counts $cpu"
  fake_cpu "$cpu"
  for model in "${MODEL_NAMES[@]}"; do
    for rt in ort ncnn; do
      for k in 1 2; do count "$cpu" "$model" "$rt" "$k" "$WORK/counts/$cpu.$model.$rt.k$k.json"; done
    done
  done
  phase_end "counts $cpu"
done
REPEAT_FILE=""
if [ "$REPEAT" = 1 ]; then
  phase_start "repeat"
  REPEAT_FILE="$WORK/counts/${CPU_LIST[0]}.${MODEL_NAMES[0]}.ort.k1.repeat.json"
  fake_cpu "${CPU_LIST[0]}"
  KEEP=0 count "${CPU_LIST[0]}" "${MODEL_NAMES[0]}" ort 1 "$REPEAT_FILE"
  phase_end "repeat"
fi

# ---------------------------------------------------------------- 5. JSON
phase_start "json"
mkdir -p "$(dirname "$OUT")"
python3 - "$OUT" "$WORK" "$ABOUT" "$TIMES" "$REPEAT_FILE" "${CPU_LIST[*]}" "${MODEL_NAMES[*]}" <<'EOF'
import json, sys
out, work, about, times, repeat, cpus, models = sys.argv[1:8]
cpus, models = cpus.split(), models.split()
names = {"ort": "onnxruntime-fp32", "ncnn": "ncnn-fp32"}
load = lambda p: json.load(open(p))
result, classes = {}, {}
for cpu in cpus:
    for model in models:
        for rt, name in names.items():
            one, two = (load(f"{work}/counts/{cpu}.{model}.{rt}.k{k}.json") for k in (1, 2))
            diff = {key: two[key] - one[key] for key in two}
            if min(diff.values()) < 0:
                sys.exit(f"peer_cost.sh: {cpu} {model} {rt}: a class count fell from K=1 to K=2 ({diff})")
            result.setdefault(cpu, {}).setdefault(model, {})[name] = diff["total"]
            classes.setdefault(cpu, {}).setdefault(model, {})[name] = diff
result["classes"] = classes
about = json.loads(about)
about["method"] = ("qemu-aarch64 (TCG, user mode) with tools/arm64/insn-count; per evaluation = count(1 warm-up + 2 "
                   "evaluations) - count(1 warm-up + 1 evaluation) of tools/arm64/peer_count.py; batch 1, t = 500, one thread, fp32")
about["stage_seconds"] = {line.split("\t")[0]: int(line.split("\t")[1]) for line in open(times) if line.strip()}
if repeat:
    first = load(repeat.replace(".repeat.json", ".json"))
    again = load(repeat)
    about["determinism"] = {"run": repeat.rsplit("/", 1)[1].replace(".repeat.json", ""), "total": first["total"],
                            "total_repeat": again["total"], "identical": first == again}
result["about"] = about
json.dump(result, open(out, "w"), indent=2)
open(out, "a").write("\n")
print(json.dumps(result, indent=2))
EOF
phase_end "json"
ts "wrote $OUT"
