#!/usr/bin/env bash
# Benchmarks, as ratios within one run (timings on a shared 2-core machine are noisy):
#  1. `hark classify` vs a Python peer doing the same job with onnxruntime, on the same files.
#  2. `hark run --fast` (the realtime pipeline, fed as fast as it takes samples) on the same files:
#     how many times faster than real time the consumer runs.
# Needs: scripts/setup.sh done, hyperfine and bc (apt), a Python venv with onnxruntime==1.31.1,
# numpy, scipy, soundfile (PY=path/to/python), and ../shared/data/recordings.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
R=../shared/data/recordings
FILES="$R/fireworks.wav $R/first_alert_7010b.wav $R/first_alert_sa302.wav $R/smoke_test_quiet_room_recording_20250720_091036.wav"
cargo build --release --locked -q
hyperfine --warmup 1 --runs 5 -N --export-markdown /tmp/hark-bench.md \
  "target/release/hark --log error classify $FILES" \
  "$PY benches/peer_classify.py models/ced-tiny.onnx $FILES"
cat /tmp/hark-bench.md
# Durations from the data actually present (one recording's header claims 2^31 frames).
total=$(python3 -c 'import sys, wave
ws = [wave.open(f) for f in sys.argv[1:]]
print(sum(len(w.readframes(1 << 31)) / w.getsampwidth() / w.getnchannels() / w.getframerate() for w in ws))' $FILES)
start=$(date +%s.%N)
for f in $FILES; do
  target/release/hark --log error run --input "$f" --fast --exit-at-end --no-socket --print none
done
end=$(date +%s.%N)
python3 -c "import sys; a, s, e = map(float, sys.argv[1:]); print(f'hark run --fast: {a:.1f} s of audio in {e - s:.2f} s = {a / (e - s):.0f}x real time')" "$total" "$start" "$end"
