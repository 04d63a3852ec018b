"""CUHK03 (Li, Zhao, Xiao, Wang, "DeepReID", CVPR 2014) under the new 767/700 protocol (Zhong,
Zheng, Cao, Li, "Re-ranking Person Re-identification with k-reciprocal Encoding", CVPR 2017).

Layout: the images of the release, extracted from ``cuhk-03.mat`` under the names the protocol
files list (``<campair>_<pid:03d>_<camera>_<image:02d>.png``, as torchreid writes them), and the
protocol files of Zhong et al.::

    root/images_labeled/1_001_1_01.png ...                # hand-drawn boxes ("labeled")
    root/images_detected/...                              # DPM boxes ("detected")
    root/cuhk03_new_protocol_config_labeled.mat           # keys filelist, labels, camId,
    root/cuhk03_new_protocol_config_detected.mat          #   train_idx, query_idx, gallery_idx (1-based)

Datasets ``cuhk03_labeled`` and ``cuhk03_detected``: training 767 identities (7,368 / 7,365
images), query 1,400 and gallery 5,328 / 5,332 images of 700 identities. Extracting the images
from ``cuhk-03.mat`` (MATLAB v7.3, HDF5) is not part of vidreid; torchreid's CUHK03 loader does
it once and leaves exactly this layout.
"""

from __future__ import annotations

import numpy as np
import scipy.io

from ...errors import DatasetError
from ..tracklet import ReIDSplit
from .base import VideoReIDDataset
from .common import require_file
from .imagebase import image


class CUHK03(VideoReIDDataset):
    name = "cuhk03_labeled"
    variant = "labeled"

    def __init__(self, root, verify_files: bool = True, min_seq_len: int = 0):
        super().__init__(root, verify_files, min_seq_len)
        mat_path = require_file(self.root / f"cuhk03_new_protocol_config_{self.variant}.mat",
                                "the CUHK03 new-protocol file of Zhong et al. (filelist, labels, train_idx, query_idx, gallery_idx)")
        try:
            m = scipy.io.loadmat(str(mat_path))
            files = [str(np.asarray(x).ravel()[0]) for x in np.asarray(m["filelist"]).ravel()]
            labels = np.asarray(m["labels"]).ravel().astype(int)
            idx = {k: np.asarray(m[f"{k}_idx"]).ravel().astype(int) - 1 for k in ("train", "query", "gallery")}
        except (KeyError, ValueError, IndexError, TypeError, OSError) as e:
            raise DatasetError(f"{mat_path}: not a CUHK03 protocol file ({type(e).__name__}: {e})") from None
        if len(files) != len(labels) or any((v < 0).any() or (v >= len(files)).any() for v in idx.values()):
            raise DatasetError(f"{mat_path}: filelist, labels and the 1-based indices do not agree")
        folder = f"images_{self.variant}"
        self.subsets = {}
        for k, rows in idx.items():
            items = []
            for i in rows:
                rel = f"{folder}/{files[i]}"
                if self.verify_files and not (self.root / rel).is_file():
                    raise DatasetError(f"{mat_path}: names {files[i]}, but {self.root / rel} does not exist")
                try:
                    cam = int(files[i].split("_")[2])
                except (IndexError, ValueError):
                    raise DatasetError(f"{mat_path}: {files[i]!r} is not <campair>_<pid>_<camera>_<image>.png") from None
                items.append(image(rel, int(labels[i]), cam))
            self.subsets[k] = items

    def split(self, split_id: int = 0) -> ReIDSplit:
        self._check_split_id(split_id)
        return ReIDSplit(self.name, self.root, list(self.subsets["train"]), list(self.subsets["query"]),
                         list(self.subsets["gallery"]), 0, 1, {})


class CUHK03Detected(CUHK03):
    name = "cuhk03_detected"
    variant = "detected"
