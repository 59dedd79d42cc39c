#!/usr/bin/env python3
"""Times one peer runtime on a UNet export the way `edge-ddim bench --json` times edge-ddim: one warm-up, then
K evaluations of batch 1 at t = 500 with `--threads` threads; prints one JSON object
(unet_ms_median, unet_ms_min, threads, runtime, version, precision: what the runtime reports it ran).

    peer_bench.py ort      MODEL.onnx
    peer_bench.py openvino MODEL.onnx [--precision f32|bf16|default]   (OpenVINO's CPU plugin picks bf16 on
                                                                          CPUs with AMX/AVX512-BF16 unless told f32)
    peer_bench.py ncnn     MODEL.ncnn.param                             (MODEL.ncnn.bin beside it; made by
                                                                          tools/reference/export_peers.py)

--evaluations-only runs the evaluations and prints nothing (for /usr/bin/time).
"""
import argparse
import json
import statistics
import time

import numpy as np


def ort_runner(path, threads, _precision):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    shape = [d if isinstance(d, int) else 1 for d in inputs[0].shape]
    feeds = {inputs[0].name: np.random.default_rng(0).standard_normal(shape).astype(np.float32),
             inputs[1].name: np.array([500], dtype=np.int64)}
    return (lambda: session.run(None, feeds)), ort.__version__, "f32"


def openvino_runner(path, threads, precision):
    import openvino as ov
    core = ov.Core()
    model = core.read_model(path)
    config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
    if precision != "default":
        config["INFERENCE_PRECISION_HINT"] = precision
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    shape = [d.get_length() for d in model.inputs[0].get_partial_shape()]
    feeds = {model.inputs[0].any_name: np.random.default_rng(0).standard_normal(shape).astype(np.float32),
             model.inputs[1].any_name: np.array([500], dtype=np.int64)}
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    ran = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
    return (lambda: request.infer(feeds)), ov.__version__, ran


def ncnn_runner(path, threads, _precision):
    import ncnn
    net = ncnn.Net()
    net.opt.num_threads = threads
    net.opt.use_fp16_storage = False
    net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = False
    net.opt.use_winograd_convolution = True
    net.load_param(path)
    net.load_model(path[: -len(".param")] + ".bin")
    meta = json.loads(open(path[: -len(".param")] + ".json").read())
    c, s = meta["channels"], meta["sample_size"]
    x = np.random.default_rng(0).standard_normal((c, s, s)).astype(np.float32)
    t = np.array([500], dtype=np.float32)

    def run():
        ex = net.create_extractor()
        ex.input("in0", ncnn.Mat(x))
        ex.input("in1", ncnn.Mat(t))
        ex.extract("out0")

    return run, ncnn.__version__, "f32"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("runtime", choices=["ort", "openvino", "ncnn"])
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--precision", choices=["f32", "bf16", "default"], default="f32", help="OpenVINO only")
    p.add_argument("--evaluations-only", action="store_true")
    a = p.parse_args()
    make = {"ort": ort_runner, "openvino": openvino_runner, "ncnn": ncnn_runner}[a.runtime]
    run, version, ran = make(a.model, a.threads, a.precision)
    run()
    times = []
    for _ in range(a.iterations):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    if a.evaluations_only:
        return
    print(json.dumps({"unet_ms_median": statistics.median(times) * 1e3, "unet_ms_min": min(times) * 1e3, "threads": a.threads,
                      "runtime": a.runtime, "version": version, "precision": ran}))


if __name__ == "__main__":
    main()
