"""3D-ResNet-50 family (C2D, I3D, P3D-A/B/C) and Spatio-Temporal Representation Factorization
(STRF; Aich, Zheng, Karanam, Chen, Roy-Chowdhury, Wu, ICCV 2021), models ``resnet3d`` and ``strf``.

Backbone (Sec. 3.2 "How do we employ STRF?", Table 2): a ResNet-50 whose 2D convolutions are
inflated to 3D with temporal kernel 1 (C2D); in stages 2 and 3 (torchvision ``layer2``,
``layer3``) the blocks at ``blocks3d`` (default every other block, [0, 2] and [0, 2, 4], the
layout of AP3D, Gu et al. ECCV 2020, which the paper builds on: it gives Table 2's parameter
counts) are replaced by

* I3D: the 3x3 convolution becomes 3x3x3 (2D weights at the centre tap, zeros elsewhere, so
  the block starts as its C2D self);
* P3D (Qiu et al., ICCV 2017) with a spatial 1x3x3 (S) and a temporal 3x1x1 (T) convolution
  in place of the 3x3 convolution, followed by the block's own BN and ReLU, with no BN or ReLU
  between S and T (as AP3D's ``P3DA/B/C``, ``models/AP3D.py``, which STRF builds on):
  P3D-A ``T(S(x))`` with T initialised to the identity (centre tap = I), P3D-B ``S(x) + T(x)``
  and P3D-C ``S(x) + T(S(x))`` with T initialised to zero. So every P3D block starts exactly as
  its C2D self.

Head (the paper is silent; ``head="ap3d"``, the default, follows AP3D's ``models/ResNet.py``
and ``train.py``, which STRF builds on): each frame's map max-pooled over space, the frame
vectors averaged over time, a BatchNorm1d (weight ~ N(1, 0.02), bias 0, both learned), a
classifier with bias (weights ~ N(0, 0.001)); the cross-entropy reads the classifier and the
triplet loss the BN output, which is also the ``embedding`` (``features`` = the BN output too).
``head="bnneck"`` is the BN-neck of Luo et al. 2019 as this project had it before: space-time
average pooling, a BN with a frozen zero bias, a bias-free classifier, the triplet on the
pooled vector (``features``) before the BN.

STRF (Sec. 3.1-3.2, Eqs. 1-8) is inserted with a 3D block's temporal convolution (its input;
for I3D the input of the 3x3x3 convolution, for a C2D block in a stage without 3D blocks, the
input of its 3x3 convolution): see :class:`STRF`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .backbones import _find_torchvision_file
from .output import ModelOutput
from .registry import register_model

BLOCKS = ("c2d", "i3d", "p3da", "p3db", "p3dc")
INTEGRATIONS = ("cascade_ts", "cascade_st", "parallel")
FFMS = ("t_dynamic", "t_static", "s_fine", "s_coarse")


class FFM(nn.Module):
    """One feature factorization module with its factorized attention mask (Eqs. 1-3).

    H: 1x1x1 convolution c -> c/``reduction``; G: max (or average) pooling with kernel
    (r, 1, 1) (``dim="t"``) or (1, r, r) (``dim="s"``), stride 1, padding r // 2 (size kept;
    r odd); T = G(H(f)) reshaped to (c/n * t) x (h * w); C = kappa * T^T T (h*w x h*w, Eq. 3);
    M = softmax(C) over each row (row-stochastic).

    Eq. 1 writes f^ = f M with f reshaped to (c * t) x (h * w). That is the shape-consistent
    reading of the terse text (M acts on the h*w positions, shared by all channels and
    frames); with a row-stochastic M the product f M gives position j the weights of *column*
    j, which do not sum to 1. ``product="rows"`` (default) uses f M^T: every output position
    is a convex combination of input positions, weighted by its own row of M;
    ``product="paper"`` is the printed f M.

    ``mask_norm="none"`` (default) is Eq. 3 as printed, C = kappa T^T T on the raw factorized
    features. Their inner products are unbounded, so at kappa = 4 the row softmax saturates
    (row maxima 0.75-0.99 on random inputs: each position copies its best match).
    ``mask_norm="cosine"`` L2-normalises each position's column of T first, so C = kappa cos,
    bounded by kappa: the contrastive-attention form of AP3D (Gu et al. 2020, ``APM``:
    normalised features, temperature 4), which STRF builds on. An ablation, not the paper's.

    Input/output: (B, c, t, h, w).
    """

    def __init__(self, channels: int, dim: str, resolution: int, pool: str = "max", reduction: int = 16,
                 kappa: float = 4.0, product: str = "rows", mask_norm: str = "none"):
        super().__init__()
        if dim not in ("t", "s"):
            raise ConfigError(f"FFM dim must be t or s, got {dim!r}")
        if resolution < 1 or resolution % 2 == 0:
            raise ConfigError(f"model.strf_resolutions must be odd and >= 1 (size-keeping pooling), got {resolution}")
        if pool not in ("max", "avg"):
            raise ConfigError(f"model.strf_pool must be max or avg, got {pool!r}")
        if product not in ("rows", "paper"):
            raise ConfigError(f"model.strf_product must be rows or paper, got {product!r}")
        if mask_norm not in ("none", "cosine"):
            raise ConfigError(f"model.strf_mask_norm must be none or cosine, got {mask_norm!r}")
        self.dim, self.r, self.pool, self.kappa, self.product = dim, resolution, pool, float(kappa), product
        self.mask_norm = mask_norm
        self.reduce = nn.Conv3d(channels, max(1, channels // reduction), 1)

    def factorize(self, f: torch.Tensor) -> torch.Tensor:
        """G(H(f)): (B, c, t, h, w) -> (B, c/n, t, h, w) (Eqs. 2, 4, 6)."""
        x = self.reduce(f)
        if self.r == 1:
            return x
        k = (self.r, 1, 1) if self.dim == "t" else (1, self.r, self.r)
        # explicit padding (F.pad's order is w, h, t): PyTorch's pooling refuses maps smaller
        # than the kernel even when padded, and the window must only see real cells
        p = self.r // 2
        pad = (0, 0, 0, 0, p, p) if self.dim == "t" else (p, p, p, p, 0, 0)
        if self.pool == "max":
            return F.max_pool3d(F.pad(x, pad, value=float("-inf")), k, stride=1)
        ones = F.pad(torch.ones_like(x[:, :1]), pad)
        return F.avg_pool3d(F.pad(x, pad), k, stride=1) / F.avg_pool3d(ones, k, stride=1)

    def mask(self, f: torch.Tensor) -> torch.Tensor:
        """M (B, h*w, h*w), each row summing to 1 (Eq. 3 and the softmax after it)."""
        T = self.factorize(f).flatten(1, 2).flatten(2)  # (B, c/n * t, h*w)
        if self.mask_norm == "cosine":
            T = F.normalize(T, dim=1)
        C = self.kappa * T.transpose(1, 2) @ T
        return C.softmax(dim=-1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        B, c, t, h, w = f.shape
        M = self.mask(f)
        flat = f.reshape(B, c * t, h * w)
        out = flat @ (M.transpose(1, 2) if self.product == "rows" else M)
        return out.view(B, c, t, h, w)


class STRF(nn.Module):
    """The STRF unit (Sec. 3, Fig. 2): FFM(t, tau) + FFM(t, sigma) (Eq. 5), FFM(s, tau) +
    FFM(s, sigma) (Eq. 7), integrated by ``integration`` (Eq. 8).

    Args:
        channels: c of the input volume.
        resolutions: (r_tau, r_sigma): dynamic/fine and static/coarse resolutions, the same
            for time and space (the paper's simplification); (1, 3) by default (Fig. 4(a)).
        pool: ``max`` (default, Fig. 4(b)) or ``avg``.
        integration: ``cascade_ts`` (temporal module, then the spatial module on its output:
            what Sec. 4.2's text reports best), ``cascade_st`` (the order Fig. 4(c)'s caption
            names) or ``parallel`` (the two outputs added).
        modules: which of ``t_dynamic`` (t, tau), ``t_static`` (t, sigma), ``s_fine`` (s, tau),
            ``s_coarse`` (s, sigma) to use (Table 4). A side with no module passes its input on.
        residual: add the input to the output (not in the paper; off by default).
        reduction, kappa, product, mask_norm: see :class:`FFM` (16, 4, rows, none).

    Input/output: (B, c, t, h, w).
    """

    def __init__(self, channels: int, resolutions=(1, 3), pool: str = "max", integration: str = "cascade_ts",
                 modules=FFMS, residual: bool = False, reduction: int = 16, kappa: float = 4.0, product: str = "rows",
                 mask_norm: str = "none"):
        super().__init__()
        if integration not in INTEGRATIONS:
            raise ConfigError(f"model.strf_integration must be one of {list(INTEGRATIONS)}, got {integration!r}")
        bad = sorted(set(modules) - set(FFMS))
        if bad or not modules:
            raise ConfigError(f"model.strf_modules: {bad or 'empty'}; valid: {list(FFMS)}")
        r_tau, r_sigma = (int(r) for r in resolutions)
        spec = {"t_dynamic": ("t", r_tau), "t_static": ("t", r_sigma), "s_fine": ("s", r_tau), "s_coarse": ("s", r_sigma)}
        self.ffms = nn.ModuleDict({m: FFM(channels, *spec[m], pool, reduction, kappa, product, mask_norm)
                                   for m in FFMS if m in modules})
        self.integration, self.residual = integration, residual

    def _side(self, f: torch.Tensor, dim: str) -> torch.Tensor | None:
        outs = [m(f) for name, m in self.ffms.items() if name.startswith(dim)]
        return sum(outs) if outs else None

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        if self.integration == "parallel":
            parts = [o for o in (self._side(f, "t"), self._side(f, "s")) if o is not None]
            out = sum(parts)
        else:
            order = ("t", "s") if self.integration == "cascade_ts" else ("s", "t")
            out = f
            for d in order:
                o = self._side(out, d)
                out = out if o is None else o
        return out + f if self.residual else out


def _temporal_identity_(conv: nn.Conv3d) -> None:
    nn.init.zeros_(conv.weight)
    with torch.no_grad():
        conv.weight[:, :, conv.kernel_size[0] // 2, 0, 0].copy_(torch.eye(conv.out_channels, conv.in_channels))


class Bottleneck3D(nn.Module):
    """ResNet bottleneck (torchvision v1.5: stride on the 3x3) with a 3D middle of kind
    ``block`` (module doc) and an optional STRF unit. Input/output (B, C, T, H, W); strides are
    spatial only."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 block: str = "c2d", strf: dict | None = None):
        super().__init__()
        if block not in BLOCKS:
            raise ConfigError(f"model.block must be one of {list(BLOCKS)}, got {block!r}")
        self.block = block
        self.conv1 = nn.Conv3d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        kt = 3 if block == "i3d" else 1
        self.conv2 = nn.Conv3d(planes, planes, (kt, 3, 3), stride=(1, stride, stride), padding=(kt // 2, 1, 1), bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        if block.startswith("p3d"):
            tstride = (1, stride, stride) if block == "p3db" else 1
            self.conv2t = nn.Conv3d(planes, planes, (3, 1, 1), stride=tstride, padding=(1, 0, 0), bias=False)
            if block == "p3da":
                _temporal_identity_(self.conv2t)
            else:
                nn.init.zeros_(self.conv2t.weight)
        self.strf = STRF(planes, **strf) if strf is not None else None
        self.conv3 = nn.Conv3d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def _s(self, x):
        return self.strf(x) if self.strf is not None else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x
        out = self.relu(self.bn1(self.conv1(x)))
        b = self.block
        if b in ("c2d", "i3d"):
            out = self.relu(self.bn2(self.conv2(self._s(out))))
        elif b == "p3da":
            out = self.relu(self.bn2(self.conv2t(self._s(self.conv2(out)))))
        elif b == "p3db":
            out = self.relu(self.bn2(self.conv2(out) + self.conv2t(self._s(out))))
        else:  # p3dc
            s = self.conv2(out)
            out = self.relu(self.bn2(s + self.conv2t(self._s(s))))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            idt = self.downsample(x)
        return self.relu(out + idt)


class ResNet3D(nn.Module):
    """Inflated ResNet-50 for clips (module doc).

    Args:
        num_classes: training identities (0: no classifier).
        block: kind of the 3D blocks: ``c2d``, ``i3d``, ``p3da``, ``p3db``, ``p3dc``.
        blocks3d: per stage (4 lists), the indices of the blocks made 3D (default
            [[], [0, 2], [0, 2, 4], []]).
        strf_stages: stages (1-4) whose blocks at ``strf_blocks`` get an STRF unit ([] for the
            baselines; [2, 3] for STRF, Table 5).
        strf_blocks: per stage, the block indices that get STRF in a listed stage (default
            [[0, 2], [0, 2], [0, 2, 4], [0, 2]]: the 3D blocks in stages 2-3, the same
            alternation in stages 1 and 4, which have no 3D block, for Table 5's rows).
        strf_resolutions, strf_pool, strf_integration, strf_modules, strf_residual,
        strf_product, strf_mask_norm: :class:`STRF` arguments.
        head: ``ap3d`` (default) or ``bnneck`` (module doc).
        layers: blocks per stage ([3, 4, 6, 3] = ResNet-50; smaller for CPU-scale runs).
        last_stride: stride of stage 4 (1, the usual re-ID choice, or 2).
        pretrained: None, ``"imagenet"`` (torchvision ``resnet50-0676ba61.pth`` from local
            files, see :mod:`vidreid.models.backbones`) or a path: 2D weights inflated
            (:meth:`inflate_from_2d`).

    Input: clip float (B, T, 3, H, W). Output: :class:`ModelOutput` (embedding = BN output
    (B, 2048); features = the BN output (``ap3d``) or the pooled vector (``bnneck``), (B, 2048);
    logits in training).

    Raises:
        ConfigError: unknown block, or a block index outside its stage.
    """

    frame_decomposable = False
    clip_decomposable = True  # all-frame test: per-frame features of consecutive clips, averaged

    def __init__(self, num_classes: int = 0, block: str = "p3dc", blocks3d=None, strf_stages=(), strf_blocks=None,
                 strf_resolutions=(1, 3), strf_pool: str = "max", strf_integration: str = "cascade_ts",
                 strf_modules=FFMS, strf_residual: bool = False, strf_product: str = "rows",
                 layers=(3, 4, 6, 3), last_stride: int = 1, pretrained: str | None = None, strf_mask_norm: str = "none",
                 head: str = "ap3d"):
        super().__init__()
        if head not in ("ap3d", "bnneck"):
            raise ConfigError(f"model.head must be ap3d or bnneck, got {head!r}")
        self.head_kind = head
        layers = [int(v) for v in layers]
        blocks3d = [list(v) for v in (blocks3d if blocks3d is not None else [[], [0, 2], [0, 2, 4], []])]
        strf_blocks = [list(v) for v in (strf_blocks if strf_blocks is not None else [[0, 2], [0, 2], [0, 2, 4], [0, 2]])]
        for name, idx in (("blocks3d", blocks3d), ("strf_blocks", strf_blocks)):
            if len(idx) != 4:
                raise ConfigError(f"model.{name} must list 4 stages, got {idx}")
            for s, (ids, n) in enumerate(zip(idx, layers)):
                if name == "strf_blocks" and (s + 1) not in strf_stages:
                    continue  # only the stages that get STRF need valid indices
                if any(i < 0 or i >= n for i in ids):
                    raise ConfigError(f"model.{name}: stage {s + 1} has {n} blocks, indices {ids} out of range")
        if any(s not in (1, 2, 3, 4) for s in strf_stages):
            raise ConfigError(f"model.strf_stages must be within 1-4, got {list(strf_stages)}")
        strf_cfg = dict(resolutions=tuple(strf_resolutions), pool=strf_pool, integration=strf_integration,
                        modules=tuple(strf_modules), residual=strf_residual, product=strf_product,
                        mask_norm=strf_mask_norm)
        self.input_norm = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        self.conv1 = nn.Conv3d(3, 64, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        inplanes = 64
        for s, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if s == 0 else (last_stride if s == 3 else 2)
            blocks = []
            for i in range(n):
                st = stride if i == 0 else 1
                down = None
                if i == 0 and (st != 1 or inplanes != planes * 4):
                    down = nn.Sequential(nn.Conv3d(inplanes, planes * 4, 1, stride=(1, st, st), bias=False),
                                         nn.BatchNorm3d(planes * 4))
                kind = block if i in blocks3d[s] else "c2d"
                sc = strf_cfg if (s + 1) in strf_stages and i in strf_blocks[s] else None
                blocks.append(Bottleneck3D(inplanes, planes, st, down, kind, sc))
                inplanes = planes * 4
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.dim = inplanes
        self.neck = nn.BatchNorm1d(inplanes)
        nn.init.zeros_(self.neck.bias)
        if head == "ap3d":  # AP3D's weights_init_kaiming for BatchNorm
            nn.init.normal_(self.neck.weight, 1.0, 0.02)
        else:
            self.neck.bias.requires_grad_(False)
        self.classifier = nn.Linear(inplanes, num_classes, bias=head == "ap3d") if num_classes > 0 else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.001)
            if self.classifier.bias is not None:
                nn.init.zeros_(self.classifier.bias)
        self._inflated: set[str] = set()  # names of the parameters loaded from 2D weights
        if pretrained:
            path = _find_torchvision_file("resnet50") if pretrained == "imagenet" else Path(pretrained)
            self.inflate_from_2d(torch.load(path, map_location="cpu", weights_only=True))

    def inflate_from_2d(self, state: dict) -> list[str]:
        """Load a torchvision ResNet-50 state dict: every 2D kernel (o, i, kh, kw) becomes
        (o, i, 1, kh, kw), or sits at the centre temporal tap of a 3x3x3 kernel (I3D) with zeros
        elsewhere. Parameters with no 2D counterpart (temporal convolutions, STRF, neck,
        classifier) keep their initialisation.

        Returns:
            The names of this model's parameters and buffers that were not loaded.
        Raises:
            ValueError: a 2D tensor whose shape cannot be inflated onto ours (names it).
        """
        own = self.state_dict()
        loaded = set()
        with torch.no_grad():
            for k, v in state.items():
                if k.startswith("fc.") or k not in own:
                    continue
                dst = own[k]
                if dst.dim() == 5 and v.dim() == 4:
                    if dst.shape[:2] + dst.shape[3:] != v.shape:
                        raise ValueError(f"inflate {k}: 2D shape {tuple(v.shape)} vs 3D {tuple(dst.shape)}")
                    dst.zero_()
                    dst[:, :, dst.shape[2] // 2] = v
                elif dst.shape == v.shape:
                    dst.copy_(v)
                else:
                    raise ValueError(f"inflate {k}: shape {tuple(v.shape)} vs {tuple(dst.shape)}")
                loaded.add(k)
        self._inflated = loaded
        return sorted(set(own) - loaded)

    def pretrained_parameters(self):
        """The parameters that came from 2D weights (none without ``pretrained``); new ones
        (temporal convolutions, STRF, neck, classifier) train at the base lr."""
        return [p for n, p in self.named_parameters() if n in self._inflated]

    def feature_maps(self, clip: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, 2048, T, h, w)."""
        x = clip.permute(0, 2, 1, 3, 4)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def clip_frame_features(self, clip: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> per-frame features (B, T, 2048): each frame's feature map max-pooled
        (``ap3d``) or averaged (``bnneck``) over space. Their mean over T is what the head
        normalises; the all-frame test averages them over every frame of a tracklet (AP3D's
        protocol, see vidreid.inference.features)."""
        maps = self.feature_maps(clip)
        frames = maps.amax((3, 4)) if self.head_kind == "ap3d" else maps.mean((3, 4))
        return frames.transpose(1, 2)

    def head(self, pooled: torch.Tensor) -> ModelOutput:
        """(B, 2048) frame features averaged over time -> output (BN embedding; the loss
        inputs of the head kind; classifier logits in training)."""
        normed = self.neck(pooled)
        logits = self.classifier(normed) if (self.classifier is not None and self.training) else None
        return ModelOutput(embedding=normed, features=normed if self.head_kind == "ap3d" else pooled, logits=logits)

    def forward(self, clip: torch.Tensor, **batch) -> ModelOutput:
        if clip.dim() != 5:
            raise ValueError(f"expected a clip batch (B, T, C, H, W), got shape {tuple(clip.shape)}")
        return self.head(self.clip_frame_features(clip).mean(1))


@register_model("resnet3d")
def resnet3d(num_classes: int = 0, block: str = "p3dc", blocks3d=None, strf_stages=(), strf_blocks=None,
             strf_resolutions=(1, 3), strf_pool: str = "max", strf_integration: str = "cascade_ts", strf_modules=FFMS,
             strf_residual: bool = False, strf_product: str = "rows", layers=(3, 4, 6, 3), last_stride: int = 1,
             pretrained: str | None = None, strf_mask_norm: str = "none", head: str = "ap3d") -> ResNet3D:
    """The 3D-ResNet-50 baselines of STRF (C2D, I3D, P3D-A/B/C; no STRF unless ``strf_stages``)."""
    return ResNet3D(num_classes, block, blocks3d, strf_stages, strf_blocks, strf_resolutions, strf_pool, strf_integration,
                    strf_modules, strf_residual, strf_product, layers, last_stride, pretrained, strf_mask_norm, head)


@register_model("strf")
def strf(num_classes: int = 0, block: str = "p3dc", blocks3d=None, strf_stages=(2, 3), strf_blocks=None,
         strf_resolutions=(1, 3), strf_pool: str = "max", strf_integration: str = "cascade_ts", strf_modules=FFMS,
         strf_residual: bool = False, strf_product: str = "rows", layers=(3, 4, 6, 3), last_stride: int = 1,
         pretrained: str | None = None, strf_mask_norm: str = "none", head: str = "ap3d") -> ResNet3D:
    """STRF (Aich et al., ICCV 2021) in stages 2 and 3 of a 3D-ResNet-50 (P3D-C by default)."""
    return ResNet3D(num_classes, block, blocks3d, strf_stages, strf_blocks, strf_resolutions, strf_pool, strf_integration,
                    strf_modules, strf_residual, strf_product, layers, last_stride, pretrained, strf_mask_norm, head)
