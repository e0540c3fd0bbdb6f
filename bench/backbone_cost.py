"""What a backbone costs on one CPU core: embedding clips/s (torch) and a backbone model's ONNX ms per clip.

    OMP_NUM_THREADS=1 python bench/backbone_cost.py [--model DIR_WITH_model.onnx] [--clips 12]

Embedding: `AudioBackbone.forward` on 1 s and 5 s clips in batches of 4, CPU time per clip on one
thread (process time, so a busy machine changes wall time, not the figure). ONNX: the model folder's
model.onnx (and model.int8.onnx) through ONNX Runtime with one intra-op thread on 5 s clips, CPU ms per
clip. Prints one JSON line per measurement with the load average.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from benchkit import parser  # first: it puts the checkout on the import path


def embed_cost(name: str, seconds: float, n: int) -> dict:
    import torch

    from learner.model.backbones import build_backbone

    torch.set_num_threads(1)
    bb = build_backbone(name).eval()  # random weights: the cost is the shapes'
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((n, int(seconds * bb.sample_rate))))
    x = x.float() * 0.1
    with torch.inference_mode():
        bb(x[:2])  # warm-up
        c0 = time.process_time()
        for i in range(0, n, 4):
            bb(x[i : i + 4])
        cpu = time.process_time() - c0
    return {
        "backbone": name,
        "clip_s": seconds,
        "cpu_s_per_clip": round(cpu / n, 4),
        "clips_per_s": round(n / cpu, 2),
    }


def onnx_cost(path: Path, n: int) -> dict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    samples = inp.shape[1]
    x = (np.random.default_rng(0).standard_normal((n, samples)) * 0.1).astype(np.float32)
    sess.run(None, {inp.name: x[:1]})
    c0 = time.process_time()
    for i in range(n):
        sess.run(None, {inp.name: x[i : i + 1]})
    cpu = time.process_time() - c0
    return {"onnx": path.name, "samples": samples, "cpu_ms_per_clip": round(1000 * cpu / n, 1)}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--model", default=None, help="a model folder with model.onnx (jobs.export)")
    p.add_argument("--clips", type=int, default=12)
    p.add_argument("--backbones", default="aisfx,panns_cnn10")
    args = p.parse_args()
    for name in args.backbones.split(","):
        for seconds in (1.0, 5.0):
            print(
                json.dumps({**embed_cost(name, seconds, args.clips), "load": os.getloadavg()[0]}), flush=True
            )
    if args.model:
        for f in ("model.onnx", "model.int8.onnx"):
            if (Path(args.model) / f).is_file():
                print(json.dumps({**onnx_cost(Path(args.model) / f, args.clips), "load": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
