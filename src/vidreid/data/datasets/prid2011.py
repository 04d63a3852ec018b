"""PRID-2011 (Hirzer et al., SCIA 2011), multi-shot part, with the 10 standard splits.

Layout (``root`` is the folder that holds both)::

    root/prid_2011/multi_shot/cam_a/person_0001/0001.png ...
    root/prid_2011/multi_shot/cam_b/person_0001/0001.png ...
    root/splits_prid2011.json      # [{"train": [...], "test": [...]}, ...] x 10

385 people are seen by camera A and 749 by camera B; ``person_0001``..``person_0200`` are the
same people in both cameras, while higher numbers are single-camera people (cam_a's
``person_0201`` is not cam_b's ``person_0201``). The standard
splits (from the CNN-RNN code of McLaughlin et al., CVPR 2016) use the 178 of those 200 whose
sequences are long enough, 89 train / 89 test. Protocol: query = cam_a tracklets of the test
people, gallery = cam_b tracklets of the test people; train = both cameras' tracklets of the
train people. People not in a split are counted in ``excluded``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ...errors import DatasetError
from ..tracklet import ReIDSplit, Tracklet
from .base import VideoReIDDataset
from .common import list_frames, require_file, sorted_subdirs

PERSON = re.compile(r"person_(?P<pid>\d{4})")
FRAME = re.compile(r"(?P<frame>\d{4})\.png")
CAMS = ("cam_a", "cam_b")
SHARED_MAX = 200  # person numbers 1..200 are seen by both cameras


class PRID2011(VideoReIDDataset):
    name = "prid2011"
    num_splits = 10

    def __init__(self, root, verify_files: bool = True, min_seq_len: int = 0, splits_file: str | Path | None = None):
        super().__init__(root, verify_files, min_seq_len)
        base = self.root / "prid_2011" / "multi_shot"
        self.people: dict[str, dict[str, Tracklet]] = {c: {} for c in CAMS}
        for ci, cam in enumerate(CAMS):
            for person in sorted_subdirs(base / cam, PERSON, f"PRID-2011 person folders person_XXXX under {cam}"):
                frames = list_frames(person, self.root, FRAME, "PRID-2011 frames NNNN.png")
                pid = int(PERSON.fullmatch(person.name).group("pid"))
                self.people[cam][person.name] = Tracklet(tuple(f[1] for f in frames), pid, ci + 1, f"{cam}/{person.name}")
        path = Path(splits_file) if splits_file else self.root / "splits_prid2011.json"
        require_file(path, "the PRID-2011 splits json (a list of 10 {'train': [...], 'test': [...]})")
        try:
            splits = json.loads(path.read_bytes().decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatasetError(f"malformed json {path}: {e}") from None
        if not isinstance(splits, list) or not splits:
            raise DatasetError(f"malformed splits {path}: expected a non-empty list of {{'train','test'}} objects")
        for i, s in enumerate(splits):
            if not isinstance(s, dict) or not {"train", "test"} <= set(s):
                raise DatasetError(f"malformed splits {path}: entry {i} lacks 'train' or 'test'")
            for key in ("train", "test"):
                bad = [x for x in s[key] if not (isinstance(x, str) and re.fullmatch(r"person_\d{4}", x))] \
                    if isinstance(s[key], list) else [s[key]]
                if bad:
                    raise DatasetError(f"malformed splits {path}: split {i} '{key}' must list folder names such as "
                                       f"'person_0001', got {bad[0]!r}")
            for name in list(s["train"]) + list(s["test"]):
                if int(name[-4:]) > SHARED_MAX:
                    raise DatasetError(f"{path}: split {i} names {name}, but only person_0001..person_0200 are seen by both cameras")
                for cam in CAMS:
                    if name not in self.people[cam]:
                        raise DatasetError(
                            f"{path}: split {i} names {name} but {base / cam / name} does not exist "
                            "(expected a person seen by both cameras)")
            if set(s["train"]) & set(s["test"]):
                raise DatasetError(f"{path}: split {i} has people in both train and test")
        self.splits = splits
        self.num_splits = len(splits)

    def split(self, split_id: int = 0) -> ReIDSplit:
        self._check_split_id(split_id)
        s = self.splits[split_id]
        a, b = self.people["cam_a"], self.people["cam_b"]
        both = {p for p in set(a) & set(b) if int(p[-4:]) <= SHARED_MAX}
        used = set(s["train"]) | set(s["test"])
        excluded = {
            "people_cam_a_only": len(set(a) - both),
            "people_cam_b_only": len(set(b) - both),
            "people_both_cameras_not_in_split": len(both - used),
        }
        train = [a[p] for p in sorted(s["train"])] + [b[p] for p in sorted(s["train"])]
        query = [a[p] for p in sorted(s["test"])]
        gallery = [b[p] for p in sorted(s["test"])]
        train = self._drop_short(train, excluded, "train")
        query = self._drop_short(query, excluded, "query")
        gallery = self._drop_short(gallery, excluded, "gallery")
        return ReIDSplit(self.name, self.root, train, query, gallery, split_id, self.num_splits, excluded)
