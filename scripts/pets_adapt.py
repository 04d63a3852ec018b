"""Label-free adaptation on real footage (issue 24): PETS 2009 S2.L1's ground-truth tracks, cut
into unlabelled tracklets by ``vidreid tracklets`` (no identities file), adapt a model with
``vidreid adapt``; the starting model and the adapted ones (one per seed) are tested on the two
PETS protocols (``vidreid prepare pets2009``: re-entry, 16 queries; split, 19 queries).

    python scripts/pets_adapt.py [--checkpoint reference/imagenet_lite0] [--seeds 0 1 2] \
        [--pets ../shared/data/pets2009_s2l1] [--out outputs/pets_adapt] [--frames 32] [key=value ...]

This is transductive, as a user would run it: the tracklets adapted on are the footage that is
then searched (their identity labels are never read). Extra ``key=value`` go to every adapt run
(e.g. ``train.freeze_bn_stats=false`` for the ablation). Prints a Markdown table (mean and
population standard deviation over seeds) and writes ``OUT/pets_adapt.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def associations(checkpoint: Path, trk: Path) -> dict:
    """The cross-tracklet associations the loss's memory makes at the end of a run (mutual
    nearest compatible tracklets, TrackletAssociationLoss._partners), checked against the PETS
    identities table (the labels the run never read)."""
    import torch

    from vidreid.data.datasets import TrackletFolder
    from vidreid.data.datasets.pets import IDENTITIES, read_identities
    from vidreid.engine.trainer import unsupervised_split
    from vidreid.losses.metric import TrackletAssociationLoss

    st = torch.load(checkpoint, map_location="cpu", weights_only=True)
    lut = st["loss"]["terms.0.lut"]
    split, meta = unsupervised_split(TrackletFolder(trk).split(0))
    loss = TrackletAssociationLoss(len(split.train), meta, feat_dim=lut.shape[1],
                                   **{k: v for k, v in st["config"]["loss"][0].items()
                                      if k in ("min_similarity",)})
    loss.lut.copy_(lut)
    partner = loss._partners(torch.arange(len(split.train))).tolist()
    ids = read_identities(IDENTITIES)
    pid = [ids[int(t.name.split("/")[-1])] for t in TrackletFolder(trk).split(0).train]
    pairs = {tuple(sorted((i, j))) for i, j in enumerate(partner) if j >= 0}
    return {"pairs": len(pairs), "wrong": sum(pid[i] != pid[j] for i, j in pairs),
            "tracklets": len(pid), "tracklets_with_a_partner_person": sum(pid.count(p) > 1 for p in pid)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="reference/imagenet_lite0", help="the starting model (checkpoint or config)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--pets", default="../shared/data/pets2009_s2l1")
    ap.add_argument("--out", default="outputs/pets_adapt")
    ap.add_argument("--frames", type=int, default=32, help="evenly spaced frames per tracklet at test")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    from vidreid.cli import main as cli
    from vidreid.data.datasets.pets import cvml_to_mot

    pets, out = Path(a.pets), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    mot = out / "pets2009_s2l1_gt.txt"
    if not mot.is_file():
        cvml_to_mot(pets / "PETS2009-S2L1.xml", mot)
    trk = out / "tracklets"
    if not (trk / "tracklets.csv").is_file():  # unlabelled: no --identities
        assert cli(["tracklets", "--video", str(pets / "vtest.avi"), "--tracks", str(mot), "--out", str(trk),
                    "--camera", "view1", "--quiet"]) == 0
    prep = out / "prepared"
    if not (prep / "pets2009_prepare.json").is_file():
        assert cli(["prepare", "pets2009", "--src", str(pets), "--out", str(prep)]) == 0
    extra = (f"test.extra=[{{name: PETS re-entry, root: {prep / 'reentry'}, frames: {a.frames}}}, "
             f"{{name: PETS split, root: {prep / 'split'}, frames: {a.frames}}}]")
    start = out / "start"
    if not (start / "metrics.json").is_file():
        ck = ["--checkpoint", a.checkpoint] if Path(a.checkpoint).is_file() else ["--config", a.checkpoint]
        assert cli(["test", *ck, extra, "--out", str(start), "--overwrite"]) == 0
    res = {"start": json.loads((start / "metrics.json").read_text())["extra"], "runs": []}
    for s in a.seeds:
        run = out / f"adapt_seed{s}"
        if not (run / "metrics.json").is_file():
            t = time.perf_counter()
            assert cli(["adapt", "--checkpoint", a.checkpoint, "--tracklets", str(trk), "--out", str(run), "--overwrite",
                        extra, f"train.seed={s}", "train.progress=false", *a.overrides]) == 0
            (run / "wall_s.txt").write_text(f"{time.perf_counter() - t:.1f}\n")
        res["runs"].append({"seed": s, "extra": json.loads((run / "metrics.json").read_text())["extra"],
                            "associations": associations(run / "checkpoint.pt", trk),
                            "wall_s": float((run / "wall_s.txt").read_text()) if (run / "wall_s.txt").is_file() else None})
    (out / "pets_adapt.json").write_text(json.dumps(res, indent=1, default=float))
    print("| model | PETS re-entry R1 | mAP | PETS split R1 | mAP |\n|---|---|---|---|---|")
    row = lambda rs: {r["dataset"]: r for r in rs}  # noqa: E731
    s0 = row(res["start"])
    print(f"| start ({a.checkpoint}) | {100 * s0['PETS re-entry']['rank1']:.1f} | {100 * s0['PETS re-entry']['mAP']:.1f} | "
          f"{100 * s0['PETS split']['rank1']:.1f} | {100 * s0['PETS split']['mAP']:.1f} |")
    cells = []
    for ds in ("PETS re-entry", "PETS split"):
        for k in ("rank1", "mAP"):
            v = 100 * np.array([row(r["extra"])[ds][k] for r in res["runs"]])
            cells.append(f"{v.mean():.1f} ± {v.std():.1f}")
    print(f"| adapted ({len(res['runs'])} seeds) | " + " | ".join(cells) + " |")
    for r in res["runs"]:
        print(f"seed {r['seed']}: {r['associations']} (memory associations at the end; wrong = different people)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
