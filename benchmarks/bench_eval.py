"""Rank-metric speed on the real MARS protocol: 1,980 queries x 11,310 gallery (the official
evaluation, ``all_test``) and x 9,330 (torchreid's, ``exclude_query``) with the pids and camids
of ../shared/data/mars_info, random distances; vidreid's evaluate_rank against a
per-query NumPy reference in the style of torchreid's Python evaluator, in the same run.

    python benchmarks/bench_eval.py [--mars-info ../shared/data/mars_info] [--large 50000]

``--large N`` also evaluates an N x N problem from random features through a lazily computed
distance matrix and reports its peak memory (the dense float64 matrix would take 8 N^2 bytes).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def reference_per_query(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """Per-query loop, the way torchreid's Python path evaluates (argsort, then per query a
    filtered match vector, cumulative sums and a per-position precision list)."""
    indices = np.argsort(distmat, axis=1, kind="stable")
    matches = (g_pids[indices] == q_pids[:, None]).astype(np.int32)
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(len(q_pids)):
        order = indices[i]
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        raw = matches[i][keep]
        if not raw.any():
            continue
        cmc = raw.cumsum()
        pos = np.where(raw == 1)[0]
        all_inp.append(cmc[pos.max()] / (pos.max() + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        precision = [x / (k + 1.0) for k, x in enumerate(raw.cumsum())]
        all_ap.append((np.asarray(precision) * raw).sum() / raw.sum())
    return np.mean(all_cmc, 0), float(np.mean(all_ap)), float(np.mean(all_inp))


def mars_ids(info: Path, gallery: str):
    from vidreid.data.datasets import MARS

    with tempfile.TemporaryDirectory() as d:
        os.symlink(info.resolve(), Path(d) / "info")
        s = MARS(d, verify_files=False, gallery=gallery).split()
    f = lambda ts, a: np.array([getattr(t, a) for t in ts])  # noqa: E731
    return f(s.query, "pid"), f(s.gallery, "pid"), f(s.query, "camid"), f(s.gallery, "camid")


def main() -> None:
    from vidreid.metrics import FeatureDistance, evaluate_rank

    ap = argparse.ArgumentParser()
    ap.add_argument("--mars-info", default="../shared/data/mars_info")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--large", type=int, default=0)
    a = ap.parse_args()
    info = Path(a.mars_info)
    if not (info / "tracks_test_info.mat").is_file():
        raise SystemExit(f"{info} lacks the MARS metadata (tracks_test_info.mat); pass --mars-info")
    rng = np.random.default_rng(0)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores")
    for gallery in ("all_test", "exclude_query"):
        qp, gp, qc, gc = mars_ids(info, gallery)
        dist = rng.random((len(qp), len(gp)))
        times = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            r = evaluate_rank(dist, qp, gp, qc, gc)
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        cmc, mAP, mINP = reference_per_query(dist, qp, gp, qc, gc)
        t_ref = time.perf_counter() - t
        assert np.allclose(cmc, r.cmc, atol=1e-6) and abs(mAP - r.mAP) < 1e-6 and abs(mINP - r.mINP) < 1e-6
        best, med = min(times), float(np.median(times))
        print(f"MARS {gallery}: {len(qp)} x {len(gp)}, {r.num_valid_queries} valid queries")
        print(f"  evaluate_rank: best {best:.3f} s, median {med:.3f} s of {a.repeats}")
        print(f"  per-query NumPy reference: {t_ref:.2f} s  (results equal to 1e-6)")
        print(f"  speed-up (reference / median): {t_ref / med:.0f}x")
    if a.large:
        n, dim = a.large, 64
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        ids = rng.integers(0, n // 10, n)
        qf = rng.standard_normal((n, dim)).astype(np.float32)
        gf = qf + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
        lazy = FeatureDistance(qf, gf)
        t = time.perf_counter()
        r = evaluate_rank(lazy, ids, ids, np.zeros(n, int), np.ones(n, int), chunk_size=256)
        el = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"{n} x {n} through FeatureDistance: {el:.1f} s, mAP {r.mAP:.4f}, peak RSS {peak / 1024:.0f} MiB "
              f"(before: {base / 1024:.0f} MiB; a dense float64 matrix would be {8 * n * n / 2**30:.1f} GiB)")


if __name__ == "__main__":
    main()
