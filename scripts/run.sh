#!/usr/bin/env bash
# Set up what hark needs, build it in release mode, and start its main job on the embedded
# defaults (the default model and config). Extra arguments go to `hark run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked
exec target/release/hark run "$@"
