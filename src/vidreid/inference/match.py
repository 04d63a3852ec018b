"""Embeddings files, ranked gallery lists and cross-camera identity assignment.

Embeddings file (``vidreid embed``), a NumPy ``.npz`` with:

* ``embeddings``: float32 (N, D);
* ``names``: str (N,), each tracklet's folder relative to the tracklet root;
* ``cameras``: str (N,); ``pids``: int64 (N,), -1 when unknown;
* ``first_frame``, ``last_frame``: int64 (N,), -1 when unknown;
* ``meta``: a JSON string (vidreid version, model, checkpoint, metric, input size, sampling).

Assignment (:func:`assign_identities`): average-linkage agglomerative clustering
(:func:`scipy.cluster.hierarchy.linkage`): the two groups of tracklets with the smallest average
distance are joined, again and again, while that distance is at most ``threshold``; two groups
are never joined when they hold tracklets known to be different people
(:func:`known_different`: one camera and overlapping frame ranges; with ``groups="camera"`` any
two of one camera, so an identity has at most one tracklet per camera). ``vidreid match
--assign`` clusters on k-reciprocal re-ranked cosine distances (:func:`assignment_distances`)
and, without ``--threshold``, takes the median distance of the known-different pairs
(:func:`auto_threshold`). On PETS 2009 this replaced a sequential Hungarian matching (tracklet
after tracklet, identity ids in order of creation) that reached a pair F1 of 0.80 at best with
the ImageNet reference (docs/RESULTS.md, ``scripts/assign_check.py``).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.tracklet import camera_time_relations
from ..errors import DatasetError
from ..fileio import atomic_path, atomic_write_json, atomic_write_text


@dataclass
class Embeddings:
    """Embeddings with their tracklets' names, cameras, pids (-1 unknown) and frame ranges."""

    embeddings: np.ndarray
    names: list[str]
    cameras: list[str]
    pids: np.ndarray
    first_frame: np.ndarray
    last_frame: np.ndarray
    meta: dict

    def __len__(self) -> int:
        return len(self.names)

    def concat(self, other: "Embeddings") -> "Embeddings":
        """This set followed by ``other`` (one pool, e.g. query and gallery for an assignment);
        the metadata is this set's."""
        return Embeddings(np.concatenate([self.embeddings, other.embeddings]), self.names + other.names,
                          self.cameras + other.cameras, np.concatenate([self.pids, other.pids]),
                          np.concatenate([self.first_frame, other.first_frame]),
                          np.concatenate([self.last_frame, other.last_frame]), self.meta)

    def save(self, path: str | Path) -> Path:
        """Write the ``.npz`` of the module doc atomically."""
        path = Path(path)
        if path.suffix != ".npz":
            raise DatasetError(f"{path}: an embeddings file ends in .npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, embeddings=self.embeddings.astype(np.float32), names=np.array(self.names, dtype=str),
                         cameras=np.array(self.cameras, dtype=str), pids=self.pids.astype(np.int64),
                         first_frame=self.first_frame.astype(np.int64), last_frame=self.last_frame.astype(np.int64),
                         meta=np.array(json.dumps(self.meta)))
        return path

    @classmethod
    def load(cls, path: str | Path, drop_nonfinite: bool = False) -> "Embeddings":
        """Read an embeddings file (no pickles are loaded) and check it: ``embeddings`` a 2-D
        array of finite real numbers with at least one column, ``names`` / ``cameras`` strings,
        ``pids`` / ``first_frame`` / ``last_frame`` integers, one row per tracklet, ``meta`` a
        JSON object.

        Args:
            drop_nonfinite: leave out rows with NaN or infinite values (their count is in
                ``meta["dropped_nonfinite"]``) instead of refusing the file.

        Raises:
            DatasetError: a missing, truncated or foreign file, a key missing or of the wrong type
                or shape, or non-finite embeddings (names the file and the first rows).
        """
        import zipfile

        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"missing embeddings file {path}")
        need = ("embeddings", "names", "cameras", "pids", "first_frame", "last_frame", "meta")
        try:
            z = np.load(path, allow_pickle=False)
            if not hasattr(z, "files"):
                raise DatasetError(f"{path}: a plain .npy array, not an embeddings .npz (written by `vidreid embed`)")
            miss = [k for k in need if k not in z.files]
            if miss:
                raise DatasetError(f"{path}: missing key(s) {miss}; expected {list(need)} (written by `vidreid embed`)")
            arr = {k: z[k] for k in need}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
            raise DatasetError(f"{path}: not a readable embeddings .npz ({type(e).__name__}: {e})") from None
        e = arr["embeddings"]
        if e.dtype.kind not in "fiu" or e.ndim != 2 or e.shape[1] < 1:
            raise DatasetError(f"{path}: embeddings must be a 2-D array of numbers (N, D), got {e.dtype} {e.shape}")
        n = len(e)
        for k in ("names", "cameras"):
            if arr[k].ndim != 1 or arr[k].dtype.kind not in "US" or len(arr[k]) != n:
                raise DatasetError(f"{path}: {k} must be {n} strings (one per embedding), got {arr[k].dtype} {arr[k].shape}")
        for k in ("pids", "first_frame", "last_frame"):
            if arr[k].ndim != 1 or arr[k].dtype.kind not in "iu" or len(arr[k]) != n:
                raise DatasetError(f"{path}: {k} must be {n} integers, got {arr[k].dtype} {arr[k].shape}")
        try:
            meta = json.loads(str(arr["meta"]))
        except ValueError:
            meta = None
        if not isinstance(meta, dict):
            raise DatasetError(f"{path}: meta must be a JSON object (written by `vidreid embed`)")
        e = e.astype(np.float32)
        bad = np.flatnonzero(~np.isfinite(e).all(1))
        keep = np.ones(n, bool)
        if len(bad):
            if not drop_nonfinite:
                raise DatasetError(f"{path}: {len(bad)} of {n} embeddings hold NaN or infinite values (rows "
                                   f"{bad[:5].tolist()}, e.g. {str(arr['names'][bad[0]])!r}); re-embed them, or pass "
                                   "--drop-nonfinite to leave them out")
            keep[bad] = False
            meta = dict(meta, dropped_nonfinite=int(len(bad)))
        return cls(e[keep], [str(x) for x in arr["names"][keep]], [str(x) for x in arr["cameras"][keep]],
                   arr["pids"][keep].astype(np.int64), arr["first_frame"][keep].astype(np.int64),
                   arr["last_frame"][keep].astype(np.int64), meta)


def embed_tracklet_folder(model, root: str | Path, batch_size: int | None = None) -> Embeddings:
    """Embed every tracklet of a folder (the layout :func:`vidreid.inference.tracks.read_tracklet_dir`
    reads: a ``tracklets.csv`` manifest, or pid/camera tracklet folders) with a
    :class:`vidreid.api.ReIDModel`, under the checkpoint's own test protocol.

    Returns:
        :class:`Embeddings`: float32 (N, D) with the tracklets' names, cameras, pids (-1
        unlabelled) and frame ranges; ``meta`` records the model, checkpoint, metric, input
        size, test sampling and the folder.
    Raises:
        DatasetError: ``root`` missing or without tracklets, or a manifest row naming a folder
            without images (from ``read_tracklet_dir``).
    """
    from .. import __version__
    from .tracks import read_tracklet_dir

    root = Path(root)
    recs = read_tracklet_dir(root)
    emb = model.embed([list(r.frames) for r in recs], batch_size=batch_size, progress=True).numpy()
    c = model.cfg
    meta = {"vidreid": __version__, "model": c.model.name, "checkpoint": model.checkpoint, "metric": model.metric,
            "input": [int(c.data.height), int(c.data.width)], "test_sampling": dict(c.data.test_sampling),
            "tracklets_root": str(root)}
    return Embeddings(emb, [r.name for r in recs], [r.camera for r in recs], np.array([r.pid for r in recs], np.int64),
                      np.array([r.first_frame for r in recs], np.int64), np.array([r.last_frame for r in recs], np.int64),
                      meta)


def _distance(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """(len(a), len(b)) float64 distances, as test.distance computes them."""
    import torch

    from ..losses.metric import pairwise_distance

    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be euclidean or cosine, got {metric!r}")
    return pairwise_distance(torch.as_tensor(a).double(), torch.as_tensor(b).double(), metric).numpy()


def ranked_lists(q: Embeddings, g: Embeddings, metric: str = "euclidean", topk: int = 10, cross_camera: bool = False,
                 index: str | None = None) -> list[dict]:
    """Each query's ``topk`` gallery tracklets, nearest first.

    A gallery tracklet with the query's own name is never listed (a folder matched against
    itself); with ``cross_camera`` neither are the gallery tracklets of the query's camera.
    ``index`` (``flat``, ``ivf``, ``hnsw``) searches with :class:`~vidreid.inference.index.GalleryIndex`
    instead of brute force (``flat`` gives the same lists).

    Returns:
        one dict per query: ``query``, ``camera``, ``pid`` and ``matches``: a list of
        ``{"rank", "gallery", "camera", "pid", "distance"}`` (rank 1-based).
    """
    import torch

    excl_name = {n: i for i, n in enumerate(g.names)}
    gcam = np.array(g.cameras)
    out = []
    if index is None:
        D = _distance(q.embeddings, g.embeddings, metric)
        cand = None
    else:
        from .index import GalleryIndex

        ix = GalleryIndex(g.embeddings.shape[1], index, metric).add(g.embeddings)
        extra = 1 + (int(max(np.unique(gcam, return_counts=True)[1])) if cross_camera else 0)
        cand = ix.search(q.embeddings, topk + extra)
    for i, name in enumerate(q.names):
        if cand is None:
            row = D[i].copy()
            own = excl_name.get(name)
            if own is not None:
                row[own] = np.inf
            if cross_camera:
                row[gcam == q.cameras[i]] = np.inf
            order = torch.sort(torch.from_numpy(row), stable=True).indices.numpy()
            order = [j for j in order[:topk] if np.isfinite(row[j])]
            dists = row[order]
        else:
            idx, dd = cand[0][i], cand[1][i]
            keep = [(j, d) for j, d in zip(idx, dd) if j >= 0 and g.names[j] != name
                    and not (cross_camera and g.cameras[j] == q.cameras[i])][:topk]
            order, dists = [j for j, _ in keep], [d for _, d in keep]
        out.append({"query": name, "camera": q.cameras[i], "pid": int(q.pids[i]),
                    "matches": [{"rank": r + 1, "gallery": g.names[j], "camera": g.cameras[j], "pid": int(g.pids[j]),
                                 "distance": float(d)} for r, (j, d) in enumerate(zip(order, dists))]})
    return out


def known_pid_metrics(q: Embeddings, g: Embeddings, metric: str = "euclidean", cross_camera: bool = False) -> dict | None:
    """Rank-1 / rank-5 / mAP of the queries against the gallery where person ids are known,
    under the protocol of ``vidreid test`` (metrics/rank.py): a gallery item of the query's pid
    and "camera" is excluded, where the camera is the tracklet itself (a folder matched
    against itself) unless ``cross_camera`` (then the camera name, and, as in
    :func:`ranked_lists`, every gallery item of the query's camera is left out). Queries or
    gallery items of unknown pid (-1) have no true match.

    Returns:
        ``{"rank1", "rank5", "mAP", "mAP_trapezoid", "valid_queries", "skipped_queries"}``
        (fractions in [0, 1]; the two mAP formulas of :mod:`vidreid.metrics.rank`),
        or None when no pids are known or no query has a match left in the gallery.
    """
    from ..metrics.rank import evaluate_rank

    if not ((q.pids >= 0).any() and (g.pids >= 0).any()):
        return None
    qc = q.cameras if cross_camera else q.names
    gc = g.cameras if cross_camera else g.names
    keys = {k: i for i, k in enumerate(sorted(set(qc) | set(gc)))}
    D = _distance(q.embeddings, g.embeddings, metric)
    if cross_camera:
        # as ranked_lists, no gallery item of the query's camera is a candidate: ranked after every
        # other item (a finite stand-in for +inf), where it changes neither CMC nor AP
        D[np.array(q.cameras)[:, None] == np.array(g.cameras)[None]] = 4.0 * float(np.abs(D).max()) + 1.0
    try:
        r = evaluate_rank(D, q.pids, g.pids, np.array([keys[x] for x in qc]), np.array([keys[x] for x in gc]))
    except ValueError:  # evaluate_rank: no valid query
        return None
    return {"rank1": float(r.cmc[0]), "rank5": float(r.cmc[min(4, len(r.cmc) - 1)]), "mAP": float(r.mAP),
            "mAP_trapezoid": float(r.mAP_trapezoid), "valid_queries": int(r.num_valid_queries), "skipped_queries": int(r.num_skipped_queries)}


def known_different(e: Embeddings, groups: str = "camera") -> np.ndarray:
    """(N, N) bool: pairs of tracklets known to be two different people without any label: two
    tracklets of one camera whose frame ranges overlap (two people in view at once), and with
    ``groups="camera"`` any two tracklets of one camera (an identity has at most one tracklet per
    camera). The diagonal is False."""
    if groups not in ("camera", "tracklet"):
        raise ValueError(f"groups must be camera or tracklet, got {groups!r}")
    same, known, overlap = camera_time_relations(e.cameras, e.first_frame, e.last_frame)
    out = same.copy() if groups == "camera" else same & known & overlap
    np.fill_diagonal(out, False)
    return out


def assignment_distances(e: Embeddings, metric: str = "cosine", rerank: bool = True) -> tuple[np.ndarray, dict]:
    """The (N, N) float64 distances identity assignment works on, and how they were made.

    With ``rerank`` (the default) the L2-normalised embeddings are re-ranked among themselves by
    k-reciprocal encoding (Zhong et al., CVPR 2017, :func:`vidreid.metrics.rerank.k_reciprocal_rerank`
    with ``gf=None``), symmetrised: a distance that mixes the Jaccard distance of neighbour sets
    with the normalised one (lambda 0.3), about 0 for mutual neighbours and about 0.9 between
    strangers whatever the model or scene. k1 = N / 3 rounded, between 2 and 20 (the paper's 20
    assumes galleries of thousands; 19 PETS tracks have at most 4 of one person), k2 = k1 / 2
    rounded, between 1 and 6. Without it: ``metric`` on the embeddings as they are.
    """
    n = len(e)
    if not rerank or n < 4:
        return _distance(e.embeddings, e.embeddings, metric), {"distance": metric, "rerank": False}
    import torch

    from ..metrics.rerank import k_reciprocal_rerank

    k1 = int(min(20, max(2, round(n / 3))))
    k2 = int(min(6, max(1, round(k1 / 2))))
    x = e.embeddings.astype(np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    d = k_reciprocal_rerank(torch.from_numpy(x).float(), None, k1=k1, k2=k2, lambda_value=0.3).astype(np.float64)
    d = (d + d.T) / 2.0
    np.fill_diagonal(d, 0.0)
    return d, {"distance": "k-reciprocal re-ranked cosine", "rerank": True, "k1": k1, "k2": k2, "lambda": 0.3}


def auto_threshold(D: np.ndarray, different: np.ndarray) -> tuple[float, dict]:
    """The data-driven assignment threshold: the median distance between tracklets known to be
    different people (:func:`known_different`): an identity is formed only from tracklets closer
    on average than half the pairs of people the footage itself shows to be different.

    Returns:
        (threshold, statistics: the number of such pairs and their 5/25/50/75/95 percentiles).

    Raises:
        ValueError: no pair is known to be different (one tracklet per camera and no overlap in
            time): give the threshold.
    """
    iu = np.triu_indices(len(D), 1)
    v = D[iu][different[iu]]
    if v.size == 0:
        raise ValueError("no two tracklets are known to be different people (tracks of one camera overlapping in "
                         "time); give --threshold")
    pct = np.percentile(v, [5, 25, 50, 75, 95])
    return float(pct[2]), {"known_different_pairs": int(v.size),
                           "percentiles_5_25_50_75_95": [round(float(x), 4) for x in pct]}


def assign_identities(e: Embeddings, threshold: float, metric: str = "euclidean", groups: str = "camera",
                      distances: np.ndarray | None = None) -> np.ndarray:
    """Identity assignment by average-linkage agglomerative clustering that never joins two
    tracklets known to be different people (module doc).

    Args:
        e: the tracklets (any number of cameras).
        threshold: the largest average distance between two groups of tracklets that are joined.
        metric: ``euclidean`` or ``cosine`` (used when ``distances`` is None).
        groups: ``camera`` (at most one tracklet per camera in an identity, and tracklets of one
            camera overlapping in time apart) or ``tracklet`` (only tracklets of one camera
            overlapping in time apart: re-entry linking within one view).
        distances: (N, N) distances to cluster on (e.g. :func:`assignment_distances`).

    Returns:
        int64 (N,) identity ids 0, 1, ... in order of each identity's first tracklet.
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = len(e)
    if n == 0:
        return np.zeros(0, np.int64)
    if n == 1:
        return np.zeros(1, np.int64)
    D = _distance(e.embeddings, e.embeddings, metric) if distances is None else np.array(distances, np.float64)
    diff = known_different(e, groups)
    # a cannot-link pair gets a distance so large that any average including it stays above the
    # threshold (exact while the two clusters' sizes multiply to less than BIG / (threshold + 1))
    big = 1e12 * (1.0 + max(float(threshold), float(np.abs(D).max())))
    D = np.where(diff, big, D)
    np.fill_diagonal(D, 0.0)
    Z = linkage(squareform(D, checks=False), method="average")
    lab = fcluster(Z, t=float(threshold), criterion="distance")
    first: dict[int, int] = {}
    for x in lab.tolist():
        first.setdefault(x, len(first))
    return np.array([first[x] for x in lab.tolist()], np.int64)


def assignment_scores(ident: np.ndarray, pids: np.ndarray) -> dict:
    """How well identities recover known person ids (tracklets with pid -1 are left out).

    * ``pair_precision`` / ``pair_recall`` / ``pair_f1``: over all pairs of tracklets, "given
      the same identity" against "the same person";
    * ``purity``: the fraction of tracklets that belong to their identity's majority person;
    * ``identities`` against ``people``: how many identities were made for how many people.
    """
    m = pids >= 0
    ident, pids = ident[m], pids[m]
    same_i = ident[:, None] == ident[None]
    same_p = pids[:, None] == pids[None]
    iu = np.triu_indices(len(pids), 1)
    tp = int((same_i & same_p)[iu].sum())
    fp = int((same_i & ~same_p)[iu].sum())
    fn = int((~same_i & same_p)[iu].sum())
    prec = tp / (tp + fp) if tp + fp else 1.0
    rec = tp / (tp + fn) if tp + fn else 1.0
    # identity purity: each identity's majority person; correct tracklets are those of it
    correct = 0
    for k in np.unique(ident):
        ps = pids[ident == k]
        correct += int(np.bincount(ps).max())
    return {"tracklets": int(len(pids)), "people": int(len(np.unique(pids))), "identities": int(len(np.unique(ident))),
            "pair_precision": prec, "pair_recall": rec, "pair_f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
            "purity": correct / len(pids) if len(pids) else 0.0}


def write_rankings(lists: list[dict], out: str | Path) -> tuple[Path, Path]:
    """``out/ranking.csv`` (query, query_camera, rank, gallery, gallery_camera, distance) and
    ``out/ranking.json`` (the lists as returned by :func:`ranked_lists`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["query", "query_camera", "rank", "gallery", "gallery_camera", "distance"])
    for q in lists:
        for mt in q["matches"]:
            w.writerow([q["query"], q["camera"], mt["rank"], mt["gallery"], mt["camera"], f"{mt['distance']:.6f}"])
    return atomic_write_text(out / "ranking.csv", buf.getvalue()), atomic_write_json(out / "ranking.json", lists)


def write_assignment(e: Embeddings, ident: np.ndarray, out: str | Path) -> Path:
    """``out/assignment.csv``: tracklet, camera, identity (and pid when known)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["tracklet", "camera", "identity", "pid"])
    for i in range(len(e)):
        w.writerow([e.names[i], e.cameras[i], int(ident[i]), int(e.pids[i]) if e.pids[i] >= 0 else ""])
    Path(out).mkdir(parents=True, exist_ok=True)
    return atomic_write_text(Path(out) / "assignment.csv", buf.getvalue())
