"""The cost of pair-dependent models (issue 5): ASTPN's pairwise scoring of Q x G
probe-gallery pairs (attentive temporal pooling per pair, Xu et al. 2017, Eqs. 3-5) against
the embedding path (one vector per tracklet, then a distance matrix), from precomputed
recurrent states (T = 16 frames, N = 128), in the same run.

    python benchmarks/bench_pairwise.py [--sizes 89x89 300x300 1000x1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from vidreid.inference.pairwise import pairwise_distances
from vidreid.models import create_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="*", default=["89x89", "300x300", "1000x1000"])
    ap.add_argument("--T", type=int, default=16)
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    m = create_model("astpn", 0).eval()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; T={a.T}, N=128")
    for size in a.sizes:
        Q, G = (int(x) for x in size.split("x"))
        g = torch.Generator().manual_seed(0)
        qs = list(torch.randn(Q, a.T, 128, generator=g))
        gs = list(torch.randn(G, a.T, 128, generator=g))
        t = time.perf_counter()
        pairwise_distances(m, qs, gs, block=64)
        tp = time.perf_counter() - t
        t = time.perf_counter()
        with torch.no_grad():
            qe = m.attentive_pool(torch.stack(qs), torch.stack(qs))[0]
            ge = m.attentive_pool(torch.stack(gs), torch.stack(gs))[0]
            torch.cdist(qe, ge)
        te = time.perf_counter() - t
        print(f"{Q} x {G} = {Q * G:,} pairs: pairwise {tp:.2f} s ({Q * G / tp:,.0f} pairs/s); "
              f"embedding (self-pairing + distances) {te:.4f} s; ratio {tp / te:,.0f}x")
    mars = 1980 * 9330
    print(f"MARS protocol (1,980 x 9,330 = {mars:,} pairs) at the last rate: about {mars / (Q * G / tp) / 60:.0f} min")


if __name__ == "__main__":
    main()
