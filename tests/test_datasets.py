"""Loaders on generated trees: counts, frame order, naming styles, and every malformed-tree error."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import scipy.io

from vidreid.data.datasets import DATASETS, build_dataset
from vidreid.errors import ConfigError, DatasetError

from .conftest import manifest

LAYOUTS = ["prid2011", "ilidsvid", "mars", "dukev", "folder"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_loader_counts_match_generator(tiny_tree, layout):
    root = tiny_tree(layout)
    exp = manifest(root)["expected"]
    st = build_dataset(layout, root).stats()
    for sub in ("train", "query", "gallery"):
        for k in ("ids", "tracklets", "frames"):
            assert st[sub][k] == exp[sub][k], (sub, k)
    assert st["excluded"] == exp["excluded"]
    assert st["num_splits"] == exp["num_splits"]
    assert st["query"]["valid"] == st["query"]["tracklets"]  # the generator leaves every query a match
    if layout == "mars":
        st = build_dataset(layout, root, gallery="exclude_query").stats()
        for k in ("ids", "tracklets", "frames"):
            assert st["gallery"][k] == exp["gallery_exclude_query"][k]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_frames_ordered_by_frame_number(tiny_tree, layout):
    import re

    split = build_dataset(layout, tiny_tree(layout)).split(0)
    for t in split.train + split.query + split.gallery:
        nums = []
        for f in t.frames:
            name = f.rsplit("/", 1)[1]
            m = re.search(r"F(\d{3,4})", name) if layout in ("mars", "dukev") else re.search(r"(\d+)\.\w+$", name)
            nums.append(int(m.group(1)))
        assert nums == sorted(nums) and len(set(nums)) == len(nums)
        assert not any(f.startswith("/") for f in t.frames)  # relative to the root


def test_folder_orders_numerically_not_lexically(tmp_path):
    import cv2

    d = tmp_path / "query" / "0001" / "c1_a"
    d.mkdir(parents=True)
    g = tmp_path / "gallery" / "0001" / "c2_b"
    g.mkdir(parents=True)
    img = np.zeros((8, 4, 3), np.uint8)
    for n in (10, 9, 100, 1):  # lexical order would be 1, 10, 100, 9
        cv2.imwrite(str(d / f"frame_{n}.png"), img)
    cv2.imwrite(str(g / "5.png"), img)
    t = build_dataset("folder", tmp_path).split(0).query[0]
    assert [f.rsplit("_", 1)[1] for f in t.frames] == ["1.png", "9.png", "10.png", "100.png"]
    assert t.camid == 1 and t.pid == 1


@pytest.mark.parametrize("style", ["compact", "underscore", "mixed"])
def test_duke_both_naming_styles(tiny_tree, style):
    root = tiny_tree("dukev", duke_style=style)
    names = [p.name for p in (root / "train").rglob("*.jpg")]
    has_us = any("_C" in n for n in names)
    has_compact = any("_C" not in n for n in names)
    assert (has_us, has_compact) == {"compact": (False, True), "underscore": (True, False), "mixed": (True, True)}[style]
    split = build_dataset("dukev", root).split(0)
    exp = manifest(root)["expected"]
    assert len(split.train) == exp["train"]["tracklets"]
    # camid is read from the names and is one of the preset's cameras
    assert {t.camid for t in split.train} <= set(range(1, 5))


def test_unknown_dataset_lists_valid():
    with pytest.raises(ConfigError, match="valid"):
        build_dataset("nope", "/tmp")


def _copy(tree, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(tree, dst)
    return dst


def test_prid_errors(tiny_tree, tmp_path):
    root = _copy(tiny_tree("prid2011"), tmp_path)
    with pytest.raises(DatasetError, match=r"missing directory .*multi_shot/cam_a: expected PRID-2011 person folders"):
        build_dataset("prid2011", tmp_path / "missing")
    splits = json.loads((root / "splits_prid2011.json").read_text())
    splits[0]["test"][0] = "person_0150"
    (root / "splits_prid2011.json").write_text(json.dumps(splits))
    with pytest.raises(DatasetError, match="person_0150"):
        build_dataset("prid2011", root)
    (root / "splits_prid2011.json").unlink()
    with pytest.raises(DatasetError, match="splits_prid2011.json"):
        build_dataset("prid2011", root)


def test_malformed_frame_and_folder_names(tiny_tree, tmp_path):
    root = _copy(tiny_tree("prid2011"), tmp_path)
    person = root / "prid_2011/multi_shot/cam_a/person_0001"
    (person / "0001.png").rename(person / "frame1.png")
    with pytest.raises(DatasetError, match=r"frame1\.png.*NNNN\.png"):
        build_dataset("prid2011", root)
    (person / "frame1.png").rename(person / "0001.png")
    (root / "prid_2011/multi_shot/cam_a/guy_1").mkdir()
    with pytest.raises(DatasetError, match="guy_1"):
        build_dataset("prid2011", root)
    (root / "prid_2011/multi_shot/cam_a/guy_1").rmdir()
    for f in person.iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="empty tracklet folder"):
        build_dataset("prid2011", root)


def test_duplicate_frame_number(tmp_path):
    import cv2

    d = tmp_path / "query" / "0001" / "c1"
    d.mkdir(parents=True)
    cv2.imwrite(str(d / "a_7.png"), np.zeros((4, 4, 3), np.uint8))
    cv2.imwrite(str(d / "b_007.png"), np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "gallery").mkdir()
    with pytest.raises(DatasetError, match="duplicate frame number 7"):
        build_dataset("folder", tmp_path)


def test_ilids_errors(tiny_tree, tmp_path):
    root = _copy(tiny_tree("ilidsvid"), tmp_path)
    mat = root / "train-test people splits" / "train_test_splits_ilidsvid.mat"
    ls = scipy.io.loadmat(str(mat))["ls_set"]
    scipy.io.savemat(str(mat), {"ls_set": ls[:, :-2]})
    with pytest.raises(DatasetError, match="shape"):
        build_dataset("ilidsvid", root)
    scipy.io.savemat(str(mat), {"wrong": ls})
    with pytest.raises(DatasetError, match="ls_set"):
        build_dataset("ilidsvid", root)
    scipy.io.savemat(str(mat), {"ls_set": ls + 100})
    with pytest.raises(DatasetError, match="indices"):
        build_dataset("ilidsvid", root)
    scipy.io.savemat(str(mat), {"ls_set": ls})
    cam2 = root / "i-LIDS-VID/sequences/cam2"
    shutil.rmtree(sorted(cam2.iterdir())[0])
    with pytest.raises(DatasetError, match="same people"):
        build_dataset("ilidsvid", root)


def test_ilids_split_semantics(tiny_tree):
    root = tiny_tree("ilidsvid")
    ds = build_dataset("ilidsvid", root)
    ls = scipy.io.loadmat(str(root / "train-test people splits/train_test_splits_ilidsvid.mat"))["ls_set"].astype(int)
    persons = sorted(p.name for p in (root / "i-LIDS-VID/sequences/cam1").iterdir())
    for s in (0, 9):
        sp = ds.split(s)
        half = ls.shape[1] // 2
        test_people = {int(persons[i - 1][6:]) for i in ls[s, :half]}
        assert {t.pid for t in sp.query} == test_people == {t.pid for t in sp.gallery}
        assert {t.camid for t in sp.query} == {1} and {t.camid for t in sp.gallery} == {2}
        assert not test_people & {t.pid for t in sp.train}


def test_mars_errors(tiny_tree, tmp_path):
    root = _copy(tiny_tree("mars"), tmp_path)
    info = root / "info"
    q = scipy.io.loadmat(str(info / "query_IDX.mat"))["query_IDX"]
    scipy.io.savemat(str(info / "query_IDX.mat"), {"query_IDX": q + 10_000})
    with pytest.raises(DatasetError, match="query_IDX"):
        build_dataset("mars", root)
    scipy.io.savemat(str(info / "query_IDX.mat"), {"query_IDX": q})
    tr = scipy.io.loadmat(str(info / "tracks_train_info.mat"))["track_train_info"]
    bad = tr.copy()
    bad[0, 2] += 1  # pid no longer matches the names
    scipy.io.savemat(str(info / "tracks_train_info.mat"), {"track_train_info": bad})
    with pytest.raises(DatasetError, match="does not match its track row 1"):
        build_dataset("mars", root)
    scipy.io.savemat(str(info / "tracks_train_info.mat"), {"track_train_info": tr[:, :3]})
    with pytest.raises(DatasetError, match="N x 4"):
        build_dataset("mars", root)
    scipy.io.savemat(str(info / "tracks_train_info.mat"), {"track_train_info": tr})
    first = next((root / "bbox_train").rglob("*.jpg"))
    first.unlink()
    with pytest.raises(DatasetError, match=first.name):
        build_dataset("mars", root)
    # without file verification the tree is not touched
    assert len(build_dataset("mars", root, verify_files=False).split().train) == len(tr)


def test_mars_junk_and_distractors(tiny_tree):
    root = tiny_tree("mars")
    split = build_dataset("mars", root).split(0)
    assert all(t.pid != -1 for t in split.gallery + split.query)
    assert split.excluded["junk_tracklets"] == manifest(root)["params"]["junk"]
    assert sum(t.pid == 0 for t in split.gallery) == manifest(root)["params"]["distractor_ids"]


def test_duke_errors(tiny_tree, tmp_path):
    root = _copy(tiny_tree("dukev"), tmp_path)
    trk = sorted((root / "train").glob("*/*"))[0]
    f = sorted(trk.iterdir())[0]
    f.rename(trk / ("9999" + f.name[4:]))
    with pytest.raises(DatasetError, match="pid"):
        build_dataset("dukev", root)
    (trk / ("9999" + f.name[4:])).rename(f)
    g = sorted(trk.iterdir())[0]
    cam = g.name[5]
    g.rename(trk / (g.name[:5] + ("9" if cam != "9" else "8") + g.name[6:]))
    with pytest.raises(DatasetError, match="several cameras"):
        build_dataset("dukev", root)


def test_min_seq_len_counts_exclusions(tiny_tree):
    root = tiny_tree("prid2011")
    full = build_dataset("prid2011", root).split(0)
    cut = build_dataset("prid2011", root, min_seq_len=12).split(0)
    dropped = sum(len(t) < 12 for t in full.train)
    assert len(cut.train) == len(full.train) - dropped
    assert cut.excluded.get("short_tracklets_train", 0) == dropped


def test_registry_complete():
    assert set(DATASETS) == {"prid2011", "ilidsvid", "mars", "dukev", "folder", "market1501", "dukemtmcreid", "msmt17",
                             "cuhk03_labeled", "cuhk03_detected", "viper", "cuhk01", "tracklets"}
