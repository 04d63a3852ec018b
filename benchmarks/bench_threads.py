"""Training throughput of the demo recipe on an idle and on a shared machine, by torch thread
count (issue 26): is the slowdown under load about the 2x a fair share gives, or worse
(oversubscription: torch's intra-op threads spin at barriers while another process holds the
cores)? Side by side in one run:

    python benchmarks/bench_threads.py [--data outputs/demo/data/prid2011] [--epochs 3] [--threads 0 1]

For each torch thread count (0: torch's default, one per core), ``--epochs`` epochs of
``demo/prid2011`` (its batch, size and DataLoader worker) run alone, then with ``--load`` busy
processes (default: one per core) beside them. Prints the median training throughput (clips/s,
the trainer's log, first interval left out) and the idle / loaded ratio per setting.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time

CHILD = r"""
import json, shutil, statistics, sys, tempfile, time
import torch
from vidreid.config import load_config
from vidreid.engine.trainer import Trainer
root, threads, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = tempfile.mkdtemp(prefix="vidreid_bench_threads_")
cfg = load_config("demo/prid2011", [f"data.root={root}", f"train.output_dir={out}/run", "train.progress=false",
                                    f"train.num_threads={threads}", "train.log_every=5"])
t = time.perf_counter()
Trainer(cfg).fit(stop_after_epochs=epochs)
wall = time.perf_counter() - t
rows = [json.loads(x) for x in open(f"{out}/run/log.jsonl") if '"clips_per_s"' in x]
cps = statistics.median(r["clips_per_s"] for r in rows[1:])  # the first interval holds the start-up
shutil.rmtree(out)
print(json.dumps({"threads": torch.get_num_threads(), "clips_per_s": cps, "wall_s": wall}))
"""


def _busy(stop):
    while not stop.is_set():
        pass


def measure(data: str, threads: int, steps: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, data, str(threads), str(steps)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="outputs/demo/data/prid2011")
    ap.add_argument("--epochs", type=int, default=3, help="demo epochs per measurement (11 steps each)")
    ap.add_argument("--threads", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--load", type=int, default=os.cpu_count() or 2, help="busy processes beside the loaded runs")
    a = ap.parse_args()
    rows = []
    for th in a.threads:
        idle = measure(a.data, th, a.epochs)
        stop = mp.Event()
        procs = [mp.Process(target=_busy, args=(stop,), daemon=True) for _ in range(a.load)]
        for p in procs:
            p.start()
        time.sleep(1.0)
        try:
            loaded = measure(a.data, th, a.epochs)
        finally:
            stop.set()
            for p in procs:
                p.join()
        rows.append((th, idle, loaded))
    print(f"{os.cpu_count()} cores; {a.load} busy processes beside the loaded runs; {a.epochs} demo epochs each")
    print("| torch threads | idle clips/s | loaded clips/s | idle / loaded | idle wall s | loaded wall s |")
    print("|---|---|---|---|---|---|")
    for th, i, l in rows:
        print(f"| {th or 'default'} ({i['threads']}) | {i['clips_per_s']:.1f} | {l['clips_per_s']:.1f} | "
              f"{i['clips_per_s'] / l['clips_per_s']:.2f} | {i['wall_s']:.0f} | {l['wall_s']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
