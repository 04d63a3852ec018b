"""Peak memory of the one-pass all-frame test against tracklet length (issue 12).

For each temporal model at its paper configuration (random weights, CPU, fp32), one tracklet of
50, 500 and 2,000 frames goes through ``extract_features`` with the ``all`` sampler (frames in
batches of ``--batch`` through the CNN, the temporal module carried across batches). Each
(model, length) runs in a fresh process; peak RSS is read after a warm-up extraction of 8
frames (so thread pools and allocator caches are already counted) and after the long one. The
growth per extra frame, (peak(2000) - peak(50)) / 1950, is the per-frame state the temporal
module keeps: the target is <= 1 MB a frame beyond the CNN's batch.

``--whole`` also measures ``model(clip)`` on the whole tracklet at once (the reference the
streaming path equals) for the lengths up to 500, for comparison.

    python benchmarks/bench_stream_memory.py [--models star rru_stim astpn baseline] [--whole]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LENGTHS = (50, 500, 2000)

# paper configurations (configs/*/prid2011.yaml), RGB only: flow changes the CNN's input, not
# the state the temporal module keeps
MODELS = {
    "star": (dict(name="star", backbone="resnet50", use_flow=False, last_stride=1), 256, 128, "rgb"),
    "rru_stim": (dict(name="rru_stim", backbone="inception_v3", height=299, width=299, aux_classifier=False),
                 299, 299, "rgb"),
    "astpn": (dict(name="astpn", in_channels=3, height=120, width=56), 128, 64, "yuv_std"),
    "baseline": (dict(name="baseline", backbone="resnet50"), 256, 128, "rgb"),
}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(model_key: str, length: int, batch: int, whole: bool, frames_dir: str) -> dict:
    import torch

    from vidreid.data.sampling import TemporalSampler
    from vidreid.data.tracklet import Tracklet
    from vidreid.data.transforms import ClipTransform
    from vidreid.data.video import ClipDataset
    from vidreid.inference.features import extract_features
    from vidreid.models import create_model

    torch.set_num_threads(os.cpu_count() or 1)
    args, h, w, color = MODELS[model_key]
    args = dict(args)
    model = create_model(args.pop("name"), num_classes=0, **args).eval()
    crop = 8 if model_key == "astpn" else 0
    tf = ClipTransform(h, w, train=False, color=color, crop=crop)
    names = tuple(f"f/{i:05d}.jpg" for i in range(length))
    sampler = TemporalSampler("all", seq_len=8, train=False)
    warm = Tracklet(names[:8], 1, 1, "warm")
    extract_features(model, frames_dir, [warm], sampler, tf, batch_size=batch, num_workers=0)
    base = _peak_mb()
    t = time.perf_counter()
    trk = Tracklet(names, 1, 1, "long")
    if whole:
        clip = ClipDataset(frames_dir, [trk], sampler, tf)[0]["clip"][None]
        base = _peak_mb()  # the decoded clip itself is not the model's
        with torch.inference_mode():
            model(clip.contiguous(memory_format=torch.contiguous_format))
    else:
        extract_features(model, frames_dir, [trk], sampler, tf, batch_size=batch, num_workers=0)
    return {"model": model_key, "frames": length, "mode": "whole" if whole else "stream",
            "warm_peak_mb": base, "peak_mb": _peak_mb(), "seconds": time.perf_counter() - t}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--batch", type=int, default=32, help="frames per CNN batch")
    ap.add_argument("--whole", action="store_true", help="also model(clip) on the whole tracklet (<= 500 frames)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        key, n, whole, d = a.child
        print(json.dumps(child(key, int(n), a.batch, whole == "1", d)))
        return
    import cv2
    import numpy as np

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; CNN batch {a.batch} frames; fp32, random weights")
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "f").mkdir()
        rng = np.random.default_rng(0)
        img = rng.integers(0, 256, (299, 299, 3), dtype=np.uint8)
        for i in range(max(LENGTHS)):
            cv2.imwrite(str(Path(d) / "f" / f"{i:05d}.jpg"), np.roll(img, i, axis=1))
        rows = []
        for key in a.models:
            for whole in ([False, True] if a.whole else [False]):
                for n in LENGTHS:
                    if whole and n > 500:
                        continue
                    out = subprocess.run([sys.executable, __file__, "--batch", str(a.batch), "--child", key, str(n),
                                          "1" if whole else "0", d], capture_output=True, text=True)
                    if out.returncode != 0:
                        print(f"{key} {n} {'whole' if whole else 'stream'}: failed\n{out.stderr[-2000:]}")
                        continue
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    rows.append(r)
                    print(f"{key:9s} {r['mode']:6s} {n:5d} frames: peak {r['peak_mb']:8.0f} MB "
                          f"(+{r['peak_mb'] - r['warm_peak_mb']:6.0f} over the warm-up), {r['seconds']:6.1f} s", flush=True)
        print()
        print("| model | mode | peak 50 fr. (MB) | peak 500 fr. (MB) | peak 2,000 fr. (MB) | MB per extra frame |")
        print("|---|---|---|---|---|---|")
        for key in a.models:
            for mode in ("stream", "whole"):
                rs = {r["frames"]: r["peak_mb"] for r in rows if r["model"] == key and r["mode"] == mode}
                if not rs:
                    continue
                hi = max(rs)
                per = (rs[hi] - rs[50]) / (hi - 50) if hi > 50 and 50 in rs else float("nan")
                cells = [f"{rs[n]:.0f}" if n in rs else "-" for n in LENGTHS]
                print(f"| {key} | {mode} | {' | '.join(cells)} | {per:.3f} (50 -> {hi}) |")


if __name__ == "__main__":
    main()
