#!/usr/bin/env bash
# Cross-build hark for a 64-bit Raspberry Pi (aarch64-unknown-linux-gnu) on Debian 12 x86_64,
# idempotently:
#   - apt: gcc-aarch64-linux-gnu and, through multiarch (dpkg --add-architecture arm64),
#     libasound2-dev:arm64 and libpulse-dev:arm64; the Rust target through rustup
#   - the release binary, target/aarch64-unknown-linux-gnu/release/hark
#   - with --tests, also the unit and integration test binaries, for scripts/test-aarch64.sh
#   - the aarch64 ONNX Runtime, from the same PyPI wheel version as scripts/setup.sh's x86 one,
#     into third_party/onnxruntime-aarch64/
#   - with --deb, the arm64 package: target/debian/hark_<version>-1_arm64.deb (cargo-deb; it is
#     installed with `cargo install cargo-deb --locked` when missing)
# Usage: scripts/build-aarch64.sh [--tests] [--deb]
# Environment: CARGO_BUILD_JOBS, NICE (default 10: the cross build is long and CPU-bound).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=aarch64-unknown-linux-gnu
ORT_VERSION=1.31.1
ORT_DIR=$ROOT/third_party/onnxruntime-aarch64
NICE=${NICE:-10}

say() { printf '\033[1mhark build-aarch64:\033[0m %s\n' "$*" >&2; }

want_tests=0 want_deb=0
for arg in "$@"; do
    case $arg in
        --tests) want_tests=1 ;;
        --deb) want_deb=1 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) say "unknown argument $arg (see --help)"; exit 1 ;;
    esac
done

SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo

# --- apt: the cross linker and the arm64 ALSA and PulseAudio libraries ----------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    say "adding the dpkg architecture arm64 (multiarch)"
    $SUDO dpkg --add-architecture arm64
    $SUDO apt-get update -qq
fi
missing=()
for p in gcc-aarch64-linux-gnu libc6-dev-arm64-cross libasound2-dev:arm64 libpulse-dev:arm64 pkg-config python3-pip; do
    installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing apt packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! rustup target list --installed | grep -qx "$TARGET"; then
    say "adding the Rust target $TARGET"
    rustup target add "$TARGET"
fi

# --- the cross build --------------------------------------------------------------------------
# alsa-sys finds ALSA through pkg-config: point it at the arm64 .pc files only.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export PKG_CONFIG_ALLOW_CROSS=1 PKG_CONFIG_PATH=
export PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
say "building the release binary for $TARGET"
nice -n "$NICE" cargo build --release --locked --target "$TARGET"
if [ $want_tests = 1 ]; then
    say "building the test binaries for $TARGET"
    # Where each test binary is ("lib PATH", "it PATH", ...), for scripts/test-aarch64.sh.
    # Only the two binaries scripts/test-aarch64.sh runs: the unit tests and tests/it.
    nice -n "$NICE" cargo test --release --locked --target "$TARGET" --no-run --lib --test it \
            --message-format=json-render-diagnostics \
        | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"] if "lib" not in m["target"]["kind"] else "lib", m["executable"])
' > "target/$TARGET/release/test-binaries.txt"
fi

# --- ONNX Runtime for aarch64 -----------------------------------------------------------------
# The same wheel version as x86 (scripts/setup.sh); for 1.31.1 the aarch64 wheels are tagged
# manylinux_2_28 (pip takes the first tag it finds a wheel for). The C library inside is the
# same for every Python version.
if [ ! -e "$ORT_DIR/libonnxruntime.so.$ORT_VERSION" ]; then
    say "fetching ONNX Runtime $ORT_VERSION for aarch64 (PyPI wheel) into $ORT_DIR"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --no-deps --only-binary=:all: --disable-pip-version-check \
        --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 \
        --platform manylinux2014_aarch64 --python-version 3.11 \
        "onnxruntime==$ORT_VERSION" -d "$tmp"
    mkdir -p "$ORT_DIR"
    python3 - "$tmp"/onnxruntime-*aarch64.whl "$ORT_DIR" <<'PY'
import sys, zipfile, os
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if n.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime"):
            with open(os.path.join(out, base), "wb") as f:
                f.write(z.read(n))
PY
    ln -sf "libonnxruntime.so.$ORT_VERSION" "$ORT_DIR/libonnxruntime.so"
fi
file -L "$ORT_DIR/libonnxruntime.so" | grep -q 'ARM aarch64' \
    || { say "$ORT_DIR/libonnxruntime.so is not an aarch64 library"; exit 1; }

# --- the arm64 package ------------------------------------------------------------------------
if [ $want_deb = 1 ]; then
    if ! cargo deb --version >/dev/null 2>&1; then
        say "installing cargo-deb"
        nice -n "$NICE" cargo install cargo-deb --locked
    fi
    # cargo-deb maps the assets' target/release/ to target/$TARGET/release/ and strips with
    # aarch64-linux-gnu-objcopy; --no-build: the binary was built above.
    nice -n "$NICE" cargo deb --no-build --target "$TARGET"
    deb=$(ls -t target/debian/hark_*_arm64.deb | head -n1)
    say "package: $deb"
fi
say "binary: target/$TARGET/release/hark; ONNX Runtime: $ORT_DIR"
