"""Models: ``create_model(name, num_classes, **kwargs)``; every model returns a ModelOutput."""

from . import astpn, baseline, rru_stim, stan, star, strf, zoo  # noqa: F401  (registers)
from .output import ModelOutput
from .registry import create_model, list_models, register_model

__all__ = ["ModelOutput", "create_model", "list_models", "register_model"]
