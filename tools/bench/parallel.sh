#!/usr/bin/env bash
# Data-parallel training on one machine (issue #14, item 1) and the per-epoch cost of train and
# refine (issue #13, item 3). For water, ethanol and the 2D crystals: stage-1 training and refine
# (stage 2 on a frozen stage 1) with --threads 1 and --threads 2, interleaved round by round so
# both see the same machine load; structures/s is the median over epochs 2…EPOCHS and rounds (the
# steady state: from epoch 2 on, an epoch of a multi-thread run also carries the background write
# of the previous epoch's checkpoints, Sources/Training/CheckpointWriter.swift), and the
# learning curves of 1 and 2 threads are compared for bit identity (the result must not depend on
# the worker count). With HARMOSE_OLD=<binary of an older build> the same runs with that binary
# are interleaved too (old vs new seconds per epoch, same configuration).
# Needs a release build and the full datasets (../shared/datasets or $HARMOSE_DATASETS).
set -euo pipefail
cd "$(dirname "$0")/../.."
HARMOSE=${HARMOSE:-.build/release/harmose}
HARMOSE_OLD=${HARMOSE_OLD:-}
DATASETS=${HARMOSE_DATASETS:-../shared/datasets}
EPOCHS=${EPOCHS:-4}
ROUNDS=${ROUNDS:-2}
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
echo "machine: $(nproc) cores, load before $(cut -d' ' -f1-3 /proc/loadavg); epochs $EPOCHS, batch $BATCH, rounds $ROUNDS"
for sys in $SYSTEMS; do
  data=${DATA[$sys]}; base="$OUT/$sys"; rm -rf "$base"; mkdir -p "$base"
  "$HARMOSE" train --config "$OUT/train.json" "$data" --out "$base/stage1" -q > /dev/null
  for r in $(seq 1 "$ROUNDS"); do
    for t in 1 2; do
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
print(f"{'system':<10}{'stage':<8}{'1 thread':>12}{'2 threads':>12}{'ratio':>8}{'old s/epoch':>13}{'new 2t s/epoch':>16}{'CPU s/run 1t, 2t, old':>24}  identical 1t = 2t")
for sys_ in systems:
    base = os.path.join(out, sys_)
    ntrain = len(json.load(open(os.path.join(base, "stage1", "splits.json")))["train"])
    for stage in ("train", "refine"):
        sps, secs, same = {}, {}, True
        cpus = {}
        for t in ("t1", "t2", "old"):
            dirs = [os.path.join(base, f"{stage}-{t}-r{r}") for r in range(1, rounds + 1)]
            dirs = [d for d in dirs if os.path.exists(d)]
            if not dirs: continue
            eps = [e["epoch_seconds"] for d in dirs for e in timing(d) if e["epoch"] >= 2] or [e["epoch_seconds"] for d in dirs for e in timing(d)]
            secs[t] = statistics.median(eps); sps[t] = ntrain / secs[t]
            cpus[t] = statistics.median(cpu(d) for d in dirs)
        ref = strip(curve(os.path.join(base, f"{stage}-t1-r1")))
        for r in range(1, rounds + 1):
            for t in ("t1", "t2"):
                if strip(curve(os.path.join(base, f"{stage}-{t}-r{r}"))) != ref: same = False
        old = f"{secs['old']:>13.2f}" if "old" in secs else f"{'-':>13}"
        cpu_text = ", ".join(f"{cpus[t]:.1f}" for t in ("t1", "t2", "old") if t in cpus)
        print(f"{sys_:<10}{stage:<8}{sps['t1']:>10.1f}/s{sps['t2']:>10.1f}/s{sps['t2'] / sps['t1']:>7.2f}x{old}{secs['t2']:>16.2f}{cpu_text:>24}  {'yes' if same else 'NO'}")
print("structures/s = training structures ÷ median wall epoch seconds of epochs ≥ 2 (an epoch includes validation and checkpoints;")
print("  with 2 threads the checkpoints are written while the next epoch trains, so that epoch carries them);")
print("CPU s/run = user + system seconds of the whole run (median over rounds): the work done, whatever the load.")
PY
