#!/usr/bin/env bash
# hark run --fast vs the Python peer vs the bare inference floor, and hark classify --batch N,
# as ratios from one run of interleaved rounds (see benches/pipeline.py for what is measured).
# Builds hark, makes the 632 s recording if absent, then runs benches/pipeline.py with the
# arguments given. Needs ../shared/data/recordings, sox, taskset, and a venv with librosa +
# onnxruntime (PY, default /work/bench-venv/bin/python).
# Usage: benches/pipeline.sh [--rounds 3] [--json FILE] [--batches 1,4,8,16] [...]
#        LONG=/path/to/long.wav benches/pipeline.sh ...      (default /tmp/hark-bench/long.wav)
set -euo pipefail
cd "$(dirname "$0")/.."
LONG=${LONG:-/tmp/hark-bench/long.wav}
[ -d ../shared/data/recordings ] || { echo "pipeline.sh: ../shared/data/recordings is missing" >&2; exit 2; }
cargo build --release -q
if [ ! -s "$LONG" ]; then
  mkdir -p "$(dirname "$LONG")"
  benches/make_long_recording.sh "$LONG" >/dev/null
fi
exec python3 benches/pipeline.py "$LONG" "$@"
