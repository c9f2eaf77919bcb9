#!/usr/bin/env bash
# Autograd engine benchmark: forward+backward of (a) a 3-layer MLP 256 wide over 10⁴ rows and
# (b) gather → MLP → scatter-add message passing over 10⁵ edges, side by side with PyTorch (CPU,
# float32, same shapes, same thread count) when tools/.venv-torch exists, plus achieved GFLOP/s
# against the sgemm peak measured in the same run. Run by `make bench` after the release build.
#
# OpenBLAS 0.3.21 picks its slow SSE3 "Prescott" kernels on CPUs it does not recognise (these VMs'
# "Intel Xeon Processor"); `harmose` then relaunches itself with the AVX2 "Haswell" kernels
# (Linalg/BLASKernels.swift). On AVX-512 CPUs the "SkylakeX" kernels are faster still, so unless
# OPENBLAS_CORETYPE is already set this script exports SkylakeX there. It reports the sgemm peak of
# all three choices.
#
# Optional PyTorch side (never needed by make test):
#   python3 -m venv tools/.venv-torch && tools/.venv-torch/bin/pip install torch numpy
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEATS="${REPEATS:-15}"
HARMOSE="${HARMOSE:-.build/release/harmose}"
[ -x "$HARMOSE" ] || swift build -c release --product harmose
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

quick=(bench-autograd --repeats 3 --rows 16 --edges 16 --nodes 4)
detected_peak="$(env -u OPENBLAS_CORETYPE HARMOSE_KEEP_BLAS_KERNELS=1 "$HARMOSE" "${quick[@]}" | head -1)"
relaunch_peak="$(env -u OPENBLAS_CORETYPE "$HARMOSE" "${quick[@]}" | head -1)"
if [ -z "${OPENBLAS_CORETYPE:-}" ] && grep -m1 '^flags' /proc/cpuinfo | grep -qw avx512bw; then
  export OPENBLAS_CORETYPE=SkylakeX
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-unset} repeats=$REPEATS"
echo "$detected_peak" > "$out/detected"; echo "$relaunch_peak" > "$out/relaunch"
"$HARMOSE" bench-autograd --repeats "$REPEATS" --threads 1 | tee "$out/threads1"
"$HARMOSE" bench-autograd --repeats "$REPEATS" | tee "$out/all-cores"
if [ -x tools/.venv-torch/bin/python ]; then
  tools/.venv-torch/bin/python tools/bench_autograd_torch.py --repeats "$REPEATS" | tee "$out/torch"
else
  echo "(tools/.venv-torch missing: PyTorch side skipped)"; : > "$out/torch"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$out" <<'PY'
import json, os, sys
d = sys.argv[1]
def load(name):
    return {r["bench"]: r for r in map(json.loads, filter(str.strip, open(os.path.join(d, name))))}
detected, relaunch = load("detected")["sgemm_peak"], load("relaunch")["sgemm_peak"]
one, allc, torch = load("threads1"), load("all-cores"), load("torch")
peak = allc["sgemm_peak"]
print(f"\nsgemm peak, same run: {peak['gflops']:.1f} GFLOP/s ({peak['shape']}, OpenBLAS core {peak['blas_core']}, "
      f"{int(peak['threads'])} threads)")
print(f"  other kernels (quick runs): OpenBLAS's own detection {detected['blas_core']} {detected['gflops']:.1f} GFLOP/s; "
      f"harmose's relaunch default {relaunch['blas_core']} {relaunch['gflops']:.1f} GFLOP/s")
print(f"sgemm by CPU time: {peak['gflops_per_cpu_s']:.1f} GFLOP per CPU-second (all threads)")
print(f"{'benchmark':<17}{'engine':<22}{'median':>10}{'CPU/run':>10}{'GFLOP/s':>9}{'% peak':>8}{'% peak(CPU)':>12}{'PyTorch/engine':>16}")
for name in ("mlp", "message_passing"):
    t = torch.get(name)
    rows = [("HarmoSE 1 thread", one[name]), (f"HarmoSE {allc[name]['threads']} threads", allc[name])] + ([("PyTorch " + t["torch"], t)] if t else [])
    for label, r in rows:
        pct = 100 * r["gflops"] / peak["gflops"]
        flops = r["gflops"] * r["median_s"]
        pct_cpu = 100 * flops / r["cpu_s_per_run"] / peak["gflops_per_cpu_s"]
        ratio = f"{t['median_s'] / r['median_s']:>15.2f}x" if t and not label.startswith("PyTorch") else ""
        print(f"{name:<17}{label:<22}{r['median_s']*1e3:>8.1f}ms{r['cpu_s_per_run']*1e3:>8.0f}ms{r['gflops']:>9.1f}{pct:>7.0f}%{pct_cpu:>11.0f}%{ratio}")
print("PyTorch/engine = PyTorch median ÷ HarmoSE median (> 1: HarmoSE faster). FLOPs count matrix products only.")
print("% peak(CPU) = (GFLOP per CPU-second of the run) ÷ (sgemm GFLOP per CPU-second): efficiency independent of other load.")
PY
