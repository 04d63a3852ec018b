"""The real protocol files in ../shared/data parse and reproduce the published numbers
(skipped with a reason when ../shared is absent)."""

from __future__ import annotations

import json

from vidreid.data.datasets import MARS, PRID2011
from vidreid.data.synthetic import PRID_SHORT_PEOPLE, make_plan

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
    assert st["query"]["tracklets"] == 1980 and st["gallery"]["tracklets"] == 9330
    split = ds.split()
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
    assert (st["query"]["tracklets"], st["gallery"]["tracklets"], st["excluded"]["junk_tracklets"]) == (1980, 9330, 870)


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
