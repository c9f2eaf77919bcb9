#!/usr/bin/env python3
"""Writes a large 2D structure folder for `harmose overlap` / `harmose predict` (DeepH-dock layout:
POSCAR with atoms grouped by element, info.json naming the GPAW dzp basis so S is computed from the
basis). Python standard library only.

Materials (hexagonal 2-atom cell, 20 Å vacuum along z, GPAW dzp shells [s p s p d] per atom):
  graphene      a = 2.46 Å, C/C
  hbn           a = 2.50 Å, B/N
  graphene-hbn  lateral heterostructure: the left half of the supercell graphene, the right half
                hBN (a = 2.48 Å, the average), the kind of in-plane interface people model at scale

Options: --size N M (N×M cells, 2NM atoms before vacancies), --vacancies f (fraction of atoms
removed at random), --strain exx eyy exy (applied to cell and positions), --seed.

Examples:
  python3 tools/large/make_2d_supercell.py graphene --size 71 70 --out /tmp/graphene-9940
  python3 tools/large/make_2d_supercell.py graphene-hbn --size 52 52 --vacancies 0.005 \\
      --strain 0.015 0 0 --seed 7 --out examples/large/gr-hbn-5380
"""
import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile

SHELLS = [0, 1, 0, 1, 2]          # GPAW dzp for B, C, N: s p s p d (13 orbitals)
LATTICE = {"graphene": 2.46, "hbn": 2.50, "graphene-hbn": 2.48}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("material", choices=sorted(LATTICE))
    p.add_argument("--size", nargs=2, type=int, required=True, metavar=("N", "M"))
    p.add_argument("--vacancies", type=float, default=0.0)
    p.add_argument("--strain", nargs=3, type=float, default=[0.0, 0.0, 0.0], metavar=("EXX", "EYY", "EXY"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vacuum", type=float, default=20.0)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    n, m = a.size
    if n < 1 or m < 1:
        sys.exit("error: --size: N and M must be ≥ 1")
    if not 0 <= a.vacancies < 0.5:
        sys.exit("error: --vacancies: fraction must be in [0, 0.5)")
    rng = random.Random(a.seed)
    lat = LATTICE[a.material]
    a1 = (lat, 0.0)
    a2 = (lat / 2, lat * math.sqrt(3) / 2)
    atoms = []   # (symbol, x, y)
    for i in range(n):
        for j in range(m):
            for k, frac in enumerate(((1 / 3, 1 / 3), (2 / 3, 2 / 3))):
                u, v = i + frac[0], j + frac[1]
                x, y = u * a1[0] + v * a2[0], u * a1[1] + v * a2[1]
                if a.material == "graphene":
                    sym = "C"
                elif a.material == "hbn":
                    sym = "B" if k == 0 else "N"
                else:
                    sym = "C" if u < n / 2 else ("B" if k == 0 else "N")
                atoms.append((sym, x, y))
    removed = int(round(a.vacancies * len(atoms)))
    for idx in sorted(rng.sample(range(len(atoms)), removed), reverse=True):
        del atoms[idx]
    exx, eyy, exy = a.strain
    def strain(x, y):
        return x * (1 + exx) + y * exy, x * exy + y * (1 + eyy)
    A1 = strain(n * a1[0], n * a1[1])
    A2 = strain(m * a2[0], m * a2[1])
    z = a.vacuum / 2
    order = [s for s in ("C", "B", "N") if any(t[0] == s for t in atoms)]
    grouped = [t for s in order for t in atoms if t[0] == s]
    lines = [f"{a.material} {n}x{m}, {removed} vacancies, strain {exx} {eyy} {exy}, seed {a.seed}", "1.0",
             f"{A1[0]:.10f} {A1[1]:.10f} 0.0", f"{A2[0]:.10f} {A2[1]:.10f} 0.0", f"0.0 0.0 {a.vacuum:.10f}",
             " ".join(order), " ".join(str(sum(1 for t in grouped if t[0] == s)) for s in order), "Cartesian"]
    for s, x, y in grouped:
        X, Y = strain(x, y)
        lines.append(f"{X:.10f} {Y:.10f} {z:.10f}")
    info = {"atoms_quantity": len(grouped), "orbits_quantity": 13 * len(grouped), "orthogonal_basis": False,
            "spinful": False, "fermi_energy_eV": None, "elements_orbital_map": {s: SHELLS for s in order},
            "code": "gpaw-22.8 lcao", "xc": "PBE", "basis": "dzp",
            "generator": {"material": a.material, "size": [n, m], "vacancies": removed, "strain_xx_yy_xy": [exx, eyy, exy], "seed": a.seed}}
    parent = os.path.dirname(os.path.abspath(a.out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".make2d-")
    with open(os.path.join(tmp, "POSCAR"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(tmp, "info.json"), "w") as f:
        json.dump(info, f)
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.rename(tmp, a.out)
    print(f"{a.out}: {len(grouped)} atoms ({', '.join(order)}), {13 * len(grouped)} orbitals")


if __name__ == "__main__":
    main()
