"""The temporal-pooling baseline: backbone -> spatial average -> temporal average -> BN-neck
-> classifier.

The BN-neck follows Luo et al. ("Bag of Tricks and a Strong Baseline for Deep Person
Re-identification", CVPRW 2019): the metric loss acts on the pooled feature, the identity loss
on its batch-normalised copy, and retrieval uses the normalised copy (``embed="neck"``) or the
pooled feature (``embed="pooled"``). With average pooling over time the model is
*frame-decomposable*: the clip embedding is a function of the mean frame feature, so all-frame
test extraction can pack frames of many tracklets into one batch (:mod:`vidreid.inference`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError
from .backbones import backbone_norm, build_backbone
from .output import ModelOutput
from .registry import register_model


class TemporalPoolingNet(nn.Module):
    """Args:
        backbone: backbone name (see :mod:`vidreid.models.backbones`).
        num_classes: training identities (0: no classifier, e.g. for a feature extractor).
        pretrained: backbone weights (None, ``"imagenet"``, or a path).
        last_stride: ResNet last-stage stride.
        neck: ``"bnneck"`` or ``"none"``.
        embed: which vector is the retrieval embedding: ``"neck"`` or ``"pooled"``.
        temporal_pool: ``"avg"`` (frame-decomposable) or ``"max"``.

    Input: ``clip`` float (B, T, 3, H, W). Output: :class:`ModelOutput` with ``embedding``
    (B, D), ``features`` (B, D) (pooled, for the triplet loss), ``logits`` (B, num_classes) in
    training mode, and ``aux["frame_features"]`` (B, T, D).
    """

    frame_decomposable = True

    def __init__(self, backbone: str = "resnet50", num_classes: int = 0, pretrained: str | None = None,
                 last_stride: int = 1, neck: str = "bnneck", embed: str = "neck", temporal_pool: str = "avg"):
        super().__init__()
        if neck not in ("bnneck", "none"):
            raise ConfigError(f"model.neck must be bnneck or none, got {neck!r}")
        if embed not in ("neck", "pooled"):
            raise ConfigError(f"model.embed must be neck or pooled, got {embed!r}")
        if temporal_pool not in ("avg", "max"):
            raise ConfigError(f"model.temporal_pool must be avg or max, got {temporal_pool!r}")
        self.backbone = build_backbone(backbone, pretrained, last_stride)
        d = self.backbone.out_dim
        self.dim = d
        self.input_norm = backbone_norm(backbone)  # (mean, std) the data layer normalises with
        self.temporal_pool = temporal_pool
        self.frame_decomposable = temporal_pool == "avg"
        self.embed = embed if neck == "bnneck" else "pooled"
        self.neck = None
        if neck == "bnneck":
            self.neck = nn.BatchNorm1d(d)
            self.neck.bias.requires_grad_(False)
            nn.init.ones_(self.neck.weight)
            nn.init.zeros_(self.neck.bias)
        self.classifier = nn.Linear(d, num_classes, bias=False) if num_classes > 0 else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.001)

    def pretrained_parameters(self):
        return self.backbone.parameters()

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, D): backbone and spatial average pooling, per frame."""
        return self.backbone(frames).mean(dim=(2, 3))

    def head(self, pooled: torch.Tensor) -> ModelOutput:
        """Clip-level (B, D) pooled feature -> output (neck, classifier)."""
        normed = self.neck(pooled) if self.neck is not None else pooled
        logits = self.classifier(normed) if (self.classifier is not None and self.training) else None
        emb = normed if self.embed == "neck" else pooled
        return ModelOutput(embedding=emb, features=pooled, logits=logits)

    # One temporal pass over a whole tracklet fed in pieces (vidreid.inference.features); the
    # average-pooling model takes the faster packed path there, max pooling this one.
    def stream_frames(self, frames: torch.Tensor, flow=None) -> tuple[torch.Tensor]:
        return (self.frame_features(frames),)

    def stream_init(self) -> dict:
        return {"acc": None, "n": 0}

    def stream_update(self, st: dict, feats: tuple[torch.Tensor]) -> dict:
        f = feats[0]
        part = f.sum(0) if self.temporal_pool == "avg" else f.amax(0)
        acc = st["acc"]
        st["acc"] = part if acc is None else (acc + part if self.temporal_pool == "avg" else torch.maximum(acc, part))
        st["n"] += len(f)
        return st

    def stream_finish(self, st: dict) -> torch.Tensor:
        pooled = st["acc"] / st["n"] if self.temporal_pool == "avg" else st["acc"]
        return self.head(pooled[None]).embedding[0]

    def forward(self, clip: torch.Tensor, **batch) -> ModelOutput:
        if clip.dim() != 5:
            raise ValueError(f"expected a clip batch (B, T, C, H, W), got shape {tuple(clip.shape)}")
        B, T = clip.shape[:2]
        f = self.frame_features(clip.flatten(0, 1)).view(B, T, -1)
        pooled = f.mean(1) if self.temporal_pool == "avg" else f.amax(1)
        out = self.head(pooled)
        out.aux["frame_features"] = f
        return out


@register_model("baseline")
def baseline(num_classes: int = 0, backbone: str = "resnet50", pretrained: str | None = None, last_stride: int = 1,
             neck: str = "bnneck", embed: str = "neck", temporal_pool: str = "avg") -> TemporalPoolingNet:
    """Temporal average pooling baseline (see :class:`TemporalPoolingNet`)."""
    return TemporalPoolingNet(backbone, num_classes, pretrained, last_stride, neck, embed, temporal_pool)


@register_model("imagenet_reference")
def imagenet_reference(num_classes: int = 0, backbone: str = "efficientnet_lite0", pretrained: str | None = "imagenet") -> TemporalPoolingNet:
    """No-training reference: ImageNet backbone features averaged over space and time, no neck,
    no classifier. Shows what training adds over generic features."""
    return TemporalPoolingNet(backbone, 0, pretrained, 2, neck="none", embed="pooled")
