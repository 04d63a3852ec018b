"""Which device a run, a test or the API uses (``train.device``, ``--device``, ``device=``)."""

from __future__ import annotations

import re

from .errors import ConfigError

_NAME = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def pick_device(name: str):
    """The ``torch.device`` for ``name``: ``auto`` (a CUDA GPU when there is one, else the CPU),
    ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises:
        ConfigError: an unknown name, or a CUDA device this machine does not have (names it).
    """
    import torch

    name = str(name).strip()
    if not _NAME.fullmatch(name):
        raise ConfigError(f"device {name!r}: expected auto, cpu, cuda, cuda:N or mps")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: no CUDA GPU is available here (use cpu or auto)")
        if ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps': Apple's Metal backend is not available here")
    return torch.device(name)
