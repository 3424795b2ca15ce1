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
