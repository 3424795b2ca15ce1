#!/usr/bin/env python3
"""Measure hark's default smoothing, decision settings and sound groups on real recordings.

Runs the hark binary over the recordings and datasets in ../shared/data (see its
MANIFEST.md) and reports, for candidate settings, how many clips of each event type get
an event of that type (detection), how many clips of the other classes get one (false
events), how many events one sound makes (events per true sound: one sound reported as
`Dog`, `Bark` and `Bow-wow` at once is the defect `[groups]` fixes), and the onset error on
the two smoke-alarm recordings.

Stages, because the grid is large and the daemon is not:

* `sweep`: `hark classify --json --top 527` once per file gives the raw (unsmoothed)
  per-window scores; smoothing (src/pipeline/smoothing.rs) and the decision stage
  (src/pipeline/decision/, groups included: a group's score is the highest smoothed score
  of its labels, and its own thresholds apply) are simulated here for every candidate
  setting; its last section chooses the groups.
* `groups`: only that last section, the choice of `[groups]` (a minute, not ten).
* `simulate`: the simulation of one config (`--config`, and `--baseline`), in seconds.
* `verify`: the real daemon, `hark run --input FILE --fast --exit-at-end --print json`,
  runs over every file and every stream (below) with one config, layered over the
  built-in config/hark.toml as hark layers it (by default config/hark.toml itself), and
  its events are scored the same way, with the simulation of that config beside it. With
  `--baseline FILE` a second config goes through the same, and a before/after table of
  the two closes the report.

Streams: for each class of the datasets whose clips share a sample rate, the clips joined
into one recording with sox, each preceded by 3 s of the quiet-room recording, so that
each clip is one sound arriving in a quiet room at a daemon that has been running. An
event belongs to the clip its onset window overlaps most. Built once under
target/measure_defaults/streams/.

The raw scores are cached in target/measure_defaults/raw_scores.json per file, together
with a fingerprint of the binary's scores on three recordings (44.1 kHz, 48 kHz and
22.05 kHz): a binary whose resampler, front end or model scores differently recomputes
them by itself; a binary that only carries another built-in config does not.

Python 3.11+ standard library, and sox for the streams. See docs/defaults.md for the method
and the results.

    python3 scripts/measure_defaults.py sweep
    python3 scripts/measure_defaults.py groups
    python3 scripts/measure_defaults.py verify --config config/hark.toml \\
        --baseline tests/fixtures/config/groups_off.toml
"""

import argparse
import concurrent.futures
import csv
import hashlib
import json
import math
import os
import subprocess
import sys
import tomllib
from collections import defaultdict, namedtuple
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "config/hark.toml"
WINDOW = 1.0  # CED-tiny manifest: 1 s windows every 0.5 s

# Event types the default config is meant to report, with the AudioSet labels that name
# them. Every label here is a candidate for `decision.listen` and for the type's group;
# an event of the type counts as a detection on clips of the type's classes and as a false
# event anywhere else.
EVENT_TYPES = {
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
    # Not "Chink, clink": it names everyday clinking. Measured: it finds 5 of the 230
    # glass-break clips at on = 0.3 but also fires on 1 of the 5 clanking-dishes clips, and
    # a kitchen clinks far more often than glass breaks.
    "glass": ["Glass", "Shatter", "Breaking", "Smash, crash"],
    "dog": ["Dog", "Bark", "Yip", "Bow-wow", "Howl", "Growling"],
    "baby_cry": ["Baby cry, infant cry", "Crying, sobbing"],
    "scream": ["Screaming", "Yell"],
}
LABEL_TYPE = {label: t for t, labels in EVENT_TYPES.items() for label in labels}
CANDIDATES = [label for labels in EVENT_TYPES.values() for label in labels]
# The name of each event type's group in `[groups]`.
GROUP_NAME = {
    "alarm": "smoke_alarm",
    "siren": "siren",
    "doorbell": "doorbell",
    "knock": "knock",
    "glass": "glass",
    "dog": "dog",
    "baby_cry": "baby_cry",
    "scream": "scream",
}

# Classes (normalised, see load_files) whose clips are positives of an event type.
POSITIVE_CLASSES = {
    "alarm": {"smoke_alarm", "alarm"},
    "siren": {"siren"},
    "doorbell": set(),
    "knock": {"knock"},
    "glass": {"glass"},
    "dog": {"dog"},
    "baby_cry": {"baby_cry"},
    "scream": set(),
}
# Events that are not wrong on a class although they are not of its type, by the event's
# name: in the AudioSet ontology Siren is a kind of Alarm, so a lone "Alarm" event on a
# siren clip is no false alarm. A group's event is named by the group (a `smoke_alarm`
# event on a siren is a false alarm, whichever label led it).
ALSO_ACCEPTED = {"siren": {"Alarm"}}
# Clips whose content is unknown: reported, never counted.
UNSCORED_CLASSES = {"unknown"}
# Recordings and classes that must give no event at all (constraint 1 of docs/defaults.md).
QUIET = {"quiet_room", "background_rec"}

SMOKE_ONSETS = {"first_alert_7010b.wav": 16.0, "first_alert_sa302.wav": 11.0}
ONSET_TOLERANCE = 2.0

# One event: the track's name (a group's name, or the label of a label in no group), the
# label that scored highest in the window it started (what hark puts in `label`), and the
# event's start and end in stream seconds.
Event = namedtuple("Event", "name label start end")


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


QUIET_ROOM = "smoke_test_quiet_room_recording_20250720_091036.wav"
# Datasets whose clips of one class share a sample rate and channel count, so sox can join
# them: every class of these becomes one stream. (The booth sounds mix mono float and
# stereo integer files, 5 per class: left out.)
STREAM_DATASETS = [
    "urbansound8k_subset",
    "baby_cry_giulbia",
    "fire_alarm_tinyml",
    "glass_break_1s",
    "speech_fsdd_subset",
]
STREAM_GAP = 3.0  # seconds of the quiet room before each clip of a stream


def sox_query(option, paths):
    """`soxi OPTION` for every path, one line each."""
    out = subprocess.run(["soxi", option, *map(str, paths)], capture_output=True, text=True, check=True)
    return out.stdout.split()


def build_streams(files, data: Path, out_dir: Path):
    """[(path, dataset, class, [(clip start, clip end)])]: one stream per class of
    STREAM_DATASETS (see the module's doc), built with sox once and kept in `out_dir`."""
    quiet = data / "recordings" / QUIET_ROOM
    by_class = defaultdict(list)
    for path, ds, cls in files:
        if ds in STREAM_DATASETS and cls not in UNSCORED_CLASSES:
            by_class[(ds, cls)].append(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    streams = []
    for (ds, cls), paths in sorted(by_class.items()):
        wav = out_dir / f"{ds}__{cls}.wav"
        spans_file = wav.with_suffix(".json")
        if not (wav.exists() and spans_file.exists()):
            print(f"building stream {wav.name} ({len(paths)} clips)", file=sys.stderr)
            spans = join_clips(paths, quiet, wav)
            spans_file.write_text(json.dumps(spans))
        streams.append((wav, "streams", cls, json.loads(spans_file.read_text())))
    return streams


def join_clips(paths, quiet: Path, wav: Path):
    """Writes `wav`: STREAM_GAP s of the quiet room before each clip, then the clip, as
    32-bit float at the clips' rate. Returns each clip's (start, end) in seconds."""
    rates, channels = set(sox_query("-r", paths)), set(sox_query("-c", paths))
    if len(rates) != 1 or len(channels) != 1:
        raise SystemExit(f"{wav.name}: clips differ in rate {rates} or channels {channels}")
    rate, ch = int(float(rates.pop())), channels.pop()
    gap = wav.with_name(f"gap_{rate}_{ch}.wav")
    subprocess.run(
        ["sox", "-D", str(quiet), "-r", str(rate), "-c", ch, "-e", "floating-point", "-b", "32",
         str(gap), "trim", "0", str(STREAM_GAP)],
        check=True,
    )
    samples = [int(s) for s in sox_query("-s", paths)]
    gap_samples = int(sox_query("-s", [gap])[0])
    args, spans, at = [], [], 0
    for path, n in zip(paths, samples):
        args += [str(gap), str(path)]
        at += gap_samples
        spans.append((at / rate, (at + n) / rate))
        at += n
    subprocess.run(["sox", "-D", *args, "-e", "floating-point", "-b", "32", str(wav)], check=True)
    got = int(sox_query("-s", [wav])[0])
    if got != at:
        raise SystemExit(f"{wav.name}: {got} samples, expected {at}")
    return spans


# Files whose scores fingerprint the binary's audio path: one per sample rate the data has
# most of (44.1 kHz, 48 kHz stereo, 22.05 kHz).
FINGERPRINT_FILES = [
    "recordings/first_alert_7010b.wav",
    "recordings/door_knock_Door5.wav",
    "datasets/urbansound8k_subset/audio/fold1/127873-0-0-0.wav",
]
# Scores below this are not cached (they read as 0): thresholds start at 0.3, and an
# average or EMA of scores below 0.01 stays below 0.01.
SCORE_FLOOR = 0.01


def classify(hark: Path, paths):
    """{path: [(start, end, {label: score >= SCORE_FLOOR})]} from one
    `hark classify --json --top 527` over `paths`."""
    proc = subprocess.run(
        [str(hark), "--log", "warn", "classify", "--json", "--top", "527", *map(str, paths)],
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
        scores = {t["label"]: t["score"] for t in rec["top"] if t["score"] >= SCORE_FLOOR}
        got[rec["file"]].append((rec["start"], rec["end"], scores))
    return got


def fingerprint(hark: Path, data: Path):
    """A hash of the binary's scores on FINGERPRINT_FILES, rounded to 1e-5."""
    paths = [data / f for f in FINGERPRINT_FILES]
    got = classify(hark, paths)
    text = json.dumps(
        [[(s, e, sorted((l, round(v, 5)) for l, v in sc.items())) for s, e, sc in got[str(p)]] for p in paths]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def raw_scores(hark: Path, paths, cache: Path, data: Path):
    """{path: [(start, end, {label: score})]} for every label scoring SCORE_FLOOR or more,
    from `hark classify --json --top 527` (batched), cached by path, size and mtime, and
    recomputed for every file when the binary's fingerprint changes."""
    print_fp = fingerprint(hark, data)
    cached = {}
    if cache.exists():
        cached = json.loads(cache.read_text())
    if cached.get("fingerprint") != print_fp:
        if cached:
            print("hark scores differently from the cached scores: recomputing them", file=sys.stderr)
        cached = {"fingerprint": print_fp, "files": {}}
    files = cached["files"]
    key = lambda p: f"{p}|{p.stat().st_size}|{int(p.stat().st_mtime)}"
    out, todo = {}, []
    for path in paths:
        k = key(path)
        if k in files:
            out[str(path)] = files[k]
        else:
            todo.append(path)
    batch = 100
    for i in range(0, len(todo), batch):
        chunk = todo[i : i + batch]
        print(f"classify {i + len(chunk)}/{len(todo)}", file=sys.stderr)
        got = classify(hark, chunk)
        for path in chunk:
            windows = got[str(path)]
            if not windows:
                raise SystemExit(f"hark classify gave no windows for {path}")
            out[str(path)] = files[key(path)] = windows
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(cached))
    return out


# --------------------------------------------------------------------------- simulation


def smooth(seq, method, windows, alpha):
    """src/pipeline/smoothing.rs `Smoother::push` over one label's score sequence."""
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


def run_track(times, seqs, members, rule):
    """src/pipeline/decision `Decider` for one track: a group (`members` its labels, its
    score per window the highest of theirs) or a lone label (one member). Returns its
    events as (label, start, end): `label` is the member that scored highest in the window
    the event started (the first listed on a tie), `end` where its sound was last heard
    (the stream's end for one still sounding when the stream ends, as `finish` does)."""
    on, off, min_duration, hold = rule
    events = []
    phase, onset, last_above_end, below, label = "idle", 0.0, 0.0, False, None
    for i, (start, end) in enumerate(times):
        s, best = -1.0, members[0]
        for m in members:
            if seqs[m][i] > s:
                s, best = seqs[m][i], m
        if phase == "idle":
            if s >= on:
                phase, onset = "candidate", start
        elif phase == "candidate":
            if s < off:
                phase = "idle"
        else:  # active
            if s >= off:
                last_above_end, below = end, False
            elif end - last_above_end >= hold:
                events.append((label, onset, last_above_end))
                phase = "idle"
            else:
                below = True
        if phase == "candidate" and end - onset >= min_duration:
            phase, last_above_end, below, label = "active", end, False, best
    if phase == "active":
        at = times[-1][1] if times else 0.0
        events.append((label, onset, last_above_end if below else max(at, onset)))
    return events


def merge_toml(base, over):
    """`over` layered on `base` as hark's config loader does: tables merge key by key,
    anything else (numbers, strings, lists) is replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge_toml(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class Config:
    """The parts of a hark config this script simulates: smoothing, decision, groups."""

    def __init__(self, method, windows, alpha, on, off, min_duration, hold, listen, labels=None,
                 groups=None):
        self.method, self.windows, self.alpha = method, windows, alpha
        self.on, self.off, self.min_duration, self.hold = on, off, min_duration, hold
        self.listen = list(listen)
        self.labels = labels or {}
        # An empty group is no group (how a config turns a built-in one off).
        self.groups = {g: list(m) for g, m in (groups or {}).items() if m}
        self.check()

    @classmethod
    def from_toml(cls, path: Path, base: Path = DEFAULT_CONFIG):
        """`path` over the built-in config `base`, as `hark run --config PATH` reads it.
        Overrides of labels and groups the config does not have are dropped, as hark
        drops built-in overrides a model has no name for."""
        c = tomllib.loads(base.read_text())
        if path.resolve() != base.resolve():
            c = merge_toml(c, tomllib.loads(path.read_text()))
        s, d = c.get("smoothing", {}), c.get("decision", {})
        groups = {g: m for g, m in c.get("groups", {}).items() if m}
        labels = {k: v for k, v in d.get("labels", {}).items() if k in groups or k not in GROUP_NAME.values()}
        return cls(
            s.get("method", "ema"),
            s.get("windows", 2),
            s.get("ema_alpha", 0.7),
            d.get("on", 0.5),
            d.get("off", 0.35),
            d.get("min_duration", 0.0),
            d.get("hold", 1.0),
            d.get("listen", []),
            labels,
            groups,
        )

    def check(self):
        """What hark's validation refuses and this simulation relies on."""
        owner = {}
        for g, members in self.groups.items():
            types = {LABEL_TYPE.get(m) for m in members}
            if len(types) != 1 or None in types:
                print(f"warning: group {g} is not of one event type ({members}): its events "
                      "count as false everywhere", file=sys.stderr)
            GROUP_TYPE[g] = types.pop() if len(types) == 1 else None
            for m in members:
                if m in owner:
                    raise SystemExit(f'groups."{g}" = "{m}": is already in group "{owner[m]}"')
                owner[m] = g
        for name in self.labels:
            if name in owner:
                raise SystemExit(f'decision.labels."{name}": "{name}" is in group "{owner[name]}"')
        if not self.listen:
            raise SystemExit("an empty decision.listen (every label) is not simulated")

    def tracks(self):
        """(name, members) of every listened track, as src/pipeline/decision builds them:
        one per group (listened when the listen list names the group or one of its
        labels), one per listened label in no group."""
        listen = set(self.listen)
        grouped = {m for members in self.groups.values() for m in members}
        out = [(g, m) for g, m in self.groups.items() if g in listen or listen & set(m)]
        out += [(l, [l]) for l in self.listen if l not in grouped and l not in self.groups]
        return out

    def rule(self, name):
        o = self.labels.get(name, {})
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


CONTEXT_WINDOWS = 6  # 3 s of the quiet room before every short clip in the "stream" context
SHORT_CLIP = 6.0  # seconds; longer recordings are continuous audio already


def prepare(scores, method, windows, alpha, context=False, labels=None):
    """{path: (times, {label: smoothed scores})} for `labels` (default: every candidate).

    With `context`, every clip shorter than SHORT_CLIP is preceded by the first
    CONTEXT_WINDOWS windows of the quiet-room recording before smoothing (and those windows
    are dropped afterwards), as if the clip were heard in a quiet room by a daemon that has
    been running for a while. Without it the smoother starts empty at the clip's first window,
    exactly as `hark run --input CLIP` does, which flatters smoothing on 1 s clips: their only
    window is never averaged with anything.
    """
    labels = labels or CANDIDATES
    quiet = next(w for p, w in scores.items() if p.endswith(QUIET_ROOM))[:CONTEXT_WINDOWS]
    out = {}
    for path, windows_ in scores.items():
        pad = quiet if context and windows_[-1][1] <= SHORT_CLIP + 1e-6 else []
        times = [(w[0], w[1]) for w in windows_]
        seqs = {}
        for label in labels:
            raw = [w[2].get(label, 0.0) for w in pad] + [w[2].get(label, 0.0) for w in windows_]
            seqs[label] = smooth(raw, method, windows, alpha)[len(pad):]
        out[path] = (times, seqs)
    return out


def config_labels(cfg):
    """Every label a config's listened tracks need scores for."""
    return sorted({m for _, members in cfg.tracks() for m in members} | set(CANDIDATES))


def simulate(cfg: Config, prepared):
    """{path: [Event]}: the events the config gives on every file, by start.
    `prepared` must come from `prepare` with the config's smoothing and its labels."""
    events = {}
    tracks = [(name, members, cfg.rule(name)) for name, members in cfg.tracks()]
    for path, (times, seqs) in prepared.items():
        evs = []
        for name, members, rule in tracks:
            for label, start, end in run_track(times, seqs, members, rule):
                evs.append(Event(name, label, start, end))
        events[path] = sorted(evs, key=lambda e: (e.start, e.name))
    return events


# --------------------------------------------------------------------------- scoring


# Group name -> event type, for the groups of every config read (see Config.check); the
# groups the sweep builds are named by GROUP_NAME.
GROUP_TYPE = {g: t for t, g in GROUP_NAME.items()}


def event_type(name):
    """The event type of a track: its label's, or its group's (None: no type, so every
    event of it is a false one)."""
    return LABEL_TYPE.get(name) or GROUP_TYPE.get(name)


def verdict(ev, cls):
    """'hit' (its type is the clip's), 'ok' (accepted on this class) or 'false'."""
    t = event_type(ev.name)
    if t is not None and cls in POSITIVE_CLASSES[t]:
        return "hit"
    if ev.name in ALSO_ACCEPTED.get(cls, ()):
        return "ok"
    return "false"


def overlapping(evs):
    """How many of `evs` started while an earlier one was still open: one sound reported
    as two events at once."""
    n, open_until = 0, -1.0
    for e in sorted(evs, key=lambda e: e.start):
        if e.start < open_until:
            n += 1
        open_until = max(open_until, e.end)
    return n


def score(files, events):
    """Per-file verdicts and the figures the report needs."""
    r = {
        "det": defaultdict(lambda: [0, 0]),  # type -> [clips detected, clips]
        "label_det": defaultdict(int),  # event name -> clips of its type it fired on
        "fp": defaultdict(lambda: defaultdict(int)),  # event name -> class -> clips
        "fp_clips": defaultdict(lambda: [0, 0]),  # class -> [clips with a false event, clips]
        "false_events": 0,  # false events, all clips
        "sounds": defaultdict(lambda: [0, 0, 0, 0]),  # type -> [detected clips, their events, clips with >1, overlapping]
        "quiet_events": [],
        "onsets": {},
        "alarm_events": {},  # smoke-alarm recording -> alarm events not before its onset
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
        early = []
        if name in SMOKE_ONSETS:
            onset = SMOKE_ONSETS[name]
            alarm = [e.start for e in evs if event_type(e.name) == "alarm"]
            early = [e for e in evs if event_type(e.name) == "alarm" and e.start < onset - ONSET_TOLERANCE]
            r["onsets"][name] = (onset, min(alarm) if alarm else None, early)
            # Alarm events well before the listed onset fire on the speech: false events.
            evs = [e for e in evs if e not in early]
            r["alarm_events"][name] = sum(event_type(e.name) == "alarm" for e in evs)
        hits = [e for e in evs if verdict(e, cls) == "hit"]
        wrong = [e for e in evs if verdict(e, cls) == "false"] + early
        for t, classes in POSITIVE_CLASSES.items():
            if cls in classes:
                r["det"][t][1] += 1
                if hits:
                    r["det"][t][0] += 1
                    s = r["sounds"][t]
                    s[0] += 1
                    s[1] += len(hits)
                    s[2] += len(hits) > 1
                    s[3] += overlapping(hits)
        for n in {e.name for e in hits}:
            r["label_det"][n] += 1
        for n in {e.name for e in wrong}:
            r["fp"][n][cls] += 1
        r["false_events"] += len(wrong)
        r["fp_clips"][cls][1] += 1
        if wrong:
            r["fp_clips"][cls][0] += 1
    return r


def score_streams(streams, events):
    """Per stream: its events attributed to clips (the one their onset window overlaps
    most; none: the event is in a gap) and counted.
    {path: [class, clips, clips detected, hit events, clips with >1, overlapping,
    false events, clips with a false event, {event name: false events}]}"""
    out = {}
    for path, _, cls, spans in streams:
        evs = events[str(path)]
        per_clip = defaultdict(list)
        gap_events = []
        for e in evs:
            overlap = [min(b, e.start + WINDOW) - max(a, e.start) for a, b in spans]
            i = max(range(len(spans)), key=lambda i: overlap[i])
            (per_clip[i] if overlap[i] > 0 else gap_events).append(e)
        det = hit_events = multi = over = false_events = false_clips = 0
        false_names = defaultdict(int)
        for e in gap_events:
            false_names[e.name] += 1
        for i in range(len(spans)):
            hits = [e for e in per_clip[i] if verdict(e, cls) == "hit"]
            wrong = [e for e in per_clip[i] if verdict(e, cls) == "false"]
            det += bool(hits)
            hit_events += len(hits)
            multi += len(hits) > 1
            over += overlapping(hits)
            false_events += len(wrong)
            false_clips += bool(wrong)
            for e in wrong:
                false_names[e.name] += 1
        false_events += len(gap_events)
        out[str(path)] = [cls, len(spans), det, hit_events, multi, over, false_events, false_clips,
                          dict(false_names)]
    return out


def stream_totals(s):
    """(detected, sounds, hit events, >1, overlapping, false events) over the streams of
    event types, and false events over the others."""
    is_pos = lambda v: any(v[0] in c for c in POSITIVE_CLASSES.values())
    pos = [v for v in s.values() if is_pos(v)]
    neg = [v for v in s.values() if not is_pos(v)]
    return {
        "det": sum(v[2] for v in pos),
        "sounds": sum(v[1] for v in pos),
        "events": sum(v[3] for v in pos),
        "multi": sum(v[4] for v in pos),
        "overlap": sum(v[5] for v in pos),
        "false_pos": sum(v[6] for v in pos),
        "false_neg": sum(v[6] for v in neg),
        "neg_clips": sum(v[1] for v in neg),
        "false_neg_clips": sum(v[7] for v in neg),
    }


def constraints_ok(r):
    """Constraints (1) and (2): silence stays silent; both alarms within 2 s."""
    if r["quiet_events"]:
        return False
    for onset, first, early in r["onsets"].values():
        if first is None or abs(first - onset) > ONSET_TOLERANCE or early:
            return False
    return True


def totals(files, r):
    """(detected, positives, clips with a false event, clips) over all scored clips."""
    det = sum(v[0] for v in r["det"].values())
    pos = sum(v[1] for v in r["det"].values())
    fp = sum(v[0] for v in r["fp_clips"].values())
    n = sum(v[1] for v in r["fp_clips"].values())
    return det, pos, fp, n


def per_sound(r):
    """(events per detected clip, clips with more than one event, overlapping events)."""
    s = [sum(v[i] for v in r["sounds"].values()) for i in range(4)]
    return (s[1] / s[0] if s[0] else 0.0), s[2], s[3]


# --------------------------------------------------------------------------- sweep


SMOOTHINGS = [("none", 1, 1.0)]
SMOOTHINGS += [("mean", n, 0.5) for n in (2, 3, 4, 6)]
SMOOTHINGS += [("geometric_mean", n, 0.5) for n in (2, 3, 4)]
SMOOTHINGS += [("ema", 1, a) for a in (0.3, 0.5, 0.7)]
# Thresholds tried: 0.30 .. 0.80. Lower ones are not offered: the negatives here are about 42
# minutes of audio, too little to show what a threshold of 0.2 costs over days of listening,
# and every label that reaches 0.2 on its clips but not 0.3 is one the model is unsure of.
ONS = [round(0.05 * i, 2) for i in range(6, 17)]
# min_duration is measured from the start of the onset window to the end of the latest one,
# so with 1 s windows every 0.5 s anything up to 1.0 s is met by the onset window itself;
# 1.5 s asks for a second window at or above `off`.
MIN_DURATIONS = [0.0, 1.5]
OFF_RATIO = 0.7  # off = on x this, rounded to 0.05 (hysteresis; see the fragmentation table)
HOLD = 1.0
# A false event costs as much as this many missed ones: a daemon that cries wolf gets
# switched off.
FP_WEIGHT = 3
# Classes on which any event at all disqualifies a threshold.
HARD_SILENT = QUIET | {"silence"}
# Labels of the original default `listen` list. They are kept when they cause no false event
# even if this data has nothing for them to detect (doorbells, screams, generic alarms);
# any other candidate label joins only if it adds detections.
BASE_LISTEN = [
    "Smoke detector, smoke alarm", "Fire alarm", "Alarm", "Siren", "Civil defense siren",
    "Doorbell", "Ding-dong", "Knock", "Glass", "Shatter", "Dog", "Bark",
    "Baby cry, infant cry", "Screaming",
]


def off_for(on):
    return round(max(0.05, round(on * OFF_RATIO / 0.05) * 0.05), 2)


def smoothing_name(method, n, a):
    return {"none": "none", "ema": f"ema a={a}"}.get(method, f"{method} N={n}")


def track_outcomes(files, prepared, members, on, min_duration):
    """Per clip, for one track alone (a label, or a group of labels of one event type):
    ('hit' | 'false' | 'hard' | None, its events). 'hard' is an event where none may be: on
    the quiet recordings and silence clips, or an alarm event more than 2 s before a
    smoke-alarm onset; an alarm event within 2 s after it is a 'hit' (the onset
    tolerance)."""
    t = LABEL_TYPE[members[0]]
    name = members[0] if len(members) == 1 else GROUP_NAME[t]
    rule = (on, off_for(on), min_duration, HOLD)
    out = {}
    for path, ds, cls in files:
        if cls in UNSCORED_CLASSES:
            continue
        times, seqs = prepared[str(path)]
        if min_duration <= WINDOW and all(max(seqs[m]) < on for m in members):
            continue  # no event possible: skip the state machine
        evs = [Event(name, l, s, e) for l, s, e in run_track(times, seqs, members, rule)]
        if not evs:
            continue
        fname = Path(path).name
        if fname in SMOKE_ONSETS and t == "alarm":
            onset = SMOKE_ONSETS[fname]
            if evs[0].start < onset - ONSET_TOLERANCE:
                v = "hard"  # fires on the speech before the alarm
            elif evs[0].start <= onset + ONSET_TOLERANCE:
                v = "hit"
            else:
                v = None  # late: harmless if another label was in time
        else:
            v = verdict(evs[0], cls)
            if v == "ok":
                v = None
            elif v == "false" and cls in HARD_SILENT:
                v = "hard"
        out[str(path)] = (v, evs)
    return out


def label_outcomes(files, prepared, label, on, min_duration):
    """track_outcomes of one label, verdicts only."""
    return {p: v for p, (v, _) in track_outcomes(files, prepared, [label], on, min_duration).items()}


def choose(files, prepared, min_duration):
    """The rule that picks `listen` and each label's `on` for one smoothing:

    1. For every candidate label and `on` in ONS: the clips it fires on alone.
    2. Per event type, greedy forward selection: add the (label, on) that most lowers
       missed + FP_WEIGHT x false clips of the type; stop when nothing lowers it.
       A threshold that puts any event on the quiet room, the background recording, the
       silence clips, or an alarm event more than 2 s away from a smoke-alarm onset, is
       never taken.
    3. Labels of BASE_LISTEN not chosen in 2 are kept, at the lowest `on` >= 0.5 that does
       not raise their type's cost (they guard sounds this data lacks or has few of), or
       dropped if every threshold raises it.
    Returns {label: on}.
    """
    positives = positives_by_type(files)
    outcomes = {
        label: {on: label_outcomes(files, prepared, label, on, min_duration) for on in ONS}
        for label in CANDIDATES
    }
    chosen = {}
    for t, labels in EVENT_TYPES.items():
        hit, false = set(), set()
        cost = len(positives[t])
        while True:
            best = None
            for label in labels:
                if label in chosen:
                    continue
                for on in ONS:
                    o = outcomes[label][on]
                    if "hard" in o.values():
                        continue
                    h = hit | {p for p, v in o.items() if v == "hit"}
                    f = false | {p for p, v in o.items() if v == "false"}
                    c = len(positives[t]) - len(h) + FP_WEIGHT * len(f)
                    # Lowest cost; among equal costs the higher threshold.
                    if c < cost and (best is None or (c, -on) < (best[0], -best[2])):
                        best = (c, label, on, h, f)
            if best is None:
                break
            cost, label, on, hit, false = best
            chosen[label] = on
        for label in labels:
            if label in chosen or label not in BASE_LISTEN:
                continue
            for on in ONS:
                o = outcomes[label][on]
                if on < 0.5 or "hard" in o.values():
                    continue
                h = hit | {p for p, v in o.items() if v == "hit"}
                f = false | {p for p, v in o.items() if v == "false"}
                c = len(positives[t]) - len(h) + FP_WEIGHT * len(f)
                if c <= cost:
                    cost, hit, false = c, h, f
                    chosen[label] = on
                    break
    return {l: chosen[l] for l in CANDIDATES if l in chosen}


def positives_by_type(files):
    positives = defaultdict(set)
    for path, _, cls in files:
        for t, classes in POSITIVE_CLASSES.items():
            if cls in classes:
                positives[t].add(str(path))
    return positives


def config_for(method, n, a, thresholds, min_duration, base_on=None):
    """A Config with the chosen thresholds: `on` = the most common chosen value (ties: the
    higher), the others as per-label overrides."""
    if base_on is None:
        counts = defaultdict(int)
        for on in thresholds.values():
            counts[on] += 1
        base_on = max(counts, key=lambda on: (counts[on], on))
    labels = {
        l: {"on": on, "off": off_for(on)} for l, on in thresholds.items() if on != base_on
    }
    return Config(method, n, a, base_on, off_for(base_on), min_duration, HOLD, list(thresholds), labels)


def summary_row(files, r):
    det, pos, fp, n = totals(files, r)
    errs = []
    for name in sorted(SMOKE_ONSETS):
        onset, first, early = r["onsets"][name]
        errs.append("none" if first is None else f"{first - onset:+.1f}")
    groups = " ".join(f"{g} {d}/{p}" for g, (d, p) in sorted(r["det"].items()))
    return det, pos, fp, n - pos, errs, groups


def toml_snippet(cfg):
    lines = ["[smoothing]", f'method = "{cfg.method}"', f"windows = {cfg.windows}",
             f"ema_alpha = {cfg.alpha}", "", "[decision]", f"on = {cfg.on}", f"off = {cfg.off}",
             f"min_duration = {cfg.min_duration}", f"hold = {cfg.hold}", "listen = ["]
    lines += [f'    "{l}",' for l in cfg.listen] + ["]"]
    for l, o in cfg.labels.items():
        lines += ["", f'[decision.labels."{l}"]'] + [f"{k} = {v}" for k, v in o.items()]
    if cfg.groups:
        lines += ["", "[groups]"]
        lines += [f"{g} = [" + ", ".join(f'"{m}"' for m in ms) + "]" for g, ms in cfg.groups.items()]
    return "\n".join(lines)


def cmd_sweep(args, files, scores, streams):
    print("# hark defaults: sweep over simulated smoothing and decision settings\n")
    n_pos = sum(1 for _, _, c in files if any(c in v for v in POSITIVE_CLASSES.values()))
    print(f"{len(files)} clips ({n_pos} of event classes); raw scores from "
          "`hark classify --json --top 527`, smoothing and decision simulated.\n")
    print("Clips per class: " + ", ".join(
        f"{c} {n}" for c, n in sorted(defaultdict(int, ((c, sum(1 for _, _, x in files if x == c)) for _, _, c in files)).items())
    ) + "\n")
    print(f"Rule: per event type, greedy choice of labels and `on` (grid {ONS[0]}..{ONS[-1]}) "
          f"minimising missed + {FP_WEIGHT} x false clips; off = {OFF_RATIO} x on; hold = {HOLD} s.\n")

    # 1. Every smoothing x min_duration, thresholds chosen by the rule in each context.
    results = {}
    for context in (False, True):
        title = ("stream context: short clips preceded by 3 s of the quiet room (realtime)"
                 if context else "clip context: the smoother starts at the clip's first window")
        print(f"## 1{'b' if context else 'a'}. Smoothing and min_duration, {title}\n")
        print("| smoothing | min_duration | constraints | onset error 7010b / sa302 (s) | detected | false clips | per event type | thresholds (label: on) |")
        print("|---|---|---|---|---|---|---|---|")
        for method, n, a in SMOOTHINGS:
            prepared = prepare(scores, method, n, a, context)
            for md in MIN_DURATIONS:
                th = choose(files, prepared, md)
                cfg = config_for(method, n, a, th, md)
                r = score(files, simulate(cfg, prepared))
                det, pos, fp, neg, errs, groups = summary_row(files, r)
                results[(method, n, a, md, context)] = (cfg, r)
                ths = ", ".join(f"{l} {on}" for l, on in th.items())
                print(f"| {smoothing_name(method, n, a)} | {md} | {'met' if constraints_ok(r) else 'NOT met'} "
                      f"| {errs[0]} / {errs[1]} | {det}/{pos} | {fp}/{neg} | {groups} | {ths} |")
        print()

    # 2. The thresholds of the chosen smoothing, applied in the other context.
    method, n, a, md = args.smoothing
    cfg, _ = results[(method, n, a, md, True)]
    print(f"## 2. Chosen smoothing {smoothing_name(method, n, a)}, min_duration {md}: "
          "thresholds from the stream context\n")
    print("```toml\n" + toml_snippet(cfg) + "\n```\n")
    for context in (False, True):
        prepared = prepare(scores, method, n, a, context)
        r = score(files, simulate(cfg, prepared))
        report(files, r, "stream context" if context else "clip context (what `hark run` on each clip gives)")

    # 3. Per-label curves of the chosen smoothing (stream context).
    prepared = prepare(scores, method, n, a, True)
    print("## 3. Per label alone, stream context: clips of its type detected / false clips, by `on`\n")
    print("| label | " + " | ".join(str(o) for o in ONS) + " |")
    print("|---|" + "---|" * len(ONS))
    for label in CANDIDATES:
        cells = []
        for on in ONS:
            o = label_outcomes(files, prepared, label, on, md)
            cells.append(outcome_cell(o))
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("\n(`hits · false clips`; `**n!**` = events on the quiet room / background / silence "
          "or alarm events more than 2 s from a smoke-alarm onset.)\n")

    # 4. off and hold: how many events each detection is split into.
    print("## 4. Fragmentation: events per clip with an event, by off ratio and hold (stream context)\n")
    print("| off = on x | hold (s) | events per hit clip (all event types) | 7010b alarm events | sa302 alarm events | longest alarm event 7010b / sa302 (s) |")
    print("|---|---|---|---|---|---|")
    for ratio in (0.5, 0.7, 0.9):
        for hold in (0.0, 0.5, 1.0, 2.0):
            c2 = Config(cfg.method, cfg.windows, cfg.alpha, cfg.on, round(cfg.on * ratio, 3), cfg.min_duration, hold,
                        cfg.listen, {l: {"on": o["on"], "off": round(o["on"] * ratio, 3)} for l, o in cfg.labels.items()})
            evs = simulate(c2, prepared)
            hit_clips = [p for p, _, c in files if any(c in v for v in POSITIVE_CLASSES.values()) and evs[str(p)]]
            per = sum(len(evs[p]) for p in map(str, hit_clips)) / max(1, len(hit_clips))
            alarm = {}
            for name in sorted(SMOKE_ONSETS):
                p = next(str(q) for q, _, _ in files if q.name == name)
                sp = [e for e in evs[p] if event_type(e.name) == "alarm"]
                alarm[name] = (len(sp), max((e.end - e.start for e in sp), default=0.0))
            print(f"| {ratio} | {hold} | {per:.2f} | {alarm['first_alert_7010b.wav'][0]} | {alarm['first_alert_sa302.wav'][0]} "
                  f"| {alarm['first_alert_7010b.wav'][1]:.1f} / {alarm['first_alert_sa302.wav'][1]:.1f} |")
    print()

    # 5. Groups.
    cmd_groups(args, files, scores, streams)


def outcome_cell(o):
    h = sum(v == "hit" for v in o.values())
    f = sum(v == "false" for v in o.values())
    x = sum(v == "hard" for v in o.values())
    return f"{h} · {f}" + (f" · **{x}!**" if x else "")


# --------------------------------------------------------------------------- groups

# Group memberships measured for each event type, besides the one the greedy rule picks:
# the labels listened to before groups, and the questions docs/defaults.md answers.
GROUP_OPTIONS = {
    "alarm": [
        ["Smoke detector, smoke alarm"],
        ["Smoke detector, smoke alarm", "Fire alarm"],
        ["Smoke detector, smoke alarm", "Fire alarm", "Alarm"],
        ["Smoke detector, smoke alarm", "Fire alarm", "Alarm", "Beep, bleep", "Alarm clock", "Buzzer"],
    ],
    "siren": [
        ["Emergency vehicle"],
        ["Emergency vehicle", "Civil defense siren"],
        ["Emergency vehicle", "Ambulance (siren)"],
        ["Emergency vehicle", "Ambulance (siren)", "Fire engine, fire truck (siren)"],
        ["Emergency vehicle", "Ambulance (siren)", "Fire engine, fire truck (siren)", "Police car (siren)"],
        ["Emergency vehicle", "Civil defense siren", "Ambulance (siren)", "Fire engine, fire truck (siren)",
         "Police car (siren)", "Siren"],
    ],
    "doorbell": [["Doorbell", "Ding-dong"]],
    "knock": [["Knock"], ["Knock", "Door", "Tap"]],
    "glass": [["Glass", "Shatter"], ["Glass", "Shatter", "Breaking", "Smash, crash"]],
    "dog": [
        ["Bark", "Bow-wow"],
        ["Dog", "Bark", "Bow-wow"],
        ["Bark", "Bow-wow", "Howl"],
        ["Dog", "Bark", "Bow-wow", "Howl"],
        ["Dog", "Bark", "Yip", "Bow-wow", "Howl", "Growling"],
    ],
    "baby_cry": [["Baby cry, infant cry"], ["Baby cry, infant cry", "Crying, sobbing"]],
    "scream": [["Screaming"], ["Screaming", "Yell"]],
}


# Groups with labels on their own beside them (label: its own `on`): the setups of the
# listen list before groups, whose duplicates the tables show.
GROUP_WITH_OWN = {
    "alarm": [(["Smoke detector, smoke alarm"], {"Fire alarm": 0.5, "Alarm": 0.5})],
    "siren": [(["Emergency vehicle"], {"Civil defense siren": 0.65})],
    "dog": [(["Bark", "Bow-wow"], {"Dog": 0.65, "Howl": 0.5})],
}

# One event per sound is a constraint, like silence on the quiet recordings: a choice under
# which an event starts while another of its type is open on the same sound (a duplicate) is
# never taken. A label kept as a track of its own beside its type's group must not duplicate
# the group's events even with its `on` this much lower, so that a small change of scores
# (the resampler, the front end) does not turn it into a second event for the same sound.
DUP_MARGIN = 0.05


# A type with fewer clips than this to detect (knock: one recording; doorbell, scream: none)
# keeps the threshold its labels had before the groups: one clip cannot show a threshold
# (the cost rule would put Knock at 0.65 on the strength of one knock recording, which peaks
# at 0.53 after a quiet room, against one sharp hit in a background stream at 0.62).
FEW_CLIPS = 5
EARLIER_ON = 0.5


class TypeChooser:
    """Events, costs and the greedy choice of the tracks of one event type: its group (the
    labels whose highest score is one track, with one `on`) and any label of the type left
    as a track of its own. Costs add two views of the realtime stream: the stream context
    of the clips (`prepared`, 3 s of quiet room before each) and the streams (`sprepared`,
    the clips joined with sox)."""

    def __init__(self, t, files, prepared, streams, sprepared):
        self.t, self.files, self.prepared = t, files, prepared
        self.streams, self.sprepared = streams, sprepared
        self.positives = positives_by_type(files)[t]
        self.sounds = sum(len(sp) for _, _, cls, sp in streams if cls in POSITIVE_CLASSES[t])
        self.cache = {}

    def track_events(self, name, members, on):
        """({file: [Event]}, {stream: [Event]}) of one track, files with events only."""
        key = (name, tuple(members), on)
        if key not in self.cache:
            rule = (on, off_for(on), 0.0, HOLD)
            out = []
            for prepared, paths in ((self.prepared, [p for p, _, _ in self.files]),
                                    (self.sprepared, [p for p, _, _, _ in self.streams])):
                evs = {}
                for path in paths:
                    times, seqs = prepared[str(path)]
                    if all(max(seqs[m], default=0.0) < on for m in members):
                        continue
                    got = [Event(name, l, s, e) for l, s, e in run_track(times, seqs, members, rule)]
                    if got:
                        evs[str(path)] = got
                out.append(evs)
            self.cache[key] = tuple(out)
        return self.cache[key]

    def tracks(self, group, lone):
        """[(name, members, on)] of a choice: `group` = (members, on), `lone` = {label: on}."""
        out = [(GROUP_NAME[self.t], group[0], group[1])] if group[0] else []
        return out + [(l, [l], on) for l, on in lone.items()]

    def figures(self, tracks):
        """What a choice gives: {'hard', 'hits', 'false', 'dup', 'shits', 'sfalse', 'sdup'}
        over the clips (stream context) and the streams; 'hard' counts events where none
        may be (quiet recordings, silence, an alarm event more than 2 s before an onset)."""
        f = dict(hard=0, hits=0, false=0, dup=0, shits=0, sfalse=0, sdup=0)
        files_evs, stream_evs = defaultdict(list), defaultdict(list)
        for name, members, on in tracks:
            fe, se = self.track_events(name, members, on)
            for p, evs in fe.items():
                files_evs[p] += evs
            for p, evs in se.items():
                stream_evs[p] += evs
        classes = {str(p): (Path(p).name, cls) for p, _, cls in self.files}
        for p, evs in files_evs.items():
            fname, cls = classes[p]
            if cls in UNSCORED_CLASSES:
                continue
            if fname in SMOKE_ONSETS and self.t == "alarm":
                onset = SMOKE_ONSETS[fname]
                first = min(e.start for e in evs)
                if first < onset - ONSET_TOLERANCE:
                    f["hard"] += 1
                elif first <= onset + ONSET_TOLERANCE:
                    f["hits"] += 1
                    f["dup"] += overlapping(evs)
                continue
            hits = [e for e in evs if verdict(e, cls) == "hit"]
            wrong = [e for e in evs if verdict(e, cls) == "false"]
            if wrong and cls in HARD_SILENT:
                f["hard"] += 1
            f["hits"] += bool(hits)
            f["false"] += bool(wrong)
            f["dup"] += overlapping(hits)
        for path, _, cls, spans in self.streams:
            evs = stream_evs.get(str(path))
            if not evs:
                continue
            v = score_streams([(path, None, cls, spans)], {str(path): evs})[str(path)]
            if v[6] and cls in HARD_SILENT:
                f["hard"] += 1
            f["shits"] += v[2]
            f["sfalse"] += v[6]
            f["sdup"] += v[5]
        return f

    def cost(self, tracks):
        """missed + FP_WEIGHT x false, clips (false: clips) and streams (false: events)
        added; None if a hard constraint breaks or an event duplicates another (with the
        `on` of labels on their own DUP_MARGIN lower)."""
        f = self.figures(tracks)
        if f["hard"]:
            return None
        lowered = [(n, m, on if n == GROUP_NAME[self.t] else round(on - DUP_MARGIN, 2)) for n, m, on in tracks]
        d = self.figures(lowered) if lowered != tracks else f
        if d["dup"] + d["sdup"]:
            return None
        missed = len(self.positives) - f["hits"] + self.sounds - f["shits"]
        return missed + FP_WEIGHT * (f["false"] + f["sfalse"])

    def choose(self):
        """The greedy rule for one event type. Start with no track. At each step add one
        label, either to the group (with the group's `on` chosen anew from ONS) or as a
        track of its own (with its own `on`), whichever lowers the cost most; ties go to the
        group, then to the higher `on`. Stop when nothing lowers it. Then labels of
        BASE_LISTEN the data cannot show to help (sounds it lacks) are kept if they do not
        raise the cost, only in the group and only at an `on` of 0.5 or more (the group's,
        or for a type with no group yet the lowest such), as `choose` keeps them: kept on
        their own they would be a second name for the same sound. A type with fewer than
        FEW_CLIPS clips to detect keeps its labels of BASE_LISTEN as its group at
        EARLIER_ON, the threshold they had before the groups. Returns
        ((members, on), {label: on})."""
        if len(self.positives) < FEW_CLIPS:
            return ([l for l in EVENT_TYPES[self.t] if l in BASE_LISTEN], EARLIER_ON), {}
        group, lone = ([], None), {}
        cost = self.cost([])
        while True:
            best = None
            for label in EVENT_TYPES[self.t]:
                if label in group[0] or label in lone:
                    continue
                for on in ONS:
                    for as_member in (True, False):
                        g = (group[0] + [label], on) if as_member else group
                        lo = lone if as_member else {**lone, label: on}
                        if not as_member and not group[0]:
                            continue  # a first label alone is the group
                        c = self.cost(self.tracks(g, lo))
                        key = (c, not as_member, -on) if c is not None else None
                        if c is not None and c < cost and (best is None or key < best[0]):
                            best = (key, g, lo)
            if best is None:
                break
            (cost, _, _), group, lone = best
        for label in [l for l in EVENT_TYPES[self.t] if l in BASE_LISTEN]:
            if label in group[0] or label in lone or (group[0] and group[1] < 0.5):
                continue
            for on in [group[1]] if group[0] else [o for o in ONS if o >= 0.5]:
                c = self.cost(self.tracks((group[0] + [label], on), lone))
                if c is not None and c <= cost:
                    group, cost = (group[0] + [label], on), c
                    break
        return group, lone


def cmd_groups(args, files, scores, streams):
    """Section 5 of the sweep: the groups, for the chosen smoothing."""
    method, n, a, md = args.smoothing
    if md != 0.0:
        raise SystemExit("groups are measured with min_duration 0")
    prepared = prepare(scores, method, n, a, True)
    sprepared = prepare(scores, method, n, a, False)
    print(f"## 5. Groups ({smoothing_name(method, n, a)})\n")
    print("A group's score per window is the highest smoothed score of its labels; one `on` "
          f"(off = {OFF_RATIO} x on, hold {HOLD} s) applies to it. Per membership and `on`: "
          "`hits · false clips` in the stream context of the clips, then `hits · false events` "
          "on the streams, then events that started while another of the type was open "
          "(duplicates, clips + streams); `**n!**`: events on the quiet recordings or silence, "
          "or an alarm event more than 2 s before a smoke-alarm onset. Cost: missed + "
          f"{FP_WEIGHT} x false over both; a duplicate (for a label on its own: with its `on` "
          f"{DUP_MARGIN} lower) rules a choice out.\n")
    chosen = {}
    for t in EVENT_TYPES:
        ch = TypeChooser(t, files, prepared, streams, sprepared)
        group, lone = ch.choose()
        chosen[t] = (group, lone)
        options = [(list(m), {}) for m in GROUP_OPTIONS[t]]
        options += [(list(m), lo) for m, lo in GROUP_WITH_OWN.get(t, [])]
        if (group[0], lone) not in options:
            options.append((group[0], lone))
        print(f"### {GROUP_NAME[t]} ({len(ch.positives)} clips and {ch.sounds} stream sounds of the type)\n")
        print("| group's labels (+ labels on their own) | " + " | ".join(str(o) for o in ONS) + " |")
        print("|---|" + "---|" * len(ONS))
        for members, lo in options:
            cells = []
            for o in ONS:
                f = ch.figures(ch.tracks((members, o), lo))
                hard = f" **{f['hard']}!**" if f["hard"] else ""
                cells.append(f"{f['hits']}·{f['false']} / {f['shits']}·{f['sfalse']} / {f['dup'] + f['sdup']}{hard}")
            mark = " **(chosen)**" if (members, lo) == (group[0], lone) else ""
            own = "".join(f" + {l} at {on}" for l, on in lo.items())
            print(f"| {', '.join(members)}{own}{mark} | " + " | ".join(cells) + " |")
        f = ch.figures(ch.tracks(group, lone))
        desc = f"{GROUP_NAME[t]} = {group[0]} at on = {group[1]}" if group[0] else "no group"
        own = ", ".join(f"{l} at {on}" for l, on in lone.items()) or "none"
        print(f"\nChosen: {desc}; labels on their own: {own}. Clips {f['hits']}/{len(ch.positives)} "
              f"with {f['false']} false, streams {f['shits']}/{ch.sounds} with {f['sfalse']} false, "
              f"duplicates {f['dup'] + f['sdup']}; cost {ch.cost(ch.tracks(group, lone))}.\n")
    cfg = config_for_groups(method, n, a, chosen)
    print("### The chosen groups together\n")
    print("```toml\n" + toml_snippet(cfg) + "\n```\n")
    for context in (False, True):
        prep = prepare(scores, method, n, a, context, config_labels(cfg))
        r = score(files, simulate(cfg, prep))
        report(files, r, "stream context" if context else "clip context (what `hark run` on each clip gives)")
    sprep = prepare(scores, method, n, a, False, config_labels(cfg))
    report_streams(streams, score_streams(streams, simulate(cfg, sprep)), "Streams (simulated)")


def config_for_groups(method, n, a, chosen, base_on=0.5):
    """A Config of the chosen groups and labels of their own; thresholds other than
    `base_on` as overrides of the group or label."""
    groups, overrides, listen = {}, {}, []
    for t, ((members, on), lone) in chosen.items():
        tracks = ([(GROUP_NAME[t], on)] if members else []) + list(lone.items())
        if members:
            groups[GROUP_NAME[t]] = members
            listen += members
        listen += list(lone)
        for name, o in tracks:
            if o != base_on:
                overrides[name] = {"on": o, "off": off_for(o)}
    return Config(method, n, a, base_on, off_for(base_on), 0.0, HOLD, listen, overrides, groups)


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
    starts, ends = {}, {}
    for line in proc.stdout.splitlines():
        rec = json.loads(line)
        if rec.get("type") == "event_start":
            starts[rec["id"]] = rec
        elif rec.get("type") == "event_end":
            ends[rec["id"]] = rec["end"]
    evs = [Event(r.get("group") or r["label"], r["label"], r["start"], ends.get(i, r["start"]))
           for i, r in starts.items()]
    return str(path), sorted(evs, key=lambda e: (e.start, e.name))


def report(files, r, title):
    det, pos, fp, nn = totals(files, r)
    per, multi, over = per_sound(r)
    print(f"### {title}\n")
    print(f"Constraints (quiet room and background silent, both alarms within {ONSET_TOLERANCE} s): "
          f"{'met' if constraints_ok(r) else 'NOT MET'}\n")
    for name, (onset, first, early) in sorted(r["onsets"].items()):
        err = "no alarm event" if first is None else f"first alarm event at {first:.1f} s, error {first - onset:+.1f} s"
        extra = f"; early alarm events {[(e.name, e.start) for e in early]}" if early else ""
        print(f"- {name} (onset {onset} s): {err}{extra}")
    for name, evs in r["quiet_events"]:
        print(f"- events on {name}: {[(e.name, e.start) for e in evs]}")
    for name, evs in r["unscored"].items():
        print(f"- {name} (unlabelled, not scored): {sorted({e.name for e in evs}) or 'no events'}")
    print(f"\nDetected {det}/{pos} event clips; {fp}/{nn - pos} other clips got a false event "
          f"({r['false_events']} false events on all clips). Events per detected clip: {per:.2f}; "
          f"clips with more than one event of their type: {multi}; events that started while "
          f"another of the same type was open: {over}.\n")
    print("| event type | detected | rate | events per detected clip | clips with >1 event | overlapping events |")
    print("|---|---|---|---|---|---|")
    for t, (d, p) in sorted(r["det"].items()):
        s = r["sounds"][t]
        e = f"{s[1] / s[0]:.2f}" if s[0] else "–"
        print(f"| {t} | {d}/{p} | {d / p:.0%} | {e} | {s[2]} | {s[3]} |")
    print("\n| class | clips with a false event | rate |")
    print("|---|---|---|")
    for c, (f, n) in sorted(r["fp_clips"].items()):
        print(f"| {c} | {f}/{n} | {f / n:.1%} |")
    print("\n| event (group or label) | clips of its type detected | false events by class (clips) |")
    print("|---|---|---|")
    order = CANDIDATES + list(GROUP_NAME.values())
    names = sorted(set(r["label_det"]) | set(r["fp"]), key=lambda l: order.index(l) if l in order else 999)
    for l in names:
        fps = ", ".join(f"{c} {n}" for c, n in sorted(r["fp"][l].items(), key=lambda x: -x[1])) or "–"
        print(f"| {l} | {r['label_det'].get(l, 0)} | {fps} |")
    print()


def report_streams(streams, s, title):
    print(f"### {title}: each clip one sound, {STREAM_GAP:g} s of quiet room before it\n")
    print("| stream | clips (sounds) | detected | events of its type | events per detected sound | sounds with >1 event | overlapping events | false events (clips) | false events by name |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path, ds, cls, spans in streams:
        c, n, det, ev, multi, over, fe, fc, names = s[str(path)]
        positive = any(cls in v for v in POSITIVE_CLASSES.values())
        per = f"{ev / det:.2f}" if det else "–"
        row = (f"{det}", f"{ev}", per, f"{multi}", f"{over}") if positive else ("–",) * 5
        by_name = ", ".join(f"{k} {v}" for k, v in sorted(names.items())) or "–"
        print(f"| {Path(path).stem} | {n} | " + " | ".join(row) + f" | {fe} ({fc}) | {by_name} |")
    t = stream_totals(s)
    per = t["events"] / t["det"] if t["det"] else 0.0
    print(f"\nEvent streams: {t['det']}/{t['sounds']} sounds detected, {t['events']} events, "
          f"{per:.2f} per detected sound, {t['multi']} sounds with more than one, {t['overlap']} "
          f"overlapping; false events {t['false_pos']}. Other streams: {t['false_neg']} false events "
          f"on {t['false_neg_clips']} of {t['neg_clips']} clips.\n")


def daemon_events(args, config, paths):
    real = {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_daemon, args.hark, config, p) for p in paths]
        for i, f in enumerate(concurrent.futures.as_completed(futures)):
            path, evs = f.result()
            real[path] = evs
            if (i + 1) % 200 == 0:
                print(f"hark run {i + 1}/{len(paths)}", file=sys.stderr)
    return real


def verify_one(args, files, scores, streams, config: Path):
    """Daemon and simulation of one config over the files and the streams; the figures of
    the before/after table."""
    cfg = Config.from_toml(config)
    print(f"## Verification of {config}\n")
    print(f"Settings: {cfg.describe()}; listen {len(cfg.listen)} labels; tracks "
          f"{[n for n, _ in cfg.tracks()]}; overrides {cfg.labels}; groups {cfg.groups}\n")
    paths = [p for p, _, _ in files] + [p for p, _, _, _ in streams]
    real = daemon_events(args, config, paths)
    r_real = score(files, real)
    s_real = score_streams(streams, real)
    report(files, r_real, "Real daemon: `hark run --fast --exit-at-end --print json` on each clip")
    report_streams(streams, s_real, "Real daemon on the streams")
    prep = prepare(scores, cfg.method, cfg.windows, cfg.alpha, False, config_labels(cfg))
    sim = simulate(cfg, prep)
    report(files, score(files, sim), "Simulation of the same config on `hark classify` scores")
    report_streams(streams, score_streams(streams, sim), "Simulation on the streams")
    differ = []
    for p in paths:
        a = [(e.name, e.label, round(e.start, 2)) for e in real[str(p)]]
        b = [(e.name, e.label, round(e.start, 2)) for e in sim[str(p)]]
        if a != b:
            differ.append((Path(p).name, a, b))
    print(f"Files where the daemon's event_starts (name, label, start) differ from the simulation: "
          f"{len(differ)}/{len(paths)}\n")
    for name, a, b in differ[:20]:
        print(f"- {name}: daemon {a}, simulation {b}")
    print()
    return summary_figures(files, r_real, s_real)


def summary_figures(files, r, s):
    det, pos, fp, n = totals(files, r)
    per, multi, over = per_sound(r)
    t = stream_totals(s)
    errs = []
    for name in sorted(SMOKE_ONSETS):
        onset, first, early = r["onsets"][name]
        errs.append("none" if first is None else f"{first - onset:+.1f}")
    return {
        "clips detected": f"{det}/{pos}",
        "clips: events per detected clip": f"{per:.2f}",
        "clips: detected clips with >1 event of their type": str(multi),
        "clips: events overlapping another of their type": str(over),
        "clips: non-target clips with a false event": f"{fp}/{n - pos}",
        "clips: false events (all clips)": str(r["false_events"]),
        "streams: sounds detected": f"{t['det']}/{t['sounds']}",
        "streams: events per detected sound": f"{t['events'] / t['det']:.2f}" if t["det"] else "–",
        "streams: sounds with >1 event": str(t["multi"]),
        "streams: events overlapping another of their type": str(t["overlap"]),
        "streams: false events (event streams / other streams)": f"{t['false_pos']} / {t['false_neg']}",
        "onset error 7010b / sa302 (s)": " / ".join(errs),
        "constraints (quiet recordings silent, alarms within 2 s)": "met" if constraints_ok(r) else "NOT met",
        "alarm events on 7010b / sa302": " / ".join(str(r["alarm_events"].get(n, 0)) for n in sorted(SMOKE_ONSETS)),
    }


def cmd_simulate(args, files, scores, streams):
    """The simulation half of `verify`, without the daemon: seconds, not minutes."""
    for config in [args.config] + ([args.baseline] if args.baseline else []):
        cfg = Config.from_toml(config)
        print(f"## Simulation of {config}\n")
        print(f"Settings: {cfg.describe()}; tracks {[n for n, _ in cfg.tracks()]}; "
              f"overrides {cfg.labels}; groups {cfg.groups}\n")
        for context in (False, True):
            prep = prepare(scores, cfg.method, cfg.windows, cfg.alpha, context, config_labels(cfg))
            r = score(files, simulate(cfg, prep))
            report(files, r, "stream context" if context else "clip context (what `hark run` on each clip gives)")
        prep = prepare(scores, cfg.method, cfg.windows, cfg.alpha, False, config_labels(cfg))
        report_streams(streams, score_streams(streams, simulate(cfg, prep)), "Streams (simulated)")


def cmd_verify(args, files, scores, streams):
    print(f"# hark defaults: verification with the real daemon ({args.hark})\n")
    if args.hark.stat().st_mtime < DEFAULT_CONFIG.stat().st_mtime:
        print(f"warning: {args.hark} is older than {DEFAULT_CONFIG}, which is built into it; "
              "run `cargo build --release`", file=sys.stderr)
    after = verify_one(args, files, scores, streams, args.config)
    if args.baseline is None:
        return
    before = verify_one(args, files, scores, streams, args.baseline)
    print("## Before / after (real daemon)\n")
    print(f"| figure | before: {args.baseline} | after: {args.config} |")
    print("|---|---|---|")
    for k in after:
        print(f"| {k} | {before[k]} | {after[k]} |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["sweep", "groups", "simulate", "verify"])
    ap.add_argument("--hark", type=Path, default=REPO / "target/release/hark")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared/data")
    ap.add_argument("--cache", type=Path, default=REPO / "target/measure_defaults/raw_scores.json")
    ap.add_argument("--streams", type=Path, default=REPO / "target/measure_defaults/streams")
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--baseline", type=Path, help="verify: a second config, for a before/after table")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument(
        "--smoothing",
        nargs=4,
        default=["ema", "1", "0.7", "0.0"],
        metavar=("METHOD", "WINDOWS", "ALPHA", "MIN_DURATION"),
        help="sweep, groups: the smoothing whose thresholds and groups are detailed",
    )
    args = ap.parse_args()
    m, n, a, md = args.smoothing
    args.smoothing = (m, int(n), float(a), float(md))
    files = load_files(args.data)
    streams = build_streams(files, args.data, args.streams)
    paths = [p for p, _, _ in files] + [p for p, _, _, _ in streams]
    scores = raw_scores(args.hark, paths, args.cache, args.data)
    {"sweep": cmd_sweep, "groups": cmd_groups, "simulate": cmd_simulate, "verify": cmd_verify}[args.command](args, files, scores, streams)


if __name__ == "__main__":
    main()
