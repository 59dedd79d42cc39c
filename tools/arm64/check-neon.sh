#!/bin/bash
# check-neon.sh — prove from the disassembly that the hot kernels of an aarch64 build use the intended
# NEON instructions.
#
#   usage: tools/arm64/check-neon.sh BINARY VARIANT        (VARIANT: cortex-a72, cortex-a76, baseline, ...)
#   e.g.   tools/arm64/check-neon.sh $W/scratch/cortex-a72/aarch64-unknown-linux-gnu/release/edge-ddim cortex-a72
#
# The table below drives the check. One row per (kernel, instruction) requirement:
#   symbol   a substring of the *mangled* Swift symbol (Swift mangles `f32Gemm8x8SIMD` as `14f32Gemm8x8SIMD`, so
#            the plain name is a substring); every defined function symbol containing it is checked
#   regex    an extended regex over objdump's instruction text ("fmla\tv1.4s, v2.4s, v3.s[0]"), tabs
#            turned into spaces first
#   min      how many matching instructions the matched symbols must hold together (at least 1)
#   variants comma-separated variants the row applies to, or `all`
#   what     words for the report
# A row whose symbol matches no function fails the check: the kernel was renamed, or inlined away (an
# @inline(__always) kernel has no symbol of its own: point the row at the function it is inlined into).
# Rows prefixed with `!` in the symbol column are *forbidden* instructions: `!*` means the whole binary must
# hold none of them (e.g. no armv8.2 instructions in a build meant for a Pi 4's Cortex-A72); `!*-NAME` means
# every function except those whose symbol contains NAME (a kernel chosen at run time by CPU features).
#
# Needs aarch64-linux-gnu-objdump / -nm (Debian: binutils-aarch64-linux-gnu); demangled names are shown
# when `swift demangle` is on PATH.
set -euo pipefail

TABLE='
# symbol          :: regex                                                       :: min :: variants           :: what
f32Gemm8x8SIMD    :: ^fmla v[0-9]+\.4s, v[0-9]+\.4s, v[0-9]+\.(4s|s\[[0-3]\])$     :: 32  :: all                :: fp32 8x8 GEMM microkernel: fmla on .4s (unrolled loop: 2 k x 8 rows x 2 q)
f32Gemm8x16SIMD   :: ^fmla v[0-9]+\.4s, v[0-9]+\.4s, v[0-9]+\.(4s|s\[[0-3]\])$     :: 64  :: all                :: fp32 8x16 GEMM microkernel: fmla on .4s (unrolled loop: 2 k x 8 rows x 4 q)
neondot          :: ^sdot v[0-9]+\.4s, v[0-9]+\.16b, v[0-9]+\.4b\[[0-3]\]$         :: 16  :: all                :: int8 conv tile kernel (C, runtime-dispatched on HWCAP_ASIMDDP): sdot by element
neonmlal         :: ^smlal2? v[0-9]+\.8h, v[0-9]+\.(8b|16b), v[0-9]+\.(8b|16b)$     :: 16  :: all                :: int8 conv tile kernel for ARMv8.0 (C): smull + smlal of two channel blocks into int16
neonmlal         :: ^sadalp v[0-9]+\.4s, v[0-9]+\.8h$                             :: 16  :: all                :: int8 conv tile kernel for ARMv8.0 (C): sadalp widening the int16 pairs into int32
!neonmlal         :: ^(sdot|udot|usdot|sudot) v                                   :: 1   :: all                :: the ARMv8.0 int8 kernel holds no dot product, whatever the target CPU
!*-neondot        :: ^(sdot|udot|usdot|sudot) v                                   :: 1   :: cortex-a72,baseline :: no dot product (armv8.2 dotprod) in a Pi 4 build outside the runtime-dispatched int8 kernel
!*                :: ^f(abd|abs|ac[a-z]+|add|addp|cm[a-z]+|div|max[a-z]*|min[a-z]*|mla|mls|mul|mulx|neg|recp[a-z]|rsqrt[a-z]|sqrt|rint[a-z]|madd|msub|nmadd|nmsub|nmul) (v[0-9]+\.[48]h|h[0-9]+), :: 1 :: cortex-a72,baseline :: no fp16 arithmetic (armv8.2 fp16; fcvtl/fcvtn conversions are armv8.0) anywhere in a Pi 4 build
# Rows to add when those kernels exist (Pi 5 only):
# f16Gemm…        :: ^fmla v[0-9]+\.8h, v[0-9]+\.8h, v[0-9]+\.(8h|h\[[0-7]\])$    :: 16  :: cortex-a76         :: fp16 GEMM microkernel: fmla on .8h
'

BIN="${1:?usage: $0 BINARY VARIANT}"; VARIANT="${2:?usage: $0 BINARY VARIANT}"
[ -f "$BIN" ] || { echo "check-neon: no such binary $BIN" >&2; exit 2; }
OBJDUMP="${OBJDUMP:-aarch64-linux-gnu-objdump}"; NM="${NM:-aarch64-linux-gnu-nm}"
command -v "$OBJDUMP" >/dev/null || { echo "check-neon: $OBJDUMP missing (apt-get install binutils-aarch64-linux-gnu)" >&2; exit 2; }
file -L "$BIN" | grep -q 'ARM aarch64' || { echo "check-neon: $BIN is not an aarch64 binary" >&2; exit 2; }
demangle() { if command -v swift >/dev/null 2>&1; then swift demangle --simplified 2>/dev/null || cat; else cat; fi; }

TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
# Whole-binary disassembly once, split per function: "<symbol>\t<instruction text>"
"$OBJDUMP" -d --no-show-raw-insn "$BIN" | awk '
  /^[0-9a-f]+ <.*>:$/ { sym = $0; sub(/^[0-9a-f]+ </, "", sym); sub(/>:$/, "", sym); next }
  /^ *[0-9a-f]+:\t/   { line = $0; sub(/^ *[0-9a-f]+:\t/, "", line); gsub(/\t/, " ", line)
                        sub(/ *\/\/.*$/, "", line); sub(/ *<.*>$/, "", line); print sym "\t" line }' > "$TMP/insns"
[ -s "$TMP/insns" ] || { echo "check-neon: objdump gave no instructions for $BIN" >&2; exit 2; }
"$NM" --defined-only "$BIN" | awk '$2 ~ /^[tTwW]$/ {print $3}' | sort -u > "$TMP/functions"

echo "check-neon: $BIN ($VARIANT)"
trim() { local x="$1"; x="${x#"${x%%[![:space:]]*}"}"; printf '%s' "${x%"${x##*[![:space:]]}"}"; }
# count_in SYMBOLS_FILE|'*'  -> count of instructions matching $RE in those functions; EXAMPLES=n prints n of them
count_in() {
  SYMS="$1" RE="$regex" awk -F'\t' -v ex="${EXAMPLES:-0}" '
    FILENAME != "-" && ENVIRON["SYMS"] != "*" { want[$0]; next }
    (ENVIRON["SYMS"] == "*" || $1 in want) && $2 ~ ENVIRON["RE"] {
      n++; if (shown < ex) { shown++; print "          e.g. " $2 "    (in " $1 ")" > "/dev/stderr" } }
    END { print n + 0 }' $( [ "$1" = "*" ] || echo "$1" ) - < "$TMP/insns"
}
fail=0; rows=0
while IFS= read -r row; do
  row="$(trim "$row")"; [ -n "$row" ] && [ "${row:0:1}" != "#" ] || continue
  sym="$(trim "${row%% :: *}")"; row="${row#* :: }"
  regex="$(trim "${row%% :: *}")"; row="${row#* :: }"
  min="$(trim "${row%% :: *}")"; row="${row#* :: }"
  variants="$(trim "${row%% :: *}")"; what="$(trim "${row#* :: }")"
  case ",$variants," in *",all,"*|*",$VARIANT,"*) ;; *) continue;; esac
  rows=$((rows + 1))
  if [ "${sym:0:1}" = "!" ]; then                              # forbidden instructions
    scope="${sym:1}"
    if [ "${scope:0:2}" = "*-" ]; then
      grep -v -F -- "${scope:2}" "$TMP/functions" > "$TMP/scope" || true; scope="$TMP/scope"
    elif [ "$scope" != "*" ]; then grep -F -- "$scope" "$TMP/functions" > "$TMP/scope" || true; scope="$TMP/scope"; fi
    hits="$(EXAMPLES=5 count_in "$scope" 2>"$TMP/examples")"
    if [ "$hits" -gt 0 ]; then
      echo "  FAIL  $what: $hits forbidden instruction(s) /$regex/:"; demangle < "$TMP/examples"; fail=1
    else
      echo "  ok    $what"
    fi
    continue
  fi
  grep -F -- "$sym" "$TMP/functions" > "$TMP/matched" || true
  if [ ! -s "$TMP/matched" ]; then
    echo "  FAIL  $what: no function symbol contains '$sym': renamed, or inlined away? (an @inline(__always)"
    echo "        kernel has no symbol of its own: point this row of $0 at the function it is inlined into)"
    fail=1; continue
  fi
  while IFS= read -r s; do
    printf '%s\n' "$s" > "$TMP/one"
    n="$(count_in "$TMP/one")"; size="$(awk -F'\t' -v s="$s" '$1 == s' "$TMP/insns" | wc -l)"
    echo "        $n of $size instructions match in $(printf '%s' "$s" | demangle)"
  done < "$TMP/matched"
  total="$(EXAMPLES=3 count_in "$TMP/matched" 2>"$TMP/examples")"
  if [ "$total" -ge "${min:-1}" ]; then
    echo "  ok    $what: $total >= $min"; sed 's/    (in .*//' "$TMP/examples"
  else
    echo "  FAIL  $what: only $total instruction(s) match /$regex/ (need $min)"; fail=1
  fi
done <<< "$TABLE"
[ "$rows" -gt 0 ] || { echo "check-neon: no table row applies to variant '$VARIANT'" >&2; exit 2; }
if [ "$fail" = 0 ]; then echo "check-neon: PASS ($VARIANT, $rows checks)"; else echo "check-neon: FAIL ($VARIANT)" >&2; exit 1; fi
