"""Rank metrics against hand-computed cases and a straightforward per-query reference."""

from __future__ import annotations

import numpy as np
import pytest

from vidreid.metrics import evaluate_rank


def reference(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """Per-query reference: stable sort, drop same pid + camid, then CMC/AP/INP by definition;
    the trapezoid AP walks the kept ranking as compute_AP.m does (precision before the first
    item is 1)."""
    cmc_all, aps, inps, traps = [], [], [], []
    for i in range(len(q_pids)):
        order = sorted(range(len(g_pids)), key=lambda j: (distmat[i, j], j))
        kept = [j for j in order if not (g_pids[j] == q_pids[i] and g_camids[j] == q_camids[i])]
        m = [g_pids[j] == q_pids[i] for j in kept]
        if not any(m):
            continue
        first = m.index(True)
        cmc = [1.0 if r >= first else 0.0 for r in range(max_rank)]
        hits, precs, trap, old_p, old_rec = 0, [], 0.0, 1.0, 0.0
        for r, x in enumerate(m):
            if x:
                hits += 1
                precs.append(hits / (r + 1))
            p, rec = hits / (r + 1), hits / sum(m)
            trap += (rec - old_rec) * (old_p + p) / 2
            old_p, old_rec = p, rec
        last = len(m) - 1 - m[::-1].index(True)
        cmc_all.append(cmc)
        aps.append(np.mean(precs))
        inps.append(hits / (last + 1))
        traps.append(trap)
    reference.trapezoid = float(np.mean(traps))
    return np.mean(cmc_all, 0), float(np.mean(aps)), float(np.mean(inps)), len(aps)


def test_hand_computed():
    # one query (pid 1, cam 1); gallery sorted by distance: [pid2, pid1 cam1 (excluded), pid1 cam2, pid3, pid1 cam3]
    d = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    r = evaluate_rank(d, [1], [2, 1, 1, 3, 1], [1], [2, 1, 2, 2, 3], max_rank=4)
    # kept ranking: pid2, pid1, pid3, pid1 -> matches at ranks 2 and 4
    assert list(r.cmc) == [0, 1, 1, 1]
    assert r.mAP == pytest.approx((1 / 2 + 2 / 4) / 2)
    # trapezoid: (recall step 1/2) x (precision just before + at the match) / 2 at each match
    assert r.mAP_trapezoid == pytest.approx(0.5 * (0 / 1 + 1 / 2) / 2 + 0.5 * (1 / 3 + 2 / 4) / 2)
    # a first match at rank 1: the precision before it is compute_AP.m's initial 1
    r1 = evaluate_rank(d, [1], [1, 2, 1, 3, 1], [1], [2, 2, 1, 2, 2], max_rank=4)
    assert r1.mAP_trapezoid == pytest.approx(0.5 * (1 + 1) / 2 + 0.5 * (1 / 3 + 2 / 4) / 2)
    assert r.mINP == pytest.approx(2 / 4)
    assert r.num_valid_queries == 1 and r.num_skipped_queries == 0


def test_ties_broken_by_gallery_index():
    d = np.zeros((1, 3))
    r = evaluate_rank(d, [5], [7, 5, 5], [0], [1, 1, 1], max_rank=3)
    assert list(r.cmc) == [0, 1, 1]  # index 0 (a non-match) comes first
    r2 = evaluate_rank(d, [5], [5, 7, 5], [0], [1, 1, 1], max_rank=3)
    assert list(r2.cmc) == [1, 1, 1]


def test_query_without_match_is_skipped_and_counted():
    d = np.array([[0.1, 0.2], [0.3, 0.1]])
    r = evaluate_rank(d, [1, 2], [1, 3], [0, 0], [1, 1], max_rank=2)
    assert r.num_valid_queries == 1 and r.num_skipped_queries == 1
    with pytest.raises(ValueError, match="no query"):
        evaluate_rank(d, [4, 5], [1, 3], [0, 0], [1, 1])


def test_shape_mismatch():
    with pytest.raises(ValueError, match="does not match"):
        evaluate_rank(np.zeros((2, 3)), [1, 2], [1, 2], [0, 0], [0, 0])


@pytest.mark.parametrize("seed", range(6))
def test_randomized_against_reference(seed):
    rng = np.random.default_rng(seed)
    Q, G = int(rng.integers(5, 40)), int(rng.integers(10, 120))
    n_ids = int(rng.integers(3, 15))
    q_pids, g_pids = rng.integers(0, n_ids, Q), rng.integers(0, n_ids + 5, G)  # extra ids: distractors
    q_cam, g_cam = rng.integers(0, 3, Q), rng.integers(0, 3, G)
    d = rng.integers(0, 6, (Q, G)).astype(float)  # many ties
    cmc, mAP, mINP, nv = reference(d, q_pids, g_pids, q_cam, g_cam, max_rank=20)
    r = evaluate_rank(d, q_pids, g_pids, q_cam, g_cam, max_rank=20, chunk_size=int(rng.integers(1, 9)))
    assert r.num_valid_queries == nv
    np.testing.assert_allclose(r.cmc, cmc, atol=1e-6)
    assert abs(r.mAP - mAP) <= 1e-6 and abs(r.mINP - mINP) <= 1e-6
    assert abs(r.mAP_trapezoid - reference.trapezoid) <= 1e-9 and r.mAP_trapezoid <= r.mAP + 1e-12


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_dtypes_compare_in_their_own_precision(dtype):
    """float32 distances are compared as float32 (two values equal in float32 tie, as a sort of
    the float32 matrix would order them); the result equals the reference on the same values."""
    rng = np.random.default_rng(7)
    Q, G = 30, 400
    q_pids, g_pids = rng.integers(0, 10, Q), rng.integers(0, 12, G)
    q_cam, g_cam = rng.integers(0, 3, Q), rng.integers(0, 3, G)
    d = (rng.random((Q, G)) * 50).astype(dtype)
    cmc, mAP, mINP, nv = reference(d, q_pids, g_pids, q_cam, g_cam, max_rank=20)
    r = evaluate_rank(d, q_pids, g_pids, q_cam, g_cam, max_rank=20, chunk_size=7)
    np.testing.assert_allclose(r.cmc, cmc, atol=1e-12)
    assert abs(r.mAP - mAP) <= 1e-12 and abs(r.mAP_trapezoid - reference.trapezoid) <= 1e-12


def test_many_matches_per_query_and_threads_agree():
    """Queries with 1 to 150 matches (grouped by count internally) on 1 and 2 threads."""
    rng = np.random.default_rng(11)
    Q, G = 70, 900
    g_pids = np.concatenate([np.full(150, 0), rng.integers(1, 40, G - 150)])
    q_pids = rng.integers(0, 40, Q)
    q_cam, g_cam = rng.integers(0, 4, Q), rng.integers(0, 4, G)
    d = rng.random((Q, G))
    cmc, mAP, mINP, nv = reference(d, q_pids, g_pids, q_cam, g_cam, max_rank=30)
    for threads in (1, 2):
        r = evaluate_rank(d, q_pids, g_pids, q_cam, g_cam, max_rank=30, chunk_size=16, num_threads=threads)
        np.testing.assert_allclose(r.cmc, cmc, atol=1e-12)
        assert abs(r.mAP - mAP) <= 1e-12 and abs(r.mINP - mINP) <= 1e-12
        assert abs(r.mAP_trapezoid - reference.trapezoid) <= 1e-12


@pytest.mark.parametrize("seed", range(3))
def test_protocol_ranking_is_evaluate_ranks_ranking(seed):
    """The per-query ranking the report and the scripts show gives evaluate_rank's CMC (ties and
    junk included), and leaves out exactly the query's pid in the query's camera."""
    from vidreid.metrics import protocol_ranking

    rng = np.random.default_rng(seed)
    Q, G = 25, 80
    q_pids, g_pids = rng.integers(0, 8, Q), rng.integers(0, 10, G)
    q_cam, g_cam = rng.integers(0, 3, Q), rng.integers(0, 3, G)
    d = rng.integers(0, 5, (Q, G)).astype(float)
    hits, valid = np.zeros(G), 0
    for i in range(Q):
        order = protocol_ranking(d[i], q_pids[i], q_cam[i], g_pids, g_cam)
        junk = set(np.flatnonzero((g_pids == q_pids[i]) & (g_cam == q_cam[i])))
        assert set(order) == set(range(G)) - junk and len(order) == G - len(junk)
        assert all((d[i, a], a) < (d[i, b], b) for a, b in zip(order[:-1], order[1:]))
        m = np.flatnonzero(g_pids[order] == q_pids[i])
        if len(m):
            hits[m[0]:] += 1
            valid += 1
        assert len(protocol_ranking(d[i], q_pids[i], q_cam[i], g_pids, g_cam, junk_same_camera=False)) == G
    r = evaluate_rank(d, q_pids, g_pids, q_cam, g_cam, max_rank=G)
    np.testing.assert_allclose(r.cmc, hits / valid, atol=1e-12)
