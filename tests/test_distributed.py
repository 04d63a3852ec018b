"""Distributed training on the CPU (gloo, 2 processes under torchrun): one step of the
2-process run equals one step of one process on the same global batch (BatchNorm in eval mode),
with the batch-hard triplet mined over the global batch and the OIM table kept in step; a
2-process evaluation gives the same metrics as one process."""

from __future__ import annotations

import json
import socket
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


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args, n):
    if n == 1:
        cmd = [sys.executable, str(HELPER), *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n), "--master_addr", "127.0.0.1",
               "--master_port", str(_port()), str(HELPER), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**__import__("os").environ,
                                                                           "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_two_processes_equal_one(tiny_tree, tmp_path, loss):
    root = tiny_tree("prid2011")
    for n in (1, 2):
        _run([str(root), str(tmp_path), LOSSES[loss]], n)
    r1, r2 = torch.load(tmp_path / "params_1.pt"), torch.load(tmp_path / "params_2.pt")
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
    for a, b in zip(r1["lut"], r2["lut"]):  # the OIM lookup table: the same update from the global batch
        assert torch.allclose(a, b, atol=1e-6)
    assert json.loads((tmp_path / "metrics_1.json").read_text()) == json.loads((tmp_path / "metrics_2.json").read_text())


def test_gather_with_grad_single_process_is_identity():
    from vidreid.engine.distributed import all_gather_object, all_gather_with_grad, rank_world

    x = torch.randn(3, 2, requires_grad=True)
    assert all_gather_with_grad(x) is x and all_gather_object(5) == [5] and rank_world() == (0, 1)
