"""Optical flow as a dataset asset: computed once per dataset, cached beside it, read by the data
layer aligned with the sampled RGB frames.

Methods (OpenCV, ``opencv-contrib-python-headless``):

* ``tvl1``: Dual TV-L1 (Zach, Pock, Bischof 2007), ``cv2.optflow.DualTVL1OpticalFlow_create``;
  the flow STAR uses (Wu et al., BMVC 2019, Sec. 4.2). Slow on a CPU at OpenCV's defaults
  (see benchmarks/bench_flow.py).
* ``farneback``: Farneback (2003), ``cv2.calcOpticalFlowFarneback``; fast, for CPU runs.
* ``lk``: Lucas-Kanade, the flow ASTPN uses (Xu et al., ICCV 2017, Sec. 4.1.1): pyramidal LK
  (``cv2.calcOpticalFlowPyrLK``, 15x15 window, 3 levels) tracked from every node of a 4-pixel
  grid, points LK loses set to zero, the grid field bilinearly upsampled to every pixel.
  (OpenCV's ``cv2.optflow.calcOpticalFlowSparseToDense`` was tried first: it segfaulted on
  some frame pairs of the synthetic benchmark and returned all-NaN fields on others.)

Pixels where a method returns no finite flow (dense LK can give NaN without support) are set
to zero and counted in the manifest (``nonfinite_vectors_zeroed``).

Cache format (``<root>/flow_<method>/``): for every frame ``<rel>.<ext>`` of every tracklet, a
PNG ``<rel>.png`` with the flow from that frame to the next (the last frame of a tracklet reuses
the previous flow; a one-frame tracklet gets zero flow), quantised to 8 bits per component:
``q = round(128 + 127 * clip(flow / bound, -1, 1))`` (zero flow is exactly 128) with x in the red and y in the green
channel (blue is 0), flow in pixels at the frame's stored resolution. ``manifest.json`` holds
the method, ``bound`` (pixels), the format version and a signature of every tracklet (its frame
paths and each frame file's size and modification time); a cache whose signature differs from
the tracklets read is stale, at training and at test. A run removes the old manifest before
it writes any flow file and writes the new one last (atomically), so an interrupted run leaves
no usable cache, never one mixing two runs' files or bounds.

The data layer yields flow in units of ``bound`` (so in [-1, 1]), resized to the clip size with
the vectors scaled accordingly, and transformed with the clip's augmentation (a horizontal flip
negates x).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigError, DatasetError
from ..fileio import atomic_write_json, read_image, write_image
from .tracklet import Tracklet

METHODS = ("tvl1", "farneback", "lk")
FORMAT_VERSION = 2
DEFAULT_BOUND = 20.0


def flow_between(prev_gray: np.ndarray, next_gray: np.ndarray, method: str) -> np.ndarray:
    """Dense flow (H, W, 2) float32 in pixels from ``prev_gray`` to ``next_gray`` (uint8 (H, W))."""
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(prev_gray, next_gray, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    if method == "tvl1":
        return cv2.optflow.DualTVL1OpticalFlow_create().calc(prev_gray, next_gray, None)
    if method == "lk":
        return _grid_lk(prev_gray, next_gray)
    raise ConfigError(f"flow method: unknown {method!r}; valid: {list(METHODS)}")


def _grid_lk(prev_gray: np.ndarray, next_gray: np.ndarray, step: int = 4) -> np.ndarray:
    H, W = prev_gray.shape
    ys, xs = np.mgrid[step // 2:H:step, step // 2:W:step]
    pts = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32).reshape(-1, 1, 2)
    nxt, status, _ = cv2.calcOpticalFlowPyrLK(prev_gray, next_gray, pts, None, winSize=(15, 15), maxLevel=3)
    d = (nxt - pts).reshape(-1, 2)
    d[(status.ravel() == 0) | ~np.isfinite(d).all(1)] = 0.0
    grid = d.reshape(ys.shape[0], xs.shape[1], 2).astype(np.float32)
    return cv2.resize(grid, (W, H), interpolation=cv2.INTER_LINEAR)


def encode(flow: np.ndarray, bound: float) -> np.ndarray:
    """(H, W, 2) float pixels -> (H, W, 3) uint8 BGR image (x in red, y in green)."""
    q = np.round(128.0 + 127.0 * np.clip(flow / bound, -1.0, 1.0)).astype(np.uint8)
    out = np.zeros(flow.shape[:2] + (3,), np.uint8)
    out[..., 2], out[..., 1] = q[..., 0], q[..., 1]
    return out


def decode(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 BGR -> (H, W, 2) float32 in units of ``bound`` ([-1, 1])."""
    return (np.stack([img[..., 2], img[..., 1]], -1).astype(np.float32) - 128.0) / 127.0


def tracklet_signature(root: Path, t: Tracklet) -> str:
    """A hash of what a tracklet's flow depends on: every frame's path, size and modification
    time (ns). Raises DatasetError for a missing frame."""
    h = hashlib.sha256()
    for f in t.frames:
        try:
            st = os.stat(Path(root) / f)
        except FileNotFoundError:
            raise DatasetError(f"missing frame {Path(root) / f}") from None
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def signatures(root: Path, tracklets: list[Tracklet]) -> dict[str, str]:
    """{first frame path: :func:`tracklet_signature`} of the tracklets."""
    return {t.frames[0]: tracklet_signature(root, t) for t in tracklets}


def cache_dir(root: Path, method: str) -> Path:
    return Path(root) / f"flow_{method}"


def flow_path(root: Path, method: str, frame: str) -> Path:
    return cache_dir(root, method) / (str(Path(frame).with_suffix("")) + ".png")


def _compute_one(args) -> int:
    root, method, bound, frames = args
    inject = os.environ.get("VIDREID_FLOW_CRASH_ON")  # fault injection for the crash-recovery test
    if inject and frames[0].endswith(inject):
        marker = os.environ.get("VIDREID_FLOW_CRASH_ONCE")
        if not marker or not Path(marker).exists():
            if marker:
                Path(marker).write_text("crashed")
            os._exit(11)
    grays = []
    for f in frames:
        img = read_image(Path(root) / f, cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise DatasetError(f"cannot read image {Path(root) / f}")
        grays.append(img)
    flows = [flow_between(grays[i], grays[i + 1], method) for i in range(len(grays) - 1)]
    if not flows:
        flows = [np.zeros(grays[0].shape + (2,), np.float32)]
    nonfinite = 0
    for fl in flows:  # dense LK can return NaN where it has no support: set to 0 and count
        bad = ~np.isfinite(fl)
        if bad.any():
            nonfinite += int(bad.any(-1).sum())
            fl[bad] = 0.0
    flows.append(flows[-1])  # the last frame reuses the previous flow
    for f, fl in zip(frames, flows):
        write_image(flow_path(Path(root), method, f), encode(fl, bound))
    return len(frames), nonfinite


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _run_isolated(jobs: list, workers: int, bar, method: str, retries: int = 2) -> int:
    """Run the jobs in worker processes, one future per tracklet. OpenCV's flow code can crash
    its process (a segfault seen in dense LK); a crashed worker breaks the pool, and the
    tracklets not finished are retried in a fresh pool (``retries`` times) rather than lost or
    waited on forever.

    Raises:
        RuntimeError: tracklets still unfinished after the retries (names the first ones).
    """
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    zeroed, pending = 0, list(range(len(jobs)))
    ctx = mp.get_context("spawn")  # clean children: forking a process with threads can deadlock
    for attempt in range(retries + 1):
        failed = []
        if attempt < retries:
            groups = [pending]
        else:  # last attempt: one process per tracklet, so only the ones that crash fail
            groups = [[i] for i in pending]
        for group in groups:
            with ProcessPoolExecutor(min(workers, len(group)), mp_context=ctx, initializer=_worker_init) as ex:
                futs = {i: ex.submit(_compute_one, jobs[i]) for i in group}
                for i, f in futs.items():
                    try:
                        n, bad = f.result()
                    except BrokenProcessPool:
                        failed.append(i)
                        continue
                    zeroed += bad
                    if bar:
                        bar.update(n)
        if not failed:
            return zeroed
        pending = failed
    names = [jobs[i][3][0].rsplit("/", 1)[0] for i in pending[:5]]
    raise RuntimeError(f"{method} optical flow crashed its worker process on {len(pending)} tracklet(s), "
                       f"e.g. {names}; try another --method or --workers 1")


def all_tracklets(dataset) -> list[Tracklet]:
    """Every tracklet of a loaded dataset (all splits, all subsets), each once."""
    seen, out = set(), []
    for s in range(dataset.num_splits):
        sp = dataset.split(s)
        for t in sp.train + sp.query + sp.gallery:
            if t.frames[0] not in seen:
                seen.add(t.frames[0])
                out.append(t)
    return out


def compute_flow_cache(dataset, method: str = "farneback", workers: int = 1, bound: float = DEFAULT_BOUND,
                       progress: bool = False) -> dict:
    """Compute and cache the flow of every tracklet of ``dataset`` (a loaded
    :class:`~vidreid.data.datasets.VideoReIDDataset`); returns the manifest written.

    Raises:
        ConfigError: unknown method or bound <= 0.
        DatasetError: an unreadable frame.
    """
    if method not in METHODS:
        raise ConfigError(f"flow method: unknown {method!r}; valid: {list(METHODS)}")
    if bound <= 0:
        raise ConfigError(f"flow bound must be > 0, got {bound}")
    tracklets = all_tracklets(dataset)
    root = Path(dataset.root)
    # the cache is invalid from the first flow file written until the new manifest (written
    # last): an interrupted run leaves no manifest, so nothing reads a half-built cache
    old = cache_dir(root, method) / "manifest.json"
    if old.is_file():
        old.unlink()
    jobs = [(str(root), method, bound, list(t.frames)) for t in tracklets]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=sum(len(t) for t in tracklets), unit="frame", desc=f"flow {method}")
    zeroed = 0
    if workers > 1:
        zeroed = _run_isolated(jobs, workers, bar, method)
    else:
        for j in jobs:
            n, bad = _compute_one(j)
            zeroed += bad
            if bar:
                bar.update(n)
    if bar:
        bar.close()
    manifest = {"method": method, "bound": bound, "format_version": FORMAT_VERSION,
                "tracklets": len(tracklets), "frames": sum(len(t) for t in tracklets),
                "nonfinite_vectors_zeroed": zeroed,
                "signatures": signatures(root, tracklets)}
    atomic_write_json(cache_dir(root, method) / "manifest.json", manifest)
    return manifest


class FlowCache:
    """Reads cached flow for the data layer.

    Args:
        root: dataset root; dataset_name: for the error message; method: the flow method;
        tracklets: the tracklets that will be read (checked against the cache signatures).

    Raises:
        DatasetError: no cache, or a stale one; the message gives the command that builds it.
    """

    def __init__(self, root, dataset_name: str, method: str, tracklets: list[Tracklet] | None = None,
                 all_tracklets_of=None):
        """``tracklets`` (or every tracklet of ``all_tracklets_of``, a loaded dataset) are checked
        against the manifest's signatures: a frame changed, added or removed since the cache
        was built is an error."""
        self.root, self.method = Path(root), method
        d = cache_dir(self.root, method)
        cmd = f"vidreid flow --dataset {dataset_name} --root {self.root} --method {method}"
        man = d / "manifest.json"
        if not man.is_file():
            raise DatasetError(f"no {method} optical-flow cache at {d}; build it with: {cmd}")
        try:
            m = json.loads(man.read_text())
        except (OSError, ValueError) as e:
            raise DatasetError(f"flow cache manifest {man} is unreadable ({e}); rebuild it with: {cmd}") from e
        if m.get("format_version") != FORMAT_VERSION or m.get("method") != method:
            raise DatasetError(f"flow cache {d} has another format or method; rebuild it with: {cmd}")
        check = list(tracklets or []) + (all_tracklets(all_tracklets_of) if all_tracklets_of is not None else [])
        sigs = m.get("signatures", {})
        for t in check:
            if sigs.get(t.frames[0]) != tracklet_signature(self.root, t):
                what = "is not in it" if t.frames[0] not in sigs else "changed since it was built"
                raise DatasetError(f"flow cache {d} is stale: the tracklet of {t.frames[0]} {what}; "
                                   f"rebuild it with: {cmd}")
        self.bound = float(m["bound"])

    def read(self, frame: str, height: int, width: int) -> np.ndarray:
        """Flow of one frame as float32 (height, width, 2) in units of ``bound``, vectors scaled
        to the resized frame."""
        p = flow_path(self.root, self.method, frame)
        img = read_image(p, cv2.IMREAD_COLOR)
        if img is None:
            raise DatasetError(f"missing flow file {p}; rebuild the cache with vidreid flow")
        f = decode(img)
        h, w = f.shape[:2]
        if (h, w) != (height, width):
            f = cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR)
            f[..., 0] *= width / w
            f[..., 1] *= height / h
        return f
