#!/usr/bin/env python3
"""CPU per training step by phase and thread, from a `perf record -g` of `harmose train|refine`.

Usage (release build, frame pointers; issue #14's accounting in BENCHMARKS.md):
  perf record -F 2000 -g -o run.data .build/release/harmose train --threads 2 … -q
  perf script -i run.data -F tid,time,ip,sym | swift demangle --simplified > run.txt
  python3 tools/bench/perf_phases.py run.txt 2000 STEPS

Each sample counts for the first phase (rules below, in order) that a frame of its stack matches,
within the window from the first to the last sample inside a training step. The main thread is the
one that runs the optimiser; every other thread is "other". Samples whose leaf is in a library
without frame pointers (libc's malloc, OpenBLAS) lose their stack: "unattributed", listed by leaf.
Prints ms of CPU per step = samples / frequency / STEPS.
"""
import collections, re, sys

RULES = [
    ("checkpoint", r"Checkpoint|CheckpointWriter|HDF5|H5"),
    ("validation", r"evaluate\("),
    ("forward+backward", r"fillSlots"),
    ("slot sums", r"loadSlotSums|sumSlots"),
    ("clipping", r"clipGradientNorm"),
    ("adam", r"Adam\."),
    ("weight average", r"ExponentialMovingAverage|WeightAverage"),
    ("replica sync", r"synchronise"),
    ("replica release", r"releaseReplicaValues"),
    ("rest of step", r"DataParallel\.step"),
    ("rest of map", r"DataParallel\.map"),
    ("rest of epoch", r"runExclusive"),
]


def samples(path):
    cur = None
    for line in open(path):
        if re.match(r"^\s*\d+\s+[\d.]+:\s*$", line):
            if cur:
                yield cur
            tid, t = line.split()[:2]
            cur = (int(tid), float(t.rstrip(":")), [])
        elif line.strip() and cur:
            parts = line.strip().split(None, 1)
            cur[2].append(parts[1] if len(parts) > 1 else "?")
    if cur:
        yield cur


def main():
    path, hz, steps = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    all_ = list(samples(path))
    in_step = [s for s in all_ if any("DataParallel.step" in f for f in s[2])]
    t0, t1 = min(s[1] for s in in_step), max(s[1] for s in in_step)
    main_tid = collections.Counter(s[0] for s in all_ if any(re.search(r"Adam\.", f) for f in s[2])).most_common(1)[0][0]
    phases, leaves = collections.Counter(), collections.Counter()
    for tid, t, frames in all_:
        if not t0 <= t <= t1:
            continue
        who = "main" if tid == main_tid else "other"
        stack = " | ".join(frames)
        phase = next((name for name, pattern in RULES if re.search(pattern, stack)), "unattributed")
        if phase == "unattributed":
            leaves[(who, frames[0][:60] if frames else "?")] += 1
        phases[(who, phase)] += 1
    print(f"window {t1 - t0:.2f} s; CPU ms per step ({steps:.0f} steps, {hz:.0f} Hz)")
    for (who, phase), n in sorted(phases.items(), key=lambda x: -x[1]):
        print(f"  {who:6s} {phase:18s} {1000 * n / hz / steps:8.3f}")
    print("unattributed, by leaf:")
    for (who, leaf), n in leaves.most_common(10):
        print(f"  {who:6s} {1000 * n / hz / steps:8.3f}  {leaf}")


if __name__ == "__main__":
    main()
