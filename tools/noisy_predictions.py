#!/usr/bin/env python3
"""Synthetic "predictions" for benchmarking and checking `harmose eval`: every DeepH-dock
structure folder under SRC (any depth) gets DST/<relative path>/hamiltonian_pred.h5 = its DFT
hamiltonian.h5 with independent Gaussian noise of SIGMA eV added to every entry (seeded).

    python3 tools/noisy_predictions.py SRC DST [--sigma 0.001] [--seed 0] [--limit N]
"""
import argparse
import os

import h5py
import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--sigma", type=float, default=0.001, help="noise standard deviation in eV")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="at most this many structures (0: all)")
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    folders = []
    for root, dirs, files in os.walk(a.src, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if "POSCAR" in files and "hamiltonian.h5" in files:
            folders.append(os.path.relpath(root, a.src))
            dirs[:] = []
    folders.sort()
    if a.limit:
        folders = folders[: a.limit]
    for rel in folders:
        out = os.path.join(a.dst, rel)
        os.makedirs(out, exist_ok=True)
        with h5py.File(os.path.join(a.src, rel, "hamiltonian.h5"), "r") as f, \
                h5py.File(os.path.join(out, "hamiltonian_pred.h5"), "w") as g:
            for key in f.keys():
                data = f[key][()]
                if key == "entries":
                    data = data.astype(np.float64) + rng.normal(0.0, a.sigma, data.shape)
                g[key] = data
    print(f"{len(folders)} predictions with sigma {a.sigma} eV in {a.dst}")


if __name__ == "__main__":
    main()
