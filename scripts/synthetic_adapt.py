"""Label-free adaptation on the synthetic benchmark (issue 24): the PRID-like *training* cameras'
tracklets, labels dropped, as a user's tracklet folder; ``vidreid adapt`` from the ImageNet
reference on them (one run per seed); each adapted model tested on split 0's test identities,
beside no training (the reference) and supervised training (the demo recipe, when its runs are
given).

    python scripts/synthetic_adapt.py [--data outputs/demo/data/prid2011] [--seeds 0 1 2]
        [--supervised outputs/ablation_forgetting/demo] [--out outputs/synthetic_adapt] [key=value ...]

PRID has no time stamps: frame ranges are unknown, so every two tracklets of one camera are taken
as different people (TAUDL's assumption, true for PRID: a person walks past each camera once).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="outputs/demo/data/prid2011")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--supervised", default="outputs/ablation_forgetting/demo",
                    help="a folder of seed<N>/metrics.json of the demo recipe (scripts/forgetting_ablation.py)")
    ap.add_argument("--out", default="outputs/synthetic_adapt")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    from vidreid.cli import main as cli
    from vidreid.data.datasets import build_dataset

    data, out = Path(a.data).resolve(), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    trk = out / "train_tracklets"
    if not trk.is_dir():  # the training split's tracklets, no pid: <camera>/<tracklet>/<frames>
        count: dict[int, int] = {}
        for t in build_dataset("prid2011", data).split(0).train:
            count[t.camid] = count.get(t.camid, 0) + 1
            d = trk / f"cam{t.camid}" / f"t{count[t.camid]:05d}"
            d.mkdir(parents=True)
            for f in t.frames:
                (d / Path(f).name).symlink_to(data / f)
    test = [f"data.root={data}", "data.dataset=prid2011", "data.split_id=0"]
    ref = out / "reference"
    if not (ref / "metrics.json").is_file():
        assert cli(["test", "--checkpoint", "reference/imagenet_lite0", *test, "--out", str(ref), "--overwrite"]) == 0
    rows = {"no training (ImageNet reference)": [json.loads((ref / "metrics.json").read_text())["summary"]]}
    for s in a.seeds:
        run = out / f"adapt_seed{s}"
        if not (run / "metrics.json").is_file():  # a finished run writes metrics.json last
            assert cli(["adapt", "--checkpoint", "reference/imagenet_lite0", "--tracklets", str(trk), "--out", str(run),
                        "--overwrite", f"train.seed={s}", "train.progress=false", *a.overrides]) == 0
        if not (run / "test" / "metrics.json").is_file():
            assert cli(["test", "--checkpoint", str(run / "checkpoint.pt"), *test, "--out", str(run / "test"),
                        "--overwrite"]) == 0
        rows.setdefault("adapted without labels (train cameras)", []).append(
            json.loads((run / "test" / "metrics.json").read_text())["summary"])
    sup = sorted(Path(a.supervised).glob("seed*/metrics.json")) if a.supervised else []
    if sup:
        rows["supervised (demo recipe)"] = [json.loads(p.read_text()) for p in sup]
    (out / "synthetic_adapt.json").write_text(json.dumps(rows, indent=1, default=float))
    print("| model | runs | rank-1 | mAP |\n|---|---|---|---|")
    for k, rs in rows.items():
        r1 = 100 * np.array([r["rank1"] for r in rs])
        mp = 100 * np.array([r["mAP"] for r in rs])
        print(f"| {k} | {len(rs)} | {r1.mean():.1f} ± {r1.std():.1f} | {mp.mean():.1f} ± {mp.std():.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
