"""torchreid model-zoo checkpoints in vidreid (issue 23): OSNet / OSNet-AIN / ResNet-50 with
torchreid's names, both file shapes, the API and CLI, and exact parity with torchreid's own code
when its source is at hand (``VIDREID_TORCHREID_SRC``: a deep-person-reid checkout)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vidreid.models.zoo import ARCHS, TorchreidVideo, build_torchreid_net

KEYS = json.loads((Path(__file__).parent / "data" / "torchreid_keys.json").read_text())


@pytest.mark.parametrize("arch", ARCHS)
def test_names_and_shapes_are_torchreids(arch):
    """Every parameter and buffer name and shape of the reference model (751 classes), written
    by scripts/torchreid_parity.py from torchreid's own modules."""
    ours = {k: list(v.shape) for k, v in build_torchreid_net(arch, num_classes=751).state_dict().items()}
    assert ours == KEYS[arch]


def _randomised(arch, num_classes=751, seed=0):
    g = torch.Generator().manual_seed(seed)
    net = build_torchreid_net(arch, num_classes)
    with torch.no_grad():
        for k, t in net.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.5 if k.endswith("running_var")
                        else torch.randn(t.shape, generator=g) * 0.05)
    return net


def _save_both(net, tmp_path):
    sd = net.state_dict()
    bare = tmp_path / "bare.pth"
    torch.save(sd, bare)
    ck = tmp_path / "model.pth.tar-60"
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}, "epoch": 60, "rank1": np.float64(0.93),
                "optimizer": {"state": {}, "param_groups": [{"lr": 3.5e-4, "params": [0, 1]}]}}, ck)
    return bare, ck


@pytest.mark.parametrize("arch", ["osnet_x0_25", "osnet_ain_x0_25", "resnet50_fc512"])
def test_both_file_shapes_load_and_drop_the_classifier(tmp_path, arch):
    src = _randomised(arch).eval()
    x = torch.randn(2, 3, 128, 64)
    with torch.no_grad():
        want = src(x)
    for f in _save_both(src, tmp_path):
        m = TorchreidVideo(arch, weights=str(f)).eval()
        with torch.no_grad():
            got = m.frame_features(x)
        assert float((got - want).norm() / want.norm()) <= 1e-6
        assert "classifier.weight" not in m.state_dict() or m.classifier is None


def test_mismatched_file_lists_the_keys(tmp_path):
    from vidreid.engine.checkpoint import CheckpointError

    sd = _randomised("osnet_x0_25").state_dict()
    del sd["conv1.conv.weight"]
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"missing \['conv1.conv.weight'\].*unexpected \['extra.weight'\]"):
        TorchreidVideo("osnet_x0_25", weights=str(tmp_path / "bad.pth"))
    torch.save(_randomised("osnet_x0_5").state_dict(), tmp_path / "wide.pth")
    with pytest.raises(CheckpointError, match="shapes"):
        TorchreidVideo("osnet_x0_25", weights=str(tmp_path / "wide.pth"))


def test_a_crafted_file_is_refused(tmp_path):
    from vidreid.engine.checkpoint import CheckpointError

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'PWNED'}",))

    torch.save({"state_dict": {"a": Evil()}}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="safe load refuses"):
        TorchreidVideo("osnet_x0_25", weights=str(tmp_path / "evil.pth"))
    assert not (tmp_path / "PWNED").exists()


def test_api_embed_is_the_mean_of_torchreid_frame_features(tmp_path):
    """vidreid.load("torchreid:ARCH", weights=F).embed: the mean over a tracklet's frames of the
    network's eval-mode feature, on frames normalised as torchreid's FeatureExtractor does."""
    import vidreid

    net = _randomised("osnet_x0_25")
    bare, _ = _save_both(net, tmp_path)
    m = vidreid.load("torchreid:osnet_x0_25", weights=bare, overrides=["data.num_workers=0"])
    frames = np.random.default_rng(0).integers(0, 256, (5, 256, 128, 3), dtype=np.uint8)
    emb = m.embed([frames])[0]
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        want = net.eval()(x).mean(0)
    assert float((emb - want).norm() / want.norm()) <= 1e-5


def test_cli_embed_with_a_torchreid_checkpoint(tmp_path, capsys, tiny_tree):
    from vidreid.cli import main

    bare, _ = _save_both(_randomised("osnet_x0_25"), tmp_path)
    root = tiny_tree("folder")
    assert main(["embed", "--checkpoint", "torchreid:osnet_x0_25", "--weights", str(bare), "--tracklets",
                 str(root / "query"), "--out", str(tmp_path / "e.npz"), "data.num_workers=0"]) == 0
    z = np.load(tmp_path / "e.npz")
    assert z["embeddings"].shape[1] == 512 and json.loads(str(z["meta"]))["model"] == "torchreid"
    torch.save({"w": torch.zeros(1)}, tmp_path / "bad.pth")
    capsys.readouterr()
    assert main(["embed", "--checkpoint", "torchreid:osnet_x0_25", "--weights", str(tmp_path / "bad.pth"),
                 "--tracklets", str(root / "query"), "--out", str(tmp_path / "e2.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "missing" in err and "unexpected ['w']" in err


def test_backbones_start_from_torchreid_files(tmp_path):
    """model.args.backbone: osnet_* / resnet50 with model.args.pretrained: a torchreid file."""
    from vidreid.models import create_model

    net = _randomised("osnet_x0_25", num_classes=10)
    bare, ck = _save_both(net, tmp_path)
    m = create_model("baseline", num_classes=5, backbone="osnet_x0_25", pretrained=str(ck))
    body = m.backbone.body.m
    torch.testing.assert_close(body.conv1.conv.weight, net.conv1.conv.weight)
    assert body.fc is None and body.classifier is None
    r = _randomised("resnet50", num_classes=10)
    _, rck = _save_both(r, tmp_path)
    mr = create_model("baseline", num_classes=5, backbone="resnet50", pretrained=str(rck))
    torch.testing.assert_close(mr.backbone.body[4][0].conv1.weight, r.layer1[0].conv1.weight)


@pytest.mark.skipif(not os.environ.get("VIDREID_TORCHREID_SRC"),
                    reason="torchreid's source not given (VIDREID_TORCHREID_SRC=a deep-person-reid checkout)")
def test_parity_with_torchreids_own_code():
    r = subprocess.run([sys.executable, str(Path(__file__).parents[1] / "scripts" / "torchreid_parity.py"),
                        "--torchreid-src", os.environ["VIDREID_TORCHREID_SRC"]], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
