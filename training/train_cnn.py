#!/usr/bin/env python3
"""Train a compact MobileNet-style log-mel CNN for hark on features made by `hark features`.

The features come from the hark binary itself (`hark features --spec SPEC CLIP --out X.npy`), so
training sees exactly the front end the daemon runs. hark computes a whole clip's log-mel frames
once (cached as .npy); with `center = false` a window of the clip is a slice of those frames at a
hop-aligned offset, and hark's whole-window steps (top-dB clipping, z-score) are applied per
window here exactly as `frontend::LogMel::normalize` does. `hark eval` on the exported model is
the end-to-end check that training and serving agree.

Split: by the dataset's `fold` column (default train 1,2,3 / test 10); a clip's windows are never
on both sides. The test metrics are clip-level: the mean of the window softmax over the windows
hark itself would cut (window = `frames`, hop = 0.5 s), then the best class.

Writes OUT/hark-cnn.onnx (input `log_mel` [1, 1, n_mels, frames], output `probabilities`, softmax
in the graph), OUT/hark-cnn.toml (hark manifest), OUT/labels.txt and OUT/report.json.

    python training/train_cnn.py ../shared/data/datasets/urbansound8k_subset --out /tmp/hark-cnn
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# The front end. hark features computes the per-frame part (no db_top, no normalize); the
# manifest adds the whole-window steps (db_top, zscore) that hark applies per model window.
SPEC = {
    "sample_rate": 16000,
    "n_fft": 1024,
    "win_length": 1024,
    "hop_length": 320,
    "window": "hann",
    "center": False,
    "pad_mode": "constant",
    "n_mels": 64,
    "fmin": 50.0,
    "fmax": 8000.0,
    "mel_scale": "slaney",
    "mel_norm": "slaney",
    "power": 2.0,
    "log": "db",
    "db_ref": 1.0,
    "db_amin": 1e-10,
}
DB_TOP = 80.0
NORMALIZE = "zscore"
# ~1 s windows: frames = 1 + (16000 - win_length) / hop_length = 47 (15744 samples, 0.984 s).
FRAMES = 1 + (16000 - SPEC["win_length"]) // SPEC["hop_length"]
HOP_SECONDS = 0.5  # manifest hop; 8000 samples = 25 frames, so hark's windows are frame-aligned
EVAL_HOP_FRAMES = int(round(HOP_SECONDS * SPEC["sample_rate"])) // SPEC["hop_length"]
assert EVAL_HOP_FRAMES * SPEC["hop_length"] == int(HOP_SECONDS * SPEC["sample_rate"])


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        return repr(v)
    return str(v)


def write_spec(path, spec):
    with open(path, "w") as f:
        for k, v in spec.items():
            f.write(f"{k} = {toml_value(v)}\n")


def read_dataset(root, labels_csv=None):
    path = labels_csv or os.path.join(root, "labels.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for col in ("file", "label", "fold"):
        if rows and col not in rows[0]:
            sys.exit(f"{path}: no column `{col}`")
    return [(r["file"], r["label"], r["fold"].strip()) for r in rows]


def features(hark, root, rel, cache, spec_path):
    """Whole-clip log-mel [n_mels, frames] from `hark features`, cached as .npy."""
    out = os.path.join(cache, rel.replace("/", "__") + ".npy")
    if not os.path.exists(out):
        tmp = out + ".tmp.npy"
        r = subprocess.run(
            [hark, "--log", "warn", "features", "--spec", spec_path,
             os.path.join(root, rel), "--out", tmp],
            capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"hark features failed on {rel}:\n{r.stderr}")
        os.replace(tmp, out)
    return np.load(out)


def pad_frames(x):
    """Clips shorter than one window: pad with silence frames (-100 dB for power, ref 1).
    hark zero-pads the audio instead, so the frames that straddle the end differ; every
    UrbanSound8K subset clip is 4 s, so this never happens there."""
    if x.shape[1] >= FRAMES:
        return x
    silence = 10.0 * math.log10(SPEC["db_amin"]) - 10.0 * math.log10(SPEC["db_ref"])
    pad = np.full((x.shape[0], FRAMES - x.shape[1]), silence, dtype=np.float32)
    return np.concatenate([x, pad], axis=1)


def normalize_window(w):
    """hark's whole-window steps (frontend.rs `normalize`): top-dB clip, then z-score with the
    population std + 1e-8, statistics in float64."""
    w = w.astype(np.float64)
    w = np.maximum(w, w.max() - DB_TOP)
    mean = w.mean()
    std = np.sqrt(((w - mean) ** 2).mean())
    return ((w - mean) / (std + 1e-8)).astype(np.float32)


def windows(x, hop_frames):
    x = pad_frames(x)
    starts = range(0, x.shape[1] - FRAMES + 1, hop_frames)
    return [normalize_window(x[:, s:s + FRAMES]) for s in starts]


def hark_windows(x):
    """The windows hark cuts (windowing::window_starts with hop 0.5 s), as frame slices."""
    return windows(x, EVAL_HOP_FRAMES)


class DSBlock(nn.Module):
    """MobileNet-v1 block: depthwise 3x3 conv + BN + ReLU, pointwise 1x1 conv + BN + ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = F.relu(self.bn1(self.dw(x)))
        return F.relu(self.bn2(self.pw(x)))


class CNN(nn.Module):
    def __init__(self, n_classes, width=(24, 48, 96, 96, 192, 192), dropout=0.3):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, width[0], 3, 2, 1, bias=False), nn.BatchNorm2d(width[0]), nn.ReLU())
        strides = (2, 2, 1, 2, 1)  # input 64x47 -> 32x24 -> 16x12 -> 8x6 -> 4x3
        self.blocks = nn.Sequential(
            *[DSBlock(width[i], width[i + 1], s) for i, s in enumerate(strides)])
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(width[-1], n_classes)

    def forward(self, x):  # x: [N, 1, n_mels, frames]
        x = self.blocks(self.stem(x))
        x = x.mean(dim=(2, 3))
        return self.fc(self.drop(x))


class WithSoftmax(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, log_mel):
        return torch.softmax(self.net(log_mel), dim=-1)


def spec_augment(x, gen):
    """Two frequency masks (<= 8 bands) and two time masks (<= 6 frames), set to 0 (the
    z-scored mean)."""
    n, _, m, t = x.shape
    x = x.clone()
    for _ in range(2):
        fw = torch.randint(0, 9, (n,), generator=gen)
        f0 = (torch.rand(n, generator=gen) * (m - fw)).long()
        tw = torch.randint(0, 7, (n,), generator=gen)
        t0 = (torch.rand(n, generator=gen) * (t - tw)).long()
        fr = torch.arange(m)[None, :]
        tr = torch.arange(t)[None, :]
        fmask = (fr >= f0[:, None]) & (fr < (f0 + fw)[:, None])
        tmask = (tr >= t0[:, None]) & (tr < (t0 + tw)[:, None])
        x[:, 0][fmask[:, :, None].expand(n, m, t)] = 0.0
        x[:, 0][tmask[:, None, :].expand(n, m, t)] = 0.0
    return x


def metrics(y_true, y_pred, n_classes):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    acc = float((y_true == y_pred).mean())
    recalls = [float((y_pred[y_true == c] == c).mean()) for c in range(n_classes)
               if (y_true == c).any()]
    conf = np.zeros((n_classes, n_classes), dtype=int)
    for t, p in zip(y_true, y_pred):
        conf[t, p] += 1
    return acc, float(np.mean(recalls)), conf


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", help="folder with labels.csv (file,label,fold)")
    ap.add_argument("--out", default="/tmp/hark-cnn", help="output folder for the model")
    ap.add_argument("--hark", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "hark"))
    ap.add_argument("--cache", default=None, help="feature cache (default OUT/features)")
    ap.add_argument("--train-folds", default="1,2,3")
    ap.add_argument("--test-fold", default="10")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--train-hop-frames", type=int, default=10,
                    help="hop between training windows, frames (0.2 s); test uses hark's 0.5 s")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args()

    t_start = time.time()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    cache = args.cache or os.path.join(args.out, "features")
    os.makedirs(cache, exist_ok=True)
    spec_path = os.path.join(cache, "spec.toml")
    write_spec(spec_path, SPEC)

    rows = read_dataset(args.dataset)
    train_folds = set(args.train_folds.split(","))
    test_fold = args.test_fold
    labels = sorted({lab for _, lab, _ in rows})
    idx = {lab: i for i, lab in enumerate(labels)}
    train_rows = [r for r in rows if r[2] in train_folds]
    test_rows = [r for r in rows if r[2] == test_fold]
    assert not ({r[0] for r in train_rows} & {r[0] for r in test_rows})
    print(f"{len(labels)} classes; train folds {sorted(train_folds)}: {len(train_rows)} clips; "
          f"test fold {test_fold}: {len(test_rows)} clips", file=sys.stderr)

    t0 = time.time()
    feats = {}
    for i, (rel, _, _) in enumerate(train_rows + test_rows):
        feats[rel] = features(args.hark, args.dataset, rel, cache, spec_path)
    t_feat = time.time() - t0
    print(f"features ({len(feats)} clips, hark features, cached in {cache}): {t_feat:.1f} s",
          file=sys.stderr)

    xs, ys, clip_of = [], [], []
    for ci, (rel, lab, _) in enumerate(train_rows):
        w = windows(feats[rel], args.train_hop_frames)
        xs += w
        ys += [idx[lab]] * len(w)
        clip_of += [ci] * len(w)
    x_train = torch.from_numpy(np.stack(xs)[:, None])
    y_train = torch.tensor(ys)
    # Every clip weighs the same whatever its number of windows, every class the same.
    clip_counts = np.bincount(clip_of)
    clip_w = 1.0 / clip_counts[np.asarray(clip_of)]
    class_tot = np.bincount(ys, weights=clip_w, minlength=len(labels))
    w_row = clip_w / class_tot[np.asarray(ys)]
    w_row = torch.tensor(w_row / w_row.mean(), dtype=torch.float32)
    print(f"train windows: {len(ys)} of {FRAMES} frames x {SPEC['n_mels']} mels "
          f"(hop {args.train_hop_frames} frames)", file=sys.stderr)

    net = CNN(len(labels))
    n_params = sum(p.numel() for p in net.parameters())
    print(f"model: {n_params} parameters", file=sys.stderr)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-3)
    steps = args.epochs * math.ceil(len(ys) / args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    gen = torch.Generator().manual_seed(args.seed)

    t0 = time.time()
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(ys), generator=gen)
        tot, correct, n = 0.0, 0, 0
        for b in range(0, len(ys), args.batch):
            j = perm[b:b + args.batch]
            xb = spec_augment(x_train[j], gen)
            logits = net(xb)
            loss = (F.cross_entropy(logits, y_train[j], reduction="none",
                                    label_smoothing=0.05) * w_row[j]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(j)
            correct += int((logits.argmax(1) == y_train[j]).sum())
            n += len(j)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {tot / n:.3f}, train window acc "
              f"{correct / n:.3f} ({time.time() - t0:.0f} s)", file=sys.stderr)
    t_train = time.time() - t0

    # Held-out fold, clip level, over hark's own windows.
    net.eval()
    model = WithSoftmax(net).eval()
    y_true, y_pred, clip_probs = [], [], {}
    with torch.no_grad():
        for rel, lab, _ in test_rows:
            w = torch.from_numpy(np.stack(hark_windows(feats[rel]))[:, None])
            p = model(w).mean(0).numpy()
            clip_probs[rel] = p.tolist()
            y_true.append(idx[lab])
            y_pred.append(int(p.argmax()))
    acc, bacc, conf = metrics(y_true, y_pred, len(labels))
    per_class = {lab: float(conf[i, i] / conf[i].sum()) for i, lab in enumerate(labels)
                 if conf[i].sum()}
    print(f"held-out fold {test_fold}: {len(test_rows)} clips, accuracy {acc:.4f}, "
          f"balanced accuracy {bacc:.4f}", file=sys.stderr)
    for lab, r in per_class.items():
        print(f"  {lab:20s} recall {r:.3f}", file=sys.stderr)

    # Export.
    onnx_path = os.path.join(args.out, "hark-cnn.onnx")
    dummy = torch.zeros(1, 1, SPEC["n_mels"], FRAMES)
    torch.onnx.export(model, (dummy,), onnx_path, input_names=["log_mel"],
                      output_names=["probabilities"], opset_version=args.opset, dynamo=False)
    with open(os.path.join(args.out, "labels.txt"), "w") as f:
        f.write("".join(lab + "\n" for lab in labels))
    spec = dict(SPEC, db_top=DB_TOP, normalize=NORMALIZE)
    with open(os.path.join(args.out, "hark-cnn.toml"), "w") as f:
        f.write(f'name = "hark-cnn"\n')
        f.write(f'description = "MobileNet-style log-mel CNN ({n_params} parameters) trained by '
                f'training/train_cnn.py on folds {args.train_folds} of '
                f'{os.path.basename(os.path.normpath(args.dataset))}; held-out fold '
                f'{test_fold}: accuracy {acc:.3f}"\n')
        f.write('model = "hark-cnn.onnx"\nlabels = "labels.txt"\n')
        f.write(f'sample_rate = {SPEC["sample_rate"]}\n')
        f.write(f'# window follows from frontend.frames: {FRAMES} frames = '
                f'{(FRAMES - 1) * SPEC["hop_length"] + SPEC["win_length"]} samples\n')
        f.write(f'hop = {HOP_SECONDS}\n')
        f.write('output = "probabilities"\nmulti_label = false\n')
        f.write('input_name = "log_mel"\noutput_name = "probabilities"\n\n')
        f.write(f'[frontend]\nkind = "log_mel"\nframes = {FRAMES}\n\n[frontend.spec]\n')
        for k, v in spec.items():
            f.write(f"{k} = {toml_value(v)}\n")
    # A reference output for one test clip, to compare with `hark classify`.
    ref = test_rows[0][0]
    report = {
        "labels": labels, "train_folds": sorted(train_folds), "test_fold": test_fold,
        "train_clips": len(train_rows), "test_clips": len(test_rows),
        "train_windows": len(ys), "frames": FRAMES, "spec": spec, "parameters": n_params,
        "epochs": args.epochs, "batch": args.batch, "lr": args.lr, "seed": args.seed,
        "accuracy": acc, "balanced_accuracy": bacc, "per_class_recall": per_class,
        "confusion": conf.tolist(),
        "seconds": {"features": t_feat, "train": t_train, "total": time.time() - t_start},
        "reference_clip": ref, "reference_clip_mean_probabilities": clip_probs[ref],
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
    }
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {onnx_path}, hark-cnn.toml, labels.txt, report.json; "
          f"training {t_train:.0f} s, total {time.time() - t_start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
