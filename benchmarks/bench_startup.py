"""Start-up time of the command line, best of N fresh processes each, side by side with a bare
``python -c pass`` and ``python -c "import torch"`` in the same run (issue 26: target < 0.5 s on
2 idle cores for --version, --help and tracklets --help).

    python benchmarks/bench_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

CASES = [("python -c pass", [sys.executable, "-c", "pass"]),
         ("vidreid --version", [sys.executable, "-m", "vidreid.cli", "--version"]),
         ("vidreid --help", [sys.executable, "-m", "vidreid.cli", "--help"]),
         ("vidreid tracklets --help", [sys.executable, "-m", "vidreid.cli", "tracklets", "--help"]),
         ("python -c 'import torch'", [sys.executable, "-c", "import torch"])]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; best and median of {a.repeats} fresh processes")
    best = {}
    for r in range(a.repeats):  # interleaved: every case sees the same machine state
        for label, cmd in CASES:
            t = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            best.setdefault(label, []).append(time.perf_counter() - t)
    for label, ts in best.items():
        ts = sorted(ts)
        print(f"  {label:28s} best {ts[0]:.3f} s, median {ts[len(ts) // 2]:.3f} s")


if __name__ == "__main__":
    main()
