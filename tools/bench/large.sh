#!/usr/bin/env bash
# Large structures: overlap from the basis + streamed prediction (stage 1, and a hybrid's stage 2,
# layer by layer over chunks of atoms) of graphene and hBN supercells of ~10², 10³, 10⁴ atoms (10⁵
# with LARGE_1E5=1), with the default pipeline's crystal model architecture
# (configs/demo-train.json; trained 1 epoch on data/crystals here — the weights do not change the
# timing), or the checkpoint MODEL=... (e.g. data/models/crystals/best.h5, the shipped hybrid). Each structure is POSCAR + info.json only: `harmose predict` computes
# S from the GPAW dzp basis (Debian gpaw-data) and predicts on its sparsity. Wall time and peak RSS
# and CPU time (user + sys) from /usr/bin/time; the load average is printed (the machine is shared:
# under load, CPU seconds are the better measure of the work; wall = CPU / cores on a quiet machine).
set -euo pipefail
cd "$(dirname "$0")/../.."
H=${HARMOSE:-.build/release/harmose}
W=${BENCH_DIR:-outputs/bench-large}
mkdir -p "$W"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
M=${MODEL:-$W/model}
if [ -z "${MODEL:-}" ] && [ ! -f "$W/model/best.h5" ]; then
  python3 - "$W/train.json" <<'PY'
import json, sys
c = json.load(open("configs/demo-train.json")); c["epochs"] = 1
json.dump(c, open(sys.argv[1], "w"))
PY
  "$H" train --config "$W/train.json" data/crystals --out "$W/model" -q >/dev/null
fi
sizes=("7 7" "22 23" "71 70")
[ "${LARGE_1E5:-0}" = 1 ] && sizes+=("224 223")
[ -n "${SIZES:-}" ] && IFS=';' read -r -a sizes <<< "$SIZES"      # e.g. SIZES="7 7;22 23"
printf "%-9s %7s %9s %9s %8s %9s %9s %8s %9s  %s\n" material atoms ov_wall_s ov_cpu_s ov_GiB pr_wall_s pr_cpu_s pr_GiB cpu_ms/at load
for m in ${MATERIALS:-graphene hbn}; do
  for s in "${sizes[@]}"; do
    set -- $s
    d="$W/$m-$1x$2"
    python3 tools/large/make_2d_supercell.py "$m" --size "$1" "$2" --out "$d/in" >/dev/null
    atoms=$(python3 -c "import json;print(json.load(open('$d/in/info.json'))['atoms_quantity'])")
    rm -rf "$d/ov" "$d/pred"
    /usr/bin/time -f "%e %U %S %M" -o "$d/ov.time" "$H" overlap "$d/in" --out "$d/ov" -q
    if [ "${OVERLAP_ONLY:-0}" = 1 ]; then echo "0 0 0 0" > "$d/pred.time"; else
      /usr/bin/time -f "%e %U %S %M" -o "$d/pred.time" "$H" predict --model "$M" "$d/in" --out "$d/pred" -q >/dev/null; fi
    python3 - "$m" "$atoms" "$d/ov.time" "$d/pred.time" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import sys
m, n, load = sys.argv[1], int(sys.argv[2]), sys.argv[5]
ow, ou, os_, okb = map(float, open(sys.argv[3]).read().split()[-4:])
pw, pu, ps, pkb = map(float, open(sys.argv[4]).read().split()[-4:])
print(f"{m:<9} {n:7d} {ow:9.1f} {ou + os_:9.1f} {okb / 1048576:8.2f} {pw:9.1f} {pu + ps:9.1f} {pkb / 1048576:8.2f} {1e3 * (pu + ps) / n:9.1f}  {load}")
PY
  done
done
echo "(pr_* = harmose predict on POSCAR + info.json: computes S from the basis, writes it, predicts H; cpu_ms/at = predict CPU per atom; load now: $(cut -d' ' -f1-3 /proc/loadavg))"
