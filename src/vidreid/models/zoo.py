"""Foreign checkpoints: torchreid's model zoo (KaiyangZhou/deep-person-reid) in vidreid.

* :class:`TorchreidResNet`: torchreid's ``resnet50`` (last stride 2, the 2048-d pooled feature)
  and ``resnet50_fc512`` (last stride 1, then a 512-d fully connected layer with BN and ReLU),
  on torchvision's ResNet-50, with torchreid's parameter names (``conv1``, ``layer1`` ..,
  ``fc.0``, ``classifier``).
* :func:`load_torchreid_weights`: both file shapes torchreid writes, a bare state dict or
  ``save_checkpoint``'s dict (``state_dict`` with ``module.`` prefixes, ``epoch``, ``rank1``,
  ``optimizer``), read with ``torch.load(weights_only=True)`` (NumPy scalars, which torchreid
  stores for ``rank1``, are allowed as data). The checkpoint's classifier is dropped when this
  model has none or another number of identities; every other key must match in name and
  shape, else the error lists the missing, unexpected and mis-shaped keys.
* model ``torchreid`` (:class:`TorchreidVideo`): a torchreid image network used on tracklets:
  each frame's eval-mode feature (what torchreid's ``FeatureExtractor`` returns: 256x128,
  ImageNet mean / std, RGB), averaged over the tracklet's frames. ``vidreid.load("torchreid:
  osnet_x1_0", weights="osnet_x1_0_msmt17.pth")`` builds it (``configs/torchreid/frame_avg.yaml``).

The frame feature equals torchreid's to 1e-5 relative L2 on the same input tensor
(``scripts/torchreid_parity.py`` builds torchreid's own modules from its source and compares;
``tests/test_zoo.py`` checks names and shapes against the reference's). torchreid resizes with
PIL's bilinear filter and vidreid with OpenCV's, so on frames of another size than 256x128 the
inputs, not the networks, differ slightly.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import ConfigError
from . import vision_libs
from .osnet import ARCHS as OSNET_ARCHS, OSNet
from .output import ModelOutput
from .registry import register_model

RESNET_ARCHS = ("resnet50", "resnet50_fc512")
ARCHS = RESNET_ARCHS + OSNET_ARCHS


class TorchreidResNet(nn.Module):
    """torchreid's ResNet-50 (``resnet50``) or ``resnet50_fc512`` (module doc). ``features(x)``:
    (N, 3, H, W) -> (N, 2048) or (N, 512); ``featuremaps(x)``: the layer4 maps."""

    def __init__(self, arch: str = "resnet50", num_classes: int = 0):
        super().__init__()
        if arch not in RESNET_ARCHS:
            raise ConfigError(f"torchreid ResNet arch {arch!r}: valid {list(RESNET_ARCHS)}")
        net = vision_libs.torchvision().models.resnet50(weights=None)
        if arch == "resnet50_fc512":  # last stride 1
            net.layer4[0].conv2.stride = (1, 1)
            net.layer4[0].downsample[0].stride = (1, 1)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.fc = (nn.Sequential(nn.Linear(2048, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True))
                   if arch == "resnet50_fc512" else None)
        self.feature_dim = 512 if self.fc is not None else 2048
        self.out_channels = 2048
        self.classifier = nn.Linear(self.feature_dim, num_classes) if num_classes > 0 else None

    def featuremaps(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        v = self.featuremaps(x).mean((2, 3))
        return self.fc(v) if self.fc is not None else v

    def forward(self, x: torch.Tensor):
        v = self.features(x)
        if not self.training or self.classifier is None:
            return v
        return self.classifier(v), v


def build_torchreid_net(arch: str, num_classes: int = 0) -> nn.Module:
    """The torchreid-compatible network for ``arch`` (:data:`ARCHS`).

    Raises:
        ConfigError: an unknown arch (lists the valid ones).
    """
    if arch in OSNET_ARCHS:
        return OSNet(arch, num_classes)
    if arch in RESNET_ARCHS:
        return TorchreidResNet(arch, num_classes)
    raise ConfigError(f"torchreid arch {arch!r}: valid {list(ARCHS)}")


def read_torchreid_file(path: str | Path) -> dict:
    """The state dict in a torchreid weights file (bare, or ``save_checkpoint``'s ``state_dict``),
    ``module.`` prefixes removed; loaded with ``weights_only=True``.

    Raises:
        CheckpointError: a missing, unsafe or unreadable file, or no state dict in it.
    """
    import numpy as np

    from ..engine.checkpoint import CheckpointError

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    safe = [np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.float32)), type(np.dtype(np.int64))]
    try:
        scalar = np._core.multiarray.scalar  # NumPy 2
    except AttributeError:  # pragma: no cover - NumPy 1
        scalar = np.core.multiarray.scalar
    try:
        with torch.serialization.safe_globals([scalar, *safe]):  # rank1 etc. stored as NumPy scalars: data only
            st = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        hint = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln), str(e).splitlines()[0])
        raise CheckpointError(f"weights file {path} holds objects a safe load refuses ({hint[:200]}); not loaded") from None
    except Exception as e:
        raise CheckpointError(f"weights file {path} is truncated or corrupt, or not a torch file "
                              f"({type(e).__name__}: {str(e).strip()[:200]})") from None
    if isinstance(st, dict) and isinstance(st.get("state_dict"), dict):
        st = st["state_dict"]
    if not isinstance(st, dict) or not st or not all(isinstance(v, torch.Tensor) for v in st.values()):
        raise CheckpointError(f"weights file {path}: expected a state dict of tensors (or torchreid's checkpoint "
                              "dict with one under 'state_dict')")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in st.items()}


def load_torchreid_weights(model: nn.Module, path: str | Path) -> dict:
    """Load a torchreid weights file into a torchreid-compatible network (module doc).

    Returns:
        ``{"loaded": n, "dropped_classifier": bool}``.

    Raises:
        CheckpointError: the file cannot be read, or keys other than the classifier are missing,
            unexpected or of another shape (lists them, one line).
    """
    from ..engine.checkpoint import CheckpointError

    st = read_torchreid_file(path)
    own = model.state_dict()
    dropped = False
    cls = [k for k in st if k.startswith("classifier.")]
    if cls and any(k not in own or own[k].shape != st[k].shape for k in cls):
        st = {k: v for k, v in st.items() if not k.startswith("classifier.")}  # another label space
        dropped = True
    missing = [k for k in own if k not in st and not (dropped and k.startswith("classifier."))]
    unexpected = [k for k in st if k not in own]
    shapes = [f"{k} {tuple(st[k].shape)} vs {tuple(own[k].shape)}" for k in st if k in own and st[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise CheckpointError(f"weights file {path} does not fit {getattr(model, 'arch', type(model).__name__)}: "
                              f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''} ({len(missing)}), "
                              f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''} ({len(unexpected)}), "
                              f"shapes {shapes[:3]}")
    model.load_state_dict(st, strict=not dropped)
    return {"loaded": len(st), "dropped_classifier": dropped}


class TorchreidVideo(nn.Module):
    """A torchreid image network on tracklets (module doc). Input clip (B, T, 3, H, W); output
    :class:`ModelOutput`: ``embedding`` = ``features`` = the mean over T of the frames'
    eval-mode features (B, D); ``logits`` of the mean in training when there is a classifier.

    Args:
        arch: a torchreid architecture (:data:`ARCHS`).
        num_classes: a classifier over the training identities (0: none).
        weights: a torchreid weights file (:func:`load_torchreid_weights`), or None.
    """

    frame_decomposable = True

    def __init__(self, arch: str = "osnet_x1_0", num_classes: int = 0, weights: str | None = None):
        super().__init__()
        self.net = build_torchreid_net(arch, 0)
        self.arch = arch
        self.dim = self.net.feature_dim
        self.input_norm = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # torchreid's FeatureExtractor
        if weights:
            load_torchreid_weights(self.net, weights)
        self.classifier = nn.Linear(self.dim, num_classes) if num_classes > 0 else None

    def pretrained_parameters(self):
        return list(self.net.parameters())

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, D), torchreid's eval-mode feature of each frame."""
        return self.net.features(frames)

    def head(self, pooled: torch.Tensor) -> ModelOutput:
        logits = self.classifier(pooled) if (self.classifier is not None and self.training) else None
        return ModelOutput(embedding=pooled, features=pooled, logits=logits)

    def forward(self, clip: torch.Tensor, **batch) -> ModelOutput:
        if clip.dim() != 5:
            raise ValueError(f"expected a clip batch (B, T, C, H, W), got shape {tuple(clip.shape)}")
        B, T = clip.shape[:2]
        f = self.frame_features(clip.flatten(0, 1)).view(B, T, -1)
        out = self.head(f.mean(1))
        out.aux["frame_features"] = f
        return out


@register_model("torchreid")
def torchreid(num_classes: int = 0, arch: str = "osnet_x1_0", weights: str | None = None) -> TorchreidVideo:
    """A torchreid model-zoo network averaged over a tracklet's frames (:class:`TorchreidVideo`)."""
    return TorchreidVideo(arch, num_classes, weights)
