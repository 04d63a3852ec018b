"""DukeMTMC-VideoReID (Wu et al., CVPR 2018).

Layout::

    root/train/0001/0001/0001C6F0099X30823.jpg ...
    root/query/PPPP/TTTT/...
    root/gallery/PPPP/TTTT/...

Frame names come in two styles, both accepted: ``0001C6F0099X30823.jpg`` and
``0001_C6_F0099_X30823.jpg`` (pid, camera, frame number, a global frame index). The camid of a
tracklet is read from its frame names; all frames of a tracklet must share pid (equal to the
folder's) and camera. Published numbers: train 702 ids / 2,196 tracklets; query 702; gallery
2,636 (1,110 ids including 408 distractors).
"""

from __future__ import annotations

import re

from ...errors import DatasetError
from ..tracklet import Tracklet
from .base import QueryGalleryDataset

FRAME = re.compile(r"(?P<pid>\d{4})_?C(?P<cam>\d)_?F(?P<frame>\d{4})_?X(?P<x>\d+)\.jpg")
PID = re.compile(r"\d{4}")
TRK = re.compile(r"\d{4}")


class DukeMTMCVideoReID(QueryGalleryDataset):
    name = "dukev"
    PID, TRK, FRAME = PID, TRK, FRAME
    pid_what = "a 4-digit pid folder"
    trk_what = "a 4-digit tracklet folder"
    frame_what = "Duke frames PPPPCcFffffXxxxxx.jpg or PPPP_Cc_Fffff_Xxxxxx.jpg"

    def _tracklet(self, subset, pdir, tdir, frames) -> Tracklet:
        pids = {int(m.group("pid")) for _, _, m in frames}
        cams = {int(m.group("cam")) for _, _, m in frames}
        if pids != {int(pdir.name)}:
            raise DatasetError(f"{tdir}: frame names carry pid(s) {sorted(pids)}, folder says {pdir.name}")
        if len(cams) != 1:
            raise DatasetError(f"{tdir}: frames from several cameras {sorted(cams)}; a tracklet has one")
        return Tracklet(tuple(f[1] for f in frames), int(pdir.name), cams.pop(), f"{subset}/{pdir.name}/{tdir.name}")
