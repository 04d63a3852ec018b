"""The one place vidreid imports torchvision and timm (both only for architectures: no ops).

A CPU build of torch beside PyPI's torchvision wheel (built against the CUDA torch) is a common
install: it is what this project's Makefile gets on a machine whose local wheel folder holds a
``torch ...+cpu`` file, because PyPI has no CPU torchvision for Linux. torchvision then cannot
load its C++ ops (``_C.so`` needs ``libtorch_cuda.so``), which it tolerates everywhere except
two ``register_fake`` calls for ``torchvision::nms`` / ``qnms`` that run unconditionally at
import and raise ``RuntimeError: operator torchvision::nms does not exist`` (a known upstream
problem: pytorch/vision PR #9086, pytorch/pytorch#157648). timm imports torchvision, so it fails
too.

:func:`torchvision` imports it normally; only when that exact error occurs does it declare the
two operators' schemas (no kernels) so the import completes. vidreid uses torchvision's and
timm's model definitions only, which are pure PyTorch; calling ``torchvision.ops.nms`` in such
an install still fails, with torchvision's own message. With a torchvision whose ops load, this
module changes nothing.
"""

from __future__ import annotations

import sys
from types import ModuleType

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_declared: list = []  # keeps the torch.library.Library object alive (its definitions die with it)


def torchvision() -> ModuleType:
    """Import and return ``torchvision`` (see the module docstring for the CPU-torch case).

    Raises:
        ImportError: torchvision is not installed.
        RuntimeError: any other import failure, as torchvision raises it.
    """
    try:
        import torchvision as tv

        return tv
    except RuntimeError as err:
        if "torchvision::" not in str(err) or "does not exist" not in str(err) or _declared:
            raise
    import torch

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for op, schema in _SCHEMAS.items():
        if not _op_exists(op):
            lib.define(schema)
    _declared.append(lib)
    import torchvision as tv

    return tv


def _op_exists(op: str) -> bool:
    import torch

    try:
        getattr(torch.ops.torchvision, op)
        return True
    except (AttributeError, RuntimeError):
        return False


def timm() -> ModuleType:
    """Import and return ``timm`` after :func:`torchvision` (timm imports torchvision)."""
    torchvision()
    import timm as tm

    return tm
