"""Training-step cost of the paper-scale models of issues 6-8 side by side in one run: one
forward + backward of a clip batch at each paper's input size, fp32, on this machine
(CPU, or the GPU with --device cuda), with peak memory on CUDA. The STRF overhead is the
ratio of P3D-C + STRF to P3D-C measured here.

    python benchmarks/bench_paper_models.py [--batch 2] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from vidreid.models import create_model

# (label, model name, args, T, H, W): each paper's clip and input size
MODELS = [
    ("P3D-C (ResNet-50)", "resnet3d", {"block": "p3dc"}, 8, 224, 112),  # STRF Sec. 4.2: T = 8, 224x112
    ("P3D-C + STRF", "strf", {"block": "p3dc"}, 8, 224, 112),
    ("STAN (ResNet-50, K = 6)", "stan", {}, 6, 256, 128),
    ("RRU + STIM (Inception-v3)", "rru_stim", {}, 8, 299, 299),
]


def step_time(m, clip, repeats: int, device) -> tuple[float, float]:
    times, peak = [], 0.0
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
        t = time.perf_counter()
        o = m(clip)
        loss = o.features.float().pow(2).mean() + (o.logits.float().logsumexp(1).mean() if o.logits is not None else 0)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
            peak = max(peak, torch.cuda.max_memory_allocated() / 2**30)
        times.append(time.perf_counter() - t)
        m.zero_grad(set_to_none=True)
    return min(times[1:]), peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=2, help="clips per batch")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    device = torch.device(a.device)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, device {device}; "
          f"batch {a.batch} clips, fp32, best of {a.repeats} after one warm-up")
    base = None
    for label, name, kw, T, H, W in MODELS:
        torch.manual_seed(0)
        m = create_model(name, num_classes=625, **kw).to(device).train()
        clip = torch.randn(a.batch, T, 3, H, W, device=device)
        dt, peak = step_time(m, clip, a.repeats, device)
        ratio = f"; x{dt / base:.3f} of P3D-C" if base is not None and name == "strf" else ""
        base = dt if name == "resnet3d" else base
        mem = f", peak {peak:.2f} GiB" if device.type == "cuda" else ""
        print(f"{label:28s} T={T} {H}x{W}: {dt:.3f} s/step, {a.batch / dt:.2f} clips/s{mem}{ratio}")


if __name__ == "__main__":
    main()
