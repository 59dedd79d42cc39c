#!/usr/bin/env python3
"""Times ONNX Runtime on a UNet export the way `edge-ddim bench --json` times edge-ddim: one warm-up, then
K evaluations of batch 1 at t = 500 with `--threads` intra-op threads; prints one JSON object."""
import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--evaluations-only", action="store_true", help="run the evaluations, print nothing (for /usr/bin/time)")
    a = p.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(a.model, options, providers=["CPUExecutionProvider"])
    shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
    feeds = {
        session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape).astype(np.float32),
        session.get_inputs()[1].name: np.array([500], dtype=np.int64),
    }
    session.run(None, feeds)
    times = []
    for _ in range(a.iterations):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - t0)
    if a.evaluations_only:
        return
    print(json.dumps({"unet_ms_median": statistics.median(times) * 1e3, "unet_ms_min": min(times) * 1e3,
                      "threads": a.threads, "onnxruntime": ort.__version__}))


if __name__ == "__main__":
    main()
