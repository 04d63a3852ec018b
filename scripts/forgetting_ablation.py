"""Training that does not forget (issue 24): the demo recipe and its variants, each over several
seeds, on the synthetic PRID-like test split and on the real PETS 2009 tracks (both protocols),
beside the no-training ImageNet reference.

    python scripts/forgetting_ablation.py [--seeds 0 1 2] [--variants demo distill ...] [--out DIR]
        [--init-from CKPT --variants init_from] [--detail 1]

``--detail 1`` trains and tests on the synthetic benchmark drawn by the detailed renderer
(``vidreid synth --set detail=1``; give it its own ``--out``: its synthetic reference differs).

``finetune`` is plain fine-tuning (the demo recipe before 2026-11-30: no distillation, no anchor,
no appearance augmentation); every other variant adds its overrides to it, except ``demo``, the
recipe as shipped (``distill_1+anchor_1+appearance``; ``distill_1+anchor_1`` was the demo's recipe
earlier on 2026-11-30). ``init_from`` starts plain fine-tuning from ``--init-from``
(``train.init_from``: every tensor that fits, e.g. the image-re-ID-pretrained baseline of
``scripts/pretraining_chain.py``) instead of ImageNet. The ``freeze`` variants' single stage repeats
the demo's 18 epochs (``frozen_through``): change both together.

Every run is `vidreid train --config demo/prid2011` with the variant's overrides and
``test.extra`` = the two PETS protocols (32 evenly spaced frames per tracklet, as the demo). The
synthetic data and the PETS crops are made when missing (``vidreid synth``; ``vidreid prepare
pets2009`` from ``--pets``, default ../shared/data/pets2009_s2l1). Prints a Markdown table
(means and population standard deviations over the seeds) and writes ``OUT/ablation.json``.
One PETS query is 1/16 (re-entry) or 1/19 (split) of rank-1: 6.25 or 5.3 points.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# Every variant but "demo" starts from PLAIN: the demo recipe without its guards against
# forgetting (distillation, the pretrained anchor, appearance augmentation), i.e. plain fine-tuning
# from ImageNet, as `make demo` trained before 2026-11-30 (those runs are under OUT/finetune).
APPEARANCE = ["data.augment.color_p=0.8", "data.augment.gray_p=0.1", "data.augment.blur_p=0.3"]
# the demo recipe's three guards, which the later candidates each add one option to
GUARDS = ["train.distill_weight=1.0", "model.args.pretrained_anchor=1.0", *APPEARANCE]
PLAIN = ["train.distill_weight=0.0", "model.args.pretrained_anchor=0.0",
         *(x.split("=")[0] + "=0.0" for x in APPEARANCE)]


def frozen_through(block: int) -> str:
    """One 18-epoch stage (the demo's schedule) with EfficientNet-Lite0's stem and blocks 0..block
    kept at their ImageNet weights (and their BatchNorm layers in eval mode)."""
    pre = ["backbone.body.m.conv_stem", "backbone.body.m.bn1", *(f"backbone.body.m.blocks.{i}" for i in range(block + 1))]
    return f"stages=[{{name: main, epochs: 18, freeze: [{', '.join(pre)}]}}]"


VARIANTS = {
    "demo": [],  # the recipe as shipped (demo/prid2011.yaml): distill_1+anchor_1+appearance
    "finetune": [],
    "backbone_lr_0.1": ["optim.pretrained_lr_mult=0.1"],
    "distill_10": ["train.distill_weight=10.0"],
    "distill_1": ["train.distill_weight=1.0"],
    # the frozen pretrained backbone's feature appended to the test embedding (models/baseline.py)
    "anchor_1": ["model.args.pretrained_anchor=1.0"],
    "distill_1+anchor_1": ["train.distill_weight=1.0", "model.args.pretrained_anchor=1.0"],  # the demo's earlier on 2026-11-30
    "distill_3+anchor_1": ["train.distill_weight=3.0", "model.args.pretrained_anchor=1.0"],
    "distill_1+anchor_1+appearance": ["train.distill_weight=1.0", "model.args.pretrained_anchor=1.0", *APPEARANCE],
    # low-level stages kept at ImageNet (IBN-Net's observation: appearance lives in the early layers)
    "distill_1+anchor_1+freeze_2": ["train.distill_weight=1.0", "model.args.pretrained_anchor=1.0", frozen_through(2)],
    "distill_1+anchor_1+freeze_4": ["train.distill_weight=1.0", "model.args.pretrained_anchor=1.0", frozen_through(4)],
    # IBN-a (instance + batch normalisation) in Lite0's block groups 0-2 (its low-level stages), on the demo recipe
    "distill_1+anchor_1+appearance+ibn_3": [*GUARDS, "model.args.ibn=3"],
    # scale augmentation (torchreid's Random2DTranslation, 1.125 with p 0.5): PETS's ground-truth boxes are tight,
    # the renderer's people fill 65-97 % of the crop's height
    "distill_1+anchor_1+appearance+zoom": [*GUARDS, "data.augment.zoom_p=0.5"],
    # 16 identities per batch instead of 8 (P x K = 16 x 2): more look-alikes meet in a batch's hardest triplets
    "distill_1+anchor_1+appearance+p16": [*GUARDS, "data.p=16"],
    # graph sampling (Liao and Shao, CVPR 2022): each batch an identity and its 7 nearest under the current
    # model, so the hardest triplets are between look-alikes (data.sampler=neighbours)
    "distill_1+anchor_1+appearance+neighbours": [*GUARDS, "data.sampler=neighbours"],
    # appearance augmentation without its blur: blur teaches the embedding to ignore fine texture (stripes,
    # knit), which is what tells some real look-alikes apart
    "distill_1+anchor_1+appearance_no_blur": ["train.distill_weight=1.0", "model.args.pretrained_anchor=1.0",
                                              "data.augment.color_p=0.8", "data.augment.gray_p=0.1"],
    # GeM spatial pooling (learnt exponent from 3) in the trained branch: salient local cues (a striped top) weigh more
    "distill_1+anchor_1+appearance+gem": [*GUARDS, "model.args.spatial_pool=gem"],
    # resolution loss (shrink by 0.4-1 and scale back, p 0.5) on top: PETS crops are enlarged small images, and blur
    # (which helped: the no-blur variant fell on PETS) only imitates that
    "distill_1+anchor_1+appearance+lowres": [*GUARDS, "data.augment.lowres_p=0.5"],
    # weight averaging over the second half of the 18 epochs, every step (SWA / SWAD): the split protocol's
    # misses move from seed to seed (query 7 wrong in some seeds only), and a flat-minimum average is the
    # domain-generalisation remedy for that variance; epoch 9 was fixed before any run
    "distill_1+anchor_1+appearance+average_9": [*GUARDS, "train.average_from=9"],
    # MixStyle (Zhou et al., ICLR 2021) after EfficientNet-Lite0's block groups 0-2 (stride 8, as the paper's ResNet
    # layer1-2), p 0.5, alpha 0.1: feature-statistics mixing between clips, a domain-generalisation method measured
    # on re-ID; the stage count was fixed before any run
    "distill_1+anchor_1+appearance+mixstyle_3": [*GUARDS, "model.args.mixstyle=3"],
    "appearance": APPEARANCE,
    "distill_10+appearance": ["train.distill_weight=10.0", *APPEARANCE],
    "freeze_bn": ["train.freeze_bn_stats=true"],
    "freeze_bn+distill_10": ["train.freeze_bn_stats=true", "train.distill_weight=10.0"],
    "freeze_bn+distill_10+appearance": ["train.freeze_bn_stats=true", "train.distill_weight=10.0", *APPEARANCE],
    "distill_10+appearance+lr_0.1": ["train.distill_weight=10.0", *APPEARANCE, "optim.pretrained_lr_mult=0.1"],
}
VARIANTS = {k: (v if k == "demo" else [*PLAIN, *v]) for k, v in VARIANTS.items()}


def vidreid(*args) -> None:
    subprocess.run([sys.executable, "-m", "vidreid.cli", *args], check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=[*VARIANTS, "init_from"])
    ap.add_argument("--data", default=None,
                    help="the synthetic benchmark (default outputs/demo/data/prid2011, with --detail 1 "
                         "outputs/synth_detail1/prid2011)")
    ap.add_argument("--detail", type=int, default=0, choices=(0, 1),
                    help="the renderer of the synthetic benchmark (vidreid synth --set detail=N)")
    ap.add_argument("--pets", default="../shared/data/pets2009_s2l1")
    ap.add_argument("--out", default="outputs/ablation_forgetting")
    ap.add_argument("--extra", nargs="*", default=[], help="overrides added to every run (e.g. schedule.epochs=...)")
    ap.add_argument("--init-from", default=None, help="the checkpoint the init_from variant starts from")
    a = ap.parse_args()
    if "init_from" in a.variants:
        if not a.init_from or not Path(a.init_from).is_file():
            print(f"forgetting_ablation: the init_from variant needs --init-from CKPT (got {a.init_from!r})", file=sys.stderr)
            return 2
        VARIANTS["init_from"] = [*PLAIN, f"train.init_from={Path(a.init_from).resolve()}"]
    out = Path(a.out)
    data = Path(a.data or ("outputs/demo/data/prid2011" if a.detail == 0 else f"outputs/synth_detail{a.detail}/prid2011"))
    if not (data / "synth_manifest.json").is_file():
        vidreid("synth", "--layout", "prid2011", "--preset", "prid2011", "--out", str(data), "--quiet",
                "--set", f"detail={a.detail}")
    made = json.loads((data / "synth_manifest.json").read_text())["params"].get("detail", 0)
    if made != a.detail:
        print(f"forgetting_ablation: {data} was rendered with detail={made}, not --detail {a.detail}", file=sys.stderr)
        return 2
    pets = out / "pets"
    if not (pets / "pets2009_prepare.json").is_file():
        vidreid("prepare", "pets2009", "--src", a.pets, "--out", str(pets))
    extra = (f"test.extra=[{{name: PETS re-entry, root: {pets / 'reentry'}, frames: 32}}, "
             f"{{name: PETS split, root: {pets / 'split'}, frames: 32}}]")
    results: dict = {"runs": {}, "reference": None}
    ref_dir = out / "reference"
    if not (ref_dir / "metrics.json").is_file():
        vidreid("test", "--config", "reference/imagenet_lite0", f"data.root={data}", extra, "--out", str(ref_dir),
                "train.progress=false")
    ref = json.loads((ref_dir / "metrics.json").read_text())
    results["reference"] = {"synthetic": ref["summary"], **{r["dataset"]: r for r in ref["extra"]}}
    for v in a.variants:
        for s in a.seeds:
            run = out / v / f"seed{s}"
            if not (run / "metrics.json").is_file():
                t = time.perf_counter()
                vidreid("train", "--config", "demo/prid2011", f"data.root={data}", f"train.output_dir={run}",
                        f"train.seed={s}", "train.progress=false", "--overwrite", extra, *VARIANTS[v], *a.extra)
                (run / "wall_s.txt").write_text(f"{time.perf_counter() - t:.1f}\n")
            m = json.loads((run / "metrics.json").read_text())
            results["runs"].setdefault(v, []).append({"seed": s, "synthetic": m, **{r["dataset"]: r for r in m["extra"]},
                                                      "wall_s": float((run / "wall_s.txt").read_text())
                                                      if (run / "wall_s.txt").is_file() else None})
    (out / "ablation.json").write_text(json.dumps(results, indent=1, default=float))
    cols = [("synthetic", "synthetic PRID-like"), ("PETS re-entry", "PETS re-entry (16 q)"), ("PETS split", "PETS split (19 q)")]
    print("| variant | seeds | " + " | ".join(f"{c} R1 | {c} mAP" for _, c in cols) + " | s / run |")
    print("|---|---|" + "---|---|" * len(cols) + "---|")

    def cell(vals):
        v = 100 * np.array(vals)
        return f"{v.mean():.1f} ± {v.std():.1f}" if len(v) > 1 else f"{v.mean():.1f}"

    r = results["reference"]
    print("| ImageNet reference (no training) | - | " + " | ".join(
        f"{100 * r[k]['rank1']:.1f} | {100 * r[k]['mAP']:.1f}" for k, _ in cols) + " | - |")
    for v, runs in results["runs"].items():
        row = [cell([x[k]["rank1"] for x in runs]) + " | " + cell([x[k]["mAP"] for x in runs]) for k, _ in cols]
        walls = [x["wall_s"] for x in runs if x["wall_s"]]
        print(f"| {v} | {len(runs)} | " + " | ".join(row) + f" | {np.mean(walls):.0f} |" if walls else " | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
