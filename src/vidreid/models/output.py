"""The one object every model returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ModelOutput:
    """What a model returns; losses read fields from it by name (``features``, ``logits``, or
    a key of ``aux``), so the trainer never needs to know the model.

    Attributes:
        embedding: (B, D) float, the retrieval representation.
        features: (B, D') float, the representation metric losses act on (e.g. before the
            BN-neck); None if the model has none.
        logits: (B, num_classes) identity logits in training; None at test or without a classifier.
        aux: extra named outputs: auxiliary logits, part features, attention maps,
            regulariser terms (scalars), ...
    """

    embedding: torch.Tensor
    features: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    aux: dict[str, torch.Tensor] = field(default_factory=dict)

    def get(self, name: str) -> torch.Tensor:
        """A field or aux entry by name.

        Raises:
            KeyError: nothing of that name (lists what there is).
        """
        if name in ("embedding", "features", "logits"):
            v = getattr(self, name)
            if v is not None:
                return v
        elif name in self.aux:
            return self.aux[name]
        have = [k for k in ("embedding", "features", "logits") if getattr(self, k) is not None] + sorted(self.aux)
        raise KeyError(f"model output has no {name!r}; it has {have}")
