#!/usr/bin/env python3
"""Why some bands are fragile: for each DeepH-dock structure folder given, solves the DFT
generalized eigenproblem at Γ, M and K (2D hexagonal fractional coordinates; filtered overlap as
`harmose eval` does, default threshold 1e-3) and prints, for the levels within WINDOW eV of E_F:

  e - E_F      the level (eV)
  kappa        ||c||^2 of its S-normalised coefficient vector. A random H error of entry size
               sigma moves the level by ~ sigma * kappa (first order: d eps = c^H dH c), so kappa
               is the level's amplification of H errors; an orthonormal basis has kappa = 1.
  near-null    the weight of the level on the S(k) eigen-directions with eigenvalue < 1e-2
               (Lowdin weight: |<u_j|S^{1/2}c>|^2 summed over those j).
  shells       Mulliken weight by shell kind: first-zeta (s, p), second-zeta (s', p'), d.

    tools/.venv-h5/bin/python tools/band_sensitivity.py FOLDER... [--threshold 1e-3] [--window 3]

Needs h5py and numpy (python3 -m venv tools/.venv-h5 && tools/.venv-h5/bin/pip install h5py numpy).
"""
import argparse
import json
import os

import h5py
import numpy as np


def read_operator(path):
    f = h5py.File(path, "r")
    pairs = f["atom_pairs"][:]
    bounds = f["chunk_boundaries"][:]
    shapes = f["chunk_shapes"][:]
    entries = f["entries"][:].astype(np.float64)
    return [(tuple(p[:3]), int(p[3]), int(p[4]), entries[bounds[b]:bounds[b + 1]].reshape(shapes[b])) for b, p in enumerate(pairs)]


def bloch(op, offsets, n, k):
    m = np.zeros((n, n), complex)
    for r, i, j, block in op:
        m[offsets[i]:offsets[i] + block.shape[0], offsets[j]:offsets[j] + block.shape[1]] += block * np.exp(2j * np.pi * np.dot(k, r))
    return 0.5 * (m + m.conj().T)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+")
    p.add_argument("--threshold", type=float, default=1e-3)
    p.add_argument("--window", type=float, default=3.0)
    a = p.parse_args()
    for folder in a.folders:
        info = json.load(open(os.path.join(folder, "info.json")))
        poscar = open(os.path.join(folder, "POSCAR")).read().split("\n")
        species = poscar[5].split()
        counts = [int(x) for x in poscar[6].split()]
        shells = []  # per orbital: kind label
        sizes = []
        for sym, cnt in zip(species, counts):
            ls = info["elements_orbital_map"][sym]
            seen = {}
            labels = []
            for l in ls:
                seen[l] = seen.get(l, 0) + 1
                kind = "d" if l == 2 else ("spd"[l] + ("" if seen[l] == 1 else "'"))
                labels += [kind] * (2 * l + 1)
            for _ in range(cnt):
                shells += labels
                sizes.append(len(labels))
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        n = sum(sizes)
        h = read_operator(os.path.join(folder, "hamiltonian.h5"))
        s = read_operator(os.path.join(folder, "overlap.h5"))
        ef = info["fermi_energy_eV"]
        kinds = sorted(set(shells))
        print(f"== {os.path.basename(os.path.realpath(folder))}  E_F {ef:.3f} eV, {n} orbitals")
        for label, k in [("G", (0, 0, 0)), ("M", (0.5, 0, 0)), ("K", (1 / 3, 1 / 3, 0))]:
            hk, sk = bloch(h, offsets, n, np.array(k)), bloch(s, offsets, n, np.array(k))
            sv, su = np.linalg.eigh(sk)
            keep = sv > a.threshold
            x = su[:, keep] / np.sqrt(sv[keep])
            e, y = np.linalg.eigh(x.conj().T @ hk @ x)
            c = x @ y
            near = sv < 1e-2
            print(f"  {label}: S eigenvalues min {sv[0]:.1e}, {np.sum(~keep)} dropped, {np.sum(near)} below 1e-2")
            for q in np.where(np.abs(e - ef) <= a.window)[0]:
                v = c[:, q]
                kappa = float(np.vdot(v, v).real)
                lowdin = su.conj().T @ (sk @ v) / np.sqrt(np.maximum(sv, 1e-30))  # S^{1/2} v in S's eigenbasis
                nn = float(np.sum(np.abs(lowdin[near]) ** 2))
                mull = (v.conj() * (sk @ v)).real
                w = {kd: float(sum(mull[i] for i in range(n) if shells[i] == kd)) for kd in kinds}
                print(f"    {e[q] - ef:+7.3f} eV  kappa {kappa:7.1f}  near-null {nn:.3f}  " + " ".join(f"{kd} {w[kd]:+.2f}" for kd in kinds))


if __name__ == "__main__":
    main()
