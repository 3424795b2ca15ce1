#!/usr/bin/env bash
# The realtime daemon at steady state: CPU % of one core, peak RSS, and latency from capture
# ring to socket (see benches/daemon.py). Builds hark, makes the 632 s recording and its 16 kHz
# mono and 48 kHz stereo copies if absent, then runs benches/daemon.py with the arguments given.
# Runs at real time: each run takes its --seconds plus ~12 s. Needs sox, taskset, and for
# --pulse the packages pulseaudio pulseaudio-utils libasound2-plugins (scripts/setup.sh --test).
# Usage: benches/daemon.sh [--runs 44k,16k:120,48k2:60] [--pulse] [--seconds 120] [--json FILE]
#        LONG=/path/to/long.wav benches/daemon.sh ...      (default /tmp/hark-bench/long.wav)
set -euo pipefail
cd "$(dirname "$0")/.."
LONG=${LONG:-/tmp/hark-bench/long.wav}
cargo build --release -q
mkdir -p "$(dirname "$LONG")"
[ -s "$LONG" ] || benches/make_long_recording.sh "$LONG" >/dev/null
base=${LONG%.wav}
[ -s "${base}16k.wav" ] || sox -V1 "$LONG" -r 16000 "${base}16k.wav"
[ -s "${base}48k2.wav" ] || sox -V1 "$LONG" -c 2 -r 48000 "${base}48k2.wav"
exec python3 benches/daemon.py --long "$LONG" "$@"
