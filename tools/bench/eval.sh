#!/usr/bin/env bash
# Benchmark of `harmose eval` on the shared DFT datasets: synthetic predictions (DFT H + 1 meV
# Gaussian noise, tools/noisy_predictions.py), full evaluation (H errors + band errors + plots)
# vs H errors only, median of 3 runs each. Needs ../shared/datasets (skipped otherwise) and a
# release build (make bench builds it).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${HARMOSE_DATASETS:-../shared/datasets}
HARMOSE=${HARMOSE:-.build/release/harmose}
[ -d "$DATA" ] || { echo "eval bench: $DATA not found, skipped"; exit 0; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Prints "WALL CPU": medians over 3 runs of "$@" of wall time and of user+system CPU time (s).
# CPU time is reported because the 2-core machines are shared: wall time includes waiting.
time_runs() {
  local runs=() TIMEFORMAT='%R %U %S' wall cpu
  for _ in 1 2 3; do runs+=("$( { time "$@" > /dev/null 2>&1; } 2>&1 )"); done
  wall=$(printf '%s\n' "${runs[@]}" | awk '{print $1}' | median)
  cpu=$(printf '%s\n' "${runs[@]}" | awk '{print $2 + $3}' | median)
  echo "$wall $cpu"
}

for set in molecules-pbe-def2svp periodic-gpaw-pbe-dzp; do
  ref="$DATA/$set/dft"
  [ -d "$ref" ] || continue
  python3 tools/noisy_predictions.py "$ref" "$WORK/$set" --sigma 0.001 > /dev/null
  n=$(find "$WORK/$set" -name hamiltonian_pred.h5 | wc -l)
  read -r full full_cpu < <(time_runs "$HARMOSE" eval --pred "$WORK/$set" --ref "$ref" --out "$WORK/out-$set" -q)
  read -r honly honly_cpu < <(time_runs "$HARMOSE" eval --pred "$WORK/$set" --ref "$ref" --out "$WORK/out-h-$set" --no-bands -q)
  entries=$(python3 -c "import json; print(json.load(open('$WORK/out-$set/metrics.json'))['hamiltonian']['overall']['count'])")
  mae=$(python3 -c "import json; m=json.load(open('$WORK/out-$set/metrics.json')); print('%.4f meV H MAE, %.4f meV band MAE' % (m['hamiltonian']['overall']['mae_meV'], m['bands']['mae_meV']))")
  printf '%s: %d structures, %d H entries (%s)\n' "$set" "$n" "$entries" "$mae"
  printf '  full eval (H + bands + plots): median wall %.2f s, CPU %.2f s = %.2f ms CPU/structure\n' \
    "$full" "$full_cpu" "$(echo "1000 * $full_cpu / $n" | bc -l)"
  printf '  H errors only (--no-bands):    median wall %.2f s, CPU %.2f s = %.2f M entries per CPU-second\n' \
    "$honly" "$honly_cpu" "$(echo "$entries / $honly_cpu / 1000000" | bc -l)"
  printf '  ratio full / H-only: wall %.2f, CPU %.2f\n' "$(echo "$full / $honly" | bc -l)" "$(echo "$full_cpu / $honly_cpu" | bc -l)"
done
