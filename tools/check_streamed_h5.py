#!/usr/bin/env python3
"""Checks a streamed DeepH-dock operator file (hamiltonian_pred.h5 / overlap.h5 written by
`harmose predict` / `harmose overlap` through StreamingOperatorWriter) with h5py, i.e. with another
HDF5 library than the one that wrote it (h5py bundles its own).

For every dataset (atom_pairs, chunk_boundaries, chunk_shapes, entries): chunked, shuffle + gzip;
every stored chunk (read raw, filter mask 0) inflated with zlib and un-shuffled here equals what
h5py's own filters decode for those rows; the dock layout is consistent (boundaries = running sum
of rows*cols, entries as long as the last boundary). With --against OTHER.h5 (e.g. the same
prediction written by an older harmose, whose chunks libhdf5 compressed): same shapes, same values
bit for bit, and the number of stored chunks that are byte-identical.

Usage: /work/venv-h5/bin/python tools/check_streamed_h5.py FILE.h5 [--against OTHER.h5]
(needs numpy + h5py; exits non-zero on any mismatch).
"""
import argparse
import sys
import zlib

import h5py
import numpy as np

NAMES = ["atom_pairs", "chunk_boundaries", "chunk_shapes", "entries"]


def unshuffle(raw, itemsize, nbytes):
    data = np.frombuffer(raw, dtype=np.uint8)
    n = nbytes // itemsize
    if itemsize == 1 or n <= 1:
        return data.tobytes()
    body = data[: n * itemsize].reshape(itemsize, n).T.reshape(-1)
    return body.tobytes() + data[n * itemsize:].tobytes()


def check(path, against=None):
    failures = []
    f = h5py.File(path, "r")
    g = h5py.File(against, "r") if against else None
    identical = total = 0
    for name in NAMES:
        d = f[name]
        if d.chunks is None or d.compression != "gzip" or not d.shuffle:
            failures.append(f"{name}: not chunked shuffle+gzip ({d.chunks}, {d.compression}, {d.shuffle})")
            continue
        rows = d.shape[0]
        crow = d.chunks[0]
        itemsize = d.dtype.itemsize
        chunk_bytes = int(np.prod(d.chunks)) * itemsize
        if g is not None:
            e = g[name]
            if e.shape != d.shape or e.chunks != d.chunks or e.dtype != d.dtype:
                failures.append(f"{name}: shape/chunks/dtype {d.shape} {d.chunks} {d.dtype} vs {e.shape} {e.chunks} {e.dtype}")
                g = None
        for start in range(0, rows, crow):
            offset = (start,) + (0,) * (d.ndim - 1)
            mask, stored = d.id.read_direct_chunk(offset)
            if mask != 0:
                failures.append(f"{name} row {start}: filter mask {mask}")
                continue
            raw = unshuffle(zlib.decompress(stored), itemsize, chunk_bytes)
            if len(raw) != chunk_bytes:
                failures.append(f"{name} row {start}: inflated {len(raw)} bytes, chunk is {chunk_bytes}")
                continue
            ours = np.frombuffer(raw, dtype=d.dtype).reshape(d.chunks)[: min(crow, rows - start)]
            theirs = d[start: start + crow]
            if not np.array_equal(ours.view(np.uint8), np.ascontiguousarray(theirs).view(np.uint8)):
                failures.append(f"{name} row {start}: zlib + unshuffle here differs from h5py's decoding")
            if g is not None:
                other = g[name]
                if not np.array_equal(np.ascontiguousarray(theirs).view(np.uint8),
                                      np.ascontiguousarray(other[start: start + crow]).view(np.uint8)):
                    failures.append(f"{name} row {start}: values differ from {against}")
                identical += other.id.read_direct_chunk(offset)[1] == stored
            total += 1
    bounds = f["chunk_boundaries"][:]
    shapes = f["chunk_shapes"][:]
    if len(bounds) != len(shapes) + 1 or bounds[0] != 0 or not np.array_equal(np.diff(bounds), shapes[:, 0] * shapes[:, 1]):
        failures.append("chunk_boundaries is not the running sum of chunk_shapes rows*cols")
    if f["entries"].shape[0] != bounds[-1] or f["atom_pairs"].shape[0] != len(shapes):
        failures.append("entries / atom_pairs lengths disagree with chunk_boundaries / chunk_shapes")
    print(f"{path}: {len(shapes)} blocks, {f['entries'].shape[0]} entries, {total} chunks checked with h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version})")
    if against:
        print(f"  against {against}: values equal bit for bit: {'no' if any('values differ' in x for x in failures) else 'yes'}; "
              f"stored chunks byte-identical: {identical} of {total}")
    for x in failures[:20]:
        print("  FAIL", x)
    return not failures


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file")
    p.add_argument("--against")
    a = p.parse_args()
    sys.exit(0 if check(a.file, a.against) else 1)
