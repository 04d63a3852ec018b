"""Base class of the benchmark loaders."""

from __future__ import annotations

from pathlib import Path

import re

from ...errors import DatasetError
from ..tracklet import ReIDSplit, Tracklet
from .common import list_frames, require_dir, sorted_subdirs


class VideoReIDDataset:
    """A benchmark on disk with its protocol.

    Subclasses parse the tree in ``__init__`` (raising :class:`~vidreid.errors.DatasetError`
    on a missing or malformed path) and implement :meth:`split`.

    Args:
        root: the dataset root (documented per subclass).
        verify_files: check that every frame file the protocol files name exists (MARS names
            its frames in text files; a tree built from them is otherwise not touched).
        min_seq_len: tracklets shorter than this are excluded from every subset and counted
            under ``excluded["short_tracklets"]`` (0 keeps all).
    """

    name = "base"
    num_splits = 1

    def __init__(self, root: str | Path, verify_files: bool = True, min_seq_len: int = 0):
        self.root = Path(root)
        self.verify_files = verify_files
        self.min_seq_len = int(min_seq_len)

    def split(self, split_id: int = 0) -> ReIDSplit:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_split_id(self, split_id: int) -> None:
        """Raises ConfigError (a user's choice) for a split outside 0..num_splits-1."""
        if not isinstance(split_id, int) or not 0 <= split_id < self.num_splits:
            from ...errors import ConfigError

            raise ConfigError(f"data.split_id: {self.name} has {self.num_splits} split(s), numbered "
                              f"0..{self.num_splits - 1}; got {split_id!r}")

    def _drop_short(self, tracklets, excluded: dict, subset: str):
        if self.min_seq_len <= 0:
            return list(tracklets)
        keep = [t for t in tracklets if len(t) >= self.min_seq_len]
        n = len(tracklets) - len(keep)
        if n:
            excluded[f"short_tracklets_{subset}"] = excluded.get(f"short_tracklets_{subset}", 0) + n
        return keep

    def stats(self, split_id: int = 0) -> dict:
        """Counts of ``split(split_id)`` (see :meth:`ReIDSplit.stats`) plus dataset-wide counts."""
        s = self.split(split_id).stats()
        s["root"] = str(self.root)
        return s


class QueryGalleryDataset(VideoReIDDataset):
    """A dataset laid out as ``root/{train,query,gallery}/<pid>/<tracklet>/<frames>`` with one
    fixed split (DukeMTMC-VideoReID, the user folder layout). Subclasses set the folder and
    frame patterns and :meth:`_tracklet` (how pid and camid are read)."""

    PID: re.Pattern[str]
    TRK: re.Pattern[str]
    FRAME: re.Pattern[str]
    pid_what = "a pid folder"
    trk_what = "a tracklet folder"
    frame_what = "frames"
    optional_train = False

    def __init__(self, root, verify_files: bool = True, min_seq_len: int = 0):
        super().__init__(root, verify_files, min_seq_len)
        self.subsets: dict[str, list[Tracklet]] = {}
        for subset in ("train", "query", "gallery"):
            if subset == "train" and self.optional_train and not (self.root / "train").exists():
                self.subsets[subset] = []
                continue
            require_dir(self.root / subset, f"{self.name} {subset}/ with <pid>/<tracklet>/ folders")
            pdirs = sorted_subdirs(self.root / subset, self.PID, self.pid_what)
            seen: dict[int, str] = {}
            for pdir in pdirs:  # "8" and "0008" are one pid: two folders would merge it silently
                if pdir.name.isdigit():
                    other = seen.setdefault(int(pdir.name), pdir.name)
                    if other != pdir.name:
                        raise DatasetError(f"{self.root / subset}: folders {other!r} and {pdir.name!r} are the same pid "
                                           f"{int(pdir.name)}; merge them into one folder")
            self.subsets[subset] = [
                self._tracklet(subset, pdir, tdir, list_frames(tdir, self.root, self.FRAME, self.frame_what))
                for pdir in pdirs
                for tdir in sorted_subdirs(pdir, self.TRK, self.trk_what)]

    def _tracklet(self, subset, pdir, tdir, frames) -> Tracklet:  # pragma: no cover - abstract
        raise NotImplementedError

    def split(self, split_id: int = 0) -> ReIDSplit:
        self._check_split_id(split_id)
        excluded: dict[str, int] = {}
        s = {k: self._drop_short(v, excluded, k) for k, v in self.subsets.items()}
        return ReIDSplit(self.name, self.root, s["train"], s["query"], s["gallery"], 0, 1, excluded)
