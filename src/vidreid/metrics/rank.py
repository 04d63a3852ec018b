"""Rank metrics for re-ID: CMC, mAP and mINP under the standard protocol.

Protocol (Zheng et al., MARS 2016; as in the public evaluators): for each query, gallery items
with the query's pid *and* camid are removed from its ranking (same-camera matches carry no
information); a query with no remaining match is skipped and counted. Ties in distance are
broken by gallery index (a stable sort), so results do not depend on the sort algorithm.

* CMC(k): fraction of valid queries whose first match is within the top k.
* AP: mean over the query's matches of precision at each match's rank; mAP: mean over queries.
* INP (Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook", TPAMI
  2021, Eq. 7): ``num_matches / rank_of_the_last_match``; mINP: mean over queries.

The implementation is vectorised over chunks of queries, so memory is O(chunk x G) whatever Q.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50, chunk_size: int = 256) -> RankResult:
    """CMC, mAP and mINP of a query x gallery distance matrix.

    Args:
        distmat: (Q, G) distances (smaller = more similar); a NumPy array, a torch tensor, or
            any object whose ``[i:j]`` row slices convert to arrays (so a memory-mapped or
            lazily computed matrix works).
        q_pids, g_pids: (Q,), (G,) integer person ids.
        q_camids, g_camids: (Q,), (G,) integer camera ids.
        max_rank: length of the CMC curve; if the gallery is smaller, the curve is padded with
            its last value.
        chunk_size: queries processed at once (memory is O(chunk_size x G)).

    Returns:
        :class:`RankResult`.

    Raises:
        ValueError: shapes disagree, or no query has a match.
    """
    q_pids, g_pids = np.asarray(q_pids).ravel(), np.asarray(g_pids).ravel()
    q_camids, g_camids = np.asarray(q_camids).ravel(), np.asarray(g_camids).ravel()
    Q, G = len(q_pids), len(g_pids)
    if tuple(distmat.shape) != (Q, G) or len(q_camids) != Q or len(g_camids) != G:
        raise ValueError(f"distmat {tuple(distmat.shape)} does not match {Q} queries x {G} gallery items")
    cmc_hits = np.zeros(max_rank, np.int64)
    ap_sum = inp_sum = 0.0
    valid_n = 0
    for s in range(0, Q, chunk_size):
        d = distmat[s:s + chunk_size]
        d = d.detach().cpu().numpy() if hasattr(d, "detach") else np.asarray(d)
        order = np.argsort(d, axis=1, kind="stable")
        qp, qc = q_pids[s:s + chunk_size, None], q_camids[s:s + chunk_size, None]
        gp, gc = g_pids[order], g_camids[order]
        keep = ~((gp == qp) & (gc == qc))
        hit = (gp == qp) & keep
        num_hits = hit.sum(1)
        ok = num_hits > 0
        if not ok.any():
            continue
        keep, hit, num_hits = keep[ok], hit[ok], num_hits[ok]
        kept_rank = np.cumsum(keep, axis=1)  # 1-based rank among kept items
        cum_hits = np.cumsum(hit, axis=1)
        first = np.argmax(hit, axis=1)
        first_rank = kept_rank[np.arange(len(first)), first]  # >= 1
        np.add.at(cmc_hits, np.minimum(first_rank - 1, max_rank)[first_rank <= max_rank], 1)
        prec = np.where(hit, cum_hits / np.maximum(kept_rank, 1), 0.0)
        ap_sum += float((prec.sum(1) / num_hits).sum())
        last = hit.shape[1] - 1 - np.argmax(hit[:, ::-1], axis=1)
        last_rank = kept_rank[np.arange(len(last)), last]
        inp_sum += float((num_hits / last_rank).sum())
        valid_n += int(ok.sum())
    if valid_n == 0:
        raise ValueError("no query has a matching gallery item after excluding same pid + same camid")
    cmc = np.cumsum(cmc_hits) / valid_n
    return RankResult(cmc=cmc, mAP=ap_sum / valid_n, mINP=inp_sum / valid_n,
                      num_valid_queries=valid_n, num_skipped_queries=Q - valid_n)
