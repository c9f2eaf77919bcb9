#!/usr/bin/env python3
"""scipy side of the band benchmark: times scipy.linalg.eigh(H, S, eigvals_only=True) on the exact
H(k), S(k) that `harmose bench-bands --export FILE` wrote, and checks that the eigenvalues agree
with HarmoSE's. Run with OPENBLAS_NUM_THREADS=1 (and OMP/MKL likewise) so both sides use one
BLAS thread per k-point.

Usage: tools/bench_bands_scipy.py MATRICES.h5 [--repeats 5]
Prints one JSON line: orbitals, kpoints, median_solve_s, max_abs_eigenvalue_diff_eV.
"""
import argparse
import json
import time

import h5py
import numpy as np
import scipy.linalg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("matrices")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with h5py.File(args.matrices, "r") as f:
        h = f["h"][()]
        s = f["s"][()]
        ours = f["eigenvalues"][()]
    H = h[..., 0] + 1j * h[..., 1]
    S = s[..., 0] + 1j * s[..., 1]
    times = []
    worst = 0.0
    for r in range(args.repeats):
        for q in range(H.shape[0]):
            t0 = time.perf_counter()
            w = scipy.linalg.eigh(H[q], S[q], eigvals_only=True, driver="gvd")
            times.append(time.perf_counter() - t0)
            if r == 0:
                worst = max(worst, float(np.max(np.abs(w - ours[q]))))
    print(json.dumps({
        "orbitals": int(H.shape[1]),
        "kpoints": int(H.shape[0]),
        "median_solve_s": float(np.median(times)),
        "max_abs_eigenvalue_diff_eV": worst,
        "scipy": scipy.__version__,
    }, sort_keys=True))


if __name__ == "__main__":
    main()
