"""Baseline model, backbones, losses, and the offline ImageNet weights of the light backbone."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vidreid.errors import ConfigError
from vidreid.losses import BatchHardTripletLoss, CompositeLoss, CrossEntropyLoss
from vidreid.models import ModelOutput, create_model


@pytest.mark.parametrize("backbone,dim", [("resnet18", 512), ("efficientnet_lite0", 1280)])
def test_baseline_shapes(backbone, dim):
    m = create_model("baseline", num_classes=7, backbone=backbone)
    x = torch.randn(3, 4, 3, 64, 32)
    out = m(x)
    assert out.embedding.shape == (3, dim) and out.features.shape == (3, dim)
    assert out.logits.shape == (3, 7) and out.aux["frame_features"].shape == (3, 4, dim)
    m.eval()
    out = m(x)
    assert out.logits is None
    # frame-decomposable: the head of the mean frame feature equals the clip embedding
    f = m.frame_features(x.flatten(0, 1)).view(3, 4, -1).mean(1)
    torch.testing.assert_close(m.head(f).embedding, out.embedding)


def test_pretrained_anchor_keeps_the_pretrained_features_beside_the_trained_ones():
    """model.args.pretrained_anchor: training is unchanged (same initialisation, same outputs,
    the frozen copy never moves), and the test embedding is [n(e), w n(a)] with a the pretrained
    backbone's feature, on the forward and the packed (frame_features + head) paths alike."""
    kw = dict(backbone="efficientnet_lite0", pretrained="imagenet")
    torch.manual_seed(0)
    plain = create_model("baseline", 5, **kw)
    torch.manual_seed(0)
    m = create_model("baseline", 5, pretrained_anchor=0.5, **kw)
    st = m.state_dict()
    assert all(torch.equal(v, st[k]) for k, v in plain.state_dict().items())
    anchor0 = {k: v.clone() for k, v in m.anchor.state_dict().items()}
    x = torch.rand(2, 3, 3, 64, 32)
    plain.train(), m.train()
    assert not m.anchor.training and not any(p.requires_grad for p in m.anchor.parameters())
    o1, o2 = plain(x), m(x)
    torch.testing.assert_close(o1.logits, o2.logits)
    assert o2.embedding.shape == (2, 1280)
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.5)
    o2.logits.sum().backward()
    opt.step()
    assert all(torch.equal(v, anchor0[k]) for k, v in m.anchor.state_dict().items())
    assert any(not torch.equal(a, b) for a, b in zip(m.backbone.parameters(), plain.backbone.parameters()))
    m.eval()
    ref = create_model("imagenet_reference", 0, **kw).eval()
    with torch.no_grad():
        e = m(x).embedding
        trained = m.neck(m.backbone(x.flatten(0, 1)).mean(dim=(2, 3)).view(2, 3, -1).mean(1))
        want = torch.cat([F.normalize(trained, dim=1), 0.5 * F.normalize(ref(x).embedding, dim=1)], 1)
        packed = m.head(m.frame_features(x.flatten(0, 1)).view(2, 3, -1).mean(1)).embedding
    assert e.shape == (2, 2560)
    torch.testing.assert_close(e, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(packed, e, rtol=1e-5, atol=1e-6)
    from vidreid.engine.distill import FeatureDistillation

    teacher = FeatureDistillation(m, 1.0).teacher  # shares the frozen anchor, copies what trains
    assert teacher.anchor is m.anchor and teacher.backbone is not m.backbone
    with pytest.raises(ConfigError, match="pretrained_anchor"):
        create_model("baseline", 5, backbone="resnet18", pretrained=None, pretrained_anchor=1.0)
    with pytest.raises(ConfigError, match="pretrained_anchor"):
        create_model("baseline", 5, pretrained_anchor=-1, **kw)


def test_resnet_last_stride():
    m1 = create_model("baseline", backbone="resnet18", last_stride=1)
    m2 = create_model("baseline", backbone="resnet18", last_stride=2)
    x = torch.randn(2, 3, 64, 32)
    assert m1.backbone(x).shape[-2:] == (4, 2) and m2.backbone(x).shape[-2:] == (2, 1)


def test_model_arg_errors():
    with pytest.raises(ConfigError, match="valid"):
        create_model("baseline", backbone="resnet18", bogus=1)
    with pytest.raises(ConfigError, match="valid"):
        create_model("nope")
    with pytest.raises(ConfigError, match="valid"):
        create_model("baseline", backbone="vgg")


def test_resnet_imagenet_needs_local_file(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDREID_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ConfigError, match="resnet18-f37072fd.pth"):
        create_model("baseline", backbone="resnet18", pretrained="imagenet")
    # a local torchvision-format file loads
    from vidreid.models.vision_libs import torchvision as _tv
    torchvision = _tv()

    sd = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(sd, tmp_path / "resnet18-f37072fd.pth")
    m = create_model("baseline", backbone="resnet18", pretrained="imagenet")
    torch.testing.assert_close(m.backbone.body[0].weight, sd["conv1.weight"])


def test_lite0_imagenet_classifies_real_photos():
    """The shipped EfficientNet-Lite0 weights, mapped onto timm's tf_efficientnet_lite0, classify
    scikit-image's chelsea as ImageNet class 285 (Egyptian cat) and coffee as 967 (espresso)."""
    skimage_data = pytest.importorskip("skimage.data")
    from vidreid.models.vision_libs import timm as _timm
    timm = _timm()

    from vidreid.models.backbones import load_lite0_imagenet

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    load_lite0_imagenet(net)
    for img, cls in ((skimage_data.chelsea(), 285), (skimage_data.coffee(), 967)):
        x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255
        x = F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False)
        with torch.no_grad():
            assert net((x - 0.5) / 0.5).argmax().item() == cls


def test_triplet_hand_computed():
    f = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.0, 5.0]])
    y = torch.tensor([0, 0, 1, 1])
    # anchor 0: d(pos)=3, nearest neg = 1 -> relu(3-1+0.5)=2.5
    # anchor 1: d(pos)=3, nearest neg = sqrt(10) -> relu(3-3.1623+0.5)=0.3377
    # anchor 2: d(pos)=4, nearest neg = 1 -> 3.5 ; anchor 3: d(pos)=4, nearest neg = 5 -> 0
    exp = (2.5 + (3 - 10 ** 0.5 + 0.5) + 3.5 + 0.0) / 4
    assert float(BatchHardTripletLoss(0.5)(f, y)) == pytest.approx(exp, rel=1e-5)
    # soft margin
    soft = BatchHardTripletLoss(None)(f, y)
    exp_soft = sum(F.softplus(torch.tensor(v)) for v in (2.0, 3 - 10 ** 0.5, 3.0, -1.0)) / 4
    assert float(soft) == pytest.approx(float(exp_soft), rel=1e-5)
    # cosine distance: identical directions -> 0 distance
    c = BatchHardTripletLoss(0.1, "cosine")(torch.tensor([[1.0, 0], [2.0, 0], [0, 1.0], [0, 3.0]]), y)
    assert float(c) == pytest.approx(0.0, abs=1e-6)


def test_cross_entropy_label_smoothing():
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    y = torch.tensor([0])
    p = torch.log_softmax(logits, 1)[0]
    eps = 0.3
    exp = -((1 - eps) * p[0] + eps * p.mean())
    assert float(CrossEntropyLoss(eps)(logits, y)) == pytest.approx(float(exp), rel=1e-6)


def test_composite_loss_weights_and_errors():
    out = ModelOutput(embedding=torch.zeros(4, 2), features=torch.randn(4, 2), logits=torch.randn(4, 3),
                      aux={"reg": torch.tensor(2.0)})
    y = torch.tensor([0, 0, 1, 1])
    loss = CompositeLoss([{"name": "cross_entropy", "weight": 0.5}, {"name": "value", "input": "reg", "weight": 0.1}])
    total, parts = loss(out, y)
    assert float(total) == pytest.approx(0.5 * float(parts["cross_entropy"]) + 0.1 * 2.0, rel=1e-6)
    with pytest.raises(ConfigError, match="valid"):
        CompositeLoss([{"name": "triplet", "bogus": 1}])
    with pytest.raises(ConfigError, match="valid"):
        CompositeLoss([{"name": "nope"}])
    with pytest.raises(KeyError, match="has"):
        CompositeLoss([{"name": "triplet", "input": "parts"}])(out, y)


def test_gem_pooling_is_the_generalised_mean_and_learns_its_exponent():
    """model.args.spatial_pool=gem: (mean x^p)^(1/p) over the map with a learnt p started at 3;
    p = 1 gives the average pooling model's features; the anchor keeps average pooling."""
    import torch

    from vidreid.errors import ConfigError

    torch.manual_seed(0)
    gem = create_model("baseline", 3, backbone="resnet18", pretrained=None, spatial_pool="gem")
    avg = create_model("baseline", 3, backbone="resnet18", pretrained=None)
    avg.load_state_dict({k: v for k, v in gem.state_dict().items() if k != "gem_p"})
    assert float(gem.gem_p.detach()) == 3.0
    x = torch.rand(5, 3, 64, 32)
    gem.eval(), avg.eval()
    with torch.no_grad():
        fmap = gem.backbone(x).clamp(min=1e-6)
        torch.testing.assert_close(gem.frame_features(x), fmap.pow(3).mean((2, 3)).pow(1 / 3))
        assert (gem.frame_features(x) > avg.frame_features(x) - 1e-6).all()  # power mean >= mean
        gem.gem_p.fill_(1.0)
        torch.testing.assert_close(gem.frame_features(x), avg.frame_features(x), rtol=1e-5, atol=1e-6)
        gem.gem_p.fill_(3.0)
    gem.train()
    out = gem(torch.rand(2, 3, 3, 64, 32))
    (out.logits.sum() + out.features.sum()).backward()
    assert gem.gem_p.grad is not None and float(gem.gem_p.grad.abs()) > 0
    with pytest.raises(ConfigError, match="spatial_pool must be avg or gem"):
        create_model("baseline", 3, backbone="resnet18", pretrained=None, spatial_pool="max")


def test_mixstyle_mixes_clip_styles_in_training_only_and_adds_no_tensors():
    """model.args.mixstyle=N: a MixStyle after the first N stages. In training each clip's frames
    get per-channel statistics lam * own + (1 - lam) * one partner clip's (the same lam and
    partner for every frame of the clip), the normalised content kept; in eval mode, in the
    state dict and for a distillation teacher it is as if absent; out of range is refused."""
    import torch

    from vidreid.engine.distill import FeatureDistillation
    from vidreid.errors import ConfigError
    from vidreid.models.backbones import MixStyle

    torch.manual_seed(0)
    B, T, C = 6, 3, 4
    styles_m, styles_s = torch.randn(B, 1, C, 1, 1) * 3, torch.rand(B, 1, C, 1, 1) + 0.5
    content = torch.randn(B, T, C, 8, 4)
    content = (content - content.mean((3, 4), keepdim=True)) / content.std((3, 4), keepdim=True, unbiased=True)
    x = (content * styles_s + styles_m).flatten(0, 1)
    ms = MixStyle(p=1.0, alpha=1.0).train()
    ms.clip_len = T
    y = ms(x)
    mu_y = y.mean((2, 3)).view(B, T, C)
    sd_y = y.var((2, 3)).add(1e-6).sqrt().view(B, T, C)
    torch.testing.assert_close(mu_y, mu_y[:, :1].expand(B, T, C), rtol=1e-4, atol=1e-4)  # one style per clip
    torch.testing.assert_close(sd_y, sd_y[:, :1].expand(B, T, C), rtol=1e-4, atol=1e-4)
    m0, s0 = styles_m[:, 0, :, 0, 0], styles_s[:, 0, :, 0, 0]
    mixed = 0
    for b in range(B):  # a convex mix of its own style and one other clip's, the same lam for mean and std
        fits = []
        for q in range(B):
            d = m0[q] - m0[b]
            lam_q = 1 - float((mu_y[b, 0] - m0[b]) @ d / (d @ d)) if q != b else 1.0
            if (0 <= lam_q <= 1 and torch.allclose(mu_y[b, 0], lam_q * m0[b] + (1 - lam_q) * m0[q], atol=1e-3)
                    and torch.allclose(sd_y[b, 0], lam_q * s0[b] + (1 - lam_q) * s0[q], atol=1e-3)):
                fits.append(lam_q)
        assert fits, f"clip {b}: its statistics are no mix of its own and one partner's"
        mixed += min(fits) < 0.99
    assert mixed >= 1
    zy = (y - y.mean((2, 3), keepdim=True)) / y.var((2, 3), keepdim=True).add(1e-6).sqrt()
    torch.testing.assert_close(zy, content.flatten(0, 1), rtol=1e-3, atol=1e-3)  # content kept
    assert torch.equal(ms.eval()(x), x)

    torch.manual_seed(0)
    plain = create_model("baseline", 3, backbone="resnet18", pretrained=None)
    mix = create_model("baseline", 3, backbone="resnet18", pretrained=None, mixstyle=2)
    assert list(mix.state_dict()) == list(plain.state_dict())
    mix.load_state_dict(plain.state_dict())
    clip = torch.rand(2, 3, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(mix.eval()(clip).embedding, plain.eval()(clip).embedding, rtol=0, atol=0)
    assert sum(isinstance(m, MixStyle) for m in mix.modules()) == 2
    mix.train()
    distill = FeatureDistillation(mix, 1.0)
    distill.term(mix(clip), clip)
    assert all(m.training for m in mix.modules() if isinstance(m, MixStyle))
    assert not any(m.training for m in distill.teacher.modules() if isinstance(m, MixStyle))
    with pytest.raises(ConfigError, match=r"model.args.mixstyle for resnet18 must be an integer from 0 to 3"):
        create_model("baseline", 3, backbone="resnet18", pretrained=None, mixstyle=4)


def test_ibn_a_normalises_half_the_channels_and_distillation_starts_at_zero():
    """model.args.ibn puts IBN-a in the backbone's first stages (instance norm on half the
    channels of each block's first norm), keeps the anchor plain, is refused out of range, and a
    distillation teacher copied from it gives a zero term at the start."""
    import torch

    from vidreid.engine.distill import FeatureDistillation
    from vidreid.errors import ConfigError
    from vidreid.models.backbones import IBNNorm, build_backbone

    torch.manual_seed(0)
    m = create_model("baseline", 3, backbone="resnet18", pretrained=None, ibn=2)
    ibns = [x for x in m.backbone.modules() if isinstance(x, IBNNorm)]
    assert len(ibns) == 4  # resnet18: two blocks in each of layers 1 and 2
    assert all(x.inorm.num_features == x.half == x.bn.num_features for x in ibns)
    x = torch.randn(2, 4, 3, 64, 32)
    m.train()
    out = m(x)
    assert out.embedding.shape == (2, 512) and torch.isfinite(out.embedding).all()
    # the instance-normalised half does not see a change of one image's contrast and brightness
    n = ibns[0]
    f = torch.randn(2, n.half * 2, 8, 4)
    g = f.clone()
    g[0] = 3 * g[0] + 1
    n.eval()
    assert torch.allclose(n(f)[0, :n.half], n(g)[0, :n.half], atol=1e-4)
    assert not torch.allclose(n(f)[0, n.half:], n(g)[0, n.half:], atol=1e-2)
    lite = build_backbone("efficientnet_lite0", None, 1, ibn=3)
    assert sum(isinstance(x, IBNNorm) for x in lite.modules()) == 5  # groups 0-2: 1 + 2 + 2 blocks
    with pytest.raises(ConfigError, match="ibn"):
        build_backbone("resnet18", None, 1, ibn=4)
    with pytest.raises(ConfigError, match="ibn"):
        build_backbone("inception_v3", None, 1, ibn=1)
    m.train()
    d = FeatureDistillation(m, 1.0)
    assert d.term(m(x), x.flatten(0, 1).view_as(x)).item() == pytest.approx(0.0, abs=1e-10)
