#!/bin/bash
# ci.sh — the aarch64 part of CI (called by .ci/run after the native tests), as root on a Debian 12 x86_64
# machine, from nothing: for each variant, cross-build the package for aarch64 (release, tests included), run
# the whole test suite under qemu-user, and check from the disassembly that the hot kernels use NEON.
#
#   usage: tools/arm64/ci.sh [package dir, default: this repo]
#
# Variants (ARM64_VARIANTS, default "cortex-a72 cortex-a76"):
#   cortex-a72  Raspberry Pi 4 (ARMv8.0-A: NEON/fp32 FMA; no fp16 arithmetic, no dot product)
#   cortex-a76  Raspberry Pi 5 (ARMv8.2-A + fp16 + dotprod). qemu-user emulates a CPU with every extension, so
#               this build runs and passes here; on a Pi 4 it would die with SIGILL at the first armv8.2
#               instruction. A Pi 4 needs the cortex-a72 (or baseline) build.
# Knobs: ARM64_TEST_CONFIG=release|debug (default release; `@testable` tests would need debug: then a
#        separate release build is made for the disassembly check), ARM64_TEST_ARGS (extra `swift test` args,
#        e.g. "--skip PipelineFixtureTests"), ARM64_WORK (default /var/tmp/edge-ddim-arm64), and those of
#        build-arm64.sh. EDGE_DDIM_SHARED_MODELS defaults to ../shared/models beside the repo.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PKG="$(realpath "${1:-$HERE/../..}")"
VARIANTS="${ARM64_VARIANTS:-cortex-a72 cortex-a76}"
TEST_CONFIG="${ARM64_TEST_CONFIG:-release}"
export ARM64_WORK="${ARM64_WORK:-/var/tmp/edge-ddim-arm64}"
mkdir -p "$ARM64_WORK"
export TIMINGS="$ARM64_WORK/timings.$$"; : > "$TIMINGS"
start=$(date +%s)
step() { echo; echo "== arm64 [$(( $(date +%s) - start ))s] $*"; }
trap 'rc=$?; [ $rc = 0 ] || echo "tools/arm64/ci.sh: FAILED (exit $rc) after $(( $(date +%s) - start ))s" >&2; rm -f "$TIMINGS"' EXIT

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
for cpu in $VARIANTS; do
  export SCRATCH="$SCRATCH_BASE/$cpu"
  step "$cpu: build (-c $TEST_CONFIG, tests included) and run the test suite under qemu"
  TARGET_CPU="$cpu" CONFIG="$TEST_CONFIG" TEST_ARGS="${ARM64_TEST_ARGS:-}" "$HERE/build-arm64.sh" "$PKG"
  if [ "$TEST_CONFIG" != release ]; then
    step "$cpu: release build for the disassembly check"
    TARGET_CPU="$cpu" CONFIG=release SKIP_TESTS=1 "$HERE/build-arm64.sh" "$PKG"
  fi
  step "$cpu: NEON disassembly check of the release binary"
  t=$(date +%s)
  "$HERE/check-neon.sh" "$SCRATCH/aarch64-unknown-linux-gnu/release/edge-ddim" "$cpu"
  printf 'check-neon %s\t%s\n' "$cpu" "$(( $(date +%s) - t ))" >> "$TIMINGS"
done

step "summary (seconds per phase)"
awk -F'\t' '{ printf "  %-48s %5d s\n", $1, $2 }' "$TIMINGS"
printf '  %-48s %5d s\n' "total" "$(( $(date +%s) - start ))"
echo "Note: the cortex-a76 build ran under qemu, which emulates every extension; it would fault on a Pi 4."
