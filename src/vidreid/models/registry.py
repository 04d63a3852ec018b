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


def matches_prefix(name: str, prefixes) -> bool:
    """Whether a parameter or module name is one of ``prefixes`` or lies below one of them."""
    return any(name == pre or name.startswith(pre + ".") for pre in prefixes)


def train_mode(model: nn.Module, frozen=(), pretrained_bn_eval: bool = False) -> nn.Module:
    """``model.train()`` with some modules kept in eval mode (their BatchNorm running statistics
    fixed and used):

    - every module named in ``frozen`` or below it (a stage's ``freeze`` prefixes);
    - with ``pretrained_bn_eval`` (``train.freeze_bn_stats``), every BatchNorm layer whose
      parameters are among ``model.pretrained_parameters()`` (the ImageNet / re-ID-pretrained
      backbone): its statistics stay those of the real images it was trained on, while its
      affine weights still learn. Fine-tuning on a small or synthetic set otherwise replaces those
      statistics with the new set's, which moves the features on real footage even at a zero
      learning rate (measured for ``vidreid adapt``: docs/RESULTS.md).

    Returns:
        the model.
    """
    model.train()
    frozen = tuple(frozen)
    if frozen:
        for n, m in model.named_modules():
            if matches_prefix(n, frozen):
                m.eval()
    if pretrained_bn_eval and hasattr(model, "pretrained_parameters"):
        pre = {id(p) for p in model.pretrained_parameters()}
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None and id(m.weight) in pre:
                m.eval()
    return model
