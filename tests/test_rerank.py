"""k-reciprocal re-ranking against a dense step-by-step reference, and on a case where it is
known to change the ranking."""

from __future__ import annotations

import numpy as np
import pytest

from vidreid.metrics import evaluate_rank
from vidreid.metrics.rerank import k_reciprocal_rerank


def dense_reference(qf, gf, k1, k2, lam):
    """Zhong et al. 2017, Sec. 3-4, with dense matrices (small N only)."""
    x = np.concatenate([qf, gf]).astype(np.float64)
    N, Q = len(x), len(qf)
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    d = d / d.max(1, keepdims=True)
    rank = np.argsort(d, axis=1, kind="stable")

    def R(i, k):  # k-reciprocal nearest neighbours, Eq. 4
        return {int(j) for j in rank[i, :k + 1] if i in rank[j, :k + 1]}

    V = np.zeros((N, N))
    for i in range(N):
        r = R(i, k1)
        e = set(r)
        for c in r:  # Eq. 6: add the half-size sets of candidates that overlap enough
            rc = R(c, int(np.around(k1 / 2)))
            if len(rc & r) > 2 / 3 * len(rc):
                e |= rc
        e = sorted(e)
        w = np.exp(-d[i, e])
        V[i, e] = w / w.sum()  # Eq. 7
    if k2 > 1:
        V = np.stack([V[rank[i, :k2]].mean(0) for i in range(N)])  # Eq. 10
    jac = np.array([[1 - np.minimum(V[i], V[j]).sum() / np.maximum(V[i], V[j]).sum() for j in range(N)]
                    for i in range(Q)])  # Eq. 11
    return ((1 - lam) * jac + lam * d[:Q])[:, Q:]


@pytest.mark.parametrize("seed,k1,k2", [(0, 5, 3), (1, 8, 1), (2, 4, 2)])
def test_matches_dense_reference(seed, k1, k2):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1, (6, 8))
    ids = rng.integers(0, 6, 40)
    x = centers[ids] + 0.6 * rng.normal(0, 1, (40, 8))
    qf, gf = x[:10], x[10:]
    got = k_reciprocal_rerank(qf, gf, k1=k1, k2=k2, lambda_value=0.3, chunk_size=7)
    np.testing.assert_allclose(got, dense_reference(qf, gf, k1, k2, 0.3), atol=2e-5)


def test_changes_a_wrong_rank1():
    """On a line: the query (identity A, at 0.55) lies nearest to an outlier of identity B (at
    0.60) whose own neighbours are the rest of B (around 1.0), while A's tight cluster (around
    0.30) and the query are mutual k-nearest neighbours. Plain ranking puts B first; the
    k-reciprocal encoding puts A first."""
    a = 0.3 + np.array([-0.03, -0.01, 0.01, 0.03])
    b = 1.0 + np.array([-0.02, -0.01, 0.0, 0.01, 0.02])
    gf = np.concatenate([[0.6], a, b])[:, None] * np.array([[1.0, 0.0]])
    qf = np.array([[0.55, 0.0]])
    g_pids, g_cams = np.array([2] + [1] * 4 + [2] * 5), np.ones(10, int)
    d0 = ((qf[:, None] - gf[None]) ** 2).sum(-1)
    before = evaluate_rank(d0, [1], g_pids, [0], g_cams, max_rank=5)
    after = evaluate_rank(k_reciprocal_rerank(qf, gf, k1=4, k2=1, lambda_value=0.1), [1], g_pids, [0], g_cams, max_rank=5)
    assert d0.argmin() == 0 and before.rank(1) == 0.0
    assert after.rank(1) == 1.0 and after.mAP > before.mAP


def test_bad_arguments():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError):
        k_reciprocal_rerank(x, x, k1=0)
    with pytest.raises(ValueError, match="at least"):
        k_reciprocal_rerank(x, x, k1=20)
