#!/usr/bin/env bash
# Builds the DocC documentation of the EdgeDDIM library (its catalog Sources/EdgeDDIM/EdgeDDIM.docc and the doc
# comments of everything `import EdgeDDIM` brings, the re-exported modules included), with warnings as errors,
# so a broken symbol link or a missing page fails CI:
#
#   tools/docs.sh [--output DIR]     (default .build/docs/EdgeDDIM.doccarchive; open it with `docc preview`)
#
# The symbol graphs come from a build in its own scratch folder (.build/docs/build), so the normal build's flags
# are not disturbed. Needs only the Swift toolchain (which ships `docc`).
set -euo pipefail
cd "$(dirname "$0")/.."
out=.build/docs/EdgeDDIM.doccarchive
while [ $# -gt 0 ]; do
  case "$1" in
    --output) out=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "docs.sh: unknown option $1 (--output DIR)" >&2; exit 2 ;;
  esac
done
docc=$(command -v docc || true)
[ -n "$docc" ] || docc="$(dirname "$(command -v swift)")/docc"
[ -x "$docc" ] || { echo "docs.sh: docc not found beside swift" >&2; exit 1; }
graphs=.build/docs/symbol-graphs
rm -rf "$graphs" && mkdir -p "$graphs"
swift build --target EdgeDDIM --scratch-path .build/docs/build \
  -Xswiftc -emit-symbol-graph -Xswiftc -emit-symbol-graph-dir -Xswiftc "$(pwd)/$graphs"
# EdgeDDIM's own graph holds the re-exported modules' symbols too; the others would be separate modules.
selected=.build/docs/EdgeDDIM-graphs
rm -rf "$selected" && mkdir -p "$selected"
cp "$graphs"/EdgeDDIM.symbols.json "$selected/"
cp "$graphs"/EdgeDDIM@*.symbols.json "$selected/" 2>/dev/null || true
rm -rf "$out"
"$docc" convert Sources/EdgeDDIM/EdgeDDIM.docc --additional-symbol-graph-dir "$selected" \
  --fallback-display-name EdgeDDIM --fallback-bundle-identifier edge-ddim.EdgeDDIM \
  --output-path "$out" --warnings-as-errors
echo "docs.sh: wrote $out"
