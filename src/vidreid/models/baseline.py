"""The temporal-pooling baseline: backbone -> spatial average -> temporal average -> BN-neck
-> classifier.

The BN-neck follows Luo et al. ("Bag of Tricks and a Strong Baseline for Deep Person
Re-identification", CVPRW 2019): the metric loss acts on the pooled feature, the identity loss
on its batch-normalised copy, and retrieval uses the normalised copy (``embed="neck"``) or the
pooled feature (``embed="pooled"``). With average pooling over time the model is
*frame-decomposable*: the clip embedding is a function of the mean frame feature, so all-frame
test extraction can pack frames of many tracklets into one batch (:mod:`vidreid.inference`).

``pretrained_anchor`` (> 0) keeps a frozen copy of the backbone as its pretrained weights are
(ImageNet, or the ``pretrained`` file) beside the one that trains, and appends its pooled
feature to the test embedding: ``[n(e), w * n(a)]`` with ``n`` the L2 normalisation, ``e`` the
trained embedding and ``a`` the frozen copy's, ``w`` = ``pretrained_anchor``. This is an
output-space ensemble of the fine-tuned and the pretrained model (Wortsman et al., "Robust
fine-tuning of zero-shot models", CVPR 2022, Sec. 2, who name it beside weight-space
interpolation; Kumar et al. 2022 discuss why fine-tuning distorts pretrained features): what
training on synthetic people forgets of real images is still in the embedding. The copy runs
only in eval mode (testing, extraction, export): training steps cost what they cost without it,
and a run with it trains bit for bit as one without it (the copy is built outside the torch RNG
stream). The embedding then has 2D entries and norm sqrt(1 + w^2), so Euclidean and cosine
distance rank alike. docs/RESULTS.md ("Training that does not forget") measures it on PETS 2009.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ConfigError
from .backbones import MixStyle, backbone_norm, build_backbone
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
        pretrained_anchor: weight ``w`` >= 0 of the frozen pretrained backbone's feature in the
            test embedding (module doc); 0: none. Needs ``pretrained``.
        ibn: IBN-a normalisation in the trained backbone's first ``ibn`` stages
            (:class:`~vidreid.models.backbones.IBNNorm`, IBN-Net, Pan et al. ECCV 2018; a
            standard re-ID choice for generalising across domains); the anchor stays the
            pretrained network as it was. A distillation teacher (``train.distill_weight``) is
            the model as training starts, IBN layers included.
        spatial_pool: ``"avg"`` or ``"gem"`` (generalised mean with a learnt exponent started at
            3; Radenovic et al., TPAMI 2018) over the trained backbone's map; the anchor averages.
        mixstyle: MixStyle (:class:`~vidreid.models.backbones.MixStyle`, Zhou et al., ICLR 2021)
            after the trained backbone's first ``mixstyle`` stages, in training only; the anchor
            and a distillation teacher run without it.

    Input: ``clip`` float (B, T, 3, H, W). Output: :class:`ModelOutput` with ``embedding``
    (B, D) (B, 2D in eval mode with ``pretrained_anchor``), ``features`` (B, D) (pooled, for the
    triplet loss), ``logits`` (B, num_classes) in training mode, and ``aux["frame_features"]``
    (B, T, D) ((B, T, 2D) in eval mode with ``pretrained_anchor``: the frozen copy's appended).

    Raises:
        ConfigError: an unknown neck, embed or temporal_pool; a negative or non-numeric
            ``pretrained_anchor``, or one > 0 without ``pretrained`` weights; ``ibn`` out of range;
            an unknown ``spatial_pool``; ``mixstyle`` out of range.
    """

    frame_decomposable = True

    def __init__(self, backbone: str = "resnet50", num_classes: int = 0, pretrained: str | None = None,
                 last_stride: int = 1, neck: str = "bnneck", embed: str = "neck", temporal_pool: str = "avg",
                 pretrained_anchor: float = 0.0, ibn: int = 0, spatial_pool: str = "avg", mixstyle: int = 0):
        super().__init__()
        if not (isinstance(pretrained_anchor, (int, float)) and 0 <= pretrained_anchor < float("inf")):
            raise ConfigError(f"model.args.pretrained_anchor must be a number >= 0, got {pretrained_anchor!r}")
        if pretrained_anchor > 0 and not pretrained:
            raise ConfigError(f"model.args.pretrained_anchor={pretrained_anchor} keeps the pretrained backbone, but "
                              "model.args.pretrained is null; set model.args.pretrained_anchor=0 to train without it")
        if neck not in ("bnneck", "none"):
            raise ConfigError(f"model.neck must be bnneck or none, got {neck!r}")
        if embed not in ("neck", "pooled"):
            raise ConfigError(f"model.embed must be neck or pooled, got {embed!r}")
        if temporal_pool not in ("avg", "max"):
            raise ConfigError(f"model.temporal_pool must be avg or max, got {temporal_pool!r}")
        if spatial_pool not in ("avg", "gem"):
            raise ConfigError(f"model.args.spatial_pool must be avg or gem, got {spatial_pool!r}")
        self.backbone = build_backbone(backbone, pretrained, last_stride, ibn=ibn, mixstyle=mixstyle)
        self._mixstyles = [m for m in self.backbone.modules() if isinstance(m, MixStyle)]
        d = self.backbone.out_dim
        self.dim = d
        self.input_norm = backbone_norm(backbone)  # (mean, std) the data layer normalises with
        self.temporal_pool = temporal_pool
        # GeM (generalised mean) pooling over space: (mean x^p)^(1/p) with a learnt p, started at 3
        # (Radenovic, Tolias and Chum, TPAMI 2018; fast-reid's GeneralizedMeanPoolingP); p = 1
        # is the average, p -> inf the maximum. Only the trained backbone's; the anchor keeps the average.
        self.gem_p = nn.Parameter(torch.tensor(3.0)) if spatial_pool == "gem" else None
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
        self.anchor_weight = float(pretrained_anchor)
        self.anchor = None
        if self.anchor_weight > 0:
            with torch.random.fork_rng(devices=[]):  # the trained model's initialisation stays the same
                self.anchor = build_backbone(backbone, pretrained, last_stride).eval()
            for p in self.anchor.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True) -> "TemporalPoolingNet":
        super().train(mode)
        if self.anchor is not None:
            self.anchor.eval()  # frozen: its BatchNorm statistics stay the pretrained ones
        return self

    def _anchored(self) -> bool:
        return self.anchor is not None and not self.training

    def pretrained_parameters(self):
        return self.backbone.parameters()

    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, D): backbone and spatial average (or GeM) pooling, per frame ((N, 2D) in
        eval mode with ``pretrained_anchor``: the frozen copy's feature appended)."""
        m = self.backbone(frames)
        if self.gem_p is not None:
            f = m.clamp(min=1e-6).pow(self.gem_p).mean(dim=(2, 3)).pow(1.0 / self.gem_p)
        else:
            f = m.mean(dim=(2, 3))
        if self._anchored():
            with torch.no_grad():
                a = self.anchor(frames).mean(dim=(2, 3))
            f = torch.cat([f, a], 1)
        return f

    def head(self, pooled: torch.Tensor) -> ModelOutput:
        """Clip-level (B, D) pooled feature -> output (neck, classifier); (B, 2D) in eval mode
        with ``pretrained_anchor`` (:meth:`frame_features`)."""
        anchor = None
        if self._anchored():
            pooled, anchor = pooled[:, :self.dim], pooled[:, self.dim:]
        normed = self.neck(pooled) if self.neck is not None else pooled
        logits = self.classifier(normed) if (self.classifier is not None and self.training) else None
        emb = normed if self.embed == "neck" else pooled
        if anchor is not None:
            n = nn.functional.normalize
            emb = torch.cat([n(emb, dim=1), self.anchor_weight * n(anchor, dim=1)], 1)
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
        for m in self._mixstyles:  # a clip's frames share their style partner (MixStyle doc)
            m.clip_len = T
        f = self.frame_features(clip.flatten(0, 1)).view(B, T, -1)
        pooled = f.mean(1) if self.temporal_pool == "avg" else f.amax(1)
        out = self.head(pooled)
        out.aux["frame_features"] = f
        return out


@register_model("baseline")
def baseline(num_classes: int = 0, backbone: str = "resnet50", pretrained: str | None = None, last_stride: int = 1,
             neck: str = "bnneck", embed: str = "neck", temporal_pool: str = "avg",
             pretrained_anchor: float = 0.0, ibn: int = 0, spatial_pool: str = "avg",
             mixstyle: int = 0) -> TemporalPoolingNet:
    """Temporal average pooling baseline (see :class:`TemporalPoolingNet`)."""
    return TemporalPoolingNet(backbone, num_classes, pretrained, last_stride, neck, embed, temporal_pool, pretrained_anchor,
                              ibn, spatial_pool, mixstyle)


@register_model("imagenet_reference")
def imagenet_reference(num_classes: int = 0, backbone: str = "efficientnet_lite0", pretrained: str | None = "imagenet") -> TemporalPoolingNet:
    """No-training reference: ImageNet backbone features averaged over space and time, no neck,
    no classifier. Shows what training adds over generic features."""
    return TemporalPoolingNet(backbone, 0, pretrained, 2, neck="none", embed="pooled")
