"""A user's unlabelled tracklets as a training set: the folder ``vidreid tracklets`` writes
(``<camera>/<track>/<frame>.jpg`` with ``tracklets.csv``), or any folder
:func:`read_tracklet_dir` reads (below; ``vidreid embed`` / ``match`` read the same). Every tracklet is a training tracklet
(its camera the camera index, 1-based in sorted order of the camera names); there is no query or
gallery (test with ``test.extra``). Used by ``vidreid adapt`` (``train.unsupervised``: each
tracklet its own class, so the pids here are never read; a known pid column is kept)."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import DatasetError
from ..tracklet import ReIDSplit, Tracklet
from .base import VideoReIDDataset
from .common import IMAGE_EXTS, frame_number

MANIFEST = "tracklets.csv"
MANIFEST_COLUMNS = ("tracklet", "camera", "track_id", "pid", "frames", "first_frame", "last_frame")


def ordered_images(folder: Path, require_number: bool = False) -> list[tuple[int, Path]]:
    """``(frame number, path)`` of the images in ``folder`` (:data:`IMAGE_EXTS`), ordered by the
    number that ends each file name (:func:`~vidreid.data.datasets.common.frame_number`), then by
    name; a name without a number gets -1.

    Raises:
        DatasetError: ``require_number`` and a name without a number (an image sequence's frames
            must be numbered).
    """
    items = []
    for p in folder.iterdir():
        if not p.is_file() or p.suffix.lower() not in IMAGE_EXTS:
            continue
        try:
            n = frame_number(p.name)
        except ValueError:
            if require_number:
                raise DatasetError(f"{p}: an image-sequence frame's name must end in its frame number") from None
            n = -1
        items.append((n, p))
    return sorted(items, key=lambda x: (x[0], x[1].name))


def read_manifest(out: Path) -> list[dict]:
    """The rows of ``out/tracklets.csv`` as dicts of strings ([] when there is none), checked:
    integer ``track_id``, ``frames``, ``first_frame``, ``last_frame``, an integer or empty
    ``pid``, and a ``tracklet`` path inside ``out`` (relative, no ``..``).

    Raises:
        DatasetError: the file is not UTF-8, lacks one of :data:`MANIFEST_COLUMNS`, or a row
            breaks the rules above (names the file, the line and the column).
    """
    p = out / MANIFEST
    if not p.is_file():
        return []
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{p}: not UTF-8 text (byte {e.start})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = []
    for r in reader:
        line = reader.line_num
        if set(MANIFEST_COLUMNS) - set(r) or any(r[k] is None for k in MANIFEST_COLUMNS):
            raise DatasetError(f"{p}:{line}: expected columns {', '.join(MANIFEST_COLUMNS)}")
        for k in ("track_id", "frames", "first_frame", "last_frame") + (("pid",) if r["pid"].strip() else ()):
            try:
                int(r[k])
            except ValueError:
                raise DatasetError(f"{p}:{line}: column {k} must be an integer, got {r[k]!r}") from None
        rel = Path(r["tracklet"])
        if not r["tracklet"] or rel.is_absolute() or ".." in rel.parts:
            raise DatasetError(f"{p}:{line}: tracklet {r['tracklet']!r} must be a folder inside {out} "
                               "(a relative path without '..')")
        rows.append(r)
    return rows


@dataclass(frozen=True)
class TrackletRecord:
    """One tracklet folder found by :func:`read_tracklet_dir`: absolute frame paths in frame
    order, its name (path relative to the root), camera name, person id (-1 unknown) and frame
    range (-1 unknown)."""

    name: str
    frames: tuple[str, ...]
    camera: str
    pid: int = -1
    first_frame: int = -1
    last_frame: int = -1


def read_tracklet_dir(root: str | Path) -> list[TrackletRecord]:
    """The tracklets under ``root``: with a ``tracklets.csv`` (written by ``vidreid tracklets``)
    its rows, in order; otherwise every folder below ``root`` that holds images is a tracklet,
    sorted by path, its frames ordered by the number that ends each file name. The camera is
    then the ``<camid>`` of a ``c<camid>[_name]`` folder (the folder layout of
    :mod:`vidreid.data.datasets.folder`, whose integer ``<pid>`` parent gives the pid), else the
    first folder below ``root`` (``root/<camera>/<track>/``), else ``root``'s own name.

    Raises:
        DatasetError: ``root`` is missing or holds no tracklet; a manifest row names a folder
            without images.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"missing tracklet folder {root}")
    rows = read_manifest(root)
    out = []
    if rows:
        inside = root.resolve()
        for r in rows:
            d = root / r["tracklet"]
            if not d.resolve().is_relative_to(inside):  # e.g. a link out of the folder
                raise DatasetError(f"{root / MANIFEST}: tracklet {r['tracklet']} leads outside {root}")
            imgs = [p for _, p in ordered_images(d)] if d.is_dir() else []
            if not imgs:
                raise DatasetError(f"{root / MANIFEST}: tracklet {r['tracklet']}: no images in {d}")
            out.append(TrackletRecord(r["tracklet"], tuple(str(p.resolve()) for p in imgs), r["camera"],
                                      int(r["pid"]) if r["pid"].strip() else -1, int(r["first_frame"]), int(r["last_frame"])))
        return out
    trk = re.compile(r"c(?P<cam>\d+)(_.*)?")
    for d in sorted(p for p in [root, *root.rglob("*")] if p.is_dir()):
        imgs = [p for _, p in ordered_images(d)]
        if not imgs:
            continue
        rel = d.relative_to(root)
        m = trk.fullmatch(d.name)
        if m is not None and d != root:
            camera = m.group("cam")
            pid = int(d.parent.name) if d.parent != root and d.parent.name.isdigit() else -1
        else:
            camera, pid = (rel.parts[0] if len(rel.parts) > 1 else root.resolve().name), -1
        out.append(TrackletRecord(rel.as_posix() if rel.parts else root.name, tuple(str(p.resolve()) for p in imgs),
                                  camera, pid))
    if not out:
        raise DatasetError(f"{root}: no tracklet folders (folders holding {', '.join(IMAGE_EXTS)} images)")
    return out


class TrackletFolder(VideoReIDDataset):
    name = "tracklets"

    def __init__(self, root, verify_files: bool = True, min_seq_len: int = 0):
        super().__init__(root, verify_files, min_seq_len)
        recs = read_tracklet_dir(self.root)
        cams = {c: i + 1 for i, c in enumerate(sorted({r.camera for r in recs}))}
        base = self.root.resolve()
        self.train = [Tracklet(tuple(Path(f).relative_to(base).as_posix() if Path(f).is_relative_to(base) else f
                                     for f in r.frames), r.pid if r.pid >= 0 else 0, cams[r.camera], r.name)
                      for r in recs]

    def split(self, split_id: int = 0) -> ReIDSplit:
        self._check_split_id(split_id)
        excluded: dict[str, int] = {}
        return ReIDSplit(self.name, self.root, self._drop_short(self.train, excluded, "train"), [], [], 0, 1, excluded)
