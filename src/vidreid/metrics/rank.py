"""Rank metrics for re-ID: CMC, mAP and mINP under the standard protocol.

Protocol (Zheng et al., MARS 2016; as in the public evaluators): for each query, gallery items
with the query's pid *and* camid are removed from its ranking (same-camera matches carry no
information); a query with no remaining match is skipped and counted. Ties in distance are
broken by gallery index (a stable sort), so results do not depend on the sort algorithm.

* CMC(k): fraction of valid queries whose first match is within the top k.
* AP: mean over the query's matches of precision at each match's rank; mAP: mean over queries.
* INP (Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook", TPAMI
  2021, Eq. 7): ``num_matches / rank_of_the_last_match``; mINP: mean over queries.

The implementation never argsorts a row: it sorts each row's values (SIMD sort), places the
query's same-pid items by binary search, and derives every metric from the ranks of the
matches alone; chunks of queries run on two threads. Memory is O(chunk x G) whatever Q.
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
        mAP, mINP: fractions in [0, 1].
        num_valid_queries: queries with at least one match after exclusion.
        num_skipped_queries: queries without any (left out of every mean).
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    num_skipped_queries: int

    def rank(self, k: int) -> float:
        return float(self.cmc[k - 1])

    def to_dict(self, ranks=(1, 5, 10, 20)) -> dict:
        d = {f"rank{k}": self.rank(k) for k in ranks if k <= len(self.cmc)}
        d.update(mAP=self.mAP, mINP=self.mINP, num_valid_queries=self.num_valid_queries,
                 num_skipped_queries=self.num_skipped_queries)
        return d


def _batched_searchsorted(sorted_rows: np.ndarray, values: np.ndarray, right: bool) -> np.ndarray:
    """Row-wise searchsorted: (c, G) sorted rows, (c, K) values -> (c, K) int64 insertion points."""
    return torch.searchsorted(torch.from_numpy(sorted_rows), torch.from_numpy(np.ascontiguousarray(values)),
                              right=right).numpy()


def _chunk(d: np.ndarray, qp, qc, start, count, order, g_camids, max_rank: int):
    """Partial sums (cmc_hits, AP sum, INP sum, valid queries) of one chunk of query rows.

    Exact without argsort: each row's values are sorted once; every gallery item with the
    query's pid is placed in its row by binary search (items with a smaller distance), plus the
    items at an exactly equal distance and a smaller gallery index (ties broken by index);
    excluded items (same pid and camid) ranked earlier are then subtracted to get each match's
    rank in the query's filtered ranking.
    """
    c, G = d.shape
    cmc_hits = np.zeros(max_rank, np.int64)
    smax = int(count.max()) if c else 0
    if smax == 0:
        return cmc_hits, 0.0, 0.0, 0
    if not np.isfinite(d).all():
        raise ValueError("distmat holds NaN or infinite values")
    srt = np.sort(d, axis=1)
    ar = np.arange(smax)
    valid = ar[None, :] < count[:, None]
    gi = order[np.minimum(start[:, None] + ar[None, :], len(order) - 1)]  # same-pid gallery items, index order
    dv = np.take_along_axis(d, gi, axis=1)
    rank = _batched_searchsorted(srt, dv, right=False)  # items strictly closer
    n_equal = _batched_searchsorted(srt, dv, right=True) - rank  # >= 1: the item itself
    for r, k in zip(*np.nonzero(valid & (n_equal > 1))):  # exact ties: rare with real distances
        rank[r, k] += np.count_nonzero(d[r, :gi[r, k]] == dv[r, k])
    same_cam = g_camids[gi] == qc[:, None]
    is_match, is_excl = valid & ~same_cam, valid & same_cam
    n_match = is_match.sum(1)
    ok = n_match > 0
    if not ok.any():
        return cmc_hits, 0.0, 0.0, 0
    big = G + 1
    r_match = np.sort(np.where(is_match, rank, big), axis=1)[ok]
    r_excl = np.sort(np.where(is_excl, rank, big), axis=1)[ok]
    n_match = n_match[ok]
    kept = r_match - _batched_searchsorted(r_excl, r_match, right=False)  # 0-based rank among kept items
    mvalid = ar[None, :] < n_match[:, None]
    first = kept[:, 0]
    np.add.at(cmc_hits, first[first < max_rank], 1)
    prec = np.where(mvalid, (ar[None, :] + 1) / (kept + 1.0), 0.0)
    ap = prec.sum(1) / n_match
    inp = n_match / (kept[np.arange(len(kept)), n_match - 1] + 1.0)
    return cmc_hits, float(ap.sum()), float(inp.sum()), int(ok.sum())


def evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50, chunk_size: int = 256,
                  num_threads: int | None = None) -> RankResult:
    """CMC, mAP and mINP of a query x gallery distance matrix.

    Args:
        distmat: (Q, G) finite distances (smaller = more similar); a NumPy array, a torch
            tensor, or any object whose ``[i:j]`` row slices convert to arrays (a memory-mapped
            or lazily computed matrix works: only ``chunk_size`` rows are held at once).
        q_pids, g_pids: (Q,), (G,) integer person ids.
        q_camids, g_camids: (Q,), (G,) integer camera ids.
        max_rank: length of the CMC curve.
        chunk_size: queries processed at once; memory is O(chunk_size x G).
        num_threads: threads over chunks (default: up to 2; NumPy's sort releases the GIL).

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
        return _chunk(np.asarray(d, np.float64), q_pids[s:s + chunk_size], q_camids[s:s + chunk_size],
                      start[s:s + chunk_size], count[s:s + chunk_size], order, g_camids, max_rank)

    starts = range(0, Q, chunk_size)
    threads = num_threads or min(2, os.cpu_count() or 1)
    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(threads) as ex:
            parts = list(ex.map(run, starts))
    else:
        parts = [run(s) for s in starts]
    cmc_hits = sum(p[0] for p in parts)
    ap_sum = sum(p[1] for p in parts)
    inp_sum = sum(p[2] for p in parts)
    valid_n = sum(p[3] for p in parts)
    if valid_n == 0:
        raise ValueError("no query has a matching gallery item after excluding same pid + same camid")
    cmc = np.cumsum(cmc_hits) / valid_n
    return RankResult(cmc=cmc, mAP=ap_sum / valid_n, mINP=inp_sum / valid_n,
                      num_valid_queries=valid_n, num_skipped_queries=Q - valid_n)


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
