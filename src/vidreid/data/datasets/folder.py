"""The user's own tracklets, in a documented folder layout.

Layout::

    root/train/<pid>/<tracklet>/<frame>.jpg      # optional (needed only to train)
    root/query/<pid>/<tracklet>/<frame>.jpg
    root/gallery/<pid>/<tracklet>/<frame>.jpg

* ``<pid>``: a non-negative integer (``0003``, ``17``). Unknown people in the gallery
  (distractors) are simply ids that no query has.
* ``<tracklet>``: ``c<camid>`` or ``c<camid>_<anything>`` (e.g. ``c2_t0015``); camid is an
  integer. The evaluation protocol excludes, for each query, the gallery tracklets with the
  same pid *and* camid, so give tracklets of one camera the same camid if same-camera matches
  should not count, or distinct camids (e.g. one per track) if they should.
* ``<frame>``: an image (.jpg, .jpeg, .png, .bmp) whose name ends in its frame number
  (``000123.jpg``, ``f_17.png``); frames are ordered by that number.
"""

from __future__ import annotations

import re

from ..tracklet import ReIDSplit, Tracklet
from .base import VideoReIDDataset
from .common import list_frames, sorted_subdirs

PID = re.compile(r"\d+")
TRK = re.compile(r"c(?P<cam>\d+)(_.*)?")
FRAME = re.compile(r"(?:.*?[^\d])?(?P<frame>\d+)\.(?:jpg|jpeg|png|bmp|JPG|JPEG|PNG|BMP)")


class FolderDataset(VideoReIDDataset):
    name = "folder"

    def __init__(self, root, verify_files: bool = True, min_seq_len: int = 0):
        super().__init__(root, verify_files, min_seq_len)
        self.subsets = {}
        for subset in ("train", "query", "gallery"):
            if subset == "train" and not (self.root / "train").exists():
                self.subsets[subset] = []
                continue
            self.subsets[subset] = self._load(subset)

    def _load(self, subset: str) -> list[Tracklet]:
        out = []
        for pdir in sorted_subdirs(self.root / subset, PID, f"{subset}/<pid> folders (integers)"):
            for tdir in sorted_subdirs(pdir, TRK, "tracklet folders named c<camid> or c<camid>_<name>"):
                frames = list_frames(tdir, self.root, FRAME, "image frames whose names end in a frame number")
                cam = int(TRK.fullmatch(tdir.name).group("cam"))
                out.append(Tracklet(tuple(f[1] for f in frames), int(pdir.name), cam, f"{subset}/{pdir.name}/{tdir.name}"))
        return out

    def split(self, split_id: int = 0) -> ReIDSplit:
        self._check_split_id(split_id)
        excluded: dict[str, int] = {}
        s = {k: self._drop_short(v, excluded, k) for k, v in self.subsets.items()}
        return ReIDSplit(self.name, self.root, s["train"], s["query"], s["gallery"], 0, 1, excluded)
