#!/usr/bin/env bash
# Installs the command-line tools and the default model after a build:
#
#   swift build -c release && tools/install.sh --prefix DIR [--from BUILD_PRODUCTS]   (default: .build/release)
#
# DIR/bin/edge-ddim and DIR/bin/convert, the default model in DIR/share/edge-ddim/models/ (where the installed
# command looks for it: ../share/edge-ddim/models/ beside its own executable), and the README and format document
# in DIR/share/doc/edge-ddim/. The binaries keep the Swift toolchain's runtime libraries in their run path (they
# run where the toolchain that built them is installed); nothing else is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="" from=.build/release
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --from) from=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (--prefix DIR [--from BUILD_PRODUCTS])" >&2; exit 2 ;;
  esac
done
[ -n "$prefix" ] || { echo "install.sh: --prefix DIR is required" >&2; exit 2; }
for tool in edge-ddim convert; do
  [ -x "$from/$tool" ] || { echo "install.sh: $from/$tool not found; run swift build -c release first (or pass --from)" >&2; exit 1; }
done
install -d "$prefix/bin" "$prefix/share/edge-ddim/models" "$prefix/share/doc/edge-ddim"
install -m 755 "$from/edge-ddim" "$from/convert" "$prefix/bin/"
install -m 644 models/ddpm-fashion-32.edm "$prefix/share/edge-ddim/models/"
install -m 644 README.md docs/FORMAT.md "$prefix/share/doc/edge-ddim/"
echo "installed edge-ddim $("$prefix/bin/edge-ddim" --version | sed 's/^edge-ddim //') into $prefix"
