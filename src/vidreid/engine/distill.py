"""Learning without forgetting by feature distillation (Li and Hoiem, "Learning without
Forgetting", TPAMI 2018; Hinton et al. 2015): a frozen copy of the model as training starts
(its ImageNet or ``train.init_from`` weights: what it knows of real images) is the teacher; each
step adds ``weight * mean_b || n(s_b) - n(t_b) ||^2`` between the L2-normalised output
``input`` (a :class:`~vidreid.models.ModelOutput` name, default ``features``) of the student and
of the teacher on the same clips. Fine-tuning on synthetic people then keeps the features close
to the pretrained ones wherever the synthetic task does not pull them away.

For the baseline ``features`` is the pooled backbone feature (before the BN-neck), so the term
constrains the backbone only. The teacher runs without gradients and in training mode, so its
BatchNorm layers use the batch's statistics as the student's do (the two then agree exactly at the
first step; in eval mode the running statistics would make them differ from the start); its
weights travel in the checkpoint, so a resumed run distils towards the same teacher.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..models.registry import train_mode


class FeatureDistillation:
    """Args:
        model: the model at the start of training (copied, frozen).
        freeze_bn_stats: run the teacher as the student runs with ``train.freeze_bn_stats``.
        weight: the term's weight (> 0).
        input: the output name to distil.
    """

    def __init__(self, model: nn.Module, weight: float, input: str = "features", freeze_bn_stats: bool = False):
        # a frozen pretrained anchor (models/baseline.py) never changes and the teacher never runs it
        # (it runs in training mode): shared, not copied, so it is neither held nor saved twice
        anchor = getattr(model, "anchor", None)
        self.teacher = copy.deepcopy(model, memo={id(anchor): anchor} if anchor is not None else None)
        self.freeze_bn_stats = bool(freeze_bn_stats)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.weight, self.input = float(weight), input

    def to(self, device) -> "FeatureDistillation":
        self.teacher.to(device)
        return self

    def term(self, out, clip: torch.Tensor, **extra) -> torch.Tensor:
        """The distillation term for a batch the student produced ``out`` on.

        Raises:
            ConfigError: the model has no output named ``input``.
        """
        try:
            s = out.get(self.input)
        except (KeyError, AttributeError):
            s = None
        if s is None:
            raise ConfigError(f"train.distill_input={self.input!r}: the model has no such output")
        # the student's mode: batch statistics in BatchNorm, or the pretrained layers' running
        # statistics with train.freeze_bn_stats (module doc)
        train_mode(self.teacher, pretrained_bn_eval=self.freeze_bn_stats)
        for m in self.teacher.modules():  # training-only augmentation (MixStyle): the target stays clean
            if getattr(m, "augments", False):
                m.eval()
        with torch.no_grad():
            t = self.teacher(clip, **{k: v for k, v in extra.items() if k == "flow"}).get(self.input)
        s, t = F.normalize(s.flatten(1).float(), dim=1), F.normalize(t.flatten(1).float(), dim=1)
        return self.weight * (s - t).pow(2).sum(1).mean()

    def state_dict(self) -> dict:
        return {"teacher": self.teacher.state_dict(), "weight": self.weight, "input": self.input}

    def load_state_dict(self, st: dict) -> None:
        self.teacher.load_state_dict(st["teacher"])
