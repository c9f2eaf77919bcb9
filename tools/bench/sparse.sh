#!/usr/bin/env bash
# Sparse bands / KPM benchmark (issue #16): per-k-point time and peak memory of the shift-invert
# solver for the 40 eigenvalues nearest E_F on tiled graphene (data/crystals/graphene-2x2-0000,
# GPAW dzp, 8 atoms per tile) at ~10³ and ~10⁴ atoms, side by side with SciPy's eigsh in
# shift-invert mode on the exact same CSR matrices (ratio), the dense-vs-sparse crossover behind
# `--solver auto`, and the KPM DOS time. Medians over ROUNDS; the machine load is printed.
# Usage: [ROUNDS=3 BIG=35 KPM_TILES=35 SKIP_BIG=0] tools/bench/sparse.sh
#   (after `swift build -c release`; SciPy side needs tools/.venv-sparse: python3 -m venv
#   tools/.venv-sparse && tools/.venv-sparse/bin/pip install numpy scipy h5py — skipped without it)
set -euo pipefail
cd "$(dirname "$0")/../.."
HARMOSE=${HARMOSE:-.build/release/harmose}
ROUNDS=${ROUNDS:-3}
BIG=${BIG:-35}          # 35×35 tiles × 8 atoms = 9 800 atoms, 127 400 orbitals
KPM_TILES=${KPM_TILES:-35}
PY=tools/.venv-sparse/bin/python
G=data/crystals/graphene-2x2-0000
H=data/crystals/hbn-2x2-0000
[ -x "$HARMOSE" ] || { echo "build first: swift build -c release" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"

echo "== crossover: dense LAPACK vs sparse (40 bands), one k-point, graphene n×n tiles"
for n in 2 4 6; do
  /usr/bin/time -f '%e' "$HARMOSE" bench-sparse "$G" --supercell "$n,$n,1" --kpoints "0.1,0.2,0" --dense 2>/dev/null
done

side_by_side() { # name structure tiles
  local name=$1 s=$2 t=$3 ours=() theirs=()
  for _ in $(seq "$ROUNDS"); do
    ours+=("$("$HARMOSE" bench-sparse "$s" --supercell "$t,$t,1" --kpoints "0.1,0.2,0" --export "$work/$name.h5")")
    if [ -x "$PY" ]; then theirs+=("$("$PY" tools/bench_sparse_scipy.py "$work/$name.h5")"); fi
  done
  "${PY:-python3}" - "$name" "$(printf '%s\n' "${ours[@]}")" "$(printf '%s\n' "${theirs[@]:-}")" <<'PY'
import json, statistics, sys
name = sys.argv[1]
ours = [json.loads(l) for l in sys.argv[2].splitlines() if l.strip()]
theirs = [json.loads(l) for l in sys.argv[3].splitlines() if l.strip()]
o = statistics.median(r["median_per_k_s"] for r in ours)
print(f"{name}: {ours[0]['atoms']} atoms, {ours[0]['orbitals']} orbitals, {ours[0]['nonzeros']} stored entries, {len(ours)} rounds")
print(f"  HarmoSE (UMFPACK + ARPACK) median {o:8.2f} s/k   peak RSS {max(r['peak_rss_GiB'] for r in ours):.2f} GiB"
      f"   max residual {max(r['max_residual_eV'] for r in ours):.1e} eV   LU entries {ours[0]['lu_nonzeros']}")
if theirs:
    t = statistics.median(r["median_s"] for r in theirs)
    print(f"  SciPy eigsh (SuperLU + ARPACK) median {t:8.2f} s/k   peak RSS {max(r['peak_rss_GiB'] for r in theirs):.2f} GiB"
          f"   ratio SciPy/HarmoSE {t/o:.2f}   max |Δε| {max(r['max_abs_difference_vs_harmose_eV'] for r in theirs):.1e} eV")
PY
}
echo "== 40 eigenvalues nearest E_F, k = (0.1, 0.2, 0) of the supercell"
side_by_side graphene-1k "$G" 11
side_by_side hbn-1k "$H" 11
if [ "${SKIP_BIG:-0}" != 1 ]; then
  ROUNDS=1 side_by_side graphene-10k "$G" "$BIG"
fi
echo "== KPM DOS at Γ (1024 moments, 16 random vectors)"
/usr/bin/time -f 'wall %e s, max RSS %M kB' "$HARMOSE" bench-sparse "$G" --supercell "$KPM_TILES,$KPM_TILES,1" --kpm-moments 1024 --kpm-vectors 16 2>&1 | grep -v "^KPM:"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
