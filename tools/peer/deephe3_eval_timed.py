#!/usr/bin/env python3
"""DeepH-E3 inference (`deephe3-eval.py CONFIG -n N`, DeepH-E3 f011d5f) with the time of its
tensor-to-block conversion (e3TensorDecomp.get_H) and of the per-edge Python loop that fills the H
blocks (DeepHE3Kernel.update_hopping) reported: one line each, "[timed] <part> <seconds>", read by
deephe3_helper.py phases (the network's forward pass is the rest of DeepH-E3's "Finished, cost";
it cannot be wrapped here: the network class is re-imported from the model's saved src/ folder).
DeepH-E3 itself is imported from PYTHONPATH (a checkout), unmodified; only two methods are wrapped.

Usage: PYTHONPATH=/path/to/DeepH-E3 python deephe3_eval_timed.py CONFIG [-n THREADS]
"""
import argparse
import functools
import os
import time

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("config")
parser.add_argument("-n", type=int, default=None, help="threads (torch.set_num_threads, OMP_NUM_THREADS)")
args = parser.parse_args()
if args.n is not None:  # before torch is imported, as deephe3-eval.py does
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(args.n)
import torch  # noqa: E402

if args.n is not None:
    torch.set_num_threads(args.n)
import deephe3  # noqa: E402

totals = {}


def timed(cls, name, label):
    original = getattr(cls, name)

    @functools.wraps(original)
    def wrapper(*a, **k):
        start = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            totals[label] = totals.get(label, 0.0) + time.perf_counter() - start
    setattr(cls, name, wrapper)


timed(deephe3.e3TensorDecomp, "get_H", "get_H")
timed(deephe3.DeepHE3Kernel, "update_hopping", "fill_blocks")
print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)", flush=True)
deephe3.DeepHE3Kernel().eval(args.config)
for label, seconds in totals.items():
    print(f"[timed] {label} {seconds:.3f}", flush=True)
