"""Writes Sources/Basis/Resources/def2-svp.nw: def2-SVP for H, C, N, O in NWChem format.

The numbers are PySCF's own copy of the Basis Set Exchange def2-SVP (pyscf/gto/basis/def2-svp.dat,
EMSL/BSE export; F. Weigend and R. Ahlrichs, PCCP 7, 3297 (2005)), the file the
molecules-pbe-def2svp dataset was computed with.  Run in a venv with `pip install pyscf==2.14.0`:

    python tools/basis/extract_def2svp.py > Sources/Basis/Resources/def2-svp.nw
"""
import os
import sys

import pyscf

ELEMENTS = ["H", "C", "N", "O"]
path = os.path.join(os.path.dirname(pyscf.__file__), "gto", "basis", "def2-svp.dat")
lines = open(path).read().splitlines()
out = [
    "# def2-SVP (F. Weigend, R. Ahlrichs, Phys. Chem. Chem. Phys. 7, 3297 (2005)) for "
    + " ".join(ELEMENTS) + ",",
    f"# NWChem format, extracted verbatim from PySCF {pyscf.__version__} pyscf/gto/basis/def2-svp.dat",
    "# (Basis Set Exchange export) by tools/basis/extract_def2svp.py.",
    "BASIS \"ao basis\" PRINT",
]
keep = False
for line in lines:
    words = line.split()
    if words and words[0].isalpha() and len(words) == 2 and words[1] in "SPDFGH":
        keep = words[0] in ELEMENTS
    elif line.startswith("#") or line.startswith("END") or line.startswith("BASIS"):
        keep = False
    if keep:
        out.append(line.rstrip())
out.append("END")
sys.stdout.write("\n".join(out) + "\n")
