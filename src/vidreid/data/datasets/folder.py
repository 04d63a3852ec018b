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

from ..tracklet import Tracklet
from .base import QueryGalleryDataset

PID = re.compile(r"\d+")
TRK = re.compile(r"c(?P<cam>\d+)(_.*)?")
FRAME = re.compile(r"(?:.*?[^\d])?(?P<frame>\d+)\.(?:jpg|jpeg|png|bmp|JPG|JPEG|PNG|BMP)")


class FolderDataset(QueryGalleryDataset):
    name = "folder"
    PID, TRK, FRAME = PID, TRK, FRAME
    pid_what = "<pid> folders (integers)"
    trk_what = "tracklet folders named c<camid> or c<camid>_<name>"
    frame_what = "image frames whose names end in a frame number"
    optional_train = True

    def _tracklet(self, subset, pdir, tdir, frames) -> Tracklet:
        cam = int(TRK.fullmatch(tdir.name).group("cam"))
        return Tracklet(tuple(f[1] for f in frames), int(pdir.name), cam, f"{subset}/{pdir.name}/{tdir.name}")
