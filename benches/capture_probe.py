#!/usr/bin/env python3
"""Why live capture costs CPU: wake-ups and system calls of the capture thread.

Starts a private PulseAudio server (benches/daemon.py's `Pulse`: null sink, its monitor the
default source), plays --play into it at real time, and starts one capturing program:

  hark     `hark run --print none` on the default device (extra arguments after `--`), e.g.
           `-- --device pulse`, with HARK_CAPTURE__* settings from --env K=V
  arecord  `arecord -D default -f FORMAT -r RATE -c 2 --period-size P --buffer-size B`
           (blocking snd_pcm_readi), to /dev/null
  parec    `parec --latency-msec=MS --format=float32le --channels=1 --rate=RATE`, to /dev/null:
           libpulse's own recorder, the floor for a client of the server's protocol at a
           given fragment length (MS: --latency-msec, default 10, hark's capture.period)

After --warmup seconds it reads every thread's voluntary / involuntary context switches
(/proc/PID/task/TID/status) and on-CPU time (/proc/PID/task/TID/schedstat, ns), waits --seconds, reads them again, and prints per
thread: CPU % of one core and wake-ups per second. With --strace it then attaches
`strace -c -f -p TID` (hark: to the capture thread; arecord, parec: the main thread) for --seconds,
and with --strace-log it also keeps the first 60 lines of a plain `strace -tt -p TID` trace,
showing what poll returns when it spins.

Usage: benches/capture_probe.py [--what hark|arecord|parec] [--latency-msec 10] [--seconds 5] [--warmup 3] [--strace]
           [--play FILE] [--env HARK_CAPTURE__PERIOD=0] [--period-size 512 --buffer-size 1024]
           [--format FLOAT_LE] [-- extra hark run arguments]
Standard library only.
"""
import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon import HARK, Pulse, command_line, stop_process  # noqa: E402



def threads(pid):
    """{tid: (name, on-CPU ns, voluntary switches, involuntary switches)}"""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            status = (task / "status").read_text()
            on_cpu_ns = int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        sw = {}
        for line in status.splitlines():
            key, _, value = line.partition(":")
            if key.endswith("ctxt_switches"):
                sw[key] = int(value)
        out[int(task.name)] = (name, on_cpu_ns,
                               sw.get("voluntary_ctxt_switches", 0),
                               sw.get("nonvoluntary_ctxt_switches", 0))
    return out


def capture_tid(pid, what):
    """The thread that reads the device: cpal's ALSA worker, the pulseaudio crate's reactor
    (hark's capture threads otherwise), or arecord's only thread."""
    if what in ("arecord", "parec"):
        return pid
    names = {tid: t[0] for tid, t in threads(pid).items()}
    for wanted in ("cpal_alsa_in", "hark-capture"):
        for tid, name in names.items():
            if name == wanted:
                return tid
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--what", choices=["hark", "arecord", "parec"], default="hark")
    ap.add_argument("--latency-msec", default="10")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--play", type=Path, default=Path("/tmp/hark-bench/long.wav"))
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--strace", action="store_true")
    ap.add_argument("--strace-log", action="store_true")
    ap.add_argument("--format", default="FLOAT_LE")
    ap.add_argument("--rate", default="48000")
    ap.add_argument("--period-size", default=None)
    ap.add_argument("--buffer-size", default=None)
    ap.add_argument("rest", nargs="*")
    args = ap.parse_args()

    log = open("/tmp/capture_probe.aux.log", "wb")
    pulse = Pulse(log)
    proc = None
    try:
        pulse.play(args.play, log)
        env = dict(pulse.env)
        for kv in args.env:
            k, _, v = kv.partition("=")
            env[k] = v
        if args.what == "hark":
            argv = [str(HARK), "--log", "warn,hark::capture=info", "run", "--print", "none",
                    "--socket", f"/tmp/capture_probe.{os.getpid()}.sock", *args.rest]
        elif args.what == "parec":
            argv = ["parec", f"--latency-msec={args.latency_msec}", "--format=float32le",
                    "--channels=1", f"--rate={args.rate}"]
        else:
            argv = ["arecord", "-q", "-D", "default", "-f", args.format, "-r", args.rate,
                    "-c", "2", "-t", "raw"]
            if args.period_size:
                argv += ["--period-size", args.period_size]
            if args.buffer_size:
                argv += ["--buffer-size", args.buffer_size]
            argv += ["/dev/null"]
        print("$", command_line(argv, env), flush=True)
        out = subprocess.DEVNULL if args.what == "parec" else log  # parec writes to stdout
        proc = subprocess.Popen(argv, env=dict(os.environ, **env), stdout=out, stderr=log)
        time.sleep(args.warmup)
        if proc.poll() is not None:
            sys.exit(f"{argv[0]} exited with {proc.returncode}; see /tmp/capture_probe.aux.log")
        t0, w0 = threads(proc.pid), time.time()
        time.sleep(args.seconds)
        t1, w1 = threads(proc.pid), time.time()
        wall = w1 - w0
        tid = capture_tid(proc.pid, args.what)
        print(f"{'thread':<18} {'tid':>7} {'CPU %':>7} {'vol/s':>8} {'invol/s':>8}")
        for t, (name, ns, vol, inv) in sorted(t1.items()):
            _, ns0, vol0, inv0 = t0.get(t, (name, 0, 0, 0))
            mark = "  <- capture" if t == tid else ""
            print(f"{name:<18} {t:>7} {100 * (ns - ns0) / 1e9 / wall:>7.2f} "
                  f"{(vol - vol0) / wall:>8.1f} {(inv - inv0) / wall:>8.1f}{mark}")
        if args.strace and tid:
            cmd = ["timeout", "-s", "INT", str(args.seconds), "strace", "-c", "-p", str(tid)]
            print("$", shlex.join(cmd), flush=True)
            subprocess.run(cmd)
        if args.strace_log and tid:
            cmd = ["timeout", "-s", "INT", "1", "strace", "-tt", "-p", str(tid)]
            print("$", shlex.join(cmd), "| head -60", flush=True)
            out = subprocess.run(cmd, capture_output=True, text=True).stderr
            print("\n".join(out.splitlines()[:60]))
    finally:
        if proc is not None:
            stop_process(proc)
        pulse.stop()
        log.close()


if __name__ == "__main__":
    main()
