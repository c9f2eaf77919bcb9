#!/usr/bin/env bash
# Data-parallel training on one machine (issue #14, item 1) and the per-epoch cost of train and
# refine (issue #13, item 3). For water, ethanol and the 2D crystals: stage-1 training and refine
# (stage 2 on a frozen stage 1) with --threads 1 and --threads 2, interleaved round by round so
# both see the same machine load (the order alternates: 1 then 2 in odd rounds, 2 then 1 in even
# ones). A run's structures/s = training structures ÷ its median wall epoch over epochs 2…EPOCHS
# (validation and checkpoints included; from epoch 2 on, an epoch of a multi-thread run also
# carries the background write of the previous epoch's checkpoints,
# Sources/Training/CheckpointWriter.swift). Reported: the median over rounds of each thread count's
# structures/s, their ratio, and the ratio of every round (1 and 2 threads of the same round) with
# its spread. On 2 cores a 2-thread run has no slack: anything else that runs for a while slows
# every step's barrier, so its epochs have outliers that a 1-thread run does not — hence medians
# (over 7 timed epochs per run, then over 5 rounds by default), never sums. The learning curves of
# 1 and 2 threads are compared for bit identity (the result must not depend on the worker count).
# With HARMOSE_OLD=<binary of an older build> the same runs with that binary are interleaved too
# (old vs new seconds per epoch, same configuration). REPORT_ONLY=1 reprints the table of $OUT.
# Needs a release build and the full datasets (../shared/datasets or $HARMOSE_DATASETS).
set -euo pipefail
cd "$(dirname "$0")/../.."
HARMOSE=${HARMOSE:-.build/release/harmose}
HARMOSE_OLD=${HARMOSE_OLD:-}
DATASETS=${HARMOSE_DATASETS:-../shared/datasets}
EPOCHS=${EPOCHS:-8}
ROUNDS=${ROUNDS:-5}
BATCH=${BATCH:-4}
OUT=${OUT:-outputs/bench-parallel}
SYSTEMS=${SYSTEMS:-water ethanol crystals}
if [ ! -d "$DATASETS/molecules-pbe-def2svp" ]; then echo "parallel.sh: no datasets at $DATASETS (set HARMOSE_DATASETS); skipped"; exit 0; fi
mkdir -p "$OUT"
link_set() { # name dataset-dir glob count
  local dir="$OUT/data/$1"; rm -rf "$dir"; mkdir -p "$dir"
  local n=0
  for f in $2/$3; do [ -f "$f/hamiltonian.h5" ] || continue; ln -s "$(realpath "$f")" "$dir/"; n=$((n+1)); [ "$n" -ge "$4" ] && break; done
  echo "$dir"
}
MOL="$DATASETS/molecules-pbe-def2svp/dft"; CRY="$DATASETS/periodic-gpaw-pbe-dzp/dft"
declare -A DATA
DATA[water]=$(link_set water "$MOL" 'water-*' 200)
DATA[ethanol]=$(link_set ethanol "$MOL" 'ethanol-*' 100)
DATA[crystals]=$(link_set crystals "$CRY" '[gh]*-2x2-*' 60)
python3 - "$OUT/train.json" "$EPOCHS" "$BATCH" <<'PY'
import json, sys
c = json.load(open("tools/bench/model-bench.json"))
c.update(epochs=int(sys.argv[2]), batch_size=int(sys.argv[3]), max_seconds=0, early_stopping_patience=0)
json.dump(c, open(sys.argv[1], "w"))
PY
echo "{\"epochs\": $EPOCHS, \"batch_size\": $BATCH}" > "$OUT/refine.json"
timed() { # out-dir command…: runs it, keeps "wall user sys" seconds in out-dir.time
  local t="$1.time"; shift
  /usr/bin/time -o "$t" -f "%e %U %S" "$@" > /dev/null
}
if [ -z "${REPORT_ONLY:-}" ]; then
echo "machine: $(nproc) cores, load before $(cut -d' ' -f1-3 /proc/loadavg); epochs $EPOCHS, batch $BATCH, rounds $ROUNDS"
for sys in $SYSTEMS; do
  data=${DATA[$sys]}; base="$OUT/$sys"; rm -rf "$base"; mkdir -p "$base"
  "$HARMOSE" train --config "$OUT/train.json" "$data" --out "$base/stage1" -q > /dev/null
  for r in $(seq 1 "$ROUNDS"); do
    order="1 2"; [ $((r % 2)) -eq 0 ] && order="2 1"
    for t in $order; do
      timed "$base/train-t$t-r$r" "$HARMOSE" train --threads "$t" --config "$OUT/train.json" "$data" --out "$base/train-t$t-r$r" -q
      timed "$base/refine-t$t-r$r" "$HARMOSE" refine --threads "$t" --stage1 "$base/stage1" --config "$OUT/refine.json" "$data" --out "$base/refine-t$t-r$r" -q
    done
    if [ -n "$HARMOSE_OLD" ]; then
      timed "$base/train-old-r$r" "$HARMOSE_OLD" train --config "$OUT/train.json" "$data" --out "$base/train-old-r$r" -q
      timed "$base/refine-old-r$r" "$HARMOSE_OLD" refine --stage1 "$base/stage1" --config "$OUT/refine.json" "$data" --out "$base/refine-old-r$r" -q
    fi
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
python3 - "$OUT" "$ROUNDS" "$SYSTEMS" <<'PY'
import json, os, statistics, sys
out, rounds, systems = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
def curve(d): return [json.loads(l) for l in open(os.path.join(d, "learning_curve.jsonl"))]
def strip(c): return [{k: v for k, v in e.items() if "second" not in k} for e in c]
# Wall-clock time per epoch: timings.jsonl (older binaries: inside the learning curve).
def timing(d):
    t = os.path.join(d, "timings.jsonl")
    return [json.loads(l) for l in open(t)] if os.path.exists(t) else curve(d)
def cpu(d):
    w, u, s = map(float, open(d + ".time").read().split()[-3:])
    return u + s
def rate(d, ntrain):
    """Structures/s of a run from its median epoch >= 2 (all epochs if it ran one), and that epoch's seconds."""
    eps = [e["epoch_seconds"] for e in timing(d) if e["epoch"] >= 2] or [e["epoch_seconds"] for e in timing(d)]
    return ntrain / statistics.median(eps), statistics.median(eps)
print(f"{'system':<10}{'stage':<8}{'1 thread':>11}{'2 threads':>12}{'ratio':>8}  {'per-round ratios (min-max)':<34}{'epoch s 1t/2t':>14}{'old s/epoch':>12}{'CPU s/run 1t, 2t, old':>23}  1t = 2t")
for sys_ in systems:
    base = os.path.join(out, sys_)
    ntrain = len(json.load(open(os.path.join(base, "stage1", "splits.json")))["train"])
    for stage in ("train", "refine"):
        rates, timed, cpus, same = {}, {}, {}, True
        for t in ("t1", "t2", "old"):
            dirs = [os.path.join(base, f"{stage}-{t}-r{r}") for r in range(1, rounds + 1)]
            if not all(os.path.exists(d) for d in dirs): continue
            rs = [rate(d, ntrain) for d in dirs]
            rates[t] = [x[0] for x in rs]; timed[t] = statistics.median(x[1] for x in rs)
            cpus[t] = statistics.median(cpu(d) for d in dirs)
        ref = strip(curve(os.path.join(base, f"{stage}-t1-r1")))
        for r in range(1, rounds + 1):
            for t in ("t1", "t2"):
                if strip(curve(os.path.join(base, f"{stage}-{t}-r{r}"))) != ref: same = False
        m1, m2 = statistics.median(rates["t1"]), statistics.median(rates["t2"])
        per = [b / a for a, b in zip(rates["t1"], rates["t2"])]
        per_text = " ".join(f"{x:.2f}" for x in per) + f" ({min(per):.2f}-{max(per):.2f})"
        old = f"{ntrain / statistics.median(rates['old']):>12.3f}" if "old" in rates else f"{'-':>12}"
        cpu_text = ", ".join(f"{cpus[t]:.1f}" for t in ("t1", "t2", "old") if t in cpus)
        print(f"{sys_:<10}{stage:<8}{m1:>9.1f}/s{m2:>10.1f}/s{m2 / m1:>7.2f}x  {per_text:<34}{timed['t1']:>6.2f}/{timed['t2']:<7.2f}{old}{cpu_text:>23}  {'yes' if same else 'NO'}")
print("structures/s: per run, training structures / its median wall epoch of epochs >= 2 (an epoch includes validation")
print("  and checkpoints; with 2 threads the checkpoints are written while the next epoch trains, so that epoch carries")
print("  them); median over rounds. ratio = 2-thread median / 1-thread median; per-round ratios: the two runs of each round.")
print("epoch s: median over rounds of a run's median epoch. CPU s/run = user + system seconds of the whole run")
print("  (median over rounds): the work done, whatever the load.")
PY
