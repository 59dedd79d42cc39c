#!/usr/bin/env bash
# Builds the libFuzzer targets in Tests/Fuzz/targets and runs each for N seconds on a copy of its seed
# corpus (Tests/Fuzz/corpus/TARGET), printing executions per second and the corpus size at the end.
#
#   tools/fuzz/run.sh [--seconds N] [--build-only | --no-build] [TARGET...]   (default: 60 s, every target)
#
# To run two targets at once, build first, then start each with --no-build (the build folder is shared).
#
# Targets: safetensors config modelfile npy png tokenizer capi. The package sources are compiled module by module with
# swiftc -sanitize=fuzzer,address (SwiftPM has no fuzzer target type), into .build-fuzz. Crashing inputs
# are saved in .build-fuzz/findings/TARGET; the grown corpus in .build-fuzz/corpus/TARGET (not committed:
# add an input to Tests/Fuzz/corpus only when it covers something new, and a crash as a regression test in
# Tests/EdgeDDIMTests/Hardening*.swift).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
seconds=60 build_only=0 build=1 targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --build-only) build_only=1; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(safetensors config modelfile npy png tokenizer capi)

B=$root/.build-fuzz
mkdir -p "$B/modules" "$B/obj"
if [ "$build" = 1 ]; then
# Every module is compiled afresh; objects left by an older layout of this script would link twice.
rm -rf "$B/obj" && mkdir -p "$B/obj"
swiftc=${SWIFTC:-swiftc}
clang=${CLANG:-$(dirname "$(command -v "$swiftc")")/clang}
flags=(-O -parse-as-library -sanitize=fuzzer,address -I "$B/modules" -I "$B/modules/_EdgeThreads" -swift-version 6)
omp=$(ls /usr/lib/*-linux-gnu/libomp.so.5 2>/dev/null | head -1)
[ -n "$omp" ] || { echo "libomp.so.5 not found (apt install libomp-dev)" >&2; exit 1; }

# The C modules: each one's header folder plus a module map, as SwiftPM would generate it, and its objects.
cmodule() {
  local name=$1; shift
  mkdir -p "$B/modules/$name"
  {
    echo "module $name {"
    for h in Sources/$name/include/*.h; do echo "  header \"$root/$h\""; done
    echo "  export *"
    echo "}"
  } > "$B/modules/$name/module.modulemap"
  for c in Sources/$name/*.c; do
    "$clang" "$@" -fsanitize=fuzzer-no-link,address -I Sources/$name/include -c "$c" -o "$B/obj/$name-$(basename "$c" .c).o"
  done
}
cmodule _EdgeThreads -O1 -fopenmp
cmodule _EdgeMicrokernels -O2
cmodule CEdgeDDIM -O1
flags+=(-I "$B/modules/_EdgeMicrokernels" -I "$B/modules/CEdgeDDIM")

# Swift modules in dependency order; each is one whole-module object.
module() {
  local name=$1; shift
  "$swiftc" "${flags[@]}" -wmo -module-name "$name" -emit-module -emit-module-path "$B/modules/$name.swiftmodule" \
    -c "$@" -o "$B/obj/$name.o"
}
module _EdgeCore Sources/_EdgeCore/*.swift
module _EdgeQuant Sources/_EdgeQuant/*.swift
module EdgeGraph $(find Sources/EdgeGraph -name "*.swift")
module EdgeText Sources/EdgeText/*.swift
module EdgeModelFile Sources/EdgeModelFile/*.swift
module EdgeSampler Sources/EdgeSampler/*.swift
module EdgeImageIO Sources/EdgeImageIO/*.swift
module EdgeConvert Sources/EdgeConvert/*.swift
module _EdgeKernels $(find Sources/_EdgeKernels -name "*.swift")
module EdgeUNet Sources/EdgeUNet/*.swift
module EdgeDDIM Sources/EdgeDDIM/*.swift
module EdgeDDIMC Sources/EdgeDDIMC/*.swift

for t in "${targets[@]}"; do
  src=Tests/Fuzz/targets/$t.swift
  [ -f "$src" ] || { echo "no fuzz target $t ($src)" >&2; exit 2; }
  # gold warns once per ASan helper symbol; the warnings say nothing about the build.
  "$swiftc" "${flags[@]}" "$src" "$B"/obj/*.o "$omp" -o "$B/fuzz-$t" 2> >(grep -v "Cannot export local symbol" >&2)
done
echo "built: ${targets[*]} in $B"
fi
[ "$build_only" = 0 ] || exit 0

status=0
for t in "${targets[@]}"; do
  corpus=$B/corpus/$t findings=$B/findings/$t
  mkdir -p "$corpus" "$findings"
  cp -n Tests/Fuzz/corpus/$t/* "$corpus/" 2>/dev/null || true
  log=$B/fuzz-$t.log
  echo "== $t: $seconds s, seeds $(ls Tests/Fuzz/corpus/$t | wc -l), log $log"
  # -rss_limit_mb: an input that makes a parser allocate gigabytes is a finding too.
  set +e
  "$B/fuzz-$t" "$corpus" -max_total_time="$seconds" -print_final_stats=1 \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 -timeout=10 -artifact_prefix="$findings/" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s += $2} END {print s + 0}')
  per=$(grep -o 'exec/s: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  echo "   exit $rc, $runs executions, $(( runs / (seconds > 0 ? seconds : 1) )) exec/s overall (last report ${per:-?} exec/s), corpus $(ls "$corpus" | wc -l) files, $(( $(cat "$corpus"/* 2>/dev/null | wc -c) / 1024 )) KB, findings $(ls "$findings" | wc -l)"
  [ "$rc" = 0 ] || { status=1; grep -m3 -E 'ERROR|Fatal error|SUMMARY' "$log" || true; }
done
exit $status
