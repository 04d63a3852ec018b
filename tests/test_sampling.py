"""Temporal sampling strategies and the P x K sampler."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from vidreid.data.samplers import NeighbourBatchSampler, PKBatchSampler
from vidreid.data.sampling import TemporalSampler
from vidreid.errors import ConfigError


def test_random_consecutive():
    s = TemporalSampler("random_consecutive", 4, train=True)
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        idx = s(10, rng)
        assert list(idx) == list(range(idx[0], idx[0] + 4))
        starts.add(int(idx[0]))
    assert starts == set(range(7))  # every valid start 0..6 occurs
    assert list(TemporalSampler("random_consecutive", 4, train=False)(10)) == [0, 1, 2, 3]
    # tracklets shorter than the clip: frames drawn with repetition, in order, varying per draw
    draws = {tuple(s(3, rng)) for _ in range(100)}
    assert len(draws) > 3 and all(list(d) == sorted(d) and min(d) >= 0 and max(d) <= 2 for d in draws)
    assert TemporalSampler("random_consecutive", 4, train=True, short="stretch")(3, rng).tolist() == [0, 0, 1, 2]
    assert list(TemporalSampler("random_consecutive", 4, train=False)(3)) == [0, 0, 1, 2]  # test: deterministic
    # stride
    st = TemporalSampler("random_consecutive", 3, train=False, stride=2)
    assert list(st(10)) == [0, 2, 4]


def test_restricted_random():
    s = TemporalSampler("restricted_random", 6, train=True)
    rng = np.random.default_rng(1)
    for _ in range(100):
        idx = s(20, rng)
        bounds = (np.arange(7) * 20) // 6  # [0, 3, 6, 10, 13, 16, 20]
        assert all(bounds[i] <= idx[i] < bounds[i + 1] for i in range(6))
    assert list(TemporalSampler("restricted_random", 6, train=False)(20)) == [0, 3, 6, 10, 13, 16]
    assert list(s(4, rng)) == [0, 0, 1, 2, 2, 3]


def test_evenly_and_all():
    assert list(TemporalSampler("evenly", 5, train=False)(9)) == [0, 2, 4, 6, 8]
    assert list(TemporalSampler("evenly", 4, train=True)(2, np.random.default_rng())) == [0, 0, 1, 1]
    assert list(TemporalSampler("all", 4, train=False)(7)) == list(range(7))


def test_sampling_errors():
    with pytest.raises(ConfigError, match="valid"):
        TemporalSampler("bogus", 4)
    with pytest.raises(ConfigError):
        TemporalSampler("evenly", 0)
    with pytest.raises(ValueError):
        TemporalSampler("random_consecutive", 4, train=True)(10)  # no generator


def test_pk_sampler_batches():
    pids = [0] * 5 + [1] * 2 + [2] * 3 + [3] * 1 + [4] * 4
    s = PKBatchSampler(pids, p=2, k=2, seed=3)
    batches = list(s)
    assert len(batches) == len(s) > 0
    for b in batches:
        idx = [i for i, _ in b]
        c = Counter(pids[i] for i in idx)
        assert len(c) == 2 and all(v == 2 for v in c.values())
    # every tracklet is used in an epoch (an identity's groups cover all its tracklets) unless
    # fewer than P identities had groups left at the end
    used = {i for b in batches for i, _ in b}
    assert len(used) >= len(pids) - 4
    # deterministic per (seed, epoch), different across epochs
    assert batches == list(PKBatchSampler(pids, 2, 2, seed=3))
    s.set_epoch(1)
    assert list(s) != batches


def test_pk_sampler_resume_and_shards():
    pids = np.repeat(np.arange(10), 4)
    s = PKBatchSampler(pids, 4, 2, seed=0)
    full = list(s)
    s.set_epoch(0, start_batch=2)
    assert list(s) == full[2:]
    # distributed: each global batch split in contiguous halves; together the one-process batch
    shards = [list(PKBatchSampler(pids, 4, 2, seed=0, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == len(full) == len(PKBatchSampler(pids, 4, 2, rank=1, world_size=2))
    assert all(a + b == f for a, b, f in zip(shards[0], shards[1], full))
    with pytest.raises(ValueError, match="P=20"):
        PKBatchSampler(pids, 20, 2)
    with pytest.raises(ValueError, match="equal parts over 3"):
        PKBatchSampler(pids, 4, 2, world_size=3)


def test_neighbour_sampler_batches_an_identity_with_its_nearest():
    """Graph sampling (Liao and Shao, CVPR 2022): every batch is an anchor identity and the P - 1
    identities the table names nearest to it; the epoch keeps the P x K sampler's batch count;
    the table travels in the state; a bad table is refused."""
    pids = np.repeat(np.arange(12), 3)
    s = NeighbourBatchSampler(pids, 3, 2, seed=1)
    with pytest.raises(RuntimeError, match="set_neighbours"):
        list(s)
    # identities on a line: the nearest of i are i +- 1, then i +- 2 (ties to the lower)
    pos = np.arange(12.0)
    d = np.abs(pos[:, None] - pos[None]) + np.eye(12) * 1e9
    table = np.argsort(d, axis=1, kind="stable")[:, :2].tolist()
    s.set_neighbours(table)
    batches = list(s)
    assert len(batches) == len(s) == len(PKBatchSampler(pids, 3, 2, seed=1)) > 0
    anchors = []
    for b in batches:
        ids = [int(pids[i]) for i, _ in b]
        groups = [ids[j:j + 2] for j in range(0, 6, 2)]
        assert all(g[0] == g[1] for g in groups)  # K tracklets of one identity, distinct tracklets
        assert len({i for i, _ in b}) == 6
        a = groups[0][0]
        anchors.append(a)
        assert [g[0] for g in groups[1:]] == table[a]
    assert len(set(anchors)) == len(anchors)  # no anchor twice before every identity was one
    # the probes the trainer embeds: one tracklet of each identity, in id order, fixed per (seed, epoch)
    probes = s.probes()
    assert [int(pids[i]) for i in probes] == list(range(12)) and probes == s.probes()
    assert any(s.probes() != NeighbourBatchSampler(pids, 3, 2, seed=1 + k).probes() for k in range(1, 4))
    # deterministic per (seed, epoch, table); resumed inside the epoch from the state
    st = s.state_dict()
    t = NeighbourBatchSampler(pids, 3, 2, seed=0)
    t.load_state_dict({**st, "start_batch": 2})
    assert list(t) == batches[2:]
    # shards: contiguous parts of the same batches
    shards = []
    for r in range(2):
        u = NeighbourBatchSampler(pids, 3, 2, seed=1, rank=r, world_size=2)
        u.set_neighbours(table)
        shards.append(list(u))
    assert all(a + b == f for a, b, f in zip(*shards, batches))
    for bad, msg in (([[1, 2]] * 11, "11 rows for 12"), ([[1]] + table[1:], "row 0 needs 2"),
                     ([[0, 1]] + table[1:], "row 0 names itself"), ([[1, 12]] + table[1:], "outside 0..11")):
        with pytest.raises(ValueError, match=msg):
            s.set_neighbours(bad)


def test_short_tracklets_get_varied_clips_ap3d_rule():
    """AP3D's TemporalRandomCrop: strided window when n >= L * stride, else L distinct frames
    (n >= L) or L frames with repetition (n < L), always sorted."""
    s = TemporalSampler("random_consecutive", 4, train=True, stride=8)
    rng = np.random.default_rng(0)
    for n in (40, 32):  # the strided window fits: consecutive frames 8 apart
        for _ in range(50):
            d = s(n, rng)
            assert list(np.diff(d)) == [8, 8, 8] and d[-1] < n
    for n in (31, 12, 4):  # distinct frames, sorted
        ds = [s(n, rng) for _ in range(200)]
        assert all(len(set(d.tolist())) == 4 and list(d) == sorted(d) and d.max() < n for d in ds)
        assert len({tuple(d) for d in ds}) == 1 if n == 4 else len({tuple(d) for d in ds}) > 20  # 4 of 4: one clip
    for n in (2, 3):
        ds = [s(n, rng) for _ in range(50)]
        assert all(list(d) == sorted(d) and d.max() < n for d in ds) and len({tuple(d) for d in ds}) > 1
    # the old rule froze these clips
    old = TemporalSampler("random_consecutive", 4, train=True, stride=8, short="stretch")
    assert len({tuple(old(20, rng)) for _ in range(20)}) == 1
    with pytest.raises(ConfigError, match="sampling.short"):
        TemporalSampler("random_consecutive", 4, short="loop")


def test_real_mars_short_tracklets_now_vary():
    """On the real MARS training metadata at T = 4, stride 8 (AP3D / STRF), the tracklets whose
    strided window does not fit (the ones the old rule froze) all get more than one clip."""
    import scipy.io

    from .conftest import shared_path

    info = scipy.io.loadmat(str(shared_path("mars_info", "tracks_train_info.mat")))["track_train_info"]
    n = (info[:, 1] - info[:, 0] + 1).astype(int)
    span = 3 * 8 + 1
    frozen = n < span
    assert 0.30 < frozen.mean() < 0.45  # about 37% of 8,298 tracklets
    s = TemporalSampler("random_consecutive", 4, train=True, stride=8)
    rng = np.random.default_rng(0)
    for length in sorted(set(n[frozen].tolist()))[:40]:
        assert len({tuple(s(length, rng)) for _ in range(30)}) > 1, length


@pytest.mark.parametrize("n", [1, 3, 7, 8, 9, 15, 20, 31, 32, 33, 63, 64, 65, 100, 250])
@pytest.mark.parametrize("L,stride", [(8, 4), (8, 1), (4, 8), (32, 1)])
def test_clip_plan_as_trained_takes_every_frame_once_in_full_clips(n, L, stride):
    s = TemporalSampler("all", L, train=False, stride=stride, clips="as_trained")
    plan = s.clip_plan(n)
    taken = np.concatenate([idx[take] for idx, take in plan])
    assert sorted(taken.tolist()) == list(range(n))  # every frame exactly once
    for idx, take in plan:
        assert len(idx) == L and len(take) == L  # always the training length
        assert (np.diff(idx) >= 0).all() and idx.min() >= 0 and idx.max() < n
        if n >= L:
            step = set(np.diff(idx).tolist())
            assert len(step) == 1 and step.pop() == max(1, min(stride, n // L))  # one stride, as trained


@pytest.mark.parametrize("n", [1, 5, 32, 33, 70])
def test_clip_plan_ap3d_is_consecutive_with_a_shorter_last_clip(n):
    plan = TemporalSampler("all", 32, train=False).clip_plan(n)
    assert [len(i) for i, _ in plan] == [min(32, n - s) for s in range(0, n, 32)]
    assert np.concatenate([i for i, _ in plan]).tolist() == list(range(n))
    assert all(t.all() for _, t in plan)


def test_clip_plan_rejects_unknown_name():
    with pytest.raises(ConfigError, match="sampling.clips"):
        TemporalSampler("all", 8, train=False, clips="bogus")
