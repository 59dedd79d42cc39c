#!/usr/bin/env bash
# check_classes.sh — checks insn_count.c's instruction classes against LLVM's disassembler, on the host:
#   1. every line of forms.s (each dot-product and multiply-accumulate encoding, and their near misses) gets
#      the class written beside it;
#   2. in each aarch64 binary given, every instruction the disassembler names as a dot product or a
#      multiply-accumulate is in that class and nothing else is, and every load or store is in load_store.
#
#   tools/arm64/insn-count/check_classes.sh [AARCH64_BINARY...]
#
# Needs gcc, and clang + llvm-objdump (the Swift toolchain's, or $CLANG / $OBJDUMP). Takes ~20 s per binary.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
tc="$(dirname "$(command -v swift)")"
CLANG="${CLANG:-$tc/clang}"; OBJDUMP="${OBJDUMP:-$tc/llvm-objdump}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
gcc -O2 -DINSN_COUNT_CLASSIFY_MAIN -o "$tmp/classify" "$HERE/insn_count.c"

# word<TAB>mnemonic per instruction of an object or executable
disassemble() {
  "$OBJDUMP" -d --mattr=+all "$1" | awk -F'\t' '/^ +[0-9a-f]+: [0-9a-f]+ / { split($1, a, " "); print a[2] "\t" $2 }'
}

"$CLANG" --target=aarch64-linux-gnu -march=armv8.6-a+i8mm+bf16+fp16+fp16fml -c "$HERE/forms.s" -o "$tmp/forms.o"
disassemble "$tmp/forms.o" > "$tmp/forms.dis"
grep -E '^[a-z]' "$HERE/forms.s" | sed 's|.*// *||' > "$tmp/forms.expected"
[ "$(wc -l < "$tmp/forms.dis")" = "$(wc -l < "$tmp/forms.expected")" ] || { echo "check_classes: forms.s assembled to a different number of instructions" >&2; exit 1; }
cut -f1 "$tmp/forms.dis" | "$tmp/classify" | cut -d' ' -f2 | paste "$tmp/forms.dis" - "$tmp/forms.expected" |
  awk -F'\t' '$3 != $4 { printf "check_classes: forms.s: %s (%s) classed %s, expected %s\n", $2, $1, $3, $4; bad = 1 }
              END { exit bad }' >&2
echo "check_classes: forms.s: $(wc -l < "$tmp/forms.expected") instructions in their classes"

for binary in "$@"; do
  disassemble "$binary" > "$tmp/bin.dis"
  cut -f1 "$tmp/bin.dis" | "$tmp/classify" | cut -d' ' -f2 | paste "$tmp/bin.dis" - | awk -F'\t' -v name="$binary" '
    BEGIN {
      n = split("sdot udot usdot sudot smmla ummla usmmla bfdot bfmmla bfmlalb bfmlalt", d, " "); for (i = 1; i <= n; i++) dot[d[i]] = 1
      n = split("fmla fmls fmlal fmlal2 fmlsl fmlsl2 mla mls smlal smlal2 umlal umlal2 smlsl smlsl2 umlsl umlsl2 sadalp uadalp fmadd fmsub fnmadd fnmsub", m, " ")
      for (i = 1; i <= n; i++) mac[m[i]] = 1
    }
    {
      want = ""
      if ($2 in dot) want = "dot"; else if ($2 in mac) want = "simd_mac"
      if (want != "" && $3 != want || want == "" && ($3 == "dot" || $3 == "simd_mac")) { wrong[$2 " as " $3]++; bad = 1 }
      if (($2 ~ /^(ld|st|prf|cas|swp)/) != ($3 == "load_store")) { wrong[$2 " as " $3]++; bad = 1 }
      count[$3]++
    }
    END {
      for (k in wrong) printf "check_classes: %s: %d x %s\n", name, wrong[k], k > "/dev/stderr"
      printf "check_classes: %s: %d instructions, dot %d, simd_mac %d, load_store %d: classes agree with the disassembly\n", name, NR, count["dot"], count["simd_mac"], count["load_store"]
      exit bad
    }'
done
