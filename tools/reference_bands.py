#!/usr/bin/env python3
"""Independent reference band energies for the Bands tests (numpy/scipy, not HarmoSE code).

Reads a DeepH-dock folder (POSCAR, info.json, hamiltonian.h5, overlap.h5, K_PATH), builds
H(k) = sum_R exp(i 2 pi k.R) H(R) and the same for S, with blocks <i,0|H|j,R> keyed by
atom_pairs rows (Rx, Ry, Rz, i, j) (0-based atoms), and solves H c = e S c with
scipy.linalg.eigh. Writes absolute eigenvalues (eV, ascending) at every `stride`-th k-point of
the K_PATH expansion (N points per segment, endpoints included, as DeepH-dock does).

Usage: tools/reference_bands.py DOCK_DIR OUT.json [--stride 10]
"""
import argparse
import json
import os

import h5py
import numpy as np
import scipy.linalg


def read_poscar_species(path):
    lines = open(path).read().splitlines()
    scale = float(lines[1].split()[0])
    lattice = np.array([[float(x) for x in lines[i].split()[:3]] for i in (2, 3, 4)]) * scale
    names = lines[5].split()
    counts = [int(x) for x in lines[6].split()]
    species = [n for n, c in zip(names, counts) for _ in range(c)]
    return lattice, species


def read_blocks(path):
    with h5py.File(path, "r") as f:
        pairs = f["atom_pairs"][()]
        bounds = f["chunk_boundaries"][()]
        shapes = f["chunk_shapes"][()]
        entries = f["entries"][()]
    for p, (a, b), (r, c) in zip(pairs, zip(bounds[:-1], bounds[1:]), shapes):
        yield tuple(int(x) for x in p[:3]), int(p[3]), int(p[4]), entries[a:b].reshape(r, c)


def bloch(blocks, offsets, n, k):
    m = np.zeros((n, n), dtype=complex)
    for R, i, j, block in blocks:
        phase = np.exp(2j * np.pi * np.dot(k, R))
        r, c = block.shape
        m[offsets[i]:offsets[i] + r, offsets[j]:offsets[j] + c] += phase * block
    return m


def kpath_points(path):
    points = []
    for line in open(path):
        t = line.split()
        if len(t) != 9:
            continue
        n = int(t[0])
        a = np.array([float(x) for x in t[1:4]])
        b = np.array([float(x) for x in t[4:7]])
        points.extend(a + (b - a) * (i / (n - 1)) for i in range(n))
    return points


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dock_dir")
    ap.add_argument("out")
    ap.add_argument("--stride", type=int, default=10)
    args = ap.parse_args()
    info = json.load(open(os.path.join(args.dock_dir, "info.json")))
    _, species = read_poscar_species(os.path.join(args.dock_dir, "POSCAR"))
    per_species = {el: sum(2 * l + 1 for l in ls) for el, ls in info["elements_orbital_map"].items()}
    counts = [per_species[s] for s in species]
    offsets = np.concatenate([[0], np.cumsum(counts)])[:-1]
    n = int(sum(counts))
    H = list(read_blocks(os.path.join(args.dock_dir, "hamiltonian.h5")))
    S = list(read_blocks(os.path.join(args.dock_dir, "overlap.h5")))
    ks = kpath_points(os.path.join(args.dock_dir, "K_PATH"))
    indices = sorted(set(list(range(0, len(ks), args.stride)) + [len(ks) - 1]))
    rows = []
    for q in indices:
        k = ks[q]
        e = scipy.linalg.eigh(bloch(H, offsets, n, k), bloch(S, offsets, n, k), eigvals_only=True)
        rows.append({"index": q, "k": [float(x) for x in k], "energies_eV": [float(x) for x in e]})
    json.dump({
        "source": os.path.relpath(args.dock_dir),
        "method": "scipy.linalg.eigh(H(k), S(k)), H(k) = sum_R exp(i 2 pi k.R) H(R); absolute eV",
        "orbitals": n,
        "kpoints_total": len(ks),
        "points": rows,
    }, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
