"""Training throughput of the paper recipes with the project's own Trainer, dataset, sampler and
losses: for each recipe, the step rate with batches already in memory ("device-bound": the
model, loss and optimiser alone) and fed by the real DataLoader ("loader-fed"), fp32 and, on a
GPU, bf16 autocast; frames/s and peak memory; then the all-frame extraction rate of the test
split. One JSON line per measurement, then a table.

    python benchmarks/bench_train_throughput.py [--scale cpu|paper] [--steps 20] [--recipes baseline strf ...]

``--scale cpu`` (default without a GPU; what CI runs with ``--steps 2``) uses light backbones
and small inputs on a synthetic PRID-like tree it generates; ``--scale paper`` uses each
recipe's own configuration (ResNet-50 / Inception-v3 at the paper's input size; a GPU). The
synthetic tree is written under ``--data`` (generated once).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import torch

# recipe -> (config, overrides at CPU scale)
RECIPES = {
    "baseline": ("baseline/prid2011", ["model.args={backbone: resnet18, pretrained: null}", "data.height=128",
                                       "data.width=64"]),
    "strf": ("strf/mars", ["model.args={block: p3dc, layers: [1, 2, 2, 1], blocks3d: [[], [0], [0], []], "
                           "strf_blocks: [[0], [0], [0], [0]], strf_stages: [2, 3], pretrained: null}",
                           "data.height=128", "data.width=64", "data.dataset=prid2011"]),
    "star": ("star/prid2011", ["model.args={backbone: resnet18, pretrained: null, use_flow: false, hidden: 64}",
                               "data.flow=null", "data.height=128", "data.width=64"]),
    "stan": ("stan/base", ["model.args={backbone: resnet18, pretrained: null, num_parts: 4, attn_dim: 64, "
                               "num_frames: 6, last_stride: 2}", "data.height=128", "data.width=64"]),
    "rru_stim": ("rru_stim/prid2011", ["model.args={backbone: resnet18, pretrained: null, height: 128, width: 64, "
                                       "aux_classifier: false}", "data.height=128", "data.width=64", "data.min_seq_len=0",
                                       "loss=[{name: cross_entropy, input: logits}, {name: triplet, input: features, margin: 0.4}]"]),
    "astpn": ("astpn/prid2011", ["data.flow=null", "model.args.in_channels=3", "data.height=64", "data.width=32",
                                 "model.args.height=56", "model.args.width=24"]),
}


def peak_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(recipe: str, root: Path, scale: str, steps: int, amp: str, workers: int, out: Path, layout: str = "prid2011") -> dict:
    from torch.utils.data import DataLoader

    from vidreid.config import load_config
    from vidreid.engine.trainer import Trainer, _worker_init

    cfg_name, cpu_ov = RECIPES[recipe]
    ov = [f"data.root={root}", "data.split_id=0", f"data.num_workers={workers}", f"train.amp={amp}",
          f"train.output_dir={out / recipe / amp}", "train.progress=false", "train.overwrite=true"]
    small = ["data.p=3", "data.k=2"] if scale == "cpu" else []  # the tiny tree has 6 training identities
    from vidreid.models.registry import model_args

    base = load_config(cfg_name, [])
    # throughput does not depend on the initial weights: no ImageNet file is needed on the machine
    nowts = ["model.args.pretrained=null"] if scale == "paper" and "pretrained" in model_args(base.model.name) else []
    cfg = load_config(cfg_name, (cpu_ov + small if scale == "cpu" else nowts) + ov + [f"data.dataset={layout}"])
    tr = Trainer(cfg)
    dev = tr.device
    tr._train_mode()
    loader = DataLoader(tr.train_set, batch_sampler=tr.sampler, num_workers=workers, persistent_workers=workers > 0,
                        pin_memory=dev.type == "cuda", worker_init_fn=_worker_init)
    it = iter(loader)
    batch = next(it)
    frames = batch["clip"].shape[0] * batch["clip"].shape[1]
    tr.train_step(batch)  # warm-up
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync(dev)
    t = time.perf_counter()
    for _ in range(steps):
        tr.train_step(batch)
    tr.check_finite()  # reads the losses: one synchronisation, as the trainer does per log_every steps
    sync(dev)
    bound = (time.perf_counter() - t) / steps
    t, n = time.perf_counter(), 0
    while n < steps:
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        tr.train_step(b)
        n += 1
    tr.check_finite()
    sync(dev)
    fed = (time.perf_counter() - t) / steps
    # all-frame extraction of the query set
    from vidreid.data.sampling import TemporalSampler
    from vidreid.engine.evaluator import amp_dtype, autocast, make_test_transform
    from vidreid.inference.features import extract_features

    ts = cfg.data.test_sampling
    q = tr.split.query
    sync(dev)
    t = time.perf_counter()
    with autocast(dev, amp_dtype(amp, dev)):
        extract_features(tr.model, tr.split.root, q, TemporalSampler(ts.strategy, ts.seq_len, train=False),
                         make_test_transform(cfg, tr.model), batch_size=64, num_workers=workers, device=dev)
    sync(dev)
    ext = time.perf_counter() - t
    n_frames = sum(len(x) for x in q) if ts.strategy == "all" else len(q) * ts.seq_len
    return {"recipe": recipe, "layout": layout, "transfer": str(batch["clip"].dtype).replace("torch.", ""), "scale": scale, "amp": amp, "device": str(dev), "batch_clips": int(batch["clip"].shape[0]),
            "clip_frames": int(batch["clip"].shape[1]), "step_s_device_bound": bound, "frames_per_s_device_bound": frames / bound,
            "step_s_loader_fed": fed, "frames_per_s_loader_fed": frames / fed, "loader_fed_over_bound": bound / fed,
            "peak_mb": peak_mb(dev), "extract_frames_per_s": n_frames / ext, "extract_frames": n_frames}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", choices=["cpu", "paper"], default="paper" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1))
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--layout", choices=["prid2011", "mars"], default="prid2011",
                    help="the synthetic tree's layout: prid2011 (PNG frames) or mars (JPEG frames)")
    ap.add_argument("--data", default=None, help="where the synthetic tree is written (default outputs/bench/<layout>)")
    ap.add_argument("--out", default="outputs/bench/throughput")
    a = ap.parse_args()
    from vidreid.synth import generate

    root = Path(a.data or f"outputs/bench/{a.layout}")
    if not (root / "synth_manifest.json").is_file():
        generate(a.layout, "tiny" if a.scale == "cpu" else a.layout, root, seed=0)
    amps = ["off"] + (["bf16"] if torch.cuda.is_available() else [])
    print(f"# machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}; scale {a.scale}, {a.steps} steps",
          flush=True)
    rows = []
    for r in a.recipes:
        for amp in amps:
            row = measure(r, root, a.scale, a.steps, amp, a.workers, Path(a.out), a.layout)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| recipe | layout | amp | batch | device-bound frames/s | loader-fed frames/s | fed / bound | peak MB | extract frames/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['recipe']} | {r['layout']} | {r['amp']} | {r['batch_clips']}x{r['clip_frames']} | {r['frames_per_s_device_bound']:.0f} | "
              f"{r['frames_per_s_loader_fed']:.0f} | {r['loader_fed_over_bound']:.2f} | {r['peak_mb']:.0f} | "
              f"{r['extract_frames_per_s']:.0f} |")


if __name__ == "__main__":
    main()
