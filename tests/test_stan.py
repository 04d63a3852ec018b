"""STAN (Li et al., CVPR 2018): attention equations, diversity terms, OIM, stages, configs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from vidreid.losses.metric import OIMLoss
from vidreid.models import create_model
from vidreid.models.stan import SpatialAttention, TemporalEnhancement, diversity_q


def test_receptive_fields_sum_to_one_and_gate_by_eq3():
    torch.manual_seed(0)
    att = SpatialAttention(dim=16, num_parts=5, hidden=8)
    cells = torch.randn(3, 32, 16)
    x, s = att(cells)
    assert s.shape == (3, 5, 32) and x.shape == (3, 5, 16)
    torch.testing.assert_close(s.sum(-1), torch.ones(3, 5))
    assert (s > 0).all()
    # Eq. 1-2 for part 2 by hand, Eq. 3 as a weighted sum
    e = torch.relu(cells @ att.w1[2] + att.b1[2]) @ att.w2[2] + att.b2[2]
    torch.testing.assert_close(s[:, 2], e.softmax(-1))
    torch.testing.assert_close(x[:, 2], (s[:, 2, :, None] * cells).sum(1))


def _hellinger_form(S: torch.Tensor) -> torch.Tensor:
    """2 * sum_{i<j} (1 - H^2(s_i, s_j))^2 with H from Eq. 6 directly."""
    total = torch.zeros(())
    for i, j in itertools.combinations(range(S.shape[0]), 2):
        H = (S[i].sqrt() - S[j].sqrt()).pow(2).sum().sqrt() / math.sqrt(2)  # Eq. 6
        total = total + (1 - H**2) ** 2
    return 2 * total


def test_q_equals_hellinger_form_and_its_extremes():
    torch.manual_seed(1)
    for K, L in [(2, 5), (6, 32), (4, 8)]:
        S = torch.randn(K, L).mul(2).softmax(-1).double()
        torch.testing.assert_close(diversity_q(S), _hellinger_form(S))
    disjoint = torch.zeros(4, 8, dtype=torch.float64)
    for k in range(4):
        disjoint[k, 2 * k: 2 * k + 2] = 0.5
    assert float(diversity_q(disjoint)) == pytest.approx(0.0, abs=1e-12)
    same = torch.full((6, 32), 1 / 32, dtype=torch.float64)
    assert float(diversity_q(same)) == pytest.approx(6 * 5)
    # Q' (Eq. 10) differs: identical spread fields overlap little in S S^T, so Q' cannot see them
    assert float(diversity_q(same, hellinger=False)) == pytest.approx(6 * (1 - 1 / 32) ** 2 + 30 * (1 / 32) ** 2)


def test_q_gradient_is_finite_where_a_field_weight_underflows_to_zero():
    # a sharp softmax underflows to exact zeros in fp32; d sqrt(s) / ds is infinite there, and
    # the CPU STAN recipe's weights went NaN from it (issue 23's pre-training chain)
    logits = torch.tensor([[0.0, 120.0, 3.0, -5.0], [200.0, 0.0, 1.0, 2.0]], requires_grad=True)
    S = logits.softmax(-1)
    assert (S == 0).any()
    diversity_q(S).backward()
    assert torch.isfinite(logits.grad).all()
    # and the value still follows Eq. 9 on the rows as they are
    torch.testing.assert_close(diversity_q(S.detach().double()), _hellinger_form(S.detach().double()))


def test_temporal_weights_sum_to_one_per_part_and_ratio_variant():
    torch.manual_seed(2)
    m = create_model("stan", backbone="resnet18", num_parts=3, num_frames=5)
    torch.nn.init.normal_(m.temporal_w, std=0.1)
    xh = torch.randn(2, 5, 3, 512)
    t = m.temporal_weights(xh)
    assert t.shape == (2, 5, 3)
    torch.testing.assert_close(t.sum(1), torch.ones(2, 3))
    e = torch.einsum("bnkd,kd->bnk", xh, m.temporal_w) + m.temporal_b
    torch.testing.assert_close(t, e.softmax(1))
    m.temporal_norm = "ratio"  # Eq. 12 as printed
    torch.testing.assert_close(m.temporal_weights(xh), e / e.sum(1, keepdim=True))


def test_enhancement_rows_are_convex_and_starts_as_identity():
    torch.manual_seed(3)
    E = TemporalEnhancement(dim=8, num_frames=4, sigma=2.0)
    x = torch.randn(2, 4, 3, 8)
    C = E.weights(x)
    torch.testing.assert_close(C.sum(-1), torch.ones(2, 3, 4))
    torch.testing.assert_close(E(x), x)  # FCN starts at zero: E is the identity until trained
    torch.nn.init.eye_(E.fcn.weight)
    X = x.permute(0, 2, 1, 3)
    torch.testing.assert_close(E(x), x + (C @ X).permute(0, 2, 1, 3))
    with pytest.raises(ValueError, match="num_frames"):
        E(torch.randn(1, 6, 3, 8))


def test_stan_forward_shapes_and_modes():
    torch.manual_seed(4)
    m = create_model("stan", backbone="resnet18", num_parts=4, num_frames=3, attn_dim=32).eval()
    clip = torch.randn(2, 3, 3, 128, 64)
    out = m(clip)
    assert out.embedding.shape == (2, 128)
    torch.testing.assert_close(out.embedding.norm(dim=1), torch.ones(2))
    assert out.aux["spatial_attention"].shape == (2, 3, 4, 4, 2)
    torch.testing.assert_close(out.aux["spatial_attention"].sum((-1, -2)), torch.ones(2, 3, 4))
    for spatial, temporal in [("avg", "avg"), ("attention", "max"), ("attention", "avg")]:
        m.spatial, m.temporal = spatial, temporal
        o = m(clip)
        torch.testing.assert_close(o.aux["temporal_attention"].sum(1), torch.ones(2, 4))
    assert float(m(clip).aux["diversity_q"]) < 4 * 3 + 1e-4
    m.spatial = "avg"  # uniform fields are identical: Q = K(K-1)
    assert float(m(clip).aux["diversity_q"]) == pytest.approx(12.0, rel=1e-5)
    m.temporal = "bogus"
    with pytest.raises(Exception, match="temporal"):
        m(clip)


def test_oim_logits_and_lookup_table_update_by_hand():
    loss = OIMLoss(num_classes=3, feat_dim=2, temperature=0.5, momentum=0.25)
    loss.lut.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]))
    x = torch.tensor([[3.0, 4.0], [0.0, -2.0]], requires_grad=True)
    y = torch.tensor([0, 0])
    v = loss(x, y)
    xn = torch.tensor([[0.6, 0.8], [0.0, -1.0]])
    logits = torch.tensor([[0.6, 0.8, 1.0], [0.0, -1.0, -0.8]]) / 0.5
    expect = -(logits.log_softmax(1)[torch.arange(2), y]).mean()
    assert float(v) == pytest.approx(float(expect), rel=1e-6)
    # row 0 updated twice, in batch order, each time renormalised; rows 1, 2 untouched
    r = 0.25 * torch.tensor([1.0, 0.0]) + 0.75 * xn[0]
    r = r / r.norm()
    r = 0.25 * r + 0.75 * xn[1]
    r = r / r.norm()
    torch.testing.assert_close(loss.lut[0], r)
    torch.testing.assert_close(loss.lut[1:], torch.tensor([[0.0, 1.0], [0.6, 0.8]]))
    v.backward()  # the update did not corrupt the graph
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert "lut" in loss.state_dict()
    with pytest.raises(ValueError, match="labels"):
        loss(torch.randn(1, 2), torch.tensor([3]))


def test_oim_fill_from_sets_identity_means():
    loss = OIMLoss(num_classes=4, feat_dim=2)
    loss.lut[3] = torch.tensor([0.0, 1.0])
    n = loss.fill_from(torch.tensor([[2.0, 0.0], [0.0, 5.0], [3.0, 4.0]]), torch.tensor([0, 0, 2]))
    assert n == 2
    r0 = torch.tensor([1.0, 1.0]) / math.sqrt(2)  # mean of the normalised [1, 0] and [0, 1]
    torch.testing.assert_close(loss.lut, torch.stack([r0, torch.zeros(2), torch.tensor([0.6, 0.8]), torch.tensor([0.0, 1.0])]))
    with pytest.raises(ValueError, match="labels"):
        loss.fill_from(torch.ones(1, 2), torch.tensor([4]))
    with pytest.raises(ValueError, match="features"):
        loss.fill_from(torch.ones(1, 3), torch.tensor([0]))


def test_lut_init_from_the_initial_models_features(tiny_tree, tmp_path):
    """train.lut_init: with init_from (auto) the OIM table starts as each identity's mean
    eval-mode feature of one deterministic clip per training tracklet; zeros leaves it at zero;
    the pass does not change the training run's random stream."""
    from torch.utils.data import DataLoader

    from vidreid.data.sampling import TemporalSampler
    from vidreid.data.video import ClipDataset
    from vidreid.engine.evaluator import make_test_transform
    from vidreid.engine.trainer import Trainer

    root = tiny_tree("prid2011")
    one = ["stages=[{name: a, epochs: 1, model_attrs: {spatial: avg, temporal: avg}}]"]
    Trainer(_stan_cfg(root, tmp_path / "first", one)).fit()
    ck = tmp_path / "first" / "o" / "checkpoint.pt"
    runs = {}
    for mode in ("auto", "zeros"):
        tr = Trainer(_stan_cfg(root, tmp_path / mode, [*one, f"train.init_from={ck}", f"train.lut_init={mode}"]))
        rep = tr.init_lookup_tables()
        runs[mode] = (tr, rep, torch.get_rng_state())
    tr, rep, _ = runs["auto"]
    assert rep["rows"] == tr.num_classes == len({t.pid for t in tr.split.train})
    ts = tr.cfg.data.train_sampling
    ds = ClipDataset(tr.split.root, tr.split.train, TemporalSampler(ts.strategy, ts.seq_len, False),
                     make_test_transform(tr.cfg, tr.model), tr.labels)
    tr.model.eval()
    with torch.no_grad():
        b = next(iter(DataLoader(ds, batch_size=len(ds))))
        f = torch.nn.functional.normalize(tr.model(b["clip"]).features, dim=1)
    expect = torch.nn.functional.normalize(torch.zeros(tr.num_classes, f.shape[1]).index_add_(0, b["label"], f), dim=1)
    torch.testing.assert_close(tr.loss.terms[0].lut, expect, rtol=1e-5, atol=1e-6)
    assert runs["zeros"][1] is None and float(runs["zeros"][0].loss.terms[0].lut.abs().sum()) == 0
    assert torch.equal(runs["auto"][2], runs["zeros"][2])  # the same random stream after the pass
    with pytest.raises(Exception, match="train.lut_init"):
        _stan_cfg(root, tmp_path, ["train.lut_init=mean"])


def _stan_cfg(root, tmp_path, extra=()):
    from vidreid.config import load_config

    return load_config("stan/cpu_prid2011", [
        f"data.root={root}", "data.height=64", "data.width=32", "data.num_workers=0", "data.p=3",
        "model.args.pretrained=null", "model.args.num_frames=4", "test.batch_size=16",
        f"train.output_dir={tmp_path / 'o'}", "train.progress=false", *extra])


def test_stage_schedule_freezes_exactly_what_it_says(tiny_tree, tmp_path):
    from torch.utils.data import DataLoader

    from vidreid.engine.trainer import Trainer

    tr = Trainer(_stan_cfg(tiny_tree("prid2011"), tmp_path))
    assert [st.name for _, _, st in tr.plan] == ["cnn", "spatial_attention", "temporal_attention", "ind"]
    m = tr.model
    assert (m.spatial, m.temporal) == ("avg", "avg") and list(tr.loss.meta[0][:1]) == ["oim"] and len(tr.loss.meta) == 1
    tr.enter_stage(1)
    assert (m.spatial, m.temporal) == ("attention", "avg") and [k for k, *_ in tr.loss.meta] == ["oim", "diversity_q"]
    in_opt = {id(p) for g in tr.optimizer.param_groups for p in g["params"]}
    for n, p in m.named_parameters():
        assert p.requires_grad == (not n.startswith("backbone.")), n
        assert (id(p) in in_opt) == p.requires_grad, n
    tr._train_mode()
    assert not any(mod.training for mod in m.backbone.modules()) and m.attention.training
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    bn_stats = [b.running_mean.clone() for b in m.backbone.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    batch = next(iter(DataLoader(tr.train_set, batch_sampler=tr.sampler)))
    loss, _ = tr.loss(m(batch["clip"]), batch["label"])
    tr.optimizer.zero_grad()
    loss.backward()
    tr.optimizer.step()
    for n, p in m.named_parameters():
        if n.startswith("backbone."):
            assert torch.equal(p, before[n]), n
    assert any(not torch.equal(p, before[n]) for n, p in m.named_parameters() if n.startswith("attention."))
    bn_after = [b.running_mean for b in m.backbone.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    assert all(torch.equal(a, b) for a, b in zip(bn_stats, bn_after))
    lut = tr.loss.terms[0].lut.clone()
    assert lut.abs().sum() > 0
    tr.enter_stage(3)  # Ind: everything trainable, attributes back to the built values, LUT carried over
    assert all(p.requires_grad for n, p in m.named_parameters() if not n.endswith("neck.bias"))
    assert (m.spatial, m.temporal) == ("attention", "attention")
    torch.testing.assert_close(tr.loss.terms[0].lut, lut)


def test_bad_stage_prefix_and_attribute_are_named(tiny_tree, tmp_path):
    from vidreid.engine.trainer import Trainer
    from vidreid.errors import ConfigError

    root = tiny_tree("prid2011")
    with pytest.raises(ConfigError, match="'bakbone' matches no parameter"):
        Trainer(_stan_cfg(root, tmp_path, ["stages=[{name: a, epochs: 1, freeze: [bakbone]}]"]))
    with pytest.raises(ConfigError, match="no attribute 'temporl'"):
        Trainer(_stan_cfg(root, tmp_path, ["stages=[{name: a, epochs: 1, model_attrs: {temporl: avg}}]"]))


def test_cpu_config_trains_through_stages_and_checkpoint_restores_last_stage(tiny_tree, tmp_path):
    from vidreid.engine.trainer import Trainer, load_model_from_checkpoint

    cfg = _stan_cfg(tiny_tree("prid2011"), tmp_path, [
        "stages=[{name: a, epochs: 1, model_attrs: {spatial: avg, temporal: avg}}, {name: b, epochs: 1, freeze: [backbone], model_attrs: {temporal: max}}]"])
    m = Trainer(cfg).fit()
    assert m["num_valid_queries"] == 6 and 0 <= m["mAP"] <= 1
    model, _, st = load_model_from_checkpoint(tmp_path / "o" / "checkpoint.pt")
    assert st["stage"] == 1 and model.temporal == "max" and model.spatial == "attention"
    recs = [__import__("json").loads(x) for x in (tmp_path / "o" / "log.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in recs if "stage" in r} == {0, 1}


@pytest.mark.parametrize("name", ["mars", "prid2011"])
def test_full_scale_config_one_training_step(tiny_tree, tmp_path, name):
    """configs/stan/base.yaml (the shared recipe, all four stages on one dataset) builds the
    paper's model (ResNet-50, K = 6, N = 6, 128-d) and takes one optimisation step in every stage
    on a tiny generated tree of MARS or PRID-2011 (small input)."""
    import shutil

    from torch.utils.data import DataLoader

    from vidreid.config import load_config
    from vidreid.engine.trainer import Trainer

    root = tmp_path / name
    shutil.copytree(tiny_tree(name), root)
    cfg = load_config("stan/base", [f"data.dataset={name}", f"data.root={root}", "data.split_id=0", "data.height=64", "data.width=32", "data.num_workers=0",
                                       "data.p=2", "data.k=2", "model.args.pretrained=null",
                                       f"train.output_dir={tmp_path / 'out'}", "train.progress=false"])
    tr = Trainer(cfg)
    assert tr.model.backbone.out_dim == 2048 and tr.model.num_parts == 6 and tr.model.fc.out_features == 128
    batch = next(iter(DataLoader(tr.train_set, batch_sampler=tr.sampler)))
    assert batch["clip"].shape[1] == 6
    for s in range(len(tr.plan)):
        tr.enter_stage(s)
        before = [p.detach().clone() for p in tr.model.parameters()]
        loss, parts = tr.loss(tr.model(batch["clip"]), batch["label"])
        assert torch.isfinite(loss) and "oim" in parts
        tr.optimizer.zero_grad()
        loss.backward()
        tr.optimizer.step()
        assert any(not torch.equal(a, b) for a, b in zip(before, tr.model.parameters()))


def test_visualize_attention_cli_writes_figure(tiny_tree, tmp_path):
    from vidreid.cli import main
    from vidreid.data.datasets import build_dataset

    root = tiny_tree("prid2011")
    t = build_dataset("prid2011", root).split(0).query[0]
    folder = (root / t.frames[0]).parent
    out = tmp_path / "att.png"
    rc = main(["visualize", "attention", "--config", "stan/cpu_prid2011", "--tracklet", str(folder), "--out", str(out),
               "data.height=64", "data.width=32", "model.args.pretrained=null"])
    assert rc == 0 and out.stat().st_size > 1000
    import matplotlib.image as mpimg
    assert mpimg.imread(out).ndim == 3
    assert main(["visualize", "features", "--config", "stan/cpu_prid2011", "--tracklet", str(folder),
                 "--out", str(tmp_path / "f.png"), "model.args.pretrained=null"]) == 2  # STAN has no refined maps
    assert main(["visualize", "attention", "--config", "stan/cpu_prid2011", "--tracklet", str(tmp_path / "nope")]) == 2


def test_all_frames_test_option(tiny_tree, tmp_path):
    """``test_sampling.strategy=all``: every frame, in N-frame chunks whose embeddings are averaged."""
    from vidreid.engine.evaluator import evaluate_split
    from vidreid.engine.trainer import Trainer

    cfg = _stan_cfg(tiny_tree("prid2011"), tmp_path, ["data.test_sampling.strategy=all"])
    tr = Trainer(cfg)
    m = evaluate_split(tr.model, tr.split, cfg)
    assert m["num_valid_queries"] == 6 and 0 <= m["mAP"] <= 1


def test_builder_passes_every_argument_through():
    """Each keyword of the ``stan`` builder reaches the model (a dropped one once went unnoticed)."""
    m = create_model("stan", backbone="resnet18", num_parts=3, attn_dim=16, num_frames=5, spatial="avg",
                     enhance="none", temporal="max", temporal_norm="ratio", embed_dim=32, embed_bn=False)
    assert (m.num_parts, m.num_frames, m.spatial, m.temporal, m.temporal_norm) == (3, 5, "avg", "max", "ratio")
    assert m.enhance is None and m.fc_bn is None and m.fc.out_features == 32 and m.attention.w1.shape[-1] == 16
    e = create_model("stan", backbone="resnet18", enhance_sigma=2.0, enhance_phi_scale="none", enhance_product="paper").enhance
    assert (e.scale, e.product) == (1.0, "paper") and float(e.decay[0, 1]) == pytest.approx(torch.exp(torch.tensor(-0.5)).item())


def test_paper_test_protocol_is_first_frame_of_each_chunk():
    """Li et al. 2018 Sec. 4.2: "During testing, we use the first image from each of N
    segments": the paper configs test with restricted random sampling's test variant, N = 6."""
    from vidreid.config import load_config
    from vidreid.data.sampling import TemporalSampler

    for name in ("stan/prid2011", "stan/ilidsvid", "stan/mars"):
        ts = load_config(name).data.test_sampling
        assert (ts.strategy, ts.seq_len) == ("restricted_random", 6), name
        s = TemporalSampler(ts.strategy, ts.seq_len, train=False)
        for n in (6, 37, 120):
            starts = (np.arange(6) * n) // 6
            assert list(s(n)) == list(starts)
