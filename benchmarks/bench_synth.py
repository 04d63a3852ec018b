"""Synthetic benchmark speed: frames/s of 128x64 crops rendered on one core, and rendered +
encoded + written (PNG and JPEG), against the 1,000 frames/s target of issue 2.

    python benchmarks/bench_synth.py [--frames 3000]

The last line renders the same tracklets with the detailed renderer (``Preset.detail = 1``:
``Detail`` / ``CameraDetail`` attached, passers-by drawn from their own generator), beside the
first renderer in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from vidreid.synth.render import Camera, CameraDetail, Detail, Identity, TrackletRenderer

TARGET = 1000.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=3000)
    a = ap.parse_args()
    cv2.setNumThreads(1)
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    cams = [Camera.sample(np.random.default_rng(100 + c), 128, 64) for c in range(4)]
    ids = [Identity.sample(np.random.default_rng(i)) for i in range(50)]
    per = 60
    n_tr = a.frames // per
    renderers = [TrackletRenderer(ids[k % 50], cams[k % 4], per, np.random.default_rng(k)) for k in range(n_tr)]
    t = time.perf_counter()
    frames = [f for r in renderers for f in r.frames()]
    render = len(frames) / (time.perf_counter() - t)
    rates = {"render": render}
    with tempfile.TemporaryDirectory() as d:
        for ext, params in ((".png", []), (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 92])):
            t = time.perf_counter()
            for r in renderers[: max(1, n_tr // 2)]:
                for i, f in enumerate(r.frames()):
                    cv2.imwrite(str(Path(d) / f"{i:04d}{ext}"), f, params)
            rates[f"render+write{ext}"] = max(1, n_tr // 2) * per / (time.perf_counter() - t)
    for c, cam in enumerate(cams):
        cam.detail = CameraDetail.sample(np.random.default_rng(200 + c))
    for i, ident in enumerate(ids):
        ident.detail = Detail.sample(np.random.default_rng(300 + i))
    detailed = [TrackletRenderer(ids[k % 50], cams[k % 4], per, np.random.default_rng(k),
                                 detail_rng=np.random.default_rng(10_000 + k)) for k in range(n_tr)]
    t = time.perf_counter()
    n = sum(1 for r in detailed for _ in r.frames())
    rates["render detail=1"] = n / (time.perf_counter() - t)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (benchmark pinned to 1)")
    for k, v in rates.items():
        print(f"{k:18s} {v:8.0f} frames/s   {v / TARGET:5.2f}x the 1,000 frames/s target")


if __name__ == "__main__":
    main()
