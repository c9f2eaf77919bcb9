#!/usr/bin/env bash
# Band sensitivity to H errors, per crystal system (docs/accuracy.md): DFT H + independent
# Gaussian noise of SIGMA eV on every entry (tools/noisy_predictions.py, needs h5py + numpy:
# python3 -m venv tools/.venv-h5 && tools/.venv-h5/bin/pip install h5py numpy), evaluated by
# `harmose eval` at its default overlap threshold (1e-3; 5e-4 reported beside). No model: this
# measures what an H error of a given size does to each system's bands.
set -euo pipefail
cd "$(dirname "$0")/../.."
HARMOSE=${HARMOSE:-.build/release/harmose}
DATASETS=${HARMOSE_DATASETS:-../shared/datasets}
PYTHON=${PYTHON:-$( [ -x tools/.venv-h5/bin/python ] && echo tools/.venv-h5/bin/python || echo python3 )}
OUT=${OUT:-outputs/bench-accuracy-noise}
COUNT=${COUNT:-4}
SIGMAS=${SIGMAS:-0.0003 0.001 0.003 0.01}
CRY="$DATASETS/periodic-gpaw-pbe-dzp/dft"
[ -d "$CRY" ] || { echo "accuracy-noise.sh: no datasets at $DATASETS; skipped"; exit 0; }
for system in graphene hbn mos2; do
  ref="$OUT/ref-$system"; rm -rf "$ref"; mkdir -p "$ref"
  # The first COUNT test structures of accuracy.sh's split (index % 5 == 4).
  i=0; n=0
  for f in "$CRY/$system"-2x2-*; do
    if [ $((i % 5)) -eq 4 ] && [ "$n" -lt "$COUNT" ]; then ln -s "$(realpath "$f")" "$ref/"; n=$((n + 1)); fi
    i=$((i + 1))
  done
  for sigma in $SIGMAS; do
    pred="$OUT/pred-$system-$sigma"; rm -rf "$pred"
    "$PYTHON" tools/noisy_predictions.py "$ref" "$pred" --sigma "$sigma" > /dev/null
    "$HARMOSE" eval --pred "$pred" --ref "$ref" --out "$OUT/eval-$system-$sigma" --workers 1 -q
    python3 - "$OUT/eval-$system-$sigma/metrics.json" "$system" "$sigma" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); b = m["bands"]
print(f"{sys.argv[2]} sigma {float(sys.argv[3])*1000:g} meV: H MAE {m['hamiltonian']['overall']['mae_meV']:.3f} meV, "
      f"band MAE {b['mae_meV']:.1f} meV (5e-4: {b['alternative_threshold']['mae_meV']:.1f}), LUMO MAE {b['lumo_mae_meV'] or float('nan'):.0f} meV, "
      f"ghost bands {b['ghost_bands']}, min S eig {b['smallest_overlap_eigenvalue']:.1e}")
PY
  done
done
