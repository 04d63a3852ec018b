"""Distributed training on the CPU (gloo, 2 processes under torchrun): one step of the
2-process run equals one step of one process on the same global batch (BatchNorm in eval mode),
with the batch-hard triplet mined over the global batch and the OIM table (and the label-free
association loss's memory) kept in step; a
2-process evaluation gives the same metrics as one process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HELPER = Path(__file__).parent / "helpers" / "ddp_step.py"

LOSSES = {
    "ce_triplet": "[{name: cross_entropy, input: logits, label_smoothing: 0.1}, "
                  "{name: triplet, input: features, margin: 0.3}]",
    "oim": "[{name: oim, input: features, feat_dim: 512, temperature: 0.1, momentum: 0.5}]",
}
LOSSES["oim_filled"] = LOSSES["oim"]  # with train.lut_init=features: the table filled from the features first
# label-free adaptation's loss (vidreid adapt): each tracklet its own class, its memory filled first
LOSSES["association"] = "[{name: tracklet_association, input: features, feat_dim: 512, min_similarity: 0.0}]"
EXTRA = {"oim_filled": ["train.lut_init=features"], "association": ["train.unsupervised=true", "train.lut_init=features"]}


def _run(args, n, script=HELPER):
    """Run ``script args`` (or ``-m module args`` when script is None) alone or under torchrun."""
    target = [str(script), *args] if script else args
    if n == 1:
        cmd = [sys.executable, *target]
    else:
        # --standalone: torchrun picks a free port itself (no race between choosing and binding one)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
               *(["--no-python", sys.executable] if not script else []), *target]
    # PYTHONFAULTHANDLER: should a process still abort, its threads' Python stacks are in the message
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**__import__("os").environ,
                                                                           "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"})
    fatal = r.stderr.find("Fatal Python error")  # where faulthandler's report of an abort starts
    assert r.returncode == 0, (r.stderr[fatal:fatal + 3000] + "\n...\n" if fatal >= 0 else "") + r.stderr[-3000:]
    return r.stdout


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_two_processes_equal_one(tiny_tree, tmp_path, loss):
    root = tiny_tree("prid2011")
    for n in (1, 2):
        _run([str(root), str(tmp_path), LOSSES[loss], *EXTRA.get(loss, [])], n)
    r1, r2 = torch.load(tmp_path / "params_1.pt"), torch.load(tmp_path / "params_2.pt")
    for r in (r1, r2):  # the loss's tables (the association loss also keeps integer / bool masks)
        r["lut"] = [b for b in r["lut"] if b.is_floating_point()]
    assert (r1["batch"], r2["batch"]) == (8, 4)  # the global P x K = 4 x 2 batch, halved per rank
    p1, p2 = r1["after"], r2["after"]
    moved = 0
    for k in p1:
        if p1[k].is_floating_point():
            assert torch.allclose(p1[k], p2[k], rtol=1e-5, atol=1e-6), k
            moved += int(not torch.equal(p1[k], r1["before"][k]))
    if loss == "oim":  # the table starts at zero (no gradient yet); the step fills it from the global batch
        assert r1["lut"] and all(float(a.abs().sum()) > 0 for a in r1["lut"])
    else:
        assert moved > 10  # the step did change the model
    if loss in ("oim_filled", "association"):  # every row was set before the step, by both runs alike
        assert all(bool((a.norm(dim=1) > 0.99).all()) for a in r1["lut"] + r2["lut"])
    for a, b in zip(r1["lut"], r2["lut"]):  # the OIM lookup table: the same update from the global batch
        assert torch.allclose(a, b, atol=1e-6)
    assert json.loads((tmp_path / "metrics_1.json").read_text()) == json.loads((tmp_path / "metrics_2.json").read_text())


def test_gather_with_grad_single_process_is_identity():
    from vidreid.engine.distributed import all_gather_object, all_gather_with_grad, rank_world

    x = torch.randn(3, 2, requires_grad=True)
    assert all_gather_with_grad(x) is x and all_gather_object(5) == [5] and rank_world() == (0, 1)


def test_throughput_benchmark_runs_on_cpu(tmp_path):
    """benchmarks/bench_train_throughput.py at CPU scale (what a GPU run measures at paper scale)."""
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_train_throughput.py"
    r = subprocess.run([sys.executable, str(bench), "--scale", "cpu", "--steps", "1", "--workers", "0", "--recipes",
                        "baseline", "astpn", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert [x["recipe"] for x in rows] == ["baseline", "astpn"]
    for x in rows:
        assert x["frames_per_s_device_bound"] > 0 and x["frames_per_s_loader_fed"] > 0 and x["extract_frames_per_s"] > 0


def test_amp_needs_a_gpu(tiny_tree, tmp_path):
    from vidreid.config import load_config
    from vidreid.engine.trainer import Trainer
    from vidreid.errors import ConfigError

    with pytest.raises(ConfigError, match="train.amp=bf16 needs a GPU"):
        Trainer(load_config(None, [f"data.root={tiny_tree('prid2011')}", "train.amp=bf16", "train.device=cpu",
                                   f"train.output_dir={tmp_path}"]))
    assert load_config(None, ["train.amp=off"]).train.amp == "off"  # YAML's bare off


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 autocast is for GPUs (no GPU here)")
def test_amp_evaluation_keeps_the_ranking(tiny_tree, tmp_path):
    from vidreid.config import load_config
    from vidreid.data.datasets import build_dataset
    from vidreid.engine.evaluator import evaluate_split
    from vidreid.models import create_model

    root = tiny_tree("prid2011")
    split = build_dataset("prid2011", root).split(0)
    m = create_model("baseline", 0, backbone="resnet18", pretrained=None).cuda()
    res = {}
    for amp in ("off", "bf16"):
        c = load_config(None, [f"data.root={root}", f"train.amp={amp}", "data.height=64", "data.width=32"])
        res[amp] = evaluate_split(m, split, c, "cuda")
    assert abs(res["off"]["rank1"] - res["bf16"]["rank1"]) <= 1.0 / res["off"]["num_valid_queries"] + 1e-9


_EXIT_SCRIPT = """
import sys
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from vidreid.engine.distributed import all_gather_object, all_gather_with_grad, end_worker_process, init_from_env, shutdown
assert end_worker_process(3) == 3  # not in a group yet: nothing ends
rank, world = init_from_env()
assert world == 4
assert [int(x) for x in all_gather_with_grad(torch.tensor([float(rank)]))] == [0, 1, 2, 3]
assert all_gather_object({"r": rank}) == [{"r": r} for r in range(4)]


class Holder:  # a finished run: its DDP model unreachable, but in a reference cycle (only gc frees it)
    pass


def train():
    h = Holder()
    h.net, h.me = DDP(torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))), h
    for _ in range(3):
        h.net(torch.randn(8, 32)).sum().backward()


train()
if sys.argv[1] in ("explicit", "ended"):
    shutdown()
    shutdown()  # leaving twice is a no-op
if sys.argv[1] == "ended":  # as `vidreid` ends a torchrun worker: no finalisation, output still flushed
    print(f"rank {rank} done", end="")
    end_worker_process(0)
    raise SystemExit(5)  # never reached
"""


@pytest.mark.parametrize("how", ["explicit", "atexit", "ended"])
def test_processes_leave_the_group_before_exit(tmp_path, how):
    """A process exiting with a live gloo group, or with a DDP model alive when the group is
    destroyed, often aborts in interpreter finalisation ("terminate called
    without an active exception", SIGABRT; it failed CI twice on 2026-11-26); shutdown(),
    called by the CLI and registered at exit by init_from_env, collects the finished DDP model
    and leaves the group first. Several launches, so that the abort would show."""
    script = tmp_path / "exit.py"
    script.write_text(_EXIT_SCRIPT)
    for _ in range(3):
        out = _run([how], 4, script)
        if how == "ended":
            assert all(f"rank {r} done" in out for r in range(4)), out


RECIPES = {  # config name -> overrides for the tiny tree
    "baseline/prid2011": ["data.p=4", "data.k=2", "data.train_sampling.seq_len=3", "schedule.epochs=1",
                          "model.args={backbone: resnet18, pretrained: null, pretrained_anchor: 0}"],
    # two stages: DDP is rebuilt when the trainable set changes (the CNN frozen in the second)
    "stan/cpu_prid2011": ["data.p=2", "model.args.pretrained=null", "stages=[{name: a, epochs: 1, model_attrs: "
                          "{spatial: avg, temporal: avg}}, {name: b, epochs: 1, freeze: [backbone]}]"],
    # siamese pairs: whole pairs per rank, the same number on every rank
    "astpn/cpu_prid2011_pairs": ["schedule.epochs=1", "model.args.in_channels=3", "data.flow=null",
                                 "model.args.height=64", "model.args.width=32"],
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_cli_train_under_torchrun(tiny_tree, tmp_path, name):
    """`vidreid train` in two gloo processes: it exits 0 and rank 0 alone writes the run."""
    root = tiny_tree("prid2011")
    out = _run(["-m", "vidreid.cli", "train", "--config", name, f"data.root={root}", "data.split_id=0",
                f"train.output_dir={tmp_path / 'run'}", "train.progress=false", "train.device=cpu",
                "data.num_workers=0", "data.height=64", "data.width=32", *RECIPES[name]], 2, None)
    assert out.count("metrics:") == 1 and (tmp_path / "run" / "metrics.json").is_file()


def _worker_pid(parent: int, rank: int) -> int | None:
    """The pid of the torchrun worker of ``rank`` below ``parent`` (its RANK environment variable)."""
    import os

    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            env = open(f"/proc/{d}/environ", "rb").read().split(b"\0")
            stat = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"LOCAL_RANK=" + str(rank).encode() in env \
                and int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            return int(d)
    return None


def test_sigterm_to_one_rank_stops_every_rank_at_the_saved_step(tiny_tree, tmp_path):
    """SIGTERM to rank 1 only: every rank stops at the same step, and the checkpoint rank 0 wrote
    is at the step the message names (once a rank said "saved" at a step the file did not hold)."""
    import json
    import os
    import re
    import signal
    import time

    from vidreid.engine.checkpoint import load_checkpoint

    root = tiny_tree("prid2011")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--no-python",
           sys.executable, "-m", "vidreid.cli", "train", "--config", "demo/prid2011", f"data.root={root}",
           "data.split_id=0", f"train.output_dir={run}", "train.progress=false", "train.device=cpu", "data.num_workers=0",
           "data.height=64", "data.width=32", "data.p=2", "data.k=2", "model.args={backbone: resnet18, pretrained: null, pretrained_anchor: 0}",
           "schedule.epochs=200", "schedule.name=constant", "train.log_every=1", "data.train_sampling.seq_len=2"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            log = run / "log.jsonl"
            if log.is_file() and sum(1 for _ in log.open()) >= 3:
                break
            time.sleep(0.2)
        pid = _worker_pid(p.pid, 1) or next(
            (_worker_pid(int(c), 1) for c in os.listdir("/proc") if c.isdigit() and _worker_pid(int(c), 1)), None)
        assert pid is not None, "rank 1 not found"
        os.kill(pid, signal.SIGTERM)
        out, err = p.communicate(timeout=180)
    finally:
        if p.poll() is None:
            p.kill()
    steps = {int(s) for s in re.findall(r"interrupted by SIGTERM at .*?\(global step (\d+)\); checkpoint saved", err)}
    assert len(steps) == 1, err[-2000:]  # every rank that reported names one step
    assert load_checkpoint(run / "checkpoint.pt")["global_step"] == steps.pop()
    assert [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()]
