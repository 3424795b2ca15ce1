#!/usr/bin/env python3
"""`hark classify` at length (issue 12): peak RSS and CPU for 10 minutes and 10 hours of audio
in WAV, FLAC, MP3 and Ogg Vorbis; the Python peer's RSS on the same audio; the cost of
--events; --batch 8 against --batch 1; -j 1 against -j 2 on 8 files.

Every figure comes from the child's own rusage (os.wait4: user + sys CPU of all its threads,
ru_maxrss), wall time from a monotonic clock. Pairs that are compared (events, batch, jobs) are
interleaved for --rounds rounds so that the machine's other load falls on both alike; medians
are printed with the load average (uptime) at the start and end of each section.

The 10-hour runs use --hop 30 by default (1,200 windows instead of 72,000): they measure memory
over ten hours of decoding and streaming, which does not depend on how often the model runs,
in minutes instead of the better part of an hour per format. --full-10h runs them at the
model's own hop as well.

Usage: benches/classify_long.py [--inputs target/classify-bench] [--rounds 3] [--full-10h] [--parallel]
           [--sections memory,peer,events,batch,jobs] [--py /work/resample-venv/bin/python]
(benches/classify_long.sh builds hark and the inputs first, then calls this.)
"""
import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARK = ROOT / "target/release/hark"
PEER = ROOT / "scripts/peer_pipeline.py"
FORMATS = ["wav", "flac", "mp3", "ogg"]


def run(cmd, env=None):
    """Run `cmd` to its end with stdout discarded; (wall s, cpu s, peak RSS MB)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env={**os.environ, **(env or {})}, cwd=ROOT)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {shlex.join(map(str, cmd))}\n{err}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def seconds_of(path):
    out = subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout)


def load():
    return open("/proc/loadavg").read().split()[0]


def classify(*args):
    return [str(HARK), "--log", "warn", "classify", "--no-progress", "--json", *map(str, args)]


def memory(a):
    print(f"\n### Peak RSS and CPU, `hark classify --json -j 1` (load {load()})\n")
    print("| audio | format | hop s | peak RSS MB | CPU s | audio s per CPU s | wall s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    plan = [("10m", None), ("10h", 30.0)] + ([("10h", None)] if a.full_10h else [])
    runs = [(length, hop, fmt) for length, hop in plan for fmt in FORMATS]

    def one(length, hop, fmt):
        f = a.inputs / f"{length}.{fmt}"
        extra = ["--hop", hop] if hop else []
        wall, cpu, rss = run(classify("-j", 1, *extra, f))
        return (f"| {length} | {fmt} | {hop or 0.5} | {rss:.1f} | {cpu:.1f} | "
                f"{seconds_of(f) / cpu:.0f} | {wall:.1f} |")

    if a.parallel:
        # Every run at once, each its own process: RSS and CPU are each child's own; wall
        # times then say little.
        with ThreadPoolExecutor(len(runs)) as pool:
            rows = list(pool.map(lambda r: one(*r), runs))
    else:
        rows = [one(*r) for r in runs]
    for row in rows:
        print(row, flush=True)
    print(f"\n(load at the end {load()})")


def peer(a):
    print(f"\n### The Python peer (`scripts/peer_pipeline.py`, whole file in memory) vs hark "
          f"(load {load()})\n")
    print("| audio | program | peak RSS MB | CPU s | audio s per CPU s |")
    print("|---|---|---:|---:|---:|")
    for length in a.peer_lengths.split(","):
        f = a.inputs / f"{length}.wav"
        audio = seconds_of(f)
        for name, cmd in [("hark classify --events", classify("-j", 1, "--events", f)),
                          ("peer", [a.py, PEER, f])]:
            _, cpu, rss = run(cmd, env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
            print(f"| {length} | {name} | {rss:.1f} | {cpu:.1f} | {audio / cpu:.0f} |", flush=True)


def pair(a, title, variants, f):
    """Interleaved rounds of each variant on `f`: medians of CPU and wall."""
    audio = sum(seconds_of(x) for x in f) if isinstance(f, list) else seconds_of(f)
    samples = {name: [] for name, _ in variants}
    start = load()
    for _ in range(a.rounds):
        for name, cmd in variants:
            samples[name].append(run(cmd))
    print(f"\n### {title} ({a.rounds} interleaved rounds, {audio:.0f} s of audio, "
          f"load {start} -> {load()})\n")
    print("| variant | CPU s (median) | audio s per CPU s | wall s (median) | audio s per wall s "
          "| peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    med = {}
    for name, s in samples.items():
        wall = statistics.median(x[0] for x in s)
        cpu = statistics.median(x[1] for x in s)
        rss = max(x[2] for x in s)
        med[name] = (wall, cpu)
        print(f"| {name} | {cpu:.2f} | {audio / cpu:.0f} | {wall:.2f} | {audio / wall:.0f} "
              f"| {rss:.1f} |", flush=True)
        print(f"<!-- {name}: " + ", ".join(f"{w:.2f}/{c:.2f}" for w, c, _ in s) + " -->")
    return med


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=Path, default=ROOT / "target/classify-bench")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--full-10h", action="store_true")
    ap.add_argument("--peer-lengths", default="10m,1h")
    ap.add_argument("--parallel", action="store_true",
                    help="start every memory run at once (on a busy machine)")
    ap.add_argument("--sections", default="memory,peer,events,batch,jobs")
    ap.add_argument("--py", default=os.environ.get("PY", "/work/resample-venv/bin/python"))
    a = ap.parse_args()
    sections = a.sections.split(",")
    print(f"hark classify at length; {os.cpu_count()} CPUs; uptime load {load()}")
    if "memory" in sections:
        memory(a)
    if "peer" in sections:
        peer(a)
    f = a.inputs / "10m.wav"
    if "events" in sections:
        m = pair(a, "--events vs windows only, `-j 1`",
                 [("windows", classify("-j", 1, f)), ("--events", classify("-j", 1, "--events", f))], f)
        print(f"\n--events costs {100 * (m['--events'][1] / m['windows'][1] - 1):+.1f} % CPU")
    if "batch" in sections:
        m = pair(a, "--batch 8 (default) vs --batch 1, `-j 1`",
                 [("--batch 1", classify("-j", 1, "--batch", 1, f)),
                  ("--batch 8", classify("-j", 1, "--batch", 8, f))], f)
        print(f"\n--batch 8 takes {m['--batch 8'][1] / m['--batch 1'][1]:.2f}x the CPU of --batch 1")
    if "jobs" in sections:
        files = sorted((a.inputs / "eight").glob("*.wav"))
        m = pair(a, "-j 1 vs -j 2 on 8 files",
                 [("-j 1", classify("-j", 1, *files)), ("-j 2", classify("-j", 2, *files))], files)
        print(f"\n-j 2 is {m['-j 1'][0] / m['-j 2'][0]:.2f}x the audio per wall second of -j 1")


if __name__ == "__main__":
    main()
