"""The librosa peer of benches/frontend.rs: the same front end, on the same 10 s signal, in one
thread.

For each golden config (fsd2018, small16k) it reads the signal the Rust bench wrote
(target/bench-signal-<config>.f32, raw little-endian f32), computes exactly what hark computes:
librosa.feature.melspectrogram with the spec's parameters -> power_to_db (top_db) -> the spec's
whole-window normalisation, and times it: warm-up, then many runs, thread CPU time and wall
time, median (and best). It checks its features against hark's
(target/bench-features-<config>.f32) so the two sides are known to compute the same thing.

Also timed, for reference: the same with the mel filter bank built once (`librosa_prebuilt`),
since melspectrogram rebuilds it on every call.

Run: /work/bench-venv/bin/python benches/peer_frontend.py [--target DIR] [--runs N]
Prints one JSON object per config.
"""
import os

# One thread, before numpy/librosa are imported (hark's front end is single-threaded).
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import librosa  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def configs():
    cases = json.loads((ROOT / "tests/fixtures/golden/cases.json").read_text())
    return cases["configs"]


def mel_kwargs(c):
    return dict(sr=c["sample_rate"], n_fft=c["n_fft"], n_mels=c["n_mels"], fmin=c["fmin"],
                fmax=c["fmax"], htk=c["mel_scale"] == "htk",
                norm="slaney" if c["mel_norm"] == "slaney" else None)


def stft_kwargs(c):
    return dict(n_fft=c["n_fft"], hop_length=c["hop_length"], win_length=c["win_length"],
                window=c["window"], center=c["center"], pad_mode=c["pad_mode"])


def to_log(M, c):
    if c["log"] == "ln":
        return np.log(M + c.get("ln_offset", 1e-6))
    db = librosa.power_to_db if c["power"] == 2.0 else librosa.amplitude_to_db
    return db(M, ref=c.get("db_ref", 1.0), amin=c.get("db_amin", 1e-10), top_db=c.get("db_top"))


def normalize(X, c):
    X = X.astype(np.float64)
    if c.get("normalize", "none") == "samplewise_minmax":
        X = X - X.min()
        X = X / (np.abs(X).max() + 1.0)
    elif c.get("normalize", "none") == "zscore":
        X = (X - X.mean()) / (X.std() + 1e-8)
    return X.astype(np.float32)


def librosa_features(y, c):
    """What a librosa user writes: melspectrogram (builds the filters each call)."""
    M = librosa.feature.melspectrogram(y=y, power=c["power"], **{**stft_kwargs(c), **mel_kwargs(c)})
    return normalize(to_log(M, c), c)


def prebuilt(c):
    """The same with the mel filter bank built once."""
    mel = librosa.filters.mel(**mel_kwargs(c))

    def features(y):
        S = np.abs(librosa.stft(y, **stft_kwargs(c))) ** c["power"]
        return normalize(to_log(mel @ S, c), c)

    return features


def timed(f, runs, warmup=3):
    for _ in range(warmup):
        f()
    wall, cpu = [], []
    for _ in range(runs):
        w, t = time.perf_counter(), time.thread_time()
        f()
        cpu.append(time.thread_time() - t)
        wall.append(time.perf_counter() - w)
    return dict(cpu_median=statistics.median(cpu), cpu_best=min(cpu),
                wall_median=statistics.median(wall), wall_best=min(wall))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default=os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--configs", default="fsd2018,small16k")
    args = ap.parse_args()
    target = Path(args.target)
    cfgs = configs()
    for name in args.configs.split(","):
        c = cfgs[name]
        y = np.fromfile(target / f"bench-signal-{name}.f32", dtype="<f4")
        audio_s = len(y) / c["sample_rate"]
        X = librosa_features(y, c)
        hark = np.fromfile(target / f"bench-features-{name}.f32", dtype="<f4").reshape(X.shape)
        t = timed(lambda: librosa_features(y, c), args.runs)
        f = prebuilt(c)
        tp = timed(lambda: f(y), args.runs)
        print(json.dumps(dict(
            config=name, audio_s=audio_s, shape=list(X.shape), runs=args.runs,
            librosa_version=librosa.__version__, numpy_version=np.__version__,
            max_abs_diff_vs_hark=float(np.abs(X - hark).max()),
            librosa_cpu_s=t["cpu_median"], librosa_wall_s=t["wall_median"],
            librosa_best_cpu_s=t["cpu_best"],
            librosa_s_per_audio_s=t["cpu_median"] / audio_s,
            librosa_prebuilt_cpu_s=tp["cpu_median"],
            librosa_prebuilt_s_per_audio_s=tp["cpu_median"] / audio_s,
        )), flush=True)


if __name__ == "__main__":
    main()
