#!/usr/bin/env bash
# The web sink's cost at steady state: CPU % of one core of `hark run` playing pink noise at
# real time, (a) with [http] off, (b) on with no page open, (c) on with a spectrogram stream
# open (what an open page costs the consumer), (d) on with the record stream open as well.
# The states alternate, ROUNDS times, so that load from other processes falls on all of them.
# CPU = utime + stime from /proc/PID/stat over SECONDS after 5 s of warm-up.
# Usage: nice -n 10 benches/http.sh [SECONDS=30] [ROUNDS=2]    (needs sox, curl)
#        HARK_PREBUILT=1 HARK=/path/to/hark benches/http.sh ...   (no cargo build)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=${1:-30}
ROUNDS=${2:-2}
HARK=${HARK:-target/release/hark}
[ -n "${HARK_PREBUILT:-}" ] || cargo build --release -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
noise="$work/noise.wav"
sox -V1 -n -r 44100 -c 1 -b 16 "$noise" synth $((ROUNDS * 4 * (SECONDS_PER + 10) + 60)) pinknoise vol 0.3
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf '[http]\nenabled = false\n' > "$work/off.toml"
printf '[http]\nenabled = true\nlisten = "127.0.0.1:%s"\n' "$port" > "$work/on.toml"
tick=$(getconf CLK_TCK)

cpu_of() { awk '{ split($0, a, ") "); split(a[2], f, " "); print f[12] + f[13] }' "/proc/$1/stat"; }

measure() { # state -> prints "state cpu%"
    local state=$1 conf=on streams=()
    [ "$state" = off ] && conf=off
    "$HARK" --log error run --config "$work/$conf.toml" --no-socket --print none \
        --input "$noise" &
    local pid=$!
    sleep 3
    if [ "$state" = spectrogram ] || [ "$state" = page ]; then
        curl -sN "http://127.0.0.1:$port/api/spectrogram" > /dev/null & streams+=($!)
    fi
    if [ "$state" = page ]; then
        curl -sN "http://127.0.0.1:$port/api/stream?subscribe=prediction,event_start,event_end,status" > /dev/null & streams+=($!)
    fi
    sleep 5
    local c0 c1
    c0=$(cpu_of $pid)
    sleep "$SECONDS_PER"
    c1=$(cpu_of $pid)
    for s in "${streams[@]}"; do kill "$s" 2>/dev/null || true; done
    kill -TERM $pid; wait $pid || true
    awk -v s="$state" -v a="$c0" -v b="$c1" -v t="$tick" -v n="$SECONDS_PER" \
        'BEGIN { printf "%-12s %5.2f %% of one core\n", s, (b - a) / t / n * 100 }'
}

echo "$(date -u +%FT%TZ) hark $(git rev-parse --short HEAD), ${SECONDS_PER} s per run, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
    for state in off on spectrogram page; do measure $state; done
done
