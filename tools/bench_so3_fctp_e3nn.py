#!/usr/bin/env python3
"""e3nn side of `harmose bench-so3 --variant fully-connected`: times e3nn's
o3.FullyConnectedTensorProduct on PyTorch CPU for DeepH-E3's default irreps
(64x0e+32x1o+16x2e+8x3o+8x4e ⊗ spherical harmonics l <= 4 → 64x0e+32x1o+16x2e+8x3o+8x4e),
forward and backward, with internal shared weights (e3nn's default) and with per-edge weights
(shared_weights=False, weights [edges, weight_numel] passed in), and prints medians as JSON.
Gradients flow to x1 and the weights, not to the harmonics, as in the Swift benchmark.
Needs torch and e3nn (a venv, never needed by `make test`):

    python -m venv tools/.venv-torch && tools/.venv-torch/bin/pip install torch e3nn
    tools/.venv-torch/bin/python tools/bench_so3_fctp_e3nn.py --edges 2000 --repeats 5
"""
import argparse
import json
import statistics
import time

import torch
from e3nn import o3


def timed(tp, x1, x2, w, repeats):
    fwd, bwd = [], []
    for r in range(repeats + 1):   # r = 0 warms up (codegen, allocator)
        x1.grad = None
        for p in tp.parameters():
            p.grad = None
        if w is not None:
            w.grad = None
        t0 = time.perf_counter()
        out = tp(x1, x2) if w is None else tp(x1, x2, w)
        t1 = time.perf_counter()
        out.backward(torch.ones_like(out))
        t2 = time.perf_counter()
        if r > 0:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
    return statistics.median(fwd), statistics.median(bwd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edges", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shared-only", action="store_true", help="skip the per-edge-weights run")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    irreps = o3.Irreps("64x0e+32x1o+16x2e+8x3o+8x4e")
    sh = o3.Irreps.spherical_harmonics(4)
    x1 = torch.randn(args.edges, irreps.dim, requires_grad=True)
    x2 = o3.spherical_harmonics(sh, torch.randn(args.edges, 3), normalize=True, normalization="component")
    shared = o3.FullyConnectedTensorProduct(irreps, sh, irreps)
    result = {
        "code": "e3nn", "variant": "fully-connected", "e3nn": __import__("e3nn").__version__,
        "torch": torch.__version__, "threads": args.threads, "edges": args.edges, "repeats": args.repeats,
        "paths": len(shared.instructions), "weight_numel": shared.weight_numel,
    }
    f, b = timed(shared, x1, x2, None, args.repeats)
    result.update(shared_forward_s=f, shared_backward_s=b,
                  shared_forward_edges_per_s=args.edges / f, shared_backward_edges_per_s=args.edges / b)
    if not args.shared_only:
        per_edge = o3.FullyConnectedTensorProduct(irreps, sh, irreps, shared_weights=False, internal_weights=False)
        w = torch.randn(args.edges, per_edge.weight_numel, requires_grad=True)
        f, b = timed(per_edge, x1, x2, w, args.repeats)
        result.update(per_edge_forward_s=f, per_edge_backward_s=b,
                      per_edge_forward_edges_per_s=args.edges / f, per_edge_backward_edges_per_s=args.edges / b)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
