#!/usr/bin/env python3
"""A fleet of harks on one broker: N `hark run` instances with distinct nodes, each playing a
real recording (`--input FILE --exit-at-end`, real time unless --fast), publish to one
mosquitto; a `mosquitto_sub -t 'hark/+/event'` must receive every event of every instance,
checked against each instance's own `--print json` (same (type, id) sequence per node).
Reports the broker's and the harks' CPU (% of one core, from /proc/<pid>/stat) and peak memory
(VmHWM). Run through benches/fleet.sh, which builds hark first."""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARK = ROOT / "target" / "release" / "hark"
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid):
    """utime + stime of `pid`, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError):
        return None


def hwm_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def events_of(lines, node=None):
    """(type, id) of every event_start / event_end in JSON lines (of `node`, if given)."""
    out = []
    for line in lines:
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if v.get("type") in ("event_start", "event_end") and (node is None or v.get("node") == node):
            out.append((v["type"], v["id"]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--instances", type=int, default=20)
    ap.add_argument("--recordings", default="/work/shared/data/recordings")
    ap.add_argument("--fast", action="store_true", help="read the files as fast as possible")
    args = ap.parse_args()

    recordings = sorted(Path(args.recordings).glob("*.wav"))
    if not recordings:
        sys.exit(f"no .wav in {args.recordings}")
    work = Path(tempfile.mkdtemp(prefix="hark-fleet-"))
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.time() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.time() > deadline:
                sys.exit("mosquitto did not start")
            time.sleep(0.05)
    sub_out = open(work / "sub.txt", "w")
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", "hark/+/event"],
        stdout=sub_out,
    )
    time.sleep(0.5)

    harks = []
    started = time.time()
    for i in range(args.instances):
        node = f"pi{i:02d}"
        rec = recordings[i % len(recordings)]
        c = work / f"{node}.toml"
        c.write_text(
            f'[mqtt]\nenabled = true\nurl = "mqtt://127.0.0.1:{port}"\nnode = "{node}"\n'
            f'client_id = "hark-{node}"\n'
        )
        cmd = [str(HARK), "--log", "warn", "run", "--config", str(c), "--no-socket",
               "--print", "json", "--input", str(rec), "--exit-at-end"]
        if args.fast:
            cmd.append("--fast")
        out = open(work / f"{node}.jsonl", "w")
        err = open(work / f"{node}.err", "w")
        p = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT)
        harks.append((node, rec, p))

    hark_ticks = {}
    hark_hwm = {}
    ended = {}
    broker_hwm = 0
    broker_t0 = cpu_ticks(broker.pid)
    while any(p.poll() is None for _, _, p in harks):
        for node, _, p in harks:
            if p.poll() is not None:
                ended.setdefault(node, time.time())
                continue
            t = cpu_ticks(p.pid)
            if t is not None:
                hark_ticks[node] = t
            h = hwm_kib(p.pid)
            if h is not None:
                hark_hwm[node] = max(hark_hwm.get(node, 0), h)
        broker_hwm = max(broker_hwm, hwm_kib(broker.pid) or 0)
        time.sleep(0.2)
    wall = time.time() - started
    broker_ticks = (cpu_ticks(broker.pid) or 0) - (broker_t0 or 0)
    time.sleep(2)
    sub.terminate()
    sub.wait()
    sub_out.close()
    broker.terminate()
    broker.wait()

    received = (work / "sub.txt").read_text().splitlines()
    failed = [n for n, _, p in harks if p.returncode != 0]
    total_want = total_got = 0
    mismatched = []
    for node, rec, _ in harks:
        want = events_of((work / f"{node}.jsonl").read_text().splitlines())
        got = events_of(received, node)
        total_want += len(want)
        total_got += len(got)
        if want != got:
            mismatched.append((node, rec.name, len(want), len(got)))
    now = time.time()
    life = {n: ended.get(n, now) - started for n, _, _ in harks}
    secs = [hark_ticks.get(n, 0) / TICK for n, _, _ in harks]
    cpu = [100.0 * hark_ticks.get(n, 0) / TICK / life[n] for n, _, _ in harks]
    hwm = [hark_hwm.get(n, 0) / 1024 for n, _, _ in harks]
    mode = "fast" if args.fast else "real time"
    print(f"fleet: {args.instances} harks ({mode}, {len(recordings)} recordings), one mosquitto, {wall:.1f} s wall")
    print(f"events: {total_got} received on hark/+/event of {total_want} printed by the harks; "
          f"nodes with a different sequence: {len(mismatched)}; harks that failed: {len(failed)}")
    for m in mismatched:
        print("  mismatch:", m)
    print(f"hark CPU, % of one core over each instance's life (start to exit): mean "
          f"{sum(cpu) / len(cpu):.1f}, max {max(cpu):.1f}; CPU seconds: {sum(secs):.1f} in all, "
          f"max {max(secs):.2f} per instance (the last sample before exit)")
    print(f"hark peak RSS (VmHWM): mean {sum(hwm) / len(hwm):.1f} MiB, max {max(hwm):.1f} MiB")
    print(f"mosquitto: CPU {100.0 * broker_ticks / TICK / wall:.2f} % of one core, peak RSS {broker_hwm / 1024:.1f} MiB")
    print(f"(files in {work})")
    sys.exit(1 if mismatched or failed else 0)


if __name__ == "__main__":
    main()
