"""Refining recurrent unit + spatial-temporal clues integration module (Liu, Yuan, Zhou, Li,
AAAI 2019), model ``rru_stim``.

Per clip of T frames: a CNN (Inception-v3 to its final inception block by default) gives raw
maps X_t (C x H x W); the RRU (Eqs. 1-5) refines them into S_t in the same feature space; STIM
(Eq. 6) turns the stack S (C x T x H x W) into the video feature f in R^256; a classifier block
(Zhong et al. 2018: FC 512, BN, ReLU, Dropout 0.5, FC) gives identity logits, and
Inception-v3's auxiliary classifier a second set. The multi-level objective (Eqs. 7-10) is
config: cross-entropy on ``logits`` and ``aux_logits`` (L_c), a batch-hard triplet on
``features`` = f (L_v, m = 0.4), and :class:`vidreid.losses.metric.PartTripletLoss` on
``refined_maps`` = S (L_p).

Ablations of Tables 1-2 are arguments: ``rru`` on/off, ``gate`` (both, ``spatial`` = RRU(s),
``channel`` = RRU(c)), ``gate_input`` (``diff`` = [X_t - S_{t-1}, X_t - X_{t-1}], ``ad`` =
RRU(ad), ``od`` = RRU(od)), ``temporal`` (``stim``, ``avg``, ``lstm``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .backbones import backbone_norm, build_backbone, inception_v3_parts
from .output import ModelOutput
from .registry import register_model

GATES = ("both", "spatial", "channel")
GATE_INPUTS = ("diff", "ad", "od")
TEMPORAL = ("stim", "avg", "lstm")


class UpdateGate(nn.Module):
    """The update-gate model g (Fig. 2(b), Eqs. 2-4).

    Transition layer: 1x1 conv to 256 channels + BN + ReLU -> Z_t (256, H, W). Spatial
    attention: cross-channel average (H*W) -> FC 128 -> ReLU -> FC H*W -> Z_s (1, H, W) (Eq. 2).
    Channel attention: spatial average (256) -> FC C -> Z_c (C, 1, 1) (Eq. 3).
    Z = sigmoid(Z_s * Z_c) (Eq. 4), or sigmoid of one factor for RRU(s) / RRU(c).

    Args:
        in_channels: channels of the gate input (2C, or C for RRU(ad)).
        out_channels: C.
        hw: H*W of the maps (the authors' code fixes 8*8; here it comes from the input size).
        gate: ``both``, ``spatial`` or ``channel``.
    Input: (N, in_channels, H, W). Output: Z (N, C, H, W) in (0, 1).
    """

    def __init__(self, in_channels: int, out_channels: int, hw: int, gate: str = "both", width: int = 256):
        super().__init__()
        self.gate, self.hw = gate, hw
        self.transition = nn.Sequential(nn.Conv2d(in_channels, width, 1, bias=False), nn.BatchNorm2d(width),
                                        nn.ReLU(inplace=True))
        self.spatial = nn.Sequential(nn.Linear(hw, 128), nn.ReLU(inplace=True), nn.Linear(128, hw))
        self.channel = nn.Linear(width, out_channels)

    def forward(self, z_in: torch.Tensor) -> torch.Tensor:
        zt = self.transition(z_in)
        N, _, H, W = zt.shape
        if H * W != self.hw:
            raise ValueError(f"RRU gate built for H*W = {self.hw} feature cells, got {H}x{W}; "
                             "set model.args.height/width to the data size")
        zs = self.spatial(zt.mean(1).flatten(1)).view(N, 1, H, W)
        zc = self.channel(zt.mean((2, 3)))[:, :, None, None]
        if self.gate == "spatial":
            return torch.sigmoid(zs).expand(N, zc.shape[1], H, W)
        if self.gate == "channel":
            return torch.sigmoid(zc).expand(N, zc.shape[1], H, W)
        return torch.sigmoid(zs * zc)


class RRU(nn.Module):
    """Refining recurrent unit (Eqs. 1, 5): S_t = (1 - Z) * S_{t-1} + Z * X_t with
    Z = g([X_t - S_{t-1}, X_t - X_{t-1}]) and X_0 = S_0 = X_1 (so S_1 = X_1).

    Input: X (B, T, C, H, W). Output: S (B, T, C, H, W), same feature space as X.
    """

    def __init__(self, channels: int, hw: int, gate: str = "both", gate_input: str = "diff"):
        super().__init__()
        self.gate_input = gate_input
        self.g = UpdateGate(channels if gate_input == "ad" else 2 * channels, channels, hw, gate)

    def gate(self, x_t: torch.Tensor, s_prev: torch.Tensor, x_prev: torch.Tensor) -> torch.Tensor:
        """Z for one step: (N, C, H, W) x 3 -> (N, C, H, W)."""
        if self.gate_input == "diff":
            z_in = torch.cat([x_t - s_prev, x_t - x_prev], 1)
        elif self.gate_input == "ad":
            z_in = x_t - s_prev
        else:
            z_in = torch.cat([x_t, s_prev], 1)
        return self.g(z_in)

    def scan(self, X: torch.Tensor, state=None):
        """Eq. 5 over X (B, T, C, H, W) from ``state`` = (S_{t-1}, X_{t-1}) (None: the start,
        X_0 = S_0 = X_1). Returns S (B, T, C, H, W) and the last state, so a long sequence can
        be refined in consecutive pieces."""
        s_prev, x_prev = (X[:, 0], X[:, 0]) if state is None else state
        out = []
        for t in range(X.shape[1]):
            x_t = X[:, t]
            z = self.gate(x_t, s_prev, x_prev)
            s_prev = (1 - z) * s_prev + z * x_t
            x_prev = x_t
            out.append(s_prev)
        return torch.stack(out, 1), (s_prev, x_prev)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.scan(X)[0]


class STIM(nn.Module):
    """Spatial-temporal clues integration module (Eq. 6): Conv3d 1x1x1 to 256 + BN + ReLU,
    Conv3d 3x3x3 (padding 1) to 256 + BN + ReLU, average over T, H, W.

    Input: S (B, T, C, H, W). Output: f (B, 256), for any T >= 1.
    """

    def __init__(self, channels: int, width: int = 256):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv3d(channels, width, 1, bias=False), nn.BatchNorm3d(width), nn.ReLU(inplace=True))
        self.block2 = nn.Sequential(nn.Conv3d(width, width, 3, padding=1, bias=False), nn.BatchNorm3d(width),
                                    nn.ReLU(inplace=True))

    def forward(self, S: torch.Tensor) -> torch.Tensor:
        o = self.block2(self.block1(S.permute(0, 2, 1, 3, 4)))  # (B, 256, T, H, W)
        return o.mean((2, 3, 4))

    # Streaming (one tracklet fed in consecutive pieces; equal to forward on the whole): block1
    # is per frame; block2's 3x3x3 convolution needs each frame's two neighbours, so the last
    # two block1 frames are carried over (a zero frame stands for the padding before the first
    # frame and after the last) and only the running sum of block2's output is kept.
    def _block2_valid(self, y: torch.Tensor) -> torch.Tensor:
        """block2 without temporal padding: (1, w, T, H, W) -> (1, w, T - 2, H, W)."""
        conv, bn, relu = self.block2
        o = F.conv3d(y, conv.weight, conv.bias, conv.stride, (0, 1, 1), conv.dilation, conv.groups)
        return relu(bn(o))

    def stream_update(self, st: dict, S: torch.Tensor) -> dict:
        """S (1, n, C, H, W): the next n refined frames of one tracklet."""
        y = self.block1(S.permute(0, 2, 1, 3, 4))  # (1, w, n, H, W)
        ctx = torch.cat([st["ctx"] if "ctx" in st else torch.zeros_like(y[:, :, :1]), y], 2)
        if ctx.shape[2] >= 3:
            o = self._block2_valid(ctx)
            st["sum"] = st.get("sum", 0.0) + o.sum((2, 3, 4))
            st["cells"] = st.get("cells", 0) + o[0, 0].numel()
        st["ctx"] = ctx[:, :, -2:]
        return st

    def stream_finish(self, st: dict) -> torch.Tensor:
        """f (1, w) of the whole sequence."""
        o = self._block2_valid(torch.cat([st["ctx"], torch.zeros_like(st["ctx"][:, :, :1])], 2))
        return (st.get("sum", 0.0) + o.sum((2, 3, 4))) / (st.get("cells", 0) + o[0, 0].numel())


class ClassifierBlock(nn.Module):
    """Zhong et al. 2018 classifier block: FC 512 -> BN -> ReLU -> Dropout -> FC (logits; the
    softmax is in the loss). Input (B, D), output (B, num_classes)."""

    def __init__(self, dim: int, num_classes: int, hidden: int = 512, dropout: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f)


class RRUSTIM(nn.Module):
    """The RRU + STIM network (see the module doc).

    Args:
        num_classes: training identities (0: no classifiers).
        backbone: ``inception_v3`` (the paper's), ``resnet50``, ``efficientnet_lite0``, ...
        pretrained: backbone weights (None, ``"imagenet"`` from local files, or a path).
        height, width: input size in pixels; fixes H*W of the RRU's spatial attention.
        rru, gate, gate_input, temporal: the ablations (module doc).
        aux_classifier: keep Inception-v3's auxiliary classifier (needs an input of about
            299 x 299); other backbones have none and ignore it (a config then drops the
            ``aux_logits`` loss term).
        lstm_hidden: LSTM width of the ``lstm`` ablation (256, Table 1 caption).
        dropout: classifier-block dropout (0.5).

    Input: clip float (B, T, 3, H, W). Output: :class:`ModelOutput` with ``embedding`` =
    ``features`` = f (B, 256) (B, C for ``temporal="avg"``), ``logits`` and, with the
    auxiliary classifier, ``aux["aux_logits"]`` (per-frame auxiliary logits averaged over T)
    in training; ``aux["raw_maps"]`` X and ``aux["refined_maps"]`` S, both (B, T, C, H, W).

    Raises:
        ConfigError: unknown gate, gate_input or temporal; the auxiliary classifier with an input
            too small for it (it needs about 299 x 299).
    """

    frame_decomposable = False

    def __init__(self, num_classes: int = 0, backbone: str = "inception_v3", pretrained: str | None = None,
                 height: int = 299, width: int = 299, rru: bool = True, gate: str = "both", gate_input: str = "diff",
                 temporal: str = "stim", aux_classifier: bool = True, lstm_hidden: int = 256, dropout: float = 0.5):
        super().__init__()
        for key, val, valid in (("gate", gate, GATES), ("gate_input", gate_input, GATE_INPUTS), ("temporal", temporal, TEMPORAL)):
            if val not in valid:
                raise ConfigError(f"model.{key} must be one of {list(valid)}, got {val!r}")
        self.input_norm = backbone_norm(backbone)
        self._pretrained = bool(pretrained)
        self.aux = None
        if backbone == "inception_v3":
            self.to_6e, self.to_7c, self.aux = inception_v3_parts(pretrained, num_classes if aux_classifier else 0)
            C = 2048
        else:
            self.to_6e, self.to_7c = None, build_backbone(backbone, pretrained, last_stride=2)
            C = self.to_7c.out_dim
        with torch.no_grad():
            was = self.training
            self.eval()
            try:
                maps, m6 = self._maps(torch.zeros(1, 3, height, width))
            except RuntimeError as e:
                raise ConfigError(f"model.args.height/width {height}x{width}: too small for backbone {backbone} ({e})") from e
            self.train(was)
        h, w = maps.shape[-2:]
        if self.aux is not None and min(m6.shape[-2:]) < 17:
            raise ConfigError(f"model.aux_classifier: Inception-v3's auxiliary classifier needs a Mixed_6e map of at "
                              f"least 17x17, i.e. an input of about 299x299; model.args.height/width {height}x{width} "
                              f"give {tuple(m6.shape[-2:])}. Set aux_classifier: false or a larger input")
        self.feat_hw = (int(h), int(w))
        self.rru = RRU(C, h * w, gate, gate_input) if rru else None
        self.temporal = temporal
        if temporal == "stim":
            self.stim, dim = STIM(C), 256
        elif temporal == "lstm":
            self.lstm, dim = nn.LSTM(C, lstm_hidden, batch_first=True), lstm_hidden
        else:
            dim = C
        self.dim = dim
        self.classifier = ClassifierBlock(dim, num_classes, dropout=dropout) if num_classes > 0 else None

    def _maps(self, frames: torch.Tensor):
        if self.to_6e is None:
            return self.to_7c(frames), None
        m6 = self.to_6e(frames)
        return self.to_7c(m6), m6

    def pretrained_parameters(self):
        """The parameters loaded from ImageNet weights, which train at ``optim.pretrained_lr_mult``
        x the base lr (Sec. 4.1: "For the pretrained layers, the learning rate is set to 0.1x"):
        the CNN, and the auxiliary head's convolutions (its fresh classifier ``fc`` excluded)
        when pretrained; nothing without pretrained weights."""
        if not self._pretrained:
            return []
        mods = [m for m in (self.to_6e, self.to_7c) if m is not None]
        out = [p for m in mods for p in m.parameters()]
        if self.aux is not None:
            out += [p for n, p in self.aux.named_parameters() if not n.startswith("fc.")]
        return out

    # One temporal pass over a whole tracklet, fed in pieces (vidreid.inference.features): the
    # CNN runs on batches of frames, the RRU carries (S_{t-1}, X_{t-1}) across pieces and STIM
    # keeps two frames of context and a running sum, so memory does not grow with the length.
    def stream_frames(self, frames: torch.Tensor, flow=None) -> tuple[torch.Tensor]:
        """(N, 3, H, W) -> the raw maps X (N, C, h, w), frame by frame."""
        return (self._maps(frames)[0],)

    def stream_init(self) -> dict:
        return {"rru": None, "stim": {}, "sum": 0.0, "n": 0}

    def stream_update(self, st: dict, feats: tuple[torch.Tensor]) -> dict:
        """Consecutive frames of one tracklet (the output of :meth:`stream_frames`)."""
        X = feats[0][None]
        S = X
        if self.rru is not None:
            S, st["rru"] = self.rru.scan(X, st["rru"])
        if self.temporal == "stim":
            self.stim.stream_update(st["stim"], S)
        elif self.temporal == "lstm":
            out, st["lstm"] = self.lstm(S.mean((3, 4)), st.get("lstm"))
            st["sum"] = st["sum"] + out[0].sum(0)
        else:
            st["sum"] = st["sum"] + S[0].mean((2, 3)).sum(0)
        st["n"] += X.shape[1]
        return st

    def stream_finish(self, st: dict) -> torch.Tensor:
        """f (D,) of the whole tracklet, equal to ``forward`` on all its frames at once."""
        if self.temporal == "stim":
            return self.stim.stream_finish(st["stim"])[0]
        return st["sum"] / st["n"]

    def forward(self, clip: torch.Tensor, **batch) -> ModelOutput:
        if clip.dim() != 5:
            raise ValueError(f"expected a clip batch (B, T, C, H, W), got shape {tuple(clip.shape)}")
        B, T = clip.shape[:2]
        maps, m6 = self._maps(clip.flatten(0, 1))
        X = maps.view(B, T, *maps.shape[1:])
        S = self.rru(X) if self.rru is not None else X
        if self.temporal == "stim":
            f = self.stim(S)
        elif self.temporal == "lstm":
            f = self.lstm(S.mean((3, 4)))[0].mean(1)
        else:
            f = S.mean((1, 3, 4))
        aux = {"raw_maps": X, "refined_maps": S}
        logits = None
        if self.training and self.classifier is not None:
            logits = self.classifier(f)
            if self.aux is not None:
                aux["aux_logits"] = self.aux(m6).view(B, T, -1).mean(1)
        return ModelOutput(embedding=f, features=f, logits=logits, aux=aux)


@register_model("rru_stim")
def rru_stim(num_classes: int = 0, backbone: str = "inception_v3", pretrained: str | None = None, height: int = 299,
             width: int = 299, rru: bool = True, gate: str = "both", gate_input: str = "diff", temporal: str = "stim",
             aux_classifier: bool = True, lstm_hidden: int = 256, dropout: float = 0.5) -> RRUSTIM:
    """RRU + STIM (Liu et al., AAAI 2019); see :class:`RRUSTIM`."""
    return RRUSTIM(num_classes, backbone, pretrained, height, width, rru, gate, gate_input, temporal, aux_classifier,
                   lstm_hidden, dropout)
