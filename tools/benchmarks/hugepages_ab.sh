#!/usr/bin/env bash
# What transparent huge pages are worth to one model: `edge-ddim bench` with the engine's huge-page advice
# (adviseHugePages, on the arena and the repacked weights) against the same binary in a process whose THP is
# switched off (prctl PR_SET_THP_DISABLE, inherited across exec), interleaved round by round, as ratios
# (absolute times on a shared machine drift; two runs a few seconds apart do not), with each side's
# AnonHugePages and peak RSS.
#
#   tools/benchmarks/hugepages_ab.sh MODEL.edm [--rounds R] [--iterations K] [-- BENCH_OPTIONS...]
#
# Prints one line per round and the median ratio (THP ÷ no THP; below 1 means huge pages help). Needs the
# release build (swift build -c release), python3 (for prctl) and /usr/bin/time. Run it alone on the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { sed -n '2,11p' "$0"; exit 2; }
model=$1; shift
rounds=5 iterations=10 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --iterations) iterations=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -f "$model" ] || { echo "no model file at $model" >&2; exit 1; }
bin=.build/release/edge-ddim
[ -x "$bin" ] || { echo "build first: swift build -c release" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (Debian: apt install time)" >&2; exit 1; }
echo "THP: enabled=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo '?')" \
     "defrag=$(cat /sys/kernel/mm/transparent_hugepage/defrag 2>/dev/null || echo '?')"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One run: prints "median_ms anon_huge_kB peak_rss_kB". AnonHugePages is read from the process's own
# smaps_rollup just before it exits, by a watcher polling while bench runs (the last reading is kept).
run() {
  local thp=$1
  /usr/bin/time -f %M -o "$work/rss" python3 - "$thp" "$bin" bench --model "$model" --iterations "$iterations" --json "${extra[@]}" \
      > "$work/out" 2> "$work/err" <<'PY' &
import ctypes, os, sys
if sys.argv[1] == "off":
    PR_SET_THP_DISABLE = 41
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0:
        sys.exit("prctl(PR_SET_THP_DISABLE) failed: errno %d" % ctypes.get_errno())
os.execv(sys.argv[2], sys.argv[2:])
PY
  local pid=$! huge=0 h
  while kill -0 "$pid" 2>/dev/null; do
    for c in $(pgrep -P "$pid" 2>/dev/null) "$pid"; do
      h=$(awk '/^AnonHugePages:/ {print $2}' "/proc/$c/smaps_rollup" 2>/dev/null || true)
      [ -n "$h" ] && [ "$h" -gt "$huge" ] && huge=$h
    done
    sleep 0.2
  done
  wait "$pid" || { echo "bench failed ($thp):" >&2; cat "$work/err" >&2; exit 1; }
  local ms
  ms=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['unet_ms_median'])" "$work/out")
  echo "$ms $huge $(cat "$work/rss")"
}

ratios=()
printf '%-6s %12s %12s %8s %16s %16s %14s %14s\n' round "thp ms" "no-thp ms" ratio "thp AnonHuge kB" "no-thp AnonHuge" "thp RSS kB" "no-thp RSS kB"
for r in $(seq "$rounds"); do
  # Alternate which side goes first, so a drift within a round does not favour one.
  if [ $((r % 2)) = 1 ]; then a=$(run on); b=$(run off); else b=$(run off); a=$(run on); fi
  read -r ams ahuge arss <<< "$a"; read -r bms bhuge brss <<< "$b"
  ratio=$(python3 -c "print(f'{$ams / $bms:.3f}')")
  ratios+=("$ratio")
  printf '%-6s %12s %12s %8s %16s %16s %14s %14s\n' "$r" "$ams" "$bms" "$ratio" "$ahuge" "$bhuge" "$arss" "$brss"
done
python3 -c "import statistics,sys; print('median ratio (THP / no THP):', f'{statistics.median(map(float, sys.argv[1:])):.3f}')" "${ratios[@]}"
