#!/usr/bin/env python3
"""SciPy side of tools/bench/sparse.sh: the K eigenvalues nearest the target of H(k)x = eps S(k)x
with scipy.sparse.linalg.eigsh in shift-invert mode (SuperLU of H - sigma S, ARPACK), on the exact
CSR matrices `harmose bench-sparse --export` wrote. Prints one JSON line: median seconds, peak
memory of this process, and the largest difference from HarmoSE's eigenvalues.
Needs numpy, scipy, h5py (own venv: python3 -m venv tools/.venv-sparse; pip install numpy scipy h5py)."""
import argparse, json, resource, statistics, time

import h5py
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh

ap = argparse.ArgumentParser()
ap.add_argument("file")
ap.add_argument("--repeats", type=int, default=1)
a = ap.parse_args()
with h5py.File(a.file, "r") as f:
    indptr, indices = f["indptr"][()], f["indices"][()]
    h = f["h"][()]; s = f["s"][()]
    target = float(f["target_eV"][()]); ours = f["eigenvalues"][()]
n = len(indptr) - 1
H = sp.csr_matrix((h[:, 0] + 1j * h[:, 1], indices, indptr), shape=(n, n))
S = sp.csr_matrix((s[:, 0] + 1j * s[:, 1], indices, indptr), shape=(n, n))
del h, s
k = len(ours)
times, vals = [], None
for _ in range(a.repeats):
    t = time.perf_counter()
    vals = eigsh(H, k=k, M=S, sigma=target, which="LM", return_eigenvectors=False)
    times.append(time.perf_counter() - t)
vals = np.sort(vals.real)
print(json.dumps({
    "orbitals": n, "k": k, "median_s": statistics.median(times), "times_s": times,
    "peak_rss_GiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024,
    "max_abs_difference_vs_harmose_eV": float(np.max(np.abs(vals - np.sort(ours)))),
}))
