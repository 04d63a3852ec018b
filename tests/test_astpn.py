"""ASTPN (Xu et al., ICCV 2017): SPP length, attention, pair symmetry, the hinge loss, and a
training step through the trainer's batch path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidreid.losses import CompositeLoss, SiameseHingeLoss
from vidreid.models import create_model
from vidreid.models.astpn import spatial_pyramid_pool


@pytest.mark.parametrize("H,W", [(23, 15), (30, 14), (8, 8), (37, 21), (64, 33)])
def test_spp_length_constant(H, W):
    out = spatial_pyramid_pool(torch.randn(2, 32, H, W))
    assert out.shape == (2, 32 * (64 + 16 + 4 + 1))


def test_spp_uses_eq1_windows_when_exact():
    # 16 x 16 map, m = 4: window ceil(16/4) = 4, stride 4 -> plain 4x4 max-pool bins
    x = torch.arange(256.0).view(1, 1, 16, 16)
    out = spatial_pyramid_pool(x, levels=(4,))
    torch.testing.assert_close(out, torch.nn.functional.max_pool2d(x, 4, 4).flatten(1))


def _states(n, T, N=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, T, N, generator=g)


def test_attention_vectors_are_probability_vectors():
    m = create_model("astpn", 0, height=64, width=32)
    P, G = _states(3, 5), _states(3, 7, seed=1)
    m.U_att.data = torch.randn(6, 6)  # N = 6 for this test
    vp, vg, ap, ag = m.attentive_pool(P, G)
    assert ap.shape == (3, 5) and ag.shape == (3, 7)
    torch.testing.assert_close(ap.sum(1), torch.ones(3))
    torch.testing.assert_close(ag.sum(1), torch.ones(3))
    assert (ap >= 0).all() and (ag >= 0).all()
    # Eq. 5
    torch.testing.assert_close(vp, torch.einsum("nt,ntd->nd", ap, P))


def test_swapping_probe_and_gallery_swaps_representations():
    m = create_model("astpn", 0, height=64, width=32)
    m.U_att.data = torch.randn(6, 6)
    P, G = _states(2, 4), _states(2, 9, seed=2)
    vp, vg, _, _ = m.attentive_pool(P, G)
    m.U_att.data = m.U_att.data.t().contiguous()  # A^T = tanh(G U^T P^T)
    vg2, vp2, _, _ = m.attentive_pool(G, P)
    torch.testing.assert_close(vp, vp2)
    torch.testing.assert_close(vg, vg2)


def test_pair_distance_batched_equals_per_pair_and_is_pair_dependent():
    m = create_model("astpn", 0, height=64, width=32).eval()
    q = list(_states(3, 4, N=128))
    g = list(_states(4, 4, N=128, seed=3))
    d = m.pair_distance(q, g)
    for i in range(3):
        for j in range(4):
            vp, vg, _, _ = m.attentive_pool(q[i][None], g[j][None])
            assert abs(float((vp - vg).norm()) - float(d[i, j])) < 1e-5
    # variable lengths take the per-pair path
    d2 = m.pair_distance([q[0][:3]] + q[1:], g)
    assert d2.shape == (3, 4)
    # the probe's pooled vector depends on the gallery sequence
    vp1, _, _, _ = m.attentive_pool(q[0][None], g[0][None])
    vp2, _, _, _ = m.attentive_pool(q[0][None], g[1][None])
    assert not torch.allclose(vp1, vp2)


def test_hinge_loss_hand_computed():
    d = torch.tensor([0.5, 2.0, 4.0, 1.0])
    same = torch.tensor([1.0, 0.0, 0.0, 1.0])
    # 0.5 + max(0, 3 - 2) + max(0, 3 - 4) + 1.0 = 0.5 + 1 + 0 + 1 -> mean 0.625
    assert float(SiameseHingeLoss(3.0)(d, same)) == pytest.approx(0.625)


def test_training_pairs_and_losses():
    m = create_model("astpn", 4, height=64, width=32)
    m.train()
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    cams = torch.tensor([1, 2, 1, 2, 1, 1, 2, 1])
    torch.manual_seed(0)
    out = m(torch.randn(8, 5, 3, 64, 32), flow=torch.randn(8, 5, 2, 64, 32), labels=labels, camids=cams)
    assert out.aux["pair_same"].sum() == 8 and len(out.aux["pair_same"]) == 16  # one positive + one negative each
    loss = CompositeLoss([{"name": "siamese_hinge", "input": "pair_sqdist", "target": "pair_same", "margin": 3.0},
                          {"name": "cross_entropy", "input": "pair_logits", "target": "pair_labels", "weight": 2.0}])
    total, parts = loss(out, labels)
    assert torch.isfinite(total) and set(parts) == {"siamese_hinge", "cross_entropy"}
    total.backward()
    assert m.U_att.grad.abs().sum() > 0 and m.conv1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("spatial,temporal", [("pool", "mean"), ("pool", "attentive"), ("spp", "mean")])
def test_variants_build_and_run(spatial, temporal):
    m = create_model("astpn", 3, spatial=spatial, temporal=temporal, height=64, width=32).eval()
    assert m(torch.randn(2, 3, 3, 64, 32), flow=torch.randn(2, 3, 2, 64, 32)).embedding.shape == (2, 128)


def test_yuv_standardised_input():
    from vidreid.data.transforms import ClipTransform

    tf = ClipTransform(16, 8, train=False, crop=4, color="yuv_std")
    frames = np.random.default_rng(0).integers(0, 255, (2, 16, 8, 3), dtype=np.uint8)
    clip, _ = tf(frames, tf.draw(None))
    assert clip.shape == (2, 3, 12, 4)
    torch.testing.assert_close(clip.mean((2, 3)), torch.zeros(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(clip.std((2, 3), unbiased=False), torch.ones(2, 3), atol=1e-4, rtol=0)


def test_config_trains_one_epoch_and_tests_both_ways(tiny_tree, tmp_path):
    import shutil

    from vidreid.config import load_config
    from vidreid.data.datasets import build_dataset
    from vidreid.data.flow import compute_flow_cache
    from vidreid.engine.evaluator import evaluate_split
    from vidreid.engine.trainer import Trainer

    root = tmp_path / "prid"
    shutil.copytree(tiny_tree("prid2011"), root)
    compute_flow_cache(build_dataset("prid2011", root), "lk")
    ov = [f"data.root={root}", "data.height=64", "data.width=32", "model.args.height=56", "model.args.width=24",
          "data.num_workers=0", "data.p=3", "data.train_sampling.seq_len=4", "data.test_sampling.seq_len=4",
          "schedule.epochs=1", f"train.output_dir={tmp_path / 'o'}", "train.progress=false", "data.split_id=0"]
    assert load_config("astpn/prid2011").data.split_id == "all"  # the paper recipe runs the 10 splits
    cfg = load_config("astpn/prid2011", ov)
    tr = Trainer(cfg)
    m = tr.fit()
    assert m["num_valid_queries"] == 6
    pw = evaluate_split(tr.model, tr.split, load_config("astpn/prid2011", ov + ["test.mode=pairwise"]))
    assert pw["num_valid_queries"] == 6 and 0 <= pw["mAP"] <= 1


def test_pair_sampler_one_pair_per_batch_alternating():
    """Sec. 4.1.1: batches of one pair, positive and negative in turn, equal numbers per epoch;
    the positive partner from the other camera; the negative from another person."""
    from vidreid.data.samplers import PairBatchSampler

    pids = [1, 1, 2, 2, 3, 3, 4, 4]
    cams = [1, 2, 1, 2, 1, 2, 1, 2]
    s = PairBatchSampler(pids, cams, seed=0)
    batches = list(s)
    assert len(batches) == len(s) == 8 and all(len(b) == 2 for b in batches)
    same = [pids[b[0][0]] == pids[b[1][0]] for b in batches]
    assert same == [True, False] * 4
    for b, sm in zip(batches, same):
        (i, _), (j, _) = b
        assert cams[i] != cams[j] and i != j
    s.set_epoch(1)
    assert [b[0][0] for b in s] != [b[0][0] for b in batches]  # a new order each epoch
    s.set_epoch(0, 3)
    assert list(s) == batches[3:]  # resumable mid-epoch


def test_pair_sampler_ranks_make_equal_steps():
    """Under a process group every rank gets whole pairs and the same number of them: an odd
    epoch (an identity with one tracklet gives its negative pair only) drops its last pair,
    and says so; the ranks' pairs are the one-process epoch's, in turn."""
    from vidreid.data.samplers import PairBatchSampler

    pids, cams = [1, 1, 2, 2, 3], [1, 2, 1, 2, 1]  # pid 3: one tracklet -> 5 pairs per epoch
    one = list(PairBatchSampler(pids, cams, seed=0))
    assert len(one) == 5
    r0, r1 = (PairBatchSampler(pids, cams, seed=0, rank=r, world_size=2) for r in (0, 1))
    b0, b1 = list(r0), list(r1)
    assert len(b0) == len(b1) == len(r0) == len(r1) == 2 and r0.dropped_for_ranks == 1
    assert b0 == one[0:4:2] and b1 == one[1:4:2]


def test_given_pairs_train_one_pair_per_step(tiny_tree, tmp_path):
    from vidreid.config import load_config
    from vidreid.engine.trainer import Trainer
    from vidreid.models import create_model

    m = create_model("astpn", num_classes=4, in_channels=3, height=56, width=24, pair_mode="given").train()
    out = m(torch.randn(2, 4, 3, 56, 24), labels=torch.tensor([1, 1]), camids=torch.tensor([1, 2]))
    assert out.aux["pair_sqdist"].shape == (1,) and out.aux["pair_same"].tolist() == [1.0]
    assert out.aux["pair_logits"].shape == (2, 4)
    cfg = load_config("astpn/cpu_prid2011_pairs", [f"data.root={tiny_tree('prid2011')}", "data.flow=null",
                                                   "model.args.in_channels=3", "data.height=64", "data.width=32",
                                                   "model.args.height=56", "model.args.width=24", "data.num_workers=0",
                                                   "schedule.epochs=1", f"train.output_dir={tmp_path / 'o'}",
                                                   "train.progress=false", "data.train_sampling.seq_len=4"])
    tr = Trainer(cfg)
    n_ids = len({t.pid for t in tr.split.train})
    assert tr.iters_per_epoch == 2 * n_ids
    m = tr.fit()
    assert tr.global_step == 2 * n_ids and 0 <= m["mAP"] <= 1
