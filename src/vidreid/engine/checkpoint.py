"""Checkpoints: written atomically (a temporary file in the same folder, fsynced, then renamed,
so a crash or a full disk mid-write never leaves a truncated checkpoint), read with
``torch.load(weights_only=True)`` so a file can hold tensors and plain containers only: a
crafted or foreign pickle that would run code is refused, never executed.

Everything a checkpoint holds is therefore a tensor or a plain type (dict, list, tuple, str,
int, float, bool, None); the RNG states are stored that way (:func:`rng_state`).
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import VidReIDError
from ..fileio import WriteError, default_mode

REQUIRED_KEYS = ("model", "config")


class CheckpointError(VidReIDError):
    """A checkpoint is missing, truncated, not a vidreid checkpoint, or holds objects that a
    safe load refuses; the message names the file."""


class CheckpointWriteError(WriteError, CheckpointError):
    """A checkpoint could not be written (a full disk, permissions); the previous one is intact.
    A failed write: exit status 1 on the command line."""


def check_model_state(state, path) -> None:
    """Raise :class:`CheckpointError` unless ``state`` is a non-empty mapping of names to tensors."""
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"checkpoint {path}: its model state is {'empty' if isinstance(state, dict) else type(state).__name__}, "
                              "expected the tensors of a model")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint {path}: model state entries that are not named tensors: {bad[:4]}")


def load_model_state(model: torch.nn.Module, state: dict, path, what: str = "checkpoint") -> None:
    """``model.load_state_dict(state)`` strictly, or a :class:`CheckpointError` naming the missing,
    unexpected and mis-shaped keys (a checkpoint of another model or configuration)."""
    check_model_state(state, path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shape:
        raise CheckpointError(f"{what} {path} does not fit the model {type(model).__name__}: "
                              f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}, "
                              f"unexpected {unexpected[:4]}{' ...' if len(unexpected) > 4 else ''}, "
                              f"shapes {shape[:3]}")
    model.load_state_dict(state)


def rng_state() -> dict:
    """The torch, NumPy, Python and CUDA generator states as tensors and plain types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def nonfinite_tensors(state: dict) -> list[str]:
    """Names of the floating-point tensors of a (nested) state dict holding NaN or inf."""
    bad: list[str] = []

    def walk(obj, name):
        if isinstance(obj, torch.Tensor):
            if obj.is_floating_point() and not bool(torch.isfinite(obj).all()):
                bad.append(name)
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{name}.{k}" if name else str(k))
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{name}[{i}]")

    walk(state, "")
    return bad


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` with torch.save atomically (temporary file + os.replace).

    Raises:
        CheckpointWriteError: the write failed (e.g. disk full; torch reports it as a RuntimeError
            of its zip writer); the previous checkpoint is intact and the temporary file removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, default_mode())  # mkstemp makes 0600; keep the mode a plain open() would give
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        text = str(e)
        if isinstance(e, RuntimeError) and not ("PytorchStreamWriter" in text or "inline_container" in text
                                                or "write failed" in text):
            raise  # not a failed write (e.g. an object that cannot be saved): a bug, shown as such
        why = getattr(e, "strerror", None) or text.strip().splitlines()[-1][:200]
        raise CheckpointWriteError(f"cannot write checkpoint {path}: {why}; the previous one is intact") from e
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`, safely (``weights_only=True``).

    Raises:
        CheckpointError: no such file; a truncated or corrupt file; a file whose pickle holds
            anything but tensors and plain containers (a crafted file is refused, its code
            never runs); a file that is not a vidreid checkpoint (no model or config).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        st = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "Weights only load failed" in str(e):
            hint = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln or "GLOBAL" in ln), first)
            raise CheckpointError(f"checkpoint {path} holds objects a safe load refuses ({hint[:200]}); "
                                  "it was not written by vidreid or was tampered with, and was not loaded") from None
        raise CheckpointError(f"checkpoint {path} is corrupt: {first[:200]}") from None
    except Exception as e:  # torch reports a non-zip, text or cut file in many ways (KeyError, EOFError, ...)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt, or not a checkpoint "
                              f"({type(e).__name__}: {msg[:200]})") from None
    if not isinstance(st, dict) or any(k not in st for k in REQUIRED_KEYS):
        have = sorted(map(str, st))[:8] if isinstance(st, dict) else type(st).__name__
        raise CheckpointError(f"{path} is not a vidreid checkpoint: expected the keys {list(REQUIRED_KEYS)}, "
                              f"found {have}")
    check_model_state(st["model"], path)
    if not isinstance(st["config"], dict):
        raise CheckpointError(f"{path} is not a vidreid checkpoint: its config is a {type(st['config']).__name__}")
    return st
