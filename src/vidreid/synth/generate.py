"""The embedded synthetic benchmark: procedurally rendered pedestrian tracklets written in the
official layouts of PRID-2011, iLIDS-VID, MARS and DukeMTMC-VideoReID (and the user folder
layout), protocol files included, so that the whole pipeline runs with nothing downloaded.

What makes it a learning problem rather than a toy (see :mod:`vidreid.synth.render`):

* identities differ in body shape, clothing colours and patterns, hair, hat, shoes, and
  accessories visible only from some viewpoints (backpack from behind and the side, a shoulder
  bag on one side, a logo on the front), and walk with their own gait (cadence, stride, arm
  swing, bounce) animated frame by frame;
* cameras differ in background clutter, illumination, colour cast, preferred viewpoint,
  person scale, blur and noise;
* tracklets have occlusion episodes, detection-box jitter and variable lengths;
* a fraction of identities come in look-alike groups that differ only in gait or one small
  detail, so temporal modelling and fine detail can pay off;
* with the preset field ``detail = 1`` (``vidreid synth --set detail=1``) the detailed renderer
  adds clothing layers, faces, fabric texture, shading, passers-by, motion blur and JPEG
  compression to the same people, cameras and tracklets.

Every random choice comes from ``numpy.random.default_rng([seed, stream, index])``: the output
is a pure function of (layout, preset, seed), whatever the number of worker processes.

``generate(layout, preset, out, seed)`` writes the tree and ``synth_manifest.json``, which
records the counts the loaders must find (what ``vidreid stats`` prints).
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from ..errors import ConfigError
from ..fileio import encode_image
from .render import Camera, CameraDetail, Detail, Identity, TrackletRenderer

GENERATOR_VERSION = 1
VIDEO_LAYOUTS = ("prid2011", "ilidsvid", "mars", "dukev", "folder")
LAYOUTS = VIDEO_LAYOUTS + ("market1501", "dukemtmcreid", "msmt17", "cuhk03", "viper", "cuhk01")  # + synth/images.py

# The 22 of PRID-2011's 200 two-camera people that the standard splits leave out (their
# sequences are too short). Read off splits_prid2011.json; the PRID-like preset makes exactly
# these people short in one camera, so that the real splits file applies unchanged.
PRID_SHORT_PEOPLE = (6, 19, 31, 52, 57, 62, 71, 94, 106, 120, 136, 138, 139, 142, 145, 158, 159,
                     166, 183, 190, 199, 200)
PRID_MIN_LEN = 27  # people in the standard splits have at least this many frames per camera


@dataclass(frozen=True)
class Preset:
    """Size of a generated benchmark.

    Attributes:
        height, width: crop size in pixels.
        cams: number of cameras.
        ids: identities seen by >= 2 cameras (PRID/iLIDS: by both cameras), split into
            train and test by the protocol (PRID/iLIDS splits) or by ``train_ids``.
        train_ids: MARS/Duke/folder: how many of ``ids`` are training identities.
        extra_a, extra_b: PRID: people seen only by camera A / only by camera B.
        distractor_ids: MARS: distractor tracklets (pid 0); Duke/folder: gallery-only identities.
        junk: MARS: junk tracklets (pid -1).
        len_min, len_max, len_median: tracklet length distribution (log-normal, clipped).
        tracklets_per_cam: MARS/Duke: (min, max) tracklets of one identity in one camera.
        lookalike_frac: fraction of identities that belong to look-alike groups.
        short_people: PRID: people made too short in one camera, left out of the splits.
        split_min_len: PRID: frames per camera a person needs to enter the splits (27 in PRID-2011).
        detail: the renderer: 0 the first one (flat-coloured people; every synthetic number in
            docs/RESULTS.md not marked "detailed renderer" was measured on it), 1 the detailed renderer
            (:class:`~vidreid.synth.render.Detail`: clothing layers, collar, belt, face, fabric
            texture, body shading, passers-by in the crop, motion blur, JPEG compression). Level 1
            draws everything level 0 draws from the same random streams and adds its own, so the
            identities, cameras, tracklet lengths and protocol files are the same at both levels.
    """

    height: int = 128
    width: int = 64
    cams: int = 2
    ids: int = 200
    train_ids: int = 0
    extra_a: int = 0
    extra_b: int = 0
    distractor_ids: int = 0
    junk: int = 0
    len_min: int = 5
    len_max: int = 200
    len_median: int = 60
    tracklets_per_cam: tuple[int, int] = (1, 1)
    lookalike_frac: float = 0.35
    short_people: tuple[int, ...] = ()
    split_min_len: int = PRID_MIN_LEN
    num_splits: int = 10
    detail: int = 0


_TINY = dict(height=64, width=32, len_min=6, len_max=20, len_median=10)
PRESETS: dict[str, dict[str, Preset]] = {
    "prid2011": {
        "tiny": Preset(**_TINY, cams=2, ids=14, extra_a=2, extra_b=3, short_people=(3, 9), split_min_len=6),
        # 200 two-camera people as in PRID-2011 (178 in the splits); single-camera people and
        # lengths scaled down for CPU (real: 385/749 people, 5-675 frames, mean ~100).
        "prid2011": Preset(cams=2, ids=200, extra_a=37, extra_b=110, len_min=PRID_MIN_LEN, len_max=160,
                           len_median=48, short_people=PRID_SHORT_PEOPLE),
    },
    "ilidsvid": {
        "tiny": Preset(**_TINY, cams=2, ids=12),
        # 300 people, 2 cameras as in iLIDS-VID (lengths 23-192, mean 73; scaled down)
        "ilidsvid": Preset(cams=2, ids=300, len_min=23, len_max=120, len_median=45),
    },
    "mars": {
        "tiny": Preset(**_TINY, cams=3, ids=12, train_ids=6, distractor_ids=3, junk=2, tracklets_per_cam=(1, 2)),
        # MARS: 1,261 ids in 6 cameras, ~16 tracklets per id, lengths 2-920; scaled to 240 ids
        "mars": Preset(cams=6, ids=240, train_ids=120, distractor_ids=200, junk=60, len_min=5, len_max=120,
                       len_median=30, tracklets_per_cam=(1, 3)),
    },
    "dukev": {
        "tiny": Preset(**_TINY, cams=4, ids=12, train_ids=6, distractor_ids=3, tracklets_per_cam=(1, 2)),
        # Duke-V: 1,404 ids + 408 distractors in 8 cameras, long tracklets (~168 frames); scaled
        "dukev": Preset(cams=8, ids=240, train_ids=120, distractor_ids=70, len_min=20, len_max=200, len_median=60,
                        tracklets_per_cam=(1, 1)),
    },
}
PRESETS["folder"] = {"tiny": PRESETS["dukev"]["tiny"], "folder": PRESETS["dukev"]["dukev"]}


def _image_presets() -> None:
    from .images import IMAGE_PRESETS

    PRESETS.update(IMAGE_PRESETS)


def preset(layout: str, name: str) -> Preset:
    """The preset ``name`` of ``layout``; ``name`` may also be the layout's own name.

    Raises:
        ConfigError: unknown layout or preset (lists the valid ones).
    """
    if layout not in PRESETS:
        raise ConfigError(f"unknown layout {layout!r}; valid: {list(PRESETS)}")
    if name not in PRESETS[layout]:
        raise ConfigError(f"unknown preset {name!r} for layout {layout!r}; valid: {sorted(PRESETS[layout])}")
    return PRESETS[layout][name]


# ----------------------------------------------------------------------------------------- world

def savemat_reproducible(path: Path, data: dict) -> None:
    """scipy.io.savemat with a fixed 116-byte text header instead of one holding the creation
    time, so that generated protocol files are byte-identical for the same seed."""
    scipy.io.savemat(str(path), data)
    header = f"MATLAB 5.0 MAT-file, written by vidreid synth v{GENERATOR_VERSION}".ljust(116).encode()
    with open(path, "r+b") as f:
        f.write(header)


def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, stream, index])


class World:
    """Identities and cameras of one generated benchmark, built lazily from the seed."""

    def __init__(self, seed: int, p: Preset, num_identities: int):
        self.seed, self.p = seed, p
        self.cameras = [Camera.sample(_rng(seed, 2, c), p.height, p.width) for c in range(p.cams)]
        rng = _rng(seed, 1, 10**6)
        self.identities: list[Identity] = [Identity.sample(_rng(seed, 1, i)) for i in range(num_identities)]
        if p.detail:  # own streams (7, 8): the level-0 draws above and below are unchanged
            for i, ident in enumerate(self.identities):
                ident.detail = Detail.sample(_rng(seed, 7, i))
            for c, cam in enumerate(self.cameras):
                cam.detail = CameraDetail.sample(_rng(seed, 8, c))
        self.groups: list[list[int]] = []
        order = rng.permutation(p.ids)  # look-alike groups among the main identities only
        pos, target = 0, int(p.lookalike_frac * p.ids)
        while pos < target and pos + 1 < len(order):
            size = int(rng.integers(2, 4))
            members = [int(i) for i in order[pos:pos + size]]
            base = self.identities[members[0]]
            for k, m in enumerate(members[1:]):
                how = "gait" if (k + len(self.groups)) % 2 == 0 else "detail"
                self.identities[m] = base.lookalike(_rng(seed, 5, m), how)
            self.groups.append(members)
            pos += size


def _lengths(rng: np.random.Generator, n: int, p: Preset, lo: int | None = None, hi: int | None = None) -> np.ndarray:
    lo = p.len_min if lo is None else lo
    hi = p.len_max if hi is None else hi
    x = rng.lognormal(math.log(p.len_median), 0.55, n)
    return np.clip(np.round(x), lo, hi).astype(int)


@dataclass
class Job:
    identity: int  # index into World.identities, -1 for junk with no person
    cam: int  # 0-based camera index
    paths: list[str]  # frame paths relative to the root, in frame order
    seed: int
    junk: bool = False


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    expected: dict = field(default_factory=dict)
    num_identities: int = 0


def _subset_counts(items: list[tuple[int, int]]) -> dict:
    """items: (pid, length) per tracklet -> {ids, tracklets, frames}."""
    return {"ids": len({p for p, _ in items}), "tracklets": len(items), "frames": int(sum(n for _, n in items))}


# ----------------------------------------------------------------------------------------- plans

def _plan_prid(p: Preset, seed: int, root: Path) -> tuple[Plan, dict]:
    rng = _rng(seed, 4)
    plan = Plan(num_identities=p.ids + p.extra_a + p.extra_b)
    lengths = {}
    short = set(p.short_people)
    for cam in range(2):
        L = _lengths(rng, p.ids, p, lo=max(p.len_min, p.split_min_len))
        for i in range(p.ids):
            lengths[(i + 1, cam)] = int(L[i])
    for pid in sorted(short):  # too short in exactly one camera
        lengths[(pid, int(rng.integers(2)))] = int(rng.integers(min(5, p.split_min_len - 1), p.split_min_len))
    seed_k = 0
    for cam, cname in enumerate(("cam_a", "cam_b")):
        for i in range(p.ids):
            pid = i + 1
            n = lengths[(pid, cam)]
            d = f"prid_2011/multi_shot/{cname}/person_{pid:04d}"
            plan.jobs.append(Job(i, cam, [f"{d}/{k + 1:04d}.png" for k in range(n)], seed_k))
            seed_k += 1
        extra = p.extra_a if cam == 0 else p.extra_b
        L = _lengths(rng, extra, p, lo=5)
        for j in range(extra):
            pid = 201 + j  # as in PRID-2011: numbers above 200 are single-camera people
            ident = p.ids + j + (0 if cam == 0 else p.extra_a)
            d = f"prid_2011/multi_shot/{cname}/person_{pid:04d}"
            plan.jobs.append(Job(ident, cam, [f"{d}/{k + 1:04d}.png" for k in range(int(L[j]))], seed_k))
            seed_k += 1
    eligible = [pid for pid in range(1, p.ids + 1) if min(lengths[(pid, 0)], lengths[(pid, 1)]) >= p.split_min_len]
    splits = []
    for s in range(p.num_splits):
        perm = _rng(seed, 6, s).permutation(eligible)
        half = len(perm) // 2
        splits.append({"train": sorted(f"person_{x:04d}" for x in perm[half:2 * half]),
                       "test": sorted(f"person_{x:04d}" for x in perm[:half])})

    def write_protocol():
        (root / "splits_prid2011.json").write_text(json.dumps(splits, indent=1))

    s0 = splits[0]
    tr = [int(x[-4:]) for x in s0["train"]]
    te = [int(x[-4:]) for x in s0["test"]]
    plan.expected = {
        "train": _subset_counts([(x, lengths[(x, c)]) for c in (0, 1) for x in tr]),
        "query": _subset_counts([(x, lengths[(x, 0)]) for x in te]),
        "gallery": _subset_counts([(x, lengths[(x, 1)]) for x in te]),
        "excluded": {"people_cam_a_only": p.extra_a, "people_cam_b_only": p.extra_b,
                     "people_both_cameras_not_in_split": p.ids - len(tr) - len(te)},
        "num_splits": p.num_splits,
    }
    return plan, {"write_protocol": write_protocol}


def _plan_ilids(p: Preset, seed: int, root: Path) -> tuple[Plan, dict]:
    rng = _rng(seed, 4)
    plan = Plan(num_identities=p.ids)
    # iLIDS-VID person numbers have gaps (300 people numbered up to 319)
    numbers = np.sort(rng.choice(np.arange(1, int(p.ids * 319 / 300) + 1), p.ids, replace=False))
    lengths = {}
    k = 0
    for cam in range(2):
        L = _lengths(rng, p.ids, p)
        for i, num in enumerate(numbers):
            c = f"cam{cam + 1}"
            n = int(L[i])
            lengths[(int(num), cam)] = n
            start = int(rng.integers(1, 500))
            d = f"i-LIDS-VID/sequences/{c}/person{num:03d}"
            plan.jobs.append(Job(i, cam, [f"{d}/{c}_person{num:03d}_{start + f:05d}.png" for f in range(n)], k))
            k += 1
    ls_set = np.stack([_rng(seed, 6, s).permutation(p.ids) + 1 for s in range(p.num_splits)]).astype(np.float64)

    def write_protocol():
        d = root / "train-test people splits"
        d.mkdir(parents=True, exist_ok=True)
        savemat_reproducible(d / "train_test_splits_ilidsvid.mat", {"ls_set": ls_set})

    half = p.ids // 2
    te = [int(numbers[i - 1]) for i in ls_set[0, :half].astype(int)]
    tr = [int(numbers[i - 1]) for i in ls_set[0, half:].astype(int)]
    plan.expected = {
        "train": _subset_counts([(x, lengths[(x, c)]) for c in (0, 1) for x in tr]),
        "query": _subset_counts([(x, lengths[(x, 0)]) for x in te]),
        "gallery": _subset_counts([(x, lengths[(x, 1)]) for x in te]),
        "excluded": {},
        "num_splits": p.num_splits,
    }
    return plan, {"write_protocol": write_protocol}


def _multi_cam_tracks(p: Preset, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(identity, cam, length) for every tracklet of the main identities: each is seen by
    2..min(cams, 4) cameras with ``tracklets_per_cam`` tracklets in each."""
    out = []
    for i in range(p.ids):
        ncam = int(rng.integers(2, min(p.cams, 4) + 1))
        cams = sorted(rng.choice(p.cams, ncam, replace=False).tolist())
        for c in cams:
            for _ in range(int(rng.integers(p.tracklets_per_cam[0], p.tracklets_per_cam[1] + 1))):
                out.append((i, c, int(_lengths(rng, 1, p)[0])))
    return out


def _choose_queries(tracks, ids, rng) -> set[int]:
    """Indices of query tracklets: per test identity, one tracklet in each of up to 3 of its
    cameras, always leaving one camera without a query so every query has a gallery match."""
    by_id: dict[int, dict[int, list[int]]] = {}
    for k, (i, c, _) in enumerate(tracks):
        if i in ids:
            by_id.setdefault(i, {}).setdefault(c, []).append(k)
    q = set()
    for i in sorted(by_id):
        cams = sorted(by_id[i])
        chosen = rng.choice(cams, min(len(cams) - 1, 3), replace=False)
        for c in chosen:
            q.add(by_id[i][int(c)][int(rng.integers(len(by_id[i][int(c)])))])
    return q


def _plan_mars(p: Preset, seed: int, root: Path) -> tuple[Plan, dict]:
    rng = _rng(seed, 4)
    tracks = _multi_cam_tracks(p, rng)
    pids = rng.permutation(np.arange(1, p.ids + 1))  # MARS interleaves train and test pids
    train_ids = set(range(p.train_ids))
    test_ids = set(range(p.train_ids, p.ids))
    queries = _choose_queries(tracks, test_ids, rng)
    plan = Plan(num_identities=p.ids + p.distractor_ids)
    rows = {"train": [], "test": []}  # (pid, cam, length, job ident, junk, is_query)
    for k, (i, c, n) in enumerate(tracks):
        sub = "train" if i in train_ids else "test"
        rows[sub].append((int(pids[i]), c, min(n, 999), i, False, k in queries))
    for j in range(p.distractor_ids):
        rows["test"].append((0, int(rng.integers(p.cams)), int(_lengths(rng, 1, p)[0]), p.ids + j, False, False))
    for j in range(p.junk):
        rows["test"].append((-1, int(rng.integers(p.cams)), int(rng.integers(2, 20)), int(rng.integers(p.ids)), True, False))
    names: dict[str, list[str]] = {"train": [], "test": []}
    info: dict[str, list[list[int]]] = {"train": [], "test": []}
    query_rows = []
    tcount: dict[tuple, int] = {}
    k_seed = 0
    for sub, folder in (("train", "bbox_train"), ("test", "bbox_test")):
        order = sorted(range(len(rows[sub])), key=lambda r: (rows[sub][r][0] if rows[sub][r][0] >= 0 else -1, rows[sub][r][1]))
        for r in order:
            pid, c, n, ident, junk, isq = rows[sub][r]
            ps = "00-1" if pid == -1 else f"{pid:04d}"
            t = tcount[(sub, ps, c)] = tcount.get((sub, ps, c), 0) + 1
            frames = [f"{ps}C{c + 1}T{t:04d}F{f + 1:03d}.jpg" for f in range(n)]
            start = len(names[sub]) + 1
            names[sub].extend(frames)
            info[sub].append([start, start + n - 1, pid, c + 1])
            if isq:
                query_rows.append(len(info[sub]))
            plan.jobs.append(Job(ident, c, [f"{folder}/{ps}/{fr}" for fr in frames], k_seed, junk))
            k_seed += 1

    def write_protocol():
        d = root / "info"
        d.mkdir(parents=True, exist_ok=True)
        for sub in ("train", "test"):
            (d / f"{sub}_name.txt").write_text("\n".join(names[sub]) + "\n")
            # the official files' types: int32 (N, 4) track info, uint16 (1, Q) query rows (torchreid
            # and other peer loaders index with them, which needs integers)
            savemat_reproducible(d / f"tracks_{sub}_info.mat",
                                 {f"track_{sub}_info": np.array(info[sub], np.int32).reshape(-1, 4)})
        qdt = np.uint16 if max(query_rows, default=0) <= np.iinfo(np.uint16).max else np.uint32
        savemat_reproducible(d / "query_IDX.mat", {"query_IDX": np.array([query_rows], qdt)})

    test = info["test"]
    qset = set(query_rows)
    # the official gallery (every non-junk test tracklet, the queries too) and torchreid's
    gal = [(r[2], r[1] - r[0] + 1) for r in test if r[2] != -1]
    gal_xq = [(r[2], r[1] - r[0] + 1) for k, r in enumerate(test, 1) if k not in qset and r[2] != -1]
    plan.expected = {
        "train": _subset_counts([(r[2], r[1] - r[0] + 1) for r in info["train"]]),
        "query": _subset_counts([(test[k - 1][2], test[k - 1][1] - test[k - 1][0] + 1) for k in query_rows]),
        "gallery": _subset_counts(gal),
        "gallery_exclude_query": _subset_counts(gal_xq),
        "excluded": {"junk_tracklets": p.junk},
        "num_splits": 1,
        "test_distractor_tracklets": p.distractor_ids,
    }
    return plan, {"write_protocol": write_protocol}


def _plan_duke_like(p: Preset, seed: int, root: Path, folder_layout: bool, style: str) -> tuple[Plan, dict]:
    rng = _rng(seed, 4)
    tracks = _multi_cam_tracks(p, rng)
    train_ids = set(range(p.train_ids))
    test_ids = set(range(p.train_ids, p.ids))
    # Duke: one query per test identity
    by_id: dict[int, list[int]] = {}
    for k, (i, c, n) in enumerate(tracks):
        by_id.setdefault(i, []).append(k)
    queries = {by_id[i][int(rng.integers(len(by_id[i])))] for i in sorted(test_ids)}
    for j in range(p.distractor_ids):
        tracks.append((p.ids + j, int(rng.integers(p.cams)), int(_lengths(rng, 1, p)[0])))
    plan = Plan(num_identities=p.ids + p.distractor_ids)
    counts: dict[str, list[tuple[int, int]]] = {"train": [], "query": [], "gallery": []}
    tnum: dict[int, int] = {}
    gframe = 0
    for k, (i, c, n) in enumerate(tracks):
        sub = "train" if i in train_ids else "query" if k in queries else "gallery"
        pid = i + 1
        t = tnum[pid] = tnum.get(pid, 0) + 1
        f0 = int(rng.integers(1, 5000))
        if folder_layout:
            d = f"{sub}/{pid:04d}/c{c + 1}_t{t:04d}"
            paths = [f"{d}/{f0 + f:06d}.jpg" for f in range(n)]
        else:
            d = f"{sub}/{pid:04d}/{t:04d}"
            under = style == "underscore" or (style == "mixed" and k % 2 == 1)
            fmt = "{:04d}_C{}_F{:04d}_X{:05d}.jpg" if under else "{:04d}C{}F{:04d}X{:05d}.jpg"
            paths = [f"{d}/" + fmt.format(pid, c + 1, (f0 + f) % 10000, gframe + f) for f in range(n)]
            if len({x.split('F')[-1][:4] for x in paths}) != n:  # frame numbers wrapped: shift the start
                paths = [f"{d}/" + fmt.format(pid, c + 1, 1 + f, gframe + f) for f in range(n)]
        gframe += n
        counts[sub].append((pid, n))
        plan.jobs.append(Job(i, c, paths, k))
    plan.expected = {s: _subset_counts(v) for s, v in counts.items()}
    plan.expected.update({"excluded": {}, "num_splits": 1})
    return plan, {"write_protocol": lambda: None}


# ---------------------------------------------------------------------------------------- writer

_WORLD: World | None = None
_ROOT: Path | None = None


def _render_job(job: Job) -> int:
    world, root = _WORLD, _ROOT
    p = world.p
    rng = _rng(world.seed, 3, job.seed)
    ident = world.identities[job.identity] if job.identity >= 0 else None
    r = TrackletRenderer(ident, world.cameras[job.cam], len(job.paths), rng, p.height, p.width, junk=job.junk,
                         detail_rng=_rng(world.seed, 9, job.seed) if p.detail else None)
    params = [cv2.IMWRITE_JPEG_QUALITY, 92]
    made = set()
    for path, frame in zip(job.paths, r.frames()):
        full = root / path
        if full.parent not in made:
            full.parent.mkdir(parents=True, exist_ok=True)
            made.add(full.parent)
        # encoded in memory, written as bytes: any path (OpenCV's imwrite crashes on non-UTF-8 ones)
        full.write_bytes(encode_image(frame, full.suffix, params if path.endswith(".jpg") else []))
    return len(job.paths)


def make_plan(layout: str, preset_name: str, out: str | Path, seed: int = 0, duke_style: str = "compact",
              **overrides) -> tuple[Plan, dict, Preset]:
    """Plan the tracklets of ``layout``/``preset_name`` without rendering (for tests/stats)."""
    p = preset(layout, preset_name)
    if overrides:
        p = replace(p, **overrides)
    if p.detail not in (0, 1):
        raise ConfigError(f"preset field detail must be 0 (the first renderer) or 1 (the detailed one), got {p.detail!r}")
    root = Path(out)
    if layout == "prid2011":
        plan, extra = _plan_prid(p, seed, root)
    elif layout == "ilidsvid":
        plan, extra = _plan_ilids(p, seed, root)
    elif layout == "mars":
        plan, extra = _plan_mars(p, seed, root)
    elif layout == "dukev":
        plan, extra = _plan_duke_like(p, seed, root, False, duke_style)
    elif layout == "folder":
        plan, extra = _plan_duke_like(p, seed, root, True, duke_style)
    else:
        from .images import plan_image_layout

        plan, extra = plan_image_layout(layout, p, seed, root)
    return plan, extra, p


def generate(layout: str, preset_name: str, out: str | Path, seed: int = 0, workers: int | None = None,
             duke_style: str = "compact", progress: bool = False, **overrides) -> dict:
    """Render the benchmark ``layout``/``preset_name`` into ``out`` (created) and write its
    protocol files and ``synth_manifest.json``.

    Args:
        layout: one of :data:`LAYOUTS`.
        preset_name: a key of ``PRESETS[layout]`` (``tiny`` or the layout's own name).
        out: the dataset root to write (what the loader's ``root`` is).
        seed: master seed; the output is a pure function of (layout, preset, seed, overrides).
        workers: processes (default: CPU count); does not change the output.
        duke_style: Duke frame names: ``compact`` (0001C6F0099X30823.jpg), ``underscore``
            (0001_C6_F0099_X30823.jpg) or ``mixed`` (alternating per tracklet).
        overrides: fields of :class:`Preset` to change (e.g. ``height=64``).

    Returns:
        The manifest dict: layout, preset, seed, the preset's fields, and ``expected``, the
        counts of split 0 that the dataset loader must report (ids / tracklets / frames per
        subset, exclusions).

    Raises:
        ConfigError: unknown layout, preset, or Duke style.
        ConfigError: ``out`` exists and is not an empty folder.
    """
    global _WORLD, _ROOT
    if duke_style not in ("compact", "underscore", "mixed"):
        raise ConfigError(f"duke_style must be compact, underscore or mixed, got {duke_style!r}")
    root = Path(out)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(f"--out {root} exists and is not an empty folder; choose an empty or new --out "
                          "(nothing there is replaced)")
    plan, extra, p = make_plan(layout, preset_name, root, seed, duke_style, **overrides)
    root.mkdir(parents=True, exist_ok=True)
    _WORLD, _ROOT = World(seed, p, plan.num_identities), root
    workers = workers or os.cpu_count() or 1
    jobs = sorted(plan.jobs, key=lambda j: -len(j.paths))  # long first: better load balance
    total = sum(len(j.paths) for j in jobs)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, unit="frame", desc=f"synth {layout}/{preset_name}")
    try:
        if workers > 1:
            with mp.get_context("fork").Pool(workers) as pool:
                for n in pool.imap_unordered(_render_job, jobs, chunksize=4):
                    if bar:
                        bar.update(n)
        else:
            for j in jobs:
                n = _render_job(j)
                if bar:
                    bar.update(n)
    finally:
        if bar:
            bar.close()
        groups = len(_WORLD.groups)
        _WORLD = None
    extra["write_protocol"]()
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "layout": layout,
        "preset": preset_name,
        "seed": seed,
        "duke_style": duke_style,
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(p).items()},
        "frames_written": total,
        "lookalike_groups": groups,
        "expected": plan.expected,
    }
    (root / "synth_manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


_image_presets()
