"""MARS (Zheng et al., ECCV 2016) with its official evaluation metadata.

Layout::

    root/bbox_train/0001/0001C1T0001F001.jpg ...
    root/bbox_test/0000/0000C1T0001F001.jpg ...     # distractors: pid 0000, junk: 00-1
    root/info/tracks_train_info.mat   # key track_train_info, N x 4: start, end, pid, camid
    root/info/tracks_test_info.mat    # key track_test_info
    root/info/query_IDX.mat           # key query_IDX: 1-based rows of the test tracks
    root/info/train_name.txt, root/info/test_name.txt   # one frame name per line

Frame names are ``PPPPCcTttttFfff.jpg``: pid (4 characters), camera 1-6, tracklet number,
frame number. ``start``/``end`` are 1-based inclusive line numbers into the name file.

Protocol: query = the test rows listed in ``query_IDX`` (1,980). Two galleries
(``gallery=``, config key ``data.mars_gallery``):

* ``"all_test"`` (default): the official MARS evaluation (``test_mars.m`` of
  liangzheng06/MARS-evaluation: ``feat_gallery = video_feat_test``) and the papers built on it
  (AP3D, STRF, ...): *every* test tracklet, the queries included, minus junk (pid -1).
  12,180 - 870 = 11,310 gallery tracklets; all 1,980 queries have a cross-camera match. A
  query's own tracklet, like every gallery item of its pid *and* camid, is excluded from its
  ranking by the evaluator (:func:`vidreid.metrics.evaluate_rank`), as ``test_mars.m`` does.
* ``"exclude_query"``: torchreid's loader: the query rows removed from the gallery.
  9,330 gallery tracklets; 140 queries are left with no cross-camera match and are skipped.

Junk is excluded and counted (``excluded["junk_tracklets"]``); distractors (pid 0) stay in the
gallery. Published numbers: train 625 ids / 8,298 tracklets; test 12,180 tracklets (870 junk,
3,248 distractors); 1,980 queries.
"""

from __future__ import annotations

import re

import numpy as np
import scipy.io

from ...errors import ConfigError, DatasetError
from ..tracklet import ReIDSplit, Tracklet
from .base import VideoReIDDataset
from .common import require_dir, require_file

NAME = re.compile(r"(?P<pid>\d{4}|00-1)C(?P<cam>[1-6])T(?P<trk>\d{4})F(?P<frame>\d{3})\.jpg")


def _load_mat(path, key: str) -> np.ndarray:
    require_file(path, f"MARS metadata .mat with key {key}")
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as e:
        raise DatasetError(f"cannot read {path}: {e}") from e
    if key not in mat:
        raise DatasetError(f"{path}: key {key!r} missing (keys: {sorted(k for k in mat if not k.startswith('__'))})")
    return np.asarray(mat[key])


def _read_names(path) -> list[str]:
    require_file(path, "MARS frame-name list, one PPPPCcTttttFfff.jpg per line")
    names = [ln.strip() for ln in path.read_text().splitlines()]
    if names and names[-1] == "":
        names.pop()
    return names


class MARS(VideoReIDDataset):
    name = "mars"

    GALLERIES = ("all_test", "exclude_query")

    def __init__(self, root, verify_files: bool = True, min_seq_len: int = 0, gallery: str = "all_test"):
        super().__init__(root, verify_files, min_seq_len)
        if gallery not in self.GALLERIES:
            raise ConfigError(f"data.mars_gallery: must be one of {list(self.GALLERIES)}, got {gallery!r}")
        self.gallery_protocol = gallery
        info = self.root / "info"
        require_dir(info, "the MARS info/ folder with tracks_*_info.mat, query_IDX.mat, *_name.txt")
        self.train_names = _read_names(info / "train_name.txt")
        self.test_names = _read_names(info / "test_name.txt")
        self.train_info = self._check_info(_load_mat(info / "tracks_train_info.mat", "track_train_info"),
                                           info / "tracks_train_info.mat", len(self.train_names))
        self.test_info = self._check_info(_load_mat(info / "tracks_test_info.mat", "track_test_info"),
                                          info / "tracks_test_info.mat", len(self.test_names))
        qpath = info / "query_IDX.mat"
        q = _load_mat(qpath, "query_IDX").astype(np.int64).ravel() - 1
        if q.size == 0 or q.min() < 0 or q.max() >= len(self.test_info) or len(np.unique(q)) != q.size:
            raise DatasetError(f"{qpath}: query_IDX must hold distinct 1-based rows in 1..{len(self.test_info)}")
        self.query_idx = q
        self.train_tracklets = self._tracklets(self.train_info, self.train_names, "bbox_train", info / "train_name.txt")
        self.test_tracklets = self._tracklets(self.test_info, self.test_names, "bbox_test", info / "test_name.txt")
        if verify_files:
            self._verify("bbox_train", self.train_tracklets)
            self._verify("bbox_test", self.test_tracklets)

    @staticmethod
    def _check_info(info: np.ndarray, path, n_names: int) -> np.ndarray:
        info = info.astype(np.int64)
        if info.ndim != 2 or info.shape[1] != 4:
            raise DatasetError(f"{path}: expected an N x 4 array (start, end, pid, camid), got shape {info.shape}")
        bad = (info[:, 0] < 1) | (info[:, 1] < info[:, 0]) | (info[:, 1] > n_names)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise DatasetError(f"{path}: row {r + 1} has start/end {info[r, :2].tolist()} outside 1..{n_names}")
        return info

    def _tracklets(self, info, names, folder, names_path) -> list[Tracklet]:
        out = []
        for r, (start, end, pid, camid) in enumerate(info):
            rows = names[start - 1:end]
            parsed = []
            for n in rows:
                m = NAME.fullmatch(n)
                if m is None:
                    raise DatasetError(f"{names_path}: malformed frame name {n!r}: expected PPPPCcTttttFfff.jpg")
                p = -1 if m.group("pid") == "00-1" else int(m.group("pid"))
                if p != pid or int(m.group("cam")) != camid:
                    raise DatasetError(
                        f"{names_path}: {n!r} (line within rows {start}..{end}) does not match its track row "
                        f"{r + 1} (pid {pid}, camid {camid})")
                parsed.append((int(m.group("frame")), f"{folder}/{n[:4]}/{n}"))
            if len({n[:11] for n in rows}) != 1:
                raise DatasetError(f"{names_path}: lines {start}..{end} mix several tracklets")
            parsed.sort(key=lambda x: x[0])
            out.append(Tracklet(tuple(p for _, p in parsed), int(pid), int(camid), f"{folder}/row{r + 1:05d}"))
        return out

    def _verify(self, folder: str, tracklets: list[Tracklet]) -> None:
        base = require_dir(self.root / folder, f"MARS {folder}/ with one folder per pid")
        listing: dict[str, set[str]] = {}
        for t in tracklets:
            pid_dir = t.frames[0].split("/")[1]
            if pid_dir not in listing:
                d = base / pid_dir
                require_dir(d, f"frames of pid {pid_dir} named in info/")
                listing[pid_dir] = {p.name for p in d.iterdir()}
            for f in t.frames:
                if f.rsplit("/", 1)[1] not in listing[pid_dir]:
                    raise DatasetError(f"missing frame {self.root / f}: named in info/ but not on disk")

    def split(self, split_id: int = 0) -> ReIDSplit:
        self._check_split_id(split_id)
        excluded: dict[str, int] = {}
        is_query = np.zeros(len(self.test_tracklets), bool)
        is_query[self.query_idx] = True
        query = [self.test_tracklets[i] for i in self.query_idx]
        junk_q = sum(1 for t in query if t.pid == -1)
        if junk_q:
            raise DatasetError(f"{self.root / 'info/query_IDX.mat'}: {junk_q} queries are junk (pid -1)")
        gallery, junk = [], 0
        drop_queries = self.gallery_protocol == "exclude_query"
        for i, t in enumerate(self.test_tracklets):
            if drop_queries and is_query[i]:
                continue
            if t.pid == -1:
                junk += 1
                continue
            gallery.append(t)
        excluded["junk_tracklets"] = junk
        train = self._drop_short(self.train_tracklets, excluded, "train")
        query = self._drop_short(query, excluded, "query")
        gallery = self._drop_short(gallery, excluded, "gallery")
        return ReIDSplit(self.name, self.root, train, query, gallery, 0, 1, excluded)

    def stats(self, split_id: int = 0) -> dict:
        s = super().stats(split_id)
        s["test_tracklets_total"] = len(self.test_tracklets)
        s["test_distractor_tracklets"] = sum(1 for t in self.test_tracklets if t.pid == 0)
        s["test_junk_tracklets"] = sum(1 for t in self.test_tracklets if t.pid == -1)
        s["gallery_protocol"] = self.gallery_protocol
        return s
