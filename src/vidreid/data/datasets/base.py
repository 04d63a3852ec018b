"""Base class of the benchmark loaders."""

from __future__ import annotations

from pathlib import Path

from ..tracklet import ReIDSplit


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
        if not 0 <= split_id < self.num_splits:
            raise IndexError(f"{self.name}: split_id {split_id} out of range 0..{self.num_splits - 1}")

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
