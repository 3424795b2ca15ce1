#!/usr/bin/env bash
# Clips (issue 13): the daemon's steady-state CPU with [clips] on and no events, against the
# same run with clips off, interleaved so both see the same machine. Input: 30 s of quiet pink
# noise at 48 kHz (no event), read in real time (`hark run --input FILE --exit-at-end`).
# Prints user+sys CPU seconds per run and the on/off ratio of the medians.
# Needs sox. Usage: benches/clips_daemon.sh [ROUNDS]   (default 3; each round takes ~62 s)
# HARK=/path/to/hark SKIP_BUILD=1 runs a given binary without building.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
HARK=${HARK:-./target/release/hark}; [ -n "${SKIP_BUILD:-}" ] || cargo build --release -q
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sox -V1 -n -r 48000 -c 1 -b 16 "$work/quiet.wav" synth 30 pinknoise vol 0.003
printf '[clips]\nenabled = false\n' >"$work/off.toml"
printf '[clips]\nenabled = true\ndir = "%s/clips"\n' "$work" >"$work/on.toml"
declare -a off on
for i in $(seq "$rounds"); do
  for mode in off on; do
    s=$( { /usr/bin/env bash -c "TIMEFORMAT='%U %S'; time $HARK --log warn run --config '$work/$mode.toml' --no-socket --print none --input '$work/quiet.wav' --exit-at-end >/dev/null" ; } 2>&1 | awk '{print $1+$2}')
    echo "round $i clips $mode: $s s CPU"
    if [ "$mode" = off ]; then off+=("$s"); else on+=("$s"); fi
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m_off=$(median "${off[@]}"); m_on=$(median "${on[@]}")
echo "median CPU s per 30 s: off $m_off, on $m_on, on/off $(awk -v a="$m_on" -v b="$m_off" 'BEGIN {printf "%.3f", a/b}')"
ls "$work/clips" | wc -l | xargs echo "files in the clips folder (expect 0: no events):"
