#!/usr/bin/env bash
# Benchmark: the cost of running every stage in its own worker process (`harmose stage-worker`),
# the price of crash isolation and of stages not sharing process state. Times a pipeline of
# STAGES independent one-file diagnostic stages with --jobs 1, from an empty outputs/ each round,
# with worker processes (the default) and with the hidden --stages-in-process, alternating, and
# prints the medians and the per-stage difference.
# Usage: tools/bench/pipeline-workers.sh [path/to/harmose]   (default .build/release/harmose)
set -euo pipefail
cd "$(dirname "$0")/../.."
HARMOSE=$(realpath "${1:-.build/release/harmose}")
[ -x "$HARMOSE" ] || { echo "no $HARMOSE; run: swift build -c release" >&2; exit 1; }
STAGES=${STAGES:-10}
ROUNDS=${ROUNDS:-5}
WORK=$(mktemp -d /tmp/harmose-bench-workers.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export HARMOSE_DIAGNOSTIC_KINDS=1
mkdir -p "$WORK/data" && echo 1 > "$WORK/data/a"
python3 - "$WORK" "$STAGES" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
stages = {f"s{i}": {"kind": "diagnostic-copy", "inputs": {"source": "data"}, "params": {"tag": str(i)}} for i in range(n)}
json.dump({"stages": stages}, open(f"{work}/pipeline.json", "w"))
PY
cd "$WORK"
worker=(); inproc=()
for _ in $(seq "$ROUNDS"); do
  for mode in worker inproc; do
    rm -rf outputs
    flag=(); [ "$mode" = inproc ] && flag=(--stages-in-process)
    s=$(date +%s%N); "$HARMOSE" run --jobs 1 "${flag[@]}" > /dev/null; e=$(date +%s%N)
    ms=$(( (e - s) / 1000000 ))
    if [ "$mode" = worker ]; then worker+=("$ms"); else inproc+=("$ms"); fi
  done
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
w=$(median "${worker[@]}"); i=$(median "${inproc[@]}")
echo "$STAGES stages, --jobs 1, $ROUNDS rounds: worker processes ${w} ms, in-process ${i} ms (median);" \
     "$(awk -v w="$w" -v i="$i" -v n="$STAGES" 'BEGIN {printf "%.0f ms per stage", (w - i) / n}'); load: $(cut -d' ' -f1-3 /proc/loadavg)"
