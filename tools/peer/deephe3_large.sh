#!/usr/bin/env bash
# DeepH-E3 inference beside `harmose predict` on the same ≈10³-atom graphene supercell (issue 15,
# item 3): wall, CPU (user + sys) and peak RSS from /usr/bin/time -v, with 1 and 2 threads, both
# tools run back to back and alternating for ROUNDS rounds; medians and DeepH-E3/HarmoSE ratios.
#
# What runs:
#  1. tools/.venv-deephe3 (created if missing; never part of make run/test): torch CPU, e3nn 0.4.4,
#     torch_geometric 2.8.1 (+ h5py scipy pathos tqdm tensorboard pymatgen); torch_scatter has no
#     wheel here, so a one-file package re-exporting torch_geometric.utils.scatter stands in.
#  2. DeepH-E3 source (github.com/Xiaoxun-Gong/DeepH-E3, commit f011d5f) from DEEPHE3_SRC, a
#     checkout; it is run, never copied into this repository.
#  3. Training set: the graphene structures of data/crystals → `harmose convert --to deeph-legacy`
#     (graphene only: DeepH-E3 takes the element list from the first structure). DeepH-E3 trained
#     EPOCHS epochs (timing only; weights do not change the cost) with a network the size of
#     HarmoSE's crystal model (DEEPHE3_NET=matched: irreps_mid = configs/demo-train.json's
#     16x0e+8x1o+4x1e+4x2e+4x2o+4x3o+2x3e+2x4e, 2 blocks) or DeepH-E3's default (DEEPHE3_NET=default:
#     64x0e+32x1o+16x2e+8x3o+8x4e, 3 blocks). HarmoSE: configs/demo-train.json trained 1 epoch (as
#     tools/bench/large.sh) and the shipped hybrid data/models/crystals/best.h5.
#  4. Structure: tools/large/make_2d_supercell.py graphene --size 22 23 (1 012 atoms, as
#     tools/bench/large.sh); S from `harmose overlap` (GPAW dzp; DeepH-dock layout), converted to
#     the legacy layout DeepH-E3 reads (overlaps.h5, one dataset per block, OpenMX order, 1-based
#     atoms). `harmose predict` reads the dock folder, DeepH-E3 the legacy one: the same S, the same
#     86 020 blocks predicted by both. (HarmoSE's legacy reader/writer is far slower on 10⁵-dataset
#     files than its dock path: see BENCHMARKS.md; LEGACY_HARMOSE=1 times it on the legacy folder.)
#  5. Each timed DeepH-E3 run starts from no cached graph (the .pkl is deleted), so it includes
#     building the graph from overlaps.h5, as `harmose predict` does. It runs through
#     tools/peer/deephe3_eval_timed.py (deephe3-eval.py's inference with two methods wrapped in
#     timers); its log is time-stamped and split into startup (imports), graph, model build,
#     prediction (DeepH-E3's own "Finished, cost": get_H and the per-edge Python loop filling the
#     blocks, both timed, and the network's forward pass, the rest) and output writing.
#  6. The outputs are checked: both hamiltonians_pred.h5 have every block of overlaps.h5 with S's
#     shape, finite, non-zero.
# 1 thread = `taskset -c 0` for both tools (plus `-n 1` = torch.set_num_threads(1), OMP_NUM_THREADS=1
# for DeepH-E3); 2 threads = both cores (`-n 2`). The machine is shared: the load average is printed
# with every run; CPU seconds are the steadier measure of the work.
#
# Usage: DEEPHE3_SRC=/path/to/DeepH-E3 bash tools/peer/deephe3_large.sh
#   HARMOSE=.build/release/harmose  W=outputs/peer-deephe3  ROUNDS=3  THREADS="1 2"
#   EPOCHS=30  DEEPHE3_NET=matched|default  SIZE="22 23"  HYBRID=1 (also time the shipped hybrid)
# Results: $W/results.tsv (one row per run) and the summary printed at the end.
#
# Measured 2026-12-05 08:46–09:20 UTC, 2-core machine under load (load average 2.9–6.5), 3 rounds,
# medians, 1 012 graphene atoms, 86 020 blocks (details: BENCHMARKS.md, "Large structures" →
# "Beside DeepH-E3"):
#   DeepH-E3 (matched, 99 347 params)  1 thread 207.5 s wall 128.7 s CPU 6.77 GiB; 2 threads 324.5 / 163.1 / 6.90
#   HarmoSE stage 1 (30 492 params)    1 thread  17.4 s wall   8.6 s CPU 0.60 GiB; 2 threads  18.9 /   9.4 / 0.60
#   HarmoSE hybrid (909 211 params)    1 thread  38.0 s wall  22.9 s CPU 1.84 GiB; 2 threads  52.3 /  25.2 / 3.05
#   DeepH-E3 / HarmoSE stage 1: CPU 14.9x (1 thread), 17.4x (2); wall 12.0x, 17.2x; RSS 11.3x
#   DeepH-E3 / HarmoSE hybrid:  CPU  5.6x, 6.5x; wall 5.5x, 6.2x; RSS 3.7x, 2.3x
#   (HarmoSE built from main at 9fef9bb: the hybrid still in 800-atom tiles, before e58bcf3)
# DEEPHE3_NET=default (627 981 params) not run at 1 012 atoms: RSS 4.09 GiB at 200 atoms, 7.23 GiB
# at 420 (≈ 14 MB/atom, ≈ 16 GiB projected); CPU 52.7 s and 97.0 s there, 19.9–21.8x HarmoSE stage 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
H=$(realpath "${HARMOSE:-.build/release/harmose}")
W=${W:-outputs/peer-deephe3}; mkdir -p "$W"; W=$(realpath "$W")
ROUNDS=${ROUNDS:-3}; THREADS=${THREADS:-"1 2"}; EPOCHS=${EPOCHS:-30}
NET=${DEEPHE3_NET:-matched}; SIZE=${SIZE:-"22 23"}; HYBRID=${HYBRID:-1}
SRC=${DEEPHE3_SRC:?set DEEPHE3_SRC to a checkout of github.com/Xiaoxun-Gong/DeepH-E3 (f011d5f)}
SRC=$(realpath "$SRC")
[ -f "$SRC/deephe3-eval.py" ] || { echo "$SRC: no deephe3-eval.py (not a DeepH-E3 checkout)" >&2; exit 1; }
V=$ROOT/tools/.venv-deephe3; PY=$V/bin/python
HELP="$PY $ROOT/tools/peer/deephe3_helper.py"
export TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 PYTHONPATH="$SRC"
load() { cut -d' ' -f1-3 /proc/loadavg; }

# 1. venv
if [ ! -x "$PY" ] || ! "$PY" -c "import torch, e3nn, torch_geometric, h5py, pymatgen, pathos, torch_scatter" 2>/dev/null; then
  "$(command -v python3.11 || command -v python3)" -m venv "$V"
  "$V/bin/pip" install -q "torch==2.13.0+cpu" "e3nn==0.4.4" "torch_geometric==2.8.1" \
    h5py scipy pathos tqdm tensorboard pymatgen
  sp=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  mkdir -p "$sp/torch_scatter"
  echo "from torch_geometric.utils import scatter  # stand-in: no torch_scatter wheel for this torch" \
    > "$sp/torch_scatter/__init__.py"
fi

# 2–3. training set and DeepH-E3 model
if [ ! -d "$W/train-legacy" ]; then
  rm -rf "$W/train-src"; mkdir -p "$W/train-src"
  for d in data/crystals/graphene-*; do ln -s "$ROOT/$d" "$W/train-src/"; done
  "$H" convert "$W/train-src" "$W/train-legacy" --to deeph-legacy -q
fi
case "$NET" in
  matched) net="irreps_embed = 16x0e
irreps_mid = 16x0e+8x1o+4x1e+4x2e+4x2o+4x3o+2x3e+2x4e
num_blocks = 2" ;;
  default) net="irreps_embed = 64x0e
irreps_mid = 64x0e+32x1o+16x2e+8x3o+8x4e
num_blocks = 3" ;;
  *) echo "DEEPHE3_NET=$NET: expected matched or default" >&2; exit 1 ;;
esac
M=$W/deephe3-$NET
if [ ! -f "$M/model/best_model.pkl" ]; then
  rm -rf "$M"; mkdir -p "$M"
  cat > "$M/train.ini" <<EOF
[basic]
device = cpu
dtype = float
save_dir = $M/runs
additional_folder_name = graphene
seed = 42
[data]
processed_data_dir = $W/train-legacy
save_graph_dir = $M/graph
dataset_name = graphene
[train]
num_epoch = $EPOCHS
batch_size = 1
train_ratio = 0.75
val_ratio = 0.25
test_ratio = 0
[hyperparameters]
learning_rate = 0.002
scheduler_type = 1
scheduler_params = (factor=0.5, cooldown=40, patience=120, threshold=0.05)
[network]
cutoff_radius = 7.2
$net
EOF
  echo "training DeepH-E3 ($NET network, $EPOCHS epochs) on $(ls "$W/train-legacy" | wc -l) graphene structures"
  "$PY" "$SRC/deephe3-train.py" "$M/train.ini" -n 1 > "$M/train.log" 2>&1 ||
    { tail -30 "$M/train.log" >&2; exit 1; }
  run=$(dirname "$(find "$M/runs" -name best_model.pkl | head -1)")
  ln -sfn "$run" "$M/model"
fi
deeph_params=$(grep -o "The model you built has [0-9]* parameters" "$M/train.log" | grep -o "[0-9]*")
[ -d "$W/hmodel" ] && [ -f "$W/hmodel/best.h5" ] || {
  "$PY" - "$W/hmodel-train.json" <<'PY'
import json, sys
c = json.load(open("configs/demo-train.json")); c["epochs"] = 1
json.dump(c, open(sys.argv[1], "w"))
PY
  "$H" train --config "$W/hmodel-train.json" data/crystals --out "$W/hmodel" -q > /dev/null; }
models=("stage1:$W/hmodel/best.h5"); [ "$HYBRID" = 1 ] && models+=("hybrid:$ROOT/data/models/crystals/best.h5")
harmose_params=$("$PY" - "$W/hmodel/metrics.json" data/models/crystals <<'PY'
import json, sys  # trainable parameters as training reported them
s1 = json.load(open(sys.argv[1]))["parameters"]
h1 = json.load(open(f"{sys.argv[2]}/stage1-metrics.json"))["parameters"]
h2 = json.load(open(f"{sys.argv[2]}/finetune-metrics.json"))["stage2_parameters"]
print(f"stage 1 {s1}; shipped hybrid {h1} + {h2} = {h1 + h2}")
PY
)

# 4. structure, S, legacy layout
set -- $SIZE; S=$W/graphene-$1x$2
if [ ! -f "$S/legacy/overlaps.h5" ]; then
  rm -rf "$S"
  python3 tools/large/make_2d_supercell.py graphene --size "$1" "$2" --out "$S/in" > /dev/null
  "$H" overlap "$S/in" --out "$S/ov" -q
  "$H" convert "$S/ov/in" "$S/legacy" --to deeph-legacy -q
fi
atoms=$(wc -l < "$S/legacy/element.dat")
hin=$S/ov/in; [ "${LEGACY_HARMOSE:-0}" = 1 ] && hin=$S/legacy
cat > "$W/eval.ini" <<EOF
[basic]
device = cpu
dtype = float
trained_model_dir = $M/model
output_dir = $W/deephe3-out
inference = True
[data]
processed_data_dir = $S/legacy
save_graph_dir = $W/eval-graph
dataset_name = large
get_overlap = False
EOF

# 5. timed runs, alternating
printf "tool\tmodel\tthreads\tround\twall_s\tcpu_s\trss_gib\tload1\tphases\n" > "$W/results.tsv"
run_deephe3() {  # threads round
  local t=$1 r=$2 pin=(); [ "$t" = 1 ] && pin=(taskset -c 0)
  rm -rf "$W/eval-graph" "$W/deephe3-out"
  OMP_NUM_THREADS=$t MKL_NUM_THREADS=$t /usr/bin/time -v -o "$W/deephe3-t$t-r$r.time" "${pin[@]}" \
    "$PY" -u tools/peer/deephe3_eval_timed.py "$W/eval.ini" -n "$t" 2>&1 | $HELP stamp > "$W/deephe3-t$t-r$r.log" ||
    { tail -30 "$W/deephe3-t$t-r$r.log" >&2; exit 1; }
  printf "DeepH-E3\t%s\t%s\t%s\t%s\t%s\t%s\n" "$NET" "$t" "$r" \
    "$($HELP timefile "$W/deephe3-t$t-r$r.time" | tr ' ' '\t')" "$(cut -d' ' -f1 /proc/loadavg)" \
    "$($HELP phases "$W/deephe3-t$t-r$r.log")" >> "$W/results.tsv"
  tail -1 "$W/results.tsv"
}
run_harmose() {  # threads round name:ckpt
  local t=$1 r=$2 name=${3%%:*} ck=${3#*:} pin=(); [ "$t" = 1 ] && pin=(taskset -c 0)
  rm -rf "$W/harmose-out-$name"
  /usr/bin/time -v -o "$W/harmose-$name-t$t-r$r.time" "${pin[@]}" \
    "$H" predict --model "$ck" "$hin" --out "$W/harmose-out-$name" -q > "$W/harmose-$name-t$t-r$r.log" 2>&1 ||
    { tail -30 "$W/harmose-$name-t$t-r$r.log" >&2; exit 1; }
  printf "HarmoSE\t%s\t%s\t%s\t%s\t%s\t{}\n" "$name" "$t" "$r" \
    "$($HELP timefile "$W/harmose-$name-t$t-r$r.time" | tr ' ' '\t')" "$(cut -d' ' -f1 /proc/loadavg)" >> "$W/results.tsv"
  tail -1 "$W/results.tsv"
}
echo "structure: $atoms atoms; DeepH-E3 reads $S/legacy, HarmoSE $hin; load $(load), $(nproc) cores"
echo "trainable parameters: DeepH-E3 ($NET) $deeph_params; HarmoSE $harmose_params"
for r in $(seq 1 "$ROUNDS"); do
  for t in $THREADS; do
    if [ $((r % 2)) = 1 ]; then run_deephe3 "$t" "$r"; for m in "${models[@]}"; do run_harmose "$t" "$r" "$m"; done
    else for m in "${models[@]}"; do run_harmose "$t" "$r" "$m"; done; run_deephe3 "$t" "$r"; fi
  done
done

# 6. the outputs are real Hamiltonians on the same blocks
hout=$(find "$W/harmose-out-stage1" -name "hamiltonian*_pred.h5" | head -1)
$HELP compare "$W/deephe3-out/legacy/hamiltonians_pred.h5" "$S/legacy/overlaps.h5" \
  "$hout" "$(find "$hin" -maxdepth 1 -name "overlap*.h5" | head -1)" \
  "$W/train-legacy/graphene-2x2-0000/hamiltonians.h5"

"$PY" - "$W/results.tsv" "$atoms" <<'PY'
import csv, json, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = lambda xs: st.median(xs) if xs else float("nan")
print(f"\nmedians over rounds, {sys.argv[2]} atoms (ratio = DeepH-E3 / HarmoSE: > 1 means HarmoSE is faster)")
print(f"{'tool':<9} {'model':<8} {'thr':>3} {'n':>2} {'wall_s':>8} {'cpu_s':>8} {'rss_GiB':>8} {'load':>5}  DeepH-E3 phases (s)")
groups = {}
for r in rows:
    groups.setdefault((r["tool"], r["model"], r["threads"]), []).append(r)
for (tool, model, t), rs in groups.items():
    ph = [json.loads(r["phases"]) for r in rs]
    phs = {k: round(med([p[k] for p in ph]), 1) for k in ph[0]} if ph[0] else ""
    print(f"{tool:<9} {model:<8} {t:>3} {len(rs):>2} {med([float(r['wall_s']) for r in rs]):8.1f} "
          f"{med([float(r['cpu_s']) for r in rs]):8.1f} {med([float(r['rss_gib']) for r in rs]):8.2f} "
          f"{med([float(r['load1']) for r in rs]):5.1f}  {phs}")
d = {k: v for k, v in groups.items() if k[0] == "DeepH-E3"}
for (tool, model, t), rs in groups.items():
    if tool != "HarmoSE":
        continue
    for (_, dm, dt), drs in d.items():
        if dt != t:
            continue
        f = lambda k, xs: med([float(r[k]) for r in xs])
        print(f"ratio DeepH-E3 ({dm}) / HarmoSE {model}, {t} thread(s): wall {f('wall_s', drs) / f('wall_s', rs):.2f}x, "
              f"CPU {f('cpu_s', drs) / f('cpu_s', rs):.2f}x, peak RSS {f('rss_gib', drs) / f('rss_gib', rs):.2f}x")
PY
echo "load now: $(load)"
