#!/bin/bash
# ci.sh — the aarch64 part of CI (called by .ci/run after the native tests), as root on a Debian 12 x86_64
# machine, from nothing: for each variant, cross-build the package for aarch64 (release, tests included), run
# the test suite under qemu-user, and check from the disassembly that the hot kernels use NEON.
#
#   usage: tools/arm64/ci.sh [package dir, default: this repo]
#
# Variants (ARM64_VARIANTS, default "cortex-a72 cortex-a76"):
#   cortex-a72  Raspberry Pi 4 (ARMv8.0-A: NEON/fp32 FMA; no fp16 arithmetic, no dot product)
#   cortex-a76  Raspberry Pi 5 (ARMv8.2-A + fp16 + dotprod). qemu-user emulates a CPU with every extension, so
#               this build runs and passes here; on a Pi 4 it would die with SIGILL at the first ARMv8.2
#               instruction. A Pi 4 needs the cortex-a72 (or baseline) build.
#
# Tests under qemu: emulation runs the UNet ~250x slower than this machine natively (one evaluation of the
# default model: 10-30 s instead of 0.08 s), so by default a few slow tests are skipped, each of which the
# native `swift test` in .ci/run has already run (times measured under qemu, 2 cores):
#   PipelineFixtureTests            full DDIM runs vs diffusers (4 images x 10/20 steps x eta 0/1 per
#                                   checkpoint): testFashionPipeline still unfinished after 16 min
#   SamplerCheckpointTests          every sampler vs diffusers on both checkpoints (54 runs of 4 images,
#                                   5-29 evaluations each; ~2 min natively): hours under qemu. The small-UNet
#                                   sampler fixtures (SamplerFixtureTests) do run here.
#   AllocationTests                 every sampler, 10 and 20 steps of 1 image: too slow under qemu
#   Paper*Tests on ddpm-fashion-32  inversion round trips at S = 10 and 20, interpolation of 4 frames x 10 steps,
#                                   and the inversion allocation count: 40-120 UNet evaluations each (not timed
#                                   under qemu; estimated from the 10-30 s per evaluation above)
#   HardeningInterruptTests/testFullDiskDuringOutputLeavesNoPartialFile: an emulation artefact (see below)
#   CAPITests/testTwoHundredCallsHoldMemoryFlat (200 two-step generations), LibraryExampleTests'
#                                   example run (generation, inversion, interpolation: ~110 evaluations)
#   (CAPITests/testExamplesWriteTheCommandsPNG skips itself here: the chroot's C compiler builds x86-64.)
#   UNetFixtureTests checkpoints    ~4-5 min each (fashion 246-296 s, emoji 212-247 s): the Pi 4 build runs
#                                   the default model's (fashion) against diffusers; emoji runs natively only
#                                   (until 2026-12-08 the Pi 5 build ran it, which put CI over its 90 minutes)
#   suites with no kernel of their own run on one variant each (default_skips): on the Pi 4 build the
#                                   tokenizer, interruption, small-pipeline, inversion, image-input, converter
#                                   and install tests (measured under qemu 2026-12-08: 397 s), on the Pi 5 build
#                                   text to image, the sampler fixtures, the command line, latent diffusion and
#                                   the sampler CLI (494 s). Under qemu both builds run the same kernels.
# Measured from nothing (2 cores, AVX-512 machine): setup 85 s, then per variant build 90-160 s + tests ~6 min;
# 18 min in all. On the AVX2 machine of 2026-12-08, before the split: build 273 s, tests ~25 min per variant.
# Then the release tarballs (package.sh): a static build per variant, ~2.5 min each, and their smoke tests, ~1 min.
# Everything else runs on both variants. ARM64_FULL=1 runs the whole suite; ARM64_TEST_ARGS replaces the
# default selection with your own `swift test` arguments (e.g. "--filter CLITests").
# Other knobs: ARM64_TEST_CONFIG=release|debug (default release; `@testable` tests would need debug: then a
# separate release build is made for the disassembly check), ARM64_WORK (default /var/tmp/edge-ddim-arm64),
# and those of build-arm64.sh. EDGE_DDIM_SHARED_MODELS defaults to ../shared/models beside the repo.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PKG="$(realpath "${1:-$HERE/../..}")"
VARIANTS="${ARM64_VARIANTS:-cortex-a72 cortex-a76}"
TEST_CONFIG="${ARM64_TEST_CONFIG:-release}"
export ARM64_WORK="${ARM64_WORK:-/var/tmp/edge-ddim-arm64}"
mkdir -p "$ARM64_WORK"
LOGS="$(mktemp -d "$ARM64_WORK/ci-logs.XXXXXX")"
export TIMINGS="$LOGS/timings"; : > "$TIMINGS"
start=$(date +%s)
step() { echo; echo "== arm64 [$(( $(date +%s) - start ))s] $*"; }
trap 'rc=$?; [ $rc = 0 ] || echo "tools/arm64/ci.sh: FAILED (exit $rc) after $(( $(date +%s) - start ))s" >&2; rm -rf "$LOGS"' EXIT

default_skips() {   # slow under emulation; see the header
  local skips="PipelineFixtureTests SamplerCheckpointTests AllocationTests PaperInversionTests/testInversionMatchesDiffusersOnTrainedCheckpoint"
  skips+=" PaperInterpolationTests/testInterpolationMatchesDiffusersOnTrainedCheckpoint PaperInversionTests/testInversionLoopAllocatesNothing"
  # Re-execs the aarch64 binary from the host's /bin/sh (to set ulimit -f), which goes through binfmt_misc
  # instead of the emulator already running the tests, and edge-ddim arrives without its arguments.
  skips+=" HardeningInterruptTests/testFullDiskDuringOutputLeavesNoPartialFile"
  # 400 and about 110 UNet evaluations; the C API's misuse tests and the docs check do run here.
  skips+=" CAPITests/testTwoHundredCallsHoldMemoryFlat LibraryExampleTests/testExampleRunsAndWritesTheCommandsPNG"
  # Suites that hold no kernel of their own (text, pipelines, the command line) run on one variant each:
  # under qemu both variants dispatch to the same kernels, so a second run adds nothing but time.
  local pi4_only="TokenizerTests HardeningInterruptTests PipelineSmallModelTests PaperInversionTests PaperImageInputTests ConverterErrorTests InstallTests"
  local pi5_only="TextToImageTests SamplerFixtureTests CLITests LatentDiffusionTests SamplerCLITests"
  case "$1" in
    cortex-a72) skips+=" UNetFixtureTests/testEmojiCheckpoint"; for c in $pi5_only; do skips+=" $c"; done;;
    cortex-a76) skips+=" UNetFixtureTests/testFashionCheckpoint UNetFixtureTests/testEmojiCheckpoint"; for c in $pi4_only; do skips+=" $c"; done;;
  esac
  echo "$skips"
}

# The checkpoint tests must run (and not skip) under qemu too: the folder is bind-mounted into the chroot.
export EDGE_DDIM_SHARED_MODELS="$(realpath "${EDGE_DDIM_SHARED_MODELS:-$PKG/../shared/models}")"
export EDGE_DDIM_REQUIRE_CHECKPOINTS=1
[ -d "$EDGE_DDIM_SHARED_MODELS" ] || { echo "missing reference checkpoints folder $EDGE_DDIM_SHARED_MODELS" >&2; exit 1; }
export PASS_ENV="EDGE_DDIM_SHARED_MODELS EDGE_DDIM_REQUIRE_CHECKPOINTS"
export BIND_DIRS="$EDGE_DDIM_SHARED_MODELS"

step "setup: host packages, Debian trixie amd64 chroot (Swift 6.0.3) + arm64 sysroot in $ARM64_WORK"
SETUP_ONLY=1 "$HERE/build-arm64.sh" "$PKG"

# one build folder per checkout and variant, outside the repo (never .build* inside it)
SCRATCH_BASE="$ARM64_WORK/scratch/$(basename "$PKG")-$(printf '%s' "$PKG" | md5sum | cut -c1-8)"
passed=0; failed=0; skipped=0
for cpu in $VARIANTS; do
  export SCRATCH="$SCRATCH_BASE/$cpu"
  if [ -n "${ARM64_TEST_ARGS+set}" ]; then test_args="$ARM64_TEST_ARGS"
  elif [ "${ARM64_FULL:-0}" = 1 ]; then test_args=""
  else test_args=""; for s in $(default_skips "$cpu"); do test_args+=" --skip $s"; done
  fi
  step "$cpu: build (-c $TEST_CONFIG, tests included), then the tests under qemu${test_args:+ (NOT run here:$test_args)}"
  TARGET_CPU="$cpu" CONFIG="$TEST_CONFIG" TEST_ARGS="$test_args" "$HERE/build-arm64.sh" "$PKG" 2>&1 | tee "$LOGS/$cpu.log"
  p=$(grep -cE "^Test Case '.*' passed" "$LOGS/$cpu.log" || true)
  f=$(grep -cE "^Test Case '.*' failed" "$LOGS/$cpu.log" || true)
  s=$(grep -cE "^Test Case '.*' skipped" "$LOGS/$cpu.log" || true)
  [ "$p" -gt 0 ] || { echo "arm64 $cpu: no test passed under qemu" >&2; exit 1; }
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  printf 'tests %s (qemu): %d passed, %d failed, %d skipped\n' "$cpu" "$p" "$f" "$s" >> "$LOGS/counts"
  if [ "$TEST_CONFIG" != release ]; then
    step "$cpu: release build for the disassembly check"
    TARGET_CPU="$cpu" CONFIG=release SKIP_TESTS=1 "$HERE/build-arm64.sh" "$PKG"
  fi
  step "$cpu: NEON disassembly check of the release binary"
  t=$(date +%s)
  "$HERE/check-neon.sh" "$SCRATCH/aarch64-unknown-linux-gnu/release/edge-ddim" "$cpu"
  printf 'check-neon %s\t%s\n' "$cpu" "$(( $(date +%s) - t ))" >> "$TIMINGS"
done

# The ARM cost report: instructions per UNet evaluation of the default model (fp32 weights, int8 weights with
# int8 activations, int8 weights with fp32 activations) on each variant's release binary, counted under qemu
# by tools/arm64/insn-count's plugin, against the committed baseline (fails on a growth of more than 10 %).
# cifar10-32 and the peers need torch and their aarch64 wheels, so they are counted on demand:
# tools/arm64/peer_cost.sh, and cost_report.py --out with a second --model.
step "ARM cost report: instructions per UNet evaluation, against tools/benchmarks/arm64-cost.json"
t=$(date +%s)
command -v qemu-aarch64 >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user >/dev/null; }
gcc -O2 -shared -fPIC -fvisibility=hidden -o "$LOGS/libinsn_count.so" "$HERE/insn-count/insn_count.c"
cost_binaries=(); cost_args=()
for cpu in $VARIANTS; do
  cost_binaries+=("$SCRATCH_BASE/$cpu/aarch64-unknown-linux-gnu/release/edge-ddim")
  cost_args+=(--binary "$cpu=$SCRATCH_BASE/$cpu/aarch64-unknown-linux-gnu/release/edge-ddim")
done
"$HERE/insn-count/check_classes.sh" "${cost_binaries[@]}"
[ -x "$PKG/.build/release/convert" ] || (cd "$PKG" && swift build -c release --product convert)
"$PKG/.build/release/convert" "$EDGE_DDIM_SHARED_MODELS/ddpm-fashion-32" "$LOGS/ddpm-fashion-32-fp32.edm" --weights fp32 >/dev/null
python3 "$HERE/cost_report.py" "${cost_args[@]}" --model "ddpm-fashion-32=$LOGS/ddpm-fashion-32-fp32.edm,$PKG/models/ddpm-fashion-32.edm" \
  --sysroot "$ARM64_WORK/sysroot-arm64" --plugin "$LOGS/libinsn_count.so" \
  --baseline "$PKG/tools/benchmarks/arm64-cost.json" --check --table
printf 'cost report\t%s\n' "$(( $(date +%s) - t ))" >> "$TIMINGS"

# The release tarballs a board owner downloads (static Swift runtime, one per board), each unpacked into a clean
# sysroot (glibc and libomp only) and run under qemu emulating its board's CPU: tools/arm64/package.sh.
step "release tarballs: tools/arm64/package.sh (static builds, clean-sysroot smoke test)"
t=$(date +%s)
[ -x "$PKG/.build/release/edge-ddim" ] || (cd "$PKG" && swift build -c release --product edge-ddim)
PACKAGE_CPUS="$VARIANTS" "$HERE/package.sh" "$PKG"
printf 'release tarballs\t%s\n' "$(( $(date +%s) - t ))" >> "$TIMINGS"

step "summary"
awk -F'\t' '!($1 in t) { order[n++] = $1 } { t[$1] += $2 }
             END { for (i = 0; i < n; i++) printf "  %-44s %5d s\n", order[i], t[order[i]] }' "$TIMINGS"
printf '  %-44s %5d s\n' "total" "$(( $(date +%s) - start ))"
sed 's/^/  /' "$LOGS/counts"
echo "  (the cortex-a76 build ran under qemu, which emulates every extension; it would fault on a Pi 4)"
echo "arm64: $passed passed, $failed failed, $skipped skipped"
