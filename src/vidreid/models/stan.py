"""Diversity-regularised spatiotemporal attention (Li, Bak, Carr, Wang, CVPR 2018), model ``stan``.

Per frame n of a clip of N frames (restricted random sampling, Sec. 3.1):

1. a CNN gives an h x w grid of L = h*w cells f_{n,l} in R^D (ResNet-50 at 256x128: 8x4,
   L = 32, D = 2048);
2. K spatial attention models (Sec. 3.2, Eqs. 1-3), each two linear maps with a ReLU
   (D -> d = 256 -> 1), give a response per cell; a softmax over the L cells gives the
   receptive field s_{n,k} (Eq. 2) and the gated feature x_{n,k} = sum_l s_{n,k,l} f_{n,l} (Eq. 3);
3. the enhancement E (Eq. 4) is the supplementary material's Sec. 3.2.1 (see
   :class:`TemporalEnhancement`), or the identity (``enhance="none"``);
4. per part k, a temporal attention (Sec. 3.4, Eqs. 11-13) weighs the N frames and sums;
5. the K part vectors are concatenated (Eq. 15), an FC layer maps them to 128 dimensions, and
   the result is L2-normalised (Sec. 4.2); training uses the OIM loss on it
   (:class:`vidreid.losses.metric.OIMLoss`).

The diversity regulariser (Sec. 3.3) is returned in ``aux``: ``diversity_q`` is
Q = ||R R^T - I||_F^2 with R = sqrt(S) (Eq. 9), ``diversity_q_plain`` is Q' = ||S S^T - I||_F^2
(Eq. 10, Lin et al. 2017), each averaged over the B*N images; a config adds the one it wants
with a ``value`` loss term and its coefficient.

The training stages of Sec. 4.2 (CNN first, then the attention models with the CNN fixed and
average temporal pooling, then everything but the CNN, then all layers) are config
(``stages``), switching the attributes ``spatial`` and ``temporal`` below.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .backbones import backbone_norm, build_backbone
from .output import ModelOutput
from .registry import register_model

SPATIAL = ("attention", "avg")
TEMPORAL = ("attention", "avg", "max")


def diversity_q(S: torch.Tensor, hellinger: bool = True) -> torch.Tensor:
    """Diversity regulariser of K receptive fields (Li et al. 2018, Eqs. 9-10).

    Args:
        S: (..., K, L) receptive fields, each row a probability mass function.
        hellinger: True: Q with R = sqrt(S) (Eq. 9); False: Q' on S itself (Eq. 10).
    Returns:
        (...) float: ||R R^T - I||_F^2 per image. For pmfs, R R^T has ones on its diagonal and
        the Bhattacharyya coefficients 1 - H^2(s_i, s_j) (Eq. 8) off it, so
        Q = 2 sum_{i<j} (1 - H^2(s_i, s_j))^2: 0 for disjoint fields, K(K-1) for identical ones.
    """
    # sqrt's gradient 1 / (2 sqrt(s)) is infinite where a softmax weight underflows to exactly 0
    # (a sharp field, fp32: logits ~104 apart), which made the CPU STAN recipe's weights NaN
    # (docs/RESULTS.md, issue 23). Weights at or below 1e-12 count as 0 and pass no gradient (the
    # zeroing comes before the sqrt, so its infinite derivative is never multiplied in); R moves by
    # at most 1e-6 per cell, and is exact for weights that are exactly 0 or above 1e-12
    R = torch.where(S > 1e-12, S, torch.zeros_like(S)).sqrt() if hellinger else S
    G = R @ R.transpose(-1, -2)
    eye = torch.eye(S.shape[-2], dtype=S.dtype, device=S.device)
    return (G - eye).pow(2).sum(dim=(-1, -2))


class SpatialAttention(nn.Module):
    """K attention models over L cells (Eqs. 1-3).

    Each model k: e_{k,l} = w2_k^T relu(W1_k f_l + b1_k) + b2_k, s_k = softmax_l(e_k),
    x_k = sum_l s_{k,l} f_l.

    Input: cells (M, L, D). Output: (x (M, K, D), s (M, K, L)); every s[m, k] sums to 1.
    """

    def __init__(self, dim: int, num_parts: int, hidden: int = 256):
        super().__init__()
        self.w1 = nn.Parameter(torch.empty(num_parts, dim, hidden))
        self.b1 = nn.Parameter(torch.zeros(num_parts, hidden))
        self.w2 = nn.Parameter(torch.empty(num_parts, hidden))
        self.b2 = nn.Parameter(torch.zeros(num_parts))
        nn.init.normal_(self.w1, std=1.0 / math.sqrt(dim))
        nn.init.normal_(self.w2, std=1.0 / math.sqrt(hidden))

    def forward(self, cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(torch.einsum("mld,kde->mkle", cells, self.w1) + self.b1[None, :, None, :])
        e = torch.einsum("mkle,ke->mkl", h, self.w2) + self.b2[None, :, None]
        s = e.softmax(dim=-1)
        return s @ cells, s


class TemporalEnhancement(nn.Module):
    """The enhancement E of Eq. 4, from the paper's supplementary material (Sec. 3.2.1, its
    Eqs. 1-4), applied per part k to the N gated features X_k = [x_{1,k} .. x_{N,k}]:

    * appearance similarity Phi_k = X_k^T X_k (N x N), scaled by 1/sqrt(D) by default
      (``phi_scale="sqrt_d"``; ``"none"`` is the printed formula: with D = 2048 unscaled
      inner products saturate the softmax, so every frame would copy its most similar one);
    * temporal similarity Psi = W * exp(-|i - j| / sigma) + b, W (N x N) elementwise and b (N,)
      learned (initialised to ones and zeros), sigma a config value (``sigma``, frames; the
      paper gives none);
    * C_k = row-softmax(Phi_k + Psi): row i holds the contributions of all frames to frame i;
    * X^_k = FCN(X_k C_k) + X_k, FCN one linear map D -> D shared by the parts, initialised to
      zero so E starts as the identity.

    The printed product X_k C_k mixes frame columns with the *columns* of C_k, while the text
    says row i is what frame i receives; ``product="rows"`` (default) follows the text
    (frame i gets sum_j C[i, j] x_j, a convex combination), ``product="paper"`` the printed
    formula.

    Input: x (B, N, K, D) with N = ``num_frames`` (Psi's size is fixed). Output: same shape.
    Raises:
        ValueError: N differs from ``num_frames``.
    """

    def __init__(self, dim: int, num_frames: int, sigma: float = 1.0, phi_scale: str = "sqrt_d", product: str = "rows"):
        super().__init__()
        if phi_scale not in ("sqrt_d", "none"):
            raise ConfigError(f"model.enhance_phi_scale must be sqrt_d or none, got {phi_scale!r}")
        if product not in ("rows", "paper"):
            raise ConfigError(f"model.enhance_product must be rows or paper, got {product!r}")
        self.num_frames, self.product = num_frames, product
        self.scale = 1.0 / math.sqrt(dim) if phi_scale == "sqrt_d" else 1.0
        idx = torch.arange(num_frames, dtype=torch.float32)
        self.register_buffer("decay", torch.exp(-(idx[:, None] - idx[None, :]).abs() / sigma), persistent=False)
        self.W = nn.Parameter(torch.ones(num_frames, num_frames))
        self.b = nn.Parameter(torch.zeros(num_frames))
        self.fcn = nn.Linear(dim, dim)
        nn.init.zeros_(self.fcn.weight)
        nn.init.zeros_(self.fcn.bias)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, K, D) -> C (B, K, N, N), rows summing to 1."""
        B, N = x.shape[:2]
        if N != self.num_frames:
            raise ValueError(f"STAN enhancement was built for N = {self.num_frames} frames per clip, got {N}; "
                             "set model.args.num_frames to the sampling seq_len")
        X = x.permute(0, 2, 1, 3)  # (B, K, N, D): rows are frames
        phi = X @ X.transpose(-1, -2) * self.scale
        psi = self.W * self.decay + self.b[None, :]
        return (phi + psi).softmax(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        C = self.weights(x)
        X = x.permute(0, 2, 1, 3)
        mixed = C @ X if self.product == "rows" else C.transpose(-1, -2) @ X
        return x + self.fcn(mixed).permute(0, 2, 1, 3)


class STAN(nn.Module):
    """The spatiotemporal attention network (see the module doc).

    Args:
        backbone, pretrained, last_stride: the frame CNN (:mod:`vidreid.models.backbones`);
            ``last_stride=2`` gives the paper's 8x4 grid at 256x128 for ResNet-50.
        num_parts: K spatial attention models (6 in the paper; Table 2 varies it).
        attn_dim: d of the attention models (256).
        num_frames: N frames per clip (6), the size of the enhancement's Psi.
        spatial: ``attention`` (Eqs. 1-3) or ``avg`` (every part is the plain cell average:
            Table 1's Baseline, and the first training stage).
        enhance: ``sop`` (:class:`TemporalEnhancement`) or ``none`` (E is the identity).
        enhance_sigma, enhance_phi_scale, enhance_product: see :class:`TemporalEnhancement`.
        temporal: ``attention`` (Eqs. 11-13), ``avg`` or ``max`` per part (Table 1).
        temporal_norm: ``softmax`` over frames (default; the text of Sec. 3.4 says softmax) or
            ``ratio`` (Eq. 12 as printed, e_{n,k} / sum_j e_{j,k}, which is unbounded when the
            responses sum to about zero).
        embed_dim: output dimension of the last FC layer (128).
        embed_bn: batch-normalise the FC output before the L2 normalisation (default True). The
            paper says only "FC to 128, L2-normalised"; without BN the 128-d outputs of all
            clips share one large common direction, the OIM logits stay nearly uniform and our
            CPU run barely learned (OIM loss near log C, 5.6 rank-1 against 19.1 with the BN;
            docs/RESULTS.md, config ``stan/cpu_prid2011_no_embed_bn``); the open-reid OIM
            models the field's code builds on put a BatchNorm1d at this point.

    Input: clip float (B, N, 3, H, W). Output: :class:`ModelOutput` with ``embedding`` and
    ``features`` the L2-normalised (B, embed_dim) vector; ``aux``: ``diversity_q``,
    ``diversity_q_plain`` (scalars), ``spatial_attention`` (B, N, K, h, w),
    ``temporal_attention`` (B, N, K) (uniform for avg, one-hot-like for max: the share of each
    frame in the per-dimension max), ``parts`` (B, K, D).
    """

    frame_decomposable = False

    def __init__(self, backbone: str = "resnet50", pretrained: str | None = None, last_stride: int = 2,
                 num_parts: int = 6, attn_dim: int = 256, num_frames: int = 6, spatial: str = "attention",
                 enhance: str = "sop", enhance_sigma: float = 1.0, enhance_phi_scale: str = "sqrt_d",
                 enhance_product: str = "rows", temporal: str = "attention", temporal_norm: str = "softmax",
                 embed_dim: int = 128, embed_bn: bool = True):
        super().__init__()
        if enhance not in ("sop", "none"):
            raise ConfigError(f"model.enhance must be sop or none, got {enhance!r}")
        if temporal_norm not in ("softmax", "ratio"):
            raise ConfigError(f"model.temporal_norm must be softmax or ratio, got {temporal_norm!r}")
        if num_parts < 1:
            raise ConfigError(f"model.num_parts must be >= 1, got {num_parts}")
        self.backbone = build_backbone(backbone, pretrained, last_stride)
        D = self.backbone.out_dim
        self.input_norm = backbone_norm(backbone)
        self.num_parts, self.num_frames, self.temporal_norm = num_parts, num_frames, temporal_norm
        self.spatial, self.temporal = spatial, temporal  # validated in forward: stages may switch them
        self.attention = SpatialAttention(D, num_parts, attn_dim)
        self.enhance = TemporalEnhancement(D, num_frames, enhance_sigma, enhance_phi_scale, enhance_product) \
            if enhance == "sop" else None
        self.temporal_w = nn.Parameter(torch.zeros(num_parts, D))
        self.temporal_b = nn.Parameter(torch.zeros(num_parts))
        self.fc = nn.Linear(num_parts * D, embed_dim)
        self.fc_bn = nn.BatchNorm1d(embed_dim) if embed_bn else None
        self._check_modes()

    def _check_modes(self) -> None:
        if self.spatial not in SPATIAL:
            raise ConfigError(f"model.spatial must be one of {list(SPATIAL)}, got {self.spatial!r}")
        if self.temporal not in TEMPORAL:
            raise ConfigError(f"model.temporal must be one of {list(TEMPORAL)}, got {self.temporal!r}")

    def pretrained_parameters(self):
        return self.backbone.parameters()

    def temporal_weights(self, xh: torch.Tensor) -> torch.Tensor:
        """Eqs. 11-12: (B, N, K, D) enhanced part features -> (B, N, K) weights summing to 1 over N."""
        e = torch.einsum("bnkd,kd->bnk", xh, self.temporal_w) + self.temporal_b
        if self.temporal_norm == "softmax":
            return e.softmax(dim=1)
        return e / e.sum(dim=1, keepdim=True)

    def forward(self, clip: torch.Tensor, **batch) -> ModelOutput:
        if clip.dim() != 5:
            raise ValueError(f"expected a clip batch (B, T, C, H, W), got shape {tuple(clip.shape)}")
        self._check_modes()
        B, N = clip.shape[:2]
        fmap = self.backbone(clip.flatten(0, 1))  # (B*N, D, h, w)
        h, w = fmap.shape[-2:]
        cells = fmap.flatten(2).transpose(1, 2)  # (B*N, L, D)
        K = self.num_parts
        if self.spatial == "attention":
            x, s = self.attention(cells)
        else:
            s = cells.new_full((cells.shape[0], K, h * w), 1.0 / (h * w))
            x = cells.mean(1, keepdim=True).expand(-1, K, -1)
        aux = {"diversity_q": diversity_q(s, True).mean(), "diversity_q_plain": diversity_q(s, False).mean(),
               "spatial_attention": s.view(B, N, K, h, w)}
        x = x.reshape(B, N, K, -1)
        xh = self.enhance(x) if self.enhance is not None else x
        if self.temporal == "attention":
            t = self.temporal_weights(xh)
            parts = (t.unsqueeze(-1) * xh).sum(1)
        elif self.temporal == "avg":
            t = xh.new_full((B, N, K), 1.0 / N)
            parts = xh.mean(1)
        else:
            parts, arg = xh.max(1)
            t = F.one_hot(arg, N).to(xh.dtype).mean(2).permute(0, 2, 1)
        aux["temporal_attention"], aux["parts"] = t, parts
        z = self.fc(parts.flatten(1))
        if self.fc_bn is not None:
            z = self.fc_bn(z)
        emb = F.normalize(z, dim=1)
        return ModelOutput(embedding=emb, features=emb, aux=aux)


@register_model("stan")
def stan(num_classes: int = 0, backbone: str = "resnet50", pretrained: str | None = None, last_stride: int = 2,
         num_parts: int = 6, attn_dim: int = 256, num_frames: int = 6, spatial: str = "attention",
         enhance: str = "sop", enhance_sigma: float = 1.0, enhance_phi_scale: str = "sqrt_d",
         enhance_product: str = "rows", temporal: str = "attention", temporal_norm: str = "softmax",
         embed_dim: int = 128, embed_bn: bool = True) -> STAN:
    """STAN (Li et al., CVPR 2018); see :class:`STAN`. Identities are learned through the OIM
    loss's lookup table, so ``num_classes`` is not used by the model."""
    return STAN(backbone, pretrained, last_stride, num_parts, attn_dim, num_frames, spatial, enhance, enhance_sigma,
                enhance_phi_scale, enhance_product, temporal, temporal_norm, embed_dim, embed_bn)
