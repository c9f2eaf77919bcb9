#!/usr/bin/env bash
# Large structures: overlap from the basis + tiled, streamed prediction of graphene and hBN
# supercells of ~10², 10³, 10⁴ atoms (10⁵ with LARGE_1E5=1), with the default pipeline's crystal
# model architecture (configs/demo-train.json; trained 1 epoch on data/crystals here — the weights
# do not change the timing). Each structure is POSCAR + info.json only: `harmose predict` computes
# S from the GPAW dzp basis (Debian gpaw-data) and predicts on its sparsity. Wall time and peak RSS
# from /usr/bin/time; the load average is printed (the machine is shared).
set -euo pipefail
cd "$(dirname "$0")/../.."
H=${HARMOSE:-.build/release/harmose}
W=${BENCH_DIR:-outputs/bench-large}
mkdir -p "$W"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
if [ ! -f "$W/model/best.h5" ]; then
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
printf "%-9s %7s %10s %10s %12s %12s %10s\n" material atoms overlap_s predict_s total_s us_per_atom rss_GiB
for m in ${MATERIALS:-graphene hbn}; do
  for s in "${sizes[@]}"; do
    set -- $s
    d="$W/$m-$1x$2"
    python3 tools/large/make_2d_supercell.py "$m" --size "$1" "$2" --out "$d/in" >/dev/null
    atoms=$(python3 -c "import json;print(json.load(open('$d/in/info.json'))['atoms_quantity'])")
    rm -rf "$d/ov" "$d/pred"
    /usr/bin/time -f "%e %M" -o "$d/ov.time" "$H" overlap "$d/in" --out "$d/ov" -q
    /usr/bin/time -f "%e %M" -o "$d/pred.time" "$H" predict --model "$W/model" "$d/in" --out "$d/pred" -q >/dev/null
    read ov_s ov_kb < "$d/ov.time"; read pr_s pr_kb < "$d/pred.time"
    python3 - "$m" "$atoms" "$ov_s" "$pr_s" "$pr_kb" <<'PY'
import sys
m, n, ov, pr, kb = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
print(f"{m:<9} {n:7d} {ov:10.2f} {pr:10.2f} {pr:12.2f} {1e6 * pr / n:12.0f} {kb / 1048576:10.2f}")
PY
  done
done
echo "(predict_s includes computing S from the basis and writing it; total = predict run; load now: $(cut -d' ' -f1-3 /proc/loadavg))"
