"""The CLI end to end on tiny trees, and the real PETS 2009 footage."""

from __future__ import annotations

import json

import pytest

from vidreid.cli import main

from .conftest import manifest, shared_path


def test_cli_synth_and_stats(tmp_path, capsys):
    out = tmp_path / "prid"
    assert main(["synth", "--layout", "prid2011", "--preset", "tiny", "--out", str(out), "--quiet", "--workers", "1"]) == 0
    capsys.readouterr()
    assert main(["stats", "--dataset", "prid2011", "--root", str(out)]) == 0
    st = json.loads(capsys.readouterr().out)
    exp = manifest(out)["expected"]
    assert st["query"]["tracklets"] == exp["query"]["tracklets"] and st["excluded"] == exp["excluded"]


def test_cli_errors_exit_2(tmp_path, capsys):
    assert main(["stats", "--dataset", "mars", "--root", str(tmp_path)]) == 2
    assert "info" in capsys.readouterr().err
    assert main(["train", "--config", "demo/prid2011", "optim.lrr=1"]) == 2
    assert "valid keys under optim" in capsys.readouterr().err


def test_cli_train_then_test(tiny_tree, tmp_path, capsys):
    root = tiny_tree("ilidsvid")
    common = [f"data.root={root}", "data.dataset=ilidsvid", "data.height=64", "data.width=32", "data.p=3", "data.k=2",
              "data.num_workers=1", "model.args={backbone: resnet18, pretrained: null, pretrained_anchor: 0}", "schedule.epochs=2",
              "train.progress=false", f"train.output_dir={tmp_path / 'run'}"]
    assert main(["train", "--config", "demo/prid2011", *common]) == 0
    assert "| ilidsvid | split 0 of 10 | baseline |" in capsys.readouterr().out
    assert main(["test", "--config", "demo/prid2011", "--checkpoint", str(tmp_path / "run" / "checkpoint.pt"),
                 "--out", str(tmp_path / "t"), *common]) == 0
    res = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert res["per_split"][0]["num_query"] == 6
    # untrained reference over all 10 splits: mean +- std
    no_anchor = [x.replace(", pretrained_anchor: 0", "") for x in common[:-3]]  # the reference has none
    assert main(["test", "--config", "reference/imagenet_lite0", "--out", str(tmp_path / "ref"), *no_anchor,
                 "data.split_id=all", "train.progress=false"]) == 0
    ref = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    assert ref["summary"]["num_splits"] == 10 and "rank1_std" in ref["summary"]


def test_pets2009_real_footage(tmp_path):
    """Real video -> tracklets -> features -> ranking -> CMC/mAP."""
    from vidreid.config import load_config
    from vidreid.data.datasets import build_dataset
    from vidreid.data.datasets.pets import prepare_pets2009
    from vidreid.engine.evaluator import evaluate_split
    from vidreid.models import create_model

    src = shared_path("pets2009_s2l1")
    s = prepare_pets2009(src, tmp_path / "pets")
    assert s["video_frames"] == 795 and s["boxes"] == 4650 and s["tracks"] == 19 and s["people"] == 10
    assert s["reentry"] == {"query_tracklets": 16, "gallery_tracklets": 19}
    assert s["crops_written"] + sum(s["excluded"].values()) == s["boxes"]
    re_split = build_dataset("folder", tmp_path / "pets" / "reentry").split(0)
    assert len(re_split.query) == 16 and len(re_split.gallery) == 19
    cfg = load_config("reference/imagenet_lite0", ["data.test_sampling.strategy=evenly", "data.test_sampling.seq_len=8",
                                                    "data.num_workers=0"])
    model = create_model("imagenet_reference", 0, backbone="efficientnet_lite0", pretrained="imagenet")
    r = evaluate_split(model, re_split, cfg)
    assert r["num_valid_queries"] == 16
    # ImageNet features on real people are far better than chance (1/10 identities) on split tracks
    sp = build_dataset("folder", tmp_path / "pets" / "split").split(0)
    r2 = evaluate_split(model, sp, cfg)
    assert r2["num_valid_queries"] == 19 and r2["rank1"] > 0.3


def test_cli_test_reports_rerank_visrank(tiny_tree, tmp_path, capsys):
    root = tiny_tree("mars")
    ov = [f"data.root={root}", "data.dataset=mars", "data.height=64", "data.width=32", "data.num_workers=0",
          "model.args={backbone: resnet18, pretrained: null}", "train.progress=false", "test.rerank_k1=3", "test.rerank_k2=2"]
    assert main(["test", "--config", "reference/imagenet_lite0", "--out", str(tmp_path / "t"), "--rerank",
                 "--visrank", "3", *ov]) == 0
    out = capsys.readouterr().out
    assert "imagenet_reference + re-ranking" in out and "mINP" in out
    assert (tmp_path / "t" / "cmc.png").stat().st_size > 1000
    vis = sorted((tmp_path / "t" / "visrank" / "split_0").glob("q*.jpg"))
    res = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert len(vis) == res["per_split"][0]["num_query"]
    import cv2

    img = cv2.imread(str(vis[0]))
    assert img.shape[0] == 64 + 8 + 2 * 14 + 4 and img.shape[1] > 3 * (32 + 8)  # two lines of labels above
    band = img[:32]
    assert (band < 128).any() and (band[:, :40] < 128).any()  # text in the query's band and beyond


def test_pets_from_the_two_public_files_and_the_packaged_table(tmp_path):
    """Only the video and the annotation file are needed: the identities table ships with the
    package (issue 26) and equals the one in ../shared."""
    import shutil

    from vidreid.data.datasets.pets import IDENTITIES, prepare_pets2009, read_identities

    src = shared_path("pets2009_s2l1")
    assert read_identities(IDENTITIES) == read_identities(src / "identities.csv")
    two = tmp_path / "two"
    two.mkdir()
    for name in ("vtest.avi", "PETS2009-S2L1.xml"):
        (two / name).symlink_to(src / name)
    s = prepare_pets2009(two, tmp_path / "pets")
    assert s["people"] == 10 and s["reentry"]["query_tracklets"] == 16
    with pytest.raises(Exception, match="already holds"):
        prepare_pets2009(two, tmp_path / "pets")
    shutil.rmtree(tmp_path / "pets")
