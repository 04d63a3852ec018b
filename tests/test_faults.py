"""Faults and user mistakes (docs/RELIABILITY.md): every row there is a test here. Each would
fail on the code before issue 13: foreign code from a checkpoint, lost or mixed runs, partial
files, tracebacks instead of one line naming the key or file."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from vidreid.cli import main
from vidreid.config import load_config
from vidreid.engine.checkpoint import load_checkpoint, nonfinite_tensors
from vidreid.engine.trainer import Trainer
from vidreid.errors import ConfigError, DatasetError, NonFiniteLossError

COMMON = ["data.dataset=prid2011", "data.height=64", "data.width=32", "data.p=3", "data.k=2", "data.num_workers=0",
          "data.train_sampling.seq_len=3", "model.args={backbone: resnet18, pretrained: null, pretrained_anchor: 0}", "schedule.epochs=2",
          "schedule.name=constant", "train.progress=false", "train.log_every=1", "test.batch_size=16", "data.split_id=0"]


def ov(root, out, *extra):
    return [f"data.root={root}", f"train.output_dir={out}", *COMMON, *extra]


def cfg(root, out, *extra):
    """The config the command-line runs below use (demo/prid2011 + the same overrides)."""
    return load_config("demo/prid2011", ov(root, out, *extra))


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of the command line, in process."""
    code = main(list(argv))
    o = capsys.readouterr()
    return code, o.out, o.err


def one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err  # one line, never a traceback
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def trained(tiny_tree, tmp_path_factory):
    """One short finished run on split 0 of the tiny PRID tree (shared, read-only)."""
    root = tiny_tree("prid2011")
    out = tmp_path_factory.mktemp("trained") / "run"
    Trainer(cfg(root, out)).fit()
    return root, out


def _params(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.dtype.is_floating_point])


# 1 ------------------------------------------------------------------------------------------
def test_crafted_checkpoint_never_runs(trained, tmp_path, capsys):
    root, _ = trained
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"model": Evil(), "config": {}}, evil)
    for argv in (["test", "--config", "demo/prid2011", "--checkpoint", str(evil), *ov(root, tmp_path / "t")],
                 ["train", "--config", "demo/prid2011", "--resume", str(evil), *ov(root, tmp_path / "r")],
                 ["visualize", "features", "--config", "demo/prid2011", "--checkpoint", str(evil), "--tracklet",
                  str(root / "prid_2011/multi_shot/cam_a/person_0001"), *ov(root, tmp_path / "v")]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and "safe load refuses" in one_line(err) and str(evil) in err
        assert not marker.exists()


def test_truncated_and_foreign_checkpoints(trained, tmp_path, capsys):
    root, out = trained
    data = (out / "checkpoint.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    for name, what in (("cut.pt", "truncated or corrupt"), ("foreign.pt", "not a vidreid checkpoint"),
                       ("missing.pt", "does not exist")):
        code, _, err = run_cli(capsys, "test", "--config", "demo/prid2011", "--checkpoint", str(tmp_path / name),
                               *ov(root, tmp_path / "t"))
        assert code == 2 and what in one_line(err) and name in err


def test_checkpoint_holds_only_safe_types(trained):
    st = load_checkpoint(trained[1] / "checkpoint.pt")  # weights_only=True inside
    assert {"model", "optimizer", "rng", "labels", "config", "dataset", "data_root"} <= set(st)


# 2 ------------------------------------------------------------------------------------------
def test_finished_run_is_not_overwritten(trained, tmp_path, capsys):
    root, out = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    code, _, err = run_cli(capsys, "train", "--config", "demo/prid2011", *ov(root, run))
    line = one_line(err)
    assert code == 2 and "already holds a run" in line and "--resume" in line and "--overwrite" in line
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name in before} == before
    code, _, _ = run_cli(capsys, "train", "--config", "demo/prid2011", "--overwrite", *ov(root, run), "schedule.epochs=1")
    assert code == 0
    steps = [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and max(steps) == load_checkpoint(run / "checkpoint.pt")["global_step"]


# 3 ------------------------------------------------------------------------------------------
def test_full_disk_keeps_results_and_old_files(trained, tmp_path, capsys, monkeypatch):
    import vidreid.fileio as fileio

    root, out = trained
    test_out = tmp_path / "t"
    test_out.mkdir()
    (test_out / "metrics.json").write_text('{"old": true}')

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.Path, "write_bytes", full)
    code, stdout, err = run_cli(capsys, "test", "--config", "demo/prid2011", "--checkpoint", str(out / "checkpoint.pt"),
                                "--out", str(test_out), "--overwrite", *ov(root, tmp_path / "x"))
    assert code == 1 and "No space left" in one_line(err) and "metrics.json" in err
    assert "| prid2011 | split 0 of 10 |" in stdout  # the numbers were printed before the write
    assert json.loads((test_out / "metrics.json").read_text()) == {"old": True}  # intact, still valid JSON
    assert [p.name for p in test_out.iterdir()] == ["metrics.json"]  # no temporary left


def test_atomic_writes_keep_the_usual_file_mode(tmp_path):
    """Temp file + rename must not leave results readable by the owner only (mkstemp's 0600)."""
    from vidreid.engine.checkpoint import save_checkpoint
    from vidreid.fileio import atomic_write_json, default_mode

    atomic_write_json(tmp_path / "m.json", {"a": 1})
    save_checkpoint({"model": {}, "config": {}}, tmp_path / "c.pt")
    for f in ("m.json", "c.pt"):
        assert (tmp_path / f).stat().st_mode & 0o777 == default_mode()


def test_image_write_failure_is_an_error(tmp_path):
    from vidreid.fileio import WriteError, write_image

    with pytest.raises(WriteError, match="x.notanimage"):
        write_image(tmp_path / "x.notanimage", np.zeros((4, 4, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


# 4 ------------------------------------------------------------------------------------------
def test_demo_never_deletes_user_files(tmp_path, capsys):
    target = tmp_path / "X" / "data" / "prid2011"
    target.mkdir(parents=True)
    (target / "my_notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "demo", "--out", str(tmp_path / "X"))
    assert code == 2 and "choose another --out" in one_line(err)
    assert (target / "my_notes.txt").read_text() == "mine"
    # a benchmark of another generator version: refused, not deleted
    (target / "synth_manifest.json").write_text(json.dumps({"layout": "prid2011", "preset": "prid2011", "seed": 0,
                                                            "generator_version": -1}))
    code, _, err = run_cli(capsys, "demo", "--out", str(tmp_path / "X"))
    assert code == 2 and "delete it yourself" in one_line(err)
    assert (target / "my_notes.txt").read_text() == "mine"


# 5 ------------------------------------------------------------------------------------------
def test_exploding_run_keeps_the_last_good_checkpoint(tiny_tree, tmp_path, capsys):
    root = tiny_tree("prid2011")
    run = tmp_path / "run"
    Trainer(cfg(root, run, "schedule.epochs=1")).fit()
    good = (run / "checkpoint.pt").read_bytes()
    code, _, err = run_cli(capsys, "train", "--config", "demo/prid2011", "--resume", str(run / "checkpoint.pt"),
                           "--allow-changes", *ov(root, run, "schedule.epochs=2", "optim.name=sgd", "optim.lr=1e6"))
    assert code == 2 and "NaN or infinite" in one_line(err)
    # the good checkpoint stays unless the diverged weights were still finite (then they are
    # saved, and the test stops at the NaN embeddings); a non-finite checkpoint never exists
    assert not nonfinite_tensors(load_checkpoint(run / "checkpoint.pt"))
    if "after epoch" in err:
        assert (run / "checkpoint.pt").read_bytes() == good


def test_nonfinite_buffer_is_never_saved(tiny_tree, tmp_path):
    """A finite loss with a NaN BatchNorm statistic: the check before saving catches it."""
    tr = Trainer(cfg(tiny_tree("prid2011"), tmp_path / "run", "schedule.epochs=1"))
    step = tr.optimizer.step

    def poisoned_step(*a, **k):
        step(*a, **k)
        if tr.sampler.start_batch + 1 == tr.iters_per_epoch:  # the last step: after it, a NaN statistic
            tr.model.backbone.body[1].running_var.fill_(float("nan"))

    tr.optimizer.step = poisoned_step
    with pytest.raises(NonFiniteLossError, match="NaN or infinite after epoch 1.*no checkpoint was written"):
        tr.fit()
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


# 6 ------------------------------------------------------------------------------------------
def test_stale_flow_cache_refused_at_test(tiny_tree, tmp_path):
    import cv2

    from vidreid.data.datasets import build_dataset
    from vidreid.data.flow import FlowCache, compute_flow_cache
    from vidreid.engine.evaluator import query_gallery_distances
    from vidreid.models import create_model

    root = tmp_path / "prid"
    shutil.copytree(tiny_tree("prid2011"), root)
    ds = build_dataset("prid2011", root)
    compute_flow_cache(ds, "farneback")
    split = ds.split(0)
    c = load_config("star/cpu_prid2011", [f"data.root={root}", "data.flow=farneback", "data.height=64",
                                          "data.width=32", "data.num_workers=0"])
    # a frame of a gallery tracklet changes (same length, same name): stale
    f = root / split.gallery[0].frames[3]
    img = cv2.imread(str(f))
    cv2.imwrite(str(f), 255 - img)
    model = create_model("star", 0, backbone="resnet18", hidden=16)
    with pytest.raises(DatasetError, match="stale.*vidreid flow"):
        query_gallery_distances(model, split, c)
    # an interrupted rebuild leaves no usable cache (the manifest goes first, comes back last)
    import vidreid.data.flow as flowmod

    real = flowmod._compute_one
    calls = []

    def dies(job):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return real(job)

    flowmod._compute_one = dies
    try:
        with pytest.raises(KeyboardInterrupt):
            compute_flow_cache(ds, "farneback")
    finally:
        flowmod._compute_one = real
    with pytest.raises(DatasetError, match="no farneback optical-flow cache"):
        FlowCache(root, "prid2011", "farneback")


# 7 ------------------------------------------------------------------------------------------
def test_checkpoint_tested_on_its_training_people_is_refused(trained, tmp_path, capsys):
    root, out = trained
    code, _, err = run_cli(capsys, "test", "--config", "demo/prid2011", "--checkpoint", str(out / "checkpoint.pt"),
                           *ov(root, tmp_path / "t", "data.split_id=1"))
    line = one_line(err)
    assert code == 2 and "split 1" in line and "training identities" in line and "allow_train_overlap" in line
    code, _, _ = run_cli(capsys, "test", "--config", "demo/prid2011", "--checkpoint", str(out / "checkpoint.pt"),
                         *ov(root, tmp_path / "t", "data.split_id=1", "test.allow_train_overlap=true"))
    assert code == 0


# 8 ------------------------------------------------------------------------------------------
def test_resume_with_changed_settings(tiny_tree, tmp_path, capsys):
    root = tiny_tree("prid2011")
    run = tmp_path / "run"
    Trainer(cfg(root, run, "schedule.epochs=3")).fit(stop_after_epochs=1)
    code, _, err = run_cli(capsys, "train", "--config", "demo/prid2011", "--resume", str(run / "checkpoint.pt"),
                           *ov(root, run, "schedule.epochs=3", "optim.lr=0.1"))
    line = one_line(err)
    assert code == 2 and "optim.lr" in line and "--allow-changes" in line
    tr = Trainer(cfg(root, run, "schedule.epochs=3", "optim.lr=0.1"))
    tr.fit(resume=run / "checkpoint.pt", allow_changes=True, stop_after_epochs=2)
    assert [g["lr"] for g in tr.optimizer.param_groups][-1] == pytest.approx(0.1)  # constant schedule
    assert tr.scheduler.base_lrs[-1] == pytest.approx(0.1)
    assert "lr: 0.1" in (run / "config.yaml").read_text()  # what was used is recorded


# 9 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig,code,sampler", [(signal.SIGINT, 130, "pk"), (signal.SIGTERM, 143, "neighbours")])
def test_signal_saves_and_resume_is_exact(tiny_tree, tmp_path, capsys, monkeypatch, sig, code, sampler):
    # sampler neighbours: resumed inside an epoch, the run must replay the epoch's neighbour table
    # from the checkpoint, not recompute it from the half-trained model
    root = tiny_tree("prid2011")
    extra = ["schedule.epochs=2", "schedule.name=cosine", "data.augment.erase_p=0.5", f"data.sampler={sampler}"]
    straight = Trainer(cfg(root, tmp_path / "a", *extra))
    straight.fit()
    n = straight.iters_per_epoch
    assert n >= 2
    # the signal arrives during step 1 of epoch 2 (mid-epoch)
    import vidreid.engine.trainer as trmod

    real = trmod.CompositeLoss.forward
    count = {"n": 0}

    def loss_then_signal(self, *a, **k):
        count["n"] += 1
        if count["n"] == n + 1:
            os.kill(os.getpid(), sig)
        return real(self, *a, **k)

    monkeypatch.setattr(trmod.CompositeLoss, "forward", loss_then_signal)
    rc, _, err = run_cli(capsys, "train", "--config", "demo/prid2011", *ov(root, tmp_path / "b", *extra))
    monkeypatch.setattr(trmod.CompositeLoss, "forward", real)
    line = one_line(err)
    assert rc == code and signal.Signals(sig).name in line and "resume with: vidreid train" in line
    st = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert st["global_step"] == n + 1 and st["epoch"] == 1 and st["sampler"]["start_batch"] == 1
    resumed = Trainer(cfg(root, tmp_path / "b", *extra))
    resumed.fit(resume=tmp_path / "b" / "checkpoint.pt")
    assert resumed.global_step == straight.global_step
    torch.testing.assert_close(_params(resumed.model), _params(straight.model), rtol=0, atol=0)
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines() if '"loss"' in x]
    assert steps == list(range(1, straight.global_step + 1))  # every step logged once


def test_sigint_to_a_real_process(tiny_tree, tmp_path):
    """The real thing: a `vidreid train` process with loader workers gets SIGINT mid-run."""
    import time

    root = tiny_tree("prid2011")
    args = [sys.executable, "-m", "vidreid.cli", "train", "--config", "demo/prid2011",
            *ov(root, tmp_path / "run", "schedule.epochs=50", "data.num_workers=1")]
    p = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    log = tmp_path / "run" / "log.jsonl"
    t0 = time.time()
    while time.time() - t0 < 120 and not (log.exists() and log.read_text().count("\n") >= 3):
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "SIGINT" in one_line(err) and "--resume" in err
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["global_step"] >= 3


# 10 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad,key", [
    ("data.p=50", "data.p"), ("optim.lr=-0.01", "optim.lr"), ("data.height=0", "data.height"),
    ("data.split_id=99", "data.split_id"), ("data.augment.erase_p=2", "data.augment.erase_p"),
    ("schedule.epochs=0", "schedule.epochs"), ("data.split_id=abc", "data.split_id"),
    ("data.augment.lowres=1.5", "data.augment.lowres"), ("data.sampler=graph", "data.sampler"),
])
def test_user_mistakes_are_one_line(tiny_tree, tmp_path, capsys, bad, key):
    code, _, err = run_cli(capsys, "train", "--config", "demo/prid2011", *ov(tiny_tree("prid2011"), tmp_path / "r", bad))
    assert code == 2 and key in one_line(err)


def _folder_tree(tmp_path, query_pids, gallery_pids):
    import cv2

    root = tmp_path / "folder"
    img = np.full((64, 32, 3), 127, np.uint8)
    for sub, pids in (("query", query_pids), ("gallery", gallery_pids)):
        (root / sub).mkdir(parents=True)
        for i, pid in enumerate(pids):
            d = root / sub / f"{pid:04d}" / f"c{1 if sub == 'query' else 2}_t{i}"
            d.mkdir(parents=True)
            for f in range(3):
                cv2.imwrite(str(d / f"{f:04d}.jpg"), img)
    return root


@pytest.mark.parametrize("case", ["empty_query", "no_match", "rerank_k1"])
def test_test_mistakes_are_one_line(tmp_path, capsys, case):
    q, g = {"empty_query": ([], [1, 2]), "no_match": ([1, 2], [0, 0, 3]), "rerank_k1": ([1], [1, 2])}[case]
    root = _folder_tree(tmp_path, q, g)
    extra = ["--rerank"] if case == "rerank_k1" else []
    code, _, err = run_cli(capsys, "test", "--config", "reference/imagenet_lite0", *extra, f"data.root={root}",
                           "data.dataset=folder", "data.num_workers=0", "train.progress=false",
                           f"train.output_dir={tmp_path / 'o'}")
    line = one_line(err)
    assert code == 2
    assert {"empty_query": "query", "no_match": "no query", "rerank_k1": "test.rerank_k1"}[case] in line


def test_debug_shows_the_traceback(tiny_tree, tmp_path):
    with pytest.raises(ConfigError):
        main(["train", "--config", "demo/prid2011", "--debug", *ov(tiny_tree("prid2011"), tmp_path / "r", "optim.lr=-1")])


# 11 -----------------------------------------------------------------------------------------
def test_truncated_jpeg_names_the_file(tmp_path):
    import cv2

    from vidreid.data.video import read_frame

    p = tmp_path / "f.jpg"
    cv2.imwrite(str(p), np.random.default_rng(0).integers(0, 255, (64, 32, 3), np.uint8))
    assert read_frame(p, 64, 32).shape == (64, 32, 3)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DatasetError, match=r"truncated JPEG .*f\.jpg"):
        read_frame(p, 64, 32)
    with pytest.raises(DatasetError, match="missing.jpg"):
        read_frame(tmp_path / "missing.jpg", 64, 32)


# 12 -----------------------------------------------------------------------------------------
def test_overrides_with_hash_and_dollar_are_literal():
    c = load_config(None, ["data.root=/data/run #2/${HOME}/a$b", "train.output_dir=out#1"])
    assert c.data.root == "/data/run #2/${HOME}/a$b" and c.train.output_dir == "out#1"
    from vidreid.config import from_container, to_container

    assert from_container(to_container(c)).data.root == "/data/run #2/${HOME}/a$b"


def test_yaml_python_tags_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


# 13 -----------------------------------------------------------------------------------------
def test_resume_after_kill_logs_each_step_once(tiny_tree, tmp_path):
    root = tiny_tree("prid2011")
    run = tmp_path / "run"
    first = Trainer(cfg(root, run, "schedule.epochs=2"))
    first.fit(stop_after_epochs=1)
    n = first.global_step
    with open(run / "log.jsonl", "a") as f:  # rows written after the checkpoint, then a kill -9
        f.write(json.dumps({"epoch": 1, "step": n + 1, "loss": 1.0}) + "\n")
        f.write('{"epoch": 1, "step": ')  # cut mid-line
    Trainer(cfg(root, run, "schedule.epochs=2")).fit(resume=run / "checkpoint.pt")
    steps = [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 2 * n + 1))


def test_kill_9_resume_is_exact(tiny_tree, tmp_path):
    """The good behaviour kept: a process killed with SIGKILL resumes bit-exactly from its last
    checkpoint (epoch boundary)."""
    import time

    root = tiny_tree("prid2011")
    extra = ["schedule.epochs=3", "schedule.name=cosine"]
    straight = Trainer(cfg(root, tmp_path / "a", *extra))
    straight.fit()
    args = [sys.executable, "-m", "vidreid.cli", "train", "--config", "demo/prid2011", *ov(root, tmp_path / "b", *extra)]
    p = subprocess.Popen(args, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    ck = tmp_path / "b" / "checkpoint.pt"
    t0 = time.time()
    while time.time() - t0 < 120 and not ck.exists():
        time.sleep(0.05)
    p.kill()
    p.wait()
    st = load_checkpoint(ck)
    assert 1 <= st["epoch"] <= 3
    resumed = Trainer(cfg(root, tmp_path / "b", *extra))
    resumed.fit(resume=ck)
    torch.testing.assert_close(_params(resumed.model), _params(straight.model), rtol=0, atol=0)
