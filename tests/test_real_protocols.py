"""The real protocol files in ../shared/data parse and reproduce the published numbers
(skipped with a reason when ../shared is absent)."""

from __future__ import annotations

import json

from vidreid.data.datasets import MARS, PRID2011
from vidreid.synth import PRID_SHORT_PEOPLE, make_plan

from .conftest import shared_path


def test_mars_real_metadata(tmp_path):
    info = shared_path("mars_info")
    (tmp_path / "info").symlink_to(info)
    ds = MARS(tmp_path, verify_files=False)
    st = ds.stats()
    assert st["train"]["ids"] == 625 and st["train"]["tracklets"] == 8298
    assert st["test_tracklets_total"] == 12180
    assert st["test_junk_tracklets"] == 870 and st["excluded"]["junk_tracklets"] == 870
    assert st["test_distractor_tracklets"] == 3248
    # the official gallery (test_mars.m: every test tracklet, the queries too, minus junk)
    assert st["gallery_protocol"] == "all_test"
    assert st["query"]["tracklets"] == 1980 and st["gallery"]["tracklets"] == 12180 - 870 == 11310
    assert st["query"]["valid"] == 1980 and st["query"]["skipped_no_cross_camera_match"] == 0
    split = ds.split()
    # every query is in the gallery: the evaluator's same-pid-same-camid rule removes it per query
    gal = {t.name for t in split.gallery}
    assert all(q.name in gal for q in split.query)
    # torchreid's protocol, kept as the option
    st2 = MARS(tmp_path, verify_files=False, gallery="exclude_query").stats()
    assert st2["gallery"]["tracklets"] == 9330
    assert st2["query"]["valid"] == 1840 and st2["query"]["skipped_no_cross_camera_match"] == 140
    # frames ordered by frame number inside every tracklet
    for t in split.query[:200]:
        nums = [int(f[-7:-4]) for f in t.frames]
        assert nums == sorted(nums)
    assert split.train[0].frames[0] == "bbox_train/0001/0001C1T0001F001.jpg"


def test_mars_cli_stats(tmp_path, capsys):
    from vidreid.cli import main

    (tmp_path / "info").symlink_to(shared_path("mars_info"))
    assert main(["stats", "--dataset", "mars", "--root", str(tmp_path), "--no-verify-files"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert (st["query"]["tracklets"], st["gallery"]["tracklets"], st["excluded"]["junk_tracklets"]) == (1980, 11310, 870)
    assert st["query"]["valid"] == 1980
    assert main(["stats", "--dataset", "mars", "--root", str(tmp_path), "--no-verify-files",
                 "--mars-gallery", "exclude_query"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert (st["gallery"]["tracklets"], st["query"]["valid"], st["query"]["skipped_no_cross_camera_match"]) == (9330, 1840, 140)


def test_mars_real_evaluation_shapes(tmp_path):
    """End to end through evaluate_rank on the real ids: with the official gallery every query
    is scored (none skipped) and its own tracklet never counts as a match; with torchreid's
    protocol 140 queries are skipped."""
    import numpy as np

    from vidreid.metrics import evaluate_rank

    (tmp_path / "info").symlink_to(shared_path("mars_info"))
    for gallery, valid in (("all_test", 1980), ("exclude_query", 1840)):
        s = MARS(tmp_path, verify_files=False, gallery=gallery).split()
        f = lambda ts, a: np.array([getattr(t, a) for t in ts])  # noqa: E731
        qp, gp, qc, gc = f(s.query, "pid"), f(s.gallery, "pid"), f(s.query, "camid"), f(s.gallery, "camid")
        # a distance that puts each query's own tracklet first: it must not be a rank-1 hit
        pos = {t.name: j for j, t in enumerate(s.gallery)}
        d = np.random.default_rng(0).random((len(qp), len(gp))) + 1.0
        if gallery == "all_test":
            d[np.arange(len(qp)), [pos[q.name] for q in s.query]] = 0.0
        r = evaluate_rank(d, qp, gp, qc, gc)
        assert r.num_valid_queries == valid and r.num_skipped_queries == 1980 - valid
        assert r.cmc[0] < 0.05  # random order otherwise: the self-match was excluded


def test_prid_real_splits_shape():
    splits = json.loads(shared_path("prid2011", "splits_prid2011.json").read_text())
    assert len(splits) == 10
    people = set()
    for s in splits:
        assert len(s["train"]) == 89 and len(s["test"]) == 89 and not set(s["train"]) & set(s["test"])
        people |= set(s["train"]) | set(s["test"])
    assert len(people) == 178
    # exactly the 22 people the synthetic preset makes too short are the ones left out
    assert {f"person_{i:04d}" for i in range(1, 201)} - people == {f"person_{i:04d}" for i in PRID_SHORT_PEOPLE}


def test_prid_real_splits_apply_to_synthetic_preset(tmp_path):
    """The PRID-like preset's eligible people (>= 27 frames in both cameras) are exactly the
    178 of the real splits file, so the real file applies unchanged (checked on the plan, without
    rendering 25k frames)."""
    splits = json.loads(shared_path("prid2011", "splits_prid2011.json").read_text())
    real = {p for s in splits for p in s["train"] + s["test"]}
    plan, _, p = make_plan("prid2011", "prid2011", tmp_path)
    lengths: dict = {}
    for j in plan.jobs:
        cam, person = j.paths[0].split("/")[2:4]
        lengths[(cam, person)] = len(j.paths)
    eligible = {person for (cam, person), n in lengths.items() if cam == "cam_a" and int(person[-4:]) <= 200
                and n >= 27 and lengths[("cam_b", person)] >= 27}
    assert eligible == real


def test_prid_loader_with_real_splits_on_tiny_layout(tiny_tree, tmp_path):
    """The loader reads the real json; on a tree lacking its people it names the missing folder."""
    import pytest

    from vidreid.errors import DatasetError

    real = shared_path("prid2011", "splits_prid2011.json")
    with pytest.raises(DatasetError, match="person_0"):
        PRID2011(tiny_tree("prid2011"), splits_file=real)


def _compute_ap_port(good_image, junk_image, index):
    """A line-by-line port of compute_AP.m (liangzheng06/MARS-evaluation, utils/): 1-based
    MATLAB loops become 0-based Python ones; ``index`` is the stable ascending sort of one
    query's distances over the whole gallery. Returns (ap, cmc)."""
    cmc = [0] * len(index)
    ngood = len(good_image)
    good, junk = set(good_image), set(junk_image)
    old_recall, old_precision, ap, intersect_size, j, good_now, njunk = 0.0, 1.0, 0.0, 0, 0, 0, 0
    for n in range(len(index)):
        flag = 0
        if index[n] in good:
            for m in range(n - njunk, len(index)):
                cmc[m] = 1
            flag = 1
            good_now += 1
        if index[n] in junk:
            njunk += 1
            continue
        if flag == 1:
            intersect_size += 1
        recall = intersect_size / ngood if ngood else float("nan")
        precision = intersect_size / (j + 1)
        ap = ap + (recall - old_recall) * ((old_precision + precision) / 2)
        old_recall, old_precision = recall, precision
        j += 1
        if good_now == ngood:
            return ap, cmc
    return ap, cmc


def _evaluation_mars_port(dist, label_gallery, label_query, cam_gallery, cam_query, max_rank=20):
    """evaluation_mars.m, per query (dist is Q x G here; MATLAB's is G x Q): junk = gallery pid
    -1 plus the query's pid in its own camera; the sort is stable, like MATLAB's."""
    import numpy as np

    aps, cmcs = [], []
    junk0 = list(np.nonzero(label_gallery == -1)[0])
    for k in range(dist.shape[0]):
        pos = np.nonzero(label_gallery == label_query[k])[0]
        good = pos[cam_gallery[pos] != cam_query[k]]
        junk = junk0 + list(pos[cam_gallery[pos] == cam_query[k]])
        index = np.argsort(dist[k], kind="stable")
        ap, cmc = _compute_ap_port(list(good), junk, list(index[:len(index)]))
        aps.append(ap)
        cmcs.append(cmc[:max_rank])
    return np.array(aps), np.array(cmcs, float)


def test_map_trapezoid_equals_official_compute_ap_on_real_mars(tmp_path):
    """mAP_trapezoid equals the port of the official code on the real MARS test metadata and
    official gallery (a subset of the queries, against all 11,310 gallery tracklets), with
    features quantised so that many distances tie exactly, junk in the gallery, and one query
    made to have only junk matches (the official code gives NaN for it; vidreid skips and
    counts it). CMC equals too, and the non-interpolated mAP is never below it."""
    import numpy as np

    from vidreid.metrics import evaluate_rank

    (tmp_path / "info").symlink_to(shared_path("mars_info"))
    s = MARS(tmp_path, verify_files=False).split()
    f = lambda ts, a: np.array([getattr(t, a) for t in ts])  # noqa: E731
    qp, gp, qc, gc = f(s.query, "pid"), f(s.gallery, "pid"), f(s.query, "camid"), f(s.gallery, "camid")
    rng = np.random.default_rng(3)
    pick = np.sort(rng.choice(len(qp), 120, replace=False))
    qp, qc = qp[pick], qc[pick].copy()
    # pid-dependent features with noise, rounded so distances tie
    ids = np.unique(np.concatenate([qp, gp]))
    centre = {p: rng.standard_normal(8) for p in ids}
    gfeat = np.round(np.stack([centre[p] for p in gp]) + 1.2 * rng.standard_normal((len(gp), 8)))
    qfeat = np.round(np.stack([centre[p] for p in qp]) + 1.2 * rng.standard_normal((len(qp), 8)))
    d = ((qfeat[:, None, :] - gfeat[None, :, :]) ** 2).sum(-1)
    assert (d[0][:, None] == d[0][None, :]).sum() > 10 * len(gp)  # ties, plenty
    # query 0: all its same-pid gallery items moved into its own camera, so they are all junk
    gp_mod, gc_mod = gp.copy(), gc.copy()
    gc_mod[gp_mod == qp[0]] = qc[0]
    # junk of the official code's other kind (pid -1) in the gallery: 40 items relabelled
    junk_idx = rng.choice(np.nonzero(gp_mod != qp[0])[0], 40, replace=False)
    gp_mod[junk_idx] = -1
    aps, cmcs = _evaluation_mars_port(d, gp_mod, qp, gc_mod, qc)
    assert np.isnan(aps[0]) and not np.isnan(aps[1:]).any()
    # vidreid's loader removes pid -1 from the gallery (as evaluation_mars.m's junk0 does)
    keep = gp_mod != -1
    r = evaluate_rank(d[:, keep], qp, gp_mod[keep], qc, gc_mod[keep], max_rank=20)
    assert r.num_skipped_queries == 1 and r.num_valid_queries == len(qp) - 1
    np.testing.assert_allclose(r.mAP_trapezoid, aps[1:].mean(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.cmc, cmcs[1:].mean(0), rtol=0, atol=1e-12)
    assert r.mAP >= r.mAP_trapezoid and r.mAP - r.mAP_trapezoid > 1e-3
