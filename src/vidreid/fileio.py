"""Every file vidreid writes is written whole or not at all: to a temporary file in the target's
folder, flushed and fsynced, then renamed over the target (``os.replace`` is atomic on POSIX
and Windows). A full disk or a kill mid-write leaves the previous file intact and no partial
one; the temporary file is removed on failure.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import VidReIDError


class WriteError(VidReIDError):
    """A file could not be written (disk full, permissions, an encoder refusing the data); the
    message names the path. The previous content of the path, if any, is intact."""


def default_mode() -> int:
    """The permission bits a newly created file gets from ``open()``: 0o666 less the umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it is fsynced and renamed to
    ``path``; on an exception it is removed and the exception propagates."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    os.chmod(tmp, default_mode())  # mkstemp makes 0600; the result gets the mode a plain open() would
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically.

    Raises:
        WriteError: the write failed (e.g. no space left); names the path.
    """
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as e:
        raise WriteError(f"cannot write {path}: {e.strerror or e}") from e
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically. Raises :class:`WriteError`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj, indent: int = 1) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically. Raises :class:`WriteError`."""
    return atomic_write_text(path, json.dumps(obj, indent=indent))


def write_image(path: str | Path, img, params: list[int] | None = None) -> Path:
    """``cv2.imwrite`` atomically, with its result checked (OpenCV returns False rather than
    raising when it cannot write).

    Raises:
        WriteError: the encoder or the disk refused; names the path.
    """
    import cv2

    try:
        with atomic_path(path) as tmp:
            try:
                ok = cv2.imwrite(str(tmp), img, params or [])
            except cv2.error as e:
                raise OSError(f"OpenCV: {str(e).strip().splitlines()[-1]}") from None
            if not ok:
                raise OSError(f"OpenCV could not encode or write {Path(path).suffix} data")
    except OSError as e:
        raise WriteError(f"cannot write image {path}: {e.strerror or e}") from e
    return Path(path)


def save_figure(fig, path: str | Path, **kw) -> Path:
    """``fig.savefig`` atomically (format from the path's suffix). Raises :class:`WriteError`."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kw)
    except OSError as e:
        raise WriteError(f"cannot write figure {path}: {e.strerror or e}") from e
    return path
