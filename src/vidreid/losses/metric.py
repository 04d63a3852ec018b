"""Identity and metric losses."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.tracklet import camera_time_relations


def pairwise_distance(x: torch.Tensor, y: torch.Tensor | None = None, metric: str = "euclidean") -> torch.Tensor:
    """Distances between rows: (N, D), (M, D) -> (N, M).

    ``euclidean``: ||x - y||_2 (clamped at 1e-12 before the square root so gradients stay
    finite); ``sqeuclidean``: its square; ``cosine``: 1 - cos(x, y).
    """
    y = x if y is None else y
    if metric == "cosine":
        return 1.0 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).t()
    d2 = (x * x).sum(1, keepdim=True) + (y * y).sum(1)[None] - 2.0 * x @ y.t()
    d2 = d2.clamp_min(0.0)
    if metric == "sqeuclidean":
        return d2
    if metric == "euclidean":
        return d2.clamp_min(1e-12).sqrt()
    raise ValueError(f"metric must be euclidean, sqeuclidean or cosine, got {metric!r}")


class CrossEntropyLoss(nn.Module):
    """Identity cross-entropy with optional label smoothing (Szegedy et al., 2016).

    Args:
        label_smoothing: epsilon in [0, 1).
    Input: logits (B, C), labels int64 (B,). Output: scalar.
    """

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)


class BatchHardTripletLoss(nn.Module):
    """Batch-hard triplet loss (Hermans, Beyer, Leibe, "In Defense of the Triplet Loss", 2017):
    for each anchor, the farthest positive and the nearest negative in the batch,
    ``mean(relu(d(a, p) - d(a, n) + margin))``, or the soft-margin ``softplus`` variant when
    ``margin`` is None.

    Args:
        margin: the margin (None: soft margin).
        distance: ``euclidean`` or ``cosine``.
    Input: features (B, D), labels (B,). Anchors without a positive or a negative are left out
    of the mean (a batch with none gives 0).
    """

    batch_mining = True  # mines the batch: sees the global batch in distributed training

    def __init__(self, margin: float | None = 0.3, distance: str = "euclidean"):
        super().__init__()
        if distance not in ("euclidean", "cosine"):
            raise ValueError(f"triplet distance must be euclidean or cosine, got {distance!r}")
        self.margin, self.distance = margin, distance

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        d = pairwise_distance(features, metric=self.distance)
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        pos_mask, neg_mask = same & ~eye, ~same
        valid = pos_mask.any(1) & neg_mask.any(1)
        if not valid.any():
            return features.sum() * 0.0
        hardest_pos = d.masked_fill(~pos_mask, float("-inf")).amax(1)
        hardest_neg = d.masked_fill(~neg_mask, float("inf")).amin(1)
        gap = (hardest_pos - hardest_neg)[valid]
        if self.margin is None:
            return F.softplus(gap).mean()
        return F.relu(gap + self.margin).mean()


class PyramidRankingLoss(nn.Module):
    """STAR's pyramid ranking regulariser R_pr (Wu et al., BMVC 2019, Eqs. 9-10).

    The frame feature maps f (B, T, C, H, W) are cut into ``levels`` = (1, 2, 4) horizontal
    stripes (a Z = 3 level spatial pyramid); each stripe is average-pooled over its area, then
    reduced over time by temporal average plus temporal max pooling (F_Ta + F_Tm); a batch-hard
    triplet term with margin alpha_1 (Euclidean distance) is taken per stripe, averaged over the
    stripes of a level, over the levels and over the batch. No parameters.

    Reading of Eq. 10: F_Ta and F_Tm pool over time, so the sum over the L frames of
    F_Ta(f_z) + F_Tm(f_z) adds the same vector L times; D is homogeneous, so Eq. 10's 1/L cancels
    that factor exactly and each distance is D(F_Ta + F_Tm of the anchor, of the counterpart),
    which is what this computes (Eq. 10 as printed, not a rescaling). The hard positive and
    negative are mined per stripe (the paper says "hard positive and negative counterparts in a
    mini-batch" of each stripe's vectors; mining them once per video is the other reading, not
    implemented). When H is not divisible by a level, stripes come from adaptive average
    pooling (rows shared at the borders).
    """

    batch_mining = True  # mines the batch: sees the global batch in distributed training

    def __init__(self, levels: tuple[int, ...] | list[int] = (1, 2, 4), margin: float = 0.4):
        super().__init__()
        self.levels = tuple(int(g) for g in levels)
        self.triplet = BatchHardTripletLoss(margin, "euclidean")

    def stripe_vectors(self, f: torch.Tensor, g: int) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, C, g) stripe vectors (temporal average + max)."""
        B, T, C = f.shape[:3]
        s = F.adaptive_avg_pool2d(f.flatten(0, 1), (g, 1)).view(B, T, C, g)
        return s.mean(1) + s.amax(1)

    def forward(self, frame_maps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        total = frame_maps.new_zeros(())
        for g in self.levels:
            v = self.stripe_vectors(frame_maps, g)
            total = total + sum(self.triplet(v[:, :, z], labels) for z in range(g)) / g
        return total / len(self.levels)


class SiameseHingeLoss(nn.Module):
    """The contrastive hinge loss of ASTPN (Xu et al., ICCV 2017, Eq. 6) on squared distances:
    ``d`` for a pair of the same person, ``max(0, m - d)`` otherwise, averaged over pairs.

    Input: squared distances (P,), and a target (P,) that is 1 for same-person pairs, 0 else.
    """

    def __init__(self, margin: float = 3.0):
        super().__init__()
        self.margin = float(margin)

    def forward(self, sqdist: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        same = same.to(sqdist.dtype)
        return (same * sqdist + (1 - same) * F.relu(self.margin - sqdist)).mean()


class OIMLoss(nn.Module):
    """Online Instance Matching loss (Xiao, Li, Wang, Lin, Wang, "Joint Detection and
    Identification Feature Learning for Person Search", CVPR 2017, Sec. 3.2), as used by STAN
    (Li et al., CVPR 2018, Sec. 3.5), for labelled identities (no unlabelled circular queue:
    re-ID training sets are fully labelled).

    A lookup table V (num_classes, D) holds one L2-normalised feature per training identity.
    For an L2-normalised feature x of identity y the logits are ``V x / temperature`` and the
    loss is their cross-entropy with y. In training, after the logits are taken, the table is
    updated sample by sample in batch order: ``v_y <- momentum * v_y + (1 - momentum) * x``,
    then ``v_y <- v_y / ||v_y||`` (the paper's gamma is ``momentum``). The table is a buffer,
    so it is saved with the loss state in checkpoints; it gets no gradient.

    Args:
        num_classes: training identities (rows of V).
        feat_dim: D.
        temperature: tau of the OIM paper (0.1 there: logits in [-10, 10]).
        momentum: gamma of the table update (0.5 in the OIM paper).
        normalize: L2-normalise the input first (it is already normalised for STAN).
    Input: features float (B, D), labels int64 (B,) in [0, num_classes). Output: scalar.

    Raises:
        ValueError: features of the wrong width, or a label outside the table.
    """

    def __init__(self, num_classes: int, feat_dim: int = 128, temperature: float = 0.1, momentum: float = 0.5,
                 normalize: bool = True):
        super().__init__()
        if num_classes < 1 or feat_dim < 1:
            raise ValueError(f"OIM needs num_classes >= 1 and feat_dim >= 1, got {num_classes}, {feat_dim}")
        self.temperature, self.momentum, self.normalize = float(temperature), float(momentum), normalize
        self.register_buffer("lut", torch.zeros(num_classes, feat_dim))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) normalised features -> (B, num_classes) scaled cosine logits."""
        return x @ self.lut.t().clone() / self.temperature  # clone: the update below must not touch saved tensors

    @torch.no_grad()
    def fill_from(self, features: torch.Tensor, labels: torch.Tensor) -> int:
        """Set each identity's row to the L2-normalised mean of its L2-normalised ``features``
        (float (N, D), labels int64 (N,)); rows of identities without a sample keep their value.
        Used to start the table from a trained model (``train.lut_init``) instead of zeros.

        Returns:
            the number of rows set.
        Raises:
            ValueError: features of the wrong width, or a label outside the table.
        """
        if features.dim() != 2 or features.shape[1] != self.lut.shape[1]:
            raise ValueError(f"OIM: features must be (N, {self.lut.shape[1]}), got {tuple(features.shape)}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.lut.shape[0]):
            raise ValueError(f"OIM: labels must lie in [0, {self.lut.shape[0]})")
        return fill_rows(self.lut, features, labels)

    def set_gather(self, gather) -> None:
        """Distributed training: update the table with the global batch (gathered in rank order,
        the one-process batch order), so every rank keeps the same table."""
        self._gather = gather

    @torch.no_grad()
    def update(self, x: torch.Tensor, labels: torch.Tensor) -> None:
        """Momentum update of the rows of the labels, one sample at a time in batch order."""
        gather = getattr(self, "_gather", None)
        if gather is not None:
            x, labels = gather(x), gather(labels)
        momentum_update(self.lut, x, labels, self.momentum)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if features.dim() != 2 or features.shape[1] != self.lut.shape[1]:
            raise ValueError(f"OIM: features must be (B, {self.lut.shape[1]}), got {tuple(features.shape)}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.lut.shape[0]):
            raise ValueError(f"OIM: labels must lie in [0, {self.lut.shape[0]}), got range "
                             f"[{int(labels.min())}, {int(labels.max())}]")
        x = F.normalize(features, dim=1) if self.normalize else features
        loss = F.cross_entropy(self.logits(x), labels)
        if self.training:
            self.update(x, labels)
        return loss


class PartTripletLoss(nn.Module):
    """The part-level ranking constraint L_p of RRU + STIM (Liu et al., AAAI 2019, Eqs. 9-10):
    the refined maps S (B, T, C, H, W) are cut into ``strips`` horizontal strips (default: every
    one of the H rows, as in the paper); each strip is averaged over time and width (Eq. 9) and a
    batch-hard triplet loss with margin m is taken per strip; the strips' losses are averaged.
    No parameters. When H is not divisible by ``strips``, strips come from adaptive average
    pooling.

    Input: maps (B, T, C, H, W), labels (B,). Output: scalar.
    """

    batch_mining = True  # mines the batch: sees the global batch in distributed training

    def __init__(self, margin: float = 0.4, distance: str = "euclidean", strips: int | None = None):
        super().__init__()
        self.strips = strips
        self.triplet = BatchHardTripletLoss(margin, distance)

    def strip_vectors(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, C, R) part vectors p^r (Eq. 9)."""
        v = maps.mean(dim=(1, 4))  # (B, C, H): over time and width
        if self.strips is not None and self.strips != v.shape[-1]:
            v = F.adaptive_avg_pool1d(v, self.strips)
        return v

    def forward(self, maps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        v = self.strip_vectors(maps)
        return sum(self.triplet(v[:, :, r], labels) for r in range(v.shape[-1])) / v.shape[-1]


@torch.no_grad()
def fill_rows(lut: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> int:
    """Set row ``y`` of a lookup table to the normalised mean of the normalised features labelled
    ``y``, for every label present (OIM's and the tracklet memory's start); returns how many rows."""
    x = F.normalize(features.to(lut), dim=1)
    labels = labels.to(lut.device)
    sums = torch.zeros_like(lut).index_add_(0, labels, x)
    rows = torch.unique(labels)
    lut[rows] = F.normalize(sums[rows], dim=1)
    return int(rows.numel())


@torch.no_grad()
def momentum_update(lut: torch.Tensor, x: torch.Tensor, labels: torch.Tensor, momentum: float) -> None:
    """OIM's table update (Xiao et al. 2017, Sec. 3.1), in place, one sample at a time in batch
    order: ``v_y <- momentum * v_y + (1 - momentum) * x``, then ``v_y <- v_y / ||v_y||``.
    lut: (C, D); x: (B, D); labels: (B,) int in [0, C)."""
    for xi, y in zip(x.detach(), labels.tolist()):
        v = momentum * lut[y] + (1.0 - momentum) * xi
        lut[y] = v / v.norm().clamp_min(1e-12)


class TrackletAssociationLoss(nn.Module):
    """Label-free learning from tracklets (Li, Zhu, Gong, "Unsupervised Person Re-identification
    by Deep Learning Tracklet Association", ECCV 2018, TAUDL; the soft selective association of
    UTAL, TPAMI 2019, simplified): every training tracklet is its own class (``train.unsupervised``).

    A memory M (num_tracklets, D) holds one L2-normalised feature per tracklet, updated like
    OIM's table (``momentum``). For a clip of tracklet i, camera c:

    * per-camera tracklet discrimination (TAUDL Sec. 3.1): cross-entropy of ``x M^T / temperature``
      restricted to the tracklets of camera c that overlap i in time (two people at once; when the
      frame ranges are unknown, every tracklet of camera c, TAUDL's assumption that a person is one
      tracklet per camera), with i as the label; a tracklet currently associated with i (below) is
      left out of the negatives. Tracklets of one camera that do not overlap in time may be one
      person re-entering (real footage, e.g. PETS 2009), so they are not negatives;
    * cross-camera tracklet association (TAUDL Sec. 3.2): j = the nearest memory row to ``m_i``
      among the tracklets that may be the same person (another camera, or the same camera without
      overlap in time); when i and j are each other's nearest such tracklet and their cosine is
      at least ``min_similarity``, ``association_weight * (1 - cos(x, m_j))`` pulls x to j.

    Tracklets of one camera that overlap in time are never associated (they are two people).
    Memory rows start at zero and are filled from the features (``fill_from`` when the trainer
    starts from a model, as OIM's ``train.lut_init``).

    Args:
        num_classes: training tracklets. class_meta: (num_classes, 3) int (camera, first frame,
            last frame; -1 when unknown), given by the trainer.
        temperature, momentum: as :class:`OIMLoss`. association_weight, min_similarity: above.
        discrimination_weight: the weight of the discrimination term (0 turns it off).
    Input: features (B, D), labels (B,) tracklet indices. Output: scalar.
    """

    def __init__(self, num_classes: int, class_meta=None, feat_dim: int = 1280, temperature: float = 0.1,
                 momentum: float = 0.5, association_weight: float = 1.0, min_similarity: float = 0.5,
                 discrimination_weight: float = 1.0):
        super().__init__()
        self.discrimination_weight = float(discrimination_weight)
        if class_meta is None:
            raise ValueError("tracklet_association needs train.unsupervised=true (each tracklet its own class)")
        self.temperature, self.momentum = float(temperature), float(momentum)
        self.association_weight, self.min_similarity = float(association_weight), float(min_similarity)
        meta = torch.as_tensor(class_meta, dtype=torch.int64)
        self.register_buffer("lut", torch.zeros(num_classes, feat_dim))
        self.register_buffer("camera", meta[:, 0].clone(), persistent=False)
        m = meta.numpy()  # one row per tracklet: camera, first frame, last frame (-1 unknown)
        same, known, overlap = (torch.from_numpy(x) for x in camera_time_relations(m[:, 0], m[:, 1], m[:, 2]))
        # may two tracklets be one person: another camera, or one camera without overlap in time
        compatible = ~same | (known & ~overlap)
        compatible.fill_diagonal_(False)
        self.register_buffer("compatible", compatible, persistent=False)
        # certain negatives: one camera and overlapping in time (or, ranges unknown, one camera)
        self.register_buffer("negative", same & (overlap | ~known), persistent=False)

    @torch.no_grad()
    def fill_from(self, features: torch.Tensor, labels: torch.Tensor) -> int:
        """Set each tracklet's row to the normalised mean of its features (as OIM's)."""
        return fill_rows(self.lut, features, labels)

    @torch.no_grad()
    def _partners(self, labels: torch.Tensor) -> torch.Tensor:
        """(B,) the mutual nearest compatible tracklet of each label, -1 for none."""
        m = self.lut
        sim = m[labels] @ m.t()
        sim = sim.masked_fill(~self.compatible[labels], -2.0)
        best = sim.argmax(1)
        ok = sim.gather(1, best[:, None])[:, 0] >= self.min_similarity
        back = (m[best] @ m.t()).masked_fill(~self.compatible[best], -2.0).argmax(1)
        return torch.where(ok & (back == labels) & (m[labels].norm(dim=1) > 0), best, torch.full_like(best, -1))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if features.shape[1] != self.lut.shape[1]:
            raise ValueError(f"tracklet_association: feat_dim is {self.lut.shape[1]}, the features have {features.shape[1]}")
        x = F.normalize(features, dim=1)
        partner = self._partners(labels)
        logits = x @ self.lut.t().clone() / self.temperature
        keep = self.negative[labels].clone()
        has = partner >= 0
        keep[has, partner[has]] = False  # an associated tracklet is not a negative
        keep[torch.arange(len(labels)), labels] = True
        loss = self.discrimination_weight * F.cross_entropy(logits.masked_fill(~keep, float("-inf")), labels)
        if has.any():
            pull = 1.0 - (x[has] * self.lut[partner[has]]).sum(1)
            loss = loss + self.association_weight * pull.mean()
        if self.training:
            self.update(x, labels)
        return loss

    # the memory is kept as OIM keeps its table, across ranks too (OIMLoss.set_gather / update)
    set_gather = OIMLoss.set_gather
    update = OIMLoss.update
