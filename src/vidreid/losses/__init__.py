"""Losses composed from config.

A training recipe lists its loss terms, e.g.::

    loss:
      - {name: cross_entropy, input: logits, weight: 1.0, label_smoothing: 0.1}
      - {name: triplet, input: features, weight: 1.0, margin: 0.3, distance: euclidean}

``input`` names the :class:`~vidreid.models.ModelOutput` field (or aux key) the term reads;
``target`` (optional) names the aux entry holding its targets when they are not the batch's
identity labels (e.g. the labels of pairs a siamese model formed); an aux entry that is
already a scalar (a regulariser a model computes) uses ``name: value``.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn as nn

from ..errors import ConfigError
from ..models.output import ModelOutput
from .metric import (BatchHardTripletLoss, CrossEntropyLoss, OIMLoss, PartTripletLoss, PyramidRankingLoss, SiameseHingeLoss,
                     TrackletAssociationLoss, pairwise_distance)


class ScalarTerm(nn.Module):
    """A regulariser the model already computed as a scalar in ``aux`` (e.g. a diversity term)."""

    def forward(self, value: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return value


LOSSES: dict[str, type[nn.Module]] = {
    "cross_entropy": CrossEntropyLoss,
    "triplet": BatchHardTripletLoss,
    "value": ScalarTerm,
    "pyramid_ranking": PyramidRankingLoss,
    "siamese_hinge": SiameseHingeLoss,
    "oim": OIMLoss,
    "part_triplet": PartTripletLoss,
    "tracklet_association": TrackletAssociationLoss,
}
DEFAULT_INPUT = {"oim": "features", "tracklet_association": "features", "part_triplet": "refined_maps", "cross_entropy": "logits", "triplet": "features", "pyramid_ranking": "frame_maps"}


class CompositeLoss(nn.Module):
    """Weighted sum of loss terms; ``forward(out, labels)`` returns (total, {term name: value}).

    Args:
        spec: list of dicts with ``name``, optional ``input``, ``weight`` (default 1.0),
            ``key`` (the name it is logged under; default ``name`` or ``name@input``), and the
            term's own arguments.
        num_classes: training identities, passed to terms that take a ``num_classes``
            argument (e.g. OIM's lookup table) unless the spec sets it.
        class_meta: (num_classes, 3) per class (camera, first frame, last frame), passed to
            terms that take it (``tracklet_association`` under ``train.unsupervised``).
    Raises:
        ConfigError: unknown loss name or argument (lists the valid ones), empty spec.
    """

    def __init__(self, spec: list[dict], num_classes: int | None = None, class_meta=None):
        super().__init__()
        if not spec:
            raise ConfigError("loss: at least one loss term is required")
        self.terms = nn.ModuleList()
        self.meta: list[tuple[str, str, float, str | None]] = []
        for i, item in enumerate(spec):
            item = dict(item)
            name = item.pop("name", None)
            if name not in LOSSES:
                raise ConfigError(f"loss[{i}].name: unknown {name!r}; valid: {sorted(LOSSES)}")
            inp = item.pop("input", DEFAULT_INPUT.get(name))
            if inp is None:
                raise ConfigError(f"loss[{i}] ({name}): 'input' is required")
            weight = float(item.pop("weight", 1.0))
            target = item.pop("target", None)
            key = item.pop("key", name if name != "value" else inp)
            valid = [p for p in inspect.signature(LOSSES[name]).parameters]
            bad = sorted(set(item) - set(valid))
            if bad:
                raise ConfigError(f"loss[{i}] ({name}): unknown key(s) {bad}; valid: {['name', 'input', 'target', 'weight', 'key'] + valid}")
            if "num_classes" in valid and "num_classes" not in item:
                if num_classes is None:
                    raise ConfigError(f"loss[{i}] ({name}): needs num_classes (the number of training identities)")
                item["num_classes"] = num_classes
            if "class_meta" in valid and "class_meta" not in item:
                item["class_meta"] = class_meta
            try:
                self.terms.append(LOSSES[name](**item))
            except ValueError as e:
                raise ConfigError(f"loss[{i}] ({name}): {e}") from None
            self.meta.append((key, inp, weight, target))

    def carry_state_from(self, other: "CompositeLoss") -> None:
        """Copy the state (buffers, parameters) of every term of ``other`` that has the same key
        and class as one of ours, e.g. an OIM lookup table from one training stage to the next."""
        theirs = {key: term for term, (key, *_rest) in zip(other.terms, other.meta)}
        for term, (key, *_rest) in zip(self.terms, self.meta):
            t = theirs.get(key)
            if t is not None and type(t) is type(term):
                term.load_state_dict(t.state_dict())

    def set_gather(self, gather, world_size: int) -> None:
        """Distributed training (:mod:`vidreid.engine.distributed`): ``gather`` all-gathers a
        tensor over the ranks, gradient flowing to the local part. Terms that mine the batch
        (``batch_mining = True``: batch-hard triplets) then see the global batch, their value
        multiplied by ``world_size`` so that DDP's gradient average equals one process's
        gradient; terms with state updated from the batch (OIM's lookup table) get the
        gathered batch too. (Passed in rather than imported: the losses stay below the engine.)"""
        self._gather, self._world = gather, int(world_size)
        for term in self.terms:
            if hasattr(term, "set_gather"):
                term.set_gather(gather)

    def forward(self, out: ModelOutput, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted sum of the terms, and each term's unweighted value as a detached 0-d
        tensor on the loss's device (not a Python float: reading it would wait for the device
        at every step; the trainer reads them every ``train.log_every`` steps)."""
        total = None
        parts: dict[str, torch.Tensor] = {}
        gather, world = getattr(self, "_gather", None), getattr(self, "_world", 1)
        for term, (key, inp, w, target) in zip(self.terms, self.meta):
            x, y = out.get(inp), labels if target is None else out.get(target)
            if gather is not None and world > 1 and getattr(term, "batch_mining", False):
                v = term(gather(x), gather(y))
                parts[key] = v.detach()
                v = v * world
            else:
                v = term(x, y)
                parts[key] = v.detach()
            total = w * v if total is None else total + w * v
        return total, parts


__all__ = ["CompositeLoss", "CrossEntropyLoss", "OIMLoss", "PartTripletLoss", "BatchHardTripletLoss", "PyramidRankingLoss", "SiameseHingeLoss",
           "pairwise_distance", "LOSSES"]
