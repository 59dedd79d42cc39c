#!/usr/bin/env python3
"""Guest-side driver for tools/arm64/peer_cost.sh: runs one peer runtime on a UNet export, on ONE thread, with
fixed inputs, as 1 warm-up + K evaluations of batch 1 at t = 500, and prints nothing but a one-line summary on
stderr. Meant to run under qemu-aarch64 with the instruction-counting plugin (tools/arm64/insn-count), which
counts the whole process: peer_cost.sh takes one evaluation's cost as count(K = 2) - count(K = 1).

    peer_count.py ort  MODEL.onnx        --evaluations K   (x float32 [1, C, S, S], t int64 [1])
    peer_count.py ncnn MODEL.ncnn.param  --evaluations K   (MODEL.ncnn.bin / MODEL.ncnn.json beside it;
                                                            in0 = x float32 C×S×S, in1 = t float32 [1])
    peer_count.py versions                                 (prints {"python", "onnxruntime", "ncnn", "numpy"})

Inputs are the same as tools/benchmarks/peer_bench.py feeds (numpy default_rng(0) standard normal). Every
source of extra threads is shut: OMP/OpenBLAS thread counts are forced to 1 before numpy, ONNX Runtime gets
intra_op 1, inter_op 1, sequential execution and no spinning, ncnn gets num_threads 1 — the plugin's counters
are non-atomic, so the guest must never run two threads at once.
"""
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

T = 500


def ort_runner(path):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    shape = [d if isinstance(d, int) else 1 for d in inputs[0].shape]
    feeds = {inputs[0].name: np.random.default_rng(0).standard_normal(shape).astype(np.float32),
             inputs[1].name: np.array([T], dtype=np.int64)}
    out = session.get_outputs()[0].name

    def run():
        return session.run([out], feeds)[0]

    return run


def ncnn_runner(path):
    import ncnn
    stem = path[: -len(".param")]
    net = ncnn.Net()
    net.opt.num_threads = 1
    net.opt.use_fp16_storage = False
    net.opt.use_fp16_packed = False
    net.opt.use_fp16_arithmetic = False
    net.opt.use_bf16_storage = False
    net.opt.use_winograd_convolution = True
    net.load_param(path)
    net.load_model(stem + ".bin")
    with open(stem + ".json") as f:
        meta = json.load(f)
    c, s = meta["channels"], meta["sample_size"]
    x = np.random.default_rng(0).standard_normal((c, s, s)).astype(np.float32)
    t = np.array([T], dtype=np.float32)

    def run():
        ex = net.create_extractor()
        ex.input("in0", ncnn.Mat(x))
        ex.input("in1", ncnn.Mat(t))
        _, y = ex.extract("out0")
        return np.array(y)

    return run


def versions():
    about = {"python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine()}
    try:
        import onnxruntime
        about["onnxruntime"] = onnxruntime.__version__
    except ImportError as e:
        about["onnxruntime"] = f"unavailable: {e}"
    try:
        import ncnn
        about["ncnn"] = ncnn.__version__
    except ImportError as e:
        about["ncnn"] = f"unavailable: {e}"
    return about


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runtime", choices=["ort", "ncnn", "versions"])
    p.add_argument("model", nargs="?")
    p.add_argument("--evaluations", type=int, default=1, help="evaluations after the one warm-up")
    a = p.parse_args()
    if a.runtime == "versions":
        print(json.dumps(versions()))
        return
    if not a.model:
        p.error("MODEL is required")
    run = {"ort": ort_runner, "ncnn": ncnn_runner}[a.runtime](a.model)
    y = run()  # warm-up
    for _ in range(a.evaluations):
        y = run()
    # A checksum of the last output, so a broken run is visible (and identical runs print identical lines).
    print(f"peer_count: {a.runtime} 1+{a.evaluations} evaluations, output {y.size} values, sum {float(np.sum(y, dtype=np.float64)):.6e}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
