#!/usr/bin/env bash
# Release tarballs for the boards, and their smoke test:
#
#   tools/arm64/package.sh [PKG]     (default: this checkout; CPUs: PACKAGE_CPUS, default "cortex-a72 cortex-a76")
#
# For each CPU (cortex-a72: Raspberry Pi 4; cortex-a76: Pi 5) it makes
# PACKAGE_OUT/edge-ddim-VERSION-aarch64-linux-CPU.tar.gz (default PACKAGE_OUT: PKG/.build/arm64-release), which
# holds:
#   - bin/edge-ddim and bin/convert, built with --static-swift-stdlib, so no Swift is needed on the board;
#   - lib/libedgeddim.so and include/edgeddim.h (the C API, Swift runtime linked in);
#   - lib/libstdc++.so.6, which the static Swift runtime still links dynamically (found through the binaries'
#     RUNPATH $ORIGIN/../lib);
#   - the default model in share/edge-ddim/models/, where the command looks for it;
#   - README.txt.
# Then it checks each tarball as a board would see it:
#   - it unpacks the tarball into an empty folder;
#   - it makes a clean sysroot: Debian trixie's libc6 (with its one dependency, libgcc-s1) and libomp.so.5, and
#     nothing else;
#   - it lists the libraries and the glibc version the binaries need;
#   - from an empty folder, under qemu emulating the board's CPU with that sysroot, it runs
#     `edge-ddim --steps 2 --count 1`;
#   - it compares the PNG with the x86 build's (PKG/.build/release/edge-ddim) computed the same way: within one
#     level per pixel with fp32 activations (the Pi 4's default; the Pi 5 tarball also runs
#     --int8-activations off), within MAX_LEVELS_INT8 with int8 activations (the Pi 5's default; see below).
# Needs the chroot and sysroot of build-arm64.sh (it makes them if missing) and a release build of PKG on the host.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PKG="$(realpath "${1:-$HERE/../..}")"
CPUS="${PACKAGE_CPUS:-cortex-a72 cortex-a76}"
W="${ARM64_WORK:-/var/tmp/edge-ddim-arm64}"
OUT="${PACKAGE_OUT:-$PKG/.build/arm64-release}"
SYSROOT="$W/sysroot-arm64" CLEAN="$W/clean-sysroot"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
VERSION=$(sed -n 's/.*static let version = "\(.*\)".*/\1/p' "$PKG/Sources/EdgeDDIM/Version.swift")
[ -n "$VERSION" ] || { echo "package.sh: no version in Sources/EdgeDDIM/Version.swift" >&2; exit 1; }
HOST_CLI="$PKG/.build/release/edge-ddim"
[ -x "$HOST_CLI" ] || { echo "package.sh: $HOST_CLI not found; run swift build -c release first" >&2; exit 1; }
SCRATCH_BASE="$W/scratch/$(basename "$PKG")-$(printf '%s' "$PKG" | md5sum | cut -c1-8)"
ts() { echo "[package $(date +%H:%M:%S)] $*"; }

# The clean sysroot: extracted, never configured, so nothing runs at setup; libomp.so.5 alone from the build
# sysroot (Debian's libomp5-19 package would also bring libLLVM-19 and libstdc++, which a board may lack).
if [ ! -e "$CLEAN/.complete" ]; then
  ts "clean sysroot: libc6 (+ libgcc-s1) from trixie, and libomp.so.5"
  rm -rf "$CLEAN"
  mmdebstrap --arch=arm64 --variant=extract --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --include=libc6 trixie "$CLEAN" "deb $MIRROR trixie main" > "$W/clean-sysroot.log" 2>&1 \
    || { tail -5 "$W/clean-sysroot.log" >&2; exit 1; }
  for d in bin lib sbin; do [ -e "$CLEAN/$d" ] || ln -s "usr/$d" "$CLEAN/$d"; done
  [ -e "$SYSROOT/.complete" ] || SETUP_ONLY=1 "$HERE/build-arm64.sh" "$PKG"
  cp -L "$SYSROOT/usr/lib/aarch64-linux-gnu/libomp.so.5" "$CLEAN/usr/lib/aarch64-linux-gnu/"
  touch "$CLEAN/.complete"
fi

smoke=$(mktemp -d)
trap 'rm -rf "$smoke"' EXIT
mkdir -p "$OUT"
# The x86 build's images, with int8 activations on and off. The default model has int8 weights; the command
# quantises the activations too only where the CPU has a dot-product instruction (x86's VNNI, the Pi 5's sdot,
# not the Pi 4's), so each board's default run is compared with the x86 run of the same path.
for mode in on off; do
  mkdir -p "$smoke/x86-$mode"
  ( cd "$smoke/x86-$mode" && "$HOST_CLI" --model "$PKG/models/ddpm-fashion-32.edm" --steps 2 --count 1 --int8-activations "$mode" --quiet )
done
# Per pixel, in 8-bit levels. fp32 activations: one level, the issue's bar (measured 0: the two builds' x0
# differ by 1.4e-5). int8 activations: the int8 kernels are bit-identical on every ISA, but the fp32 parts
# around them (GroupNorm, attention, libm's expf, the fp32 GEMMs' summation order) round differently on x86
# and aarch64, and those differences move some activations across a quantisation step; after 2 steps that
# reaches 4 levels (measured: x0 differs by 0.035 at most). The fp32 comparison is the exact check of the
# build; the int8 one bounds the Pi 5's default path.
MAX_LEVELS_FP32=1
MAX_LEVELS_INT8=8
for cpu in $CPUS; do
  name="edge-ddim-$VERSION-aarch64-linux-$cpu"
  ts "$name: static build"
  export SCRATCH="$SCRATCH_BASE/$cpu-static"
  STATIC=1 CONFIG=release TARGET_CPU="$cpu" "$HERE/build-arm64.sh" "$PKG" -Xlinker -rpath -Xlinker '$ORIGIN/../lib' > "$W/package-$cpu.log" 2>&1 \
    || { tail -20 "$W/package-$cpu.log" >&2; exit 1; }
  BIN="$SCRATCH/aarch64-unknown-linux-gnu/release"

  stage="$smoke/stage/$name"
  mkdir -p "$stage/bin" "$stage/lib" "$stage/include" "$stage/share/edge-ddim/models" "$stage/share/doc/edge-ddim"
  install -m 755 "$BIN/edge-ddim" "$BIN/convert" "$stage/bin/"
  install -m 755 "$BIN/libedgeddim.so" "$stage/lib/"
  cp -L "$SYSROOT/usr/lib/aarch64-linux-gnu/libstdc++.so.6" "$stage/lib/"
  install -m 644 "$PKG/Sources/CEdgeDDIM/include/edgeddim.h" "$stage/include/"
  install -m 644 "$PKG/models/ddpm-fashion-32.edm" "$stage/share/edge-ddim/models/"
  install -m 644 "$PKG/README.md" "$PKG/docs/FORMAT.md" "$stage/share/doc/edge-ddim/"
  glibc=$(readelf --version-info --wide "$stage/bin/edge-ddim" "$stage/bin/convert" "$stage/lib/libedgeddim.so" \
          | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 | sed 's/GLIBC_//')
  needed=$(for f in "$stage"/bin/* "$stage/lib/libedgeddim.so"; do readelf -d "$f"; done | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | sort -u | tr '\n' ' ')
  board=$([ "$cpu" = cortex-a72 ] && echo "Raspberry Pi 4 (Cortex-A72), and any later 64-bit ARM board" || echo "Raspberry Pi 5 (Cortex-A76) and other ARMv8.2 boards with dot products")
  cat > "$stage/README.txt" <<EOF
edge-ddim $VERSION for 64-bit ARM Linux, built for the $cpu: $board.

What the board needs: a 64-bit (aarch64) Linux with glibc $glibc or newer (Debian 13 "trixie", Ubuntu 24.04,
Raspberry Pi OS based on trixie) and the OpenMP runtime:

    sudo apt install libomp5

No Swift installation is needed: the Swift runtime is linked into the binaries, and lib/ holds the C++
runtime it uses. The binaries need these libraries: $needed

Run from anywhere (the command finds its default model in ../share/edge-ddim/models/):

    bin/edge-ddim --steps 10            # writes samples.png
    bin/edge-ddim --help

C programs: include/edgeddim.h and lib/libedgeddim.so (see share/doc/edge-ddim/README.md, "Using edge-ddim
from a program"). Converting your own diffusers checkpoint: bin/convert --help.
EOF
  tar -C "$smoke/stage" -czf "$OUT/$name.tar.gz" "$name"
  ts "$name.tar.gz: $(du -k "$OUT/$name.tar.gz" | cut -f1) KB; needs glibc $glibc; $needed"

  # The board's view: unpacked anywhere, run from an empty folder, with only glibc and libomp installed, on
  # the board's own CPU model (qemu's -cpu: a Cortex-A72 has no sdot, so the default run keeps fp32
  # activations as on a real Pi 4; qemu's default CPU would have every extension).
  mkdir -p "$smoke/unpacked-$cpu"
  tar -C "$smoke/unpacked-$cpu" -xzf "$OUT/$name.tar.gz"
  board_run() {  # FOLDER [ARGS...]: the default command, --steps 2 --count 1, from an empty folder
    local dir="$smoke/run-$cpu-$1"; shift
    mkdir -p "$dir"
    ( cd "$dir" && qemu-aarch64-static -cpu "$cpu" -L "$CLEAN" "$smoke/unpacked-$cpu/$name/bin/edge-ddim" --steps 2 --count 1 --quiet "$@" )
    [ -s "$dir/samples.png" ] || { echo "package.sh: $name wrote no samples.png" >&2; exit 1; }
  }
  compare() {  # BOARD_PNG X86_MODE MAX_LEVELS WHAT
    python3 "$HERE/png_diff.py" "$1" "$smoke/x86-$2/samples.png" --max-levels "$3" \
      || { echo "package.sh: $name ($4) differs from the x86 build's by more than $3 levels" >&2; exit 1; }
  }
  qemu-aarch64-static -cpu "$cpu" -L "$CLEAN" "$smoke/unpacked-$cpu/$name/bin/convert" --help > /dev/null \
    || { echo "package.sh: $name's bin/convert does not start" >&2; exit 1; }
  board_run default
  if [ "$cpu" = cortex-a72 ]; then
    compare "$smoke/run-$cpu-default/samples.png" off "$MAX_LEVELS_FP32" "default run: fp32 activations"
  else
    compare "$smoke/run-$cpu-default/samples.png" on "$MAX_LEVELS_INT8" "default run: int8 activations"
    board_run fp32 --int8-activations off
    compare "$smoke/run-$cpu-fp32/samples.png" off "$MAX_LEVELS_FP32" "--int8-activations off"
  fi
  ts "$name: smoke test passed (unpacked, clean sysroot, qemu)"
done
ts "tarballs in $OUT"
