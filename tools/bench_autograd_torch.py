#!/usr/bin/env python3
"""PyTorch (CPU, float32) reference for `harmose bench-autograd`: the same two workloads with the
same shapes, forward+backward, median of N repeats after one warm-up. One JSON object per line.
Run from its own venv (tools/.venv-torch); not part of the test suite.
"""
import argparse
import json
import os
import resource
import time

import torch


def cpu_seconds():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def median(fn, repeats):
    """Median wall time after one warm-up, and process CPU seconds (all threads) per run."""
    fn()
    times = []
    c0 = cpu_seconds()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    cpu = (cpu_seconds() - c0) / repeats
    times.sort()
    n = len(times)
    return (times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])), cpu


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--edges", type=int, default=100_000)
    p.add_argument("--nodes", type=int, default=10_000)
    p.add_argument("--features", type=int, default=64)
    a = p.parse_args()
    threads = int(os.environ.get("OPENBLAS_NUM_THREADS", os.cpu_count()))
    torch.set_num_threads(threads)
    torch.manual_seed(0)

    # (a) 3-layer MLP, SiLU between layers, loss = Σ y².
    w = a.width
    mlp = torch.nn.Sequential(torch.nn.Linear(w, w), torch.nn.SiLU(), torch.nn.Linear(w, w), torch.nn.SiLU(),
                              torch.nn.Linear(w, w))
    x = torch.randn(a.rows, w)

    def mlp_step():
        mlp.zero_grad(set_to_none=True)
        mlp(x).square().sum().backward()

    t, cpu = median(mlp_step, a.repeats)
    flops = 8 * 2 * a.rows * w * w
    print(json.dumps({"bench": "mlp", "median_s": t, "cpu_s_per_run": cpu, "gflops": flops / t / 1e9, "torch": torch.__version__,
                      "threads": threads}), flush=True)

    # (b) gather(src, dst) → MLP [2F, 2F, F] → scatter-add (index_add) to dst, loss = Σ out².
    f = a.features
    msg = torch.nn.Sequential(torch.nn.Linear(2 * f, 2 * f), torch.nn.SiLU(), torch.nn.Linear(2 * f, f))
    h = torch.randn(a.nodes, f, requires_grad=True)
    src = torch.randint(0, a.nodes, (a.edges,))
    dst = torch.randint(0, a.nodes, (a.edges,))

    def mp_step():
        msg.zero_grad(set_to_none=True)
        h.grad = None
        m = msg(torch.cat([h[src], h[dst]], dim=1))
        out = torch.zeros(a.nodes, f).index_add(0, dst, m)
        out.square().sum().backward()

    t, cpu = median(mp_step, a.repeats)
    flops = 3 * 2 * a.edges * (2 * f * 2 * f + 2 * f * f)
    print(json.dumps({"bench": "message_passing", "median_s": t, "cpu_s_per_run": cpu, "gflops": flops / t / 1e9, "torch": torch.__version__,
                      "threads": threads}), flush=True)


if __name__ == "__main__":
    main()
