#!/usr/bin/env bash
# Runs the test suite under AddressSanitizer and/or ThreadSanitizer:
#
#   tools/sanitize.sh [address|thread|all] [extra swift test arguments, e.g. --filter Hardening]
#   SANITIZE_SKIP='PipelineFixtureTests|UNetFixtureTests' tools/sanitize.sh thread   (skip test classes)
#
# Each sanitizer builds into its own scratch folder (.build-asan, .build-tsan), so the normal build is not
# touched; both build and test times are printed. Any sanitizer report fails the run (halt_on_error).
#
# ThreadSanitizer and OpenMP: libomp is not instrumented, so TSan cannot see the synchronisation at the
# start and end of a parallel region and would report the kernels' hand-offs between threads as races.
# LLVM's Archer tool (libarcher.so, shipped with libomp-dev) is loaded through OMP_TOOL_LIBRARIES and tells
# TSan about every OpenMP fork, join and barrier, so real races still show and these false ones do not;
# ignore_noninstrumented_modules keeps TSan from reporting accesses inside libomp itself. Without Archer
# the script stops rather than report races that are not there.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
[ $# -gt 0 ] && shift
extra=("$@")

# run SANITIZER SCRATCH [per-class]: build, then test; per-class runs each test class in its own process.
run() {
  local sanitizer=$1 scratch=$2 mode=${3:-}
  local t0 t1 t2
  t0=$(date +%s)
  echo "== $sanitizer: build ($scratch)"
  swift build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch"
  t1=$(date +%s)
  echo "== $sanitizer: test"
  # Tests that build C programs against the instrumented libedgeddim.so, or measure resident memory, ask.
  export EDGE_DDIM_SANITIZER=$sanitizer
  if [ "$mode" = per-class ] && [ ${#extra[@]} -eq 0 ]; then
    local classes failed=()
    classes=$(swift test --skip-build --sanitize="$sanitizer" --scratch-path "$scratch" --list-tests | sed -E 's|/.*||' | sort -u)
    if [ -n "${SANITIZE_SKIP:-}" ]; then
      echo "== $sanitizer: skipping $(echo "$classes" | grep -E "\.(${SANITIZE_SKIP})\$" | tr '\n' ' ')"
      classes=$(echo "$classes" | grep -vE "\.(${SANITIZE_SKIP})\$" || true)
    fi
    for c in $classes; do
      swift test --skip-build --sanitize="$sanitizer" --scratch-path "$scratch" --filter "^${c//./\\.}/" || failed+=("$c")
    done
    if [ ${#failed[@]} -gt 0 ]; then echo "== $sanitizer: FAILED in ${failed[*]}" >&2; exit 1; fi
  else
    swift test --skip-build --sanitize="$sanitizer" --scratch-path "$scratch" "${extra[@]}"
  fi
  t2=$(date +%s)
  echo "== $sanitizer: clean; build $((t1 - t0)) s, tests $((t2 - t1)) s"
}

address() {
  # detect_leaks: the Swift runtime and Foundation keep caches for the life of the process, which LSan
  # would list at exit; leaks are not what this run is for (AllocationTests count the sampling loop's).
  ASAN_OPTIONS="halt_on_error=1:detect_leaks=0:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    run address .build-asan
}

thread() {
  local archer
  archer=$(ls /usr/lib/llvm-*/lib/libarcher.so 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$archer" ] || { echo "libarcher.so not found (Debian: apt install libomp-dev); ThreadSanitizer needs it for OpenMP" >&2; exit 1; }
  # One process per test class: ThreadSanitizer's per-thread state grows with every OpenMP team a process
  # has created, and in one long process the later tests slowed from seconds to many minutes (measured:
  # PaperInversionTests.testInversionLoopAllocatesNothing, 11 s alone, over 8 minutes late in one run).
  OMP_TOOL_LIBRARIES="$archer" \
  TSAN_OPTIONS="halt_on_error=1:ignore_noninstrumented_modules=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}" \
    run thread .build-tsan per-class
}

case "$which" in
  address) address ;;
  thread) thread ;;
  all) address; thread ;;
  *) echo "usage: tools/sanitize.sh [address|thread|all] [swift test arguments]" >&2; exit 2 ;;
esac
