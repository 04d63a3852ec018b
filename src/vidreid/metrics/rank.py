"""Rank metrics for re-ID: CMC, mAP (two formulas) and mINP under the standard protocol.

Protocol (Zheng et al., MARS 2016; ``evaluation_mars.m`` of liangzheng06/MARS-evaluation, and the
public evaluators): for each query, gallery items with the query's pid *and* camid are junk
(removed from its ranking: same-camera matches carry no information); a query with no remaining
match is skipped and counted (the official MATLAB code would average a NaN in; MARS has no such
query with the official gallery). Ties in distance are broken by gallery index, as a stable sort
(MATLAB's ``sort``) does, so results do not depend on the sort algorithm.

With a query's matches at 0-based ranks r_1 < ... < r_n of its filtered ranking:

* CMC(k): fraction of valid queries whose first match is within the top k (r_1 < k).
* ``mAP``: AP = (1/n) sum_i i / (r_i + 1), the mean of precision at each match
  ("non-interpolated"; torchreid, fast-reid and AP3D compute this).
* ``mAP_trapezoid``: AP by the trapezoid rule over recall, as the official MARS and Market-1501
  evaluation code (``compute_AP.m``) computes it: AP = (1/n) sum_i (p_i + p'_i) / 2 with
  p_i = i / (r_i + 1) and p'_i = (i - 1) / r_i the precision just before the match (1 when
  r_i = 0, the code's ``old_precision = 1``). Never above ``mAP``; on MARS-like data 1-2 points
  below it (docs/RESULTS.md).
* INP (Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook", TPAMI
  2021, Eq. 7): n / (r_n + 1); mINP: mean over queries.

Every metric derives from the ranks r_i alone, and a match's rank is the number of kept gallery
items closer to the query than it (plus those at an equal distance with a smaller index), which
comparing the row against its few match distances gives without sorting the row: per query two
vectorised comparison passes per match (``<`` and ``<=``; their counts differ by more than one
only at an exact tie, which is then resolved by index). Queries are grouped by their number of
matches so the passes are not padded, chunks run on two threads, and memory is O(chunk x G)
whatever Q.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class RankResult:
    """Attributes:
        cmc: float64 array (max_rank,), CMC(1..max_rank) as fractions in [0, 1].
        mAP: mean of precision at each match, averaged over valid queries, in [0, 1].
        mAP_trapezoid: the official MARS / Market-1501 formula (``compute_AP.m``), in [0, 1].
        mINP: in [0, 1].
        num_valid_queries: queries with at least one match after exclusion.
        num_skipped_queries: queries without any (left out of every mean).
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    num_skipped_queries: int
    mAP_trapezoid: float = float("nan")

    def rank(self, k: int) -> float:
        return float(self.cmc[k - 1])

    def to_dict(self, ranks=(1, 5, 10, 20)) -> dict:
        d = {f"rank{k}": self.rank(k) for k in ranks if k <= len(self.cmc)}
        d.update(mAP=self.mAP, mAP_trapezoid=self.mAP_trapezoid, mINP=self.mINP,
                 num_valid_queries=self.num_valid_queries, num_skipped_queries=self.num_skipped_queries)
        return d


_SUB = 16  # queries compared at once: their rows stay in the CPU cache across the passes


class _Counter:
    """Counts True per row of bool rows of length G, fast: the row's bytes (0 or 1) are added
    as uint64 words in blocks of at most 255 words, so no byte lane carries into the next, and
    only the few block sums are added byte by byte (4x faster than a popcount and a widening
    sum here). Holds a zeroed scratch buffer whose padding after column G stays zero."""

    def __init__(self, G: int, max_rows: int):
        words = -(-G // 8)
        self.L = -(-words // 255)  # blocks per row
        self.B = -(-words // self.L)  # words per block, <= 255
        self.G = G
        self.buf = np.zeros((max_rows, self.L * self.B * 8), dtype=bool)
        self.dtype = np.uint16 if G < 2 ** 16 else np.uint32

    def rows(self, n: int) -> np.ndarray:
        """A (n, G) bool view to write comparisons into."""
        return self.buf[:n, :self.G]

    def count(self, n: int) -> np.ndarray:
        """(n,) int64: True values in each of the first n rows."""
        blocks = self.buf[:n].view(np.uint64).reshape(n, self.L, self.B).sum(axis=2)
        return blocks.view(np.uint8).sum(axis=1, dtype=self.dtype).astype(np.int64)


def _match_ranks(d: np.ndarray, gi: np.ndarray, valid: np.ndarray, counter: _Counter) -> np.ndarray:
    """0-based stable ranks of gallery items ``gi`` in their rows of ``d``.

    Args:
        d: (c, G) float distances of c queries; junk items already set to +inf.
        gi: (c, k) int gallery indices of each row's matches (padding where ``valid`` is False).
        valid: (c, k) bool.
        counter: a :class:`_Counter` for G and at least c * k rows.

    Returns:
        (c, k) int64: for each valid match, the number of items of its row with a smaller
        distance, or an equal distance and a smaller index. Padding entries are meaningless.
    """
    c, G = d.shape
    k = gi.shape[1]
    v = np.take_along_axis(d, gi, axis=1)
    v[~valid] = -np.inf  # counts 0, ignored
    out = counter.rows(c * k).reshape(c, k, G)
    np.less(d[:, None, :], v[:, :, None], out=out)
    lt = counter.count(c * k).reshape(c, k)
    np.less_equal(d[:, None, :], v[:, :, None], out=out)
    le = counter.count(c * k).reshape(c, k)
    for r, i in zip(*np.nonzero(valid & (le - lt > 1))):  # an exact tie with another item: rare
        lt[r, i] += np.count_nonzero(d[r, :gi[r, i]] == v[r, i])
    return lt


def _query_metrics(ranks: np.ndarray, n: np.ndarray):
    """Per-query first-match rank, AP, trapezoid AP and INP from (c, k) match ranks (sorted
    ascending in each row, padding at the end) and (c,) match counts n >= 1."""
    c, k = ranks.shape
    i = np.arange(1, k + 1, dtype=np.float64)[None, :]
    inside = i <= n[:, None]
    r = ranks.astype(np.float64)
    prec = i / (r + 1.0)
    before = np.where(r > 0, (i - 1.0) / np.maximum(r, 1.0), 1.0)  # compute_AP.m's old_precision
    ap = np.where(inside, prec, 0.0).sum(1) / n
    ap_trapz = np.where(inside, (prec + before) / 2.0, 0.0).sum(1) / n
    last = ranks[np.arange(c), n - 1]
    return ranks[:, 0], ap, ap_trapz, n / (last + 1.0)


def _chunk(d: np.ndarray, qp, qc, start, count, order, g_camids, max_rank: int):
    """Partial sums (cmc_hits, AP sum, trapezoid AP sum, INP sum, valid queries) of a chunk of
    query rows ``d`` (c, G); ``order[start[i]:start[i] + count[i]]`` are the gallery items with
    query i's pid."""
    c, G = d.shape
    cmc_hits = np.zeros(max_rank, np.int64)
    sums = np.zeros(3)
    nvalid = 0
    if not count.any():
        return cmc_hits, sums, 0
    if not np.isfinite(np.sum(d)) and not np.isfinite(d).all():  # the sum is one fast pass
        raise ValueError("distmat holds NaN or infinite values")
    # the query's matches (same pid, other camera) and junk (same pid, same camera) per row
    smax = int(count.max())
    ar = np.arange(smax)
    inside = ar[None, :] < count[:, None]
    same = order[np.minimum(start[:, None] + ar[None, :], len(order) - 1)]
    same_cam = g_camids[same] == qc[:, None]
    good = inside & ~same_cam
    n_good = good.sum(1)
    # rows grouped by their number of matches, so the comparison passes are not padded
    rows = np.nonzero(n_good)[0]
    rows = rows[np.argsort(n_good[rows], kind="stable")]
    counter = _Counter(G, min(_SUB, len(rows)) * int(n_good.max()))
    for s in range(0, len(rows), _SUB):
        sub = rows[s:s + _SUB]
        n = n_good[sub]
        k = int(n.max())
        dd = d[sub]  # a copy: junk is set to +inf in it
        junk = inside[sub] & same_cam[sub]
        jr, jc = np.nonzero(junk)
        dd[jr, same[sub][jr, jc]] = np.inf
        # each row's matches first, in gallery index order (stable), padding after
        key = np.where(good[sub], 0, 1)
        pos = np.argsort(key, axis=1, kind="stable")[:, :k]
        gi = np.take_along_axis(same[sub], pos, axis=1)
        valid = np.arange(k)[None, :] < n[:, None]
        ranks = _match_ranks(dd, gi, valid, counter)
        ranks = np.sort(np.where(valid, ranks, G + 1), axis=1)
        first, ap, ap_t, inp = _query_metrics(ranks, n)
        np.add.at(cmc_hits, first[first < max_rank], 1)
        sums += (ap.sum(), ap_t.sum(), inp.sum())
        nvalid += len(sub)
    return cmc_hits, sums, nvalid


def evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50, chunk_size: int = 128,
                  num_threads: int | None = None) -> RankResult:
    """CMC, mAP (both formulas, see the module docstring) and mINP of a query x gallery
    distance matrix.

    Args:
        distmat: (Q, G) finite distances (smaller = more similar), float32 or float64 (other
            dtypes are converted to float64; comparisons are made in the given precision); a
            NumPy array, a torch tensor, or any object whose ``[i:j]`` row slices convert to
            arrays (a memory-mapped or lazily computed matrix works: only ``chunk_size`` rows
            are held at once).
        q_pids, g_pids: (Q,), (G,) integer person ids.
        q_camids, g_camids: (Q,), (G,) integer camera ids.
        max_rank: length of the CMC curve.
        chunk_size: queries processed at once; memory is O(chunk_size x G).
        num_threads: threads over chunks (default: up to 2; NumPy releases the GIL).

    Returns:
        :class:`RankResult`. Ties in distance are broken by gallery index (as a stable sort).

    Raises:
        ValueError: shapes disagree, non-finite distances, or no query has a match.
    """
    q_pids, g_pids = np.asarray(q_pids).ravel(), np.asarray(g_pids).ravel()
    q_camids, g_camids = np.asarray(q_camids).ravel(), np.asarray(g_camids).ravel()
    Q, G = len(q_pids), len(g_pids)
    if tuple(distmat.shape) != (Q, G) or len(q_camids) != Q or len(g_camids) != G:
        raise ValueError(f"distmat {tuple(distmat.shape)} does not match {Q} queries x {G} gallery items")
    order = np.argsort(g_pids, kind="stable")
    sorted_pids = g_pids[order]
    start = np.searchsorted(sorted_pids, q_pids, "left")
    count = np.searchsorted(sorted_pids, q_pids, "right") - start

    def run(s: int):
        d = distmat[s:s + chunk_size]
        d = d.detach().cpu().numpy() if hasattr(d, "detach") else np.asarray(d)
        if d.dtype not in (np.float32, np.float64):
            d = d.astype(np.float64)
        return _chunk(d, q_pids[s:s + chunk_size], q_camids[s:s + chunk_size],
                      start[s:s + chunk_size], count[s:s + chunk_size], order, g_camids, max_rank)

    starts = range(0, Q, chunk_size)
    threads = num_threads or min(2, os.cpu_count() or 1)
    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(threads) as ex:
            parts = list(ex.map(run, starts))
    else:
        parts = [run(s) for s in starts]
    cmc_hits = sum(p[0] for p in parts)
    ap_sum, trapz_sum, inp_sum = sum(p[1] for p in parts)
    valid_n = sum(p[2] for p in parts)
    if valid_n == 0:
        raise ValueError("no query has a matching gallery item after excluding same pid + same camid")
    cmc = np.cumsum(cmc_hits) / valid_n
    return RankResult(cmc=cmc, mAP=ap_sum / valid_n, mINP=inp_sum / valid_n, num_valid_queries=valid_n,
                      num_skipped_queries=Q - valid_n, mAP_trapezoid=trapz_sum / valid_n)


def protocol_ranking(row, q_pid: int, q_camid, g_pids, g_camids, junk_same_camera: bool = True) -> np.ndarray:
    """One query's ranking under the standard protocol, the per-row reading of what
    :func:`evaluate_rank` computes vectorised: gallery indices by ascending distance, ties by
    gallery index (a stable sort), with the junk (the query's pid in the query's camera) left out
    when ``junk_same_camera``. The HTML report's ranked lists and ``scripts/anchor_sweep.py``'s
    list of misses use it, so those two agree by construction; a test checks it against
    :func:`evaluate_rank`.

    Args:
        row: (G,) distances of the query to each gallery item (smaller = more similar).
        q_pid, q_camid: the query's person and camera ids.
        g_pids, g_camids: (G,) the gallery's.

    Returns:
        int64 array of kept gallery indices, nearest first.
    """
    row, gp, gc = np.asarray(row), np.asarray(g_pids), np.asarray(g_camids)
    cand = np.flatnonzero(~((gp == q_pid) & (gc == q_camid))) if junk_same_camera else np.arange(len(gp))
    return cand[np.argsort(row[cand], kind="stable")]


class FeatureDistance:
    """A lazily computed (Q, G) distance matrix: ``[i:j]`` returns rows i..j-1 as float64,
    computed from the features on demand, so :func:`evaluate_rank` never needs the dense matrix
    (50,000 x 50,000 float64 would be 20 GB).

    Args:
        qf: (Q, D) query features; gf: (G, D) gallery features (torch tensors or arrays).
        metric: ``euclidean`` or ``cosine`` (as :func:`vidreid.losses.pairwise_distance`).
    """

    def __init__(self, qf, gf, metric: str = "euclidean"):
        self.qf = torch.as_tensor(qf).double()
        self.gf = torch.as_tensor(gf).double()
        self.metric = metric
        self.shape = (len(self.qf), len(self.gf))
        self.max_rows_requested = 0  # for tests: the largest slice ever materialised

    def __getitem__(self, sl: slice) -> np.ndarray:
        from ..losses.metric import pairwise_distance

        if not isinstance(sl, slice):
            raise TypeError("FeatureDistance supports row slices [i:j] only")
        q = self.qf[sl]
        self.max_rows_requested = max(self.max_rows_requested, len(q))
        return pairwise_distance(q, self.gf, self.metric).numpy()

    def dense(self) -> np.ndarray:
        return self[0:self.shape[0]]
