#!/usr/bin/env bash
# Stage-1 model benchmarks (docs/benchmarks-model.md): test MAE on water, ethanol and 2D crystals
# at a fixed wall-clock budget, training throughput, inference time per structure, peak memory.
# Needs a release build (make build) and the full datasets (../shared/datasets or
# $HARMOSE_DATASETS); prints one summary line per run. Budget per run: $BUDGET seconds (300).
set -euo pipefail
cd "$(dirname "$0")/../.."
HARMOSE=${HARMOSE:-.build/release/harmose}
DATASETS=${HARMOSE_DATASETS:-../shared/datasets}
BUDGET=${BUDGET:-300}
OUT=${OUT:-outputs/bench-model}
if [ ! -d "$DATASETS/molecules-pbe-def2svp" ]; then echo "model.sh: no datasets at $DATASETS (set HARMOSE_DATASETS); skipped"; exit 0; fi
mkdir -p "$OUT"

# One folder of links per system, so each training run sees only its own structures.
link_set() { # name dataset-dir glob count
  local dir="$OUT/data/$1"; rm -rf "$dir"; mkdir -p "$dir"
  local n=0
  for f in $2/$3; do [ -f "$f/hamiltonian.h5" ] || continue; ln -s "$(realpath "$f")" "$dir/"; n=$((n+1)); [ "$n" -ge "$4" ] && break; done
  echo "$dir"
}
MOL="$DATASETS/molecules-pbe-def2svp/dft"
CRY="$DATASETS/periodic-gpaw-pbe-dzp/dft"
WATER=$(link_set water "$MOL" 'water-*' 500)
ETHANOL=$(link_set ethanol "$MOL" 'ethanol-*' 210)
CRYSTALS=$(link_set crystals "$CRY" '[gh]*-2x2-*' 100)

run() { # name data
  local name=$1 data=$2 dir="$OUT/$1"
  rm -rf "$dir"
  sed "s/\"max_seconds\": [0-9.]*/\"max_seconds\": $BUDGET/" tools/bench/model-bench.json > "$OUT/$name.json"
  /usr/bin/time -v "$HARMOSE" train --config "$OUT/$name.json" "$data" --out "$dir" > "$OUT/$name.train.log" 2> "$OUT/$name.time"
  local rss=$(awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}' "$OUT/$name.time")
  # Inference on the test split only.
  local testdir="$OUT/data/$name-test"; rm -rf "$testdir"; mkdir -p "$testdir"
  python3 -c "import json,sys; print('\n'.join(json.load(open('$dir/splits.json'))['test']))" | while read -r s; do ln -s "$(realpath "$data/$s")" "$testdir/"; done
  /usr/bin/time -v "$HARMOSE" predict --model "$dir" "$testdir" --out "$dir/pred" -q > "$OUT/$name.predict.log" 2> "$OUT/$name.predict.time"
  local prss=$(awk -F: '/Maximum resident/ {gsub(/ /,"",$2); print $2}' "$OUT/$name.predict.time")
  python3 - "$dir" "$name" "$rss" "$prss" "$OUT/$name.predict.log" <<'PY'
import json, sys, statistics
d, name, rss, prss, plog = sys.argv[1:]
m = json.load(open(f"{d}/metrics.json"))
curve = [json.loads(l) for l in open(f"{d}/timings.jsonl")]
sps = statistics.median(c["structures_per_second"] for c in curve)
eps = statistics.median(c["edges_per_second"] for c in curve)
t = m.get("test", m["validation"])
print(f"{name}: epochs {m['epochs_run']} (best {m['best_epoch']}) in {curve[-1]['elapsed_seconds']:.0f} s; test MAE {t['mae_meV']:.2f} meV = {t['mae_uEh']:.1f} µEh "
      f"(RMSE {t['rmse_meV']:.2f} meV, {t['structures']} structures); train {sps:.1f} structures/s, {eps:.0f} edges/s (median epoch); "
      f"peak RSS train {int(rss)/1024:.0f} MiB, predict {int(prss)/1024:.0f} MiB; {open(plog).read().strip()}")
PY
}
run water "$WATER"
run ethanol "$ETHANOL"
run crystals "$CRYSTALS"
