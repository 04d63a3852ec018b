"""Two-camera image datasets with random identity splits: VIPeR and CUHK01.

* VIPeR (Gray, Tao, "Viewpoint Invariant Pedestrian Recognition with an Ensemble of Localized
  Features", ECCV 2008): ``root/VIPeR/cam_a/*.bmp`` and ``cam_b/*.bmp`` (or ``root/cam_a``),
  632 identities, one image per camera, paired by the number that starts each file name
  (``000_45.bmp``). Standard protocol: 10 random splits into 316 training and 316 test
  identities; query camera A, gallery camera B; the mean over the splits.
* CUHK01 (Li, Zhao, Wang, "Human Reidentification with Transferred Metric Learning", ACCV 2012):
  ``root/campus/*.png`` (or ``root/*.png``), 971 identities, names ``<pid:04d><image:03d>.png``
  (images 1-2 camera A, 3-4 camera B). Protocol (torchreid's): 10 random splits into 485
  training and 486 test identities; query camera A, gallery camera B.

The splits are drawn with a fixed seed (``SPLIT_SEED``, NumPy's ``default_rng``), so they are
the same on every machine; a ``splits.json`` in ``root`` (a list of ``{"train": [ids], "test":
[ids]}`` with the identity numbers of the file names) replaces them.
"""

from __future__ import annotations

import json
import re

import numpy as np

from ...errors import DatasetError
from ..tracklet import ReIDSplit
from .base import VideoReIDDataset
from .imagebase import image

SPLIT_SEED = 0


class _PairSplits(VideoReIDDataset):
    num_splits = 10
    num_train: int

    def _make_splits(self, ids: list[int]) -> list[dict]:
        custom = self.root / "splits.json"
        if custom.is_file():
            try:
                splits = json.loads(custom.read_text())
                ok = isinstance(splits, list) and splits and all(
                    isinstance(s, dict) and all(isinstance(x, int) for k in ("train", "test") for x in s[k]) for s in splits)
            except (ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                raise DatasetError(f"{custom}: expected a list of {{'train': [ids], 'test': [ids]}} with integer ids")
            unknown = sorted({x for s in splits for x in s["train"] + s["test"]} - set(ids))
            if unknown:
                raise DatasetError(f"{custom}: identities {unknown[:5]} have no images")
            self.num_splits = len(splits)
            return splits
        rng = np.random.default_rng(SPLIT_SEED)
        out = []
        for _ in range(self.num_splits):
            order = rng.permutation(len(ids))
            out.append({"train": sorted(ids[i] for i in order[:self.num_train]),
                        "test": sorted(ids[i] for i in order[self.num_train:])})
        return out

    def split(self, split_id: int = 0) -> ReIDSplit:
        self._check_split_id(split_id)
        s = self.splits[split_id]
        train = [t for i in s["train"] for t in self.by_id[i]["a"] + self.by_id[i]["b"]]
        query = [t for i in s["test"] for t in self.by_id[i]["a"]]
        gallery = [t for i in s["test"] for t in self.by_id[i]["b"]]
        return ReIDSplit(self.name, self.root, train, query, gallery, split_id, self.num_splits, {})


class VIPeR(_PairSplits):
    name = "viper"
    num_train = 316

    def __init__(self, root, verify_files: bool = True, min_seq_len: int = 0):
        super().__init__(root, verify_files, min_seq_len)
        base = self.root / "VIPeR" if (self.root / "VIPeR" / "cam_a").is_dir() else self.root
        self.by_id: dict[int, dict[str, list]] = {}
        for cam, sub in ((1, "cam_a"), (2, "cam_b")):
            d = base / sub
            if not d.is_dir():
                raise DatasetError(f"{d}: expected VIPeR's cam_a/ and cam_b/ folders of .bmp images")
            for p in sorted(d.glob("*.bmp")):
                m = re.match(r"(\d+)_", p.name)
                if m is None:
                    raise DatasetError(f"{p}: a VIPeR image name starts with its number (000_45.bmp)")
                self.by_id.setdefault(int(m.group(1)), {"a": [], "b": []})["a" if cam == 1 else "b"].append(
                    image(p.relative_to(self.root).as_posix(), int(m.group(1)), cam))
        unpaired = sorted(i for i, v in self.by_id.items() if not v["a"] or not v["b"])
        if unpaired or not self.by_id:
            raise DatasetError(f"{base}: every identity needs an image in cam_a and cam_b; unpaired: {unpaired[:5]}"
                               if unpaired else f"{base}: no images")
        self.num_train = min(self.num_train, len(self.by_id) // 2)
        self.splits = self._make_splits(sorted(self.by_id))


class CUHK01(_PairSplits):
    name = "cuhk01"
    num_train = 485

    def __init__(self, root, verify_files: bool = True, min_seq_len: int = 0):
        super().__init__(root, verify_files, min_seq_len)
        base = self.root / "campus" if (self.root / "campus").is_dir() else self.root
        self.by_id = {}
        files = sorted(base.glob("*.png"))
        if not files:
            raise DatasetError(f"{base}: expected CUHK01's campus/ folder of <pid:04d><image:03d>.png images")
        for p in files:
            m = re.fullmatch(r"(\d{4})(\d{3})\.png", p.name)
            if m is None:
                raise DatasetError(f"{p}: a CUHK01 image is named <pid:04d><image:03d>.png")
            pid, k = int(m.group(1)), int(m.group(2))
            cam = 1 if k <= 2 else 2
            self.by_id.setdefault(pid, {"a": [], "b": []})["a" if cam == 1 else "b"].append(
                image(p.relative_to(self.root).as_posix(), pid, cam))
        self.num_train = min(self.num_train, len(self.by_id) // 2)
        self.splits = self._make_splits(sorted(self.by_id))
