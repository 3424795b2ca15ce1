#!/usr/bin/env python3
"""Reference scores for the resampler parity test (tests/resampler.rs).

For every 44.1 and 48 kHz recording in ../shared/data/recordings, resample it to 16 kHz the way
the seed pipelines did (librosa.load, mono, librosa's default resampler soxr_hq) and score every
1 s window (0.5 s hop, hark's window offsets) with CED-tiny through onnxruntime. Writes one
float32 .npy of shape [windows, 527] per recording and an index.json into
tests/fixtures/resample/. Nothing from ../shared is copied: only these scores.

With --against-hark BINARY it also prints, per recording and overall, how far that hark
binary's scores (`hark classify --json --top 527`) are from the reference: the largest and the
mean absolute difference over every window and label. That is how the figures in
BENCHMARKS.md for the old and the new resampler were taken.

Needs a venv with soxr, librosa, numpy and onnxruntime==1.31.1:
    python3 -m venv /tmp/resample-venv
    /tmp/resample-venv/bin/pip install soxr librosa numpy onnxruntime==1.31.1
    /tmp/resample-venv/bin/python scripts/make_resample_reference.py [--against-hark target/release/hark]
"""
import argparse
import csv
import hashlib
import json
import subprocess
import tomllib
from pathlib import Path

import librosa
import numpy as np
import onnxruntime as ort
import soxr

ROOT = Path(__file__).resolve().parent.parent
RATES = (44_100, 48_000)


def recordings(shared):
    """(path, sample rate) of every recording at one of RATES, in labels.csv order."""
    folder = shared / "recordings"
    with open(folder / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            if int(row["sample_rate"]) in RATES:
                yield folder / row["file"], int(row["sample_rate"])


def window_starts(n, window, hop):
    """hark's windowing::window_starts."""
    if n <= window:
        return [0]
    return list(range(0, n - window + 1, hop))


def reference_scores(sess, manifest, path):
    sr = int(manifest["sample_rate"])
    window = round(manifest["window"] * sr)
    hop = round(manifest["hop"] * sr)
    y, _ = librosa.load(path, sr=sr, mono=True, res_type="soxr_hq")
    rows = []
    for start in window_starts(len(y), window, hop):
        x = np.zeros(window, dtype=np.float32)
        chunk = y[start:start + window]
        x[:len(chunk)] = chunk
        out = sess.run([manifest["output_name"]], {manifest["input_name"]: x[None, :]})[0][0]
        rows.append(out.astype(np.float32))
    return np.stack(rows)


def hark_scores(binary, path, labels):
    """Every window's 527 scores as `hark classify --json` prints them."""
    out = subprocess.run(
        [binary, "--log", "warn", "classify", "--json", "--top", str(len(labels)),
         "--batch", "1", str(path)],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    index = {name: i for i, name in enumerate(labels)}
    rows = []
    for line in out.splitlines():
        record = json.loads(line)
        if "top" not in record:
            continue  # the file's summary line
        scores = np.zeros(len(labels), dtype=np.float32)
        for entry in record["top"]:
            scores[index[entry["label"]]] = entry["score"]
        rows.append(scores)
    return np.stack(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=ROOT / "../shared/data")
    ap.add_argument("--out", type=Path, default=ROOT / "tests/fixtures/resample")
    ap.add_argument("--model", type=Path, default=ROOT / "models/ced-tiny.toml")
    ap.add_argument("--against-hark", metavar="BINARY",
                    help="compare this hark binary's scores with the reference instead of writing")
    args = ap.parse_args()

    manifest = tomllib.loads(args.model.read_text())
    with open(args.model.parent / manifest["labels"], newline="") as f:
        labels = [row["display_name"] for row in csv.DictReader(f)]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(args.model.parent / manifest["model"]), so,
                                providers=["CPUExecutionProvider"])

    index, diffs = [], []
    for path, rate in recordings(args.shared):
        ref = reference_scores(sess, manifest, path)
        if args.against_hark:
            got = hark_scores(args.against_hark, path, labels)
            n = min(len(got), len(ref))
            d = np.abs(got[:n] - ref[:n])
            diffs.append(d.ravel())
            print(f"{path.name}: {n} windows, max {d.max():.4f}, mean {d.mean():.2e}")
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        np.save(args.out / f"{path.stem}.npy", ref)
        index.append(dict(
            file=path.name, sample_rate=rate, windows=len(ref),
            sha256=hashlib.sha256(path.read_bytes()).hexdigest()))
        print(f"{path.name}: {rate} Hz, {len(ref)} windows")
    if args.against_hark:
        d = np.concatenate(diffs)
        print(f"all: {d.size} scores, max {d.max():.4f}, mean {d.mean():.2e}")
        return
    (args.out / "index.json").write_text(json.dumps(dict(
        what="CED-tiny scores of every window on a soxr_hq 16 kHz copy of each recording",
        made_by="scripts/make_resample_reference.py",
        librosa=librosa.__version__, soxr=soxr.__version__, onnxruntime=ort.__version__,
        model=manifest["model"], window=manifest["window"], hop=manifest["hop"],
        recordings=index), indent=1) + "\n")


if __name__ == "__main__":
    main()
