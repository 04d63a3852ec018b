"""Model registry: ``register_model`` decorates a builder; ``create_model(name, **kwargs)``
builds it, checking kwargs against the builder's signature (an unknown key is an error that
lists the valid ones)."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch.nn as nn

from ..errors import ConfigError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    def deco(fn):
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        return fn
    return deco


def list_models() -> list[str]:
    return sorted(_MODELS)


def model_args(name: str) -> list[str]:
    return [p for p in inspect.signature(_MODELS[name]).parameters if p != "num_classes"]


def create_model(name: str, num_classes: int = 0, **kwargs) -> nn.Module:
    """Build model ``name`` with ``num_classes`` identity classes (0: no classifier).

    Raises:
        ConfigError: unknown model, or a keyword the builder does not take.
    """
    if name not in _MODELS:
        raise ConfigError(f"model.name: unknown {name!r}; valid: {list_models()}")
    valid = model_args(name)
    bad = sorted(set(kwargs) - set(valid))
    if bad:
        raise ConfigError(f"model {name!r}: unknown key(s) {bad}; valid: {valid}")
    return _MODELS[name](num_classes=num_classes, **kwargs)


def to_channels_last(model: nn.Module) -> nn.Module:
    """Put the 4-D (2D convolution) weights of ``model`` in channels_last memory format, leaving
    3-D convolutions (5-D weights, which channels_last cannot hold) as they are. In place."""
    import torch

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.to(memory_format=torch.channels_last)
    return model
