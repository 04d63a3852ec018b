"""RRU + STIM (Liu et al., AAAI 2019): gate, recurrence, STIM, part loss, configs."""

from __future__ import annotations

import pytest
import torch

from vidreid.losses.metric import BatchHardTripletLoss, PartTripletLoss
from vidreid.models.rru_stim import RRU, STIM, UpdateGate


@pytest.mark.parametrize("H,W", [(8, 8), (4, 2), (6, 3)])
def test_gate_in_unit_interval_with_shape_of_x(H, W):
    torch.manual_seed(0)
    rru = RRU(channels=16, hw=H * W)
    X = torch.randn(3, 5, 16, H, W)
    z = rru.gate(X[:, 2], X[:, 1] * 0.5, X[:, 1])
    assert z.shape == X[:, 2].shape
    assert (z > 0).all() and (z < 1).all()
    S = rru(X)
    assert S.shape == X.shape
    torch.testing.assert_close(S[:, 0], X[:, 0])  # X_0 = S_0 = X_1 gives S_1 = X_1


def test_forced_gates_give_the_limits_of_eq5(monkeypatch):
    torch.manual_seed(1)
    rru = RRU(channels=8, hw=12)
    X = torch.randn(2, 6, 8, 4, 3)
    monkeypatch.setattr(rru, "gate", lambda x_t, s_prev, x_prev: torch.ones_like(x_t))
    torch.testing.assert_close(rru(X), X)  # Z = 1: S_t = X_t
    monkeypatch.setattr(rru, "gate", lambda x_t, s_prev, x_prev: torch.zeros_like(x_t))
    S = rru(X)
    torch.testing.assert_close(S, X[:, :1].expand_as(X))  # Z = 0: S_t = S_1 for all t


def test_gate_equations_by_hand():
    torch.manual_seed(2)
    g = UpdateGate(in_channels=6, out_channels=5, hw=6).eval()
    z_in = torch.randn(2, 6, 3, 2)
    zt = g.transition(z_in)
    zs = g.spatial(zt.mean(1).flatten(1)).view(2, 1, 3, 2)  # Eq. 2
    zc = g.channel(zt.mean((2, 3)))[:, :, None, None]  # Eq. 3
    torch.testing.assert_close(g(z_in), torch.sigmoid(zs * zc))  # Eq. 4
    g.gate = "spatial"
    torch.testing.assert_close(g(z_in), torch.sigmoid(zs).expand(2, 5, 3, 2))
    g.gate = "channel"
    torch.testing.assert_close(g(z_in), torch.sigmoid(zc).expand(2, 5, 3, 2))
    with pytest.raises(ValueError, match="H\\*W"):
        g(torch.randn(1, 6, 4, 4))


def test_gate_inputs_of_the_ablations():
    torch.manual_seed(3)
    x_t, s, x_p = torch.randn(3, 1, 4, 2, 2).unbind(0)
    seen = {}
    for mode, ch in (("diff", 8), ("ad", 4), ("od", 8)):
        rru = RRU(channels=4, hw=4, gate_input=mode)
        assert rru.g.transition[0].in_channels == ch
        rru.g.forward = lambda z, mode=mode: seen.__setitem__(mode, z) or torch.zeros(1, 4, 2, 2)
        rru.gate(x_t, s, x_p)
    torch.testing.assert_close(seen["diff"], torch.cat([x_t - s, x_t - x_p], 1))
    torch.testing.assert_close(seen["ad"], x_t - s)
    torch.testing.assert_close(seen["od"], torch.cat([x_t, s], 1))


@pytest.mark.parametrize("T", [1, 3, 8])
def test_stim_is_256_d_for_any_T(T):
    stim = STIM(channels=32).eval()
    f = stim(torch.randn(2, T, 32, 4, 2))
    assert f.shape == (2, 256)
    o = stim.block2(stim.block1(torch.randn(2, T, 32, 4, 2).permute(0, 2, 1, 3, 4)))
    assert o.shape == (2, 256, T, 4, 2)


def test_part_loss_equals_direct_per_strip_computation():
    torch.manual_seed(4)
    S = torch.randn(6, 3, 5, 4, 2)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    trip = BatchHardTripletLoss(0.4, "euclidean")
    direct = 0.0
    for r in range(4):
        p = S[:, :, :, r, :].mean(dim=(1, 3))  # Eq. 9: over time and width of row r
        direct = direct + trip(p, y)
    assert float(PartTripletLoss(0.4)(S, y)) == pytest.approx(float(direct / 4), rel=1e-6)
    assert PartTripletLoss(0.4, strips=2).strip_vectors(S).shape == (6, 5, 2)


def test_models_of_the_ablations_run_and_give_logits():
    from vidreid.models import create_model

    clip = torch.randn(4, 3, 3, 64, 32)
    for kw in ({}, {"rru": False, "temporal": "avg"}, {"temporal": "lstm"}, {"gate": "spatial", "gate_input": "od"}):
        m = create_model("rru_stim", num_classes=5, backbone="resnet18", height=64, width=32, **kw)
        o = m(clip)
        assert o.logits.shape == (4, 5) and o.features.shape == (4, m.dim)
        assert o.aux["refined_maps"].shape == (4, 3, 512, 2, 1)
        if kw.get("rru", True):
            assert not torch.equal(o.aux["refined_maps"][:, 1:], o.aux["raw_maps"][:, 1:])
        m.eval()
        assert m(clip).logits is None
    with pytest.raises(Exception, match="temporal"):
        create_model("rru_stim", backbone="resnet18", height=64, width=32, temporal="gru")
    with pytest.raises(Exception, match="17x17"):  # the Inception aux head on a small input
        create_model("rru_stim", num_classes=3, height=160, width=160)
    with pytest.raises(Exception, match="too small for backbone inception_v3"):
        create_model("rru_stim", num_classes=3, height=64, width=32)


def test_full_scale_config_one_training_step_at_299(tiny_tree, tmp_path):
    """configs/rru_stim/prid2011.yaml builds Inception-v3 at 299x299 with its auxiliary
    classifier and takes one SGD step on a tiny generated tree with all four loss terms."""
    import shutil

    from torch.utils.data import DataLoader

    from vidreid.config import load_config
    from vidreid.engine.trainer import Trainer

    root = tmp_path / "prid"
    shutil.copytree(tiny_tree("prid2011"), root)
    assert load_config("rru_stim/prid2011").data.split_id == "all"
    cfg = load_config("rru_stim/prid2011", [f"data.root={root}", "data.split_id=0", "data.num_workers=0", "data.p=2", "data.k=2",
                                            "data.min_seq_len=0", "data.train_sampling.seq_len=2",
                                            "model.args.pretrained=null", f"train.output_dir={tmp_path / 'o'}",
                                            "train.progress=false"])
    tr = Trainer(cfg)
    assert tr.model.feat_hw == (8, 8) and tr.model.aux is not None and tr.model.dim == 256
    batch = next(iter(DataLoader(tr.train_set, batch_sampler=tr.sampler)))
    assert batch["clip"].shape[-2:] == (299, 299)
    before = [p.detach().clone() for p in tr.model.parameters()]
    out = tr.model(batch["clip"])
    loss, parts = tr.loss(out, batch["label"])
    assert set(parts) == {"cross_entropy", "aux_cross_entropy", "triplet", "part_triplet"} and torch.isfinite(loss)
    tr.optimizer.zero_grad()
    loss.backward()
    tr.optimizer.step()
    assert sum(int(not torch.equal(a, b)) for a, b in zip(before, tr.model.parameters())) > 100
    # no pretrained weights here (pretrained=null): nothing trains at the 0.1x pretrained lr
    assert [g["lr"] for g in tr.optimizer.param_groups] == pytest.approx([0.01])


def test_cpu_config_trains_and_visualizes(tiny_tree, tmp_path):
    from vidreid.cli import main
    from vidreid.config import load_config
    from vidreid.data.datasets import build_dataset
    from vidreid.engine.trainer import Trainer

    root = tiny_tree("prid2011")
    ov = [f"data.root={root}", "data.height=64", "data.width=32", "model.args.height=64", "model.args.width=32",
          "data.num_workers=0", "data.p=3", "data.min_seq_len=0", "model.args.pretrained=null", "schedule.epochs=1",
          f"train.output_dir={tmp_path / 'o'}", "train.progress=false"]
    m = Trainer(load_config("rru_stim/cpu_prid2011", ov)).fit()
    assert m["num_valid_queries"] == 6
    t = build_dataset("prid2011", root).split(0).query[0]
    out = tmp_path / "maps.png"
    assert main(["visualize", "features", "--config", "rru_stim/cpu_prid2011", "--checkpoint",
                 str(tmp_path / "o" / "checkpoint.pt"), "--tracklet", str((root / t.frames[0]).parent),
                 "--out", str(out), *ov]) == 0
    assert out.stat().st_size > 1000


def test_pretrained_aux_head_convolutions_train_at_the_pretrained_lr(tmp_path):
    """Sec. 4.1: the pretrained layers train at 0.1x the base lr: the Inception CNN and the
    auxiliary head's convolutions (loaded from the same weights); the fresh classifiers, RRU and
    STIM at the base lr."""
    from vidreid.models.vision_libs import torchvision as _tv
    torchvision = _tv()

    from vidreid.config import load_config
    from vidreid.engine.trainer import build_optimizer
    from vidreid.models import create_model

    w = tmp_path / "inception.pth"
    torch.save(torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), w)
    m = create_model("rru_stim", num_classes=5, pretrained=str(w), height=299, width=299)
    pre = {id(p) for p in m.pretrained_parameters()}
    names = {n for n, p in m.named_parameters() if id(p) in pre}
    assert any(n.startswith("aux.conv0") for n in names) and any(n.startswith("aux.conv1") for n in names)
    assert not any(n.startswith(("aux.fc", "rru", "stim", "classifier")) for n in names)
    opt = build_optimizer(load_config("rru_stim/prid2011", ["data.split_id=0"]), m)
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lrs[id(m.aux.conv0.conv.weight)] == pytest.approx(0.001) and lrs[id(m.aux.fc.weight)] == pytest.approx(0.01)
    assert create_model("rru_stim", num_classes=5, pretrained=None, backbone="resnet18", height=64, width=32,
                        aux_classifier=False).pretrained_parameters() == []
