#!/usr/bin/env bash
# SO3 kernels: tensor-product throughput (DeepH-E3 default irreps, the fused op) and exact-table
# rates; then, if a Python with torch + e3nn is available (E3NN_PYTHON, default
# tools/.venv-torch/bin/python), e3nn's TensorProduct on the same product for the ratio, and e3nn's
# FullyConnectedTensorProduct for the fully connected variant.
# Run by `make bench` after the release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
EDGES="${SO3_BENCH_EDGES:-2000}" REPEATS="${SO3_BENCH_REPEATS:-5}"
.build/release/harmose bench-so3 --edges "$EDGES" --repeats "$REPEATS"
PY="${E3NN_PYTHON:-tools/.venv-torch/bin/python}"
if [ -x "$PY" ] && "$PY" -c "import e3nn" 2>/dev/null; then
    "$PY" tools/bench_so3_e3nn.py --edges "$EDGES" --repeats "$REPEATS"
    # The fully connected ("uvw") product: e3nn's FullyConnectedTensorProduct, 2 torch threads.
    "$PY" tools/bench_so3_fctp_e3nn.py --edges "$EDGES" --repeats "$REPEATS" --threads 2
else
    echo "e3nn comparison skipped: no torch + e3nn at $PY (set E3NN_PYTHON)"
fi
