"""Tracklet records and one protocol split (train / query / gallery).

A *tracklet* is the ordered sequence of person crops of one identity seen by one camera.
Frame paths are stored relative to the dataset root, so any cache or manifest stays valid
when the tree moves.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Tracklet:
    """One tracklet.

    Attributes:
        frames: frame paths relative to the dataset root, ordered by frame number (never by
            an unsorted directory listing).
        pid: person id as the dataset writes it (MARS distractors are 0; junk -1 never reaches
            a split). Training code relabels pids to 0..num_classes-1 itself.
        camid: camera id as the dataset writes it (e.g. 1..6 for MARS).
        name: a stable identifier (e.g. ``cam_a/person_0001`` or the MARS track row).
    """

    frames: tuple[str, ...]
    pid: int
    camid: int
    name: str = ""

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class ReIDSplit:
    """One instance of a benchmark protocol.

    Attributes:
        dataset: dataset name (``mars``, ``prid2011`` ...).
        root: dataset root; ``Tracklet.frames`` are relative to it.
        train, query, gallery: tracklet lists.
        split_id, num_splits: which of the protocol's splits this is (10 for PRID-2011 and
            iLIDS-VID, 1 otherwise).
        excluded: what the protocol leaves out, counted by reason (e.g.
            ``{"junk_tracklets": 870}``); nothing is dropped without a count here.
    """

    dataset: str
    root: Path
    train: list[Tracklet]
    query: list[Tracklet]
    gallery: list[Tracklet]
    split_id: int = 0
    num_splits: int = 1
    excluded: dict[str, int] = field(default_factory=dict)

    def subset(self, name: str) -> list[Tracklet]:
        if name not in ("train", "query", "gallery"):
            raise KeyError(f"subset must be train, query or gallery, got {name!r}")
        return getattr(self, name)

    def stats(self) -> dict:
        """Counts per subset as a JSON-ready dict: ids, tracklets, frames, cameras, and the
        tracklet length range; plus the protocol's exclusions."""
        out: dict = {"dataset": self.dataset, "split_id": self.split_id, "num_splits": self.num_splits}
        for name in ("train", "query", "gallery"):
            tr = self.subset(name)
            lengths = [len(t) for t in tr]
            pids = Counter(t.pid for t in tr)
            out[name] = {
                "ids": len(pids),
                "tracklets": len(tr),
                "frames": int(sum(lengths)),
                "cameras": sorted({t.camid for t in tr}),
                "min_len": min(lengths) if lengths else 0,
                "max_len": max(lengths) if lengths else 0,
            }
        if any(t.pid == 0 for t in self.gallery) and self.dataset == "mars":
            out["gallery"]["distractor_tracklets"] = sum(1 for t in self.gallery if t.pid == 0)
        valid = self.valid_queries()
        out["query"]["valid"] = int(valid.sum())
        out["query"]["skipped_no_cross_camera_match"] = int(len(valid) - valid.sum())
        out["excluded"] = dict(self.excluded)
        return out

    def valid_queries(self):
        """bool array (Q,): the queries with at least one gallery tracklet of their pid from
        another camera. The others have no correct match once same-pid-same-camid items are
        excluded (every protocol here) and are skipped by :func:`vidreid.metrics.evaluate_rank`."""
        import numpy as np

        cams: dict[int, set[int]] = {}
        for t in self.gallery:
            cams.setdefault(t.pid, set()).add(t.camid)
        return np.array([bool(cams.get(q.pid, set()) - {q.camid}) for q in self.query], bool)


def camera_time_relations(cameras, first, last):
    """Pairwise relations of N tracklets that say, without any label, which may be one person:
    the rule behind label-free adaptation (``losses.metric.TrackletAssociationLoss``) and identity
    assignment (``inference.match.known_different``): two tracklets of one camera whose frame
    ranges overlap show two people at once.

    Args:
        cameras: (N,) camera ids or names. first, last: (N,) int first / last frame numbers,
            -1 where unknown (NumPy arrays or anything ``np.asarray`` takes).

    Returns:
        ``(same_camera, both_known, overlap)``: three (N, N) bool NumPy arrays: the two are of one
        camera; both frame ranges are known; the ranges overlap (inclusive ends; meaningful where
        both are known).
    """
    import numpy as np

    cams, first, last = np.asarray(cameras), np.asarray(first), np.asarray(last)
    known = (first >= 0) & (last >= 0)
    same = cams[:, None] == cams[None, :]
    overlap = (first[:, None] <= last[None, :]) & (first[None, :] <= last[:, None])
    return same, known[:, None] & known[None, :], overlap
