"""k-reciprocal re-ranking (Zhong, Zheng, Cao, Li, "Re-ranking Person Re-identification with
k-reciprocal Encoding", CVPR 2017), memory-bounded.

The published reference builds several dense (Q+G) x (Q+G) matrices (distances, ranks, V);
at MARS scale that is 11,310^2 x 4 B = 0.5 GB each. This implementation keeps per row only
its ``k1 + 1`` nearest neighbours (computed from the features in row chunks) and the sparse
k-reciprocal weight vectors V (scipy CSR, Eq. 7-9), applies local query expansion as a sparse
product (Eq. 10, k2), and computes the Jaccard distance of query rows with an inverted index
(Eq. 11-12). The output is the (Q, G) distance ``(1 - lambda) * d_J + lambda * d``, where d is
the squared Euclidean distance divided by each row's maximum, as in the reference.

Memory: O(N x k1) for ranks, O(nnz(V)) for V, O(chunk x N) per distance chunk, O(Q x G) out.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def _sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = (a * a).sum(1, keepdim=True) + (b * b).sum(1)[None] - 2.0 * a @ b.t()
    return d.clamp_min_(0.0)


def k_reciprocal_rerank(qf, gf, k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
                        chunk_size: int = 1024) -> np.ndarray:
    """Re-ranked (Q, G) distances.

    Args:
        qf: (Q, D) query features; gf: (G, D) gallery features (float arrays or tensors), or
            None: the queries against themselves (a (Q, Q) result, each item once in the
            neighbour sets; e.g. identity assignment over one set of tracklets).
        k1: k of the k-reciprocal neighbour sets (paper: 20).
        k2: neighbours averaged in local query expansion (paper: 6; 1 disables).
        lambda_value: weight of the original distance (paper: 0.3).
        chunk_size: rows of the (N, N) distance computed at once.

    Returns:
        float32 array (Q, G), or (Q, Q) when ``gf`` is None.

    Raises:
        ValueError: k1 < 1, k2 < 1, lambda outside [0, 1], or fewer than k1 + 1 items.
    """
    if k1 < 1 or k2 < 1 or not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"need k1 >= 1, k2 >= 1, 0 <= lambda <= 1; got {k1}, {k2}, {lambda_value}")
    self_set = gf is None
    feats = (torch.as_tensor(qf) if self_set else torch.cat([torch.as_tensor(qf), torch.as_tensor(gf)])).float()
    Q, N = len(qf), len(feats)
    g0 = 0 if self_set else Q  # the first gallery column among the N items
    if N < k1 + 1:
        raise ValueError(f"re-ranking needs at least k1 + 1 = {k1 + 1} items, got {N}")
    kk = max(k1 + 1, k2)
    rank = np.empty((N, kk), np.int64)  # nearest neighbours of every item (itself first)
    row_max = np.empty(N, np.float32)
    q_orig = np.empty((Q, N - g0), np.float32)
    for s in range(0, N, chunk_size):
        d = _sq_dist(feats[s:s + chunk_size], feats)
        m = d.amax(1).clamp_min_(1e-12)
        d = d / m[:, None]
        row_max[s:s + len(d)] = m.numpy()
        idx = torch.topk(d, kk, dim=1, largest=False, sorted=True).indices
        # stable order among exact ties, as an argsort of the row would give
        rank[s:s + len(d)] = np.take_along_axis(
            idx.numpy(), np.argsort(np.take_along_axis(d.numpy(), idx.numpy(), 1), 1, kind="stable"), 1)
        if s < Q:
            e = min(s + len(d), Q)
            q_orig[s:e] = d[: e - s, g0:].numpy()

    def dist_rows(i: int, cols: np.ndarray) -> np.ndarray:
        return (_sq_dist(feats[i:i + 1], feats[torch.from_numpy(cols)])[0] / float(row_max[i])).numpy()

    half = int(np.around(k1 / 2.0))

    def reciprocal(i: int, k: int) -> np.ndarray:
        fwd = rank[i, :k + 1]
        back = rank[fwd, :k + 1]
        return fwd[(back == i).any(1)]

    rows, cols, vals = [], [], []
    for i in range(N):
        r = reciprocal(i, k1)
        expansion = [r]
        rset = set(r.tolist())
        for c in r:
            rc = reciprocal(int(c), half)
            if len(rset.intersection(rc.tolist())) > 2.0 / 3.0 * len(rc):
                expansion.append(rc)
        e = np.unique(np.concatenate(expansion))
        w = np.exp(-dist_rows(i, e))
        rows.append(np.full(len(e), i))
        cols.append(e)
        vals.append(w / w.sum())
    V = sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(N, N))
    if k2 > 1:  # local query expansion: mean of the V rows of the k2 nearest neighbours
        A = sp.csr_matrix((np.full(N * k2, 1.0 / k2, np.float32), (np.repeat(np.arange(N), k2), rank[:, :k2].ravel())),
                          shape=(N, N))
        V = (A @ V).tocsr()
    Vc = V.tocsc()
    out = np.empty((Q, N - g0), np.float32)
    for i in range(Q):
        lo, hi = V.indptr[i], V.indptr[i + 1]
        ccols, cvals = V.indices[lo:hi], V.data[lo:hi]
        starts, ends = Vc.indptr[ccols], Vc.indptr[ccols + 1]
        lens = ends - starts
        take = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)]) if len(ccols) else np.empty(0, int)
        other_rows = Vc.indices[take]
        mins = np.minimum(np.repeat(cvals, lens), Vc.data[take])
        min_sum = np.bincount(other_rows, weights=mins, minlength=N)[g0:]
        jaccard = 1.0 - min_sum / (2.0 - min_sum)
        out[i] = (1.0 - lambda_value) * jaccard + lambda_value * q_orig[i]
    return out
