#!/usr/bin/env bash
# Bands benchmark: per-k-point generalized eigen-solve time, HarmoSE (zhegvd through OpenBLAS,
# one BLAS thread) vs scipy.linalg.eigh(driver="gvd") on the very same H(k), S(k) matrices, for
# MoTe2 (57 orbitals, Tests/Fixtures/peer/deeph-dock/MoTe2) and a 2×2×1 supercell of the GPAW
# MoS2 2×2 fixture (656 orbitals). Prints medians, the scipy/HarmoSE ratio and the largest
# eigenvalue difference between the two.
# Usage: [REPEATS=5 ROUNDS=3] tools/bench/bands.sh   (after `swift build -c release`; `make bench` does both)
set -euo pipefail
cd "$(dirname "$0")/../.."
HARMOSE=${HARMOSE:-.build/release/harmose}
REPEATS=${REPEATS:-5}
ROUNDS=${ROUNDS:-3}
[ -x "$HARMOSE" ] || { echo "build first: swift build -c release" >&2; exit 1; }
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run_case() { # name structure supercell kpoints
  # The sides alternate ROUNDS times so that load from other processes hits them alike; each
  # side's figure is the median of its per-round medians. HarmoSE runs twice per round: with the
  # CPU kernels Debian's OpenBLAS 0.3.21 picks by itself, and with OPENBLAS_CORETYPE=Haswell
  # (0.3.21 does not recognise this machine's CPU model and falls back to "Prescott" kernels).
  local name=$1 structure=$2 supercell=$3 kpoints=$4
  local ours=() tuned=() theirs=()
  local args=(bench-bands "$structure" --supercell "$supercell" --kpoints "$kpoints" --repeats "$REPEATS")
  for _ in $(seq "$ROUNDS"); do
    ours+=("$("$HARMOSE" "${args[@]}" --export "$work/$name.h5")")
    tuned+=("$(OPENBLAS_CORETYPE=Haswell "$HARMOSE" "${args[@]}")")
    theirs+=("$(python3 tools/bench_bands_scipy.py "$work/$name.h5" --repeats "$REPEATS")")
  done
  python3 - "$name" "$(printf '%s\n' "${ours[@]}")" "$(printf '%s\n' "${tuned[@]}")" "$(printf '%s\n' "${theirs[@]}")" <<'PY'
import json, statistics, sys
name = sys.argv[1]
rows = [[json.loads(l) for l in arg.splitlines() if l.strip()] for arg in sys.argv[2:5]]
ours, tuned, theirs = rows
med = lambda rs, key: statistics.median(r[key] for r in rs)
o, h, t = med(ours, "median_solve_s"), med(tuned, "median_solve_s"), med(theirs, "median_solve_s")
print(f"{name}: {ours[0]['orbitals']} orbitals, {ours[0]['kpoints']} k-points x {ours[0]['repeats']} repeats x {len(ours)} rounds")
print(f"  HarmoSE solve (OpenBLAS default kernels) median {o*1e3:9.3f} ms/k   ratio scipy/HarmoSE {t/o:.2f}")
print(f"  HarmoSE solve (OPENBLAS_CORETYPE=Haswell) median {h*1e3:9.3f} ms/k   ratio scipy/HarmoSE {t/h:.2f}")
print(f"  scipy   solve                             median {t*1e3:9.3f} ms/k   (scipy {theirs[0]['scipy']})")
print(f"  Bloch sum {med(ours, 'median_assembly_s')*1e3:.3f} ms/k")
print(f"  whole run, {ours[0]['workers']} concurrent k-points: {med(ours, 'parallel_wall_per_k_s')*1e3:.3f} ms/k wall (default), "
      f"{med(tuned, 'parallel_wall_per_k_s')*1e3:.3f} ms/k (Haswell)")
print(f"  max |eigenvalue difference| vs scipy {max(r['max_abs_eigenvalue_diff_eV'] for r in theirs):.2e} eV")
PY
}

run_case MoTe2 Tests/Fixtures/peer/deeph-dock/MoTe2 1,1,1 16
run_case MoS2-4x4-supercell Tests/Fixtures/datasets/mos2-2x2-0000 2,2,1 4
