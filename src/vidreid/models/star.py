"""STAR: Spatio-Temporal Associative Representation (Wu, Zhu, Gong, BMVC 2019).

RGB frames and optical flow enter separate stems that are summed (Eq. 2); an LSTA block
(channel then spatial attention, Eqs. 4-5) follows each residual stage ("block-wise", not
after every layer as CBAM); the frame feature maps f_i of the last stage feed GSTA, a one-layer
ConvLSTM whose spatially averaged hidden states are weighted by a softmax temporal attention
(Eqs. 6-7) and projected back, plus the spatio-temporal mean of f (Eq. 8). The pyramid ranking
regulariser (Eqs. 9-10) is :class:`PyramidRankingLoss`, reading ``aux["frame_maps"]``.

Choices where the paper is silent (all configurable):

* the stems include the backbone's BatchNorm after the 7x7 convolution (ResNet's conv1 has
  one); with the light backbone (EfficientNet-Lite0) the two streams split at its 3x3 stem and
  there is no max-pool (the network has none);
* each dilated 3x3 branch of the spatial attention has ``spatial_channels`` (4) outputs;
* GSTA reduces f to ``hidden`` channels (256) with a 1x1 convolution before the ConvLSTM (3x3
  kernel): a 2048-channel ConvLSTM would need 300 M parameters; W7 maps ``hidden`` to
  ``hidden // 4`` channels;
* the identity loss acts on the BN-neck of V (``id_input="neck"``; Eq. 11 reads V itself,
  ``id_input="v"``) and the triplet loss on V (Eq. 12);
* retrieval uses V (``embed="pooled"``, the default: Sec. 3.1 matches "STAR features V" by L2
  distance) or the BN-neck output (``embed="neck"``);
* the backbone's last stride is 1 (``last_stride``, the usual re-ID choice, Luo et al. 2019), so
  the last maps are 16 x 8 at 256 x 128: GSTA's ConvLSTM costs 4x and R_pr's stripes are finer
  than with ResNet-50's stride 2 (8 x 4), which ``last_stride=2`` gives.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .backbones import backbone_norm, build_backbone
from .output import ModelOutput
from .registry import register_model


SPATIAL_KERNELS = ("dilated", "3x3", "7x7", "none")


class LSTA(nn.Module):
    """Local frame-level spatio-temporal association block (Eqs. 4-5).

    Channel attention: average- and max-pooled descriptors through a shared bottleneck
    (W3: C -> C/r, ReLU), summed, W4 (C/r -> C), sigmoid. Spatial attention: channel-wise
    average and max maps, three parallel 3x3 convolutions with dilation 1, 2, 3 (ReLU),
    concatenated, a 1x1 bottleneck (W6) and a sigmoid. Input/output (N, C, H, W); the last
    attention maps are kept in ``last_channel`` (N, C, 1, 1) and ``last_spatial`` (N, 1, H, W).

    ``spatial_kernel`` gives Fig. 6's variants: ``dilated`` (the paper's), ``3x3`` (three 3x3
    branches without dilation), ``7x7`` (one 7x7 branch, CBAM's kernel), ``none`` (no spatial
    attentive convolution: channel attention only).
    """

    def __init__(self, channels: int, reduction: int = 16, spatial_channels: int = 4, spatial_kernel: str = "dilated"):
        super().__init__()
        if spatial_kernel not in SPATIAL_KERNELS:
            raise ConfigError(f"model.lsta_kernel must be one of {list(SPATIAL_KERNELS)}, got {spatial_kernel!r}")
        mid = max(1, channels // reduction)
        self.w3 = nn.Conv2d(channels, mid, 1)
        self.w4 = nn.Conv2d(mid, channels, 1)
        self.w5 = self.w6 = None
        if spatial_kernel != "none":
            if spatial_kernel == "7x7":
                convs = [nn.Conv2d(2, spatial_channels, 7, padding=3)]
            else:
                dil = (1, 2, 3) if spatial_kernel == "dilated" else (1, 1, 1)
                convs = [nn.Conv2d(2, spatial_channels, 3, padding=d, dilation=d) for d in dil]
            self.w5 = nn.ModuleList(convs)
            self.w6 = nn.Conv2d(len(convs) * spatial_channels, 1, 1)
        self.last_channel = self.last_spatial = None

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        a, mx = m.mean((2, 3), keepdim=True), m.amax((2, 3), keepdim=True)
        wc = torch.sigmoid(self.w4(F.relu(self.w3(a)) + F.relu(self.w3(mx))))
        mc = m * wc
        self.last_channel = wc
        if self.w5 is None:
            return mc
        ms = torch.cat([mc.mean(1, keepdim=True), mc.amax(1, keepdim=True)], 1)
        ws = torch.sigmoid(self.w6(torch.cat([F.relu(c(ms)) for c in self.w5], 1)))
        self.last_spatial = ws
        return mc * ws


class SE(nn.Module):
    """Squeeze-and-excitation (Hu et al., CVPR 2018), Fig. 4(a)'s "SE" in place of LSTA:
    channel attention from the average-pooled descriptor (C -> C/r, ReLU, -> C, sigmoid)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        mid = max(1, channels // reduction)
        self.fc = nn.Sequential(nn.Conv2d(channels, mid, 1), nn.ReLU(inplace=True), nn.Conv2d(mid, channels, 1))

    def forward(self, m):
        return m * torch.sigmoid(self.fc(m.mean((2, 3), keepdim=True)))


class HolisticSpatial(nn.Module):
    """Fig. 4(a)'s "holistic attention" (two linear transforms and a softmax, as the paper's
    [15]): per position l, e_l = w2^T ReLU(W1 m_l); s = softmax over the h*w positions; the
    output is m * (h*w) s, so that uniform attention is the identity (our scaling; the paper
    gives none)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        mid = max(1, channels // reduction)
        self.w1 = nn.Conv2d(channels, mid, 1)
        self.w2 = nn.Conv2d(mid, 1, 1)

    def forward(self, m):
        e = self.w2(F.relu(self.w1(m))).flatten(1)  # (N, h*w)
        s = torch.softmax(e, 1).view(m.shape[0], 1, *m.shape[-2:])
        return m * s * (m.shape[-1] * m.shape[-2])


class CBAM(nn.Module):
    """CBAM (Woo et al., ECCV 2018): channel attention with a shared two-layer MLP on the
    average- and max-pooled descriptors, then a 7x7 spatial attention; for the paper's
    "CBAM multi-loss" baseline, applied layer-wise as in CBAM's ResNet integration: inside every
    residual block, on the residual branch's output before the addition of the shortcut
    (:func:`_insert_cbam`)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        mid = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, mid, 1), nn.ReLU(inplace=True), nn.Conv2d(mid, channels, 1))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, m):
        m = m * torch.sigmoid(self.mlp(m.mean((2, 3), keepdim=True)) + self.mlp(m.amax((2, 3), keepdim=True)))
        return m * torch.sigmoid(self.spatial(torch.cat([m.mean(1, keepdim=True), m.amax(1, keepdim=True)], 1)))


def _insert_cbam(block: nn.Module, reduction: int) -> None:
    """CBAM on a torchvision residual block's residual branch: its last BN becomes BN -> CBAM, so
    the attention applies to the branch before ``out += identity`` (CBAM paper, Fig. 3)."""
    name = "bn3" if hasattr(block, "bn3") else "bn2"
    bn = getattr(block, name)
    setattr(block, name, nn.Sequential(bn, CBAM(bn.num_features, reduction)))


class ConvLSTMCell(nn.Module):
    """One ConvLSTM cell (Shi et al., NeurIPS 2015): gates from a convolution of [x, h]."""

    def __init__(self, in_channels: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel, padding=kernel // 2)

    def forward(self, x, state):
        h, c = state
        i, f, o, g = self.conv(torch.cat([x, h], 1)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


TEMPORAL = ("gsta", "avg", "lstm", "conv3d", "attention")


class TemporalVariant(nn.Module):
    """Fig. 4(b)'s alternatives to GSTA over the frame maps f (B, T, C, h, w) -> V (B, C):

    * ``lstm``: an LSTM (``hidden`` units) over the spatially pooled f, its outputs averaged
      over time, mapped back to C and added to the spatio-temporal mean of f (GSTA's Eq. 8
      form, our choice);
    * ``conv3d``: Conv3D-STIM (Liu et al. AAAI 2019, the paper's [19]) on f: 1x1x1 to 256 + BN
      + ReLU, 3x3x3 to 256 + BN + ReLU, mean over T, h, w; mapped to C and added to the mean of f;
    * ``attention``: holistic temporal attention (one linear transform and a softmax, as [15]):
      k = softmax_t(w^T f_t) on the pooled f, V = sum_t k_t f_t.
    """

    def __init__(self, kind: str, channels: int, hidden: int = 256):
        super().__init__()
        self.kind = kind
        if kind == "lstm":
            self.lstm = nn.LSTM(channels, hidden, batch_first=True)
            self.out = nn.Linear(hidden, channels)
        elif kind == "conv3d":
            from .rru_stim import STIM

            self.stim = STIM(channels)
            self.out = nn.Linear(256, channels)
        else:
            self.score = nn.Linear(channels, 1)

    def forward(self, f: torch.Tensor):
        pooled = f.mean((3, 4))  # (B, T, C)
        if self.kind == "lstm":
            return self.out(self.lstm(pooled)[0].mean(1)) + pooled.mean(1), None
        if self.kind == "conv3d":
            return self.out(self.stim(f)) + pooled.mean(1), None
        k = torch.softmax(self.score(pooled).squeeze(-1), 1)
        return (k.unsqueeze(-1) * pooled).sum(1), k


class GSTA(nn.Module):
    """Global video-level spatio-temporal association (Eqs. 6-8).

    Input f (B, T, C, H, W), any T >= 1. Output V (B, C) and the temporal attention K (B, T)
    (softmax over time, Eq. 7).
    """

    def __init__(self, channels: int, hidden: int = 256):
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.cell = ConvLSTMCell(hidden, hidden)
        self.w7 = nn.Conv1d(hidden, max(1, hidden // 4), 1)
        self.w8 = nn.Conv1d(max(1, hidden // 4), 1, 1)
        self.w9 = nn.Linear(hidden, channels)

    def recur(self, x: torch.Tensor, state=None):
        """The ConvLSTM over reduced maps x (B, T, hidden, H, W) from ``state`` ((h, c), zeros
        when None). Returns the spatially averaged hidden states (B, T, hidden) (Eq. 6) and the
        last state, so a long sequence can be fed in consecutive pieces."""
        B, T = x.shape[:2]
        if state is None:
            h = x.new_zeros(B, self.cell.hidden, *x.shape[-2:])
            state = (h, torch.zeros_like(h))
        h, c = state
        hs = []
        for t in range(T):
            h, c = self.cell(x[:, t], (h, c))
            hs.append(h.mean((2, 3)))  # Eq. 6: spatial average of the hidden state
        return torch.stack(hs, 1), (h, c)

    def pool(self, hs: torch.Tensor, f_mean: torch.Tensor):
        """Eqs. 7-8: hs (B, T, hidden), f_mean (B, C) the spatio-temporal mean of f -> V (B, C),
        K (B, T)."""
        k = torch.softmax(self.w8(F.relu(self.w7(hs.transpose(1, 2)))).squeeze(1), dim=1)  # Eq. 7, (B, T)
        return self.w9((k.unsqueeze(-1) * hs).sum(1)) + f_mean, k  # Eq. 8

    def forward(self, f: torch.Tensor):
        B, T, C, H, W = f.shape
        x = self.reduce(f.flatten(0, 1)).view(B, T, -1, H, W)
        hs, _ = self.recur(x)
        return self.pool(hs, f.mean((1, 3, 4)))


def _staged_backbone(name: str, pretrained, last_stride: int):
    """(rgb stem, flow stem factory, stages, stage channels) of a backbone."""
    bb = build_backbone(name, pretrained, last_stride)
    if name.startswith("resnet"):
        body = bb.body
        stem = nn.Sequential(*body[:4])  # conv1 7x7, bn, relu, max-pool
        stages = nn.ModuleList(body[4:8])
        chans = [blk[-1].conv3.out_channels if hasattr(blk[-1], "conv3") else blk[-1].conv2.out_channels for blk in stages]

        def flow_stem():
            return nn.Sequential(nn.Conv2d(2, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                 nn.MaxPool2d(3, 2, 1))
        return stem, flow_stem, stages, chans
    if name == "efficientnet_lite0":
        m = bb.body.m
        stem = nn.Sequential(m.conv_stem, m.bn1)
        b = m.blocks
        stages = nn.ModuleList([nn.Sequential(b[0], b[1]), nn.Sequential(b[2]), nn.Sequential(b[3], b[4]),
                                nn.Sequential(b[5], b[6], m.conv_head, m.bn2)])
        chans = [24, 40, 112, m.num_features]

        def flow_stem():
            return nn.Sequential(nn.Conv2d(2, m.conv_stem.out_channels, 3, 2, 1, bias=False),
                                 nn.BatchNorm2d(m.conv_stem.out_channels), nn.ReLU6(inplace=True))
        return stem, flow_stem, stages, chans
    if name.startswith("osnet"):  # torchreid's OSNet: stem conv1 + max-pool, three stages, conv5 with the last
        m = bb.body.m
        stem = nn.Sequential(m.conv1, m.maxpool)
        stages = nn.ModuleList([nn.Sequential(m.conv2, *([m.pool2] if m.pool2 is not None else [])),
                                nn.Sequential(m.conv3, *([m.pool3] if m.pool3 is not None else [])),
                                nn.Sequential(m.conv4, m.conv5)])
        c0, *chans = m.widths

        def flow_stem():
            return nn.Sequential(nn.Conv2d(2, c0, 7, 2, 3, bias=False), nn.BatchNorm2d(c0), nn.ReLU(inplace=True),
                                 nn.MaxPool2d(3, 2, 1))
        return stem, flow_stem, stages, chans
    raise ConfigError(f"STAR: backbone {name!r} not supported; use resnet18/34/50, efficientnet_lite0 or osnet_*")


class STAR(nn.Module):
    """Args:
        backbone, pretrained, last_stride: as for the baseline.
        num_classes: training identities.
        use_flow: two-stream input (Eq. 2); False gives the RGB-only variant (Fig. 7).
        attention: ``lsta`` (block-wise, Sec. 3.2), ``cbam`` (layer-wise CBAM, the Table 3
            baseline), ``se`` or ``holistic`` (block-wise, Fig. 4(a)) or ``none``.
        lsta_kernel: LSTA's spatial attention (Fig. 6): ``dilated``, ``3x3``, ``7x7``, ``none``.
        gsta: GSTA temporal aggregation (Sec. 3.3); False: temporal average of the pooled f
            (the same as ``temporal="avg"``).
        temporal: ``gsta`` (default), ``avg`` (pooling), or Fig. 4(b)'s ``lstm``, ``conv3d``,
            ``attention`` (see :class:`TemporalVariant`).
        hidden: GSTA ConvLSTM channels; reduction: r of Eq. 4.
        embed: ``pooled`` (V, default) or ``neck`` (see module doc).
        id_input: what the classifier reads: ``neck`` (BN-neck of V, default) or ``v`` (Eq. 11).

    Input: clip (B, T, 3, H, W), flow (B, T, 2, H, W) when ``use_flow``. Output ModelOutput with
    embedding (B, C), features V (B, C), logits in training, and aux ``frame_maps`` f
    (B, T, C, h, w), ``temporal_attention`` K (B, T) with GSTA, ``spatial_attention``
    (B, T, 1, h, w) of the last LSTA block.
    """

    frame_decomposable = False

    def __init__(self, num_classes: int = 0, backbone: str = "resnet50", pretrained: str | None = None,
                 last_stride: int = 1, use_flow: bool = True, attention: str = "lsta", gsta: bool = True,
                 hidden: int = 256, reduction: int = 16, embed: str = "pooled", temporal: str = "gsta",
                 lsta_kernel: str = "dilated", id_input: str = "neck"):
        super().__init__()
        if embed not in ("pooled", "neck"):
            raise ConfigError(f"STAR embed must be pooled or neck, got {embed!r}")
        if id_input not in ("neck", "v"):
            raise ConfigError(f"STAR id_input must be neck or v, got {id_input!r}")
        self.id_input = id_input
        if attention not in ("lsta", "cbam", "se", "holistic", "none"):
            raise ConfigError(f"STAR attention must be lsta, cbam, se, holistic or none, got {attention!r}")
        if temporal not in TEMPORAL:
            raise ConfigError(f"STAR temporal must be one of {list(TEMPORAL)}, got {temporal!r}")
        temporal = temporal if gsta else "avg"
        self.temporal = temporal
        self.rgb_stem, flow_stem, self.stages, chans = _staged_backbone(backbone, pretrained, last_stride)
        self.flow_stem = flow_stem() if use_flow else None
        self.use_flow = use_flow
        if attention == "lsta":
            self.attn = nn.ModuleList(LSTA(c, reduction, spatial_kernel=lsta_kernel) for c in chans)
        elif attention == "se":
            self.attn = nn.ModuleList(SE(c, reduction) for c in chans)
        elif attention == "holistic":
            self.attn = nn.ModuleList(HolisticSpatial(c, reduction) for c in chans)
        else:
            self.attn = nn.ModuleList(nn.Identity() for _ in chans)
            if attention == "cbam":  # layer-wise: inside every residual block of every stage
                if not backbone.startswith("resnet"):
                    raise ConfigError(f"STAR attention=cbam needs a ResNet backbone (residual blocks), got {backbone!r}")
                for stage in self.stages:
                    for blk in stage:
                        _insert_cbam(blk, reduction)
        self.dim = chans[-1]
        self.gsta = GSTA(self.dim, hidden) if temporal == "gsta" else None
        self.temporal_variant = TemporalVariant(temporal, self.dim, hidden) if temporal in ("lstm", "conv3d", "attention") else None
        self.neck = nn.BatchNorm1d(self.dim)
        self.neck.bias.requires_grad_(False)
        self.classifier = nn.Linear(self.dim, num_classes, bias=False) if num_classes > 0 else None
        if self.classifier is not None:
            nn.init.normal_(self.classifier.weight, std=0.001)
        self.embed = embed
        self.input_norm = backbone_norm(backbone)
        self._pretrained = list(self.rgb_stem.parameters()) + list(self.stages.parameters())

    def pretrained_parameters(self):
        return iter(self._pretrained)

    def frame_maps(self, frames: torch.Tensor, flow: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame part of the network (stems, stages, LSTA): frames (N, 3, H, W) and flow
        (N, 2, H, W) -> f (N, C, h, w). Every frame is processed independently."""
        x = self.rgb_stem(frames)
        if self.flow_stem is not None:
            if flow is None:
                raise ValueError("STAR with use_flow=True needs optical flow: set data.flow (see `vidreid flow`)")
            x = x + self.flow_stem(flow)
        for stage, att in zip(self.stages, self.attn):
            x = att(stage(x))
        return x

    def _head(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        normed = self.neck(v)
        logits = None
        if self.classifier is not None and self.training:
            logits = self.classifier(normed if self.id_input == "neck" else v)
        return (normed if self.embed == "neck" else v), normed, logits

    def forward(self, clip: torch.Tensor, flow: torch.Tensor | None = None, **batch) -> ModelOutput:
        if clip.dim() != 5:
            raise ValueError(f"expected a clip batch (B, T, C, H, W), got shape {tuple(clip.shape)}")
        B, T = clip.shape[:2]
        x = self.frame_maps(clip.flatten(0, 1), None if flow is None else flow.flatten(0, 1))
        f = x.view(B, T, *x.shape[1:])
        aux = {"frame_maps": f}
        if self.gsta is not None:
            v, k = self.gsta(f)
            aux["temporal_attention"] = k
        elif self.temporal_variant is not None:
            v, k = self.temporal_variant(f)
            if k is not None:
                aux["temporal_attention"] = k
        else:
            v = f.mean((1, 3, 4))
        last = self.attn[-1]
        if isinstance(last, LSTA) and last.last_spatial is not None:
            aux["spatial_attention"] = last.last_spatial.view(B, T, 1, *last.last_spatial.shape[-2:])
        emb, _, logits = self._head(v)
        return ModelOutput(embedding=emb, features=v, logits=logits, aux=aux)

    @property
    def streaming(self) -> bool:
        """The all-frame test streams GSTA and average pooling; Fig. 4(b)'s variants take the
        chunked path (vidreid.inference.features)."""
        return self.temporal in ("gsta", "avg")

    # One temporal pass over a whole tracklet, fed in pieces (vidreid.inference.features): the
    # frame part runs on batches of frames, the ConvLSTM carries its state across pieces, and
    # only the per-frame hidden means (hidden floats a frame) wait for the softmax of Eq. 7.
    def stream_frames(self, frames: torch.Tensor, flow: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """(N, 3, H, W) [+ flow (N, 2, H, W)] -> the per-frame inputs of the temporal module:
        GSTA's reduced maps (N, hidden, h, w) and the spatial means of f (N, C)."""
        f = self.frame_maps(frames, flow)
        fm = f.mean((2, 3))
        return (self.gsta.reduce(f), fm) if self.gsta is not None else (fm,)

    def stream_init(self) -> dict:
        return {"state": None, "hs": [], "f_sum": 0.0, "n": 0}

    def stream_update(self, st: dict, feats: tuple[torch.Tensor, ...]) -> dict:
        """Consecutive frames of one tracklet (the output of :meth:`stream_frames`)."""
        fm = feats[-1]
        st["f_sum"] = st["f_sum"] + fm.sum(0)
        st["n"] += len(fm)
        if self.gsta is not None:
            hs, st["state"] = self.gsta.recur(feats[0][None], st["state"])
            st["hs"].append(hs[0])
        return st

    def stream_finish(self, st: dict) -> torch.Tensor:
        """The tracklet's embedding (D,), equal to ``forward`` on all its frames at once."""
        f_mean = (st["f_sum"] / st["n"])[None]
        v = self.gsta.pool(torch.cat(st["hs"])[None], f_mean)[0] if self.gsta is not None else f_mean
        return self._head(v)[0][0]


@register_model("star")
def star(num_classes: int = 0, backbone: str = "resnet50", pretrained: str | None = None, last_stride: int = 1,
         use_flow: bool = True, attention: str = "lsta", gsta: bool = True, hidden: int = 256, reduction: int = 16,
         embed: str = "pooled", temporal: str = "gsta", lsta_kernel: str = "dilated", id_input: str = "neck") -> STAR:
    """STAR (Wu et al., BMVC 2019); see :class:`STAR`."""
    return STAR(num_classes, backbone, pretrained, last_stride, use_flow, attention, gsta, hidden, reduction, embed,
                temporal, lsta_kernel, id_input)
