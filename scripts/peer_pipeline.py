#!/usr/bin/env python3
"""Benchmark peer: `hark run --input FILE --fast --exit-at-end` written the way a Python
project would write it.

librosa.load (decode, mono, resample to 16 kHz with librosa's default soxr_hq), CED-tiny through
onnxruntime with one thread, 1 s windows every 0.5 s, exponential moving average of the scores,
and hark's event decision (hysteresis on/off, min_duration, hold, listen list, per-label
overrides), read from hark's built-in defaults (config/hark.toml) and the model's manifest.

Prints one JSON object per line for each event_start / event_end, with hark's keys.

Usage: peer_pipeline.py FILE [--model models/ced-tiny.toml] [--config config/hark.toml]
                             [--print-windows] [--timing]
"""
import argparse
import csv
import datetime
import json
import sys
import time
import tomllib
from pathlib import Path

import librosa
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent


def now():
    t = datetime.datetime.now(datetime.timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def f32(x):
    """A float32 score as hark prints it (shortest repr of the f32, not of the f64)."""
    return float(str(np.float32(x)))


def emit(record):
    print(json.dumps(record), flush=False)


class Decider:
    """hark's per-label hysteresis state machine (src/pipeline/decision/)."""

    def __init__(self, decision, labels):
        self.labels = labels
        listen = set(decision.get("listen", []))
        unknown = listen - set(labels)
        if unknown:
            sys.exit(f"decision.listen: unknown labels {sorted(unknown)}")
        overrides = decision.get("labels", {})
        self.rules = {}
        for i, name in enumerate(labels):
            if listen and name not in listen:
                continue  # never starts an event
            o = overrides.get(name, {})
            self.rules[i] = dict(
                on=np.float32(o.get("on", decision.get("on", 0.5))),
                off=np.float32(o.get("off", decision.get("off", 0.35))),
                min_duration=float(o.get("min_duration", decision.get("min_duration", 0.0))),
                hold=float(o.get("hold", decision.get("hold", 1.0))),
            )
        self.state = {i: None for i in self.rules}  # None = idle, else a dict
        self.next_id = 1

    def update(self, start, end, scores):
        ends, starts = [], []
        for i, rule in self.rules.items():  # label order
            s = self.state[i]
            score = scores[i]
            label = self.labels[i]
            if s is None:
                if score >= rule["on"]:
                    s = dict(phase="candidate", onset=start, peak=score)
            elif s["phase"] == "candidate":
                if score >= rule["off"]:
                    s["peak"] = max(s["peak"], score)
                else:
                    s = None
            elif score >= rule["off"]:  # active
                s["peak"] = max(s["peak"], score)
                s["last_above_end"] = end
                s["below"] = False
            elif end - s["last_above_end"] >= rule["hold"]:
                ends.append(dict(type="event_end", id=s["id"], label=label, start=s["onset"],
                                 end=s["last_above_end"], time=now(), peak=f32(s["peak"])))
                s = None
            else:
                s["below"] = True
            if s is not None and s["phase"] == "candidate" \
                    and end - s["onset"] >= rule["min_duration"]:
                s.update(phase="active", id=self.next_id, last_above_end=end, below=False)
                self.next_id += 1
                starts.append(dict(type="event_start", id=s["id"], label=label,
                                   start=s["onset"], time=now(), score=f32(score)))
            self.state[i] = s
        return ends + starts

    def finish(self, at):
        ends = []
        for i, s in self.state.items():
            if s is not None and s["phase"] == "active":
                end = s["last_above_end"] if s["below"] else max(at, s["onset"])
                ends.append(dict(type="event_end", id=s["id"], label=self.labels[i],
                                 start=s["onset"], end=end, time=now(), peak=f32(s["peak"])))
            self.state[i] = None
        return ends


class Smoother:
    """hark's score smoothing (src/pipeline/smoothing.rs)."""

    def __init__(self, smoothing):
        self.method = smoothing.get("method", "ema")
        self.alpha = np.float32(smoothing.get("ema_alpha", 0.7))
        self.n = int(smoothing.get("windows", 2))
        self.history = []
        self.ema = None

    def push(self, p):
        if self.method == "none":
            return p
        if self.method == "ema":
            # The first window is taken as is, not blended with zeros.
            self.ema = p if self.ema is None else self.alpha * p + (1 - self.alpha) * self.ema
            return self.ema
        if self.method == "geometric_mean":
            p = np.log(np.maximum(p, np.float32(1e-7)))
        self.history = (self.history + [p])[-self.n:]
        m = np.mean(self.history, axis=0, dtype=np.float32)
        return np.exp(m) if self.method == "geometric_mean" else m


def level_dbfs(x):
    ms = np.mean(x.astype(np.float64) ** 2) if len(x) else 0.0
    return -120.0 if ms <= 1e-12 else 10 * np.log10(ms)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--model", default=ROOT / "models/ced-tiny.toml", type=Path,
                    help="model manifest (.toml)")
    ap.add_argument("--config", default=ROOT / "config/hark.toml", type=Path,
                    help="hark config whose [smoothing] and [decision] to use")
    ap.add_argument("--print-windows", action="store_true",
                    help="also print a prediction record (top 5 smoothed labels) per window")
    ap.add_argument("--timing", action="store_true", help="print stage times to stderr")
    args = ap.parse_args()

    t_start = time.perf_counter()
    manifest = tomllib.loads(args.model.read_text())
    config = tomllib.loads(args.config.read_text())
    model_dir = args.model.parent
    with open(model_dir / manifest["labels"], newline="") as f:
        labels = [row["display_name"] for row in csv.DictReader(f)]
    sr = int(manifest["sample_rate"])
    window = round(manifest["window"] * sr)
    hop = round(manifest["hop"] * sr)

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model_dir / manifest["model"]), so,
                                providers=["CPUExecutionProvider"])
    in_name = manifest.get("input_name", sess.get_inputs()[0].name)
    out_name = manifest.get("output_name", sess.get_outputs()[0].name)
    smoother = Smoother(config.get("smoothing", {}))
    decider = Decider(config.get("decision", {}), labels)
    t_setup = time.perf_counter()

    y, _ = librosa.load(args.file, sr=sr, mono=True)
    t_load = time.perf_counter()

    # Every complete window starting at k * hop; a stream shorter than one window is scored
    # once, zero-padded. A partial window at the end is not scored.
    starts = list(range(0, len(y) - window + 1, hop))
    if not starts and len(y) > 0:
        starts = [0]
    t_infer = 0.0
    for start in starts:
        x = np.zeros(window, dtype=np.float32)
        chunk = y[start:start + window]
        x[:len(chunk)] = chunk
        t0 = time.perf_counter()
        raw = sess.run([out_name], {in_name: x[None, :]})[0][0]
        t_infer += time.perf_counter() - t0
        smoothed = smoother.push(raw)
        t0, t1 = start / sr, (start + window) / sr
        events = decider.update(t0, t1, smoothed)
        if args.print_windows:
            top = np.argsort(-smoothed, kind="stable")[:5]
            emit(dict(type="prediction", start=t0, end=t1,
                      top=[dict(label=labels[i], score=f32(smoothed[i])) for i in top],
                      level_db=round(float(level_dbfs(chunk)), 1)))
        for e in events:
            emit(e)
    for e in decider.finish(len(y) / sr):
        emit(e)
    sys.stdout.flush()

    if args.timing:
        t_end = time.perf_counter()
        print(f"peer: {len(y) / sr:.1f} s of audio, {len(starts)} windows; setup "
              f"{t_setup - t_start:.2f} s, load+resample {t_load - t_setup:.2f} s, inference "
              f"{t_infer:.2f} s ({1000 * t_infer / max(1, len(starts)):.2f} ms/window), "
              f"loop total {t_end - t_load:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
