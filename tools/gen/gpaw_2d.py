#!/usr/bin/python3
"""Generate one strained, displaced 2D-crystal supercell with GPAW LCAO and write it in the
DeepH-dock layout of /work/shared/datasets/periodic-gpaw-pbe-dzp (POSCAR, info.json,
hamiltonian.h5, overlap.h5).

Recipe (the datasets' README, reproduced exactly so that 3x3 structures are comparable with the
shared 2x2 set): GPAW LCAO, PBE, dzp, h = 0.2 A, Fermi-Dirac 0.1 eV, pbc [1,1,0], 15 A cell
along z with the layer at z = 7.5 A; strain (xx, yy, xy) uniform in +-3 %, applied as
[[1+xx, xy/2], [xy/2, 1+yy]]; Gaussian displacement sigma = 0.07 A of every coordinate;
positions wrapped into the cell; atoms grouped by element (stable sort). Random numbers:
numpy default_rng(seed): 3 uniforms (strain) then N x 3 normals (displacements, in the
unsorted primitive-repeat order).

H(R), S(R): after the SCF, a fixed-density GPAW run on a Gamma-centred k grid that is large
enough for no R image to alias (from the basis-function and projector cut-offs) gives H(k), S(k)
(GPAW's own matrices, lower triangle filled as GPAW does); a discrete Fourier transform with
H(k) = sum_R exp(i 2 pi k.R) H(R) gives the blocks <i,0|H|j,R>, symmetrised so that
H(R,i,j) = H(-R,j,i)^T holds exactly. Blocks are kept where |S| > 1e-12 or |H| > 1e-9 eV.
Orbitals are in GPAW's order (per atom: basis-file shells; within a shell m = -l..l, p as y,z,x),
which is the layout's order, so no permutation is applied.

Check: the generalized eigenvalues rebuilt from the written (float32) blocks at the SCF
k-points are compared with GPAW's own diagonalisation of its converged Hamiltonian there; the
maximum deviation is recorded in info.json and the script fails if it exceeds --tolerance.

Must run with Debian's /usr/bin/python3 (packages gpaw, gpaw-data, python3-h5py).

Usage: tools/gen/gpaw_2d.py {graphene,hbn} {2,3} SEED OUT_DIR [--kmesh K] [--tolerance EV]
  OUT_DIR is the structure folder itself (e.g. .../dft/graphene-3x3-0000); it must not exist.
  It is written to OUT_DIR.partial-PID first and renamed whole; GPAW's logs go to --log-dir.
"""
import argparse
import json
import math
import os
import shutil
import sys
import time

import numpy as np

LATTICE_A = {'graphene': 2.46, 'hbn': 2.50}
PRIMITIVE_SYMBOLS = {'graphene': ['C', 'C'], 'hbn': ['B', 'N']}
# k-mesh per supercell size: 4x4 for 2x2 (the shared recipe); 3x3 has the same k density
# rounded up (4 * 2 / 3 = 2.67 -> 3).
DEFAULT_KMESH = {2: 4, 3: 3}
VACUUM_CELL_Z = 15.0
STRAIN_MAX = 0.03
DISPLACEMENT_SIGMA = 0.07
KEEP_S = 1e-12
KEEP_H = 1e-9


def build_structure(system, n, seed):
    from ase import Atoms
    a = LATTICE_A[system]
    cell = np.array([[a, 0.0, 0.0], [-a / 2, a * math.sqrt(3) / 2, 0.0], [0.0, 0.0, VACUUM_CELL_Z]])
    prim = Atoms(PRIMITIVE_SYMBOLS[system], scaled_positions=[(0, 0, 0.5), (1 / 3, 2 / 3, 0.5)],
                 cell=cell, pbc=[True, True, False])
    atoms = prim.repeat((n, n, 1))
    rng = np.random.default_rng(seed)
    strain = rng.uniform(-STRAIN_MAX, STRAIN_MAX, 3)
    xx, yy, xy = strain
    m = np.array([[1 + xx, xy / 2, 0.0], [xy / 2, 1 + yy, 0.0], [0.0, 0.0, 1.0]])
    atoms.set_cell(atoms.cell[:] @ m.T, scale_atoms=True)
    atoms.positions = atoms.positions + rng.normal(0.0, DISPLACEMENT_SIGMA, (len(atoms), 3))
    atoms.wrap()
    symbols = atoms.get_chemical_symbols()
    order = sorted(range(len(atoms)), key=lambda i: symbols[i])  # stable: grouped by element
    return atoms[order], strain


def poscar_text(atoms, title):
    lines = [title, '1.0']
    for v in atoms.cell[:]:
        lines.append('  ' + ' '.join('%.12f' % x for x in v))
    symbols = atoms.get_chemical_symbols()
    species = list(dict.fromkeys(symbols))
    lines.append(' '.join(species))
    lines.append(' '.join(str(symbols.count(s)) for s in species))
    lines.append('Cartesian')
    for p in atoms.positions:
        lines.append('  ' + ' '.join('%.12f' % x for x in p))
    return '\n'.join(lines) + '\n'


def full_hermitian(m):
    """GPAW fills only the lower triangle of its LCAO matrices (tri2full 'L')."""
    m = np.array(m)
    lower = np.tril(m)
    return lower + np.tril(m, -1).conj().T


def gpaw_k_matrices(calc):
    """H(k) in eV and S(k) for every k of calc's (unreduced) k grid, GPAW's own matrices."""
    from ase.units import Hartree
    wfs = calc.wfs
    assert wfs.nspins == 1 and wfs.kd.comm.size == 1 and wfs.gd.comm.size == 1
    nk = wfs.kd.nibzkpts
    nao = wfs.setups.nao
    H = np.zeros((nk, nao, nao), complex)
    S = np.zeros((nk, nao, nao), complex)
    for kpt in wfs.kpt_u:
        h = wfs.eigensolver.calculate_hamiltonian_matrix(calc.hamiltonian, wfs, kpt)
        H[kpt.k] = full_hermitian(h) * Hartree
        S[kpt.k] = full_hermitian(wfs.S_qMM[kpt.q])
    # GPAW's Bloch phase is exp(+i 2 pi k.sdisp) on <phi_mu, sdisp|H|phi_nu, 0>, i.e. its matrix
    # at k is ours (sum_R exp(i 2 pi k.R) <i,0|H|j,R>) at -k. Proven against the shared 2x2 set:
    # with +k, 220 of 540 blocks land on the wrong R.
    return -wfs.kd.ibzk_kc, H, S


def interaction_range(calc):
    """Largest distance at which two basis functions can couple through H or S:
    2 * (largest basis cut-off + largest projector cut-off) (PAW term <phi|p> dH <p|phi>)."""
    rphi = max(phit.get_cutoff() for s in calc.wfs.setups for phit in s.phit_j)
    rp = max(pt.get_cutoff() for s in calc.wfs.setups for pt in s.pt_j)
    from ase.units import Bohr
    return 2 * (rphi + rp) * Bohr


def needed_images(atoms, dmax):
    """Per in-plane direction, the largest |R_c| over atom pairs closer than dmax."""
    cell = atoms.cell[:]
    pos = atoms.positions
    reach = [int(math.ceil(dmax / np.linalg.norm(cell[c]) * 2)) + 2 for c in range(2)]
    rmax = [0, 0]
    for r1 in range(-reach[0], reach[0] + 1):
        for r2 in range(-reach[1], reach[1] + 1):
            shift = r1 * cell[0] + r2 * cell[1]
            d = np.linalg.norm(pos[None, :, :] + shift - pos[:, None, :], axis=-1)
            if (d < dmax).any():
                rmax[0] = max(rmax[0], abs(r1))
                rmax[1] = max(rmax[1], abs(r2))
    assert rmax[0] < reach[0] and rmax[1] < reach[1]
    return rmax


def fourier_to_blocks(k_kc, H_kMM, S_kMM, nk, orbital_slices):
    """H(R) = 1/N sum_k exp(-i 2 pi k.R) H(k) on a Gamma-centred nk[0] x nk[1] grid; R in the
    symmetric window |R_c| <= (nk_c - 1) / 2. Returns {R: (H(R), S(R))} real, symmetrised."""
    n = len(k_kc)
    assert n == nk[0] * nk[1]
    half = [(nk[0] - 1) // 2, (nk[1] - 1) // 2]
    out = {}
    for r1 in range(-half[0], half[0] + 1):
        for r2 in range(-half[1], half[1] + 1):
            R = np.array([r1, r2, 0])
            phase = np.exp(-2j * np.pi * (k_kc @ R))
            hr = np.einsum('k,kmn->mn', phase, H_kMM) / n
            sr = np.einsum('k,kmn->mn', phase, S_kMM) / n
            out[(r1, r2, 0)] = (hr, sr)
    imag = max(max(np.abs(h.imag).max(), np.abs(s.imag).max()) for h, s in out.values())
    asym = 0.0
    sym = {}
    for R, (h, s) in out.items():
        mR = (-R[0], -R[1], 0)
        h2, s2 = out[mR]
        asym = max(asym, np.abs(h.real - h2.real.T).max())
        sym[R] = (0.5 * (h.real + h2.real.T), 0.5 * (s.real + s2.real.T))
    return sym, imag, asym


def blocks_from_matrices(RM, orbital_slices):
    natoms = len(orbital_slices)
    pairs, hblocks, sblocks = [], [], []
    for R in sorted(RM):
        h, s = RM[R]
        for i in range(natoms):
            for j in range(natoms):
                hb = h[orbital_slices[i], orbital_slices[j]]
                sb = s[orbital_slices[i], orbital_slices[j]]
                if np.abs(sb).max() > KEEP_S or np.abs(hb).max() > KEEP_H:
                    pairs.append((R[0], R[1], R[2], i, j))
                    hblocks.append(hb)
                    sblocks.append(sb)
    return np.array(pairs, dtype=np.int64), hblocks, sblocks


def write_h5(path, pairs, blocks, dtype):
    import h5py
    shapes = np.array([b.shape for b in blocks], dtype=np.int64)
    bounds = np.zeros(len(blocks) + 1, dtype=np.int64)
    bounds[1:] = np.cumsum(shapes[:, 0] * shapes[:, 1])
    entries = np.concatenate([b.ravel() for b in blocks]).astype(dtype)
    opts = dict(compression='gzip', compression_opts=6, shuffle=True)
    with h5py.File(path, 'w') as f:
        f.create_dataset('atom_pairs', data=pairs, **opts)
        f.create_dataset('chunk_boundaries', data=bounds, **opts)
        f.create_dataset('chunk_shapes', data=shapes, **opts)
        f.create_dataset('entries', data=entries, **opts)


def read_h5_blocks(path):
    import h5py
    with h5py.File(path, 'r') as f:
        pairs = f['atom_pairs'][()]
        bounds = f['chunk_boundaries'][()]
        shapes = f['chunk_shapes'][()]
        entries = f['entries'][()].astype(np.float64)
    blocks = {}
    for p, b0, b1, sh in zip(pairs, bounds[:-1], bounds[1:], shapes):
        blocks[tuple(int(x) for x in p)] = entries[b0:b1].reshape(sh)
    return blocks


def k_matrix(blocks, offsets, nao, k_c):
    m = np.zeros((nao, nao), complex)
    for (r1, r2, r3, i, j), b in blocks.items():
        ph = np.exp(2j * np.pi * (k_c[0] * r1 + k_c[1] * r2 + k_c[2] * r3))
        m[offsets[i]:offsets[i] + b.shape[0], offsets[j]:offsets[j] + b.shape[1]] += ph * b
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('system', choices=sorted(LATTICE_A))
    ap.add_argument('size', type=int, choices=[2, 3])
    ap.add_argument('seed', type=int)
    ap.add_argument('out_dir')
    ap.add_argument('--kmesh', type=int, default=None, help='SCF k-mesh K (KxKx1); default 4 for 2x2, 3 for 3x3')
    ap.add_argument('--dtype', choices=['float32', 'float64'], default='float32',
                    help='entries dtype (float32 as in the shared 2x2 set; float64 for exact files)')
    ap.add_argument('--tolerance', type=float, default=1e-6,
                    help='largest allowed |eigenvalue from the float64 blocks - GPAW eigenvalue| in eV '
                         '(the extraction check)')
    ap.add_argument('--written-tolerance', type=float, default=2e-5,
                    help='largest allowed |eigenvalue from the written blocks - GPAW eigenvalue| in eV '
                         '(float32 rounding of entries, ~1e-7 relative, moves eigenvalues by a few ueV)')
    ap.add_argument('--log-dir', default=None,
                    help="where GPAW's text logs go (default: OUT_DIR/../../logs, beside dft/)")
    args = ap.parse_args()

    import scipy.linalg
    from gpaw import GPAW, FermiDirac, __version__ as gpaw_version

    out_dir = os.path.abspath(args.out_dir)
    if os.path.exists(out_dir):
        sys.exit(f'{out_dir}: exists; refusing to overwrite')
    parent = os.path.dirname(out_dir)
    if not os.path.isdir(parent):
        sys.exit(f'{parent}: no such directory')
    kmesh = args.kmesh or DEFAULT_KMESH[args.size]
    tmp = f'{out_dir}.partial-{os.getpid()}'
    os.mkdir(tmp)
    try:
        atoms, strain = build_structure(args.system, args.size, args.seed)
        title = f'{args.system} PBE/dzp GPAW-LCAO seed={args.seed}'
        common = dict(mode='lcao', basis='dzp', xc='PBE', h=0.2,
                      occupations=FermiDirac(0.1))
        t0 = time.time()
        calc = GPAW(kpts={'size': (kmesh, kmesh, 1)}, txt=os.path.join(tmp, 'gpaw-scf.txt'), **common)
        atoms.calc = calc
        atoms.get_potential_energy()
        scf_seconds = time.time() - t0
        fermi = float(calc.get_fermi_level())
        nelec = calc.wfs.setups.nvalence - calc.parameters.charge

        # orbital layout per atom
        orbital_map = {}
        nao_a = []
        for sym, setup in zip(atoms.get_chemical_symbols(), calc.wfs.setups):
            ls = [phit.get_angular_momentum_number() for phit in setup.phit_j]
            assert sum(2 * l + 1 for l in ls) == setup.nao
            orbital_map.setdefault(sym, ls)
            assert orbital_map[sym] == ls
            nao_a.append(setup.nao)
        offsets = np.concatenate([[0], np.cumsum(nao_a)])
        slices = [slice(int(offsets[a]), int(offsets[a + 1])) for a in range(len(atoms))]
        nao = int(offsets[-1])

        # GPAW's own eigenvalues of its converged Hamiltonian at the SCF k-points: one more
        # diagonalisation with the final (mixed-density) Hamiltonian, the one written below.
        last_scf_eps = [np.array(calc.get_eigenvalues(kpt=k), copy=True) for k in range(calc.wfs.kd.nibzkpts)]
        calc.wfs.eigensolver.iterate(calc.hamiltonian, calc.wfs)
        from ase.units import Hartree
        scf_k = calc.wfs.kd.ibzk_kc.copy()
        gpaw_eps = [None] * len(scf_k)
        for kpt in calc.wfs.kpt_u:
            gpaw_eps[kpt.k] = kpt.eps_n.copy() * Hartree

        # H(k), S(k) on an alias-free Gamma-centred grid at fixed density
        dmax = interaction_range(calc)
        rmax = needed_images(atoms, dmax)
        nk = [2 * rmax[0] + 1, 2 * rmax[1] + 1]
        t1 = time.time()
        calc_k = calc.fixed_density(kpts={'size': (nk[0], nk[1], 1), 'gamma': True},
                                    symmetry={'point_group': False, 'time_reversal': False},
                                    txt=os.path.join(tmp, 'gpaw-hr.txt'))
        k_kc, H_k, S_k = gpaw_k_matrices(calc_k)
        RM, imag, asym = fourier_to_blocks(k_kc, H_k, S_k, nk, slices)
        pairs, hblocks, sblocks = blocks_from_matrices(RM, slices)
        # pairs closer than dmax must all be kept, and nothing beyond dmax may carry weight
        # (otherwise the grid would alias)
        cell = atoms.cell[:]
        far = 0.0
        for R, (h, s) in RM.items():
            shift = R[0] * cell[0] + R[1] * cell[1]
            for i in range(len(atoms)):
                for j in range(len(atoms)):
                    d = np.linalg.norm(atoms.positions[j] + shift - atoms.positions[i])
                    if d >= dmax:
                        far = max(far, np.abs(h[slices[i], slices[j]]).max(),
                                  np.abs(s[slices[i], slices[j]]).max())
        hr_seconds = time.time() - t1

        write_h5(os.path.join(tmp, 'hamiltonian.h5'), pairs, hblocks, args.dtype)
        write_h5(os.path.join(tmp, 'overlap.h5'), pairs, sblocks, args.dtype)
        with open(os.path.join(tmp, 'POSCAR'), 'w') as f:
            f.write(poscar_text(atoms, title))

        # eigenvalue check from the written files
        hb = read_h5_blocks(os.path.join(tmp, 'hamiltonian.h5'))
        sb = read_h5_blocks(os.path.join(tmp, 'overlap.h5'))
        hb64 = {tuple(int(x) for x in p): b for p, b in zip(pairs, hblocks)}
        sb64 = {tuple(int(x) for x in p): b for p, b in zip(pairs, sblocks)}
        dev32 = dev64 = dev_last = 0.0
        smin = math.inf
        for k, k_c in enumerate(scf_k):
            e32 = scipy.linalg.eigh(k_matrix(hb, offsets, nao, k_c), k_matrix(sb, offsets, nao, k_c),
                                    eigvals_only=True)
            S64 = k_matrix(sb64, offsets, nao, k_c)
            e64 = scipy.linalg.eigh(k_matrix(hb64, offsets, nao, k_c), S64, eigvals_only=True)
            smin = min(smin, float(np.linalg.eigvalsh(S64).min()))
            ref = gpaw_eps[k]
            nb = len(ref)
            dev32 = max(dev32, float(np.abs(e32[:nb] - ref).max()))
            dev64 = max(dev64, float(np.abs(e64[:nb] - ref).max()))
            dev_last = max(dev_last, float(np.abs(ref - last_scf_eps[k]).max()))

        info = {
            'atoms_quantity': len(atoms),
            'orbits_quantity': nao,
            'orthogonal_basis': False,
            'spinful': False,
            'fermi_energy_eV': fermi,
            'elements_orbital_map': orbital_map,
            'occupation': int(round(nelec)),
            'code': f'gpaw-{gpaw_version.rsplit(".", 1)[0] if gpaw_version.count(".") > 1 else gpaw_version} lcao',
            'xc': 'PBE',
            'basis': 'dzp',
            'grid_spacing_A': 0.2,
            'scf_kmesh': [kmesh, kmesh, 1],
            'strain_xx_yy_xy': [float(x) for x in strain],
            'seed': args.seed,
            'scf_seconds': round(scf_seconds, 1),
            'setups': {},
            'hr_kgrid': [nk[0], nk[1], 1],
            'hr_seconds': round(hr_seconds, 1),
            'interaction_range_A': round(dmax, 4),
            'eigenvalue_check': {
                'kpoints': 'SCF irreducible k-points',
                'reference': 'GPAW LCAO diagonalisation of its converged Hamiltonian',
                'max_abs_dev_eV_written_entries': dev32,
                'written_dtype': args.dtype,
                'max_abs_dev_eV_float64_blocks': dev64,
                'max_abs_dev_eV_last_scf_iteration': dev_last,
                'fourier_max_imag': float(imag),
                'fourier_max_asymmetry_eV': float(asym),
                'max_abs_beyond_range': float(far),
            },
            'overlap_min_eigenvalue_scf_k': smin,
        }
        with open(os.path.join(tmp, 'info.json'), 'w') as f:
            json.dump(info, f)
        print(json.dumps({'out': out_dir, 'blocks': len(pairs), 'nao': nao, 'scf_seconds': info['scf_seconds'],
                          'hr_seconds': info['hr_seconds'], 'hr_kgrid': nk, **info['eigenvalue_check'],
                          'overlap_min_eigenvalue_scf_k': smin}))
        if not dev64 <= args.tolerance:
            raise SystemExit(f'{out_dir}: eigenvalues from the float64 blocks deviate from GPAW by '
                             f'{dev64:.3g} eV > {args.tolerance:g} eV; nothing written')
        if not dev32 <= args.written_tolerance:
            raise SystemExit(f'{out_dir}: eigenvalues from the written blocks deviate from GPAW by '
                             f'{dev32:.3g} eV > {args.written_tolerance:g} eV; nothing written')
        if far > KEEP_H:
            raise SystemExit(f'{out_dir}: H/S weight {far:.3g} beyond the interaction range: '
                             f'k grid {nk} aliases; nothing written')
        log_dir = args.log_dir or os.path.join(os.path.dirname(parent), 'logs')
        os.makedirs(log_dir, exist_ok=True)
        for name in ('gpaw-scf.txt', 'gpaw-hr.txt'):
            os.replace(os.path.join(tmp, name),
                       os.path.join(log_dir, f'{os.path.basename(out_dir)}.{name}'))
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


if __name__ == '__main__':
    main()
