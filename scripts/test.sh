#!/usr/bin/env bash
# Set up everything the tests need, then run every check CI runs:
# formatting, clippy with warnings as errors, and the whole test suite (unit, integration,
# end-to-end with the real ONNX Runtime, the real model and a file-backed ALSA device).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/third_party/onnxruntime/libonnxruntime.so}"
cargo fmt --check
python3 scripts/check-structure.py
cargo clippy --all-targets --locked -- -D warnings
cargo build --release --locked
cargo test --release --locked -- --test-threads 2
# The aarch64 (Raspberry Pi) build under emulation, when asked for: HARK_TEST_AARCH64=1 cross-builds
# hark and its tests and runs the subset of scripts/test-aarch64.sh under qemu-aarch64-static.
# Not set by .ci/run: a cross build from a clean target dir alone takes about a quarter of an hour
# here (docs/raspberry-pi.md, "Verified under emulation", has the measured times).
if [ "${HARK_TEST_AARCH64:-0}" = 1 ]; then
    bash scripts/test-aarch64.sh
fi
