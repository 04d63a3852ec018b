"""Shared parts of the image re-ID loaders: an image is a tracklet of one frame, so the samplers,
trainer, evaluator and ``data.sources`` joint training work on image datasets unchanged."""

from __future__ import annotations

import re
from pathlib import Path

from ...errors import DatasetError
from ..tracklet import ReIDSplit, Tracklet
from .base import VideoReIDDataset
from .common import require_dir


def image(rel: str, pid: int, camid: int) -> Tracklet:
    """A one-frame tracklet named by its path."""
    return Tracklet((rel,), pid, camid, rel)


class QueryGalleryImages(VideoReIDDataset):
    """An image dataset with one fixed split in three folders (Market-1501, DukeMTMC-reID):
    ``root/<train>/``, ``root/<query>/``, ``root/<gallery>/`` of images named by :attr:`NAME`
    (groups ``pid``, ``cam``). Images of pid -1 are junk (the official evaluation ignores them):
    left out of every subset and counted under ``excluded``; pid 0 are distractors, kept in the
    gallery as identities no query has."""

    FOLDERS = ("bounding_box_train", "query", "bounding_box_test")
    SUBFOLDER: str | None = None  # the folder the release unpacks to, when root is above it
    NAME: re.Pattern[str]
    name_what = "images named <pid>_c<cam>..."

    def __init__(self, root, verify_files: bool = True, min_seq_len: int = 0):
        super().__init__(root, verify_files, min_seq_len)
        base = self._base(Path(root))
        self.base = base
        self.subsets: dict[str, list[Tracklet]] = {}
        self.junk: dict[str, int] = {}
        for key, folder in zip(("train", "query", "gallery"), self.FOLDERS):
            d = require_dir(base / folder, f"{self.name} {folder}/ of {self.name_what}")
            items, junk = [], 0
            for p in sorted(d.iterdir()):
                if p.suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp"):
                    continue
                m = self.NAME.fullmatch(p.name)
                if m is None:
                    raise DatasetError(f"{p}: not a {self.name} image name ({self.name_what})")
                pid, cam = int(m.group("pid")), int(m.group("cam"))
                if pid == -1:
                    junk += 1
                    continue
                items.append(image(p.relative_to(self.root).as_posix(), pid, cam))
            self.subsets[key] = items
            if junk:
                self.junk[key] = junk

    def _base(self, root: Path) -> Path:
        """``root`` itself, or the release's own folder below it (:attr:`SUBFOLDER`)."""
        if self.SUBFOLDER is None:
            return root
        sub = root / self.SUBFOLDER
        return sub if sub.is_dir() and not (root / self.FOLDERS[0]).is_dir() else root

    def split(self, split_id: int = 0) -> ReIDSplit:
        self._check_split_id(split_id)
        excluded = {f"junk_images_{k}": v for k, v in self.junk.items()}
        return ReIDSplit(self.name, self.root, list(self.subsets["train"]), list(self.subsets["query"]),
                         list(self.subsets["gallery"]), 0, 1, excluded)
