#!/usr/bin/env bash
# Installs the command-line tools and the default model after a build:
#
#   swift build -c release && tools/install.sh --prefix DIR [--from BUILD_PRODUCTS]   (default: .build/release)
#
# DIR/bin/edge-ddim and DIR/bin/convert, the C API's DIR/lib/libedgeddim.so and DIR/include/edgeddim.h, the
# default model in DIR/share/edge-ddim/models/ (where the installed command looks for it:
# ../share/edge-ddim/models/ beside its own executable), and the README, the format document and the C and Python
# examples in DIR/share/doc/edge-ddim/. The binaries keep the Swift toolchain's runtime libraries in their run
# path (they run where the toolchain that built them is installed); nothing else is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="" from=.build/release
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --from) from=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (--prefix DIR [--from BUILD_PRODUCTS])" >&2; exit 2 ;;
  esac
done
[ -n "$prefix" ] || { echo "install.sh: --prefix DIR is required" >&2; exit 2; }
for built in edge-ddim convert libedgeddim.so; do
  [ -x "$from/$built" ] || { echo "install.sh: $from/$built not found; run swift build -c release first (or pass --from)" >&2; exit 1; }
done
install -d "$prefix/bin" "$prefix/lib" "$prefix/include" "$prefix/share/edge-ddim/models" "$prefix/share/doc/edge-ddim/examples"
install -m 755 "$from/edge-ddim" "$from/convert" "$prefix/bin/"
install -m 755 "$from/libedgeddim.so" "$prefix/lib/"
install -m 644 Sources/CEdgeDDIM/include/edgeddim.h "$prefix/include/"
install -m 644 tools/examples/c/generate.c tools/examples/python/generate.py "$prefix/share/doc/edge-ddim/examples/"
install -m 644 models/ddpm-fashion-32.edm "$prefix/share/edge-ddim/models/"
install -m 644 README.md docs/FORMAT.md "$prefix/share/doc/edge-ddim/"
echo "installed edge-ddim $("$prefix/bin/edge-ddim" --version | sed 's/^edge-ddim //') into $prefix"
