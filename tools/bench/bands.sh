#!/usr/bin/env bash
# Bands benchmark: per-k-point generalized eigen-solve time, HarmoSE (zhegvd through OpenBLAS,
# one BLAS thread) vs scipy.linalg.eigh(driver="gvd") on the very same H(k), S(k) matrices, for
# MoTe2 (57 orbitals, Tests/Fixtures/peer/deeph-dock/MoTe2) and a 2×2×1 supercell of the GPAW
# MoS2 2×2 fixture (656 orbitals). Prints medians, the scipy/HarmoSE ratio and the largest
# eigenvalue difference between the two.
# Usage: tools/bench/bands.sh   (after `swift build -c release`; `make bench` does both)
set -euo pipefail
cd "$(dirname "$0")/../.."
HARMOSE=${HARMOSE:-.build/release/harmose}
REPEATS=${REPEATS:-5}
[ -x "$HARMOSE" ] || { echo "build first: swift build -c release" >&2; exit 1; }
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run_case() { # name structure supercell kpoints
  local name=$1 structure=$2 supercell=$3 kpoints=$4
  local ours theirs
  ours=$("$HARMOSE" bench-bands "$structure" --supercell "$supercell" --kpoints "$kpoints" \
         --repeats "$REPEATS" --export "$work/$name.h5")
  theirs=$(python3 tools/bench_bands_scipy.py "$work/$name.h5" --repeats "$REPEATS")
  python3 - "$name" "$ours" "$theirs" <<'PY'
import json, sys
name, ours, theirs = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"{name}: {ours['orbitals']} orbitals, {ours['kpoints']} k-points x {ours['repeats']} repeats")
print(f"  HarmoSE solve  median {ours['median_solve_s']*1e3:9.3f} ms/k  (Bloch sum {ours['median_assembly_s']*1e3:.3f} ms/k)")
print(f"  scipy   solve  median {theirs['median_solve_s']*1e3:9.3f} ms/k  (scipy {theirs['scipy']})")
print(f"  ratio scipy/HarmoSE  {theirs['median_solve_s']/ours['median_solve_s']:.2f}")
print(f"  HarmoSE parallel run {ours['parallel_wall_per_k_s']*1e3:9.3f} ms/k wall (all cores, 1 BLAS thread each)")
print(f"  max |eigenvalue difference| {theirs['max_abs_eigenvalue_diff_eV']:.2e} eV")
PY
}

run_case MoTe2 Tests/Fixtures/peer/deeph-dock/MoTe2 1,1,1 16
run_case MoS2-4x4-supercell Tests/Fixtures/datasets/mos2-2x2-0000 2,2,1 4
