"""Image re-ID datasets in their official layouts (issue 23): the loaders give the published
counts on trees laid out as the releases are (empty stand-in files with the real naming and the
published composition; the releases themselves cannot be downloaded here), the synthetic writer
produces each layout, and training runs on images (one-frame tracklets), alone and jointly with
a video dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io

from vidreid.data.datasets import IMAGE_DATASETS, build_dataset
from vidreid.synth import generate


def _touch(paths):
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch()


def _spread(n_images: int, ids: list[int]) -> list[int]:
    """pid of each of ``n_images`` images spread over ``ids`` (every id at least once)."""
    return [ids[k % len(ids)] for k in range(n_images)]


def _counts(ds, split=0):
    s = ds.split(split)
    return {k: (len({t.pid for t in getattr(s, k)}), len(getattr(s, k))) for k in ("train", "query", "gallery")}, s.excluded


def test_market1501_published_counts(tmp_path):
    """12,936 / 751 training; 3,368 / 750 query; 19,732 test images of which 3,819 junk (-1) are
    ignored and 2,793 distractors (0000) kept: 15,913 gallery images of 751 ids (750 + id 0)."""
    root = tmp_path / "Market-1501-v15.09.15"
    train_ids = list(range(1, 1503, 2))  # 751 ids
    test_ids = [i for i in range(1, 1502) if i not in set(train_ids)][:750]
    paths = [root / "bounding_box_train" / f"{p:04d}_c{1 + k % 6}s1_{k:06d}_00.jpg"
             for k, p in enumerate(_spread(12936, train_ids))]
    paths += [root / "query" / f"{p:04d}_c{1 + k % 6}s1_{k:06d}_00.jpg" for k, p in enumerate(_spread(3368, test_ids))]
    gal = _spread(15913 - 2793, test_ids) + [0] * 2793 + [-1] * 3819
    paths += [root / "bounding_box_test" / f"{p:04d}_c{1 + k % 6}s1_{k:06d}_00.jpg".replace("-001", "-1")
              for k, p in enumerate(gal)]
    _touch(paths)
    counts, excluded = _counts(build_dataset("market1501", tmp_path))
    assert counts == {"train": (751, 12936), "query": (750, 3368), "gallery": (751, 15913)}
    assert excluded == {"junk_images_gallery": 3819}


def test_dukemtmcreid_published_counts(tmp_path):
    root = tmp_path / "DukeMTMC-reID"
    train_ids, test_ids = list(range(1, 703)), list(range(703, 1405))
    extra = list(range(5000, 5408))  # 408 distractor identities: gallery only
    paths = [root / "bounding_box_train" / f"{p:04d}_c{1 + k % 8}_f{k:07d}.jpg" for k, p in enumerate(_spread(16522, train_ids))]
    paths += [root / "query" / f"{p:04d}_c{1 + k % 8}_f{k:07d}.jpg" for k, p in enumerate(_spread(2228, test_ids))]
    paths += [root / "bounding_box_test" / f"{p:04d}_c{1 + k % 8}_f{k:07d}.jpg"
              for k, p in enumerate(_spread(17661, test_ids + extra))]
    _touch(paths)
    counts, _ = _counts(build_dataset("dukemtmcreid", tmp_path))
    assert counts == {"train": (702, 16522), "query": (702, 2228), "gallery": (1110, 17661)}


def test_msmt17_published_counts_from_the_lists(tmp_path):
    """train 30,248 + val 2,373 = 32,621 images of 1,041 ids; query 11,659 and gallery 82,161 of
    3,060 (test pids offset so they never equal a training pid)."""
    base = tmp_path / "MSMT17_V1"
    base.mkdir()
    lines = {"train": _spread(30248, list(range(1041))), "val": _spread(2373, list(range(1041))),
             "query": _spread(11659, list(range(3060))), "gallery": _spread(82161, list(range(3060)))}
    for k, pids in lines.items():
        (base / f"list_{k}.txt").write_text("".join(f"{p:04d}/{p:04d}_{i:03d}_{1 + i % 15:02d}_0303morning_0001_0.jpg {p}\n"
                                                    for i, p in enumerate(pids)))
    ds = build_dataset("msmt17", tmp_path, verify_files=False)
    counts, _ = _counts(ds)
    assert counts == {"train": (1041, 32621), "query": (3060, 11659), "gallery": (3060, 82161)}
    s = ds.split(0)
    assert not {t.pid for t in s.train} & {t.pid for t in s.query}
    with pytest.raises(Exception, match="does not exist"):
        build_dataset("msmt17", tmp_path)  # verify_files: the images named are checked


@pytest.mark.parametrize("variant,gallery", [("labeled", 5328), ("detected", 5332)])
def test_cuhk03_new_protocol_published_counts(tmp_path, variant, gallery):
    """767 training ids (7,368 / 7,365 images); 700 test ids: 1,400 query, 5,328 / 5,332 gallery."""
    n_train = 7368 if variant == "labeled" else 7365
    labels = _spread(n_train, list(range(1, 768))) + _spread(1400 + gallery, list(range(768, 1468)))
    files = np.empty((len(labels), 1), dtype=object)
    for j, lab in enumerate(labels):
        files[j, 0] = f"1_{lab:03d}_{1 + j % 2}_{j % 10 + 1:02d}.png"
    idx = np.arange(1, len(labels) + 1)
    scipy.io.savemat(str(tmp_path / f"cuhk03_new_protocol_config_{variant}.mat"), {
        "filelist": files, "labels": np.array(labels, float).reshape(-1, 1), "camId": np.ones((len(labels), 1)),
        "train_idx": idx[:n_train].reshape(-1, 1).astype(float),
        "query_idx": idx[n_train:n_train + 1400].reshape(-1, 1).astype(float),
        "gallery_idx": idx[n_train + 1400:].reshape(-1, 1).astype(float)})
    counts, _ = _counts(build_dataset(f"cuhk03_{variant}", tmp_path, verify_files=False))
    assert counts == {"train": (767, n_train), "query": (700, 1400), "gallery": (700, gallery)}


def test_viper_and_cuhk01_published_counts_and_ten_splits(tmp_path):
    v = tmp_path / "viper" / "VIPeR"
    _touch([v / "cam_a" / f"{i:03d}_45.bmp" for i in range(632)] + [v / "cam_b" / f"{i:03d}_90.bmp" for i in range(632)])
    ds = build_dataset("viper", tmp_path / "viper")
    assert ds.num_splits == 10
    for s in range(10):
        counts, _ = _counts(ds, s)
        assert counts == {"train": (316, 632), "query": (316, 316), "gallery": (316, 316)}
    assert ds.split(0).train != ds.split(1).train  # random splits, fixed seed
    assert ds.split(3).query == build_dataset("viper", tmp_path / "viper").split(3).query
    c = tmp_path / "cuhk01" / "campus"
    _touch([c / f"{p:04d}{k:03d}.png" for p in range(1, 972) for k in range(1, 5)])
    counts, _ = _counts(build_dataset("cuhk01", tmp_path / "cuhk01"))
    assert counts == {"train": (485, 1940), "query": (486, 972), "gallery": (486, 972)}


@pytest.mark.parametrize("layout,names", [("market1501", ["market1501"]), ("dukemtmcreid", ["dukemtmcreid"]),
                                          ("msmt17", ["msmt17"]), ("cuhk03", ["cuhk03_labeled", "cuhk03_detected"]),
                                          ("viper", ["viper"]), ("cuhk01", ["cuhk01"])])
def test_synthetic_image_layouts_load_with_their_counts(tmp_path, layout, names):
    m = generate(layout, "tiny", tmp_path / layout, workers=1)
    for name in names:
        st = build_dataset(name, tmp_path / layout).stats()
        for sub in ("train", "query", "gallery"):
            assert {k: st[sub][k] for k in ("ids", "tracklets", "frames")} == m["expected"][sub], (name, sub)
        assert st["query"]["valid"] == st["query"]["tracklets"]  # every query has a cross-camera match
    assert set(names) <= set(IMAGE_DATASETS)


def test_training_on_images_alone_and_with_a_video_dataset(tiny_tree, tmp_path, capsys):
    from vidreid.cli import main

    img = tmp_path / "market"
    generate("market1501", "tiny", img, workers=1)
    common = ["data.train_sampling.seq_len=1", "data.height=64", "data.width=32", "data.p=3", "data.k=2",
              "schedule.epochs=1", "train.progress=false", "data.num_workers=0", "data.split_id=0"]
    assert main(["train", "--config", "demo/prid2011", "data.dataset=market1501", f"data.root={img}",
                 f"train.output_dir={tmp_path / 'a'}", *common]) == 0
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert m["dataset"] == "market1501" and m["num_query"] == 17
    prid = tiny_tree("prid2011")
    assert main(["train", "--config", "demo/prid2011", f"data.sources=[{{dataset: market1501, root: {img}}}, "
                 f"{{dataset: prid2011, root: {prid}}}]", f"train.output_dir={tmp_path / 'b'}", *common]) == 0
    m = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert set(m["per_source"]) == {"market1501", "prid2011"}


def test_stats_cli_on_an_image_dataset(tmp_path, capsys):
    from vidreid.cli import main

    generate("viper", "tiny", tmp_path / "v", workers=1)
    assert main(["stats", "--dataset", "viper", "--root", str(tmp_path / "v"), "--split-id", "9"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["split_id"] == 9 and st["num_splits"] == 10 and st["train"]["ids"] == 6
