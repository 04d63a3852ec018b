"""Rank-metric speed on the real MARS protocol: 1,980 queries x 11,310 gallery (the official
evaluation, ``all_test``) and x 9,330 (torchreid's, ``exclude_query``) with the pids and camids
of ../shared/data/mars_info and random float32 distances (every match anywhere in the ranking:
the worst case for vidreid's evaluator, which compares each row against its match distances).

vidreid's ``evaluate_rank`` is timed interleaved with a reference in the same run, best of
``--repeats``:

* torchreid's Cython evaluator (``rank_cy.evaluate_cy``) when ``--torchreid-cython DIR`` names
  a folder holding it built from source (KaiyangZhou/deep-person-reid,
  ``torchreid/metrics/rank_cylib``: ``python setup.py build_ext --inplace`` there); it takes the
  float32 matrix as torchreid hands it over;
* otherwise a per-query NumPy loop in the style of torchreid's Python evaluator.

Results are checked equal (CMC, mAP, mINP) before any time is printed. ``--isa both`` (the
default) also runs the whole comparison again in a child process with NumPy's AVX-512 kernels
disabled (``NPY_DISABLE_CPU_FEATURES``), i.e. as an AVX2-only CPU runs it, so one command shows
both. ``--gap`` prints, on pid-centred random features at three noise levels, both mAP formulas
on the official gallery (``mAP`` and ``mAP_trapezoid``, the official ``compute_AP.m``).

    python benchmarks/bench_eval.py --torchreid-cython /tmp/rankcy [--gap] [--large 50000]

``--large N`` also evaluates an N x N problem from random features through a lazily computed
distance matrix and reports its peak memory (the dense float64 matrix would take 8 N^2 bytes).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
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


def mars_ids(info: Path, gallery: str, with_positions: bool = False):
    """(query pids, gallery pids, query camids, gallery camids[, each query's gallery index])."""
    from vidreid.data.datasets import MARS

    with tempfile.TemporaryDirectory() as d:
        os.symlink(info.resolve(), Path(d) / "info")
        s = MARS(d, verify_files=False, gallery=gallery).split()
    f = lambda ts, a: np.array([getattr(t, a) for t in ts])  # noqa: E731
    out = f(s.query, "pid"), f(s.gallery, "pid"), f(s.query, "camid"), f(s.gallery, "camid")
    if with_positions:
        pos = {t.name: j for j, t in enumerate(s.gallery)}
        out += (np.array([pos[t.name] for t in s.query]),)
    return out


def simd_level() -> str:
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_features__ as feats
    disabled = os.environ.get("NPY_DISABLE_CPU_FEATURES", "")
    have512 = any(v for k, v in feats.items() if k.startswith("AVX512") or k == "X86_V4")
    if disabled:
        return f"AVX-512 kernels disabled (NPY_DISABLE_CPU_FEATURES={disabled!r}): AVX2-only"
    return "AVX-512 kernels on" if have512 else "AVX2 (no AVX-512 on this CPU)"


def avx512_names() -> list[str]:
    """NumPy's dispatch targets that use AVX-512 (names differ between NumPy versions)."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__ as targets
    except ImportError:
        from numpy.core._multiarray_umath import __cpu_dispatch__ as targets
    return [t for t in targets if t.startswith("AVX512") or t == "X86_V4"]


def compare_speed(info: Path, repeats: int, cython_dir: str | None) -> None:
    from vidreid.metrics import evaluate_rank

    rank_cy = None
    if cython_dir:
        sys.path.insert(0, cython_dir)
        import rank_cy  # noqa: F811
    rng = np.random.default_rng(0)
    ref_name = "torchreid Cython (rank_cy.evaluate_cy)" if rank_cy else "per-query NumPy reference"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; NumPy {np.__version__}: {simd_level()}")
    for gallery in ("all_test", "exclude_query"):
        qp, gp, qc, gc = mars_ids(info, gallery)
        dist = rng.random((len(qp), len(gp)), dtype=np.float32)
        i64 = lambda a: np.ascontiguousarray(a, dtype=np.int64)  # noqa: E731
        if rank_cy is not None:
            def ref():
                return rank_cy.evaluate_cy(dist, i64(qp), i64(gp), i64(qc), i64(gc), 50, False)
        else:
            def ref():
                return reference_per_query(dist, qp, gp, qc, gc)
        t_ours, t_ref = [], []
        for _ in range(repeats):  # interleaved: the two see the same machine state
            t = time.perf_counter()
            r = evaluate_rank(dist, qp, gp, qc, gc)
            t_ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            out = ref()
            t_ref.append(time.perf_counter() - t)
        cmc, mAP = out[0], float(out[1])
        assert np.allclose(cmc[:50], r.cmc[:50], atol=1e-6) and abs(mAP - r.mAP) < 1e-6, (cmc[:5], mAP, r.mAP)
        print(f"MARS {gallery}: {len(qp)} x {len(gp)}, {r.num_valid_queries} valid queries (results equal to 1e-6)")
        print(f"  vidreid evaluate_rank: best {min(t_ours):.3f} s, median {np.median(t_ours):.3f} s of {repeats}")
        print(f"  {ref_name}: best {min(t_ref):.3f} s, median {np.median(t_ref):.3f} s")
        print(f"  speed-up (best / best): {min(t_ref) / min(t_ours):.1f}x")


def map_gap(info: Path) -> None:
    """Both mAP formulas on the official gallery: each gallery tracklet's feature is its pid's
    centre (64-D standard normal) plus noise sigma x N(0, I); queries use their own gallery
    tracklet's feature (the official gallery holds the queries); Euclidean distance."""
    from vidreid.metrics import FeatureDistance, evaluate_rank

    qp, gp, qc, gc, qpos = mars_ids(info, "all_test", with_positions=True)
    rng = np.random.default_rng(0)
    ids = np.unique(gp)
    centres = dict(zip(ids, rng.standard_normal((len(ids), 64))))
    print("mAP formulas on the official MARS gallery (1,980 x 11,310), pid-centred features:")
    print("| noise sigma | rank-1 | mAP (mean precision) | mAP_trapezoid (compute_AP.m) | difference |")
    print("|---|---|---|---|---|")
    for sigma in (1.0, 1.25, 1.5):
        g = np.stack([centres[p] for p in gp]) + sigma * rng.standard_normal((len(gp), 64))
        r = evaluate_rank(FeatureDistance(g[qpos], g), qp, gp, qc, gc)
        print(f"| {sigma} | {100 * r.cmc[0]:.2f} | {100 * r.mAP:.2f} | {100 * r.mAP_trapezoid:.2f} | "
              f"{100 * (r.mAP - r.mAP_trapezoid):+.2f} |")


def main() -> None:
    from vidreid.metrics import FeatureDistance, evaluate_rank

    ap = argparse.ArgumentParser()
    ap.add_argument("--mars-info", default="../shared/data/mars_info")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--torchreid-cython", default=None, help="folder holding torchreid's built rank_cy module")
    ap.add_argument("--isa", choices=("both", "native", "avx2"), default="both",
                    help="both: this CPU's NumPy kernels, then a child run with AVX-512 kernels disabled")
    ap.add_argument("--gap", action="store_true", help="print both mAP formulas on pid-centred features")
    ap.add_argument("--large", type=int, default=0)
    a = ap.parse_args()
    info = Path(a.mars_info)
    if not (info / "tracks_test_info.mat").is_file():
        raise SystemExit(f"{info} lacks the MARS metadata (tracks_test_info.mat); pass --mars-info")
    compare_speed(info, a.repeats, a.torchreid_cython)
    if a.isa == "both":
        names = avx512_names()
        if names:
            print()
            env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=" ".join(names))
            cmd = [sys.executable, __file__, "--mars-info", str(info), "--repeats", str(a.repeats), "--isa", "avx2"]
            if a.torchreid_cython:
                cmd += ["--torchreid-cython", a.torchreid_cython]
            subprocess.run(cmd, env=env, check=True)
    if a.gap:
        print()
        map_gap(info)
    if a.large:
        rng = np.random.default_rng(0)
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
