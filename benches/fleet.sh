#!/usr/bin/env bash
# A fleet on one broker: 20 `hark run` instances with distinct nodes, each playing a real
# recording, publish to one mosquitto; `mosquitto_sub -t 'hark/+/event'` must get every event of
# every instance (checked against each one's --print json). Prints the events counted, the
# harks' and the broker's CPU and peak memory (benches/fleet.py). Needs mosquitto and
# mosquitto-clients. Runs at real time (about as long as the longest recording, 42 s) unless
# --fast. Usage: nice -n 10 benches/fleet.sh [--instances 20] [--fast] [--recordings DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
exec python3 benches/fleet.py "$@"
