#!/usr/bin/env python3
"""Measure hark's default smoothing and decision settings on the real recordings.

Runs the hark binary over the recordings and datasets in ../shared/data (see its
MANIFEST.md) and reports, for candidate settings, how many clips of each event class get
an event for a matching label (detection), how many clips of the other classes get one
(false positives), and the onset error on the two smoke-alarm recordings.

Two stages, because the grid is large and the daemon is not:

* `sweep`: `hark classify --json --top 527` once per file gives the raw (unsmoothed)
  per-window scores; smoothing and the hysteresis state machine of src/smoothing.rs and
  src/decision.rs are simulated here for every candidate setting.
* `verify`: the real daemon, `hark run --input FILE --fast --exit-at-end --print json`,
  runs over the same files with one config (by default config/hark.toml), and its
  `event_start` records are scored the same way; the simulation of that config is
  scored beside it, so the two can be compared.

Python 3 standard library only. See docs/defaults.md for the method and the results.

    python3 scripts/measure_defaults.py sweep
    python3 scripts/measure_defaults.py verify --config config/hark.toml
"""

import argparse
import concurrent.futures
import csv
import json
import math
import os
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOP = 0.5  # CED-tiny manifest: 1 s windows every 0.5 s
WINDOW = 1.0

# Event types the default config is meant to report, with the AudioSet labels that name
# them. Every label here is a candidate for `decision.listen`; its events count as a
# detection on clips of the type's classes and as a false positive anywhere else.
GROUPS = {
    "alarm": [
        "Smoke detector, smoke alarm",
        "Fire alarm",
        "Alarm",
        "Beep, bleep",
        "Alarm clock",
        "Buzzer",
    ],
    "siren": [
        "Siren",
        "Civil defense siren",
        "Police car (siren)",
        "Ambulance (siren)",
        "Fire engine, fire truck (siren)",
        "Emergency vehicle",
    ],
    "doorbell": ["Doorbell", "Ding-dong"],
    "knock": ["Knock", "Door", "Tap"],
    "glass": ["Glass", "Shatter", "Breaking", "Smash, crash"],
    "dog": ["Dog", "Bark", "Yip", "Bow-wow", "Howl", "Growling"],
    "baby_cry": ["Baby cry, infant cry", "Crying, sobbing"],
    "scream": ["Screaming", "Yell"],
    "gunshot": ["Gunshot, gunfire"],
}
LABEL_GROUP = {label: g for g, labels in GROUPS.items() for label in labels}
CANDIDATES = [label for labels in GROUPS.values() for label in labels]

# Classes (normalised, see classify_file) whose clips are positives of a group.
POSITIVE_CLASSES = {
    "alarm": {"smoke_alarm", "alarm"},
    "siren": {"siren"},
    "doorbell": set(),
    "knock": {"knock"},
    "glass": {"glass"},
    "dog": {"dog"},
    "baby_cry": {"baby_cry"},
    "scream": set(),
    "gunshot": {"gun_shot"},
}
# Events that are not wrong on a class although they are not its group: in the AudioSet
# ontology Siren is a kind of Alarm, so "Alarm" on a siren clip is no false alarm.
ALSO_ACCEPTED = {"siren": {"Alarm"}}
# Clips whose content is unknown: reported, never counted.
UNSCORED_CLASSES = {"unknown"}
# Recordings and classes that must give no event at all (constraint 1 of the brief).
QUIET = {"quiet_room", "background_rec"}

SMOKE_ONSETS = {"first_alert_7010b.wav": 16.0, "first_alert_sa302.wav": 11.0}
ONSET_TOLERANCE = 2.0


# --------------------------------------------------------------------------- data


def load_files(data: Path):
    """Every clip as (path, dataset, class); class names are normalised across datasets."""
    files = []

    def rows(ds):
        with open(data / "datasets" / ds / "labels.csv", newline="") as f:
            return list(csv.DictReader(f))

    with open(data / "recordings" / "labels.csv", newline="") as f:
        for r in csv.DictReader(f):
            cls = {
                "smoke_alarm": "smoke_alarm",
                "silence": "quiet_room",
                "door_knock": "knock",
                "dog_bark": "dog",
                "background": "background_rec",
                "fireworks": "fireworks",
                "cat_meow": "cat",
                "boiling_water": "boiling_water",
                "unknown": "unknown",
            }[r["expected_label"]]
            files.append((data / "recordings" / r["file"], "recordings", cls))
    for r in rows("glass_break_1s"):
        cls = {"glass_break": "glass", "background": "background"}[r["label"]]
        files.append((data / "datasets/glass_break_1s" / r["file"], "glass_break_1s", cls))
    for r in rows("fire_alarm_tinyml"):
        cls = {"alarm": "alarm", "background": "background", "glass_break": "glass"}[r["label"]]
        files.append((data / "datasets/fire_alarm_tinyml" / r["file"], "fire_alarm_tinyml", cls))
    for r in rows("baby_cry_giulbia"):
        if r["label"] == "noise":
            cls = {"glass_breaking": "glass", "unknown": "esc50_other"}.get(
                r["esc50_category"], r["esc50_category"]
            )
        else:
            cls = {"crying_baby": "baby_cry"}.get(r["label"], r["label"])
        files.append((data / "datasets/baby_cry_giulbia" / r["file"], "baby_cry_giulbia", cls))
    for r in rows("urbansound8k_subset"):
        cls = {"dog_bark": "dog"}.get(r["label"], r["label"])
        files.append(
            (data / "datasets/urbansound8k_subset" / r["file"], "urbansound8k_subset", cls)
        )
    for r in rows("booth_household_sounds"):
        cls = {"glass_smash": "glass"}.get(r["label"], r["label"])
        files.append(
            (data / "datasets/booth_household_sounds" / r["file"], "booth_household_sounds", cls)
        )
    for r in rows("speech_fsdd_subset"):
        files.append((data / "datasets/speech_fsdd_subset" / r["file"], "speech_fsdd_subset", "speech"))
    return files


def raw_scores(hark: Path, files, cache: Path):
    """{path: [(start, end, {label: score})]} for the candidate labels, from one
    `hark classify --json --top 527` per file (batched), cached by path, size and mtime."""
    cached = {}
    if cache.exists():
        cached = json.loads(cache.read_text())
    key = lambda p: f"{p}|{p.stat().st_size}|{int(p.stat().st_mtime)}"
    out, todo = {}, []
    for path, _, _ in files:
        k = key(path)
        if k in cached:
            out[str(path)] = cached[k]
        else:
            todo.append(path)
    wanted = set(CANDIDATES)
    batch = 100
    for i in range(0, len(todo), batch):
        chunk = todo[i : i + batch]
        print(f"classify {i + len(chunk)}/{len(todo)}", file=sys.stderr)
        proc = subprocess.run(
            [str(hark), "--log", "warn", "classify", "--json", "--top", "527", *map(str, chunk)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        got = defaultdict(list)
        for line in proc.stdout.splitlines():
            rec = json.loads(line)
            if "top" not in rec:
                continue
            scores = {t["label"]: t["score"] for t in rec["top"] if t["label"] in wanted}
            got[rec["file"]].append((rec["start"], rec["end"], scores))
        for path in chunk:
            windows = got[str(path)]
            if not windows:
                raise SystemExit(f"hark classify gave no windows for {path}")
            out[str(path)] = cached[key(path)] = windows
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(cached))
    return out


# --------------------------------------------------------------------------- simulation


def smooth(seq, method, windows, alpha):
    """src/smoothing.rs `Smoother::push` over one label's score sequence."""
    out = []
    if method == "none":
        return list(seq)
    if method == "ema":
        state = None
        for p in seq:
            state = p if state is None else alpha * p + (1 - alpha) * state
            out.append(state)
        return out
    hist = []
    for p in seq:
        hist.append(math.log(max(p, 1e-7)) if method == "geometric_mean" else p)
        hist = hist[-windows:]
        m = sum(hist) / len(hist)
        out.append(math.exp(m) if method == "geometric_mean" else m)
    return out


def decide(times, seq, on, off, min_duration, hold):
    """src/decision.rs `Decider` for one label: the onsets (window starts) of its events."""
    starts = []
    phase, onset, last_above_end = "idle", 0.0, 0.0
    for (start, end), s in zip(times, seq):
        if phase == "idle":
            if s >= on:
                phase, onset = "candidate", start
        elif phase == "candidate":
            if s < off:
                phase = "idle"
        else:  # active
            if s >= off:
                last_above_end = end
            elif end - last_above_end >= hold:
                phase = "idle"
        if phase == "candidate" and end - onset >= min_duration:
            starts.append(onset)
            phase, last_above_end = "active", end
    return starts


class Config:
    """The parts of a hark config this script simulates."""

    def __init__(self, method, windows, alpha, on, off, min_duration, hold, listen, labels=None):
        self.method, self.windows, self.alpha = method, windows, alpha
        self.on, self.off, self.min_duration, self.hold = on, off, min_duration, hold
        self.listen = list(listen)
        self.labels = labels or {}

    @classmethod
    def from_toml(cls, path: Path):
        c = tomllib.loads(path.read_text())
        s, d = c.get("smoothing", {}), c.get("decision", {})
        return cls(
            s.get("method", "mean"),
            s.get("windows", 3),
            s.get("ema_alpha", 0.5),
            d.get("on", 0.5),
            d.get("off", 0.35),
            d.get("min_duration", 0.0),
            d.get("hold", 1.0),
            d.get("listen", []),
            d.get("labels", {}),
        )

    def rule(self, label):
        o = self.labels.get(label, {})
        return (
            o.get("on", self.on),
            o.get("off", self.off),
            o.get("min_duration", self.min_duration),
            o.get("hold", self.hold),
        )

    def describe(self):
        sm = {
            "none": "none",
            "ema": f"ema a={self.alpha}",
        }.get(self.method, f"{self.method} N={self.windows}")
        return f"{sm}, on={self.on}, off={self.off}, min_duration={self.min_duration}, hold={self.hold}"


def simulate(cfg: Config, scores):
    """{path: [(label, start)]}: the event_starts the config gives on every file."""
    events = {}
    for path, windows in scores.items():
        times = [(w[0], w[1]) for w in windows]
        evs = []
        for label in cfg.listen:
            seq = smooth([w[2].get(label, 0.0) for w in windows], cfg.method, cfg.windows, cfg.alpha)
            for start in decide(times, seq, *cfg.rule(label)):
                evs.append((label, start))
        events[path] = sorted(evs, key=lambda e: e[1])
    return events


# --------------------------------------------------------------------------- scoring


def is_correct(label, cls):
    g = LABEL_GROUP.get(label)
    return (g is not None and cls in POSITIVE_CLASSES[g]) or label in ALSO_ACCEPTED.get(cls, ())


def score(files, events):
    """Per-file verdicts and the figures the report needs."""
    r = {
        "det": defaultdict(lambda: [0, 0]),  # group -> [clips detected, clips]
        "label_det": defaultdict(int),  # label -> clips of its group's classes it fired on
        "fp": defaultdict(lambda: defaultdict(int)),  # label -> class -> clips
        "fp_clips": defaultdict(lambda: [0, 0]),  # class -> [clips with a wrong event, clips]
        "quiet_events": [],
        "onsets": {},
        "unscored": {},
    }
    for path, ds, cls in files:
        evs = events[str(path)]
        name = Path(path).name
        if cls in UNSCORED_CLASSES:
            r["unscored"][name] = evs
            continue
        if cls in QUIET and evs:
            r["quiet_events"].append((name, evs))
        if name in SMOKE_ONSETS:
            onset = SMOKE_ONSETS[name]
            alarm = [s for l, s in evs if LABEL_GROUP.get(l) == "alarm"]
            early = [(l, s) for l, s in evs if LABEL_GROUP.get(l) == "alarm" and s < onset - ONSET_TOLERANCE]
            first = min(alarm) if alarm else None
            r["onsets"][name] = (onset, first, early)
            # Alarm events well before the listed onset fire on the speech: false positives.
            evs = [(l, s) for l, s in evs if not (LABEL_GROUP.get(l) == "alarm" and s < onset - ONSET_TOLERANCE)]
            wrong = [(l, s) for l, s in evs if not is_correct(l, cls)] + early
        else:
            wrong = [(l, s) for l, s in evs if not is_correct(l, cls)]
        for g, classes in POSITIVE_CLASSES.items():
            if cls in classes:
                r["det"][g][1] += 1
                if any(LABEL_GROUP.get(l) == g for l, _ in evs):
                    r["det"][g][0] += 1
        for l in {l for l, _ in evs if is_correct(l, cls) and LABEL_GROUP.get(l)}:
            r["label_det"][l] += 1
        for l in {l for l, _ in wrong}:
            r["fp"][l][cls] += 1
        r["fp_clips"][cls][1] += 1
        if wrong:
            r["fp_clips"][cls][0] += 1
    return r


def constraints_ok(r):
    """Constraints (1) and (2) of the brief: silence stays silent; both alarms within 2 s."""
    if r["quiet_events"]:
        return False
    for onset, first, early in r["onsets"].values():
        if first is None or abs(first - onset) > ONSET_TOLERANCE or early:
            return False
    return True


def negatives(files):
    """Clip counts of each class that is not an event class."""
    pos = set().union(*POSITIVE_CLASSES.values())
    n = defaultdict(int)
    for _, _, cls in files:
        if cls not in pos and cls not in UNSCORED_CLASSES:
            n[cls] += 1
    return n


def totals(files, r):
    """(detected, positives, clips with a false event, clips) over all scored clips."""
    det = sum(v[0] for v in r["det"].values())
    pos = sum(v[1] for v in r["det"].values())
    fp = sum(v[0] for v in r["fp_clips"].values())
    n = sum(v[1] for v in r["fp_clips"].values())
    return det, pos, fp, n


# --------------------------------------------------------------------------- sweep


SMOOTHINGS = [("none", 1, 1.0)]
SMOOTHINGS += [("mean", n, 0.5) for n in (2, 3, 4, 6)]
SMOOTHINGS += [("geometric_mean", n, 0.5) for n in (2, 3, 4)]
SMOOTHINGS += [("ema", 1, a) for a in (0.3, 0.5, 0.7)]
ONS = [round(0.05 * i, 2) for i in range(2, 17)]  # 0.10 .. 0.80
MIN_DURATIONS = [0.0, 1.5, 2.0]  # 1, 2, 3 windows of 1 s every 0.5 s


def per_label_curves(files, scores, method, windows, alpha, min_duration, off_ratio):
    """For one smoothing, per label and `on`: (clips of its group detected, positives,
    clips of other classes with an event of it, negatives) — the label alone."""
    cls_of = {str(p): c for p, _, c in files}
    pos_n = defaultdict(int)
    for _, _, c in files:
        for g, classes in POSITIVE_CLASSES.items():
            if c in classes:
                pos_n[g] += 1
    neg_n = sum(1 for _, _, c in files if c not in UNSCORED_CLASSES)
    curves = {}
    for label in CANDIDATES:
        g = LABEL_GROUP[label]
        row = {}
        for on in ONS:
            d = fp = 0
            for path, windows_ in scores.items():
                c = cls_of[path]
                if c in UNSCORED_CLASSES:
                    continue
                times = [(w[0], w[1]) for w in windows_]
                seq = smooth([w[2].get(label, 0.0) for w in windows_], method, windows, alpha)
                starts = decide(times, seq, on, on * off_ratio, min_duration, 1.0)
                if not starts:
                    continue
                name = Path(path).name
                if name in SMOKE_ONSETS and g == "alarm":
                    early = [s for s in starts if s < SMOKE_ONSETS[name] - ONSET_TOLERANCE]
                    if early:
                        fp += 1
                    if len(early) < len(starts):
                        d += 1
                elif is_correct(label, c):
                    d += 1
                else:
                    fp += 1
            row[on] = (d, pos_n[g], fp, neg_n - pos_n[g])
        curves[label] = row
    return curves


def cmd_sweep(args, files, scores):
    print("# hark defaults: sweep over simulated smoothing and decision settings\n")
    print(f"{len(files)} clips; raw scores from `hark classify --json --top 527`.\n")
    neg = negatives(files)
    print("Negative classes (clips): " + ", ".join(f"{c} {n}" for c, n in sorted(neg.items())) + "\n")

    # 1. Smoothing x global `on` x min_duration, listening to every candidate label of the
    #    event types with positives, one threshold for all.
    listen = [l for l in CANDIDATES if POSITIVE_CLASSES[LABEL_GROUP[l]]] if args.all_labels else args.listen
    print("## 1. One threshold for every listened label\n")
    print(f"Listened: {', '.join(listen)}. off = {args.off_ratio} x on; hold = 1.0 s.\n")
    print("| smoothing | min_duration | on | quiet+onsets ok | 7010b onset | sa302 onset | detected | false (clips) | speech FP | background FP |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    best = []
    for method, n, a in SMOOTHINGS:
        for md in MIN_DURATIONS:
            if method == "none" and md > 0 and False:
                continue
            for on in ONS:
                cfg = Config(method, n, a, on, round(on * args.off_ratio, 3), md, 1.0, listen)
                r = score(files, simulate(cfg, scores))
                ok = constraints_ok(r)
                det, pos, fp, nn = totals(files, r)
                on_err = {k: (v[1] - v[0] if v[1] is not None else None) for k, v in r["onsets"].items()}
                sm = {"none": "none", "ema": f"ema a={a}"}.get(method, f"{method} N={n}")
                fmt = lambda e: "none" if e is None else f"{e:+.1f}"
                print(
                    f"| {sm} | {md} | {on} | {'yes' if ok else 'NO'} | {fmt(on_err['first_alert_7010b.wav'])} "
                    f"| {fmt(on_err['first_alert_sa302.wav'])} | {det}/{pos} | {fp}/{nn - pos} "
                    f"| {r['fp_clips']['speech'][0]}/{r['fp_clips']['speech'][1]} "
                    f"| {r['fp_clips']['background'][0]}/{r['fp_clips']['background'][1]} |"
                )
                if ok:
                    best.append((det - 2 * fp, det, fp, cfg.describe()))
    best.sort(reverse=True)
    print("\nBest single-threshold settings meeting the constraints (detected - 2 x false):\n")
    for b in best[:15]:
        print(f"- {b[3]}: detected {b[1]}, false {b[2]}")

    # 2. Per-label curves for the candidate smoothings, to set per-label thresholds.
    print("\n## 2. Per label: detections on its own classes / false events elsewhere, by `on`\n")
    for method, n, a in [s for s in SMOOTHINGS if s in args.curve_smoothings]:
        for md in (0.0,):
            sm = {"none": "none", "ema": f"ema a={a}"}.get(method, f"{method} N={n}")
            print(f"### {sm}, min_duration {md}\n")
            curves = per_label_curves(files, scores, method, n, a, md, args.off_ratio)
            print("| label | " + " | ".join(str(o) for o in ONS) + " |")
            print("|---|" + "---|" * len(ONS))
            for label, row in curves.items():
                cells = []
                for on in ONS:
                    d, p, fp, nn = row[on]
                    cells.append(f"{d}/{p} · {fp}" if p else f"– · {fp}")
                print(f"| {label} | " + " | ".join(cells) + " |")
            print()


# --------------------------------------------------------------------------- verify


def run_daemon(hark: Path, config: Path, path):
    proc = subprocess.run(
        [str(hark), "--log", "warn", "run", "--config", str(config), "--input", str(path),
         "--fast", "--exit-at-end", "--no-socket", "--print", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"hark run failed on {path}: {proc.stderr.strip()}")
    evs = []
    for line in proc.stdout.splitlines():
        rec = json.loads(line)
        if rec.get("type") == "event_start":
            evs.append((rec["label"], rec["start"]))
    return str(path), evs


def report(files, r, title):
    det, pos, fp, nn = totals(files, r)
    print(f"### {title}\n")
    print(f"Constraints (quiet room and background silent, both alarms within {ONSET_TOLERANCE} s): "
          f"{'met' if constraints_ok(r) else 'NOT MET'}\n")
    for name, (onset, first, early) in sorted(r["onsets"].items()):
        err = "no alarm event" if first is None else f"first alarm event at {first:.1f} s, error {first - onset:+.1f} s"
        extra = f"; early alarm events {early}" if early else ""
        print(f"- {name} (onset {onset} s): {err}{extra}")
    for name, evs in r["quiet_events"]:
        print(f"- events on {name}: {evs}")
    for name, evs in r["unscored"].items():
        print(f"- {name} (unlabelled, not scored): {sorted({l for l, _ in evs}) or 'no events'}")
    print(f"\nDetected {det}/{pos} event clips; {fp}/{nn - pos} other clips got a false event.\n")
    print("| event type | detected | rate |")
    print("|---|---|---|")
    for g, (d, p) in sorted(r["det"].items()):
        print(f"| {g} | {d}/{p} | {d / p:.0%} |")
    print("\n| class | clips with a false event | rate |")
    print("|---|---|---|")
    for c, (f, n) in sorted(r["fp_clips"].items()):
        print(f"| {c} | {f}/{n} | {f / n:.1%} |")
    print("\n| label | clips of its type detected | false events by class (clips) |")
    print("|---|---|---|")
    labels = sorted(set(r["label_det"]) | set(r["fp"]), key=lambda l: CANDIDATES.index(l) if l in CANDIDATES else 999)
    for l in labels:
        fps = ", ".join(f"{c} {n}" for c, n in sorted(r["fp"][l].items(), key=lambda x: -x[1])) or "–"
        print(f"| {l} | {r['label_det'].get(l, 0)} | {fps} |")
    print()


def cmd_verify(args, files, scores):
    cfg = Config.from_toml(args.config)
    print(f"# hark defaults: verification of {args.config}\n")
    print(f"Settings: {cfg.describe()}; listen {len(cfg.listen)} labels; overrides {cfg.labels}\n")
    sim = simulate(cfg, scores)
    real = {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_daemon, args.hark, args.config, p) for p, _, _ in files]
        for i, f in enumerate(concurrent.futures.as_completed(futures)):
            path, evs = f.result()
            real[path] = sorted(evs, key=lambda e: e[1])
            if (i + 1) % 200 == 0:
                print(f"hark run {i + 1}/{len(files)}", file=sys.stderr)
    report(files, score(files, real), "Real daemon: `hark run --fast --exit-at-end --print json`")
    report(files, score(files, sim), "Simulation of the same config on `hark classify` scores")
    differ = []
    for p, _, _ in files:
        a = [(l, round(s, 2)) for l, s in real[str(p)]]
        b = [(l, round(s, 2)) for l, s in sim[str(p)]]
        if a != b:
            differ.append((Path(p).name, a, b))
    print(f"Files where the daemon's event_starts differ from the simulation: {len(differ)}/{len(files)}\n")
    for name, a, b in differ[:20]:
        print(f"- {name}: daemon {a}, simulation {b}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["sweep", "verify"])
    ap.add_argument("--hark", type=Path, default=REPO / "target/release/hark")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data")
    ap.add_argument("--cache", type=Path, default=REPO / "target/measure_defaults/raw_scores.json")
    ap.add_argument("--config", type=Path, default=REPO / "config/hark.toml")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--off-ratio", type=float, default=0.7, help="sweep: off = on x this")
    ap.add_argument("--listen", nargs="*", default=None, help="sweep: labels for part 1")
    args = ap.parse_args()
    args.all_labels = args.listen is None
    args.curve_smoothings = [("none", 1, 1.0), ("mean", 2, 0.5), ("mean", 3, 0.5), ("ema", 1, 0.5)]
    files = load_files(args.data)
    scores = raw_scores(args.hark, files, args.cache)
    {"sweep": cmd_sweep, "verify": cmd_verify}[args.command](args, files, scores)


if __name__ == "__main__":
    main()
