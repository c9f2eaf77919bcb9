#!/usr/bin/python3
"""Compare two DeepH-dock structure folders block by block (the generator's reproduction check).

Prints JSON: identical POSCAR text, identical atom_pairs sets, max and mean |dH| (eV) and |dS| over
common blocks, how many entries differ at all, and info.json keys present in only one folder.

Usage: tools/gen/compare_dock.py MINE_DIR REFERENCE_DIR
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpaw_2d import read_h5_blocks  # noqa: E402


def main():
    mine, ref = sys.argv[1], sys.argv[2]
    out = {'poscar_identical': open(os.path.join(mine, 'POSCAR')).read() == open(os.path.join(ref, 'POSCAR')).read()}
    for name, key in (('hamiltonian.h5', 'H'), ('overlap.h5', 'S')):
        a = read_h5_blocks(os.path.join(mine, name))
        b = read_h5_blocks(os.path.join(ref, name))
        common = set(a) & set(b)
        out[f'{key}_blocks'] = [len(a), len(b), len(common)]
        out[f'{key}_max_abs_diff'] = max(float(np.abs(a[p] - b[p]).max()) for p in common)
        out[f'{key}_mean_abs_diff'] = float(sum(float(np.abs(a[p] - b[p]).sum()) for p in common)
                                            / sum(a[p].size for p in common))
        out[f'{key}_entries_differing'] = int(sum(int((a[p] != b[p]).sum()) for p in common))
        out[f'{key}_entries'] = int(sum(a[p].size for p in common))
        out[f'{key}_max_abs'] = max(float(np.abs(b[p]).max()) for p in common)
    ia = json.load(open(os.path.join(mine, 'info.json')))
    ib = json.load(open(os.path.join(ref, 'info.json')))
    out['info_keys_only_mine'] = sorted(set(ia) - set(ib))
    out['info_keys_only_ref'] = sorted(set(ib) - set(ia))
    out['info_differing'] = {k: [ia[k], ib[k]] for k in set(ia) & set(ib) if ia[k] != ib[k]}
    print(json.dumps(out, indent=1))


if __name__ == '__main__':
    main()
