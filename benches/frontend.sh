#!/usr/bin/env bash
# The log-mel front end's speed in one command: hark against its FFT floor and streaming against
# recomputing (benches/frontend.rs), and hark against librosa (benches/peer_frontend.py), on the
# same 10 s signals, one thread each. Both sides run REPEATS times in alternation; every figure
# is a median (within a run over its rounds, then over the runs), timed in thread CPU time.
#
#   benches/frontend.sh [REPEATS]        (default 3)
#   CRITERION=1 benches/frontend.sh      also run the criterion benchmarks first (slow)
#   PYTHON=...                           Python with librosa (default /work/bench-venv/bin/python)
#
# Prints a table, then one JSON line ("frontend_bench_summary") with every figure and ratio.
# Raw per-run JSON lines are kept in target/bench-frontend/.
set -euo pipefail
cd "$(dirname "$0")/.."

REPEATS=${1:-3}
PYTHON=${PYTHON:-/work/bench-venv/bin/python}
TARGET=${CARGO_TARGET_DIR:-target}
OUT=$TARGET/bench-frontend
mkdir -p "$OUT"
rm -f "$OUT/rust.jsonl" "$OUT/peer.jsonl"

if [[ ${CRITERION:-0} == 1 ]]; then
    cargo bench --bench frontend >&2
fi
cargo bench --bench frontend --no-run -q >&2
for i in $(seq "$REPEATS"); do
    echo "run $i/$REPEATS: hark" >&2
    HARK_BENCH_SUMMARY_ONLY=1 cargo bench --bench frontend -q 2>/dev/null |
        sed "s/^{/{\"run\":$i,/" >>"$OUT/rust.jsonl"
    echo "run $i/$REPEATS: librosa" >&2
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
        "$PYTHON" benches/peer_frontend.py --target "$TARGET" |
        sed "s/^{/{\"run\": $i, /" >>"$OUT/peer.jsonl"
done

"$PYTHON" - "$OUT" <<'EOF'
import json, statistics, sys
from pathlib import Path

out = Path(sys.argv[1])
rust = [json.loads(l) for l in (out / "rust.jsonl").read_text().splitlines()]
peer = [json.loads(l) for l in (out / "peer.jsonl").read_text().splitlines()]
med = statistics.median
TARGETS = dict(librosa_over_hark=30.0, hark_over_fft_only=1.5, streaming_speedup=1.6)
summary = {"frontend_bench_summary": True, "runs": len({r["run"] for r in rust}), "targets": TARGETS}

print(f"{'config':9} {'hark s/audio-s':>15} {'FFT-only':>11} {'librosa':>11} "
      f"{'hark/FFT':>9} {'librosa/hark':>13} {'|librosa-hark|':>15}")
for name in ["fsd2018", "small16k"]:
    r = [x for x in rust if x["config"] == name]
    p = [x for x in peer if x["config"] == name]
    # librosa/hark per run: the two sides of one run ran back to back.
    by_run = {x["run"]: x for x in r}
    speedups = [x["librosa_s_per_audio_s"] / by_run[x["run"]]["hark_s_per_audio_s"]
                for x in p if x["run"] in by_run]
    row = dict(
        hark_s_per_audio_s=med(x["hark_s_per_audio_s"] for x in r),
        fft_only_s_per_audio_s=med(x["fft_only_s_per_audio_s"] for x in r),
        librosa_s_per_audio_s=med(x["librosa_s_per_audio_s"] for x in p),
        librosa_prebuilt_s_per_audio_s=med(x["librosa_prebuilt_s_per_audio_s"] for x in p),
        hark_over_fft_only=med(x["hark_over_fft_only"] for x in r),
        librosa_over_hark=med(speedups),
        max_abs_diff_vs_hark=max(x["max_abs_diff_vs_hark"] for x in p),
        allocations_per_compute_into=max(x["allocations_per_compute_into"] for x in r),
    )
    summary[name] = row
    print(f"{name:9} {row['hark_s_per_audio_s']:15.3e} {row['fft_only_s_per_audio_s']:11.3e} "
          f"{row['librosa_s_per_audio_s']:11.3e} {row['hark_over_fft_only']:9.2f} "
          f"{row['librosa_over_hark']:13.1f} {row['max_abs_diff_vs_hark']:15.1e}")
print()
print(f"{'config':9} {'stream/hop s':>13} {'recompute/hop s':>16} {'speed-up':>9} {'allocs/hop':>11}")
for name in ["htk16k", "yamnet"]:
    r = [x for x in rust if x["config"] == name]
    row = dict(
        stream_hop_cpu_s=med(x["stream_hop_cpu_s"] for x in r),
        recompute_hop_cpu_s=med(x["recompute_hop_cpu_s"] for x in r),
        stream_s_per_audio_s=med(x["stream_s_per_audio_s"] for x in r),
        recompute_s_per_audio_s=med(x["recompute_s_per_audio_s"] for x in r),
        streaming_speedup=med(x["streaming_speedup"] for x in r),
        allocations_per_stream_hop=max(x["allocations_per_stream_hop"] for x in r),
    )
    summary[name] = row
    print(f"{name:9} {row['stream_hop_cpu_s']:13.3e} {row['recompute_hop_cpu_s']:16.3e} "
          f"{row['streaming_speedup']:9.2f} {row['allocations_per_stream_hop']:11d}")
print()
checks = [
    ("librosa/hark >= 30", min(summary[c]["librosa_over_hark"] for c in ["fsd2018", "small16k"]) >= 30),
    ("hark/FFT-only <= 1.5", max(summary[c]["hark_over_fft_only"] for c in ["fsd2018", "small16k"]) <= 1.5),
    ("streaming speed-up >= 1.6", min(summary[c]["streaming_speedup"] for c in ["htk16k", "yamnet"]) >= 1.6),
]
for what, ok in checks:
    print(f"{'met   ' if ok else 'MISSED'} {what}")
summary["met"] = {what: ok for what, ok in checks}
print(json.dumps(summary))
EOF
