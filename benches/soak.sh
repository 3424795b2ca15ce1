#!/usr/bin/env bash
# Soak: `hark run` for a long time on a looped real recording played at real time, with 50
# socket subscribers (10 of which never read), a hook on every event and a SIGHUP every
# minute, optionally with both cores loaded by stress-ng. Reports ring overruns, skipped
# windows, RSS and open fds at start and end, and the events heard against `hark classify
# --events` of the same audio (the pipeline run offline, on a quiet machine).
# Not a test and not in CI. Needs sox, python3, and for STRESS=1 stress-ng (apt).
# Usage: benches/soak.sh [SECONDS=600]          STRESS=1 benches/soak.sh 3600
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_WANTED=${1:-600}
STRESS=${STRESS:-0}
SHARED=${SHARED:-../shared/data/recordings}
[ -d "$SHARED" ] || SHARED=/work/shared/data/recordings
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$PWD/third_party/libonnxruntime.so}
cargo build --release -q
HARK=$PWD/target/release/hark
WORK=$(mktemp -d /tmp/hark-soak.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

# A minute of real sounds (a knock, a smoke alarm, a dog, a room's background: 10 s of each
# and 5 s of silence after it), repeated to cover the run.
parts=()
for f in door_knock_Door5.wav first_alert_7010b.wav dog_bark_34541_clip_001.wav background_Background11.wav; do
    [ -f "$SHARED/$f" ] && parts+=("$SHARED/$f")
done
[ ${#parts[@]} -gt 0 ] || { echo "no recordings in $SHARED" >&2; exit 1; }
for p in "${parts[@]}"; do
    sox -V1 "$p" -r 16000 -c 1 -b 16 "$WORK/$(basename "$p")" trim 0 10 pad 0 5
done
sox -V1 "$WORK"/*.wav "$WORK/minute.wav"
minute=$(soxi -D "$WORK/minute.wav")
repeats=$(python3 -c "import math; print(max(0, math.ceil($SECONDS_WANTED / $minute) - 1))")
sox -V1 "$WORK/minute.wav" "$WORK/loop.wav" repeat "$repeats"
echo "input: $(soxi -D "$WORK/loop.wav") s of ${parts[*]##*/} looped"

cat > "$WORK/hark.toml" <<TOML
[[hooks]]
name = "soak"
labels = ["*"]
on = ["event_start", "event_end"]
command = ["sh", "-c", "cat > /dev/null; echo ran"]
timeout = 5.0
max_concurrent = 4
TOML

# Quiet reference: the same audio offline.
"$HARK" classify --events --format csv "$WORK/loop.wav" > "$WORK/quiet.csv" 2>/dev/null
quiet_events=$(($(wc -l < "$WORK/quiet.csv") - 1))

STRESS_PID=
if [ "$STRESS" = 1 ]; then
    stress-ng --cpu 2 --timeout "$((SECONDS_WANTED + 60))s" --quiet &
    STRESS_PID=$!
fi

"$HARK" --log info run --config "$WORK/hark.toml" --socket "$WORK/hark.sock" --print json \
    --input "$WORK/loop.wav" --exit-at-end > "$WORK/out.jsonl" 2> "$WORK/err.log" &
PID=$!
for _ in $(seq 100); do [ -S "$WORK/hark.sock" ] && break; sleep 0.2; done
python3 - "$WORK/hark.sock" "$WORK/subs.json" <<'PY' &
import json, select, socket, sys, time
path, out = sys.argv[1], sys.argv[2]
readers, idle = [], []
for i in range(50):
    s = socket.socket(socket.AF_UNIX); s.connect(path)
    (idle if i < 10 else readers).append(s)
lines = [0] * len(readers)
open_ = set(range(len(readers)))
while open_:
    ready, _, _ = select.select([readers[i] for i in open_], [], [], 1.0)
    for s in ready:
        i = readers.index(s); data = s.recv(65536)
        if not data: open_.discard(i)
        else: lines[i] += data.count(b"\n")
json.dump({"readers": len(readers), "idle": len(idle), "lines_min": min(lines), "lines_max": max(lines)}, open(out, "w"))
PY
SUBS=$!

sample() { # rss_kib fds
    echo "$(awk '/VmRSS/ {print $2}' /proc/$PID/status) $(ls /proc/$PID/fd | wc -l)"
}
sleep 30
read -r rss0 fd0 < <(sample)
start=$(date +%s); hups=0
while kill -0 $PID 2>/dev/null; do
    sleep 1
    now=$(date +%s)
    if [ $(( (now - start) % 60 )) -eq 0 ] && kill -0 $PID 2>/dev/null; then
        read -r rss1 fd1 < <(sample) || true
        kill -HUP $PID 2>/dev/null && hups=$((hups + 1))
    fi
done
wait $PID; rc=$?
wait $SUBS || true
[ -n "$STRESS_PID" ] && kill "$STRESS_PID" 2>/dev/null || true

python3 - "$WORK" "$rss0" "$fd0" "${rss1:-0}" "${fd1:-0}" "$hups" "$rc" "$quiet_events" "$STRESS" <<'PY'
import json, sys
work, rss0, fd0, rss1, fd1, hups, rc, quiet, stress = sys.argv[1:]
recs = [json.loads(l) for l in open(f"{work}/out.jsonl") if l.strip()]
status = [r for r in recs if r["type"] == "status"][-1]
starts = sum(r["type"] == "event_start" for r in recs)
subs = json.load(open(f"{work}/subs.json"))
log = open(f"{work}/err.log").read()
print(f"stress-ng: {'2 cpu workers' if stress == '1' else 'off'}; exit {rc}; SIGHUPs {hups} "
      f"(reloaded {log.count('configuration reloaded')})")
print(f"overruns {status['overruns']}, skipped windows {status['skipped_windows']} of {status['windows']}")
print(f"RSS {int(rss0)/1024:.1f} -> {int(rss1)/1024:.1f} MB (last sample before the end), fds {fd0} -> {fd1}")
print(f"events: {starts} (quiet offline run: {quiet}); hook runs {status['sinks']['hooks']['runs']}, "
      f"failed {status['sinks']['hooks']['failed']}, skipped {status['sinks']['hooks']['skipped']}")
import csv
offline = list(csv.DictReader(open(f"{work}/quiet.csv")))
ends = [r for r in recs if r["type"] == "event_end"]
same = sum(a["label"] == b["label"] and float(a["start"]) == b["start"] and float(a["end"]) == b["end"]
           for a, b in zip(offline, ends))
peak = max((abs(float(a["peak"]) - b["peak"]) for a, b in zip(offline, ends)), default=0.0)
print(f"events equal to the offline run (label, start, end): {same} of {len(offline)} offline, "
      f"{len(ends)} live; largest peak difference {peak:.2g}")
print(f"socket: {subs['readers']} readers got {subs['lines_min']}-{subs['lines_max']} lines, "
      f"{subs['idle']} never read; counters {status['sinks']['socket']}")
PY
echo "work files: $WORK"
