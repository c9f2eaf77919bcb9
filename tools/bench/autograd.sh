#!/usr/bin/env bash
# Autograd engine benchmark: forward+backward of (a) a 3-layer MLP 256 wide over 10⁴ rows and
# (b) gather → MLP → scatter-add message passing over 10⁵ edges, side by side with PyTorch (CPU,
# same shapes) when tools/.venv-torch exists, plus achieved GFLOP/s against the sgemm peak
# measured in the same run. Run by `make bench` after the release build.
# Setup of the optional PyTorch side (not needed by make test):
#   python3 -m venv tools/.venv-torch && tools/.venv-torch/bin/pip install torch numpy
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEATS="${REPEATS:-15}"
HARMOSE="${HARMOSE:-.build/release/harmose}"
[ -x "$HARMOSE" ] || swift build -c release --product harmose
swift_out="$(mktemp)"; torch_out="$(mktemp)"
trap 'rm -f "$swift_out" "$torch_out"' EXIT
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-unset}"
"$HARMOSE" bench-autograd --repeats "$REPEATS" | tee "$swift_out"
if [ -x tools/.venv-torch/bin/python ]; then
  tools/.venv-torch/bin/python tools/bench_autograd_torch.py --repeats "$REPEATS" | tee "$torch_out"
else
  echo "(tools/.venv-torch missing: PyTorch side skipped)"
fi
python3 - "$swift_out" "$torch_out" <<'PY'
import json, sys
swift = {r["bench"]: r for r in map(json.loads, open(sys.argv[1]))}
torch = {r["bench"]: r for r in map(json.loads, filter(str.strip, open(sys.argv[2])))}
peak = swift["sgemm_peak"]["gflops"]
print(f"\nsgemm peak (best of square 1024/2048 and the MLP product): {peak:.1f} GFLOP/s ({swift['sgemm_peak']['shape']})")
print(f"{'benchmark':<18}{'HarmoSE median':>16}{'GFLOP/s':>10}{'% peak':>8}{'PyTorch median':>16}{'GFLOP/s':>10}{'speed-up':>10}")
for name in ("mlp", "message_passing"):
    s = swift[name]; t = torch.get(name)
    line = f"{name:<18}{s['median_s']*1e3:>13.1f} ms{s['gflops']:>10.1f}{s['percent_of_sgemm_peak']:>7.0f}%"
    if t:
        line += f"{t['median_s']*1e3:>13.1f} ms{t['gflops']:>10.1f}{t['median_s']/s['median_s']:>9.2f}x"
    print(line)
print("speed-up = PyTorch median / HarmoSE median (> 1: HarmoSE faster)")
PY
