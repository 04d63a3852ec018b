"""Issue 22: the surfaces beyond training hold up (docs/RELIABILITY.md): no run or user file is
replaced, no crash on odd file names, no silent NaN or merged identities, and one line with exit
status 2 for every user mistake. Each test failed on the code before the fix."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidreid.engine.checkpoint import load_checkpoint
from vidreid.engine.trainer import Trainer

from .test_faults import cfg, one_line, ov, run_cli


@pytest.fixture(scope="module")
def runs(tiny_tree, tmp_path_factory):
    """Two short finished runs (read-only: tests copy them)."""
    root = tiny_tree("prid2011")
    base = tmp_path_factory.mktemp("runs")
    for name in ("a", "b"):
        Trainer(cfg(root, base / name)).fit()
    return root, base / "a", base / "b"


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- run folders ------------------------------------------------------------------------------
def test_resume_into_another_runs_folder_is_refused(runs, tmp_path, capsys):
    root, a, b = runs
    run_b = tmp_path / "b"
    shutil.copytree(b, run_b)
    before = _snapshot(run_b)
    code, _, err = run_cli(capsys, "train", "--resume", str(a / "checkpoint.pt"), *ov(root, run_b))
    assert code == 2 and "already holds another run" in one_line(err)
    assert _snapshot(run_b) == before


def test_resume_in_its_own_folder_and_in_an_empty_one(runs, tmp_path, capsys):
    root, a, _ = runs
    run = tmp_path / "a"
    shutil.copytree(a, run)
    code, _, err = run_cli(capsys, "train", "--resume", str(run / "checkpoint.pt"), *ov(root, run), "schedule.epochs=3",
                           "--allow-changes")
    assert code == 0, err
    code, _, err = run_cli(capsys, "train", "--resume", str(a / "checkpoint.pt"), *ov(root, tmp_path / "fresh"),
                           "schedule.epochs=3", "--allow-changes")
    assert code == 0, err
    assert load_checkpoint(tmp_path / "fresh" / "checkpoint.pt")["run_id"] == load_checkpoint(a / "checkpoint.pt")["run_id"]


def test_a_folder_with_user_files_is_never_used(runs, tmp_path, capsys):
    root, a, _ = runs
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "config.yaml").write_text("# my own notes\n")
    for extra in ([], ["--overwrite"]):
        code, _, err = run_cli(capsys, "train", "--config", str(a / "config.yaml"), *extra, *ov(root, user))
        assert code == 2 and "did not write" in one_line(err) and "config.yaml" in err
    assert (user / "config.yaml").read_text() == "# my own notes\n" and sorted(os.listdir(user)) == ["config.yaml"]


def test_overwrite_puts_the_old_run_back_when_the_new_one_fails(runs, tmp_path, capsys, monkeypatch):
    root, a, _ = runs
    run = tmp_path / "run"
    shutil.copytree(a, run)
    before = _snapshot(run)
    import vidreid.engine.trainer as tr

    def boom(*x, **k):
        raise RuntimeError("the evaluation failed")

    monkeypatch.setattr(tr, "evaluate_split", boom)
    with pytest.raises(RuntimeError, match="evaluation failed"):
        run_cli(capsys, "train", "--config", "demo/prid2011", "--overwrite", *ov(root, run), "schedule.epochs=1")
    assert _snapshot(run) == before  # checkpoint, metrics, log and tb events: the old run's, whole
    assert not [p for p in run.iterdir() if p.name.startswith(".replaced")]


def test_overwrite_that_succeeds_leaves_one_run(runs, tmp_path, capsys):
    root, a, _ = runs
    run = tmp_path / "run"
    shutil.copytree(a, run)
    old_events = {p.name for p in (run / "tb").iterdir()}
    code, _, err = run_cli(capsys, "train", "--config", "demo/prid2011", "--overwrite", *ov(root, run), "schedule.epochs=1")
    assert code == 0, err
    assert not ({p.name for p in (run / "tb").iterdir()} & old_events)  # tb holds the new run's events only
    assert not [p for p in run.iterdir() if p.name.startswith(".replaced")]
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 1


def test_stale_temp_files_of_a_kill_are_removed_at_start(runs, tmp_path, capsys):
    root, a, _ = runs
    run = tmp_path / "run"
    shutil.copytree(a, run)
    (run / ".checkpoint.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    code, _, err = run_cli(capsys, "train", "--resume", str(run / "checkpoint.pt"), *ov(root, run), "schedule.epochs=3",
                           "--allow-changes")
    assert code == 0, err
    assert not (run / ".checkpoint.pt.abc123.tmp").exists()


def test_outputs_the_user_names_need_overwrite(runs, tmp_path, capsys):
    root, a, _ = runs
    t = tmp_path / "t"
    code, _, err = run_cli(capsys, "test", "--checkpoint", str(a / "checkpoint.pt"), "--out", str(t),
                           "--root", str(root), "data.num_workers=0", "train.progress=false")
    assert code == 0, err
    first = (t / "metrics.json").read_bytes()
    code, _, err = run_cli(capsys, "test", "--checkpoint", str(a / "checkpoint.pt"), "--out", str(t),
                           "--root", str(root), "data.num_workers=0", "train.progress=false")
    assert code == 2 and "--overwrite" in one_line(err) and (t / "metrics.json").read_bytes() == first
    code, _, _ = run_cli(capsys, "test", "--checkpoint", str(a / "checkpoint.pt"), "--out", str(t), "--overwrite",
                         "--root", str(root), "data.num_workers=0", "train.progress=false")
    assert code == 0
    user = tmp_path / "mine.npz"
    user.write_bytes(b"user data")
    code, _, err = run_cli(capsys, "embed", "--checkpoint", str(a / "checkpoint.pt"), "--tracklets", str(root),
                           "--out", str(user))
    assert code == 2 and "--overwrite" in one_line(err) and user.read_bytes() == b"user data"
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"user model")
    code, _, err = run_cli(capsys, "export", "--checkpoint", str(a / "checkpoint.pt"), "--out", str(onnx))
    assert code == 2 and "--overwrite" in one_line(err) and onnx.read_bytes() == b"user model"
    code, _, err = run_cli(capsys, "export", "--checkpoint", str(a / "checkpoint.pt"), "--out", str(tmp_path))
    assert code == 2 and str(tmp_path) in one_line(err) and ".tmp" not in err


def test_sigint_during_the_final_evaluation_is_not_swallowed(tiny_tree, tmp_path, capsys, monkeypatch):
    import vidreid.engine.trainer as tr

    real = tr.evaluate_split

    def interrupted_eval(*a, **k):
        os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)

    monkeypatch.setattr(tr, "evaluate_split", interrupted_eval)
    code, _, err = run_cli(capsys, "train", "--config", "demo/prid2011", *ov(tiny_tree("prid2011"), tmp_path / "r"))
    assert code == 130 and "interrupted" in one_line(err)
    assert load_checkpoint(tmp_path / "r" / "checkpoint.pt")["epoch"] == 2  # the training itself is complete
    assert not (tmp_path / "r" / "metrics.json").exists()


# -- file names that are not UTF-8 --------------------------------------------------------------
def test_non_utf8_paths_do_not_crash_opencv(tmp_path):
    """A \\xfe or \\xff byte in --video, --frames, --out once killed the process in OpenCV (exit 139)."""
    import cv2

    d = tmp_path / os.fsdecode(b"nu_\xfe")
    (d / os.fsdecode(b"seq\xff")).mkdir(parents=True)
    for i in range(1, 5):
        ok, buf = cv2.imencode(".jpg", np.full((64, 48, 3), 40 * i, np.uint8))
        (d / os.fsdecode(b"seq\xff") / f"{i:06d}.jpg").write_bytes(buf.tobytes())
    vw = cv2.VideoWriter(str(tmp_path / "v.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (48, 64))
    for i in range(4):
        vw.write(np.full((64, 48, 3), 50 * i, np.uint8))
    vw.release()
    shutil.move(tmp_path / "v.avi", d / os.fsdecode(b"v\xfe.avi"))
    (d / "t.txt").write_text("".join(f"{i},1,2,2,30,40\n" for i in range(1, 5)))
    out = d / os.fsdecode(b"out\xfe")
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    for src in (["--video", str(d / os.fsdecode(b"v\xfe.avi")), "--camera", "a"],
                ["--frames", str(d / os.fsdecode(b"seq\xff")), "--camera", "b"]):
        r = subprocess.run([sys.executable, "-m", "vidreid.cli", "tracklets", *src, "--tracks", str(d / "t.txt"),
                            "--out", str(out), "--quiet"], capture_output=True, env=env)
        assert r.returncode == 0, r.stderr.decode(errors="replace")[-500:]
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "tracklets.csv"]
    assert len(list((out / "a" / "000001").iterdir())) == 4


# -- embeddings, match and the API ---------------------------------------------------------------
def _npz(path, emb, pids=None, names=None, cams=None):
    from vidreid.inference.match import Embeddings

    n = len(emb)
    Embeddings(np.asarray(emb, np.float32), names or [f"t{i}" for i in range(n)], cams or ["c1"] * n,
               np.asarray(pids if pids is not None else [-1] * n, np.int64), np.full(n, -1), np.full(n, -1),
               {"metric": "euclidean"}).save(path)
    return path


def test_nonfinite_embeddings_are_refused_or_dropped_and_counted(tmp_path, capsys):
    e = np.random.default_rng(0).standard_normal((6, 4))
    e[3, 1] = np.nan
    p = _npz(tmp_path / "e.npz", e, pids=[1, 1, 2, 2, 3, 3], cams=["a", "b"] * 3)
    code, _, err = run_cli(capsys, "match", "--query", str(p), "--out", str(tmp_path / "m"))
    line = one_line(err)
    assert code == 2 and "NaN" in line and "[3]" in line and "t3" in line
    code, out, err = run_cli(capsys, "match", "--query", str(p), "--out", str(tmp_path / "m2"), "--drop-nonfinite")
    assert code == 0 and "left out 1" in err
    assert json.loads((tmp_path / "m2" / "match.json").read_text())["queries"] == 5
    for idx in ("hnsw", "ivf"):
        code, _, err = run_cli(capsys, "match", "--query", str(p), "--out", str(tmp_path / idx), "--index", idx)
        assert code == 2 and "NaN" in one_line(err)


@pytest.mark.parametrize("case", ["topk", "threshold_nan", "threshold_neg", "empty", "dims", "npy", "truncated",
                                  "string_emb", "string_pids", "bad_meta"])
def test_match_mistakes_are_one_line(tmp_path, capsys, case):
    rng = np.random.default_rng(1)
    good = _npz(tmp_path / "g.npz", rng.standard_normal((4, 3)))
    q = good
    extra: list[str] = []
    if case == "topk":
        extra = ["--topk", "-1"]
    elif case == "threshold_nan":
        extra = ["--assign", "--threshold", "nan"]
    elif case == "threshold_neg":
        extra = ["--assign", "--threshold", "-1"]
    elif case == "empty":
        q = _npz(tmp_path / "q.npz", np.zeros((0, 3)))
    elif case == "dims":
        q = _npz(tmp_path / "q.npz", rng.standard_normal((2, 5)))
    elif case == "npy":
        np.save(tmp_path / "q.npy", rng.standard_normal((2, 3)))
        q = tmp_path / "q.npz"
        shutil.move(tmp_path / "q.npy", q)
    elif case == "truncated":
        q = tmp_path / "q.npz"
        q.write_bytes(good.read_bytes()[:200])
    else:
        z = dict(np.load(good))
        if case == "string_emb":
            z["embeddings"] = np.array([["a"] * 3] * 4)
        elif case == "string_pids":
            z["pids"] = np.array(["x"] * 4)
        else:
            z["meta"] = np.array("{not json")
        q = tmp_path / "q.npz"
        np.savez(q, **z)
    code, _, err = run_cli(capsys, "match", "--query", str(q), "--gallery", str(good), "--out", str(tmp_path / "m"), *extra)
    assert code == 2, err
    one_line(err)


def test_api_mistakes_raise_named_errors(tmp_path):
    import vidreid
    from vidreid.errors import ConfigError, DatasetError

    with pytest.raises(ConfigError, match="topk"):
        vidreid.rank(np.zeros((1, 3)), np.zeros((5, 3)), topk=-1)
    with pytest.raises(ConfigError, match="NaN"):
        vidreid.distance(np.full((1, 3), np.nan), np.zeros((5, 3)))
    m = vidreid.load("reference/imagenet_lite0", overrides=["data.num_workers=0"])
    with pytest.raises(ConfigError, match="batch_size"):
        m.embed([np.zeros((2, 32, 16, 3), np.uint8)], batch_size=-1)
    with pytest.raises(ConfigError, match="num_workers"):
        m.embed([np.zeros((2, 32, 16, 3), np.uint8)], num_workers=-1)
    with pytest.raises(DatasetError, match="different shapes"):
        m.embed([[np.zeros((32, 16, 3), np.uint8), np.zeros((30, 16, 3), np.uint8)]])
    with pytest.raises(ConfigError, match="device 'bogus'"):
        vidreid.load("reference/imagenet_lite0", device="bogus")


# -- tracklets: ids, manifests, filters ----------------------------------------------------------
def _seq(tmp_path, n=4):
    import cv2

    d = tmp_path / "seq"
    d.mkdir(exist_ok=True)
    for i in range(1, n + 1):
        cv2.imwrite(str(d / f"{i:06d}.jpg"), np.full((64, 64, 3), 30 * i, np.uint8))
    return d


def test_huge_track_ids_stay_distinct(tmp_path, capsys):
    seq = _seq(tmp_path)
    (tmp_path / "t.txt").write_text("".join(f"{f},{tid},1,1,10,20\n" for tid in ("99999999999999999999999999998",
                                                                                  "99999999999999999999999999999",
                                                                                  "9007199254740993") for f in (1, 2)))
    code, _, err = run_cli(capsys, "tracklets", "--frames", str(seq), "--tracks", str(tmp_path / "t.txt"),
                           "--out", str(tmp_path / "o"), "--quiet")
    assert code == 0, err
    ids = sorted(r.split(",")[2] for r in (tmp_path / "o" / "tracklets.csv").read_text().splitlines()[1:])
    assert ids == ["9007199254740993", "99999999999999999999999999998", "99999999999999999999999999999"]


@pytest.mark.parametrize("line,what", [("1,1,1,1,10,20\n1,inf,1,1,10,20\n", "id an integer"),
                                       ("1,1,nan,1,10,20\n", "finite"), ("1,1,1,1,10,inf\n", "finite"),
                                       ("1,1,1,1,10,20\xfe\n", "UTF-8"), ("x,1,1,1,10,20\n", "integer")])
def test_bad_mot_lines_are_one_line(tmp_path, capsys, line, what):
    seq = _seq(tmp_path)
    (tmp_path / "t.txt").write_bytes(line.encode("latin-1"))
    code, _, err = run_cli(capsys, "tracklets", "--frames", str(seq), "--tracks", str(tmp_path / "t.txt"),
                           "--out", str(tmp_path / "o"), "--quiet")
    assert code == 2 and what in one_line(err) and "t.txt:" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flag", [["--every", "0"], ["--min-length", "0"]])
def test_bad_filters_are_one_line(tmp_path, capsys, flag):
    seq = _seq(tmp_path)
    (tmp_path / "t.txt").write_text("1,1,1,1,10,20\n2,1,1,1,10,20\n")
    code, _, err = run_cli(capsys, "tracklets", "--frames", str(seq), "--tracks", str(tmp_path / "t.txt"),
                           "--out", str(tmp_path / "o"), "--quiet", *flag)
    assert code == 2 and flag[0] in one_line(err)


def test_conflicting_or_missing_identities(tmp_path, capsys):
    seq = _seq(tmp_path)
    (tmp_path / "t.txt").write_text("1,1,1,1,10,20\n2,1,1,1,10,20\n")
    (tmp_path / "ids.csv").write_text("track_id,person_id\n1,5\n1,6\n")
    base = ["tracklets", "--frames", str(seq), "--tracks", str(tmp_path / "t.txt"), "--out", str(tmp_path / "o"), "--quiet"]
    code, _, err = run_cli(capsys, *base, "--identities", str(tmp_path / "ids.csv"))
    assert code == 2 and "track 1 is given person 6" in one_line(err)
    code, _, err = run_cli(capsys, *base, "--identities", str(tmp_path / "missing.csv"))
    assert code == 2 and "missing.csv" in one_line(err)


def test_video_shorter_than_its_tracks_keeps_min_length(tmp_path, capsys):
    seq = _seq(tmp_path, n=3)  # the "video" ends at frame 3
    (tmp_path / "t.txt").write_text("".join(f"{f},1,1,1,10,20\n" for f in range(1, 9)) +
                                    "".join(f"{f},2,1,1,10,20\n" for f in range(1, 4)))
    code, out, err = run_cli(capsys, "tracklets", "--frames", str(seq), "--tracks", str(tmp_path / "t.txt"),
                             "--out", str(tmp_path / "o"), "--quiet", "--min-length", "4")
    # track 1 had 8 boxes (passes the plan's filter) but only 3 frames exist: below --min-length 4
    assert code == 2 and "short_after_video_end 1" in one_line(err)
    assert not (tmp_path / "o").exists()
    code, out, err = run_cli(capsys, "tracklets", "--frames", str(seq), "--tracks", str(tmp_path / "t.txt"),
                             "--out", str(tmp_path / "o"), "--quiet", "--min-length", "3")
    assert code == 0 and "ended at frame 3" in err
    assert json.loads(out)["dropped"]["boxes_beyond_last_frame"] == 5


def test_manifest_rows_that_leave_the_folder_are_refused(tmp_path, capsys):
    from vidreid.inference.tracks import read_tracklet_dir
    from vidreid.errors import DatasetError

    root = tmp_path / "tracks"
    (root / "cam1" / "000001").mkdir(parents=True)
    secret = tmp_path / "secret" / "imgs"
    secret.mkdir(parents=True)
    head = "tracklet,camera,track_id,pid,frames,first_frame,last_frame\n"
    for row in ("../secret/imgs,cam1,1,,1,1,1", f"{secret},cam1,1,,1,1,1", "cam1/000001,cam1,x,,1,1,1"):
        (root / "tracklets.csv").write_text(head + row + "\n")
        with pytest.raises(DatasetError, match="tracklets.csv:2"):
            read_tracklet_dir(root)
    (root / "cam1" / "link").symlink_to(secret)
    (root / "tracklets.csv").write_text(head + "cam1/link,cam1,1,,1,1,1\n")
    with pytest.raises(DatasetError, match="outside"):
        read_tracklet_dir(root)


def test_folder_layout_pid_written_twice_is_refused(tmp_path):
    from vidreid.data.datasets import build_dataset
    from vidreid.errors import DatasetError

    from .test_faults import _folder_tree

    root = _folder_tree(tmp_path, [8], [8, 3])
    shutil.copytree(root / "gallery" / "0008", root / "gallery" / "8")
    with pytest.raises(DatasetError, match="'0008' and '8' are the same pid 8"):
        build_dataset("folder", root)


# -- one line, exit 2 ------------------------------------------------------------------------------
@pytest.mark.parametrize("bad,key", [
    ("data.height=100000", "data.height"), ("train.device=bogus", "train.device"), ("optim.betas=[2,3]", "optim.betas"),
    ("stages=[{name: a, lr: -5}]", "stages.0.lr"), ("model.args=!!python/object/apply:os.system [true]", "model.args"),
])
def test_more_config_mistakes_are_one_line(tiny_tree, tmp_path, capsys, bad, key):
    code, _, err = run_cli(capsys, "train", "--config", "demo/prid2011", *ov(tiny_tree("prid2011"), tmp_path / "r", bad))
    assert code == 2 and key in one_line(err)
    assert not (tmp_path / "r").exists()


def test_config_files_and_checkpoints_that_are_not_right(runs, tmp_path, capsys):
    import torch

    root, a, _ = runs
    cases = {"unclosed.yaml": b"data: {height: [1, 2\n", "latin.yaml": b"data: {root: \"\xfe\"}\n"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        code, _, err = run_cli(capsys, "train", "--config", str(tmp_path / name))
        assert code == 2 and name in one_line(err)
    st = load_checkpoint(a / "checkpoint.pt")
    bad = {"text.pt": None, "empty_model.pt": dict(st, model={}),
           "shapes.pt": dict(st, model={k: v[..., :1] if v.ndim else v for k, v in st["model"].items()}),
           "config_types.pt": dict(st, config={"data": {"height": "tall"}}),
           "other_model.pt": dict(st, config=dict(st["config"], model={"name": "stan", "args": {"backbone": "resnet18"}}))}
    for name, obj in bad.items():
        p = tmp_path / name
        p.write_text("hello") if obj is None else torch.save(obj, p)
        code, _, err = run_cli(capsys, "test", "--checkpoint", str(p), "--root", str(root), "--out", str(tmp_path / name[:-3]))
        assert code == 2 and name in one_line(err), (name, err)
    code, _, err = run_cli(capsys, "train", "--resume", str(tmp_path / "other_model.pt"), "--allow-changes",
                           *[x.replace(", pretrained_anchor: 0", "") for x in ov(root, tmp_path / "r2")])  # STAN has no anchor
    line = one_line(err)
    assert code == 2 and "other_model.pt" in line and "does not fit" in line


def test_export_seq_len_and_synth_set_tags(runs, tmp_path, capsys):
    _, a, _ = runs
    code, _, err = run_cli(capsys, "export", "--checkpoint", str(a / "checkpoint.pt"), "--out", str(tmp_path / "m.onnx"),
                           "--seq-len", "-3")
    assert code == 2 and "--seq-len" in one_line(err)
    code, _, err = run_cli(capsys, "synth", "--layout", "prid2011", "--preset", "tiny", "--out", str(tmp_path / "s"),
                           "--set", "ids=!!python/object/apply:os.system [true]")
    assert code == 2 and "--set" in one_line(err)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("mine")
    code, _, err = run_cli(capsys, "synth", "--layout", "prid2011", "--preset", "tiny", "--out", str(tmp_path / "full"))
    assert code == 2 and "not an empty folder" in one_line(err)


def test_checkpoint_write_on_a_full_disk_is_exit_1_naming_the_file(runs, tmp_path, capsys, monkeypatch):
    import vidreid.engine.checkpoint as ck

    root, _, _ = runs

    def full(obj, f, *a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    monkeypatch.setattr(ck.torch, "save", full)
    code, _, err = run_cli(capsys, "train", "--config", "demo/prid2011", *ov(root, tmp_path / "r"))
    line = one_line(err)
    assert code == 1 and "checkpoint.pt" in line and "file write failed" in line
    assert not [p for p in (tmp_path / "r").iterdir() if ".tmp" in p.name]


def test_prid_split_file_with_a_number_is_one_line(tiny_tree, tmp_path, capsys):
    root = tmp_path / "prid"
    shutil.copytree(tiny_tree("prid2011"), root)
    splits = json.loads((root / "splits_prid2011.json").read_text())
    splits[0]["train"][0] = 7
    (root / "splits_prid2011.json").write_text(json.dumps(splits))
    code, _, err = run_cli(capsys, "stats", "--dataset", "prid2011", "--root", str(root))
    assert code == 2 and "splits_prid2011.json" in one_line(err) and "person_0001" in err


def test_tracklets_out_naming_a_file_is_exit_2(tmp_path, capsys):
    seq = _seq(tmp_path)
    (tmp_path / "t.txt").write_text("1,1,1,1,10,20\n2,1,1,1,10,20\n")
    (tmp_path / "o").write_text("a file of mine")
    code, _, err = run_cli(capsys, "tracklets", "--frames", str(seq), "--tracks", str(tmp_path / "t.txt"),
                           "--out", str(tmp_path / "o"), "--quiet")
    assert code == 2 and "is a file" in one_line(err) and (tmp_path / "o").read_text() == "a file of mine"


def test_export_to_a_full_disk_is_exit_1_naming_the_path(runs, tmp_path, capsys, monkeypatch):
    import errno

    import torch

    _, a, _ = runs

    def full(*x, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch.onnx, "export", full)
    code, _, err = run_cli(capsys, "export", "--checkpoint", str(a / "checkpoint.pt"), "--out", str(tmp_path / "m.onnx"))
    line = one_line(err)
    assert code == 1 and "m.onnx" in line and "No space left" in line and "cannot be exported" not in line
    assert list(tmp_path.iterdir()) == []
