#!/usr/bin/env bash
# SO3 kernels: tensor-product throughput (DeepH-E3 default irreps) and exact-table rates.
# Run by `make bench` after the release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
.build/release/harmose bench-so3 --edges "${SO3_BENCH_EDGES:-2000}" --repeats "${SO3_BENCH_REPEATS:-5}"
