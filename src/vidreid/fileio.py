"""Every file vidreid writes is written whole or not at all: to a temporary file in the target's
folder, flushed and fsynced, then renamed over the target (``os.replace`` is atomic on POSIX
and Windows). A full disk or a kill mid-write leaves the previous file intact and no partial
one; the temporary file is removed on failure.

Images and videos go through bytes, never through OpenCV's own file functions: OpenCV crashes
(segmentation fault) on a path that is not valid UTF-8 (a name holding a byte such as ``\xfe``,
which Python carries as a surrogate escape). :func:`read_image` decodes ``np.fromfile``'s bytes,
:func:`write_image` encodes in memory and writes atomically, :func:`open_video` hands OpenCV an
ASCII link to such a path.
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


def refuse_existing(paths, overwrite: bool, what: str = "") -> None:
    """The one rule for outputs the user names (``--out``): an existing file is replaced only
    with ``--overwrite``; an existing folder where a file is expected never is.

    Raises:
        ConfigError: a path exists (without ``overwrite``), or is a folder; names it.
    """
    from .errors import ConfigError

    for p in [paths] if isinstance(paths, (str, Path)) else paths:
        p = Path(p)
        if p.is_dir():
            raise ConfigError(f"{what or 'output'} {p} is a folder; give a file path")
        if p.exists() and not overwrite:
            raise ConfigError(f"{what or 'output'} {p} already exists; pass --overwrite to replace it or choose another path")


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


def encode_image(img, suffix: str, params: list[int] | None = None) -> bytes:
    """The bytes of ``img`` (uint8 BGR (H, W, 3) or gray (H, W)) in the format of ``suffix``
    (``.jpg``, ``.png`` ...), encoded in memory by OpenCV.

    Raises:
        OSError: the encoder refused (unknown format, bad array).
    """
    import cv2

    try:
        ok, buf = cv2.imencode(suffix or ".png", img, params or [])
    except cv2.error as e:
        raise OSError(f"OpenCV: {str(e).strip().splitlines()[-1]}") from None
    if not ok:
        raise OSError(f"OpenCV could not encode {suffix} data")
    return buf.tobytes()


def write_image(path: str | Path, img, params: list[int] | None = None) -> Path:
    """Encode ``img`` in memory (:func:`encode_image`, format from the suffix) and write the bytes
    atomically; safe for any path Python can name.

    Raises:
        WriteError: the encoder or the disk refused; names the path.
    """
    try:
        data = encode_image(img, Path(path).suffix, params)
    except OSError as e:
        raise WriteError(f"cannot write image {path}: {e.strerror or e}") from e
    return atomic_write_bytes(path, data)


def read_image(path: str | Path, flags: int | None = None):
    """Decode the image at ``path`` (``np.fromfile`` + ``cv2.imdecode``, any path); ``flags``
    default ``cv2.IMREAD_COLOR`` (uint8 BGR (H, W, 3)).

    Returns:
        the image, or None when the file is missing, empty or not a decodable image.
    """
    import cv2
    import numpy as np

    try:
        data = np.fromfile(os.fspath(path), np.uint8)
    except OSError:
        return None
    if not len(data):
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR if flags is None else flags)


@contextmanager
def open_video(path: str | Path):
    """A ``cv2.VideoCapture`` of ``path``, released on exit. A path that is not valid UTF-8 is
    opened through a symbolic link with an ASCII name in a temporary folder (OpenCV would crash
    on it)."""
    import cv2

    path = os.fspath(path)
    tmpdir = None
    try:
        try:
            path.encode("utf-8")
            target = path
        except UnicodeEncodeError:
            tmpdir = tempfile.mkdtemp(prefix="vidreid_video_")
            target = os.path.join(tmpdir, "video" + "".join(c for c in Path(path).suffix if c.isascii()))
            os.symlink(os.path.abspath(path), target)
        cap = cv2.VideoCapture(target)
        try:
            yield cap
        finally:
            cap.release()
    finally:
        if tmpdir is not None:
            import shutil

            shutil.rmtree(tmpdir, ignore_errors=True)


def save_figure(fig, path: str | Path, **kw) -> Path:
    """``fig.savefig`` atomically (format from the path's suffix). Raises :class:`WriteError`."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kw)
    except OSError as e:
        raise WriteError(f"cannot write figure {path}: {e.strerror or e}") from e
    return path
