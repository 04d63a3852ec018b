"""Identity and metric losses."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


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
