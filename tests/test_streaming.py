"""The all-frame test is one temporal pass over the whole tracklet (STAR Sec. 4.2, RRU + STIM
Sec. 4.1, ASTPN Sec. 3.3), with bounded memory: ``extract_features`` with the ``all`` sampler
equals ``model(clip)`` on all frames at once, however the frames are cut into batches. Chunked
averaging (the recurrence restarting every ``seq_len`` frames) fails these tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidreid.data.datasets import build_dataset
from vidreid.data.sampling import TemporalSampler
from vidreid.data.transforms import ClipTransform
from vidreid.data.video import ClipDataset
from vidreid.inference.features import extract_features, is_streaming
from vidreid.models import create_model

H, W = 64, 32


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _whole(model, root, tracklets, tf, flow=None):
    """model(clip) on every tracklet's frames at once (the reference)."""
    ds = ClipDataset(root, tracklets, TemporalSampler("all", train=False), tf, flow=flow)
    out = []
    with torch.no_grad():
        for i in range(len(ds)):
            it = ds[i]
            kw = {"flow": it["flow"][None]} if "flow" in it else {}
            out.append(model(it["clip"][None], **kw).embedding[0])
    return torch.stack(out)


def _perturb_bn(model):
    """Random BN statistics, so that eval-mode BN is not the identity and errors show."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return model.eval()


@pytest.fixture(scope="module")
def prid(tiny_tree):
    root = tiny_tree("prid2011")
    split = build_dataset("prid2011", root).split(0)
    tracks = split.query[:3] + split.gallery[:2]
    assert len({len(t) for t in tracks}) > 1 and max(len(t) for t in tracks) > 8
    return root, tracks


MODELS = {
    "star": dict(name="star", backbone="resnet18", use_flow=False, hidden=32),
    "star_no_gsta": dict(name="star", backbone="resnet18", use_flow=False, gsta=False),
    "rru_stim": dict(name="rru_stim", backbone="resnet18", height=H, width=W, aux_classifier=False),
    "rru_lstm": dict(name="rru_stim", backbone="resnet18", height=H, width=W, temporal="lstm", aux_classifier=False),
    "rru_avg": dict(name="rru_stim", backbone="resnet18", height=H, width=W, temporal="avg", rru=False,
                    aux_classifier=False),
    "astpn": dict(name="astpn", in_channels=3, height=H, width=W),
    "baseline_max": dict(name="baseline", backbone="resnet18", temporal_pool="max"),
}


@pytest.mark.parametrize("key", sorted(MODELS))
@pytest.mark.parametrize("batch_size", [5, 64])
def test_all_frames_is_one_pass(prid, key, batch_size):
    """Batches of 5 frames cut every tracklet into pieces and mix tracklets in one batch."""
    root, tracks = prid
    args = dict(MODELS[key])
    name = args.pop("name")
    torch.manual_seed(0)
    model = _perturb_bn(create_model(name, num_classes=0, **args))
    assert is_streaming(model)
    color = getattr(model, "input_color", "rgb")
    tf = ClipTransform(H, W, train=False, color=color)
    ref = _whole(model, root, tracks, tf)
    got = extract_features(model, root, tracks, TemporalSampler("all", seq_len=4, train=False), tf,
                           batch_size=batch_size, num_workers=0)
    for i in range(len(tracks)):
        assert _rel(got[i], ref[i]) <= 1e-4, (key, i, len(tracks[i]))


def test_chunked_average_differs(prid):
    """The check above has teeth: averaging per-chunk embeddings (the old path) is measurably
    different from the one-pass embedding for a recurrent model."""
    root, tracks = prid
    torch.manual_seed(0)
    model = _perturb_bn(create_model("rru_stim", num_classes=0, **{k: v for k, v in MODELS["rru_stim"].items() if k != "name"}))
    tf = ClipTransform(H, W, train=False)
    t = max(tracks, key=len)
    ref = _whole(model, root, [t], tf)[0]
    ds = ClipDataset(root, [t], TemporalSampler("all", train=False), tf)
    clip = ds[0]["clip"]
    with torch.no_grad():
        chunks = torch.stack([model(clip[s:s + 4][None]).embedding[0] for s in range(0, len(t), 4)])
    assert _rel(chunks.mean(0), ref) > 1e-3


def test_star_with_flow_one_pass(tiny_tree):
    from vidreid.data.flow import FlowCache, compute_flow_cache

    root = tiny_tree("prid2011", seed=3)
    ds = build_dataset("prid2011", root)
    compute_flow_cache(ds, "farneback")
    flow = FlowCache(root, "prid2011", "farneback")
    tracks = ds.split(0).query[:3]
    torch.manual_seed(0)
    model = _perturb_bn(create_model("star", num_classes=0, backbone="resnet18", hidden=32))
    tf = ClipTransform(H, W, train=False)
    ref = _whole(model, root, tracks, tf, flow=flow)
    got = extract_features(model, root, tracks, TemporalSampler("all", seq_len=10, train=False), tf,
                           batch_size=7, num_workers=0, flow=flow)
    for i in range(len(tracks)):
        assert _rel(got[i], ref[i]) <= 1e-4


def test_astpn_pairwise_states_streamed(prid):
    """Pairwise mode's per-tracklet states are the whole-sequence RNN outputs, streamed."""
    from vidreid.inference.pairwise import extract_states

    root, tracks = prid
    torch.manual_seed(0)
    model = create_model("astpn", num_classes=0, in_channels=3, height=H, width=W).eval()
    tf = ClipTransform(H, W, train=False, color="yuv_std")
    states = extract_states(model, root, tracks, TemporalSampler("all", train=False), tf, batch_size=5, num_workers=0)
    ds = ClipDataset(root, tracks, TemporalSampler("all", train=False), tf)
    for i, t in enumerate(tracks):
        with torch.no_grad():
            ref = model.sequence_states(ds[i]["clip"][None])[0]
        assert states[i].shape == (len(t), model.dim)
        assert torch.allclose(states[i], ref, atol=1e-5)


def test_astpn_self_pool_blocks_equal_dense():
    torch.manual_seed(0)
    model = create_model("astpn", num_classes=0, in_channels=3, height=H, width=W).eval()
    P = torch.randn(1300, model.dim)
    dense = model.attentive_pool(P[None], P[None])[0][0]
    assert torch.allclose(model.self_pool(P, block=256), dense, atol=1e-5)


def test_rru_stim_stream_single_and_two_frames():
    """STIM's temporal context at the ends (zero padding) for the shortest tracklets."""
    from vidreid.models.rru_stim import STIM

    torch.manual_seed(0)
    stim = _perturb_bn(STIM(8, width=6))
    for T in (1, 2, 3, 5):
        S = torch.randn(1, T, 8, 3, 2)
        for cut in range(1, T + 1):
            st: dict = {}
            stim.stream_update(st, S[:, :cut])
            if cut < T:
                stim.stream_update(st, S[:, cut:])
            assert torch.allclose(stim.stream_finish(st), stim(S), atol=1e-6), (T, cut)


def test_3d_cnn_all_frames_ap3d_protocol(tiny_tree):
    """C2D/P3D/STRF: consecutive clips of seq_len frames, the last one shorter (not stretched),
    per-frame features averaged over the tracklet's real frames, then the BN-neck."""
    root = tiny_tree("prid2011")
    split = build_dataset("prid2011", root).split(0)
    t = max(split.query, key=len)
    L = 4
    assert len(t) % L != 0 or len(t) > L
    torch.manual_seed(0)
    model = _perturb_bn(create_model("strf", num_classes=0, layers=[1, 3, 3, 1], blocks3d=[[], [0, 2], [0, 2], []],
                                     strf_blocks=[[0], [0, 2], [0, 2], [0]]))
    tf = ClipTransform(H, W, train=False)
    clip = ClipDataset(root, [t], TemporalSampler("all", train=False), tf)[0]["clip"]
    with torch.no_grad():
        per_frame = torch.cat([model.clip_frame_features(clip[s:s + L][None])[0] for s in range(0, len(t), L)])
        ref = model.head(per_frame.mean(0, keepdim=True)).embedding[0]
        # a one-clip tracklet gives exactly forward()'s embedding
        assert torch.allclose(model.head(model.clip_frame_features(clip[None, :L]).mean(1)).embedding,
                              model(clip[None, :L]).embedding, atol=1e-5)
    got = extract_features(model, root, [t], TemporalSampler("all", seq_len=L, train=False), tf, batch_size=8,
                           num_workers=0)[0]
    assert _rel(got, ref) <= 1e-4
    # the old rule (tail stretched, every clip weighted alike) gives another embedding
    n_tail = len(t) % L
    if n_tail:
        idx = (len(t) - n_tail) + (np.arange(L) * n_tail) // L
        with torch.no_grad():
            full = [model(clip[s:s + L][None]).embedding[0] for s in range(0, len(t) - n_tail, L)]
            old = torch.stack(full + [model(clip[idx][None]).embedding[0]]).mean(0)
        assert _rel(old, ref) > 1e-4


def test_clip_path_uint8_workers_equal_the_float_transform(tiny_tree):
    """Clip-sampled extraction decodes to uint8 in the workers and normalises where the model
    runs; the embeddings equal the model on clips from the float (host-normalised) transform."""
    root = tiny_tree("prid2011")
    split = build_dataset("prid2011", root).split(0)
    m = create_model("baseline", 0, backbone="resnet18", temporal_pool="max").eval()
    tf = ClipTransform(64, 32, train=False)
    sampler = TemporalSampler("evenly", 4, train=False)
    got = extract_features(m, root, split.query, sampler, tf, num_workers=0, channels_last=False)
    ds = ClipDataset(root, split.query, sampler, tf)
    assert ds[0]["clip"].dtype == torch.float32
    with torch.inference_mode():
        want = torch.cat([m(ds[i]["clip"][None]).embedding for i in range(len(ds))])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_3d_cnn_all_frames_as_trained_plan(tiny_tree):
    """clips=as_trained: the embedding is the head of the mean, over the tracklet's frames, of the
    per-frame features each frame gets in its one clip of the plan (every clip seq_len frames)."""
    root = tiny_tree("prid2011")
    split = build_dataset("prid2011", root).split(0)
    t = max(split.query, key=len)
    torch.manual_seed(0)
    model = _perturb_bn(create_model("strf", num_classes=0, layers=[1, 3, 3, 1], blocks3d=[[], [0, 2], [0, 2], []],
                                     strf_blocks=[[0], [0, 2], [0, 2], [0]]))
    tf = ClipTransform(H, W, train=False)
    clip = ClipDataset(root, [t], TemporalSampler("all", train=False), tf)[0]["clip"]
    sampler = TemporalSampler("all", seq_len=4, train=False, stride=2, clips="as_trained")
    plan = sampler.clip_plan(len(t))
    assert len(plan) > 1 and any(not take.all() for _, take in plan)  # an overlapping last block
    with torch.no_grad():
        feats = torch.zeros(len(t), model.dim)
        for idx, take in plan:
            f = model.clip_frame_features(clip[torch.from_numpy(idx)][None])[0]
            feats[torch.from_numpy(idx[take])] = f[torch.from_numpy(take)]
        ref = model.head(feats.mean(0, keepdim=True)).embedding[0]
    got = extract_features(model, root, [t], sampler, tf, batch_size=8, num_workers=0)[0]
    assert _rel(got, ref) <= 1e-4
