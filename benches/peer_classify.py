"""The peer for hark's benchmark: the same job as `hark classify` (decode, mono, resample to
16 kHz, 1 s windows every 0.5 s, CED-tiny through onnxruntime, top-3 per window), written the
way a Python user would (soundfile + scipy.signal.resample_poly + onnxruntime).
Usage: python benches/peer_classify.py MODEL.onnx FILE..."""
import sys

import numpy as np
import onnxruntime as ort
import scipy.signal as ss
import soundfile as sf

opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
sess = ort.InferenceSession(sys.argv[1], opts, providers=["CPUExecutionProvider"])
for path in sys.argv[2:]:
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    g = np.gcd(sr, 16000)
    y = ss.resample_poly(y, 16000 // g, sr // g).astype(np.float32)
    W, H = 16000, 8000
    starts = range(0, max(1, len(y) - W + 1), H) if len(y) > W else [0]
    for s in starts:
        x = np.zeros(W, np.float32)
        seg = y[s:s + W]
        x[:len(seg)] = seg
        p = sess.run(None, {"waveform": x[None]})[0][0]
        top = np.argsort(p)[::-1][:3]
        print(path, s / 16000, [(int(i), float(p[i])) for i in top])
