#!/usr/bin/env python3
"""Helpers for tools/peer/deephe3_large.sh (DeepH-E3 beside `harmose predict` on a 10³-atom cell).

Runs in the DeepH-E3 venv (h5py, numpy). Sub-commands:
  stamp                      copy stdin to stdout, each line prefixed with seconds since start
                             (the phase times of a DeepH-E3 log come from these stamps)
  phases LOG                 DeepH-E3 eval log (stamped) -> JSON: startup, graph, model build, predict
                             (and its network / get_H / fill_blocks parts), write seconds
  compare DEEPH_PRED LEGACY_S OURS_PRED DOCK_S DFT_H
                             both predictions must be full Hamiltonians on their S's blocks (every
                             block, S's shapes, finite, non-zero); prints counts, shapes, on-site
                             levels and |H| beside a DFT graphene H
  timefile FILE              /usr/bin/time -v output -> "wall cpu rss_gib"
"""
import json
import re
import sys
import time


def stamp():
    t0 = time.monotonic()
    for line in sys.stdin:
        sys.stdout.write(f"[{time.monotonic() - t0:9.3f}] {line}")
        sys.stdout.flush()
    print(f"[{time.monotonic() - t0:9.3f}] (end of output)")


def phases(path):
    """Phase boundaries from the messages kernel.eval prints (DeepH-E3 f011d5f)."""
    marks, parts = {}, {}
    predict = 0.0
    for line in open(path, errors="replace"):
        m = re.match(r"\[\s*([0-9.]+)\] (.*)", line)
        if not m:
            continue
        t, text = float(m.group(1)), m.group(2)
        for key, needle in (("graph_start", "Preparation of graph data"),
                            ("find_models", "Finding trained models"),
                            ("model_start", "Loading model 0"),
                            ("predict_start", "Getting model 0 output"),
                            ("output", "------- Output -------")):
            if needle in text and key not in marks:
                marks[key] = t
        c = re.search(r"Finished, cost ([0-9.]+) seconds", text)
        if c:
            predict += float(c.group(1))
        p = re.match(r"\[timed\] (\w+) ([0-9.]+)", text)
        if p:
            parts[p.group(1)] = float(p.group(2))
            marks.setdefault("timed", t)
        marks["last"] = t
    need = ("graph_start", "find_models", "model_start", "predict_start", "output")
    if any(k not in marks for k in need):
        sys.exit(f"{path}: DeepH-E3 log lacks {[k for k in need if k not in marks]} (failed run?)")
    print(json.dumps({
        "startup_s": round(marks["graph_start"], 2),               # python + torch + e3nn imports
        "graph_s": round(marks["find_models"] - marks["graph_start"], 2),  # overlaps.h5 -> graph .pkl -> load
        "model_build_s": round(marks["predict_start"] - marks["model_start"], 2),
        "predict_s": round(predict, 2),                            # network + H assembly ("Finished, cost")
        "write_s": round(marks.get("timed", marks["last"]) - marks["output"], 2),
        **{f"{k}_s": round(v, 2) for k, v in parts.items()},   # inside predict_s (deephe3_eval_timed.py)
        **({"network_s": round(predict - sum(parts.values()), 2)} if parts else {}),  # the rest of predict_s
    }))


def blocks(path):
    """{(R1, R2, R3, i, j) 0-based: block} from a DeepH legacy (one dataset per block, 1-based
    atoms) or DeepH-dock (atom_pairs / chunk_* / entries, 0-based) HDF5 file."""
    import h5py
    import numpy as np
    with h5py.File(path, "r") as f:
        if "atom_pairs" in f:
            pairs, bounds, shapes = f["atom_pairs"][()], f["chunk_boundaries"][()], f["chunk_shapes"][()]
            entries = f["entries"][()]
            return {tuple(int(x) for x in p): entries[b0:b1].reshape(sh)
                    for p, b0, b1, sh in zip(pairs, bounds[:-1], bounds[1:], shapes)}
        out = {}
        for name in f.keys():
            r = json.loads(name)
            out[(r[0], r[1], r[2], r[3] - 1, r[4] - 1)] = np.asarray(f[name][()])
        return out


def compare(deeph_pred, legacy_s, ours_pred, dock_s, dft_h):
    """DeepH-E3's and HarmoSE's predictions (legacy and dock layouts, so orbital orders differ:
    only order-free numbers are compared) against their S files and a DFT graphene H."""
    import numpy as np
    bad = []
    on_site = lambda bl: np.mean([np.trace(b) / b.shape[0] for k, b in bl.items() if k[:3] == (0, 0, 0) and k[3] == k[4]])
    norm = lambda bl: np.mean([np.abs(b).mean() for b in bl.values()])
    dft = blocks(dft_h)
    print(f"DFT graphene 2x2 (training data, {dft_h.split('/')[-2]}): {len(dft)} blocks, "
          f"mean on-site level {on_site(dft):.3f} eV, mean |H| {norm(dft):.4f} eV")
    for tool, pred_path, s_path in (("DeepH-E3", deeph_pred, legacy_s), ("HarmoSE", ours_pred, dock_s)):
        pred, s = blocks(pred_path), blocks(s_path)
        shapes = {}
        for k, b in s.items():
            shapes[b.shape] = shapes.get(b.shape, 0) + 1
        missing, extra = set(s) - set(pred), set(pred) - set(s)
        wrong = [k for k in set(s) & set(pred) if pred[k].shape != s[k].shape]
        finite = all(np.all(np.isfinite(b)) for b in pred.values())
        herm = max(float(np.abs(b - pred[(-k[0], -k[1], -k[2], k[4], k[3])].T).max())
                   for k, b in pred.items() if (-k[0], -k[1], -k[2], k[4], k[3]) in pred)
        print(f"{tool}: {len(pred)} blocks (S: {len(s)}, shapes {shapes}); missing {len(missing)}, extra {len(extra)}, "
              f"wrong shape {len(wrong)}, finite {finite}; mean on-site level {on_site(pred):.3f} eV, "
              f"mean |H| {norm(pred):.4f} eV, max |H_ij(R) - H_ji(-R)^T| {herm:.2g} eV")
        if missing or extra or wrong or not finite or norm(pred) == 0:
            bad.append(tool)
    if bad:
        sys.exit(f"NOT a full Hamiltonian on S's blocks: {', '.join(bad)}")
    print("both predictions are full Hamiltonians on S's blocks (every block, S's shapes, finite, non-zero)")


def timefile(path):
    text = open(path).read()
    def field(name):
        m = re.search(re.escape(name) + r":\s*(\S+)", text)
        if not m:
            sys.exit(f"{path}: no '{name}' (not /usr/bin/time -v output)")
        return m.group(1)
    h, _, rest = field("Elapsed (wall clock) time (h:mm:ss or m:ss)").rpartition(":")
    wall = float(rest) + sum(float(x) * 60 ** (i + 1) for i, x in enumerate(reversed(h.split(":"))) if x)
    cpu = float(field("User time (seconds)")) + float(field("System time (seconds)"))
    rss = float(field("Maximum resident set size (kbytes)")) / 1048576
    print(f"{wall:.2f} {cpu:.2f} {rss:.3f}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"stamp": lambda: stamp(), "phases": lambda: phases(*args),
     "compare": lambda: compare(*args), "timefile": lambda: timefile(*args)}[cmd]()
