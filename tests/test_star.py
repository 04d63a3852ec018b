"""STAR (Wu et al., BMVC 2019): each component against its equation, the flow pipeline, and
one training step of the full-scale config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidreid.data.transforms import ClipParams, ClipTransform
from vidreid.losses import BatchHardTripletLoss, PyramidRankingLoss
from vidreid.models import create_model
from vidreid.models.star import GSTA, LSTA


@pytest.mark.parametrize("T,H,W", [(1, 64, 32), (3, 64, 32), (5, 96, 48)])
def test_star_shapes_varying_T_H_W(T, H, W):
    m = create_model("star", 7, backbone="resnet18")
    out = m(torch.randn(2, T, 3, H, W), flow=torch.randn(2, T, 2, H, W))
    h, w = H // 16, W // 16  # resnet stride 16 with last stride 1
    assert out.embedding.shape == (2, 512) and out.logits.shape == (2, 7)
    assert out.aux["frame_maps"].shape == (2, T, 512, h, w)
    assert out.aux["temporal_attention"].shape == (2, T)
    assert out.aux["spatial_attention"].shape == (2, T, 1, h, w)


def test_lsta_maps_in_unit_interval_and_equation():
    torch.manual_seed(0)
    blk = LSTA(32, reduction=16)
    x = torch.randn(3, 32, 8, 4)
    y = blk(x)
    wc, ws = blk.last_channel, blk.last_spatial
    assert wc.shape == (3, 32, 1, 1) and ws.shape == (3, 1, 8, 4)
    assert (wc > 0).all() and (wc < 1).all() and (ws > 0).all() and (ws < 1).all()
    # Eq. 4 by hand: sigma(W4(relu(W3 avg + b3) + relu(W3 max + b3)) + b4)
    W3, b3 = blk.w3.weight[:, :, 0, 0], blk.w3.bias
    W4, b4 = blk.w4.weight[:, :, 0, 0], blk.w4.bias
    a, mx = x.mean((2, 3)), x.amax((2, 3))
    wc_hand = torch.sigmoid((torch.relu(a @ W3.t() + b3) + torch.relu(mx @ W3.t() + b3)) @ W4.t() + b4)
    torch.testing.assert_close(wc[:, :, 0, 0], wc_hand)
    torch.testing.assert_close(y, x * wc * ws)


@pytest.mark.parametrize("T", [1, 2, 6])
def test_gsta_attention_sums_to_one(T):
    g = GSTA(16, hidden=8)
    f = torch.randn(3, T, 16, 4, 2)
    v, k = g(f)
    assert v.shape == (3, 16) and k.shape == (3, T)
    torch.testing.assert_close(k.sum(1), torch.ones(3))
    # Eq. 8 residual term: with W9 zeroed, V is the spatio-temporal mean of f
    with torch.no_grad():
        g.w9.weight.zero_()
        g.w9.bias.zero_()
    torch.testing.assert_close(g(f)[0], f.mean((1, 3, 4)))


def test_pyramid_ranking_equals_direct_per_stripe():
    torch.manual_seed(1)
    f = torch.randn(6, 4, 5, 8, 2)  # B, T, C, H, W (H divisible by 1, 2, 4)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    trip = BatchHardTripletLoss(0.4, "euclidean")
    direct = 0.0
    for g in (1, 2, 4):
        h = 8 // g
        level = 0.0
        for z in range(g):
            stripe = f[:, :, :, z * h:(z + 1) * h, :].mean((3, 4))  # (B, T, C)
            level += trip(stripe.mean(1) + stripe.amax(1), y)
        direct += level / g
    direct /= 3
    torch.testing.assert_close(PyramidRankingLoss((1, 2, 4), 0.4)(f, y), direct)


def test_flip_negates_flow_x():
    tf = ClipTransform(4, 6, train=True)
    frames = np.zeros((2, 4, 6, 3), np.uint8)
    flow = np.zeros((2, 4, 6, 2), np.float32)
    flow[:, :, 0, 0] = 0.5  # x flow in the left column
    flow[:, :, 0, 1] = 0.25  # y flow in the left column
    _, fl = tf(frames, ClipParams(flip=True), flow=flow)
    assert fl.shape == (2, 2, 4, 6)
    assert torch.all(fl[:, 0, :, -1] == -0.5) and torch.all(fl[:, 1, :, -1] == 0.25)  # mirrored, x negated
    assert torch.all(fl[:, :, :, 0] == 0)


def test_gradients_reach_both_stems():
    m = create_model("star", 4, backbone="resnet18")
    out = m(torch.randn(4, 2, 3, 64, 32), flow=torch.randn(4, 2, 2, 64, 32))
    (out.logits.sum() + out.features.pow(2).sum()).backward()
    assert m.rgb_stem[0].weight.grad.abs().sum() > 0
    assert m.flow_stem[0].weight.grad.abs().sum() > 0


def test_flow_required_and_rgb_only_variant():
    m = create_model("star", 0, backbone="resnet18")
    with pytest.raises(ValueError, match="data.flow"):
        m(torch.randn(1, 2, 3, 64, 32))
    rgb = create_model("star", 0, backbone="resnet18", use_flow=False)
    assert rgb.flow_stem is None and rgb(torch.randn(2, 2, 3, 64, 32)).embedding.shape == (2, 512)


def test_cbam_variant_wraps_every_block():
    m = create_model("star", 0, backbone="resnet18", attention="cbam", gsta=False, use_flow=False)
    n_cbam = sum(1 for mod in m.modules() if type(mod).__name__ == "CBAM")
    assert n_cbam == 8  # ResNet-18 has 2 + 2 + 2 + 2 blocks


def test_flow_cache_roundtrip_and_errors(tiny_tree, tmp_path):
    import shutil

    from vidreid.data.datasets import build_dataset
    from vidreid.data.flow import FlowCache, compute_flow_cache, decode, encode
    from vidreid.errors import DatasetError

    fl = np.random.default_rng(0).uniform(-25, 25, (8, 4, 2)).astype(np.float32)
    back = decode(encode(fl, 20.0)) * 20.0
    assert np.abs(back - np.clip(fl, -20, 20)).max() <= 20.0 / 127 / 2 + 1e-5
    assert decode(encode(np.zeros((2, 2, 2), np.float32), 20.0)).max() == 0.0  # zero is exact
    root = tmp_path / "prid"
    shutil.copytree(tiny_tree("prid2011"), root)
    ds = build_dataset("prid2011", root)
    with pytest.raises(DatasetError, match="vidreid flow --dataset prid2011 .* --method farneback"):
        FlowCache(root, "prid2011", "farneback")
    man = compute_flow_cache(ds, "farneback")
    assert man["frames"] == sum(len(t) for t in __import__("vidreid.data.flow", fromlist=["x"]).all_tracklets(ds))
    cache = FlowCache(root, "prid2011", "farneback", all_tracklets_of=ds)
    t = ds.split(0).train[0]
    f = cache.read(t.frames[0], 128, 64)  # upsampled x2 from the 64x32 tiny frames
    assert f.shape == (128, 64, 2) and f.dtype == np.float32
    # the last frame reuses the previous flow
    np.testing.assert_array_equal(cache.read(t.frames[-1], 64, 32), cache.read(t.frames[-2], 64, 32))
    # a changed dataset (a tracklet lost its last frame) makes the cache stale
    (root / t.frames[-1]).unlink()
    with pytest.raises(DatasetError, match="stale.*vidreid flow"):
        FlowCache(root, "prid2011", "farneback", all_tracklets_of=build_dataset("prid2011", root))


def test_full_scale_config_one_training_step(tiny_tree, tmp_path):
    """configs/star/mars.yaml builds the full model (ResNet-50, two-stream, LSTA, GSTA, R_pr)
    and takes one optimisation step on a tiny generated tree with flow (small input, CPU)."""
    import shutil

    from torch.utils.data import DataLoader

    from vidreid.config import load_config
    from vidreid.data.datasets import build_dataset
    from vidreid.data.flow import compute_flow_cache
    from vidreid.engine.trainer import Trainer

    root = tmp_path / "mars"
    shutil.copytree(tiny_tree("mars"), root)
    compute_flow_cache(build_dataset("mars", root), "farneback")
    cfg = load_config("star/mars", [f"data.root={root}", "data.flow=farneback", "data.height=64", "data.width=32",
                                    "data.num_workers=0", "model.args.pretrained=null", "data.train_sampling.seq_len=4",
                                    f"train.output_dir={tmp_path / 'out'}", "train.progress=false"])
    tr = Trainer(cfg)
    assert tr.model.dim == 2048 and tr.model.flow_stem is not None
    batch = next(iter(DataLoader(tr.train_set, batch_sampler=tr.sampler)))
    assert batch["flow"].shape == batch["clip"].shape[:2] + (2, 64, 32)
    before = [p.detach().clone() for p in tr.model.parameters()]
    out = tr.model(batch["clip"], flow=batch["flow"])
    loss, parts = tr.loss(out, batch["label"])
    assert set(parts) == {"cross_entropy", "triplet", "pyramid_ranking"} and torch.isfinite(loss)
    tr.optimizer.zero_grad()
    loss.backward()
    tr.optimizer.step()
    changed = sum(int(not torch.equal(a, b)) for a, b in zip(before, tr.model.parameters()))
    assert changed > 100


def test_nonfinite_flow_is_zeroed_and_counted(tiny_tree, tmp_path, monkeypatch):
    import shutil

    import vidreid.data.flow as flowmod
    from vidreid.data.datasets import build_dataset

    root = tmp_path / "p"
    shutil.copytree(tiny_tree("prid2011"), root)
    real = flowmod.flow_between

    def with_nan(a, b, method):
        f = real(a, b, method)
        f[0, 0] = np.nan
        return f

    monkeypatch.setattr(flowmod, "flow_between", with_nan)
    man = flowmod.compute_flow_cache(build_dataset("prid2011", root), "farneback")
    n_pairs = sum(len(t) - 1 for t in flowmod.all_tracklets(build_dataset("prid2011", root)))
    assert man["nonfinite_vectors_zeroed"] == n_pairs
    t = build_dataset("prid2011", root).split(0).train[0]
    f = flowmod.FlowCache(root, "prid2011", "farneback").read(t.frames[0], 64, 32)
    assert np.isfinite(f).all() and f[0, 0, 0] == 0.0


def test_crashing_flow_worker_is_retried_not_hung(tiny_tree, tmp_path, monkeypatch):
    """A worker that dies (as OpenCV's dense LK once did with a segfault) is retried in a fresh
    pool; one that always dies gives an error naming exactly that tracklet, never a hang.
    (VIDREID_FLOW_CRASH_ON makes the worker of the tracklet whose first frame ends so exit.)"""
    import shutil

    import vidreid.data.flow as flowmod
    from vidreid.data.datasets import build_dataset

    root = tmp_path / "p"
    shutil.copytree(tiny_tree("prid2011"), root)
    once = tmp_path / "crashed_once"
    monkeypatch.setenv("VIDREID_FLOW_CRASH_ON", "cam_a/person_0001/0001.png")
    monkeypatch.setenv("VIDREID_FLOW_CRASH_ONCE", str(once))
    man = flowmod.compute_flow_cache(build_dataset("prid2011", root), "farneback", workers=2)
    assert once.exists() and man["frames"] == sum(len(t) for t in flowmod.all_tracklets(build_dataset("prid2011", root)))
    monkeypatch.setenv("VIDREID_FLOW_CRASH_ON", "cam_a/person_0002/0001.png")
    monkeypatch.delenv("VIDREID_FLOW_CRASH_ONCE")
    with pytest.raises(RuntimeError, match=r"on 1 tracklet\(s\), e.g. \['prid_2011/multi_shot/cam_a/person_0002'\]"):
        flowmod.compute_flow_cache(build_dataset("prid2011", root), "farneback", workers=2)


@pytest.mark.parametrize("variant", ["lstm", "conv3d", "attention", "avg"])
def test_fig4b_temporal_variants(variant):
    m = create_model("star", 3, backbone="resnet18", use_flow=False, temporal=variant).train()
    out = m(torch.randn(2, 5, 3, 64, 32))
    assert out.embedding.shape == (2, m.dim) and out.logits.shape == (2, 3)
    if variant == "attention":
        torch.testing.assert_close(out.aux["temporal_attention"].sum(1), torch.ones(2))
    assert m.gsta is None and m.streaming is (variant == "avg")


@pytest.mark.parametrize("attention,kernel", [("se", "dilated"), ("holistic", "dilated"), ("lsta", "3x3"),
                                              ("lsta", "7x7"), ("lsta", "none")])
def test_fig4a_and_fig6_attention_variants(attention, kernel):
    from vidreid.models.star import LSTA

    m = create_model("star", 3, backbone="resnet18", use_flow=False, attention=attention, lsta_kernel=kernel).eval()
    with torch.no_grad():
        out = m(torch.randn(1, 2, 3, 64, 32))
    assert torch.isfinite(out.embedding).all()
    lsta = [b for b in m.attn if isinstance(b, LSTA)]
    if attention == "lsta":
        convs = lsta[0].w5
        want = {"3x3": [(3, 1)] * 3, "7x7": [(7, 1)], "none": None}[kernel]
        assert (convs is None) if want is None else [(c.kernel_size[0], c.dilation[0]) for c in convs] == want
    else:
        assert not lsta


def test_star_ablation_configs_build():
    """Every STAR ablation config (Table 3, Figs. 4-7) builds its model; the Table 3 baselines
    are two-stream, Fig. 7's RGB-only run has no R_pr, Fig. 5 varies the losses only."""
    from vidreid.config import load_config, packaged_config_dir

    for p in sorted((packaged_config_dir() / "star" / "ablation").glob("*.yaml")):
        c = load_config(p)
        args = dict(c.model.args, backbone="resnet18", pretrained=None)
        create_model(c.model.name, 3, **args)
        names = [t["name"] for t in c.loss]
        if p.stem in ("resnet50_id", "cbam_multiloss"):
            assert c.model.args.use_flow and c.data.flow
        if p.stem == "rgb_only":
            assert not c.model.args.use_flow and "pyramid_ranking" not in names
        if p.stem == "fig5_id":
            assert names == ["cross_entropy"]


def test_cbam_baseline_sits_inside_each_residual_branch():
    """Table 3's CBAM-Multi-loss baseline: CBAM as its paper places it in ResNet, on the residual
    branch before the shortcut is added (not after the block's output)."""
    import torch

    from vidreid.models import create_model
    from vidreid.models.star import CBAM

    torch.manual_seed(0)
    m = create_model("star", backbone="resnet18", use_flow=False, attention="cbam", gsta=False).eval()
    blocks = [b for st in m.stages for b in st]
    assert all(isinstance(b.bn2[1], CBAM) for b in blocks) and len(blocks) == 8
    b = blocks[1]  # a block with an identity shortcut
    x = torch.randn(1, b.conv1.in_channels, 8, 4)
    with torch.no_grad():
        branch = b.bn2[1](b.bn2[0](b.conv2(b.relu(b.bn1(b.conv1(x))))))
        torch.testing.assert_close(b(x), torch.relu(branch + x))


def test_retrieval_on_v_and_id_input_selectable():
    """Sec. 3.1: videos are matched by L2 distance between their STAR features V (embed=pooled,
    the default); Eq. 11's classifier on V is id_input=v."""
    import torch

    from vidreid.models import create_model

    torch.manual_seed(0)
    m = create_model("star", num_classes=3, backbone="resnet18", use_flow=False, hidden=16).eval()
    clip = torch.randn(2, 3, 3, 64, 32)
    with torch.no_grad():
        out = m(clip)
    torch.testing.assert_close(out.embedding, out.features)
    v = create_model("star", num_classes=3, backbone="resnet18", use_flow=False, hidden=16, id_input="v").train()
    o = v(clip)
    torch.testing.assert_close(o.logits, v.classifier(o.features))


def test_zoom_enlarges_the_clip_and_its_flow_alike():
    """data.augment.zoom: every frame enlarged by the factor and cropped at one offset; the flow
    crop is the same window, its vectors scaled by the factor; no zoom leaves the clip as it was."""
    tf = ClipTransform(8, 4, train=True, flip_p=0.0, zoom_p=1.0, zoom=1.5, mean=(0, 0, 0), std=(1, 1, 1))
    p = tf.draw(np.random.default_rng(0))
    assert p.zoom is not None and 0 <= p.zoom[0] <= 2 and 0 <= p.zoom[1] <= 4
    frames = np.zeros((3, 8, 4, 3), np.uint8)
    frames[:, :, 2:] = 255  # right half white
    flow = np.ones((3, 8, 4, 2), np.float32)
    clip, fl = tf(frames, ClipParams(zoom=(0, 0)), flow=flow)
    assert clip.shape == (3, 3, 8, 4) and fl.shape == (3, 2, 8, 4)
    # the left 4 of the 6 enlarged columns: 3 dark, then the edge (interpolated), no white column
    assert float(clip[:, :, :, :2].max()) < 0.2 and float(clip[:, :, :, 3].min()) > 0.3
    assert torch.allclose(fl, torch.full_like(fl, 1.5))
    assert torch.equal(tf(frames, ClipParams())[0], ClipTransform(8, 4, train=False, mean=(0, 0, 0), std=(1, 1, 1))(frames, ClipParams())[0])
    assert ClipTransform(8, 4, zoom_p=0.0).draw(np.random.default_rng(0)).zoom is None


def test_lowres_loses_fine_detail_and_keeps_the_flow():
    """data.augment.lowres: every frame shrunk by the drawn factor and scaled back, so a
    one-pixel stripe pattern is smoothed away while flat regions stay; the flow is untouched;
    with lowres_p 0 no resolution loss is drawn."""
    tf = ClipTransform(16, 8, train=True, flip_p=0.0, lowres_p=1.0, lowres=0.4, mean=(0, 0, 0), std=(1, 1, 1))
    p = tf.draw(np.random.default_rng(0))
    assert 0.4 <= p.lowres < 1.0
    frames = np.zeros((2, 16, 8, 3), np.uint8)
    frames[:, ::2] = 255  # horizontal stripes one pixel high
    flow = np.ones((2, 16, 8, 2), np.float32)
    clip, fl = tf(frames, ClipParams(lowres=0.5), flow=flow)
    assert float(clip.std()) < 0.1 and abs(float(clip.mean()) - 0.5) < 0.1  # stripes gone, the mean kept
    assert torch.equal(fl, torch.ones_like(fl))
    sharp = tf(frames, ClipParams())[0]
    assert float(sharp.std()) > 0.45
    flat = np.full((2, 16, 8, 3), 90, np.uint8)
    assert torch.allclose(tf(flat, ClipParams(lowres=0.5))[0], tf(flat, ClipParams())[0])
    assert ClipTransform(16, 8, lowres_p=0.0).draw(np.random.default_rng(0)).lowres == 1.0
