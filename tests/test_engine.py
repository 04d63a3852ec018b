"""Trainer: a short train-and-test run, exact resume, NaN detection, atomic checkpoints, schedules."""

from __future__ import annotations

import json

import pytest
import torch

from vidreid.config import load_config
from vidreid.engine.checkpoint import load_checkpoint, save_checkpoint
from vidreid.engine.trainer import Trainer, lr_factor
from vidreid.errors import ConfigError, NonFiniteLossError


def tiny_cfg(root, out, *extra):
    return load_config(None, [
        f"data.root={root}", "data.dataset=prid2011", "data.height=64", "data.width=32", "data.p=3", "data.k=2",
        "data.num_workers=0", "data.train_sampling.seq_len=3", "data.test_sampling.strategy=all",
        "model.args={backbone: resnet18, pretrained: null, pretrained_anchor: 0}", "schedule.epochs=2", "schedule.name=constant",
        f"train.output_dir={out}", "train.progress=false", "train.log_every=1", "test.batch_size=16", *extra])


def test_train_and_test_run(tiny_tree, tmp_path):
    cfg = tiny_cfg(tiny_tree("prid2011"), tmp_path / "run")
    m = Trainer(cfg).fit()
    assert 0 <= m["rank1"] <= 1 and m["num_valid_queries"] == 6
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["rank1"] == m["rank1"]
    lines = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert lines and {"loss", "cross_entropy", "triplet", "lr"} <= set(lines[0])


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.dtype.is_floating_point])


def test_resume_continues_identically(tiny_tree, tmp_path):
    root = tiny_tree("prid2011")
    extra = ["schedule.epochs=3", "schedule.name=cosine", "data.augment.erase_p=0.5", "data.augment.pad=2"]
    straight = Trainer(tiny_cfg(root, tmp_path / "a", *extra))
    straight.fit()
    first = Trainer(tiny_cfg(root, tmp_path / "b", *extra))
    assert first.fit(stop_after_epochs=1) == {"stopped_at_epoch": 1}
    resumed = Trainer(tiny_cfg(root, tmp_path / "b", *extra))
    resumed.fit(resume=tmp_path / "b" / "checkpoint.pt")
    assert resumed.global_step == straight.global_step
    torch.testing.assert_close(_params(resumed.model), _params(straight.model), rtol=0, atol=0)
    # optimizer state too
    sa, sb = straight.optimizer.state_dict(), resumed.optimizer.state_dict()
    for k in sa["state"]:
        torch.testing.assert_close(sa["state"][k]["exp_avg"], sb["state"][k]["exp_avg"], rtol=0, atol=0)


def test_neighbour_sampler_trains_on_look_alike_batches_and_resumes_identically(tiny_tree, tmp_path):
    """data.sampler=neighbours: every epoch starts with a neighbour table from the current model
    (logged), each batch is an identity and its table neighbours, and a run stopped at an epoch's
    end resumes to the same weights."""
    root = tiny_tree("prid2011")
    extra = ["data.sampler=neighbours", "schedule.epochs=2"]
    straight = Trainer(tiny_cfg(root, tmp_path / "a", *extra))
    seen = []
    orig = straight.sampler._epoch_batches

    def spy():
        out = orig()
        seen.append((list(straight.sampler.neighbours), out))
        return out

    straight.sampler._epoch_batches = spy
    straight.fit()
    log = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log if "neighbours_s" in r] == [0, 1]
    s = straight.sampler
    pid_of = [t.pid for t in straight.split.train]
    tables = {tuple(map(tuple, t)) for t, _ in seen}
    assert len(tables) == 2  # recomputed at each epoch's start: the model has moved
    for table, batches in seen:
        for b in batches:
            ids = [s.ids.index(pid_of[i]) for i, _ in b][::2]
            assert ids[1:] == table[ids[0]]
    first = Trainer(tiny_cfg(root, tmp_path / "b", *extra))
    assert first.fit(stop_after_epochs=1) == {"stopped_at_epoch": 1}
    resumed = Trainer(tiny_cfg(root, tmp_path / "b", *extra))
    resumed.fit(resume=tmp_path / "b" / "checkpoint.pt")
    torch.testing.assert_close(_params(resumed.model), _params(straight.model), rtol=0, atol=0)


def test_weight_average_is_the_mean_of_every_step_from_its_epoch_and_resumes_identically(tiny_tree, tmp_path):
    """train.average_from=1: the final model (checkpoint and test) is the equal-weight mean of the
    weights and BatchNorm statistics after every optimiser step of epochs 1 and 2, not the last
    step's; a run stopped at an epoch's end resumes to the same mean."""
    root = tiny_tree("prid2011")
    extra = ["train.average_from=1", "schedule.epochs=3"]
    straight = Trainer(tiny_cfg(root, tmp_path / "a", *extra))
    snaps, orig = [], straight.train_step

    def spy(batch, where=""):
        out = orig(batch, where)
        if straight.epoch >= 1:
            snaps.append({k: v.detach().clone() for k, v in straight.model.state_dict().items() if v.is_floating_point()})
        return out

    straight.train_step = spy
    m = straight.fit()
    assert len(snaps) == 2 * straight.iters_per_epoch and "rank1" in m
    last = snaps[-1]
    final = straight.model.state_dict()
    moved = 0
    for k in last:
        mean = torch.stack([s[k] for s in snaps]).mean(0)
        torch.testing.assert_close(final[k], mean, rtol=1e-5, atol=1e-6)
        moved += not torch.equal(final[k], last[k])
    assert moved > 0  # the mean is not the last step's weights
    log = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["averaged_steps"] for r in log if "averaged_steps" in r] == [2 * straight.iters_per_epoch]
    saved = load_checkpoint(tmp_path / "a" / "checkpoint.pt")["model"]
    torch.testing.assert_close(_params(straight.model), torch.cat([v.flatten() for v in saved.values()
                                                                    if v.dtype.is_floating_point]), rtol=0, atol=0)
    first = Trainer(tiny_cfg(root, tmp_path / "b", *extra))
    assert first.fit(stop_after_epochs=2) == {"stopped_at_epoch": 2}  # mid-average
    resumed = Trainer(tiny_cfg(root, tmp_path / "b", *extra))
    resumed.fit(resume=tmp_path / "b" / "checkpoint.pt")
    torch.testing.assert_close(_params(resumed.model), _params(straight.model), rtol=0, atol=0)


def test_weight_average_start_must_be_an_epoch_of_the_run(tiny_tree, tmp_path):
    root = tiny_tree("prid2011")
    with pytest.raises(ConfigError, match=r"train.average_from: 2 is not an epoch of this run \(epochs 0..1\)"):
        Trainer(tiny_cfg(root, tmp_path / "a", "train.average_from=2"))
    with pytest.raises(ConfigError, match="train.average_from: must be null or an epoch >= 0"):
        tiny_cfg(root, tmp_path / "a", "train.average_from=-1")


def test_nan_loss_names_the_step(tiny_tree, tmp_path):
    tr = Trainer(tiny_cfg(tiny_tree("prid2011"), tmp_path / "nan"))
    with torch.no_grad():
        tr.model.classifier.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 1"):
        tr.fit()


def test_atomic_checkpoint(tmp_path):
    from vidreid.engine.checkpoint import CheckpointError

    p = tmp_path / "ck.pt"
    good = {"model": {"w": torch.ones(2)}, "config": {"a": 1}}
    save_checkpoint(good, p)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        save_checkpoint({"a": Boom()}, p)
    assert load_checkpoint(p)["config"] == {"a": 1}  # the old file survives a failed write
    assert [x.name for x in tmp_path.iterdir()] == ["ck.pt"]  # no temporary left behind
    with pytest.raises(CheckpointError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")


def test_lr_schedules():
    cfg = load_config(None, ["schedule.name=multistep", "schedule.milestones=[2,4]", "schedule.gamma=0.5",
                             "schedule.warmup_epochs=1", "schedule.warmup_factor=0.1"])
    assert lr_factor(cfg, 0.0) == pytest.approx(0.1)
    assert lr_factor(cfg, 0.5) == pytest.approx(0.55)
    assert lr_factor(cfg, 1.0) == 1.0 and lr_factor(cfg, 2.0) == 0.5 and lr_factor(cfg, 4.5) == 0.25
    cfg = load_config(None, ["schedule.name=cosine", "schedule.epochs=10", "schedule.min_lr_factor=0.1"])
    assert lr_factor(cfg, 0) == pytest.approx(1.0) and lr_factor(cfg, 10) == pytest.approx(0.1)
    assert lr_factor(cfg, 5) == pytest.approx(0.55)
    cfg = load_config(None, ["schedule.name=step", "schedule.step_size=3", "schedule.gamma=0.1"])
    assert lr_factor(cfg, 2.9) == 1.0 and lr_factor(cfg, 3) == pytest.approx(0.1)


def test_feature_paths_agree(tiny_tree):
    """All-frame packed extraction equals a naive per-tracklet loop, and the chunked path of a
    non-decomposable model runs and returns one row per tracklet."""
    from vidreid.data.datasets import build_dataset
    from vidreid.data.sampling import TemporalSampler
    from vidreid.data.transforms import ClipTransform
    from vidreid.data.video import read_frame
    from vidreid.inference import extract_features
    from vidreid.models import create_model

    split = build_dataset("prid2011", tiny_tree("prid2011")).split(0)
    m = create_model("baseline", 0, backbone="resnet18").eval()
    tf = ClipTransform(64, 32, train=False)
    got = extract_features(m, split.root, split.query, TemporalSampler("all", 4, False), tf, batch_size=7, num_workers=0)
    naive = []
    with torch.no_grad():
        for t in split.query:
            import numpy as np

            frames = np.stack([read_frame(split.root / f, 64, 32) for f in t.frames])
            clip, _ = tf(frames, tf.draw(None))
            naive.append(m(clip[None]).embedding[0])
    assert (got - torch.stack(naive)).abs().max() <= 1e-4
    m.frame_decomposable = False
    chunked = extract_features(m, split.root, split.query, TemporalSampler("all", 4, False), tf, batch_size=8, num_workers=0)
    assert chunked.shape == got.shape
    ev = extract_features(m, split.root, split.query, TemporalSampler("evenly", 4, False), tf, batch_size=8, num_workers=0)
    assert ev.shape == got.shape


def test_deferred_finite_check_names_the_first_bad_step(tiny_tree, tmp_path):
    """On a GPU the loss is read every log_every steps only (no per-step synchronisation); a NaN
    loss is still caught then, named by its own step, and nothing is saved."""
    tr = Trainer(tiny_cfg(tiny_tree("prid2011"), tmp_path / "nan", "train.log_every=100"))
    tr.check_every_step = False  # what a CUDA device gets
    step, calls = tr.train_step, []

    def poisoned(batch, where=""):
        calls.append(where)
        if len(calls) == 2:
            with torch.no_grad():
                tr.model.classifier.weight.fill_(float("nan"))
        return step(batch, where)

    tr.train_step = poisoned
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 2 \(global step 2\)"):
        tr.fit()
    assert len(calls) == tr.iters_per_epoch  # read at the end of the epoch, not per step
    assert not (tmp_path / "nan" / "checkpoint.pt").exists()


def test_uint8_transfer_trains_like_float(tiny_tree, tmp_path):
    """data.transfer=uint8 (the GPU default): clips cross as uint8 and are normalised and erased
    on the device; the training run equals the float path."""
    root = tiny_tree("prid2011")
    extra = ["schedule.epochs=1", "data.augment.erase_p=0.7", "data.augment.pad=2"]
    a = Trainer(tiny_cfg(root, tmp_path / "f", "data.transfer=float", *extra))
    b = Trainer(tiny_cfg(root, tmp_path / "u", "data.transfer=uint8", *extra))
    assert b.train_set[(0, 5)]["clip"].dtype == torch.uint8 and a.train_set[(0, 5)]["clip"].dtype == torch.float32
    a.fit()
    b.fit()
    torch.testing.assert_close(_params(b.model), _params(a.model), rtol=1e-5, atol=1e-6)


def test_uint8_clip_finished_on_device_equals_host_normalisation():
    import numpy as np

    from vidreid.data.transforms import ClipTransform

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 32, 16, 3), dtype=np.uint8)
    host = ClipTransform(32, 16, train=True, pad=3, erase_p=1.0, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.25))
    dev = ClipTransform(32, 16, train=True, pad=3, erase_p=1.0, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.25), uint8_out=True)
    clips, raw, boxes = [], [], []
    for seed in range(6):
        p = host.draw(np.random.default_rng(seed))
        assert p.erase is not None
        clips.append(host(frames, p)[0])
        raw.append(dev(frames, p)[0])
        boxes.append(dev.erase_box(p))
    out = dev.finish(torch.stack(raw), torch.stack(boxes))
    assert torch.stack(raw).dtype == torch.uint8
    torch.testing.assert_close(out, torch.stack(clips), rtol=0, atol=1e-6)
    assert host.finish(torch.stack(clips)) is not None  # a float batch passes through unchanged
