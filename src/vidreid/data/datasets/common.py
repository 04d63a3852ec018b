"""Helpers shared by the dataset loaders: validated directory listings and frame ordering."""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import DatasetError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
_LAST_INT = re.compile(r"(\d+)(?!.*\d)")


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a directory, else raise DatasetError naming it and ``what``."""
    if not path.is_dir():
        raise DatasetError(f"missing directory {path}: expected {what}")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"missing file {path}: expected {what}")
    return path


def sorted_subdirs(path: Path, pattern: re.Pattern[str], what: str) -> list[Path]:
    """Subdirectories of ``path`` sorted by name; every entry must match ``pattern``.

    Raises:
        DatasetError: an entry does not match (names the entry and the expected pattern).
    """
    require_dir(path, what)
    out = []
    for p in sorted(path.iterdir()):
        if p.name.startswith("."):
            continue
        if not p.is_dir() or not pattern.fullmatch(p.name):
            raise DatasetError(f"unexpected entry {p}: expected {what} (a directory matching {pattern.pattern})")
        out.append(p)
    return out


def frame_number(name: str, pattern: re.Pattern[str] | None = None) -> int:
    """The frame number of a frame file name: group ``frame`` of ``pattern`` if given, else the
    last run of digits in the stem."""
    if pattern is not None:
        m = pattern.fullmatch(name)
        if m is None:
            raise ValueError(name)
        return int(m.group("frame"))
    m = _LAST_INT.search(Path(name).stem)
    if m is None:
        raise ValueError(name)
    return int(m.group(1))


def list_frames(folder: Path, root: Path, pattern: re.Pattern[str], what: str) -> list[tuple[int, str, re.Match]]:
    """Image files of a tracklet folder, ordered by frame number (not by listing order).

    Returns a list of ``(frame_number, path relative to root, match)``.

    Raises:
        DatasetError: the folder is empty, holds a file whose name does not match ``pattern``
            (which must have a ``frame`` group), or two files share a frame number.
    """
    items = []
    for p in folder.iterdir():
        if p.name.startswith(".") or p.suffix.lower() not in IMAGE_EXTS:
            if p.is_file() and p.suffix.lower() in (".txt", ".json", ".md"):
                continue
            raise DatasetError(f"unexpected entry {p}: expected {what}")
        m = pattern.fullmatch(p.name)
        if m is None:
            raise DatasetError(f"malformed frame name {p}: expected {what} (pattern {pattern.pattern})")
        items.append((int(m.group("frame")), p.relative_to(root).as_posix(), m))
    if not items:
        raise DatasetError(f"empty tracklet folder {folder}: expected {what}")
    items.sort(key=lambda x: x[0])
    for a, b in zip(items, items[1:]):
        if a[0] == b[0]:
            raise DatasetError(f"duplicate frame number {a[0]} in {folder}: {a[1]} and {b[1]}")
    return items
