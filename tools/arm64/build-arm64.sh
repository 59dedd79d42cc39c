#!/bin/bash
# build-arm64.sh — cross-build edge-ddim (or any SwiftPM package) for aarch64 Linux and run its tests under
# qemu user-mode emulation, on a Debian 12 (bookworm) x86_64 host, as root, from nothing.
#
#   usage: tools/arm64/build-arm64.sh /path/to/package [extra `swift build`/`swift test` args...]
#          TARGET_CPU=cortex-a76 CONFIG=release tools/arm64/build-arm64.sh .
#
# How it works (cross-compile; nothing arm64 runs during the build):
#   * $W/rootfs-amd64  : Debian trixie amd64 chroot with Debian's swiftlang 6.0.3, the cross compiler (trixie
#                        binaries need glibc >= 2.38, so they can't run on bookworm directly). Same Swift as
#                        on the boards (Debian trixie / Raspberry Pi OS trixie ship swiftlang 6.0.3).
#   * $W/sysroot-arm64 : Debian trixie arm64 tree, only *extracted* (mmdebstrap --variant=extract, no
#                        maintainer scripts, no emulation): arm64 swift stdlib/Foundation/XCTest/Testing
#                        (+ .so), glibc, libstdc++, libgcc, libomp (LLVM 19).
#   * swift build --triple aarch64-unknown-linux-gnu runs natively (x86_64) inside the amd64 chroot; the
#     aarch64 binaries it makes run through binfmt_misc + qemu-aarch64-static, with QEMU_LD_PREFIX pointing
#     at the arm64 sysroot, so plain `swift test` works (and the tests can spawn the built CLI).
#   * Build folders live under $W/scratch (outside the package), bind-mounted into the chroot at the same
#     path; the package dir is bind-mounted at its own absolute path.
#
# Environment knobs:
#   ARM64_WORK=/var/tmp/edge-ddim-arm64  work dir (chroot, sysroot, build folders, logs); never inside the package
#   CONFIG=debug|release     build configuration (default debug)
#   TARGET_CPU=cortex-a72    -target-cpu for swiftc, -mcpu for clang, and EDGE_DDIM_TARGET_CPU for the manifest
#                            (Pi 4 = cortex-a72 / armv8.0; Pi 5 = cortex-a76 / armv8.2 +fp16 +dotprod).
#                            Unset or empty: the compiler's baseline (armv8-a; NEON + FMA included).
#   SCRATCH=path             SwiftPM --scratch-path (default $W/scratch/<package name>-<hash of its path>/<cpu
#                            or baseline>: one per checkout and variant, debug and release side by side)
#   SETUP_ONLY=1             stop after installing host tools and making the chroot + sysroot
#   TIMINGS=file             append "<phase>\t<seconds>" lines to this file (ci.sh prints them as a table)
#   RUN="exe args..."        run that built product (qemu-aarch64-static -L sysroot) after the build
#   SKIP_TESTS=1             build products only (no --build-tests) and don't run `swift test`
#   TEST_ARGS="..."          extra args for `swift test` only (e.g. "--filter CLITests" or "--skip Pipeline")
#   PASS_ENV="A B"           host environment variables passed into the chroot (tests see them)
#   BIND_DIRS="/a /b"        extra host dirs visible in the chroot at the same path (e.g. checkpoints, or
#                            .package(path: "../Other") dependencies outside the package dir)
#   STATIC=1                 --static-swift-stdlib (runtime + Foundation linked in; implies SKIP_TESTS=1)
#   PRUNE=0                  keep the arm64 compiler binaries in the sysroot (default: delete ~1.2 GB)
#   MIRROR=http://deb.debian.org/debian
#
# Pitfalls met on the way (keep this list up to date):
#   1. Debian trixie's swiftlang needs glibc 2.38: it can't run on the bookworm host, hence the trixie chroot.
#      The same holds for the arm64 runtime on the boards (Debian 13 / Raspberry Pi OS trixie / Ubuntu 24.04),
#      even with --static-swift-stdlib (glibc stays dynamic), which also drops XCTest.
#   2. SwiftPM's --sdk only reaches clang (--sysroot); swift-frontend needs `-Xswiftc -sdk` too, or Foundation
#      fails with "missing required module 'SwiftGlibc'".
#   3. The host toolchain's stdlib is x86_64: point -resource-dir at the sysroot's arm64 one.
#   4. The default linker (gold) is host-only: -use-ld=lld.
#   5. RUNPATH: -no-toolchain-stdlib-rpath + -rpath /usr/libexec/swift/lib/swift/linux (Debian's location on
#      the board) so the binaries also run on a Pi, not only in the sysroot.
#   6. mmdebstrap --variant=extract creates no merged-/usr symlinks; libc.so's linker script needs /lib/...
#   7. omp.h: LLVM 19's clang include dir would shadow swift's own clang builtin headers, so only omp*.h is
#      linked into a dir of its own. (_EdgeThreads declares its omp_* functions and needs no header.)
#   8. libomp's unversioned libomp.so lives only in /usr/lib/llvm-19/lib; Package.swift links libomp.so.5 by
#      file name (-l:libomp.so.5), found in the sysroot's multiarch dir.
#   9. Package.swift defaults to `-target-cpu native` when the *manifest* runs on x86_64 — which it does here,
#      in the amd64 chroot. A native x86 CPU name on an aarch64 triple is only a warning and silently gives a
#      baseline build, so EDGE_DDIM_TARGET_CPU is always set in the chroot (empty = baseline), and after the
#      build the llbuild manifest is checked: it must carry the requested -target-cpu and no `native`.
#  10. qemu-user emulates a CPU with every extension (fp16, dotprod, ...), so a cortex-a76 build runs here
#      although it would fault (SIGILL) on a Pi 4's Cortex-A72 as soon as it hits an armv8.2 instruction.
#  11. binfmt_misc needs the 'F' (fix-binary) flag for qemu to work inside the chroot (Debian's
#      qemu-user-static registers it with F); without binfmt the tests' spawned CLI can't run.
#  12. Release builds can't compile tests that use `@testable import` (this package has none).
#  13. Each mount is undone on exit; never rm -rf a tree that still has a bind mount inside (the sysroot is
#      mounted read-only inside the chroot for that reason).
#  14. The host's git redirects github.com to a local mirror folder: the same rule and folder are given to
#      the chroot, or SwiftPM can't fetch swift-argument-parser. (`git config --get-regexp` exits 1 when
#      there is no such rule: under `set -e` that silently ended the script on machines without a mirror.)
#  15. `set -e` alone doesn't run the ERR trap for a failure inside a function (inchroot): -E (errtrace) is
#      needed for the "FAILED at line" message.
#  16. Swift 6.0.3 (Debian's, aarch64) freed an array right after its last use inside a
#      withUnsafeMutableBufferPointer closure, so a pointer that escaped the closure (mkdtemp's result, read
#      by String(cString:) afterwards) trapped: "UnsafeMutablePointer.initialize overlapping range". Swift 6.3
#      on x86-64 didn't. Never use a pointer outside the closure that lent it.
#  17. Tests run under qemu ~250x slower than natively; see ci.sh for the selection that keeps CI short.
#      XCTest's output is block-buffered when piped, so a long test shows nothing until it ends.
set -Eeuo pipefail
trap 'rc=$?; echo "build-arm64.sh: FAILED (exit $rc) at line $LINENO: $BASH_COMMAND" >&2' ERR

PKG_ARG="${1:?usage: $0 /path/to/package [extra swift build args...]}"; shift
PKG="$(realpath "$PKG_ARG")"
[ -f "$PKG/Package.swift" ] || { echo "no Package.swift in $PKG" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "build-arm64.sh must run as root (chroot, mounts, apt)" >&2; exit 2; }
W="${ARM64_WORK:-/var/tmp/edge-ddim-arm64}"
mkdir -p "$W"; W="$(realpath "$W")"
case "$W/" in "$PKG"/*) echo "ARM64_WORK=$W is inside the package $PKG: put it elsewhere" >&2; exit 2;; esac
HOSTFS="$W/rootfs-amd64"
SYSROOT="$W/sysroot-arm64"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
CONFIG="${CONFIG:-debug}"
TARGET_CPU="${TARGET_CPU:-}"
SCRATCH="${SCRATCH:-$W/scratch/$(basename "$PKG")-$(printf '%s' "$PKG" | md5sum | cut -c1-8)/${TARGET_CPU:-baseline}}"
case "$SCRATCH" in /*) ;; *) SCRATCH="$PKG/$SCRATCH";; esac
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
DPKGOPTS=(--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*'
          --dpkgopt='path-exclude=/usr/share/locale/*')
exec 9>"$W/.lock"; flock 9       # one build at a time (shared chroot + mounts)

T0=$(date +%s); ts() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
phase_start() { PH=$(date +%s); ts "== $1"; }
phase_end()   { ts "== $1 took $(( $(date +%s) - PH ))s"
                [ -z "${TIMINGS:-}" ] || printf '%s\t%s\n' "$1" "$(( $(date +%s) - PH ))" >> "$TIMINGS"; }

# ---------------------------------------------------------------- 0. host tools + binfmt
phase_start "host tools / binfmt"
need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v update-binfmts      >/dev/null || need+=(binfmt-support)
command -v mmdebstrap          >/dev/null || need+=(mmdebstrap)
command -v aarch64-linux-gnu-objdump >/dev/null || need+=(binutils-aarch64-linux-gnu)
command -v file                >/dev/null || need+=(file)
[ -f "$KEYRING" ]                         || need+=(debian-archive-keyring)
if [ ${#need[@]} -gt 0 ]; then
  ts "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >"$W/apt-host.log" 2>&1 || { cat "$W/apt-host.log" >&2; exit 1; }
  apt-get install -y -q --no-install-recommends "${need[@]}" >>"$W/apt-host.log" 2>&1 \
    || { tail -30 "$W/apt-host.log" >&2; exit 1; }
fi
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 || true
grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || { echo "qemu-aarch64 binfmt not enabled" >&2; exit 1; }
# 'F' (fix-binary) flag: the interpreter is opened at registration time, so it also works in chroots
grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || echo "WARNING: binfmt qemu-aarch64 lacks F flag" >&2
phase_end "host tools / binfmt"

# ---------------------------------------------------------------- 1+2. trixie amd64 chroot + arm64 sysroot
mk_hostfs() {
  rm -rf "$HOSTFS"
  mmdebstrap --arch=amd64 --variant=apt --keyring="$KEYRING" "${DPKGOPTS[@]}" \
    --include=swiftlang,libc6-dev,libstdc++-14-dev,binutils-gold,git,ca-certificates \
    trixie "$HOSTFS" "deb $MIRROR trixie main" && touch "$HOSTFS/.complete"
}
mk_sysroot() {
  rm -rf "$SYSROOT"
  mmdebstrap --arch=arm64 --variant=extract --keyring="$KEYRING" "${DPKGOPTS[@]}" \
    --include=libc6,libc6-dev,libgcc-14-dev,libstdc++-14-dev,libswiftlang,swiftlang,libomp-dev,libomp5-19 \
    trixie "$SYSROOT" "deb $MIRROR trixie main" || return 1
  # extract variant does not create the merged-/usr symlinks; the libc.so linker script needs /lib/...
  for d in bin lib sbin; do [ -e "$SYSROOT/$d" ] || ln -s "usr/$d" "$SYSROOT/$d"; done
  # silences "Could not read SDKSettings.json for SDK" from swift-driver
  echo '{"Version":"6.0.3","CanonicalName":"debian-trixie-aarch64","DisplayName":"Debian trixie arm64"}' \
    > "$SYSROOT/SDKSettings.json"
  if [ "${PRUNE:-1}" = 1 ]; then   # arm64 compiler executables are never run; keep stdlib/runtime only
    rm -rf "$SYSROOT/usr/libexec/swift/bin" "$SYSROOT"/usr/libexec/swift/lib/liblldb.so* \
           "$SYSROOT/usr/libexec/swift/lib/libsourcekitdInProc.so"
  fi
  touch "$SYSROOT/.complete"
}
if [ ! -e "$HOSTFS/.complete" ] || [ ! -e "$SYSROOT/.complete" ]; then
  phase_start "setup: mmdebstrap trixie amd64 chroot + arm64 sysroot (parallel)"
  # never rm -rf a tree that still has something mounted inside
  if grep -qE " ($HOSTFS|$SYSROOT)/" /proc/mounts; then echo "mounts left under $W; unmount first" >&2; exit 1; fi
  pids=()
  [ -e "$HOSTFS/.complete" ]  || { mk_hostfs  > "$W/setup-amd64.log" 2>&1 & pids+=($!); }
  [ -e "$SYSROOT/.complete" ] || { mk_sysroot > "$W/setup-arm64.log" 2>&1 & pids+=($!); }
  rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done
  [ $rc = 0 ] || { echo "setup failed; see $W/setup-*.log" >&2; tail -5 "$W"/setup-*.log >&2; exit 1; }
  phase_end "setup"
fi
if [ "${SETUP_ONLY:-0}" = 1 ]; then ts "setup only: done"; exit 0; fi

# ---------------------------------------------------------------- 3. mounts (undone on exit)
MOUNTS=()
cleanup() {
  local i
  for (( i=${#MOUNTS[@]}-1; i>=0; i-- )); do umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" || true; done
}
trap cleanup EXIT
bind() { # bind SRC DST [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"; MOUNTS+=("$2")
  [ "${3:-}" = ro ] && mount -o remount,bind,ro "$2"
  return 0
}
mount -t proc proc "$HOSTFS/proc"; MOUNTS+=("$HOSTFS/proc")
bind /dev "$HOSTFS/dev"
if mountpoint -q /dev/shm; then bind /dev/shm "$HOSTFS/dev/shm"; fi   # libomp registers itself in /dev/shm
bind "$SYSROOT" "$HOSTFS/sysroot-arm64" ro
bind "$PKG" "$HOSTFS$PKG"                       # same absolute path inside the chroot
mkdir -p "$W/scratch"
bind "$W/scratch" "$HOSTFS$W/scratch"           # build folders, outside the package
case "$SCRATCH/" in "$W/scratch/"*|"$PKG/"*) ;; *) mkdir -p "$SCRATCH"; bind "$SCRATCH" "$HOSTFS$SCRATCH";; esac
for d in ${BIND_DIRS:-}; do
  [ -d "$d" ] || { echo "BIND_DIRS: $d is not a directory" >&2; exit 2; }
  d="$(realpath "$d")"; [ "$d" = "$PKG" ] || bind "$d" "$HOSTFS$d" ro
done
# Local git mirrors of GitHub packages, where the host's git config redirects github.com to a folder:
# make the same folder visible in the chroot with the same rule.
PKG_MIRROR="${PKG_MIRROR:-$(git config --system --get-regexp '^url\..*\.insteadof$' 2>/dev/null \
  | awk '$2 ~ /github\.com/ {print $1; exit}' | sed -e 's/^url\.//' -e 's/\.insteadof$//' || true)}"
if [ -n "$PKG_MIRROR" ] && [ -d "$PKG_MIRROR" ]; then
  bind "$PKG_MIRROR" "$HOSTFS$PKG_MIRROR" ro
  printf '[url "%s"]\n\tinsteadOf = https://github.com/\n\tinsteadOf = git@github.com:\n\tinsteadOf = ssh://git@github.com/\n' \
    "${PKG_MIRROR%/}/" > "$HOSTFS/etc/gitconfig"
  # the mirror is owned by another user than the chroot's root
  printf '[safe]\n\tdirectory = *\n' >> "$HOSTFS/etc/gitconfig"
fi
# omp.h of the arm64 libomp-19-dev, in a dir of its own (the whole clang-19 include dir would shadow
# swift's clang-17 builtin headers)
mkdir -p "$HOSTFS/opt/omp-include"
for h in "$SYSROOT"/usr/lib/llvm-19/lib/clang/19/include/omp*.h; do
  ln -sf "/sysroot-arm64/usr/lib/llvm-19/lib/clang/19/include/$(basename "$h")" "$HOSTFS/opt/omp-include/"
done

# ---------------------------------------------------------------- 4. build
FLAGS=(
  -c "$CONFIG" --scratch-path "$SCRATCH"
  --triple aarch64-unknown-linux-gnu --sdk /sysroot-arm64
  -Xswiftc -sdk -Xswiftc /sysroot-arm64          # SwiftPM only passes --sysroot to clang; swift-frontend
                                                 # needs -sdk or Foundation fails: "missing required module 'SwiftGlibc'"
  -Xswiftc -resource-dir -Xswiftc /sysroot-arm64/usr/libexec/swift/lib/swift   # arm64 stdlib/Foundation/XCTest
  -Xswiftc -use-ld=lld                           # toolchain's lld links aarch64 (default gold = host-only)
  -Xswiftc -no-toolchain-stdlib-rpath            # RUNPATH = $ORIGIN:/usr/libexec/swift/lib/swift/linux
  -Xlinker -rpath -Xlinker /usr/libexec/swift/lib/swift/linux   #   (Debian's location on the board)
  -Xcc -I/opt/omp-include                        # omp.h
  -Xlinker -L/sysroot-arm64/usr/lib/llvm-19/lib  # libomp.so dev symlink lives only there
)
if [ "${STATIC:-0}" = 1 ]; then     # fully static Swift runtime+Foundation (glibc stays dynamic); no XCTest
  # with an explicit -resource-dir the driver looks for static-stdlib-args.lnk in <resource-dir>/linux,
  # so point it at swift_static instead of swift
  for i in "${!FLAGS[@]}"; do
    [ "${FLAGS[$i]}" = /sysroot-arm64/usr/libexec/swift/lib/swift ] && FLAGS[$i]=/sysroot-arm64/usr/libexec/swift/lib/swift_static
  done
  FLAGS+=(--static-swift-stdlib); SKIP_TESTS=1
fi
if [ -n "$TARGET_CPU" ]; then FLAGS+=(-Xswiftc -target-cpu -Xswiftc "$TARGET_CPU" -Xcc "-mcpu=$TARGET_CPU"); fi
FLAGS+=("$@")
q() { printf '%q ' "$@"; }
CHROOT_ENV=(HOME=/root PATH=/usr/local/bin:/usr/bin:/bin QEMU_LD_PREFIX=/sysroot-arm64 LANG=C.UTF-8
            TERM="${TERM:-dumb}" EDGE_DDIM_TARGET_CPU="$TARGET_CPU")
for v in ${PASS_ENV:-}; do
  [ -n "${!v+set}" ] || { echo "PASS_ENV: $v is not set" >&2; exit 2; }
  CHROOT_ENV+=("$v=${!v}")
done
inchroot() {  # run a shell command in the amd64 chroot, in the package dir
  chroot "$HOSTFS" /usr/bin/env -i "${CHROOT_ENV[@]}" /bin/bash -c "cd $(q "$PKG") && $1"
}
BUILD_TESTS=--build-tests; [ "${SKIP_TESTS:-0}" = 1 ] && BUILD_TESTS=
phase_start "swift build -c $CONFIG $BUILD_TESTS (target cpu: ${TARGET_CPU:-baseline})"
inchroot "swift build $BUILD_TESTS $(q "${FLAGS[@]}")"
phase_end "build ${TARGET_CPU:-baseline} $CONFIG"

# Pitfall 9: prove the requested CPU reached every Swift compile, and `native` none.
LLMANIFEST="$SCRATCH/$CONFIG.yaml"
[ -f "$LLMANIFEST" ] || LLMANIFEST="$(ls -t "$SCRATCH"/*.yaml 2>/dev/null | head -1 || true)"
[ -f "$LLMANIFEST" ] || { echo "no llbuild manifest in $SCRATCH: can't check -target-cpu" >&2; exit 1; }
if grep -q '"-target-cpu","native"' "$LLMANIFEST"; then
  echo "FATAL: -target-cpu native in $LLMANIFEST (EDGE_DDIM_TARGET_CPU did not reach the manifest)" >&2; exit 1
fi
if [ -n "$TARGET_CPU" ]; then
  grep -q "\"-target-cpu\",\"$TARGET_CPU\"" "$LLMANIFEST" \
    || { echo "FATAL: -target-cpu $TARGET_CPU not found in $LLMANIFEST" >&2; exit 1; }
fi
BIN="$SCRATCH/aarch64-unknown-linux-gnu/$CONFIG"
ts "products in $BIN:"
for f in "$BIN"/*; do
  if [ -f "$f" ] && [ -x "$f" ] && file "$f" | grep -q 'ARM aarch64'; then echo "   $(basename "$f")"; fi
done

# ---------------------------------------------------------------- 5. run / test under qemu (binfmt)
if [ -n "${RUN:-}" ]; then   # RUN="exe args..." : run the built product directly through qemu
  read -ra RUNV <<< "$RUN"
  phase_start "run: qemu-aarch64-static -L sysroot $RUN"
  qemu-aarch64-static -L "$SYSROOT" "$BIN/${RUNV[0]}" "${RUNV[@]:1}"
  phase_end "run"
fi
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  phase_start "swift test -c $CONFIG (XCTest + Swift Testing) under qemu ${TEST_ARGS:-}"
  inchroot "swift test --skip-build $(q "${FLAGS[@]}") ${TEST_ARGS:-}"
  phase_end "tests ${TARGET_CPU:-baseline} $CONFIG (qemu)"
fi
ts "done. Run a binary by hand:  qemu-aarch64-static -L $SYSROOT $BIN/<exe>"
