#!/usr/bin/env bash
# Scale-out benchmark (docs/scaling.md builds its model on these numbers):
#   1. the gradient all-reduce (Cluster's sum of one flat Float buffer) on 2 ranks, against the
#      buffer size (= trainable parameter count), median of --repeats;
#   2. stage-1 training throughput on the bundled water molecules, 1 process × 1 thread against
#      2 ranks × 1 thread (mpirun), same configuration and global batch, alternated side by side
#      ROUNDS times; structures/s is the median over epochs 2… of timings.jsonl;
#   3. what MPI_Init costs a process started without a launcher (singleton init), the reason
#      `harmose` initialises MPI only under mpirun/srun.
# Needs Debian openmpi-bin/libopenmpi-dev (make deps). Run by `make bench` after the release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
HARMOSE="${HARMOSE:-.build/release/harmose}"
ROUNDS="${ROUNDS:-2}"
EPOCHS="${EPOCHS:-4}"
[ -x "$HARMOSE" ] || swift build -c release --product harmose
command -v mpirun >/dev/null || { echo "mpirun not found: install openmpi-bin (make deps)"; exit 1; }
MPIRUN=(mpirun --oversubscribe --bind-to none)
[ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
export OPENBLAS_NUM_THREADS=1
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== all-reduce, 2 ranks"
"${MPIRUN[@]}" -np 2 "$HARMOSE" bench-allreduce --sizes 1000,10000,100000,686000,1000000,4000000 --repeats 30

echo "== stage-1 training, water (data/molecules/water-*), demo model, batch 4, $EPOCHS epochs, OPENBLAS_NUM_THREADS=1"
mkdir -p "$out/water"
for d in data/molecules/water-*; do ln -s "$PWD/$d" "$out/water/"; done
python3 - "$out/config.json" "$EPOCHS" <<'PY'
import json, sys
c = json.load(open("configs/demo-train.json"))
c.update({"epochs": int(sys.argv[2]), "batch_size": 4, "early_stopping_patience": 0, "split": [0.8, 0.2, 0.0]})
json.dump(c, open(sys.argv[1], "w"))
PY
rate() { python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])][1:]
print("%.2f" % statistics.median(r["structures_per_second"] for r in rows))' "$1/timings.jsonl"; }
for r in $(seq 1 "$ROUNDS"); do
  "$HARMOSE" train --config "$out/config.json" "$out/water" --out "$out/one-$r" -q > /dev/null
  "${MPIRUN[@]}" -np 2 "$HARMOSE" train --config "$out/config.json" "$out/water" --out "$out/two-$r" -q > /dev/null
  echo "round $r: 1 rank $(rate "$out/one-$r") structures/s, 2 ranks $(rate "$out/two-$r") structures/s (load $(cut -d' ' -f1 /proc/loadavg))"
done
python3 - "$out" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def rate(d):
    rows = [json.loads(l) for l in open(f"{out}/{d}/timings.jsonl")][1:]
    return statistics.median(r["structures_per_second"] for r in rows)
one = [rate(f"one-{r}") for r in range(1, rounds + 1)]
two = [rate(f"two-{r}") for r in range(1, rounds + 1)]
params = json.load(open(f"{out}/one-1/metrics.json"))["parameters"]
print(json.dumps({"bench": "train_water", "parameters": params, "one_rank_structures_per_s": statistics.median(one),
                  "two_ranks_structures_per_s": statistics.median(two), "speedup": statistics.median(two) / statistics.median(one)}))
PY

echo "== singleton MPI_Init (a process not started by a launcher)"
if command -v mpicc >/dev/null; then
  printf '#include <mpi.h>\n#include <stdio.h>\n#include <time.h>\nint main(int c,char**v){struct timespec a,b;clock_gettime(CLOCK_MONOTONIC,&a);MPI_Init(&c,&v);clock_gettime(CLOCK_MONOTONIC,&b);MPI_Finalize();printf("%%.1f\\n",(b.tv_sec-a.tv_sec)*1e3+(b.tv_nsec-a.tv_nsec)/1e6);return 0;}\n' > "$out/init.c"
  mpicc -O2 "$out/init.c" -o "$out/init"
  for i in 1 2 3 4 5; do "$out/init"; done | sort -n | sed -n 3p | xargs -I{} echo "singleton MPI_Init median {} ms"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
