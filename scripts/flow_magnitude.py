"""How large is optical flow on re-ID crops? Percentiles of the per-pixel flow components (in
pixels, at the size a model reads them) between consecutive frames of tracklets, to choose the
bound that maps flow to [-1, 1] (ASTPN, Xu et al. ICCV 2017 Sec. 4.1.1: "optical flow channels
were normalized to the range -1 to 1"; vidreid/data/flow.py stores flow / bound in 8 bits).

    python scripts/flow_magnitude.py --root DIR --dataset prid2011 [--method lk] [--size 128 64]
    python scripts/flow_magnitude.py --root data/pets/split --dataset folder

Frames are resized to ``--size`` (H W) before the flow is computed, as the model sees them.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np


def main() -> None:
    from vidreid.data.datasets import build_dataset
    from vidreid.data.flow import flow_between
    from vidreid.data.flow import all_tracklets

    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--method", default="lk")
    ap.add_argument("--size", type=int, nargs=2, default=(128, 64), metavar=("H", "W"))
    ap.add_argument("--max-tracklets", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    ds = build_dataset(a.dataset, a.root)
    tracklets = all_tracklets(ds)
    rng = np.random.default_rng(a.seed)
    pick = rng.choice(len(tracklets), min(a.max_tracklets, len(tracklets)), replace=False)
    H, W = a.size
    comps = []
    for i in pick:
        t = tracklets[i]
        prev = None
        for f in t.frames[:40]:
            img = cv2.imread(str(ds.root / f), cv2.IMREAD_GRAYSCALE)
            img = cv2.resize(img, (W, H), interpolation=cv2.INTER_AREA)
            if prev is not None:
                comps.append(np.abs(flow_between(prev, img, a.method)).ravel())
            prev = img
    c = np.concatenate(comps)
    qs = (50, 90, 99, 99.9)
    p = np.percentile(c, qs)
    print(f"{a.dataset} at {H}x{W}, {a.method}, {len(pick)} tracklets, {len(comps)} frame pairs, "
          f"{len(c):,} flow components (pixels):")
    print("  |component| percentiles: " + ", ".join(f"p{q}: {v:.2f}" for q, v in zip(qs, p)) + f", max {c.max():.2f}")
    for bound in (20.0, 8.0, 4.0):
        used = np.percentile(np.minimum(c / bound, 1.0), 99)
        clipped = float((c > bound).mean())
        levels = 127 * p[2] / bound
        print(f"  bound {bound:g} px: p99 of |flow| / bound = {used:.3f}; clipped {100 * clipped:.3f}% of components; "
              f"p99 component spans {levels:.0f} of 127 quantisation steps")


if __name__ == "__main__":
    main()
