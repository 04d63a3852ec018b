"""OSNet and OSNet-AIN frame networks (Zhou, Yang, Cavallaro, Xiang, "Omni-Scale Feature Learning
for Person Re-Identification", ICCV 2019; and "Learning Generalisable Omni-Scale Representations
for Person Re-Identification", TPAMI 2021), with parameter and buffer names that load the
checkpoints of torchreid's model zoo (KaiyangZhou/deep-person-reid) as they are.

Architecture (ICCV 2019, Table 1 and Sec. 3):

* stem: 7x7 convolution, stride 2 (BN + ReLU; instance norm in OSNet-AIN and OSNet-IBN), 3x3
  max pooling, stride 2;
* three stages of two omni-scale bottlenecks; after stages 1 and 2 a transition of a 1x1
  convolution (BN + ReLU) and 2x2 average pooling;
* the bottleneck (Fig. 4): 1x1 reduction to c/4, T = 4 streams of 1..4 "lite 3x3" layers
  (a 1x1 pointwise then a 3x3 depthwise convolution, BN, ReLU; Fig. 3) whose outputs are
  weighted by one shared unified aggregation gate (a channel gate: global average pooling, a
  bottleneck of two 1x1 convolutions with bias, ratio 16, sigmoid) and summed, a 1x1 linear
  expansion (BN), the residual added (a 1x1 linear projection when the widths differ), ReLU;
* conv5: 1x1 convolution + BN + ReLU; global average pooling; a fully connected layer to 512
  with BN and ReLU: that 512-d vector is the eval-mode output, what torchreid's
  ``FeatureExtractor`` returns; a classifier on it in training.

Widths (stem, stage 1-3): x1.0 (64, 256, 384, 512), x0.75 (48, 192, 288, 384), x0.5 (32, 128,
192, 256), x0.25 (16, 64, 96, 128).

OSNet-AIN (TPAMI 2021, the architecture its search found): instance normalisation in the stem,
and in the first two blocks of stage 1, the second of stage 2 and the first of stage 3 an
instance normalisation (affine) *inside* the residual branch, in place of the expansion's BN
(``OSBlockINin``); the transitions are separate modules (``pool2``, ``pool3``) and the streams
a ``ModuleList`` — the module layout of torchreid's ``osnet_ain.py``, so its files load.
OSNet-IBN (``osnet_ibn_x1_0``): instance normalisation in the stem and after the residual
addition of the stage-1 blocks (Pan et al., ECCV 2018).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError

WIDTHS = {"x1_0": (64, 256, 384, 512), "x0_75": (48, 192, 288, 384), "x0_5": (32, 128, 192, 256),
          "x0_25": (16, 64, 96, 128)}
ARCHS = tuple([f"osnet_{w}" for w in WIDTHS] + ["osnet_ibn_x1_0"] + [f"osnet_ain_{w}" for w in WIDTHS])


class ConvLayer(nn.Module):
    """Convolution (no bias) + BN (or affine instance norm) + ReLU."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, instance_norm: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=False)
        self.bn = nn.InstanceNorm2d(cout, affine=True) if instance_norm else nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Conv1x1(ConvLayer):
    """1x1 convolution + BN + ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 1)


class Conv1x1Linear(nn.Module):
    """1x1 convolution + BN (no non-linearity); ``bn=False`` leaves the BN out."""

    def __init__(self, cin: int, cout: int, bn: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout) if bn else None

    def forward(self, x):
        x = self.conv(x)
        return self.bn(x) if self.bn is not None else x


class LightConv3x3(nn.Module):
    """The "lite 3x3" layer (Fig. 3): 1x1 pointwise, 3x3 depthwise, BN, ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False, groups=cout)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv2(self.conv1(x))))


class LightConvStream(nn.Module):
    """``depth`` lite 3x3 layers in a row (one stream of an OSNet-AIN block)."""

    def __init__(self, cin: int, cout: int, depth: int):
        super().__init__()
        self.layers = nn.Sequential(*[LightConv3x3(cin if i == 0 else cout, cout) for i in range(depth)])

    def forward(self, x):
        return self.layers(x)


class ChannelGate(nn.Module):
    """The unified aggregation gate: x * sigmoid(fc2(relu(fc1(avgpool(x))))), 1x1 convolutions
    with bias, reduction 16; one gate shared by the streams of a block (Sec. 3.2)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=True)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=True)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(self.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class OSBlock(nn.Module):
    """The omni-scale bottleneck of OSNet (torchreid's ``osnet.py`` layout: streams ``conv2a``
    .. ``conv2d``; ``instance_norm`` after the residual addition for OSNet-IBN)."""

    def __init__(self, cin: int, cout: int, instance_norm: bool = False):
        super().__init__()
        mid = cout // 4
        self.conv1 = Conv1x1(cin, mid)
        self.conv2a = LightConv3x3(mid, mid)
        self.conv2b = nn.Sequential(*[LightConv3x3(mid, mid) for _ in range(2)])
        self.conv2c = nn.Sequential(*[LightConv3x3(mid, mid) for _ in range(3)])
        self.conv2d = nn.Sequential(*[LightConv3x3(mid, mid) for _ in range(4)])
        self.gate = ChannelGate(mid)
        self.conv3 = Conv1x1Linear(mid, cout)
        self.downsample = Conv1x1Linear(cin, cout) if cin != cout else None
        self.IN = nn.InstanceNorm2d(cout, affine=True) if instance_norm else None

    def forward(self, x):
        x1 = self.conv1(x)
        x2 = sum(self.gate(s(x1)) for s in (self.conv2a, self.conv2b, self.conv2c, self.conv2d))
        out = self.conv3(x2) + (self.downsample(x) if self.downsample is not None else x)
        if self.IN is not None:
            out = self.IN(out)
        return F.relu(out)


class OSBlockAIN(nn.Module):
    """The bottleneck of OSNet-AIN (torchreid's ``osnet_ain.py`` layout: ``conv2`` a list of
    streams); ``instance_norm_inside``: an affine instance norm in the residual branch in place
    of the expansion's BN (``OSBlockINin``)."""

    def __init__(self, cin: int, cout: int, instance_norm_inside: bool = False, streams: int = 4):
        super().__init__()
        mid = cout // 4
        self.conv1 = Conv1x1(cin, mid)
        self.conv2 = nn.ModuleList(LightConvStream(mid, mid, t) for t in range(1, streams + 1))
        self.gate = ChannelGate(mid)
        self.conv3 = Conv1x1Linear(mid, cout, bn=not instance_norm_inside)
        self.downsample = Conv1x1Linear(cin, cout) if cin != cout else None
        if instance_norm_inside:
            self.IN = nn.InstanceNorm2d(cout, affine=True)
        self.ain = instance_norm_inside

    def forward(self, x):
        x1 = self.conv1(x)
        x2 = sum(self.gate(s(x1)) for s in self.conv2)
        x3 = self.conv3(x2)
        if self.ain:
            x3 = self.IN(x3)
        return F.relu(x3 + (self.downsample(x) if self.downsample is not None else x))


class OSNet(nn.Module):
    """OSNet / OSNet-IBN / OSNet-AIN (module doc).

    Args:
        arch: one of :data:`ARCHS` (``osnet_x1_0``, ``osnet_ain_x0_5``, ...).
        num_classes: identity classes of the classifier (0: none).
        feature_dim: the fully connected layer's width (512 in every torchreid model).

    ``featuremaps(x)``: (N, 3, H, W) -> (N, C, H/16, W/16) (C = 512 at x1.0). ``forward(x)``: the
    eval-mode feature (N, feature_dim) after the fully connected layer, BN and ReLU (torchreid's
    ``FeatureExtractor`` output); in training mode also the logits: ``(logits, feature)``.

    Raises:
        ConfigError: an unknown arch.
    """

    def __init__(self, arch: str = "osnet_x1_0", num_classes: int = 0, feature_dim: int = 512):
        super().__init__()
        if arch not in ARCHS:
            raise ConfigError(f"OSNet arch {arch!r}: valid {list(ARCHS)}")
        self.arch = arch
        c = WIDTHS[arch.rsplit("_", 2)[-2] + "_" + arch.rsplit("_", 1)[-1]]
        ain, ibn = arch.startswith("osnet_ain"), arch.startswith("osnet_ibn")
        self.conv1 = ConvLayer(3, c[0], 7, stride=2, padding=3, instance_norm=ain or ibn)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        if ain:
            pattern = ((True, True), (False, True), (True, False))  # instance norm inside, per block
            blocks = [nn.Sequential(*[OSBlockAIN(c[s] if b == 0 else c[s + 1], c[s + 1], pattern[s][b]) for b in range(2)])
                      for s in range(3)]
            self.conv2, self.conv3, self.conv4 = blocks
            self.pool2 = nn.Sequential(Conv1x1(c[1], c[1]), nn.AvgPool2d(2, stride=2))
            self.pool3 = nn.Sequential(Conv1x1(c[2], c[2]), nn.AvgPool2d(2, stride=2))
        else:
            def stage(s: int, reduce: bool, instance_norm: bool):
                layers: list[nn.Module] = [OSBlock(c[s], c[s + 1], instance_norm), OSBlock(c[s + 1], c[s + 1], instance_norm)]
                if reduce:
                    layers.append(nn.Sequential(Conv1x1(c[s + 1], c[s + 1]), nn.AvgPool2d(2, stride=2)))
                return nn.Sequential(*layers)
            self.conv2, self.conv3, self.conv4 = stage(0, True, ibn), stage(1, True, False), stage(2, False, False)
            self.pool2 = self.pool3 = None
        self.conv5 = Conv1x1(c[3], c[3])
        self.out_channels = c[3]
        self.widths = tuple(c)  # stem, stage 1, stage 2, stage 3
        self.fc = nn.Sequential(nn.Linear(c[3], feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU())
        self.feature_dim = feature_dim
        self.classifier = nn.Linear(feature_dim, num_classes) if num_classes > 0 else None
        self._init()

    def _init(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.InstanceNorm2d)) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def featuremaps(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.conv2(x)
        if self.pool2 is not None:
            x = self.pool2(x)
        x = self.conv3(x)
        if self.pool3 is not None:
            x = self.pool3(x)
        return self.conv5(self.conv4(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, feature_dim): global average pool, fc, BN, ReLU."""
        return self.fc(self.featuremaps(x).mean((2, 3)))

    def forward(self, x: torch.Tensor):
        v = self.features(x)
        if not self.training or self.classifier is None:
            return v
        return self.classifier(v), v
