"""Joint training on several datasets (data.sources): disjoint label spaces, every source
sampled, counts printed, each source tested on its own protocol; init_from for a per-dataset
stage after it."""

from __future__ import annotations

import json

import pytest
import torch

from vidreid.config import load_config
from vidreid.data.datasets import build_dataset
from vidreid.engine.trainer import Trainer
from vidreid.errors import ConfigError


def _cfg(tiny_tree, out, *extra):
    srcs = [{"dataset": n, "root": str(tiny_tree(n))} for n in ("prid2011", "ilidsvid", "mars")]
    return load_config(None, [
        f"data.sources={json.dumps(srcs)}", f"data.root={tiny_tree('prid2011')}", "data.dataset=prid2011",
        "data.height=64", "data.width=32", "data.p=4", "data.k=2", "data.num_workers=0", "data.split_id=0",
        "data.train_sampling.seq_len=3", "model.args={backbone: resnet18, pretrained: null, pretrained_anchor: 0}", "schedule.epochs=1",
        f"train.output_dir={out}", "train.progress=false", "test.batch_size=16", *extra])


def test_sources_relabelled_disjointly_and_all_sampled(tiny_tree, tmp_path, capsys):
    tr = Trainer(_cfg(tiny_tree, tmp_path / "o"))
    printed = capsys.readouterr().out
    names = [r["source"] for r in tr.sources]
    assert names == ["prid2011", "ilidsvid", "mars"] and all(f"[sources] {n}" in printed for n in names)
    # each source's training identities, counted from its own loader
    expect = {n: build_dataset(n, tiny_tree(n)).split(0).train for n in names}
    for r in tr.sources:
        assert r["ids"] == len({t.pid for t in expect[r["source"]]}) and r["tracklets"] == len(expect[r["source"]])
    # disjoint global label spaces, even though the tiny trees reuse pid numbers
    src_of = {t.pid: t.name.split(":")[0] for t in tr.split.train}
    ranges = [range(r["global_pids"][0], r["global_pids"][1] + 1) for r in tr.sources]
    assert sum(len(x) for x in ranges) == len(src_of) == tr.num_classes
    for r, rg in zip(tr.sources, ranges):
        assert {p for p, s in src_of.items() if s == r["source"]} == set(rg)
    raw = [{t.pid for t in expect[n]} for n in names]
    assert raw[0] & raw[1]  # the tiny trees do share pid numbers: merging by number would be wrong
    assert len(set(tr.labels.values())) == tr.num_classes
    # every source is sampled in an epoch; frames resolve from their own roots
    seen = {tr.split.train[i].name.split(":")[0] for b in tr.sampler for i, _ in b}
    assert seen == set(names)
    for i in (0, len(tr.split.train) - 1):  # first source and last source
        assert tr.train_set[(i, 7)]["clip"].shape[0] == 3


def test_joint_run_tests_each_source_then_init_from(tiny_tree, tmp_path):
    m = Trainer(_cfg(tiny_tree, tmp_path / "joint")).fit()
    assert set(m["per_source"]) == {"prid2011", "ilidsvid", "mars"}
    for name, r in m["per_source"].items():
        assert 0 <= r["mAP"] <= 1 and r["dataset"] == name
    assert m["per_source"]["mars"]["num_gallery"] == build_dataset("mars", tiny_tree("mars")).split(0).stats()["gallery"]["tracklets"]
    # the per-dataset stage starts from the joint weights; the classifier (another label space) stays fresh
    cfg = load_config(None, [f"data.root={tiny_tree('prid2011')}", "data.dataset=prid2011", "data.height=64",
                             "data.width=32", "data.p=3", "data.k=2", "data.num_workers=0", "data.split_id=0",
                             "model.args={backbone: resnet18, pretrained: null, pretrained_anchor: 0}", "schedule.epochs=1",
                             f"train.init_from={tmp_path / 'joint' / 'checkpoint.pt'}",
                             f"train.output_dir={tmp_path / 'ind'}", "train.progress=false"])
    tr = Trainer(cfg)
    joint = torch.load(tmp_path / "joint" / "checkpoint.pt", weights_only=True)["model"]
    k = "backbone.body.0.weight"
    assert torch.equal(tr.model.state_dict()[k], joint[k])
    assert "classifier.weight" in tr.init_report["fresh"]
    # the joint checkpoint records the identities per source: testing it on a PRID split whose
    # test people it trained on is refused
    from vidreid.engine.checkpoint import load_checkpoint
    from vidreid.engine.trainer import check_train_test_overlap

    st = load_checkpoint(tmp_path / "joint" / "checkpoint.pt")
    ds = build_dataset("prid2011", tiny_tree("prid2011"))
    assert check_train_test_overlap(st, ds.split(0)) == 0
    with pytest.raises(ConfigError, match="training identities"):
        check_train_test_overlap(st, ds.split(1))


def test_source_errors(tiny_tree, tmp_path):
    with pytest.raises(ConfigError, match=r"data.sources\[0\].*unknown key"):
        Trainer(load_config(None, ['data.sources=[{dataset: prid2011, root: x, colour: red}]',
                                   f"train.output_dir={tmp_path}"]))
    with pytest.raises(ConfigError, match="dataset and root"):
        Trainer(load_config(None, ['data.sources=[{dataset: prid2011}]', f"train.output_dir={tmp_path}"]))
