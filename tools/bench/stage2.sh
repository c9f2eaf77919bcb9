#!/usr/bin/env bash
# Stage-2 ablation on data/molecules: stage 1 alone vs hybrid-empirical vs hybrid-strict with the
# same data and split, the same total epochs (stage 1 alone trains E1+E2 epochs; the hybrids train
# stage 1 for E1 epochs and stage 2 for E2) and, in a second set of hybrids, the same wall clock
# (stage 2 gets exactly the seconds stage 1 alone spent beyond E1 epochs). H MAE, orbital-energy
# errors and errors on randomly rotated copies of the test set come from `harmose eval --compare`.
# Results: docs/benchmarks-stage2.md. Environment: E1, E2 (epochs), SEED (split, batch order and
# initialisation of both stages), OUT (output folder).
set -euo pipefail
cd "$(dirname "$0")/../.."
H=${HARMOSE:-.build/release/harmose}
OUT=${OUT:-outputs/bench-stage2}
DATA=${DATA:-data/molecules}
E1=${E1:-20}
E2=${E2:-10}
SEED=${SEED:-42}
mkdir -p "$OUT"

train_config() {  # $1 epochs
  cat <<JSON
{"epochs": $1, "batch_size": 4, "learning_rate": 0.005, "plateau_patience": 5, "early_stopping_patience": 0,
 "seed": $SEED, "model": {"irreps": "16x0e+8x1o+4x2e+4x3o+2x4e", "layers": 2, "radial_count": 8, "radial_hidden": 16}}
JSON
}
refine_config() {  # $1 mode, $2 epochs, $3 max_seconds, $4 augment_rotations (default false)
  cat <<JSON
{"epochs": $2, "batch_size": 4, "learning_rate": 0.001, "max_seconds": $3, "seed": $SEED,
 "stage2": {"mode": "$1", "width": 32, "heads": 4, "layers": 2, "feed_forward": 64, "radial_count": 8, "sh_lmax": 7,
            "augment_rotations": ${4:-false}, "seed": $SEED}}
JSON
}
# Training time of a run: the elapsed seconds of its last epoch in timings.jsonl.
seconds() { python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])['elapsed_seconds'])" "$1"; }

train_config $((E1 + E2)) > "$OUT/train-long.json"
train_config "$E1" > "$OUT/train-base.json"
"$H" train -q --config "$OUT/train-long.json" "$DATA" --out "$OUT/stage1-long"
"$H" train -q --config "$OUT/train-base.json" "$DATA" --out "$OUT/stage1-base"
T_LONG=$(seconds "$OUT/stage1-long/timings.jsonl"); T_BASE=$(seconds "$OUT/stage1-base/timings.jsonl")
T_EXTRA=$(python3 -c "print(max(1.0, $T_LONG - $T_BASE))")
echo "stage 1: $((E1 + E2)) epochs in $T_LONG s, $E1 epochs in $T_BASE s; stage-2 wall-clock budget $T_EXTRA s"

for mode in empirical strict; do
  refine_config $mode "$E2" 0 > "$OUT/refine-$mode-epochs.json"
  "$H" refine -q --stage1 "$OUT/stage1-base" --config "$OUT/refine-$mode-epochs.json" "$DATA" --out "$OUT/hybrid-$mode-epochs"
  refine_config $mode 100000 "$T_EXTRA" > "$OUT/refine-$mode-clock.json"
  "$H" refine -q --stage1 "$OUT/stage1-base" --config "$OUT/refine-$mode-clock.json" "$DATA" --out "$OUT/hybrid-$mode-clock"
done
refine_config empirical "$E2" 0 true > "$OUT/refine-empirical-augmented-epochs.json"
"$H" refine -q --stage1 "$OUT/stage1-base" --config "$OUT/refine-empirical-augmented-epochs.json" "$DATA" --out "$OUT/hybrid-empirical-augmented-epochs"

"$H" bench-stage2 test-set --splits "$OUT/stage1-base/splits.json" "$DATA" --out "$OUT/test" --rotated-out "$OUT/test-rotated"
compare=(); rotated=()
VARIANTS="stage1-long stage1-base hybrid-empirical-epochs hybrid-empirical-augmented-epochs hybrid-strict-epochs hybrid-empirical-clock hybrid-strict-clock"
for v in $VARIANTS; do
  "$H" bench-stage2 predict --model "$OUT/$v" "$OUT/test" --out "$OUT/pred/$v"
  "$H" bench-stage2 predict --model "$OUT/$v" "$OUT/test-rotated" --out "$OUT/pred-rotated/$v"
  compare+=(--compare "$v=$OUT/pred/$v"); rotated+=(--compare-rotated "$v=$OUT/pred-rotated/$v")
done
"$H" eval --ref "$OUT/test" --rotated-ref "$OUT/test-rotated" "${compare[@]}" "${rotated[@]}" --out "$OUT/ablation"
for v in ${VARIANTS#stage1-long stage1-base }; do
  python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(sys.argv[2], 'epochs', m['epochs_run'], 'seconds', sys.argv[3], 'stage-2 parameters', m['stage2_parameters'])" "$OUT/$v/metrics.json" "$v" "$(seconds "$OUT/$v/timings.jsonl")"
done
