#!/usr/bin/env python3
"""The realtime daemon at steady state: CPU, memory, and latency from capture to socket.

For each run, `hark run` plays a long recording at real time through the same path a
microphone uses (producer thread -> lock-free capture ring -> consumer: resample to 16 kHz,
1 s windows every 0.5 s, model, smoothing, decisions -> records on the Unix socket), pinned to
one core (taskset -c CPU, default 1). This script subscribes to `prediction` and `status` from
the other core (its own affinity is set to --client-cpu, default 0), throws away the first
--warmup seconds (default 10), then for --seconds (default 120) measures:

  CPU        (utime + stime of the daemon, /proc/PID/stat, clock ticks) at the start and end of
             the period: CPU % of one core = delta CPU / delta wall. Cross-checked with the sum
             of the threads' on-CPU nanoseconds (/proc/PID/task/*/schedstat).
  memory     VmHWM (peak RSS since start) and VmRSS from /proc/PID/status at the end.
  inference  `inference_ms` of the last status record (mean front end + model time per window
             since start; HARK_PIPELINE__STATUS_INTERVAL=2 makes that record recent).
  latency    per prediction record: to socket = client receive time (time.time() right after
             the recv that completed the line) - `captured` (when the window's newest sample
             entered the capture ring); time to scores = `time` - `captured` (`time` has
             millisecond precision and is truncated, so this is up to 1 ms low); publish =
             receive - `time`.
  server     for runs through a sound server, the server process's on-CPU time over the same
             period (/proc/PID/task/*/schedstat): what serving hark's stream costs it.
  load       /proc/loadavg at start and end, and how busy the daemon's core was in all
             (/proc/stat cpuN), so that load from other processes on that core is visible.

Targets checked: p99 latency to socket <= inference_ms + 20 ms; VmHWM <= 60 MB (MiB, as the
kernel counts kB = KiB; 1 MB here = 2^20 bytes).

Sanity check: with file input the producer pushes 10 ms chunks that line up with the 44.1 and
48 kHz resampler blocks (441 / 480 input samples), and the resampler needs `delay` (80 output
samples = 5 ms) past a window's newest sample, so each window waits for exactly one more chunk
(10 ms) before it can be scored; at 16 kHz there is no resampler and no wait. From a device the
callbacks do not line up with the blocks, so the wait is delay + about block / 2 (~10 ms) on
average. Expected p50 to socket ~ inference_ms + that wait + a few ms (consumer wake-up,
smoothing, publishing); the table shows the difference.

Runs (--runs, comma-separated, each NAME or NAME:SECONDS):
  44k    LONG (44.1 kHz mono) as --input
  16k    a 16 kHz mono copy (no resampling)            made with sox if absent
  48k2   a 48 kHz stereo copy (what a USB mic delivers) made with sox if absent
  pulse  a real capture device: a private PulseAudio server (own XDG_RUNTIME_DIR) with a null
         sink; `paplay --device=hark_null LONG` plays into it and `hark run` (no --input)
         records its monitor (the server's default source) at hark's default settings. The
         server and the player run on the client's core.
  pulse-HOST  the same with HARK_CAPTURE__HOST=HOST (alsa: the default ALSA device, the pulse
         plugin; pulseaudio: the server's own protocol; pipewire needs a PipeWire server).
--pulse adds `pulse-HOST` for each of --hosts (default pulseaudio,alsa) to the runs.
--repeat N runs the whole list N times, one run after the other, and adds a summary: per run
name the whole-process CPU (min / median / worst) and its ratio to the first file run of the
same round (the goal of issue 15: worst ratio <= 1.3), and the CPU of the capture threads
(cpal_alsa_in and the threads named hark-capture), the consumer and hark-io.
--paired runs a round's runs at the same time instead, every daemon on --cpu, all measured
over the same seconds (one shared start): the host's speed, which varies between consecutive
runs on a shared virtual machine, then cancels out of the ratio. Two daemons on one core can
delay each other's inference, so latency is better read from runs without --paired.

Prints a markdown table (plus machine, date, load and each command as run); --json FILE writes
everything, including each prediction's latencies. Standard library only.

Usage: benches/daemon.py [--long /tmp/hark-bench/long.wav] [--runs 44k,16k,48k2] [--pulse]
           [--hosts pulseaudio,alsa] [--repeat 1] [--paired] [--seconds 120] [--warmup 10] [--cpu 1] [--client-cpu 0] [--json FILE]
(benches/daemon.sh builds hark and the recordings first, then calls this.)
"""
import argparse
import calendar
import datetime
import json
import os
import platform
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARK = Path(os.environ.get("HARK_BIN", ROOT / "target/release/hark"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_MB = 1 / 1024  # kB -> MB (MiB)
LOG_FILTER = "warn,hark::capture=info,hark::audio=debug"  # + the capture config and resampler
STATUS_INTERVAL = "2"
TARGET_RSS_MB = 60.0
TARGET_LATENCY_SLACK_MS = 20.0
PULSE_SINK = "hark_null"
PAIRED_SETUP_S = 5  # --paired: time for the sound servers and daemons to start


def die(msg):
    sys.exit(f"daemon.py: {msg}")


# ---------------------------------------------------------------------------------------------
# /proc


def proc_cpu_ticks(pid):
    """utime + stime of the whole process (all threads), in clock ticks."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) + int(fields[12])


def proc_schedstat_ns(pid):
    """Sum of the threads' on-CPU time, ns (finer than ticks; threads that ended are lost)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def proc_threads(pid):
    """{tid: (name, utime + stime ticks, context switches)} of the process's threads."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            status = (task / "status").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        switches = sum(int(line.split()[1]) for line in status.splitlines()
                       if line.split(":")[0].endswith("ctxt_switches"))
        out[task.name] = (name, int(fields[11]) + int(fields[12]), switches)
    return out


def thread_split(before, after, wall):
    """Per thread name over the period (threads of the same name summed): CPU % of one core
    and context switches per second (a thread that polls without sleeping shows here)."""
    split = {}
    for tid, (name, ticks, switches) in after.items():
        _, t0, s0 = before.get(tid, (name, 0, 0))
        cpu, rate = split.get(name, (0.0, 0.0))
        split[name] = (cpu + 100 * (ticks - t0) / CLK_TCK / wall,
                       rate + (switches - s0) / wall)
    return {k: {"cpu_pct": round(c, 2), "switches_per_s": round(r, 1)}
            for k, (c, r) in sorted(split.items(), key=lambda kv: -kv[1][0])}


def proc_status(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "Threads"):
            out[key] = int(value.split()[0])
    return out


def core_ticks(cpu):
    """(busy, total) jiffies of one core from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            v = [int(x) for x in line.split()[1:]]
            total = sum(v[:8])  # guest time is already counted in user/nice
            idle = v[3] + v[4]
            return total - idle, total
    return None, None


def loadavg():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine():
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def git_head():
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


# ---------------------------------------------------------------------------------------------
# helpers


def rfc3339_us(s):
    """'2026-11-22T05:53:38.123456Z' (any fraction length) -> integer microseconds since epoch."""
    if not s.endswith("Z"):
        raise ValueError(f"not UTC: {s}")
    main, _, frac = s[:-1].partition(".")
    secs = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    frac = (frac + "000000")[:6]
    return secs * 1_000_000 + int(frac)


def percentile(xs, p):
    """Linear interpolation between closest ranks (numpy's default); xs sorted."""
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(xs):
    xs = sorted(xs)
    if not xs:
        return {"n": 0}
    return {
        "n": len(xs),
        "mean": sum(xs) / len(xs),
        "min": xs[0],
        "p50": percentile(xs, 50),
        "p90": percentile(xs, 90),
        "p99": percentile(xs, 99),
        "max": xs[-1],
    }


def command_line(argv, env_extra=None):
    env = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in (env_extra or {}).items())
    return (env + " " if env else "") + shlex.join(str(a) for a in argv)


def wav_info(path):
    import wave
    with wave.open(str(path)) as w:
        return w.getframerate(), w.getnchannels()


def ensure_copy(src, dst, rate, channels):
    if dst.exists() and dst.stat().st_size > 0:
        return
    if not shutil.which("sox"):
        die(f"{dst} is missing and sox is not installed")
    cmd = ["sox", "-V1", str(src), "-c", str(channels), "-r", str(rate), str(dst)]
    print(f"making {dst}: {shlex.join(cmd)}", file=sys.stderr)
    subprocess.run(cmd, check=True)


def stop_process(p, timeout=10):
    """SIGTERM this child by its pid, SIGKILL after `timeout`; returns its exit code."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


# ---------------------------------------------------------------------------------------------
# the subscriber


class Subscriber:
    def __init__(self, path, deadline):
        self.sock = None
        last = None
        while time.time() < deadline:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(str(path))
                self.sock = s
                break
            except OSError as e:
                s.close()
                last = e
                time.sleep(0.05)
        if self.sock is None:
            raise RuntimeError(f"could not connect to {path}: {last}")
        self.buf = b""
        self.pending = []  # (receive time, line)

    def send(self, obj):
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def lines(self, until):
        """Yield (receive time, record) until wall time `until` (or EOF)."""
        while True:
            while self.pending:
                yield self.pending.pop(0)
            left = until - time.time()
            if left <= 0:
                return
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return
            chunk = self.sock.recv(1 << 16)
            t = time.time()
            if not chunk:
                raise EOFError("the daemon closed the socket")
            self.buf += chunk
            *complete, self.buf = self.buf.split(b"\n")
            for line in complete:
                if line.strip():
                    self.pending.append((t, json.loads(line)))

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------------------------------------
# PulseAudio


class Pulse:
    """A private PulseAudio server with a null sink, its monitor the default source."""

    def __init__(self, log):
        for tool in ("pulseaudio", "pactl", "paplay"):
            if not shutil.which(tool):
                die(f"--pulse needs `{tool}` (scripts/setup.sh --test installs it)")
        # Short path: the socket must fit in sun_path.
        self.dir = Path(tempfile.mkdtemp(prefix="hark-bench-pulse-"))
        (self.dir / "home").mkdir()
        self.env = {
            "XDG_RUNTIME_DIR": str(self.dir),
            "HOME": str(self.dir / "home"),
            "PULSE_SERVER": f"unix:{self.dir}/pulse/native",
            "JACK_NO_START_SERVER": "1",
        }
        self.player = None
        self.commands = []
        self.start_cmd = ["pulseaudio", "-D", "-n", "--exit-idle-time=-1",
                          f"--log-target=file:{self.dir}/pulse.log",
                          f"--load=module-null-sink sink_name={PULSE_SINK}",
                          "--load=module-native-protocol-unix"]
        self.run(self.start_cmd, log)
        deadline = time.time() + 15
        while subprocess.run(["pactl", "info"], env=self.full_env(), capture_output=True
                             ).returncode != 0:
            if time.time() > deadline:
                self.stop()
                die(f"pulseaudio did not answer; see {self.dir}/pulse.log")
            time.sleep(0.1)
        self.run(["pactl", "set-default-source", f"{PULSE_SINK}.monitor"], log)
        self.pid = int((self.dir / "pulse/pid").read_text().split()[0])

    def full_env(self):
        return dict(os.environ, **self.env)

    def run(self, cmd, log):
        self.commands.append(command_line(cmd, self.env))
        subprocess.run(cmd, env=self.full_env(), check=True, stdout=log, stderr=log)

    def play(self, path, log):
        cmd = ["paplay", f"--device={PULSE_SINK}", str(path)]
        self.commands.append(command_line(cmd, self.env))
        self.player = subprocess.Popen(cmd, env=self.full_env(), stdout=log, stderr=log)

    def stop(self):
        if self.player is not None:
            stop_process(self.player)
            self.player = None
        self.commands.append(command_line(["pulseaudio", "-k"], self.env))
        subprocess.run(["pulseaudio", "-k"], env=self.full_env(), capture_output=True)
        pid = getattr(self, "pid", None)
        deadline = time.time() + 10
        while pid and Path(f"/proc/{pid}").exists() and time.time() < deadline:
            time.sleep(0.1)
        if pid and Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# one run


def parse_log(path):
    """The capture config and the resampler geometry (key=value pairs) from the daemon's log."""
    out = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        if "capture stream started" in line or "built FFT resampler" in line:
            # A value runs to the next ` key=` (the capture config has spaces in it).
            for k, v in re.findall(r'(\w+)=("[^"]*"|.*?)(?= \w+=|$)', line):
                out.setdefault(k, v.strip('"'))
    return out


def expected_wait_ms(kind, rate, log):
    """Resampler wait past a window's newest sample (see the module doc)."""
    if rate == 16000:
        return 0.0
    chunk_in = int(log.get("chunk_in", 0) or 0)
    chunk_out = int(log.get("chunk_out", 0) or 0)
    delay = int(log.get("delay", 0) or 0)
    if not chunk_in:
        return None
    block_ms = 1000 * chunk_in / rate
    delay_ms = 1000 * delay / 16000 if chunk_out else 0.0
    if kind == "file":
        # 10 ms chunks aligned with the blocks: the block holding newest + delay arrives in
        # the chunk after the newest sample's (as long as delay < one block).
        return 10.0 if delay_ms <= block_ms else None
    return delay_ms + block_ms / 2


def one_run(name, seconds, args, files, workdir, start_at=None):
    """One daemon, measured for `seconds` after the warm-up (or from `start_at`, a time.time()
    shared by the runs of a --paired round, so that they measure the same seconds)."""
    kind = "pulse" if name.startswith("pulse") else "file"
    env_extra = {"HARK_PIPELINE__STATUS_INTERVAL": STATUS_INTERVAL}
    if name.startswith("pulse-"):
        env_extra["HARK_CAPTURE__HOST"] = name[len("pulse-"):]
    rundir = Path(tempfile.mkdtemp(prefix="hark-bench-daemon-"))
    sock = rundir / "hark.sock"
    log_path = workdir / f"daemon-{name}.log"
    aux_log = open(workdir / f"daemon-{name}.aux.log", "wb")
    pulse = None
    commands = []
    argv = ["taskset", "-c", str(args.cpu), str(HARK), "--log", LOG_FILTER, "run",
            "--socket", str(sock), "--print", "none"]
    if kind == "file":
        src = files[name]
        rate, channels = wav_info(src)
        argv[argv.index("run") + 1:argv.index("run") + 1] = ["--input", str(src)]
        source = "file"
    else:
        src = args.long
        pulse = Pulse(aux_log)
        env_extra.update(pulse.env)
        if args.pulse_device:
            argv[argv.index("run") + 1:argv.index("run") + 1] = ["--device", args.pulse_device]
        rate = channels = None  # from the daemon's log
        source = "pulse"
    result = {"name": name, "input": str(src), "source": source, "seconds": seconds,
              "warmup": args.warmup}
    proc = None
    sub = None
    try:
        if pulse:
            pulse.play(src, aux_log)
        commands.append(command_line(argv, env_extra))
        with open(log_path, "wb") as log:
            t_launch = time.time()
            proc = subprocess.Popen(argv, env=dict(os.environ, **env_extra), stdout=log,
                                    stderr=subprocess.STDOUT, cwd=ROOT)
        pid = proc.pid  # taskset execs hark: same pid
        sub = Subscriber(sock, t_launch + 30)
        hello = None
        for _, rec in sub.lines(time.time() + 10):
            hello = rec
            break
        if not hello or hello.get("type") != "hello":
            raise RuntimeError(f"expected hello, got {hello}")
        sub.send({"subscribe": ["prediction", "status"]})
        result["model"] = hello.get("model")

        last_status = None
        warm_predictions = 0
        t_start = start_at if start_at is not None else t_launch + args.warmup
        for _, rec in sub.lines(t_start):
            if rec.get("type") == "status":
                last_status = rec
            elif rec.get("type") == "prediction":
                warm_predictions += 1
        if proc.poll() is not None:
            raise RuntimeError(f"hark exited with {proc.returncode}; see {log_path}")

        # Start of the measuring period.
        w0 = time.time()
        c0 = proc_cpu_ticks(pid)
        s0 = proc_schedstat_ns(pid)
        srv0 = proc_schedstat_ns(pulse.pid) if pulse else None
        th0 = proc_threads(pid)
        b0, tot0 = core_ticks(args.cpu)
        load0 = loadavg()
        status0 = last_status
        to_socket, to_scores, publish, gated, no_captured = [], [], [], 0, 0
        samples = []
        t_end = w0 + seconds
        for t_recv, rec in sub.lines(t_end):
            kind_ = rec.get("type")
            if kind_ == "status":
                last_status = rec
            elif kind_ == "prediction":
                if rec.get("gated"):
                    gated += 1
                cap = rec.get("captured")
                if cap is None:
                    no_captured += 1
                    continue
                cap_us = rfc3339_us(cap)
                time_us = rfc3339_us(rec["time"])
                recv_us = round(t_recv * 1e6)
                s = {"start": rec.get("start"), "gated": bool(rec.get("gated")),
                     "to_socket_ms": (recv_us - cap_us) / 1000,
                     "to_scores_ms": (time_us - cap_us) / 1000,
                     "publish_ms": (recv_us - time_us) / 1000}
                samples.append(s)
                to_socket.append(s["to_socket_ms"])
                to_scores.append(s["to_scores_ms"])
                publish.append(s["publish_ms"])
        # End of the measuring period.
        w1 = time.time()
        c1 = proc_cpu_ticks(pid)
        s1 = proc_schedstat_ns(pid)
        srv1 = proc_schedstat_ns(pulse.pid) if pulse else None
        th1 = proc_threads(pid)
        b1, tot1 = core_ticks(args.cpu)
        mem = proc_status(pid)
        load1 = loadavg()
        # One more status record, so inference_ms covers the whole period.
        for _, rec in sub.lines(time.time() + float(STATUS_INTERVAL) + 1):
            if rec.get("type") == "status":
                last_status = rec
                break
        wall = w1 - w0
        result.update({
            "wall_s": wall,
            "predictions": len(samples) + no_captured,
            "warmup_predictions": warm_predictions,
            "gated": gated,
            "no_captured": no_captured,
            "cpu_pct": 100 * (c1 - c0) / CLK_TCK / wall,
            "cpu_pct_schedstat": 100 * (s1 - s0) / 1e9 / wall,
            # The sound server's own cost of serving hark's stream (its fragment length sets
            # how often the server wakes too).
            "server_cpu_pct": 100 * (srv1 - srv0) / 1e9 / wall if pulse else None,
            "threads_cpu_pct": thread_split(th0, th1, wall),
            "core_busy_pct": 100 * (b1 - b0) / (tot1 - tot0) if tot1 and tot1 > tot0 else None,
            "vmhwm_mb": mem["VmHWM"] * PAGE_MB,
            "vmrss_mb": mem["VmRSS"] * PAGE_MB,
            "threads": mem.get("Threads"),
            "loadavg_start": load0,
            "loadavg_end": load1,
            "status_start": status0,
            "status_end": last_status,
            "inference_ms": last_status.get("inference_ms") if last_status else None,
            "to_socket_ms": summary(to_socket),
            "to_scores_ms": summary(to_scores),
            "publish_ms": summary(publish),
            "to_socket_ungated_ms": summary([s["to_socket_ms"] for s in samples
                                             if not s["gated"]]),
            "samples": samples,
        })
    finally:
        if sub:
            sub.close()
        if proc is not None:
            result["exit_code"] = stop_process(proc)
        if pulse:
            pulse.stop()
            # The server, its default source and the player start before hark; -k at the end.
            commands = pulse.commands[:3] + commands + pulse.commands[3:]
        aux_log.close()
        shutil.rmtree(rundir, ignore_errors=True)
    log = parse_log(log_path)
    result["daemon_log"] = log
    if kind == "pulse":
        cfg = log.get("config", "")  # "2 ch, 48000 Hz, f32"
        try:
            channels = int(cfg.split(" ch")[0])
            rate = int(cfg.split(", ")[1].split(" Hz")[0])
        except (ValueError, IndexError):
            pass
        result["device"] = log.get("device")
        result["host"] = log.get("host")
        result["period_frames"] = log.get("period_frames")
    result["rate"], result["channels"] = rate, channels
    result["commands"] = commands
    inf = result.get("inference_ms")
    p50 = result["to_socket_ms"].get("p50")
    p99 = result["to_socket_ms"].get("p99")
    wait = expected_wait_ms(kind, rate, log)
    result["expected_resampler_wait_ms"] = wait
    if inf is not None and p50 is not None:
        result["p50_minus_inference_ms"] = p50 - inf
        if wait is not None:
            extra = p50 - inf - wait
            result["p50_unexplained_ms"] = extra
            # "a few ms": consumer wake-up, smoothing, JSON, the socket, the client's wake-up.
            result["plausible"] = -2.0 <= extra <= 8.0
    if inf is not None and p99 is not None:
        result["latency_target_ms"] = inf + TARGET_LATENCY_SLACK_MS
        result["latency_target_met"] = p99 <= inf + TARGET_LATENCY_SLACK_MS
    result["rss_target_met"] = result["vmhwm_mb"] <= TARGET_RSS_MB
    return result


# ---------------------------------------------------------------------------------------------
# report


def fmt(x, digits=1):
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "**no**"
    return f"{x:.{digits}f}"


def busiest(threads, n=3):
    return ", ".join(f"{k} {v['cpu_pct']:.1f} % {v['switches_per_s']:.0f}/s"
                     for k, v in list(threads.items())[:n])


def report(meta, runs):
    out = []
    out.append(f"### hark run at steady state ({meta['date']})\n")
    m = meta["machine"]
    out.append(f"Machine: {m['cpu_model']}, {m['cores']} cores, Linux {m['kernel']}; "
               f"hark {meta['git']}; daemon pinned to core {meta['cpu']}, subscriber on core "
               f"{meta['client_cpu']}; warm-up {meta['warmup']} s discarded; "
               f"{'runs of a round at the same time (--paired); ' if meta.get('paired') else ''}"
               f"status every {STATUS_INTERVAL} s.\n")
    out.append("| input | s | preds | CPU % of 1 core | VmHWM MB | VmRSS MB | inference ms "
               "| to socket p50 / p90 / p99 / max ms | time to scores p50 / p99 ms "
               "| p99 ≤ inf + 20 | VmHWM ≤ 60 |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        if "error" in r:
            out.append(f"| {r['name']} | — | error: {r['error']} |||||||||")
            continue
        src = f"{(r['rate'] or 0) / 1000:g} kHz {r['channels']} ch {r['source']}"
        if r["source"] == "pulse":
            src += f" ({r.get('host')}: {r.get('device')}, period {r.get('period_frames')})"
        sk, sc = r["to_socket_ms"], r["to_scores_ms"]
        out.append(
            f"| {src} | {r['wall_s']:.0f} | {r['predictions']} | {fmt(r['cpu_pct'])} "
            f"| {fmt(r['vmhwm_mb'])} | {fmt(r['vmrss_mb'])} | {fmt(r['inference_ms'], 2)} "
            f"| {fmt(sk.get('p50'))} / {fmt(sk.get('p90'))} / {fmt(sk.get('p99'))} / "
            f"{fmt(sk.get('max'))} | {fmt(sc.get('p50'))} / {fmt(sc.get('p99'))} "
            f"| {fmt(r.get('latency_target_met'))} ({fmt(r.get('latency_target_ms'))}) "
            f"| {fmt(r['rss_target_met'])} |")
    out.append("")
    out.append("| input | load avg start → end | core busy % (all processes) | CPU % schedstat "
               "| gated | overruns / skipped (end) | p50 − inference | expected resampler wait "
               "| unexplained | plausible | busiest threads: CPU %, context switches/s |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        if "error" in r:
            continue
        st = r.get("status_end") or {}
        out.append(
            f"| {r['name']} | {r['loadavg_start']} → {r['loadavg_end']} "
            f"| {fmt(r['core_busy_pct'])} | {fmt(r['cpu_pct_schedstat'])} | {r['gated']} "
            f"| {st.get('overruns')} / {st.get('skipped_windows')} "
            f"| {fmt(r.get('p50_minus_inference_ms'))} "
            f"| {fmt(r.get('expected_resampler_wait_ms'))} "
            f"| {fmt(r.get('p50_unexplained_ms'))} | {fmt(r.get('plausible'))} "
            f"| {busiest(r['threads_cpu_pct'])} |")
    out.append("")
    out.append("Commands as run:\n")
    out.append("```")
    for r in runs:
        for c in r.get("commands", []):
            out.append(c)
    out.append("```")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--long", type=Path, default=Path("/tmp/hark-bench/long.wav"))
    ap.add_argument("--runs", default="44k,16k,48k2")
    ap.add_argument("--pulse", action="store_true", help="add a run through PulseAudio")
    ap.add_argument("--hosts", default="pulseaudio,alsa",
                    help="capture hosts for --pulse, comma-separated")
    ap.add_argument("--repeat", type=int, default=1, help="run the whole list N times")
    ap.add_argument("--pulse-device", default=None,
                    help="--device for the pulse run (default: the default device)")
    ap.add_argument("--paired", action="store_true",
                    help="run a round's runs at the same time, on the same core")
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--warmup", type=float, default=10)
    ap.add_argument("--cpu", type=int, default=1)
    ap.add_argument("--client-cpu", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/hark-bench"))
    args = ap.parse_args()

    if not HARK.exists():
        die(f"{HARK} is missing (cargo build --release)")
    if not args.long.exists():
        die(f"{args.long} is missing (benches/make_long_recording.sh {args.long})")
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.sched_setaffinity(0, {args.client_cpu})

    specs = []
    for item in args.runs.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, secs = item.partition(":")
        specs.append((name, float(secs) if secs else args.seconds))
    if args.pulse:
        for host in filter(None, args.hosts.split(",")):
            if f"pulse-{host}" not in [n for n, _ in specs]:
                specs.append((f"pulse-{host}", args.seconds))
    files = {"44k": args.long,
             "16k": args.long.with_name(args.long.stem + "16k.wav"),
             "48k2": args.long.with_name(args.long.stem + "48k2.wav")}
    for name, _ in specs:
        if name not in files and not name.startswith("pulse"):
            die(f"unknown run {name!r} (44k, 16k, 48k2, pulse)")
    if any(n == "16k" for n, _ in specs):
        ensure_copy(args.long, files["16k"], 16000, 1)
    if any(n == "48k2" for n, _ in specs):
        ensure_copy(args.long, files["48k2"], 48000, 2)

    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "git": git_head(), "cpu": args.cpu,
            "client_cpu": args.client_cpu, "warmup": args.warmup,
            "loadavg_before": loadavg(), "argv": sys.argv}
    meta["paired"] = args.paired
    runs = []
    for round_ in range(args.repeat):
        if args.paired:
            rs = paired_round(specs, args, files, round_)
        else:
            rs = [guarded_run(name, secs, args, files, round_) for name, secs in specs]
        for r in rs:
            r["round"] = round_ + 1
            runs.append(r)
    meta["loadavg_after"] = loadavg()
    text = report(meta, runs)
    if args.repeat > 1:
        text += "\n\n" + repeat_summary(runs)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")
    return 1 if any("error" in r for r in runs) else 0


def guarded_run(name, secs, args, files, round_, start_at=None):
    print(f"round {round_ + 1}/{args.repeat}, run {name}: {args.warmup:g} s warm-up + "
          f"{secs:g} s (load {loadavg()})", file=sys.stderr, flush=True)
    try:
        r = one_run(name, secs, args, files, args.workdir, start_at)
    except BaseException as e:  # report the others anyway (die() in a thread raises SystemExit)
        r = {"name": name, "error": f"{type(e).__name__}: {e}"}
    report_progress(r)
    return r


def paired_round(specs, args, files, round_):
    """All runs of the round at once, on the same core, measured over the same seconds: the
    host's speed (which here varied 3x between consecutive runs, BENCHMARKS 3b) is then the same
    for the file run and the capture runs, and their ratio measures capture alone."""
    start_at = time.time() + PAIRED_SETUP_S + args.warmup
    results = [None] * len(specs)

    def go(i, name, secs):
        results[i] = guarded_run(name, secs, args, files, round_, start_at)

    threads = [threading.Thread(target=go, args=(i, n, s)) for i, (n, s) in enumerate(specs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def report_progress(r):
    if "error" not in r:
        print(f"  {r['predictions']} predictions, CPU {r['cpu_pct']:.1f} %, "
              f"VmHWM {r['vmhwm_mb']:.1f} MB, p50 {r['to_socket_ms'].get('p50')} ms, "
              f"threads {busiest(r['threads_cpu_pct'])}", file=sys.stderr, flush=True)
    else:
        print(f"  {r['error']}", file=sys.stderr, flush=True)


CAPTURE_THREADS = ("cpal_alsa_in", "hark-capture")


def thread_group(r, names):
    return sum(v["cpu_pct"] for k, v in r["threads_cpu_pct"].items() if k in names)


def repeat_summary(runs):
    """Per run name over the rounds: whole-process CPU, its ratio to the round's first file run,
    the capture threads, the consumer and hark-io; worst = highest."""
    base = {}
    for r in runs:
        if "error" not in r and r["source"] == "file":
            base.setdefault(r["round"], r["cpu_pct"])
    names = list(dict.fromkeys(r["name"] for r in runs))
    out = ["| run | rounds | CPU % min / median / worst | ratio to file: median / worst "
           "| capture threads CPU % median / worst | consumer median | hark-io median "
           "| p99 − inference ms worst | sound server CPU % median |",
           "|---|---|---|---|---|---|---|---|---|"]

    def mid(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2] if xs else None

    for name in names:
        rs = [r for r in runs if r["name"] == name and "error" not in r]
        errors = sum(1 for r in runs if r["name"] == name and "error" in r)
        if not rs:
            out.append(f"| {name} | 0 ({errors} errors) |||||||")
            continue
        cpu = [r["cpu_pct"] for r in rs]
        ratio = [r["cpu_pct"] / base[r["round"]] for r in rs if base.get(r["round"])]
        cap = [thread_group(r, CAPTURE_THREADS) for r in rs]
        cons = [thread_group(r, ("hark-consumer",)) for r in rs]
        io = [thread_group(r, ("hark-io",)) for r in rs]
        lat = [r["to_socket_ms"]["p99"] - r["inference_ms"] for r in rs
               if r.get("inference_ms") is not None and r["to_socket_ms"].get("p99") is not None]
        out.append(
            f"| {name} | {len(rs)}{f' ({errors} errors)' if errors else ''} "
            f"| {fmt(min(cpu))} / {fmt(mid(cpu))} / {fmt(max(cpu))} "
            f"| {fmt(mid(ratio), 2)} / {fmt(max(ratio) if ratio else None, 2)} "
            f"| {fmt(mid(cap))} / {fmt(max(cap))} | {fmt(mid(cons))} | {fmt(mid(io))} "
            f"| {fmt(max(lat) if lat else None)} "
            f"| {fmt(mid([r['server_cpu_pct'] for r in rs if r.get('server_cpu_pct') is not None]))} |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
