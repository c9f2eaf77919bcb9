#!/usr/bin/env bash
# Benchmark: a no-op `harmose run` (everything up to date) over a 1,000-structure dataset.
# Target (issue 3): < 0.5 s. Builds a synthetic dataset in a temporary folder — 1,000 structure
# folders with 4 small files each, the DeepH-dock shape — runs a 3-stage pipeline once to fill
# outputs/, then times repeated no-op runs (hyperfine when installed, otherwise a timed loop) and,
# for scale, `harmose --version` (process start-up alone). Then the cold-cache cost: hashing a
# 256 MiB input (SHA-256 written in Swift) against coreutils `sha256sum`. Medians in milliseconds.
# Usage: tools/bench/pipeline.sh [path/to/harmose]   (default .build/release/harmose)
set -euo pipefail
cd "$(dirname "$0")/../.."
HARMOSE=$(realpath "${1:-.build/release/harmose}")
[ -x "$HARMOSE" ] || { echo "no $HARMOSE; run: swift build -c release" >&2; exit 1; }
N_STRUCTURES=${N_STRUCTURES:-1000}
RUNS=${RUNS:-20}
WORK=$(mktemp -d /tmp/harmose-bench-pipeline.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export HARMOSE_DIAGNOSTIC_KINDS=1   # the runner is what is measured; these kinds only copy files

python3 - "$WORK" "$N_STRUCTURES" <<'PY'
import json, os, sys
work, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(work, "dataset", f"structure-{i:04d}")
    os.makedirs(d)
    with open(os.path.join(d, "POSCAR"), "w") as f:
        f.write(f"structure {i}\n1.0\n10 0 0\n0 10 0\n0 0 10\nO H\n1 2\nCartesian\n0 0 0\n0.76 0.59 0\n-0.76 0.59 0\n")
    with open(os.path.join(d, "info.json"), "w") as f:
        json.dump({"index": i, "fermi_energy_eV": -5.0 + i * 1e-3}, f)
    for name in ("hamiltonian.h5", "overlap.h5"):
        with open(os.path.join(d, name), "wb") as f:
            f.write(os.urandom(2048))
json.dump({"version": 1, "stages": {
    "ingest": {"kind": "diagnostic-copy", "inputs": {"source": "dataset"}},
    "graph": {"kind": "diagnostic-copy", "inputs": {"source": {"stage": "ingest"}}, "params": {"tag": "g"}},
    "bands": {"kind": "diagnostic-copy", "inputs": {"source": {"stage": "ingest"}}, "params": {"tag": "b"}},
}}, open(os.path.join(work, "pipeline.json"), "w"), indent=2)
PY
FILES=$(find "$WORK/dataset" -type f | wc -l)
cd "$WORK"
"$HARMOSE" run --pipeline pipeline.json > first-run.log
SECOND=$("$HARMOSE" run --pipeline pipeline.json)
grep -q "done: 3 up to date" <<< "$SECOND" || { echo "second run was not a no-op: $SECOND" >&2; exit 1; }

median_ms() {  # median wall time of "$@" over $RUNS runs, in ms
    local times=()
    for _ in $(seq "$RUNS"); do
        local t0 t1
        t0=$(date +%s%N); "$@" > /dev/null; t1=$(date +%s%N)
        times+=($(( (t1 - t0) / 1000 )))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f", m / 1000}'
}

echo "dataset: $N_STRUCTURES structures, $FILES files, pipeline: 3 stages (all up to date)"
if command -v hyperfine > /dev/null; then
    hyperfine --warmup 3 --runs "$RUNS" --export-json hyperfine.json \
        "$HARMOSE run --pipeline pipeline.json" "$HARMOSE --version"
    python3 -c "import json; r=json.load(open('hyperfine.json'))['results']; [print(f\"{x['command']}: median {x['median']*1000:.1f} ms\") for x in r]"
else
    "$HARMOSE" run --pipeline pipeline.json > /dev/null  # warm-up
    NOOP=$(median_ms "$HARMOSE" run --pipeline pipeline.json)
    STATUS=$(median_ms "$HARMOSE" status --pipeline pipeline.json)
    START=$(median_ms "$HARMOSE" --version)
    echo "no-op harmose run:  median $NOOP ms over $RUNS runs (target < 500 ms)"
    echo "harmose status:     median $STATUS ms"
    echo "harmose --version:  median $START ms (process start-up)"
    awk -v a="$NOOP" -v b="$START" 'BEGIN { printf "ratio no-op run / start-up: %.2f\n", a / b }'
    awk -v a="$NOOP" 'BEGIN { exit !(a < 500) }' || { echo "FAIL: no-op run is not under 0.5 s" >&2; exit 1; }
fi

# Cold cache over the dataset: every one of the 4,000 files read and hashed (in parallel).
COLD=$(RUNS=5 median_ms bash -c "rm -f outputs/.cache/content-hashes.tsv; '$HARMOSE' status --pipeline pipeline.json")
echo "harmose status, cold hash cache: median $COLD ms over 5 runs"

# Cold cache: content hashing throughput on one 256 MiB file.
mkdir -p big && head -c $((256 << 20)) /dev/urandom > big/blob.bin
echo '{"stages": {"big": {"kind": "diagnostic-copy", "inputs": {"source": "big"}}}}' > big.json
RUNS=3
HASH=$(median_ms bash -c "rm -rf big-outputs; '$HARMOSE' status --pipeline big.json --outputs big-outputs")
SUM=$(median_ms sha256sum big/blob.bin)
echo "cold hash of 256 MiB: harmose status median $HASH ms ($(awk -v t="$HASH" 'BEGIN { printf "%.0f", 256 / (t / 1000) }') MiB/s), sha256sum median $SUM ms; ratio $(awk -v a="$HASH" -v b="$SUM" 'BEGIN { printf "%.2f", a / b }')"
