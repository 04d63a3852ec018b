"""Weight-space interpolation between the starting model and a fine-tuned one (WiSE-FT:
Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022), measured for issue 24:
theta(alpha) = theta_0 + alpha * (theta_ft - theta_0) for every floating tensor of the state dict
(BatchNorm statistics included; theta_0 is the model as ``vidreid train`` built it: ImageNet
backbone, fresh neck and classifier at the run's seed), tested on the run's synthetic split 0 and
the two PETS protocols (32 evenly spaced frames per tracklet).

    python scripts/weight_interpolation.py CHECKPOINT ALPHA [ALPHA ...] [--pets outputs/ablation_forgetting/pets]
"""

from __future__ import annotations

import argparse
import sys

import torch


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("alphas", type=float, nargs="+")
    ap.add_argument("--pets", default="outputs/ablation_forgetting/pets", help="vidreid prepare pets2009 output")
    a = ap.parse_args()
    from vidreid.config import from_container
    from vidreid.data.datasets import build_dataset_from_config
    from vidreid.engine.checkpoint import load_checkpoint
    from vidreid.engine.evaluator import evaluate_extra, evaluate_split
    from vidreid.engine.trainer import load_model_from_checkpoint
    from vidreid.models import create_model

    st = load_checkpoint(a.checkpoint)
    model, _, st = load_model_from_checkpoint(st, source=a.checkpoint)
    cfg = from_container(st["config"])
    cfg.data.num_workers = 1
    cfg.test.extra = [{"name": "PETS re-entry", "root": f"{a.pets}/reentry", "frames": 32},
                      {"name": "PETS split", "root": f"{a.pets}/split", "frames": 32}]
    torch.manual_seed(cfg.train.seed)
    s0 = create_model(cfg.model.name, num_classes=model.classifier.weight.shape[0], **cfg.model.args).state_dict()
    s1 = {k: v.clone() for k, v in model.state_dict().items()}
    split = build_dataset_from_config(cfg.data).split(0)
    print("| alpha | synthetic R1 | mAP | PETS re-entry R1 | mAP | PETS split R1 | mAP |\n|---|---|---|---|---|---|---|")
    for al in a.alphas:
        model.load_state_dict({k: (s0[k] + al * (s1[k] - s0[k]) if s1[k].is_floating_point() else s1[k]) for k in s1})
        r = evaluate_split(model.eval(), split, cfg, "cpu")
        ex = {e["dataset"]: e for e in evaluate_extra(model, cfg, "cpu")}
        print(f"| {al:g} | {100 * r['rank1']:.1f} | {100 * r['mAP']:.1f} | "
              + " | ".join(f"{100 * ex[d]['rank1']:.1f} | {100 * ex[d]['mAP']:.1f}" for d in ("PETS re-entry", "PETS split"))
              + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
