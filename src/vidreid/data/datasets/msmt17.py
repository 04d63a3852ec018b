"""MSMT17 (Wei, Zhang, Gao, Tian, "Person Transfer GAN to Bridge Domain Gap for Person
Re-Identification", CVPR 2018).

Layout (the official release, ``MSMT17_V1/`` (or ``MSMT17_V2/`` with ``mask_train_v2/``,
``mask_test_v2/``) in ``root``)::

    root/MSMT17_V1/train/0000/0000_000_01_0303morning_0015_0.jpg ...
    root/MSMT17_V1/test/...
    root/MSMT17_V1/list_train.txt, list_val.txt, list_query.txt, list_gallery.txt

Each list line is ``<path relative to train/ or test/> <pid>``; the camera is the third field of
the file name (15 cameras). Protocol: training = list_train + list_val (32,621 images, 1,041
identities); query 11,659 and gallery 82,161 images of 3,060 identities. The release numbers
the test identities from 0 again; here they are offset by :data:`TEST_PID_OFFSET` so that a
training identity and a test identity never share a pid (the train / test overlap check of
``vidreid test`` compares pids).
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DatasetError
from ..tracklet import ReIDSplit
from .base import VideoReIDDataset
from .common import require_file
from .imagebase import image

VERSIONS = {"MSMT17_V1": ("train", "test"), "MSMT17_V2": ("mask_train_v2", "mask_test_v2")}
TEST_PID_OFFSET = 100000


class MSMT17(VideoReIDDataset):
    name = "msmt17"

    def __init__(self, root, verify_files: bool = True, min_seq_len: int = 0):
        super().__init__(root, verify_files, min_seq_len)
        base = next((self.root / v for v in VERSIONS if (self.root / v).is_dir()), None)
        if base is None:
            raise DatasetError(f"{self.root}: expected MSMT17_V1/ (or MSMT17_V2/) holding train/, test/ and the "
                               "list_{train,val,query,gallery}.txt files")
        train_dir, test_dir = VERSIONS[base.name]
        self.subsets = {"train": self._read(base, "list_train.txt", train_dir) + self._read(base, "list_val.txt", train_dir),
                        "query": self._read(base, "list_query.txt", test_dir, TEST_PID_OFFSET),
                        "gallery": self._read(base, "list_gallery.txt", test_dir, TEST_PID_OFFSET)}

    def _read(self, base: Path, list_name: str, folder: str, offset: int = 0):
        path = require_file(base / list_name, "an MSMT17 list: lines '<image path> <pid>'")
        out = []
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                rel, pid = parts[0], int(parts[1])
                cam = int(Path(rel).name.split("_")[2])
            except (IndexError, ValueError):
                raise DatasetError(f"{path}:{n}: expected '<pid>/<pid>_<n>_<camera>_... .jpg <pid>', got {line[:80]!r}") from None
            full = base / folder / rel
            if self.verify_files and not full.is_file():
                raise DatasetError(f"{path}:{n}: the image {full} does not exist")
            out.append(image(full.relative_to(self.root).as_posix(), pid + offset, cam))
        return out

    def split(self, split_id: int = 0) -> ReIDSplit:
        self._check_split_id(split_id)
        return ReIDSplit(self.name, self.root, list(self.subsets["train"]), list(self.subsets["query"]),
                         list(self.subsets["gallery"]), 0, 1, {})
