#!/usr/bin/env python3
"""hark's whole pipeline against a Python peer and against the bare inference floor, as ratios
measured in one run, plus offline `hark classify` throughput with and without batching.

  A  hark run --input LONG --fast --exit-at-end --no-socket --print json   (the whole pipeline)
  B  $PY scripts/peer_pipeline.py LONG   (librosa + onnxruntime, same model/windows/decisions)
  C  the inference_floor bench (benches/inference_floor.rs): only the Session::run calls
  D  hark classify LONG --batch N, for each N in --batches

Every measured process is pinned to one core (taskset -c CPU), and the runs are interleaved
(A, B, C, D..., A, B, C, D..., for --rounds rounds) so that load from other processes on the
machine falls on all of them alike; medians and min/max are reported. CPU time is user + sys of
the child (os.wait4 rusage, all its threads), peak RSS is ru_maxrss; for C the figure is the
bench's own thread CPU time of the runs (run_cpu_s), the process's CPU and RSS are shown too.

Prints markdown tables; --json FILE also writes everything (machine, commands as run, every
sample). Only the standard library is needed here; the peer runs under $PY (default
/work/bench-venv/bin/python) which needs librosa, onnxruntime and numpy.

Usage: benches/pipeline.py LONG.wav [--rounds 3] [--cpu 1] [--batches 1,4,8,16]
           [--floor-batch 1] [--json FILE] [--workdir DIR] [--no-16k] [--no-classify]
(benches/pipeline.sh builds hark and the long recording first, then calls this.)
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARK = ROOT / "target/release/hark"
PEER = ROOT / "scripts/peer_pipeline.py"
COMPARE = ROOT / "benches/compare_events.py"
DATA = ROOT.parent / "shared/data"
# The peer is pinned to one core like the others; keep its numeric libraries from starting
# idle worker threads there (this can only lower the peer's CPU time, never raise it).
PEER_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                             "NUMBA_NUM_THREADS")}


def die(msg):
    sys.exit(f"pipeline.py: {msg}")


def median(xs):
    return statistics.median(xs) if xs else None


def spread(xs):
    return (min(xs), max(xs)) if xs else (None, None)


def audio_seconds(path):
    """Duration from the samples actually present (a header may claim more)."""
    with wave.open(str(path)) as w:
        frames = 0
        while True:
            chunk = w.readframes(1 << 20)
            if not chunk:
                break
            frames += len(chunk) // (w.getsampwidth() * w.getnchannels())
        return frames / w.getframerate()


def measure(argv, stdout_path, stderr_path, env_extra=None):
    """Run argv to completion; return wall, CPU (user+sys of the child) and peak RSS."""
    env = dict(os.environ, **(env_extra or {}))
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if p.returncode != 0:
        tail = Path(stderr_path).read_text(errors="replace")[-2000:]
        die(f"command failed with status {p.returncode}: {shlex.join(argv)}\n{tail}")
    return dict(wall_s=wall, user_s=ru.ru_utime, sys_s=ru.ru_stime,
                cpu_s=ru.ru_utime + ru.ru_stime, maxrss_mib=ru.ru_maxrss / 1024)


def command_line(argv, stdout_path=None, env_extra=None):
    env = " ".join(f"{k}={v}" for k, v in (env_extra or {}).items())
    s = shlex.join(argv)
    if stdout_path:
        s += f" > {shlex.quote(str(stdout_path))}"
    return f"{env} {s}" if env else s


def last_json(path):
    for line in reversed(Path(path).read_text().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    die(f"no JSON object in {path}")


def hark_status(path):
    """hark's final status record, and the windows it scored (from the record, or counted)."""
    status, predictions = None, 0
    with open(path) as f:
        for line in f:
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            t = r.get("type")
            if t == "status":
                status = r
            elif t == "prediction":
                predictions += 1
    if status is None:
        die(f"no status record in {path}")
    windows = status.get("windows")
    source = "status.windows"
    if windows is None:
        windows, source = predictions, "prediction records"
    return status, windows, source


def compare(hark_out, peer_out):
    r = subprocess.run([sys.executable, str(COMPARE), str(hark_out), str(peer_out)],
                       capture_output=True, text=True)
    lines = [l for l in r.stdout.splitlines() if l.startswith("events:")]
    return (lines[-1] if lines else f"compare_events.py failed: {r.stderr.strip()}"), r.returncode


def machine():
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return dict(cpu_model=model, cores=os.cpu_count(), kernel=platform.release(),
                loadavg_start=Path("/proc/loadavg").read_text().split()[:3])


def hark_ort_library():
    p = os.environ.get("ORT_DYLIB_PATH") or str(ROOT / "third_party/onnxruntime/libonnxruntime.so")
    real = os.path.realpath(p)
    m = re.search(r"\.so\.(\d+\.\d+\.\d+)$", real)
    return dict(path=real, version=m.group(1) if m else None)


def git_state():
    def git(*a):
        r = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
        return r.stdout.strip()
    return dict(commit=git("rev-parse", "HEAD"),
                dirty_files=len([l for l in git("status", "--porcelain").splitlines() if l]))


def build_floor():
    """Build the inference_floor bench once and return its executable (run directly, so that
    cargo's own CPU is never measured)."""
    argv = ["cargo", "bench", "--bench", "inference_floor", "--no-run", "--message-format=json"]
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        die(f"{shlex.join(argv)} failed:\n{r.stderr[-3000:]}")
    exe = None
    for line in r.stdout.splitlines():
        try:
            m = json.loads(line)
        except json.JSONDecodeError:
            continue
        if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "inference_floor" \
                and m.get("executable"):
            exe = m["executable"]
    if not exe:
        die(f"{shlex.join(argv)} named no inference_floor executable")
    return exe, shlex.join(argv)


def prerequisites(args):
    problems = []
    if not (DATA / "recordings").is_dir():
        problems.append(f"{DATA}/recordings is missing (the shared data; see MANIFEST.md)")
    if not HARK.is_file():
        problems.append(f"{HARK} is missing: run `cargo build --release` (or benches/pipeline.sh)")
    if not Path(args.long).is_file():
        problems.append(f"{args.long} is missing: benches/make_long_recording.sh {args.long}")
    if not shutil.which("taskset"):
        problems.append("taskset is missing (apt install util-linux)")
    if not args.no_16k and not shutil.which("sox"):
        problems.append("sox is missing (apt install sox), needed for the 16 kHz copy; or --no-16k")
    if not (shutil.which(args.py) or Path(args.py).is_file()):
        problems.append(f"the peer's Python {args.py} is missing: make the venv or set PY")
    else:
        r = subprocess.run([args.py, "-c", "import librosa, numpy, onnxruntime; "
                            "print(onnxruntime.__version__, librosa.__version__)"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            problems.append(f"{args.py} cannot import librosa, numpy, onnxruntime:\n"
                            f"{r.stderr.strip()[-500:]}")
        else:
            args.peer_versions = dict(zip(("onnxruntime", "librosa"), r.stdout.split()))
    allowed = os.sched_getaffinity(0)
    if args.cpu not in allowed:
        problems.append(f"CPU {args.cpu} is not available here (allowed: {sorted(allowed)})")
    if problems:
        die("missing prerequisites:\n  - " + "\n  - ".join(problems))


def fmt(x, d=2):
    return "-" if x is None else f"{x:.{d}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("long", help="the long recording (benches/make_long_recording.sh)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=None,
                    help="core every measured process is pinned to (default 1, or 0 on one core)")
    ap.add_argument("--batches", default="1,4,8,16", help="hark classify --batch values")
    ap.add_argument("--floor-batch", type=int, default=1,
                    help="inference_floor --batch (hark run scores one window per call: 1)")
    ap.add_argument("--json", help="write everything to this file")
    ap.add_argument("--workdir", default="/tmp/hark-bench", help="outputs of the runs")
    ap.add_argument("--no-16k", action="store_true",
                    help="skip the event comparison on a 16 kHz copy")
    ap.add_argument("--no-classify", action="store_true", help="skip section D")
    ap.add_argument("--floor-exe", help="inference_floor executable (default: build it)")
    args = ap.parse_args()
    args.py = os.environ.get("PY", "/work/bench-venv/bin/python")
    if args.cpu is None:
        args.cpu = 1 if len(os.sched_getaffinity(0)) > 1 else min(os.sched_getaffinity(0))
    args.peer_versions = {}
    prerequisites(args)
    long = str(Path(args.long).resolve())
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    batches = [int(b) for b in args.batches.split(",") if b]

    floor_exe, floor_build = (args.floor_exe, None) if args.floor_exe else build_floor()
    pin = ["taskset", "-c", str(args.cpu)]

    # Section D needs `hark classify --batch` (tolerated if this build lacks it).
    help_text = subprocess.run([str(HARK), "classify", "--help"], capture_output=True,
                               text=True).stdout
    has_batch = "--batch" in help_text
    run_d = not args.no_classify
    d_note = None
    if run_d and not has_batch:
        d_note = "this hark has no `classify --batch` yet: section D skipped, re-run later"
        run_d = False

    audio_s = audio_seconds(long)
    # Warm the page cache (the wav, the model, the peer's imports) so round 1 is not cold.
    Path(long).read_bytes()
    for p in (ROOT / "models").glob("*.onnx"):
        p.read_bytes()

    cmds = {
        "A": (pin + [str(HARK), "--log", "error", "run", "--input", long, "--fast",
                     "--exit-at-end", "--no-socket", "--print", "json"], None),
        "B": (pin + [args.py, str(PEER), long, "--timing"], PEER_ENV),
        "C": (pin + [floor_exe, long, "--batch", str(args.floor_batch)], None),
    }
    if run_d:
        for n in batches:
            cmds[f"D{n}"] = (pin + [str(HARK), "--log", "error", "classify", long,
                                    "--batch", str(n)], None)
    out_of = {k: work / f"{k}.out" for k in cmds}
    err_of = {k: work / f"{k}.err" for k in cmds}
    command_lines = {k: command_line(argv, out_of[k], env) for k, (argv, env) in cmds.items()}

    samples = {k: [] for k in cmds}
    extras = {"A": [], "B": [], "C": []}
    events = []
    print(f"# {args.rounds} rounds of {', '.join(cmds)} on CPU {args.cpu}, "
          f"{audio_s:.1f} s of audio", file=sys.stderr)
    for rnd in range(args.rounds):
        for k, (argv, env) in cmds.items():
            m = measure(argv, out_of[k], err_of[k], env)
            samples[k].append(m)
            if k == "A":
                status, windows, source = hark_status(out_of[k])
                inference_s = windows * status["inference_ms"] / 1000
                extras["A"].append(dict(windows=windows, windows_from=source,
                                        inference_ms=status["inference_ms"],
                                        inference_s=inference_s,
                                        other_s=m["cpu_s"] - inference_s,
                                        skipped_windows=status.get("skipped_windows"),
                                        overruns=status.get("overruns")))
                shutil.copy(out_of[k], work / "hark.jsonl")
            elif k == "B":
                shutil.copy(out_of[k], work / "peer.jsonl")
                timing = Path(err_of[k]).read_text().strip()
                t = re.search(r"load\+resample ([\d.]+) s, inference ([\d.]+) s", timing)
                extras["B"].append(dict(timing=timing,
                                        load_resample_wall_s=float(t[1]) if t else None,
                                        inference_wall_s=float(t[2]) if t else None))
            elif k == "C":
                extras["C"].append(last_json(out_of[k]))
            print(f"  round {rnd + 1} {k}: cpu {m['cpu_s']:.2f} s, wall {m['wall_s']:.2f} s, "
                  f"rss {m['maxrss_mib']:.0f} MiB", file=sys.stderr, flush=True)
        events.append(compare(work / "hark.jsonl", work / "peer.jsonl")[0])

    # The same comparison on a 16 kHz copy (no resampling on either side): once, not timed.
    events_16k = None
    if not args.no_16k:
        long16 = work / (Path(long).stem + ".16k.wav")
        if not long16.exists() or long16.stat().st_mtime < Path(long).stat().st_mtime:
            subprocess.run(["sox", "-V1", "-D", long, "-r", "16000", str(long16)], check=True)
        a = cmds["A"][0][:]
        a[a.index(long)] = str(long16)
        b = cmds["B"][0][:]
        b[b.index(long)] = str(long16)
        measure(a, work / "hark16k.jsonl", work / "hark16k.err")
        measure(b, work / "peer16k.jsonl", work / "peer16k.err", PEER_ENV)
        events_16k = compare(work / "hark16k.jsonl", work / "peer16k.jsonl")[0]
        command_lines["events_16k"] = [f"sox -V1 -D {shlex.quote(long)} -r 16000 {long16}",
                                       command_line(a, work / "hark16k.jsonl"),
                                       command_line(b, work / "peer16k.jsonl", PEER_ENV),
                                       f"python3 benches/compare_events.py "
                                       f"{work / 'hark16k.jsonl'} {work / 'peer16k.jsonl'}"]

    # ---- summaries
    per_hour = 3600 / audio_s
    cpu = {k: [s["cpu_s"] for s in v] for k, v in samples.items()}
    floor_cpu = [e["run_cpu_s"] for e in extras["C"]]
    rss = {k: [s["maxrss_mib"] for s in v] for k, v in samples.items()}
    wall = {k: [s["wall_s"] for s in v] for k, v in samples.items()}

    def ratio_row(name, num, den, target):
        per_round = [a / b for a, b in zip(num, den)]
        of_medians = median(num) / median(den)
        lo, hi = spread(per_round)
        return dict(name=name, median_per_round=median(per_round), min=lo, max=hi,
                    ratio_of_medians=of_medians, target=target,
                    met=median(per_round) <= target, per_round=per_round)

    ratios = [
        ratio_row("CPU hark / peer", cpu["A"], cpu["B"], 0.85),
        ratio_row("CPU hark / inference floor", cpu["A"], floor_cpu, 1.05),
        ratio_row("peak RSS hark / peer", rss["A"], rss["B"], 0.2),
    ]

    out = []
    p = out.append
    m = machine()
    p(f"## hark pipeline benchmark ({datetime.datetime.now().astimezone().isoformat(timespec='seconds')})")
    p("")
    p(f"{m['cpu_model']}, {m['cores']} cores, Linux {m['kernel']}, load {' '.join(m['loadavg_start'])}; "
      f"all runs pinned to CPU {args.cpu}; {args.rounds} interleaved rounds; "
      f"{Path(long).name}: {audio_s:.1f} s of audio; onnxruntime: hark "
      f"{hark_ort_library()['version']}, peer {args.peer_versions.get('onnxruntime')} "
      f"(librosa {args.peer_versions.get('librosa')})")
    p("")
    p("### A, B, C: the whole pipeline, the Python peer, the inference floor (medians, min-max)")
    p("")
    p("| run | CPU s | CPU s min-max | CPU s / audio hour | wall s | peak RSS MiB |")
    p("|---|---:|---:|---:|---:|---:|")
    rows = [("A hark run --fast", cpu["A"], "A"), ("B Python peer", cpu["B"], "B"),
            (f"C inference floor (Session::run only, batch {args.floor_batch})", floor_cpu, "C"),
            ("C floor, whole process (incl. decode)", cpu["C"], "C")]
    for name, xs, k in rows:
        lo, hi = spread(xs)
        p(f"| {name} | {fmt(median(xs))} | {fmt(lo)}-{fmt(hi)} | {fmt(median(xs) * per_hour, 1)} "
          f"| {fmt(median(wall[k]))} | {fmt(median(rss[k]), 0)} |")
    p("")
    p("| ratio | median of per-round | min-max | ratio of medians | target | met |")
    p("|---|---:|---:|---:|---:|---|")
    for r in ratios:
        p(f"| {r['name']} | {r['median_per_round']:.3f} | {r['min']:.3f}-{r['max']:.3f} | "
          f"{r['ratio_of_medians']:.3f} | <= {r['target']} | {'yes' if r['met'] else 'NO'} |")
    p("")
    xa = extras["A"]
    # Three estimates of the inference part of hark's CPU time: (1) as specified, windows x
    # inference_ms from hark's final status record - but inference_ms is hark's own wall clock,
    # so on a shared core it counts time the core spent on others; (2) the same scaled by the
    # run's CPU / wall; (3) the floor's CPU time of Session::run on the same windows.
    split_rows = [
        ("status: windows x inference_ms (wall clock)", [e["inference_s"] for e in xa]),
        ("status, scaled by the run's CPU / wall",
         [e["inference_s"] * s["cpu_s"] / s["wall_s"] for e, s in zip(xa, samples["A"])]),
        ("floor: Session::run CPU on the same windows", floor_cpu),
    ]
    for e, s in zip(xa, samples["A"]):
        e["inference_s_scaled"] = e["inference_s"] * s["cpu_s"] / s["wall_s"]
    p(f"hark's split: {xa[-1]['windows']} windows (from {xa[0]['windows_from']}), "
      f"inference_ms {fmt(median([e['inference_ms'] for e in xa]), 3)} (median); "
      f"everything else = hark CPU - inference:")
    p("")
    p("| inference estimate | inference CPU s | everything else s | min-max | else / hark CPU |")
    p("|---|---:|---:|---:|---:|")
    split = []
    for name, inf in split_rows:
        oth = [c - i for c, i in zip(cpu["A"], inf)]
        share = median([o / c for o, c in zip(oth, cpu["A"])])
        split.append(dict(estimate=name, inference_s=inf, other_s=oth))
        p(f"| {name} | {fmt(median(inf))} | {fmt(median(oth))} | {fmt(min(oth))}-{fmt(max(oth))} "
          f"| {share:.1%} |")
    p("")
    p("Events (benches/compare_events.py hark.jsonl peer.jsonl):")
    for i, e in enumerate(dict.fromkeys(events)):
        rounds = [str(j + 1) for j, x in enumerate(events) if x == e]
        p(f"- {Path(long).name} (44.1 kHz), rounds {','.join(rounds)}: `{e}`")
    if events_16k:
        p(f"- 16 kHz copy (sox): `{events_16k}`")
    d_rows = []
    if run_d:
        p("")
        p("### D: offline `hark classify` throughput on one core")
        p("")
        p("| --batch | CPU s | wall s | audio-s / CPU-s | min-max | audio-s / wall-s | "
          "speed-up vs 1 (CPU) | speed-up vs 1 (wall) |")
        p("|---:|---:|---:|---:|---:|---:|---:|---:|")
        base = f"D{batches[0]}"
        for n in batches:
            k = f"D{n}"
            thr = [audio_s / c for c in cpu[k]]
            thr_w = [audio_s / w for w in wall[k]]
            row = dict(batch=n, cpu_s=median(cpu[k]), wall_s=median(wall[k]),
                       audio_per_cpu_s=median(thr), audio_per_cpu_s_min=min(thr),
                       audio_per_cpu_s_max=max(thr), audio_per_wall_s=median(thr_w),
                       speedup_cpu=median(cpu[base]) / median(cpu[k]),
                       speedup_wall=median(wall[base]) / median(wall[k]),
                       maxrss_mib=median(rss[k]))
            d_rows.append(row)
            p(f"| {n} | {fmt(row['cpu_s'])} | {fmt(row['wall_s'])} | "
              f"{fmt(row['audio_per_cpu_s'], 1)} | {fmt(min(thr), 1)}-{fmt(max(thr), 1)} | "
              f"{fmt(row['audio_per_wall_s'], 1)} | {row['speedup_cpu']:.2f}x | "
              f"{row['speedup_wall']:.2f}x |")
        if batches[0] != 1:
            p(f"(speed-ups are against --batch {batches[0]})")
    elif d_note:
        p("")
        p(f"### D: {d_note}")
    p("")
    p("Commands (each pinned and measured as is; outputs in " + str(work) + "):")
    for k, c in command_lines.items():
        for line in ([c] if isinstance(c, str) else c):
            p(f"- {k}: `{line}`")
    if floor_build:
        p(f"- floor built once with `{floor_build}`")
    text = "\n".join(out)
    print(text)

    if args.json:
        m["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
        dump = dict(
            date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            machine=m, git=git_state(), cpu_pinned=args.cpu, rounds=args.rounds,
            file=long, audio_seconds=audio_s,
            onnxruntime=dict(hark=hark_ort_library(), peer=args.peer_versions.get("onnxruntime")),
            librosa=args.peer_versions.get("librosa"),
            commands=dict(command_lines, floor_build=floor_build,
                          compare="python3 benches/compare_events.py "
                                  f"{work / 'hark.jsonl'} {work / 'peer.jsonl'}"),
            samples=samples, extras=extras, ratios=ratios, hark_split=split,
            events=dict(per_round=events, sixteen_khz=events_16k),
            classify=dict(rows=d_rows, note=d_note), markdown=text,
        )
        Path(args.json).write_text(json.dumps(dump, indent=2) + "\n")
        print(f"\n(JSON: {args.json})")


if __name__ == "__main__":
    main()
