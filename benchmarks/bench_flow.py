"""Optical-flow speed per method (issue 4): frames/s of flow between consecutive frames of a
rendered synthetic tracklet, at 128x64 and 256x128, one core (OpenCV single-threaded).

    python benchmarks/bench_flow.py [--frames 60]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import cv2
import numpy as np

from vidreid.data.flow import METHODS, flow_between
from vidreid.synth.render import Camera, Identity, TrackletRenderer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=60)
    a = ap.parse_args()
    cv2.setNumThreads(1)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores (OpenCV single-threaded), OpenCV {cv2.__version__}")
    for h, w in ((128, 64), (256, 128)):
        r = TrackletRenderer(Identity.sample(np.random.default_rng(1)), Camera.sample(np.random.default_rng(2), h, w),
                             a.frames + 1, np.random.default_rng(3), h, w)
        grays = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in r.frames()]
        for m in METHODS:
            n = a.frames if m != "tvl1" else max(3, a.frames // 10)  # TV-L1 is slow: fewer frames
            t = time.perf_counter()
            for i in range(n):
                flow_between(grays[i], grays[i + 1], m)
            fps = n / (time.perf_counter() - t)
            print(f"{h}x{w} {m:10s} {fps:8.1f} frames/s")


if __name__ == "__main__":
    main()
