"""What moves the demo's numbers between runs with the same seed (issue 26): the code (a commit),
or the CPU's kernels (the ISA torch dispatches to)? Trains the demo recipe (``demo/prid2011``,
seed 0) on the demo's synthetic data once per variant and prints, per variant, the first logged
losses and, for full runs, the split-0 rank-1 / mAP:

    python scripts/demo_reproducibility.py [--data outputs/demo/data/prid2011] [--epochs 18]
        [--commits 138c8f0 HEAD] [--isa default avx2] [--threads 0] [--out outputs/demo_reproducibility]

* ``--commits``: each commit is checked out into ``OUT/wt_<commit>`` (``git worktree``) and run
  from its own ``src`` with this environment's torch; the configs of that commit are used.
* ``--isa avx2`` caps torch's CPU kernels at AVX2 (``ATEN_CPU_CAPABILITY=avx2``) and oneDNN's at
  AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``), i.e. runs as an AVX2-only CPU would, on an AVX-512 machine.
* ``--threads``: torch intra-op thread counts (``train.num_threads``; 0 = torch's default), each a
  run of its own (with today's commits; older ones may not know the key).

Every run is a separate process; ``--epochs`` below 18 shortens the cosine schedule (the losses
then are comparable between variants, not with the demo's). Writes ``OUT/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Older commits import torchvision directly; with a CPU torch beside PyPI's torchvision that needs
# the schema shim of today's vidreid/models/vision_libs.py (see its docstring) before they run.
LAUNCH = r"""
import importlib.util, runpy, sys
spec = importlib.util.spec_from_file_location("_vidreid_vision_libs", sys.argv[1])
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); mod.torchvision()
sys.argv = ["vidreid"] + sys.argv[2:]
runpy.run_module("vidreid.cli", run_name="__main__")
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="outputs/demo/data/prid2011")
    ap.add_argument("--epochs", type=int, default=18)
    ap.add_argument("--commits", nargs="+", default=["HEAD"])
    ap.add_argument("--isa", nargs="+", default=["default"], choices=["default", "avx2"])
    ap.add_argument("--threads", type=int, nargs="+", default=[0])
    ap.add_argument("--out", default="outputs/demo_reproducibility")
    a = ap.parse_args()
    data, out = Path(a.data).resolve(), Path(a.out).resolve()
    if not data.is_dir():
        print(f"demo_reproducibility: no synthetic data at {data} (run `vidreid demo` or `vidreid synth` first)",
              file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    summary = []
    for commit in a.commits:
        sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", commit], check=True,
                             capture_output=True, text=True).stdout.strip()
        wt = out / f"wt_{sha}"
        if not wt.is_dir():
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(wt), sha], check=True)
        for isa, threads in [(i, t) for i in a.isa for t in a.threads]:
            tag = f"{isa}" + (f"_t{threads}" if threads else "")
            run = out / f"run_{sha}_{tag}"
            env = dict(os.environ, PYTHONPATH=str(wt / "src"))
            if isa == "avx2":
                env.update(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2")
            cmd = [sys.executable, "-c", LAUNCH, str(REPO / "src/vidreid/models/vision_libs.py"), "train",
                   "--config", str(wt / "src/vidreid/configs/demo/prid2011.yaml"), f"data.root={data}",
                   f"train.output_dir={run}", f"schedule.epochs={a.epochs}"] + (
                      [f"train.num_threads={threads}"] if threads else [])
            if run.exists():  # this script's own earlier run: start it again
                shutil.rmtree(run)
            t = time.perf_counter()
            with open(out / f"log_{sha}_{tag}.txt", "w") as log:
                rc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
            rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()] if (run / "log.jsonl").is_file() else []
            losses = [round(r["loss"], 6) for r in rows if "loss" in r][:8]
            m = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
            rec = {"commit": sha, "isa": isa, "threads": threads, "epochs": a.epochs, "rc": rc, "wall_s": round(time.perf_counter() - t, 1),
                   "first_losses": losses, "rank1": m.get("rank1"), "mAP": m.get("mAP")}
            summary.append(rec)
            print(json.dumps(rec), flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
