"""STRF (Aich et al., ICCV 2021) and the 3D-ResNet-50 family."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vidreid.models import create_model
from vidreid.models.strf import FFM, STRF, Bottleneck3D

TABLE2 = {  # Table 2, millions of parameters with the classifier for MARS's 625 identities
    ("i3d", False): 28.92, ("i3d", True): 28.97,
    ("p3da", False): 25.48, ("p3da", True): 25.53,
    ("p3db", False): 25.48, ("p3db", True): 25.53,
    ("p3dc", False): 25.48, ("p3dc", True): 25.53,
}


@pytest.mark.parametrize("block", ["c2d", "i3d", "p3da", "p3db", "p3dc"])
@pytest.mark.parametrize("T", [1, 4, 7])
def test_3d_blocks_keep_shape(block, T):
    strf = {"resolutions": (1, 3)} if block != "c2d" else None
    b = Bottleneck3D(64, 32, stride=1, downsample=torch.nn.Conv3d(64, 128, 1), block=block, strf=strf)
    assert b(torch.randn(2, 64, T, 6, 4)).shape == (2, 128, T, 6, 4)
    down = torch.nn.Conv3d(64, 128, 1, stride=(1, 2, 2))
    b2 = Bottleneck3D(64, 32, stride=2, downsample=down, block=block)
    assert b2(torch.randn(2, 64, T, 6, 4)).shape == (2, 128, T, 3, 2)


def test_inflated_c2d_with_one_frame_equals_2d_resnet50():
    from vidreid.models.vision_libs import torchvision as _tv
    torchvision = _tv()

    torch.manual_seed(0)
    net2d = torchvision.models.resnet50(weights=None)
    for m in net2d.modules():  # non-trivial BN statistics and affines, activations of a trained net's scale
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.2, 0.5)
            m.bias.data.uniform_(-0.1, 0.1)
    net2d.eval()
    m3d = create_model("resnet3d", block="c2d", last_stride=2).eval()
    assert m3d.pretrained_parameters() == []
    missing = m3d.inflate_from_2d(net2d.state_dict())
    assert all(k.startswith(("neck", "classifier")) for k in missing)
    pre = {id(p) for p in m3d.pretrained_parameters()}
    assert id(m3d.conv1.weight) in pre and id(m3d.neck.weight) not in pre
    img = torch.randn(2, 3, 128, 64)
    with torch.no_grad():
        ref = torch.nn.Sequential(*list(net2d.children())[:-2])(img)
        out = m3d.feature_maps(img[:, None])[:, :, 0]
    assert 0.1 < ref.abs().max() < 100
    assert (out - ref).abs().max().item() <= 1e-4


def test_i3d_and_p3d_start_as_their_c2d_self_after_inflation():
    from vidreid.models.vision_libs import torchvision as _tv
    torchvision = _tv()

    torch.manual_seed(1)
    sd = torchvision.models.resnet50(weights=None).state_dict()
    clip = torch.randn(1, 3, 3, 64, 32)
    outs = {}
    for block in ("c2d", "i3d", "p3da", "p3db", "p3dc"):
        m = create_model("resnet3d", block=block)
        m.inflate_from_2d(sd)
        with torch.no_grad():
            outs[block] = m.eval().feature_maps(clip)
    # I3D: the centre tap alone sees only the current frame; P3D-A: T starts as the identity;
    # P3D-B/C: T starts at zero (AP3D's initialisation)
    for block in ("i3d", "p3da", "p3db", "p3dc"):
        torch.testing.assert_close(outs[block], outs["c2d"], atol=1e-4, rtol=1e-4)
    # and no extra BN between S and T (AP3D's P3D): one BN (bn2) after the pair
    blk = create_model("resnet3d", block="p3dc").layer2[0]
    assert not any(n.startswith("bn2t") for n, _ in blk.named_parameters())


@pytest.mark.parametrize("integration", ["cascade_ts", "cascade_st", "parallel"])
def test_strf_preserves_shape_and_masks_are_row_stochastic(integration):
    torch.manual_seed(2)
    u = STRF(32, resolutions=(1, 3), integration=integration)
    f = torch.randn(2, 32, 5, 7, 4)
    assert u(f).shape == f.shape
    for name, ffm in u.ffms.items():
        M = ffm.mask(f)
        assert M.shape == (2, 28, 28)
        torch.testing.assert_close(M.sum(-1), torch.ones(2, 28))
        assert (M >= 0).all()


def test_ffm_equations_and_identity_resolution():
    torch.manual_seed(3)
    f = torch.randn(2, 32, 4, 3, 2)
    for dim in ("t", "s"):
        ffm = FFM(32, dim, resolution=1)
        # resolution 1: the factorizing function G is the identity, T = H(f)
        torch.testing.assert_close(ffm.factorize(f), ffm.reduce(f))
        T = ffm.reduce(f).flatten(1, 2).flatten(2)
        M = (4.0 * T.transpose(1, 2) @ T).softmax(-1)  # Eq. 3, kappa = 4
        torch.testing.assert_close(ffm.mask(f), M)
        out = f.reshape(2, 32 * 4, 6) @ M.transpose(1, 2)
        torch.testing.assert_close(ffm(f), out.view_as(f))
        ffm.product = "paper"  # Eq. 1 as printed: f M
        torch.testing.assert_close(ffm(f), (f.reshape(2, 128, 6) @ M).view_as(f))
    # resolution 3: temporal max over 3 frames (size kept), spatial max over 3x3
    ft = FFM(32, "t", resolution=3)
    h = ft.reduce(f)
    expect = torch.stack([h[:, :, max(0, i - 1):i + 2].amax(2) for i in range(4)], 2)
    torch.testing.assert_close(ft.factorize(f), expect)
    fs = FFM(32, "s", resolution=3, pool="avg")
    assert fs.factorize(f).shape == (2, 2, 4, 3, 2)
    with pytest.raises(Exception, match="odd"):
        FFM(32, "t", resolution=2)


def test_strf_integration_orders_and_module_subsets():
    torch.manual_seed(4)
    f = torch.randn(1, 16, 3, 4, 2)
    u = STRF(16, integration="cascade_ts")
    t_out = u.ffms["t_dynamic"](f) + u.ffms["t_static"](f)  # Eq. 5
    s_of_t = u.ffms["s_fine"](t_out) + u.ffms["s_coarse"](t_out)  # Eq. 7 on the temporal output
    torch.testing.assert_close(u(f), s_of_t)
    u.integration = "parallel"
    torch.testing.assert_close(u(f), t_out + u.ffms["s_fine"](f) + u.ffms["s_coarse"](f))
    one = STRF(16, modules=("s_coarse",))
    assert list(one.ffms) == ["s_coarse"]
    torch.testing.assert_close(one(f), one.ffms["s_coarse"](f))


@pytest.mark.parametrize("block", ["i3d", "p3da", "p3db", "p3dc"])
def test_parameter_counts_against_table2(block):
    for with_strf in (False, True):
        m = create_model("strf" if with_strf else "resnet3d", num_classes=625, block=block)
        n = sum(p.numel() for p in m.parameters()) / 1e6
        paper = TABLE2[(block, with_strf)]
        assert abs(n - paper) / paper < 0.002, (block, with_strf, n, paper)


def test_bad_block_indices_are_named():
    from vidreid.errors import ConfigError

    with pytest.raises(ConfigError, match="stage 2 has 4 blocks"):
        create_model("resnet3d", blocks3d=[[], [0, 5], [], []])
    with pytest.raises(ConfigError, match="strf_stages"):
        create_model("strf", strf_stages=[5])
    # a shallower net: only the stages that get STRF need valid strf_blocks
    create_model("resnet3d", layers=[2, 2, 3, 2], blocks3d=[[], [0], [0, 2], []])
    with pytest.raises(ConfigError, match="strf_blocks: stage 2 has 2 blocks"):
        create_model("strf", layers=[2, 2, 3, 2], blocks3d=[[], [0], [0, 2], []])


def test_full_config_one_training_step(tiny_tree, tmp_path):
    """configs/strf/mars.yaml builds STRF-P3DC (ResNet-50) and takes one Adam step on a tiny
    generated MARS tree (small input)."""
    import shutil

    from torch.utils.data import DataLoader

    from vidreid.config import load_config
    from vidreid.engine.trainer import Trainer

    root = tmp_path / "mars"
    shutil.copytree(tiny_tree("mars"), root)
    cfg = load_config("strf/mars", [f"data.root={root}", "data.height=64", "data.width=32", "data.num_workers=0",
                                    "data.p=2", "data.k=2", "model.args.pretrained=null",
                                    f"train.output_dir={tmp_path / 'o'}", "train.progress=false"])
    tr = Trainer(cfg)
    assert sum(1 for m in tr.model.modules() if isinstance(m, STRF)) == 5
    batch = next(iter(DataLoader(tr.train_set, batch_sampler=tr.sampler)))
    before = [p.detach().clone() for p in tr.model.parameters()]
    loss, parts = tr.loss(tr.model(batch["clip"]), batch["label"])
    assert set(parts) == {"cross_entropy", "triplet"} and torch.isfinite(loss)
    tr.optimizer.zero_grad()
    loss.backward()
    tr.optimizer.step()
    assert sum(int(not torch.equal(a, b)) for a, b in zip(before, tr.model.parameters())) > 100


def test_average_factorizing_pool_counts_only_real_cells():
    ffm = FFM(16, "s", resolution=3, pool="avg")
    torch.nn.init.zeros_(ffm.reduce.bias)
    f = torch.randn(1, 16, 2, 3, 2)
    h = ffm.reduce(f)
    got = ffm.factorize(f)
    torch.testing.assert_close(got[..., 0, 0], h[..., :2, :2].mean((-1, -2)))  # corner: a 2x2 window
    torch.testing.assert_close(got[..., 1, 1], h[..., :3, :2].mean((-1, -2)))


def test_mask_norm_cosine_bounds_the_affinities():
    """Eq. 3 on raw features saturates the row softmax at kappa = 4 (each position copies its
    best match); the cosine variant bounds C by kappa, so rows stay spread."""
    from vidreid.models.strf import FFM

    torch.manual_seed(0)
    f = torch.randn(2, 64, 4, 8, 4)
    raw = FFM(64, "s", 3, mask_norm="none").eval()
    cos = FFM(64, "s", 3, mask_norm="cosine").eval()
    cos.load_state_dict(raw.state_dict())
    with torch.no_grad():
        m_raw, m_cos = raw.mask(f), cos.mask(f)
        T = F.normalize(cos.factorize(f).flatten(1, 2).flatten(2), dim=1)
        C = 4.0 * T.transpose(1, 2) @ T
    torch.testing.assert_close(m_cos, C.softmax(-1))
    assert float(C.abs().max()) <= 4.0 + 1e-5
    assert float(m_raw.amax(-1).mean()) > 0.6 and float(m_cos.amax(-1).mean()) < 0.2
    for m in (m_raw, m_cos):
        torch.testing.assert_close(m.sum(-1), torch.ones(m.shape[:2]))
    with pytest.raises(Exception, match="strf_mask_norm"):
        FFM(64, "s", 3, mask_norm="l1")


def test_mars_recipe_is_the_papers():
    """Sec. 4.2: T = 8, 224 x 112 (feature maps 2048 x 8 x 14 x 7 with last stride 1); no re-ID
    tricks (no random erasing, no label smoothing); AP3D's 32-frame clip test."""
    from vidreid.config import load_config

    c = load_config("strf/mars")
    assert (c.data.train_sampling.seq_len, c.data.height, c.data.width) == (8, 224, 112)
    assert c.data.augment.erase_p == 0.0 and c.loss[0]["label_smoothing"] == 0.0
    assert (c.data.test_sampling.strategy, c.data.test_sampling.seq_len) == ("all", 32)
    assert load_config("strf/ablation/mask_cosine").model.args.strf_mask_norm == "cosine"


def _mask_rowmax(model, clips) -> dict:
    """Mean row maximum of every FFM's mask over ``clips`` (each (T, 3, H, W)), per kind (t / s)."""
    seen: dict = {"t": [], "s": []}
    orig = FFM.mask

    def rec(self, f):
        m = orig(self, f)
        seen[self.dim].append(float(m.amax(-1).mean()))
        return m

    FFM.mask = rec
    try:
        with torch.no_grad():
            for c in clips:
                model.clip_frame_features(c[None])
    finally:
        FFM.mask = orig
    return {k: sum(v) / len(v) for k, v in seen.items()}


def test_test_time_masks_match_training_masks():
    """STRF's masks sum kappa T^T T over channels x frames (Eq. 3), so their sharpness depends on
    the clip length. Tested as trained (clips of the training T = 8, stride 4, data/sampling.py
    clip_plan), the masks have the statistics of training clips of the same content; AP3D's
    32-frame clips make them far sharper (the confound the as_trained plan removes)."""
    import numpy as np

    from vidreid.data.sampling import TemporalSampler

    torch.manual_seed(0)
    model = create_model("strf", num_classes=0, layers=[1, 2, 2, 1], blocks3d=[[], [0], [0], []],
                         strf_blocks=[[0], [0], [0], [0]]).eval()
    with torch.no_grad():  # trained-size factorized features (a fresh init gives near-uniform masks)
        for ffm in model.modules():
            if isinstance(ffm, FFM):
                ffm.reduce.weight.mul_(3.0)
    # a smooth moving pattern: frames are shifted copies of one image plus noise
    base = F.interpolate(torch.randn(1, 3, 16, 8), size=(64, 32), mode="bilinear", align_corners=False)[0]
    video = torch.stack([torch.roll(base, shifts=i // 3, dims=2) + 0.1 * torch.randn_like(base) for i in range(72)])
    rng = np.random.default_rng(0)
    train = TemporalSampler("random_consecutive", 8, train=True, stride=4)
    train_stats = _mask_rowmax(model, [video[torch.from_numpy(train(len(video), rng))] for _ in range(8)])
    as_trained = TemporalSampler("all", 8, train=False, stride=4, clips="as_trained").clip_plan(len(video))
    ap3d = TemporalSampler("all", 32, train=False).clip_plan(len(video))
    test_stats = _mask_rowmax(model, [video[torch.from_numpy(i)] for i, _ in as_trained])
    ap3d_stats = _mask_rowmax(model, [video[torch.from_numpy(i)] for i, _ in ap3d])
    for kind in ("t", "s"):
        assert abs(test_stats[kind] - train_stats[kind]) / train_stats[kind] < 0.05, (kind, test_stats, train_stats)
    # the 32-frame protocol: far from training (sharper masks)
    for kind in ("t", "s"):
        assert (ap3d_stats[kind] - train_stats[kind]) / train_stats[kind] > 0.3, (kind, ap3d_stats, train_stats)


def test_ap3d_head_by_default_and_bnneck_selectable():
    """AP3D's head (models/ResNet.py): spatial max pool per frame, temporal mean, BN with a
    learned bias, classifier with bias; the triplet input (features) is the BN output."""
    torch.manual_seed(0)
    m = create_model("resnet3d", num_classes=5, layers=[1, 1, 1, 1], blocks3d=[[], [0], [0], []]).train()
    assert m.neck.bias.requires_grad and m.classifier.bias is not None
    clip = torch.randn(3, 4, 3, 64, 32)
    out = m(clip)
    m.eval()
    with torch.no_grad():
        pooled = m.feature_maps(clip).amax((3, 4)).mean(2)
        ev = m(clip)
        torch.testing.assert_close(ev.embedding, m.neck(pooled.detach()))
        torch.testing.assert_close(ev.features, ev.embedding)
    assert out.logits.shape == (3, 5)
    b = create_model("resnet3d", num_classes=5, layers=[1, 1, 1, 1], blocks3d=[[], [0], [0], []], head="bnneck").eval()
    assert not b.neck.bias.requires_grad and b.classifier.bias is None
    with torch.no_grad():
        o = b(clip)
        torch.testing.assert_close(o.features, b.feature_maps(clip).mean((2, 3, 4)))
    with pytest.raises(Exception, match="model.head"):
        create_model("resnet3d", head="gap")
