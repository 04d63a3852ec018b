"""How often a gloo process group aborts at exit (``terminate called without an active
exception``, SIGABRT), with and without what :func:`vidreid.engine.distributed.shutdown` does.

Each launch is ``torchrun --standalone --nproc_per_node P`` of a worker that joins the group,
trains three steps of a small DistributedDataParallel model, gathers an object, and then:

* ``live``: exits with the group and the model alive;
* ``destroy``: destroys the group, the model still alive (it is freed in finalisation);
* ``vidreid``: drops the model (left in a reference cycle, as a finished Trainer is) and calls
  ``vidreid.engine.distributed.shutdown()`` (garbage collection, then destroy).

Prints one JSON line per mode: launches, failed launches, launches whose output has the abort
message. Usage: ``python scripts/gloo_exit_check.py [--launches 10] [--procs 5]`` (CPU only;
about 4 s per launch on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = '''
import sys
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from vidreid.engine.distributed import shutdown

dist.init_process_group("gloo")  # directly: init_from_env would register shutdown at exit


class Holder:
    pass


h = Holder()
h.net, h.me = DDP(torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 8))), h
for _ in range(3):
    h.net(torch.randn(16, 64)).sum().backward()
out = [None] * dist.get_world_size()
dist.all_gather_object(out, dist.get_rank())
mode = sys.argv[1]
if mode == "destroy":
    dist.destroy_process_group()
elif mode == "vidreid":
    del h
    shutdown()
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--launches", type=int, default=10)
    ap.add_argument("--procs", type=int, default=5)
    a = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as d:
        w = Path(d) / "worker.py"
        w.write_text(WORKER)
        for mode in ("live", "destroy", "vidreid"):
            failed = aborted = 0
            for _ in range(a.launches):
                r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                                    str(a.procs), str(w), mode], capture_output=True, text=True, timeout=300, env=env)
                failed += r.returncode != 0
                aborted += "terminate called without an active exception" in (r.stdout + r.stderr)
            print(json.dumps({"mode": mode, "procs": a.procs, "launches": a.launches, "failed": failed,
                              "aborted": aborted}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
