"""iLIDS-VID (Wang et al., ECCV 2014) with its 10 official train/test splits.

Layout (``root`` is the folder that holds both)::

    root/i-LIDS-VID/sequences/cam1/person001/cam1_person001_00317.png ...
    root/i-LIDS-VID/sequences/cam2/person001/cam2_person001_00001.png ...
    root/train-test people splits/train_test_splits_ilidsvid.mat   # key ls_set, 10 x 300

300 people, one tracklet per camera each. Each row of ``ls_set`` is one split of 1-based
indices into the cam1 person folders sorted by name: the first 150 entries are the test people,
the last 150 the training people (Wang et al. 2014; as the public loaders read it).
Protocol: query = cam1 tracklets of the test people, gallery = their cam2 tracklets.
"""

from __future__ import annotations

import re

import numpy as np
import scipy.io

from ...errors import DatasetError
from ..tracklet import ReIDSplit, Tracklet
from .base import VideoReIDDataset
from .common import list_frames, require_file, sorted_subdirs

PERSON = re.compile(r"person(?P<pid>\d{3})")
CAMS = ("cam1", "cam2")


class ILIDSVID(VideoReIDDataset):
    name = "ilidsvid"
    num_splits = 10

    def __init__(self, root, verify_files: bool = True, min_seq_len: int = 0):
        super().__init__(root, verify_files, min_seq_len)
        seq = self.root / "i-LIDS-VID" / "sequences"
        self.people: dict[str, dict[str, Tracklet]] = {}
        for ci, cam in enumerate(CAMS):
            self.people[cam] = {}
            for person in sorted_subdirs(seq / cam, PERSON, f"iLIDS-VID person folders personXXX under {cam}"):
                pat = re.compile(rf"{cam}_{person.name}_(?P<frame>\d{{5}})\.png")
                frames = list_frames(person, self.root, pat, f"iLIDS-VID frames {cam}_{person.name}_NNNNN.png")
                pid = int(PERSON.fullmatch(person.name).group("pid"))
                self.people[cam][person.name] = Tracklet(tuple(f[1] for f in frames), pid, ci + 1, f"{cam}/{person.name}")
        if set(self.people["cam1"]) != set(self.people["cam2"]):
            diff = sorted(set(self.people["cam1"]) ^ set(self.people["cam2"]))
            raise DatasetError(f"{seq}: cam1 and cam2 must hold the same people; differ in {diff[:5]}")
        path = self.root / "train-test people splits" / "train_test_splits_ilidsvid.mat"
        require_file(path, "the official iLIDS-VID splits .mat (key ls_set, 10 x 300)")
        try:
            mat = scipy.io.loadmat(str(path))
        except Exception as e:  # scipy raises several types for corrupt files
            raise DatasetError(f"cannot read {path}: {e}") from e
        if "ls_set" not in mat:
            raise DatasetError(f"{path}: key 'ls_set' missing (keys: {sorted(k for k in mat if not k.startswith('__'))})")
        ls = np.asarray(mat["ls_set"]).astype(np.int64)
        self.persons = sorted(self.people["cam1"])
        n = len(self.persons)
        if ls.ndim != 2 or ls.shape[1] != n or ls.shape[1] % 2:
            raise DatasetError(f"{path}: ls_set has shape {ls.shape}, expected (num_splits, {n}) for {n} people")
        if ls.min() < 1 or ls.max() > n:
            raise DatasetError(f"{path}: ls_set indices must lie in 1..{n}, found {ls.min()}..{ls.max()}")
        self.ls_set = ls
        self.num_splits = ls.shape[0]

    def split(self, split_id: int = 0) -> ReIDSplit:
        self._check_split_id(split_id)
        row = self.ls_set[split_id] - 1
        half = len(row) // 2
        test = [self.persons[i] for i in row[:half]]
        train = [self.persons[i] for i in row[half:]]
        excluded: dict[str, int] = {}
        c1, c2 = self.people["cam1"], self.people["cam2"]
        tr = self._drop_short([c1[p] for p in sorted(train)] + [c2[p] for p in sorted(train)], excluded, "train")
        q = self._drop_short([c1[p] for p in sorted(test)], excluded, "query")
        g = self._drop_short([c2[p] for p in sorted(test)], excluded, "gallery")
        return ReIDSplit(self.name, self.root, tr, q, g, split_id, self.num_splits, excluded)
