#!/usr/bin/env python3
"""Operations per window of an ONNX model, counted from its graph (BENCHMARKS.md, "What a
Raspberry Pi should expect"): every node's output shape is taken from a real run (onnxruntime on
one window of noise, every intermediate value exposed as a graph output), then

  MatMul / Gemm  multiply-adds = output elements x the contracted dimension
  Conv           multiply-adds = output elements x (input channels / group) x kernel size
  STFT           real multiply-adds of one radix-2 FFT per frame: (n/2) log2(n) butterflies of
                 a complex multiply (4) and two complex adds, ~5 (n/2) log2 n flops, counted as
                 2.5 n log2 n / 2 multiply-adds
  anything else  one operation per output element (element-wise work: Add, Mul, Erf, Softmax,
                 LayerNormalization, ...), reported apart

and, for a log-mel model, hark's own front end per window from the manifest's [frontend.spec]
(`--frontend MANIFEST`): the window multiply, one real FFT of n_fft per frame (~2.5 n log2 n
flops, the usual split-radix count), |X| or |X|^2 per bin, the mel filter bank's non-zero
weights (one multiply-add each) and the log per band (~25 flops for hark's branch-free ln).

Usage: python3 benches/model_ops.py [--frontend MANIFEST.toml] MODEL.onnx INPUT_SHAPE [...]
  e.g. benches/model_ops.py models/ced-tiny.onnx 1x16000 \
       ../shared/data/models/yamnet/yamnet_backbone_logmel96x64.onnx 96x64
Needs: onnx, onnxruntime, numpy (a venv).
"""
import collections
import math
import sys

import numpy as np
import onnx
import onnxruntime as ort


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def count(path, input_shape):
    model = onnx.load(path)
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    known = {o.name for o in graph.output}
    for node in graph.node:
        for out in node.output:
            if out and out not in known:
                graph.output.append(onnx.ValueInfoProto(name=out))
                known.add(out)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    x = np.random.default_rng(0).standard_normal(input_shape).astype(np.float32) * 0.1
    names = [o.name for o in session.get_outputs()]
    shapes = dict(zip(names, (np.shape(v) for v in session.run(names, {inp.name: x}))))
    for i in graph.initializer:
        shapes[i.name] = tuple(i.dims)
    shapes[inp.name] = tuple(input_shape)

    macs = collections.Counter()
    other = collections.Counter()
    for node in graph.node:
        out = shapes.get(node.output[0], ())
        n_out = int(np.prod(out)) if out else 1
        op = node.op_type
        if op == "MatMul":
            k = shapes[node.input[0]][-1]
            macs[op] += n_out * k
        elif op == "Gemm":
            a = shapes[node.input[0]]
            k = a[0] if attr(node, "transA", 0) else a[-1]
            macs[op] += n_out * k
        elif op == "Conv":
            w = shapes[node.input[1]]
            macs[op] += n_out * int(np.prod(w[1:]))
        elif op == "STFT":
            frame = int(np.asarray(onnx.numpy_helper.to_array(
                next(i for i in graph.initializer if i.name == node.input[3]))).item()) \
                if len(node.input) > 3 and node.input[3] in initializers else shapes[node.input[2]][0]
            frames = out[1]
            macs[op] += int(frames * 2.5 * frame * math.log2(frame) / 2)
        elif op in ("DequantizeLinear",) and all(i in initializers for i in node.input if i):
            other["DequantizeLinear (of weights; folded once at load)"] += n_out
        elif op in ("Shape", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Slice",
                    "Concat", "Gather"):
            other["data movement (" + op + ")"] += n_out
        else:
            other[op] += n_out
    return macs, other


def frontend_ops(manifest):
    """Flops of hark's log-mel front end per frame and per window, from a manifest."""
    import tomllib

    with open(manifest, "rb") as f:
        m = tomllib.load(f)
    spec, frames = m["frontend"]["spec"], m["frontend"]["frames"]
    sr, n_fft = spec["sample_rate"], spec["n_fft"]
    win, hop = spec.get("win_length", n_fft), spec["hop_length"]
    n_bins = n_fft // 2 + 1
    # Non-zero weights of the triangular filters: every bin between a band's lower and upper
    # edge (HTK mel scale; the Slaney scale differs only in where the edges fall).
    mel = lambda f: 1127.0 * math.log1p(f / 700.0)
    edges = np.linspace(mel(spec["fmin"]), mel(spec["fmax"]), spec["n_mels"] + 2)
    bins = np.array([mel(k * sr / n_fft) for k in range(n_bins)])
    weights = sum(int(((bins > lo) & (bins < hi)).sum()) for lo, hi in zip(edges[:-2], edges[2:]))
    per_frame = {
        "window multiply": win,
        "real FFT": 2.5 * n_fft * math.log2(n_fft),
        "|X|": n_bins * (3 if spec["power"] == 2.0 else 4),
        "mel multiply-adds (x2 flops)": 2 * weights,
        "log": 25 * spec["n_mels"],
    }
    hop_frames = round(m["hop"] * sr / hop)
    total = sum(per_frame.values())
    print(f"{manifest}: hark front end, n_fft {n_fft}, {spec['n_mels']} mels, {weights} non-zero mel weights")
    for k, v in per_frame.items():
        print(f"  {k:<30} {v:10.0f} flops per frame")
    print(f"  {'total':<30} {total:10.0f} flops per frame; {frames} frames per window "
          f"({frames * total / 1e6:.2f} MFLOP), {hop_frames} new frames per hop when streaming "
          f"({hop_frames * total / 1e6:.2f} MFLOP)")


def main(argv):
    while argv[:1] == ["--frontend"]:
        frontend_ops(argv[1])
        argv = argv[2:]
        if not argv:
            return 0
    if len(argv) < 2 or len(argv) % 2:
        print(__doc__, file=sys.stderr)
        return 2
    for path, shape in zip(argv[::2], argv[1::2]):
        dims = [int(d) for d in shape.split("x")]
        macs, other = count(path, dims)
        total = sum(macs.values())
        elementwise = sum(v for k, v in other.items()
                          if not k.startswith(("data movement", "DequantizeLinear")))
        print(f"{path} input {shape}")
        for op, n in macs.most_common():
            print(f"  {op:<10} {n / 1e6:10.2f} M multiply-adds")
        print(f"  {'total':<10} {total / 1e6:10.2f} M multiply-adds ({2 * total / 1e6:.1f} MFLOP)")
        print(f"  element-wise and other arithmetic: {elementwise / 1e6:.2f} M operations")
        for op, n in other.most_common(8):
            print(f"    {op:<48} {n / 1e6:8.3f} M")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
