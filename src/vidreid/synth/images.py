"""Synthetic image re-ID benchmarks in the official layouts (the loaders in
:mod:`vidreid.data.datasets`): every image is the one frame of a rendered pedestrian, with the
same identities, cameras and look-alike groups as the video benchmarks. Each plan returns the
jobs (one per image) and the counts the loader must report for split 0.

Layouts: ``market1501`` (pid ``-1`` junk and ``0000`` distractors in ``bounding_box_test``),
``dukemtmcreid``, ``msmt17`` (list files), ``cuhk03`` (both ``images_labeled`` and
``images_detected`` with the two new-protocol ``.mat`` files), ``viper``, ``cuhk01``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .generate import Job, Plan, Preset, _rng, savemat_reproducible

IMAGE_LAYOUTS = ("market1501", "dukemtmcreid", "msmt17", "cuhk03", "viper", "cuhk01")

_TINY = dict(height=64, width=32)
IMAGE_PRESETS: dict[str, dict[str, Preset]] = {
    "market1501": {"tiny": Preset(**_TINY, cams=4, ids=14, train_ids=6, distractor_ids=4, junk=3, tracklets_per_cam=(1, 2)),
                   # Market-1501: 1,501 ids, 6 cameras, ~22 images per id; scaled to 300 ids
                   "market1501": Preset(cams=6, ids=300, train_ids=150, distractor_ids=120, junk=80,
                                        tracklets_per_cam=(2, 5))},
    "dukemtmcreid": {"tiny": Preset(**_TINY, cams=4, ids=14, train_ids=6, distractor_ids=3, tracklets_per_cam=(1, 2)),
                     "dukemtmcreid": Preset(cams=8, ids=300, train_ids=150, distractor_ids=60, tracklets_per_cam=(2, 5))},
    "msmt17": {"tiny": Preset(**_TINY, cams=5, ids=14, train_ids=6, tracklets_per_cam=(1, 2)),
               "msmt17": Preset(cams=15, ids=300, train_ids=150, tracklets_per_cam=(2, 4))},
    "cuhk03": {"tiny": Preset(**_TINY, cams=2, ids=14, train_ids=7, tracklets_per_cam=(2, 3)),
               # CUHK03: 1,467 ids, 2 views each (5 camera pairs), up to 5 images per view; scaled
               "cuhk03": Preset(cams=2, ids=300, train_ids=150, tracklets_per_cam=(3, 5))},
    "viper": {"tiny": Preset(**_TINY, cams=2, ids=12), "viper": Preset(cams=2, ids=632)},
    "cuhk01": {"tiny": Preset(**_TINY, cams=2, ids=12), "cuhk01": Preset(cams=2, ids=971)},
}


def _counts(items) -> dict:
    """items: pids, one per image -> {ids, tracklets, frames}."""
    return {"ids": len(set(items)), "tracklets": len(items), "frames": len(items)}


def _per_id_cams(p: Preset, rng, ids) -> dict[int, list[tuple[int, int]]]:
    """identity -> [(camera, image index within that camera), ...]: 2..min(cams, 4) cameras, a
    number of images in ``tracklets_per_cam`` in each."""
    out = {}
    for i in ids:
        ncam = int(rng.integers(2, min(p.cams, 4) + 1))
        cams = sorted(rng.choice(p.cams, ncam, replace=False).tolist())
        out[i] = [(c, k) for c in cams for k in range(int(rng.integers(p.tracklets_per_cam[0], p.tracklets_per_cam[1] + 1)))]
    return out


def _query_gallery(p: Preset, rng, name_fn, subdirs, junk_pid: int | None) -> tuple[Plan, dict]:
    """Market-1501 / DukeMTMC-reID: train, query (per test identity one image in each of its
    cameras but one, so every query has a cross-camera match) and gallery (the rest, distractor
    identities, junk)."""
    plan = Plan(num_identities=p.ids + p.distractor_ids)
    imgs = _per_id_cams(p, rng, range(p.ids))
    frame = 0
    counts: dict[str, list[int]] = {"train": [], "query": [], "gallery": []}

    def add(sub, ident, pid, cam, junk=False):
        nonlocal frame
        frame += int(rng.integers(1, 40))
        path = f"{subdirs[sub]}/{name_fn(pid, cam + 1, frame)}"
        plan.jobs.append(Job(ident, cam, [path], len(plan.jobs), junk))
        if not junk:
            counts[sub].append(pid)

    for i in range(p.ids):
        pid = i + 1
        if i < p.train_ids:
            for c, _ in imgs[i]:
                add("train", i, pid, c)
            continue
        cams = sorted({c for c, _ in imgs[i]})
        qcams = set(rng.choice(cams, len(cams) - 1, replace=False).tolist())
        used = set()
        for c, k in imgs[i]:
            if c in qcams and c not in used:
                used.add(c)
                add("query", i, pid, c)
            else:
                add("gallery", i, pid, c)
    for j in range(p.distractor_ids):
        add("gallery", p.ids + j, 0 if junk_pid is not None else p.ids + 1 + j, int(rng.integers(p.cams)))
    for _ in range(p.junk):
        add("gallery", int(rng.integers(p.ids)), junk_pid, int(rng.integers(p.cams)), junk=True)
    plan.expected = {s: _counts(v) for s, v in counts.items()}
    plan.expected["excluded"] = {"junk_images_gallery": p.junk} if p.junk else {}
    plan.expected["num_splits"] = 1
    return plan, {"write_protocol": lambda: None}


def _plan_market(p, seed, root):
    return _query_gallery(p, _rng(seed, 4), lambda pid, cam, f: f"{pid:04d}_c{cam}s1_{f:06d}_00.jpg".replace("-001", "-1"),
                          {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}, -1)


def _plan_duke(p, seed, root):
    return _query_gallery(p, _rng(seed, 4), lambda pid, cam, f: f"{pid:04d}_c{cam}_f{f:07d}.jpg",
                          {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}, None)


def _plan_msmt17(p, seed, root: Path):
    """MSMT17_V1 with list files; test identities are numbered from 0 again, as in the release."""
    rng = _rng(seed, 4)
    plan = Plan(num_identities=p.ids)
    imgs = _per_id_cams(p, rng, range(p.ids))
    lists: dict[str, list[str]] = {"train": [], "val": [], "query": [], "gallery": []}
    counts: dict[str, list[int]] = {"train": [], "query": [], "gallery": []}
    for i in range(p.ids):
        train = i < p.train_ids
        pid = i if train else i - p.train_ids
        cams = sorted({c for c, _ in imgs[i]})
        qcam = int(rng.choice(cams))
        for k, (c, _) in enumerate(imgs[i]):
            rel = f"{pid:04d}/{pid:04d}_{k:03d}_{c + 1:02d}_0303morning_{int(rng.integers(1, 9999)):04d}_0.jpg"
            folder = "train" if train else "test"
            plan.jobs.append(Job(i, c, [f"MSMT17_V1/{folder}/{rel}"], len(plan.jobs)))
            if train:
                lists["val" if k == 0 and i % 5 == 0 else "train"].append(f"{rel} {pid}")
                counts["train"].append(pid)
            else:
                sub = "query" if c == qcam and not any(x.startswith(f"{pid:04d}/") for x in lists["query"]) else "gallery"
                lists[sub].append(f"{rel} {pid}")
                counts[sub].append(pid + 100000)

    def write():
        for k, v in lists.items():
            (root / "MSMT17_V1" / f"list_{k}.txt").write_text("".join(x + "\n" for x in v))

    plan.expected = {s: _counts(v) for s, v in counts.items()}
    plan.expected.update({"excluded": {}, "num_splits": 1})
    return plan, {"write_protocol": write}


def _plan_cuhk03(p, seed, root: Path):
    """Both image sets and both new-protocol files, over the same people (the detected boxes are
    rendered again with another seed: another crop of the same person)."""
    rng = _rng(seed, 4)
    plan = Plan(num_identities=p.ids)
    files, labels, cams = [], [], []
    for i in range(p.ids):
        n_a, n_b = (int(rng.integers(p.tracklets_per_cam[0], p.tracklets_per_cam[1] + 1)) for _ in range(2))
        for cam, n in ((1, n_a), (2, n_b)):
            for k in range(n):
                files.append(f"{1 + i % 5}_{i + 1:03d}_{cam}_{k + 1:02d}.png")
                labels.append(i + 1)
                cams.append(cam)
    for variant, off in (("labeled", 0), ("detected", 10 ** 6)):
        for j, (f, lab, cam) in enumerate(zip(files, labels, cams)):
            plan.jobs.append(Job(lab - 1, cam - 1, [f"images_{variant}/{f}"], off + j))
    labels_a = np.array(labels)
    train_idx = [j for j, lab in enumerate(labels) if lab <= p.train_ids]
    query_idx, gallery_idx = [], []
    seen = set()
    for j, (lab, cam) in enumerate(zip(labels, cams)):
        if lab <= p.train_ids:
            continue
        if (lab, cam) not in seen and len([1 for s in seen if s[0] == lab]) < 2:
            seen.add((lab, cam))
            query_idx.append(j)  # one query per person and camera, as the protocol picks
        else:
            gallery_idx.append(j)

    def write():
        cell = np.empty((len(files), 1), dtype=object)
        for j, f in enumerate(files):
            cell[j, 0] = f
        for variant in ("labeled", "detected"):
            savemat_reproducible(root / f"cuhk03_new_protocol_config_{variant}.mat", {
                "filelist": cell, "labels": labels_a.reshape(-1, 1).astype(np.float64),
                "camId": np.array(cams).reshape(-1, 1).astype(np.float64),
                "train_idx": (np.array(train_idx) + 1).reshape(-1, 1).astype(np.float64),
                "query_idx": (np.array(query_idx) + 1).reshape(-1, 1).astype(np.float64),
                "gallery_idx": (np.array(gallery_idx) + 1).reshape(-1, 1).astype(np.float64)})

    plan.expected = {"train": _counts([labels[j] for j in train_idx]), "query": _counts([labels[j] for j in query_idx]),
                     "gallery": _counts([labels[j] for j in gallery_idx]), "excluded": {}, "num_splits": 1}
    return plan, {"write_protocol": write}


def _plan_pairs(p, seed, root: Path, layout: str):
    """VIPeR (one image per camera, cam_a/cam_b .bmp) or CUHK01 (two per camera, campus/*.png)."""
    from ..data.datasets.pairsplits import CUHK01, VIPeR

    plan = Plan(num_identities=p.ids)
    per_cam = 1 if layout == "viper" else 2
    for i in range(p.ids):
        for cam in (0, 1):
            for k in range(per_cam):
                path = (f"VIPeR/{'cam_a' if cam == 0 else 'cam_b'}/{i:03d}_{(0, 90)[cam] + 45 * k:d}.bmp" if layout == "viper"
                        else f"campus/{i + 1:04d}{cam * 2 + k + 1:03d}.png")
                plan.jobs.append(Job(i, cam, [path], len(plan.jobs)))
    cls = VIPeR if layout == "viper" else CUHK01
    nt = min(cls.num_train, p.ids // 2)
    n = per_cam
    plan.expected = {"train": {"ids": nt, "tracklets": 2 * n * nt, "frames": 2 * n * nt},
                     "query": {"ids": p.ids - nt, "tracklets": n * (p.ids - nt), "frames": n * (p.ids - nt)},
                     "gallery": {"ids": p.ids - nt, "tracklets": n * (p.ids - nt), "frames": n * (p.ids - nt)},
                     "excluded": {}, "num_splits": 10}
    return plan, {"write_protocol": lambda: None}


def plan_image_layout(layout: str, p: Preset, seed: int, root: Path) -> tuple[Plan, dict]:
    """The plan of an image layout (:data:`IMAGE_LAYOUTS`)."""
    if layout == "market1501":
        return _plan_market(p, seed, root)
    if layout == "dukemtmcreid":
        return _plan_duke(p, seed, root)
    if layout == "msmt17":
        return _plan_msmt17(p, seed, root)
    if layout == "cuhk03":
        return _plan_cuhk03(p, seed, root)
    return _plan_pairs(p, seed, root, layout)
