#!/usr/bin/env bash
# Build a deterministic >= 600 s, 44.1 kHz, mono, 16-bit WAV from the real recordings in
# ../shared/data/recordings (quiet room, both smoke alarms, fireworks, door knock, cat, dog,
# background, boiling water, in that order, repeated until the total reaches 600 s), for
# benchmarks of `hark run --fast` against scripts/peer_pipeline.py. Prints its duration.
# Usage: benches/make_long_recording.sh OUT.wav      (needs sox; keep the output out of git)
set -euo pipefail
out=${1:?usage: $0 OUT.wav}
R=${RECORDINGS:-$(cd "$(dirname "$0")/.." && pwd)/../shared/data/recordings}
names="smoke_test_quiet_room_recording_20250720_091036 first_alert_7010b first_alert_sa302
fireworks door_knock_Door5 cat_meow_Cat2 dog_bark_34541_clip_001 background_Background11
boiling_water_Boiling5"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
parts=()
for n in $names; do
  # -D: no dither, so the output is the same on every run. The quiet-room file's header claims
  # 2^31 frames; sox warns ("premature EOF") and reads what is there.
  sox -V1 -D "$R/$n.wav" -b 16 -c 1 -r 44100 "$tmp/$n.wav"
  parts+=("$tmp/$n.wav")
done
cycle=$(sox -V1 "${parts[@]}" -n stat 2>&1 | awk '/^Length/ {print $3}')
repeats=$(awk -v c="$cycle" 'BEGIN {n = int(600 / c); if (n * c < 600) n++; print n}')
list=()
for _ in $(seq "$repeats"); do list+=("${parts[@]}"); done
sox -V1 -D "${list[@]}" "$out"
soxi -D "$out"
