"""The synthetic benchmark: determinism, realism knobs, manifests."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from vidreid.synth.render import Camera, Identity, TrackletRenderer
from vidreid.synth.generate import PRESETS, World, generate, preset
from vidreid.errors import ConfigError


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_deterministic_whatever_the_workers(tmp_path):
    a = generate("mars", "tiny", tmp_path / "a", seed=5, workers=1)
    b = generate("mars", "tiny", tmp_path / "b", seed=5, workers=2)
    assert a["expected"] == b["expected"]
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    generate("mars", "tiny", tmp_path / "c", seed=6, workers=1)
    assert _digest(tmp_path / "c") != _digest(tmp_path / "a")


def test_refuses_non_empty_out_and_bad_names(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    with pytest.raises(ConfigError, match="not an empty folder"):
        generate("prid2011", "tiny", tmp_path / "x")
    with pytest.raises(ConfigError, match="valid"):
        preset("prid2011", "huge")
    with pytest.raises(ConfigError, match="valid"):
        preset("nope", "tiny")


def test_every_layout_has_tiny_and_its_own_preset():
    for layout, ps in PRESETS.items():
        assert "tiny" in ps and layout in ps


def test_lookalikes_differ_only_in_gait_or_detail():
    p = preset("prid2011", "prid2011")
    w = World(0, p, p.ids)
    assert len(w.groups) >= int(0.35 * p.ids) // 3
    for g in w.groups[:10]:
        base = w.identities[g[0]]
        for m in g[1:]:
            o = w.identities[m]
            how = o.details["differs_in"]
            if how == "gait":
                assert np.array_equal(o.top, base.top) and o.pattern == base.pattern
                assert o.cadence != base.cadence
            else:
                assert o.cadence == base.cadence


def test_renderer_animates_gait_and_respects_size():
    rng = np.random.default_rng(0)
    ident = Identity.sample(rng)
    cam = Camera.sample(rng, 128, 64)
    r = TrackletRenderer(ident, cam, 30, np.random.default_rng(1))
    frames = list(r.frames())
    assert len(frames) == 30 and frames[0].shape == (128, 64, 3) and frames[0].dtype == np.uint8
    # the walking person changes frame to frame (gait), beyond noise
    diffs = [np.abs(frames[i].astype(int) - frames[i + 1].astype(int)).mean() for i in range(29)]
    assert max(diffs) > 3.0
    # a tracklet is a pure function of its seed, and the identity changes what is drawn
    again = TrackletRenderer(ident, cam, 30, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(frames, again.frames()))
    other = TrackletRenderer(Identity.sample(np.random.default_rng(99)), cam, 30, np.random.default_rng(1))
    assert np.abs(other.frame(0).astype(int) - frames[0].astype(int)).mean() > 3.0


def test_synthetic_metadata_has_the_official_files_types(tiny_tree):
    """Peer loaders (torchreid's MARS loader indexes with query_IDX) must read our trees: every
    metadata file holds the real file's keys, dtypes and shape layout."""
    import json as _json

    import scipy.io as sio

    from tests.conftest import SHARED

    root = tiny_tree("mars")
    for name, key in (("tracks_train_info.mat", "track_train_info"), ("tracks_test_info.mat", "track_test_info"),
                      ("query_IDX.mat", "query_IDX")):
        ours = sio.loadmat(root / "info" / name)
        a = ours[key]
        real_file = SHARED / "mars_info" / name
        if real_file.is_file():
            real = sio.loadmat(real_file)[key]
        else:  # no ../shared (a user's clone): the types the data README states
            real = np.zeros((1, 4) if "track" in key else (1, 1), np.int32 if "track" in key else np.uint16)
        assert [k for k in ours if not k.startswith("__")] == [key]
        assert a.dtype == real.dtype and a.ndim == 2 and a.shape[1 if "track" in key else 0] == real.shape[1 if "track" in key else 0]
    info = sio.loadmat(root / "info" / "tracks_test_info.mat")["track_test_info"]
    q = sio.loadmat(root / "info" / "query_IDX.mat")["query_IDX"].squeeze() - 1
    assert info[q, 2].dtype.kind == "i"  # integer indexing, as torchreid does
    prid = tiny_tree("prid2011")
    splits = _json.loads(next(prid.rglob("splits_prid2011.json")).read_text())
    real_file = SHARED / "prid2011" / "splits_prid2011.json"
    # without ../shared: the documented shape, [{"train": ["person_0001", ...], "test": [...]}, ...]
    real = (_json.loads(real_file.read_text()) if real_file.is_file()
            else [{"train": ["person_0001"], "test": ["person_0002"]}])
    assert type(splits) is type(real) and set(splits[0]) == set(real[0])
    assert isinstance(splits[0]["train"][0], type(real[0]["train"][0]))


def test_detailed_renderer_keeps_the_protocol_and_adds_detail(tmp_path):
    """Preset.detail = 1 draws the same people, cameras and tracklets (same files, counts and
    splits) with more on them; level 0 ignores the detailed renderer's generator."""
    a = generate("prid2011", "tiny", tmp_path / "a", seed=2, workers=1)
    b = generate("prid2011", "tiny", tmp_path / "b", seed=2, workers=1, detail=1)
    assert a["expected"] == b["expected"] and b["params"]["detail"] == 1 and a["params"]["detail"] == 0
    fa = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    fb = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.png"))
    assert fa == fb and len(fa) > 50
    for name in ("splits_prid2011.json",):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    differ = sum((tmp_path / "a" / f).read_bytes() != (tmp_path / "b" / f).read_bytes() for f in fa)
    assert differ == len(fa)
    c = generate("prid2011", "tiny", tmp_path / "c", seed=2, workers=2, detail=1)
    assert c["expected"] == b["expected"] and _digest(tmp_path / "c") == _digest(tmp_path / "b")
    with pytest.raises(ConfigError, match="detail"):
        generate("prid2011", "tiny", tmp_path / "d", detail=2)

    rng = np.random.default_rng(0)
    ident, cam = Identity.sample(rng), Camera.sample(rng, 128, 64)
    plain = list(TrackletRenderer(ident, cam, 5, np.random.default_rng(1)).frames())
    given = list(TrackletRenderer(ident, cam, 5, np.random.default_rng(1), detail_rng=np.random.default_rng(2)).frames())
    assert all(np.array_equal(x, y) for x, y in zip(plain, given))


def test_detailed_renderer_draws_the_details():
    """An open jacket shows its inner layer from the front; the fabric grain and the shading vary
    the torso's colour, which the first renderer paints flat (faces and glasses are not checked
    here)."""
    from vidreid.synth.render import FRONT, CameraDetail, Detail

    rng = np.random.default_rng(3)
    ident, cam = Identity.sample(rng), Camera.sample(rng, 128, 64)
    ident.top, ident.pattern, ident.backpack, ident.bag, ident.hat = np.array([40.0, 40, 40]), 0, None, None, None
    cam.gain, cam.cast, cam.noise, cam.blur = 1.0, np.ones(3), 0.0, 0.0
    r = TrackletRenderer(ident, cam, 1, np.random.default_rng(1))
    r.view, r.jitter[:] = FRONT, 0
    r.noise_bank[:] = 0
    flat = r.frame(0)
    d = Detail.sample(np.random.default_rng(4))
    d.open_jacket, d.opening, d.inner, d.collar, d.belt = True, 0.4, np.array([230.0, 230, 230]), None, None
    ident.detail = d
    r.cam.detail = CameraDetail(jpeg_quality=100, motion_blur=0, light=0.0, shading=0.3)
    rich = r.frame(0)
    chest = (slice(50, 60), slice(30, 34))  # the torso's middle, where the jacket opens
    assert flat[chest].mean() < 60 and rich[chest].mean() > 150
    side = (slice(45, 65), slice(24, 27))
    assert flat[side].std() < 1.0 and rich[side].std() > 1.0
