"""Gallery search at scale: exact (FAISS flat) against approximate (IVF, HNSW) on synthetic
embeddings, measured side by side in one run.

    python benchmarks/bench_index.py [--n 1000000] [--dim 512] [--queries 1000] [--kinds ivf hnsw]

The gallery imitates re-ID embeddings: ``n / per_id`` identities, each a centre drawn from a
64-dimensional latent space mapped to ``dim`` dimensions (embeddings of a trained network have a
fast-decaying spectrum), plus per-tracklet noise; queries are fresh tracklets of gallery
identities (``--noise``: the noise norm against unit centres). Everything is L2-normalised (cosine / Euclidean rankings then agree). For each index:
build time (training + adding), per-query latency (a batch of ``--queries`` queries, total time
/ queries, on all cores), recall@10 against the exact top 10, and the speed-up over exact search.
One JSON line per measurement, then a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def data(n: int, dim: int, queries: int, per_id: int, seed: int, noise: float):
    rng = np.random.default_rng(seed)
    ids = max(1, n // per_id)
    latent = rng.standard_normal((ids, 64), dtype=np.float32)
    proj = rng.standard_normal((64, dim), dtype=np.float32) / 8.0
    centres = latent @ proj
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    g = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):  # in blocks: the noise of 1M x 512 at once would double the memory
        e = min(n, s + 100_000)
        g[s:e] = centres[np.arange(s, e) % ids] + noise / np.sqrt(dim) * rng.standard_normal((e - s, dim), dtype=np.float32)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    q = centres[rng.integers(0, ids, queries)] + noise / np.sqrt(dim) * rng.standard_normal((queries, dim), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return g, q.astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--per-id", type=int, default=10, help="gallery tracklets per identity")
    ap.add_argument("--noise", type=float, default=0.6,
                    help="per-tracklet noise norm (identity centres have norm 1)")
    ap.add_argument("--kinds", nargs="+", default=["ivf"], choices=["ivf", "hnsw"])
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--ef-search", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--train-size", type=int, default=65536)
    ap.add_argument("--k", type=int, default=10)
    a = ap.parse_args()
    from vidreid.inference.index import GalleryIndex

    print(f"# {platform.machine()}, {os.cpu_count()} cores; gallery {a.n} x {a.dim}, {a.queries} queries, k={a.k}", flush=True)
    t = time.perf_counter()
    g, q = data(a.n, a.dim, a.queries, a.per_id, 0, a.noise)
    print(f"# data: {time.perf_counter() - t:.1f} s", flush=True)
    rows = []

    def timed_search(ix):
        ix.search(q[:10], a.k)  # warm-up
        t0 = time.perf_counter()
        i, _ = ix.search(q, a.k)
        return i, (time.perf_counter() - t0) / len(q)

    t0 = time.perf_counter()
    flat = GalleryIndex(a.dim, "flat").add(g)
    build = time.perf_counter() - t0
    exact, lat_exact = timed_search(flat)
    rows.append({"index": "flat (exact)", "params": "", "build_s": build, "query_ms": 1e3 * lat_exact, "recall": 1.0, "speedup": 1.0})
    print(json.dumps(rows[-1]), flush=True)
    del flat

    def recall(found):
        return float(np.mean([len(set(f) & set(e)) / a.k for f, e in zip(found, exact)]))

    for kind in a.kinds:
        t0 = time.perf_counter()
        ix = GalleryIndex(a.dim, kind, nlist=a.nlist, m=32, ef_construction=80).add(g, train_size=a.train_size)
        build = time.perf_counter() - t0
        sweep = a.nprobe if kind == "ivf" else a.ef_search
        for p in sweep:
            if kind == "ivf":
                ix.index.nprobe = p
                params = f"nlist={a.nlist}, nprobe={p}"
            else:
                ix.index.hnsw.efSearch = p
                params = f"M=32, efSearch={p}"
            found, lat = timed_search(ix)
            rows.append({"index": kind, "params": params, "build_s": build, "query_ms": 1e3 * lat, "recall": recall(found),
                         "speedup": lat_exact / lat})
            print(json.dumps(rows[-1]), flush=True)
        del ix
    print(f"\n| index | parameters | build s | per-query ms | recall@{a.k} | speed-up over exact |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['index']} | {r['params']} | {r['build_s']:.1f} | {r['query_ms']:.3f} | {r['recall']:.3f} | {r['speedup']:.1f}x |")


if __name__ == "__main__":
    main()
