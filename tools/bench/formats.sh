#!/usr/bin/env bash
# Formats benchmark: reading a dataset streamed from an archive vs from a folder.
# Times `harmose inspect` (read + validate every structure, Hermiticity check) on COPIES copies of
# data/molecules (50 PySCF molecules, Float64) and of data/crystals (6 GPAW crystals, Float32 +
# gzip inside HDF5), each as a folder and as .tar, .tar.gz, .tar.xz and .zip archives of it.
# Prints the median of REPEATS runs and the ratio to the folder read.
# Usage: tools/bench/formats.sh   (after `swift build -c release`; `make bench` does both)
set -euo pipefail
cd "$(dirname "$0")/../.."
HARMOSE=${HARMOSE:-.build/release/harmose}
REPEATS=${REPEATS:-7}
COPIES=${COPIES:-8}   # the sets are small: read COPIES copies of each so a run lasts ~1 s
[ -x "$HARMOSE" ] || { echo "build first: swift build -c release" >&2; exit 1; }
for tool in /usr/bin/time bc xz python3; do
  command -v "$tool" > /dev/null || { echo "formats.sh needs $tool (Debian: apt-get install time bc xz-utils)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

time_one() { # prints "median-wall median-cpu (seconds) max-RSS (MiB)" of `harmose inspect $1`
  local path=$1 runs
  "$HARMOSE" inspect "$path" > /dev/null   # warm the page cache
  runs=$(for _ in $(seq "$REPEATS"); do
    /usr/bin/time -f "%e %U %S %M" "$HARMOSE" inspect "$path" 2>&1 > /dev/null | tail -1
  done)
  echo "$(echo "$runs" | awk '{print $1}' | median) $(echo "$runs" | awk '{print $2 + $3}' | median) $(echo "$runs" | awk '{print $4 / 1024}' | median)"
}

# CPU time (user + sys) is the steadier number on a shared machine; wall time is what users see.
printf "%-10s %-8s %10s %10s %8s %10s %8s %10s\n" dataset source "size(MiB)" "wall(s)" "ratio" "cpu(s)" "ratio" "RSS(MiB)"
for set in molecules crystals; do
  src=$work/$set
  for k in $(seq "$COPIES"); do mkdir -p "$src/copy-$k" && cp -r data/$set/. "$src/copy-$k/"; done
  tar -C "$work" -cf "$work/$set.tar" "$set"
  tar -C "$work" -czf "$work/$set.tar.gz" "$set"
  tar -C "$work" -cJf "$work/$set.tar.xz" "$set"
  (cd "$work" && python3 -c "import sys, zipfile, os
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:
    for root, _, files in sorted(os.walk(sys.argv[2])):
        for f in sorted(files): z.write(os.path.join(root, f))" "$work/$set.zip" "$set")
  read -r wall cpu rss <<< "$(time_one "$src")"
  size=$(du -sm "$src" | cut -f1)
  printf "%-10s %-8s %10s %10.3f %8.2f %10.3f %8.2f %10.1f\n" "$set" folder "$size" "$wall" 1 "$cpu" 1 "$rss"
  for ext in tar tar.gz tar.xz zip; do
    f="$work/$set.$ext"
    read -r w c m <<< "$(time_one "$f")"
    size=$(echo "$(stat -c %s "$f") / 1048576" | bc -l)
    printf "%-10s %-8s %10.2f %10.3f %8.2f %10.3f %8.2f %10.1f\n" "$set" "$ext" "$size" "$w" "$(echo "$w / $wall" | bc -l)" "$c" "$(echo "$c / $cpu" | bc -l)" "$m"
  done
done
