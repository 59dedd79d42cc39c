#!/usr/bin/env python3
"""Generates images with libedgeddim from Python through ctypes (no other dependency), as
`edge-ddim --model MODEL --seed SEED --count COUNT --output OUT` does (DDIM, 10 steps, eta 0), and writes the same
PNG, byte for byte.

    python3 tools/examples/python/generate.py --library .build/release/libedgeddim.so \
        --model models/ddpm-fashion-32.edm --seed 3 --count 2 --output samples.png

The structure below restates edgeddim_options from Sources/CEdgeDDIM/include/edgeddim.h field by field; the
library refuses a struct whose struct_size differs from its own.
"""
import argparse
import ctypes
import sys

PROGRESS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int32, ctypes.c_int32, ctypes.c_void_p)


class Options(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("steps", ctypes.c_int32),
        ("count", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
        ("sampler", ctypes.c_char_p),
        ("eta", ctypes.c_float),
        ("threads", ctypes.c_int32),
        ("batch", ctypes.c_int32),
        ("prompt", ctypes.c_char_p),
        ("negative_prompt", ctypes.c_char_p),
        ("guidance", ctypes.c_float),
        ("size", ctypes.c_int32),
        ("progress", PROGRESS),
        ("progress_user_data", ctypes.c_void_p),
        ("cancel", ctypes.c_void_p),
    ]


def load(path):
    lib = ctypes.CDLL(path)
    lib.edgeddim_last_error.restype = ctypes.c_char_p
    lib.edgeddim_version.restype = ctypes.c_char_p
    lib.edgeddim_options_init.argtypes = [ctypes.POINTER(Options)]
    lib.edgeddim_model_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.edgeddim_model_close.argtypes = [ctypes.c_void_p]
    lib.edgeddim_output_size.argtypes = [ctypes.c_void_p, ctypes.POINTER(Options), ctypes.POINTER(ctypes.c_size_t),
                                         ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int32),
                                         ctypes.POINTER(ctypes.c_int32)]
    lib.edgeddim_generate.argtypes = [ctypes.c_void_p, ctypes.POINTER(Options), ctypes.c_void_p, ctypes.c_size_t]
    lib.edgeddim_write_png.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32,
                                       ctypes.c_int32, ctypes.c_int32]
    return lib


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", required=True, help="path of libedgeddim.so")
    parser.add_argument("--model", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--output", default="samples.png")
    args = parser.parse_args()
    lib = load(args.library)

    def check(status):
        if status != 0:
            sys.exit(f"generate.py: {lib.edgeddim_last_error().decode()}")

    model = ctypes.c_void_p()
    check(lib.edgeddim_model_open(args.model.encode(), ctypes.byref(model)))
    try:
        options = Options()
        lib.edgeddim_options_init(ctypes.byref(options))
        options.seed = args.seed
        options.count = args.count
        report = PROGRESS(lambda done, total, _: print(f"step {done}/{total}", file=sys.stderr) or 0)
        options.progress = report
        size = ctypes.c_size_t()
        channels, height, width = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int32()
        check(lib.edgeddim_output_size(model, ctypes.byref(options), ctypes.byref(size), ctypes.byref(channels),
                                       ctypes.byref(height), ctypes.byref(width)))
        pixels = (ctypes.c_uint8 * size.value)()
        check(lib.edgeddim_generate(model, ctypes.byref(options), pixels, size))
        check(lib.edgeddim_write_png(args.output.encode(), pixels, args.count, channels, height, width))
    finally:
        lib.edgeddim_model_close(model)


if __name__ == "__main__":
    main()
