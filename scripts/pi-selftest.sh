#!/usr/bin/env bash
# hark on a Raspberry Pi: a self-test of about two minutes whose report you paste into an issue.
# It checks what emulation could not (docs/raspberry-pi.md, "What still needs a real Pi"):
#   1. the board: model, OS, kernel, hark's version, the ONNX Runtime it loads (`hark model info`)
#   2. a recording through the model: the script writes a T3 smoke-alarm pattern (three 3.1 kHz
#      beeps, then a pause; 12 s, 16 kHz) and `hark run` plays it at real time; on x86_64 and on
#      the emulated aarch64 build CED-tiny hears "Smoke detector, smoke alarm" (peak 0.31) and
#      "Beep, bleep" (0.32), and the script fails if the Pi hears neither
#   3. live capture from the microphone for --seconds (default 30): its level (dBFS), overruns,
#      and hark's CPU (% of one core), time per window and latency from capture to the record,
#      with the SoC temperature and the firmware's throttling flags before and after
# Usage: pi-selftest.sh [--device DEVICE] [--seconds N] [--config FILE]
#   DEVICE as in `hark devices` (default: capture.device of the configuration);
#   FILE defaults to /etc/hark/hark.toml when it exists. Stop the service first if it holds the
#   microphone (sudo systemctl stop hark), or use a dsnoop: device.
# Environment: HARK (the binary, default `hark` on PATH, else ./target/release/hark).
# Needs python3 (a dependency of the package).
set -euo pipefail

device="" seconds=30 config=""
[ -e /etc/hark/hark.toml ] && config=/etc/hark/hark.toml
while [ $# -gt 0 ]; do
    case $1 in
        --device) device=${2:?--device needs a name}; shift 2 ;;
        --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
        --config) config=${2:?--config needs a file}; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "pi-selftest: unknown argument $1 (see --help)" >&2; exit 1 ;;
    esac
done
HARK=${HARK:-$(command -v hark || echo ./target/release/hark)}
[ -x "$HARK" ] || command -v "$HARK" >/dev/null || { echo "pi-selftest: no hark binary (set HARK)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
args=(--log warn)
cfg=() # given after the subcommand: --config belongs to `run` and `model info`
[ -n "$config" ] && cfg=(--config "$config")
# Status records every 5 s, whatever the configuration says (HARK_<SECTION>__<KEY>).
export HARK_PIPELINE__STATUS_INTERVAL=5

thermal() { # SoC temperature and throttling flags, as far as this board tells them
    local t="?" th="?"
    [ -r /sys/class/thermal/thermal_zone0/temp ] && t="$(( $(cat /sys/class/thermal/thermal_zone0/temp) / 1000 )) C"
    command -v vcgencmd >/dev/null && th=$(vcgencmd get_throttled 2>/dev/null | cut -d= -f2)
    echo "temperature $t, throttled $th"
}

# hark run ARGS... for its records, sampling the process's CPU time, stopped with SIGTERM after
# SECONDS (0: when it ends by itself); prints a summary.
measure() { # name, seconds, then hark run arguments
    local name=$1 limit=$2
    shift 2
    local start end ticks t0=$SECONDS
    start=$(date +%s.%N)
    "$HARK" "${args[@]}" run "${cfg[@]}" --no-socket --print json "$@" > "$tmp/$name.jsonl" 2> "$tmp/$name.err" &
    local pid=$!
    ticks=0
    while kill -0 "$pid" 2>/dev/null; do
        # utime + stime of the process, in clock ticks (fields 14 and 15 of /proc/PID/stat)
        ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo "$ticks")
        if [ "$limit" != 0 ] && [ $((SECONDS - t0)) -ge "$limit" ]; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
        sleep 0.5
    done
    wait "$pid" || true
    end=$(date +%s.%N)
    python3 - "$tmp/$name.jsonl" "$ticks" "$(getconf CLK_TCK)" "$start" "$end" "$name" <<'PY'
import json, statistics, sys
from datetime import datetime
path, ticks, hz, start, end, name = sys.argv[1:]
def t(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
recs = [json.loads(l) for l in open(path) if l.strip()]
preds = [r for r in recs if r["type"] == "prediction"]
status = [r for r in recs if r["type"] == "status"]
lat = sorted(1000 * (t(r["time"]) - t(r["captured"])) for r in preds if "captured" in r)
levels = [r["level_db"] for r in preds if "level_db" in r]
wall = float(end) - float(start)
cpu = 100 * int(ticks) / int(hz) / wall
last = status[-1] if status else {}
q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")
print(f"{name}: {len(preds)} windows in {wall:.1f} s; hark CPU {cpu:.1f} % of one core (incl. start-up); "
      f"inference {last.get('inference_ms', float('nan')):.1f} ms/window; "
      f"latency capture->record p50 {q(lat, .5):.1f} ms, p99 {q(lat, .99):.1f} ms; "
      f"level dBFS min/median/max {min(levels, default=float('nan')):.1f}/"
      f"{statistics.median(levels) if levels else float('nan'):.1f}/{max(levels, default=float('nan')):.1f}; "
      f"overruns {last.get('overruns', '?')}, skipped windows {last.get('skipped_windows', '?')}")
heard = {}
for r in preds:
    for top in r.get("top", [])[:3]:
        heard[top["label"]] = max(heard.get(top["label"], 0), top["score"])
best = sorted(heard.items(), key=lambda kv: -kv[1])[:5]
print(f"{name}: heard " + ", ".join(f"{l} {s:.2f}" for l, s in best))
PY
}

echo '```'
echo "## hark pi-selftest $(date -u +%FT%TZ)"
echo "board: $(tr -d '\0' < /proc/device-tree/model 2>/dev/null || echo unknown)"
echo "os: $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r), $(uname -m), dpkg $(dpkg --print-architecture 2>/dev/null || echo ?)"
echo "hark: $("$HARK" --version) ($HARK)"
echo "cpu: $(nproc) cores, governor $(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null || echo ?), max $(( $(cat /sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq 2>/dev/null || echo 0) / 1000 )) MHz"
echo "before: $(thermal)"

# --- 1. the model loads --------------------------------------------------------------------
if "$HARK" "${args[@]}" model info "${cfg[@]}" > "$tmp/info.txt" 2>&1; then
    echo "model: $(grep -m1 -E '^(name|model)' "$tmp/info.txt" || head -n1 "$tmp/info.txt")"
else
    failed=1
    echo "model: FAILED to load"; sed 's/^/  /' "$tmp/info.txt"
fi

# --- 2. a recording through the model ------------------------------------------------------
python3 - "$tmp/t3.wav" <<'PY'
import math, random, struct, sys, wave
rate, freq = 16000, 3100.0
random.seed(1)
samples = []
for n in range(12 * rate):
    t = n / rate
    cycle = t % 4.0  # T3: three 0.5 s beeps 0.5 s apart, then 1.5 s quiet
    s = 0.0
    if cycle < 2.5 and cycle % 1.0 < 0.5:
        s = 0.4 * math.sin(2 * math.pi * freq * t) + 0.05 * math.sin(4 * math.pi * freq * t + 0.3)
    samples.append(max(-1.0, min(1.0, s + random.gauss(0, 0.003))))
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(rate)
    w.writeframes(b"".join(struct.pack("<h", int(x * 32767)) for x in samples))
PY
measure recording 0 --input "$tmp/t3.wav" --exit-at-end
if ! grep -q '"label":"\(Smoke detector, smoke alarm\|Beep, bleep\)"' "$tmp/recording.jsonl"; then
    failed=1
    echo "recording: FAILED: neither 'Smoke detector, smoke alarm' nor 'Beep, bleep' was heard"
    sed 's/^/  /' "$tmp/recording.err"
fi

# --- 3. live capture -----------------------------------------------------------------------
live=()
[ -n "$device" ] && live+=(--device "$device")
measure live "$seconds" "${live[@]}"
if [ ! -s "$tmp/live.jsonl" ]; then
    failed=1
    echo "live: FAILED: no records from the device"; sed 's/^/  /' "$tmp/live.err"
fi
echo "after: $(thermal)"
echo "result: $([ $failed = 0 ] && echo passed || echo FAILED)"
echo '```'
exit $failed
