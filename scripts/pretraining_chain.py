"""The papers' pre-training chains end to end at CPU scale (issue 23), on synthetic image layouts:

* STAN (Li et al. 2018, Sec. 4.2): ``stan/pretrain_images`` on synthetic VIPeR, CUHK01 and CUHK03
  (labeled) with STAN's CPU model (EfficientNet-Lite0, 128 x 64), then ``stan/cpu_prid2011`` on the
  synthetic PRID-like benchmark with ``train.init_from`` that run;
* ASTPN (Xu et al. 2017, Sec. 4.1.1): ``astpn/pretrain_viper`` (the RNN-CNN on VIPeR pairs), then
  ``astpn/cpu_prid2011`` (RGB + Farneback flow) from it;
* the demo's baseline (``demo/prid2011``: EfficientNet-Lite0 from ImageNet, 128 x 64) trained on a
  synthetic Market-1501-like image layout (``--image-epochs``): the image-re-ID-pretrained start whose
  effect on real people ``scripts/forgetting_ablation.py --init-from OUT/demo_pre_market/checkpoint.pt
  --variants init_from`` measures (issue 23; synthetic Market-like data stands in for Market-1501).

    python scripts/pretraining_chain.py [--data outputs/demo/data/prid2011] [--out outputs/pretraining_chain]
        [--pre-epochs 2] [--epochs 3] [--image-epochs 3]
        (--epochs: ASTPN's PRID-like run; STAN's CPU recipe runs whole)

Short schedules: this shows the chains run and hand their weights on (the tensors loaded are
printed), not what pre-training is worth. Prints each run's test line and wall time; writes
``OUT/pretraining_chain.json``. A run already finished in OUT is not run again (``--only`` runs some).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="outputs/demo/data/prid2011")
    ap.add_argument("--out", default="outputs/pretraining_chain")
    ap.add_argument("--pre-epochs", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--image-epochs", type=int, default=3, help="the demo baseline's Market-like pre-training")
    ap.add_argument("--only", nargs="+", default=None,
                    choices=["stan_pre", "stan", "astpn_pre", "astpn", "demo_pre_market"], help="run only these")
    a = ap.parse_args()
    from vidreid.cli import main as cli

    out, data = Path(a.out), Path(a.data)
    imgs = out / "data"
    for layout in ("viper", "cuhk01", "cuhk03", "market1501"):
        if not (imgs / layout / "synth_manifest.json").is_file():
            assert cli(["synth", "--layout", layout, "--preset", layout, "--out", str(imgs / layout), "--quiet"]) == 0
    from vidreid.data.flow import cache_dir

    if not cache_dir(data, "farneback").is_dir():
        assert cli(["flow", "--dataset", "prid2011", "--root", str(data), "--method", "farneback", "--quiet"]) == 0
    stan_model = "model.args={backbone: efficientnet_lite0, pretrained: imagenet, num_parts: 4, attn_dim: 128}"
    runs = [
        ("STAN image pre-training", ["--config", "stan/pretrain_images", stan_model, "data.height=128", "data.width=64",
                                     f"data.sources=[{{dataset: cuhk01, root: {imgs / 'cuhk01'}}}, "
                                     f"{{dataset: cuhk03_labeled, root: {imgs / 'cuhk03'}}}, {{dataset: viper, root: {imgs / 'viper'}}}]",
                                     # stan/pretrain_images' one stage, shortened (a list is replaced whole)
                                     f"stages=[{{name: cnn, epochs: {a.pre_epochs}, milestones: [1000], "
                                     "model_attrs: {spatial: avg, temporal: avg}, loss: [{name: oim, input: features, "
                                     "feat_dim: 128, temperature: 0.1, momentum: 0.5}]}]", "optim.name=adam", "optim.lr=1e-3",
                                     "data.p=8", "data.k=2", "data.num_workers=1"], "stan_pre"),
        ("STAN on PRID-like from it", ["--config", "stan/cpu_prid2011", f"data.root={data}",
                                       f"train.init_from={out / 'stan_pre' / 'checkpoint.pt'}"], "stan"),
        ("ASTPN RNN-CNN on VIPeR", ["--config", "astpn/pretrain_viper", f"data.root={imgs / 'viper'}",
                                    f"schedule.epochs={a.pre_epochs}", "data.num_workers=1"], "astpn_pre"),
        ("ASTPN on PRID-like from it", ["--config", "astpn/cpu_prid2011", f"data.root={data}", "data.flow=farneback",
                                        f"train.init_from={out / 'astpn_pre' / 'checkpoint.pt'}"], "astpn"),
        ("demo baseline on Market-like images", ["--config", "demo/prid2011", "data.dataset=market1501",
                                                 f"data.root={imgs / 'market1501'}", f"schedule.epochs={a.image_epochs}"],
         "demo_pre_market"),
    ]
    res = []
    for label, args, name in runs:
        if a.only and name not in a.only:
            continue
        run = out / name
        # STAN's CPU recipe runs whole (18 epochs over its four stages); ASTPN's is shortened
        ep = [f"schedule.epochs={a.epochs}"] if name == "astpn" else []
        if not (run / "metrics.json").is_file():  # a finished run (metrics.json is written last) is kept
            t = time.perf_counter()
            assert cli(["train", *args, *ep, f"train.output_dir={run}", "train.progress=false", "--overwrite"]) == 0, label
            (run / "wall_s.txt").write_text(f"{time.perf_counter() - t:.1f}\n")
        m = json.loads((run / "metrics.json").read_text())
        wall = float((run / "wall_s.txt").read_text()) if (run / "wall_s.txt").is_file() else None
        res.append({"run": label, "wall_s": wall, **{k: m.get(k) for k in ("rank1", "mAP", "num_query", "dataset")}})
        print(json.dumps(res[-1]), flush=True)
    (out / "pretraining_chain.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
