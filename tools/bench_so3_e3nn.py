#!/usr/bin/env python3
"""e3nn side of `harmose bench-so3`: times e3nn's TensorProduct on PyTorch CPU for the same
channel-wise ("uvu") product, irreps and edge count as the Swift benchmark, forward and backward,
and prints medians in the same units. Needs torch and e3nn (a venv, never needed by `make test`):

    python -m venv tools/.venv-torch && tools/.venv-torch/bin/pip install torch e3nn
    tools/.venv-torch/bin/python tools/bench_so3_e3nn.py --edges 2000 --repeats 5

Paths: every (x1 entry, harmonic l2, L) with L <= 4 whose output irrep (l, parity) occurs in the
input irreps, in the same order as ChannelwiseTensorProduct; one output entry per path; weights
per edge (shared_weights=False), so the work is the same as the Swift op's.
"""
import argparse
import json
import os
import statistics
import time

import torch
from e3nn import o3


def build(irreps1="64x0e+32x1o+16x2e+8x3o+8x4e", lmax=4):
    irreps1 = o3.Irreps(irreps1)
    irreps2 = o3.Irreps.spherical_harmonics(lmax)
    allowed = {ir for _, ir in irreps1}
    outs, instructions = [], []
    for i1, (mul, ir1) in enumerate(irreps1):
        for i2, (_, ir2) in enumerate(irreps2):
            for ir in ir1 * ir2:
                if ir.l <= lmax and ir in allowed:
                    instructions.append((i1, i2, len(outs), "uvu", True))
                    outs.append((mul, ir))
    tp = o3.TensorProduct(irreps1, irreps2, o3.Irreps(outs), instructions,
                          shared_weights=False, internal_weights=False)
    return tp, irreps1, irreps2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edges", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    tp, irreps1, irreps2 = build()
    x1 = torch.randn(args.edges, irreps1.dim, requires_grad=True)
    vec = torch.randn(args.edges, 3)
    x2 = o3.spherical_harmonics(irreps2, vec, normalize=True, normalization="component")
    w = torch.randn(args.edges, tp.weight_numel, requires_grad=True)
    fwd, bwd = [], []
    for r in range(args.repeats + 1):   # r = 0 warms up (codegen, allocator)
        x1.grad = None
        w.grad = None
        t0 = time.perf_counter()
        out = tp(x1, x2, w)
        t1 = time.perf_counter()
        out.backward(torch.ones_like(out))
        t2 = time.perf_counter()
        if r > 0:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
    f, b = statistics.median(fwd), statistics.median(bwd)
    print(json.dumps({
        "code": "e3nn", "e3nn": __import__("e3nn").__version__, "torch": torch.__version__,
        "threads": args.threads, "edges": args.edges, "repeats": args.repeats,
        "paths": len(tp.instructions), "weight_numel": tp.weight_numel, "irreps_out_dim": tp.irreps_out.dim,
        "forward_s": f, "backward_s": b,
        "forward_edges_per_s": args.edges / f, "backward_edges_per_s": args.edges / b,
    }))


if __name__ == "__main__":
    main()
