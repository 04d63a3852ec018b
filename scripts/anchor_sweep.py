"""The weight of the frozen pretrained backbone in the test embedding (``model.args.pretrained_anchor``,
:mod:`vidreid.models.baseline`), swept at test time over trained baseline checkpoints (issue 24).

Training does not depend on the weight (the frozen copy runs only at test), so one run per seed
serves every weight: each checkpoint's tracklets are embedded once as ``[n(e), n(a)]`` (``e`` its
trained embedding, ``a`` the frozen ImageNet backbone's; a checkpoint trained without the anchor
gets the ImageNet one added), and the embedding for weight ``w`` is ``[n(e), w * n(a)]``
(Euclidean distance, as the model tests). ``w = 0`` is the trained embedding alone under cosine
distance. Tested on the run's synthetic split 0 and both PETS 2009 protocols (32 evenly spaced
frames per tracklet), as ``scripts/forgetting_ablation.py`` does.

    python scripts/anchor_sweep.py CKPT [CKPT ...] [--weights 0 0.5 1 1.5 2 inf] [--misses] [--pets-only]
        [--pets outputs/ablation_forgetting/pets]

``inf`` is the frozen ImageNet feature alone (the anchor without the trained embedding).
``--misses`` lists every PETS query ranked wrong at rank 1, with the distance margin.

Prints one Markdown row per checkpoint and weight, then the mean and population std over the
checkpoints per weight. One PETS query is 6.25 (re-entry, 16 queries) or 5.3 (split, 19) rank-1 points.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import torch

SETS = ("synthetic", "PETS re-entry", "PETS split")


def anchored_model(path: str):
    """(model with a pretrained anchor of weight 1, its config): the checkpoint's own anchor,
    or, for one trained without, the frozen backbone its ``pretrained`` weights give."""
    from vidreid.config import from_container
    from vidreid.engine.checkpoint import load_checkpoint
    from vidreid.engine.trainer import load_model_from_checkpoint
    from vidreid.errors import ConfigError
    from vidreid.models import create_model
    from vidreid.models.baseline import TemporalPoolingNet

    st = load_checkpoint(path)
    model, _, st = load_model_from_checkpoint(st, source=path)
    cfg = from_container(st["config"])
    if not isinstance(model, TemporalPoolingNet) or cfg.model.name != "baseline":
        raise SystemExit(f"anchor_sweep: {path}: a {cfg.model.name!r} checkpoint; the anchor is the baseline's "
                         "(model.name: baseline)")
    if model.anchor is None:  # trained without: the frozen copy its pretrained weights give
        classes = model.classifier.weight.shape[0] if model.classifier is not None else 0
        try:
            m = create_model("baseline", num_classes=classes, **dict(cfg.model.args, pretrained_anchor=1.0))
        except ConfigError as e:  # e.g. trained from random weights: no pretrained backbone to add
            raise SystemExit(f"anchor_sweep: {path}: {e}") from None
        m.load_state_dict(model.state_dict(), strict=False)  # every key but the anchor's, which it built
        model = m
    model.anchor_weight = 1.0
    return model.eval(), cfg


def _name(t) -> str:
    from pathlib import Path

    return t.name or Path(t.frames[0]).parent.name


def rank1_misses(D: np.ndarray, split) -> list[tuple]:
    """The queries whose nearest gallery tracklet is another person, under the standard protocol
    (``vidreid.metrics.protocol_ranking``, which the HTML report's ranked lists use too; the caller
    checks the count against ``evaluate_rank``'s rank-1): ``(query index, its tracklet's folder,
    its pid, the nearest tracklet's folder, its pid, margin)`` with margin = distance to the nearest
    right match minus distance to the nearest tracklet."""
    from vidreid.metrics import protocol_ranking

    gp, gc = np.array([t.pid for t in split.gallery]), np.array([t.camid for t in split.gallery])
    out = []
    for i, t in enumerate(split.query):
        order = protocol_ranking(D[i], t.pid, t.camid, gp, gc)
        right = order[gp[order] == t.pid]
        if len(right) and gp[order[0]] != t.pid:
            j = int(order[0])
            out.append((i, _name(t), int(t.pid), _name(split.gallery[j]), int(gp[j]), float(D[i, right[0]] - D[i, j])))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.5, 0.75, 1.0, 1.5, 2.0])
    ap.add_argument("--misses", action="store_true",
                    help="also list each PETS query whose rank-1 is another person, with the distance margin")
    ap.add_argument("--pets-only", action="store_true", help="skip the synthetic test (its columns print as -)")
    ap.add_argument("--pets", default="outputs/ablation_forgetting/pets", help="vidreid prepare pets2009 output")
    a = ap.parse_args()
    from vidreid.data.datasets import build_dataset_from_config
    from vidreid.engine.evaluator import extra_test_sets, query_gallery_distances
    from vidreid.metrics.rank import evaluate_rank

    res: dict = {w: {s: [] for s in SETS} for w in a.weights}
    print("| checkpoint | w | " + " | ".join(f"{s} R1 | mAP" for s in SETS) + " |\n|---|---|" + "---|---|" * len(SETS))
    for path in a.checkpoints:
        model, cfg = anchored_model(path)
        cfg.data.num_workers = 1
        d = model.dim
        # the two PETS protocols as forgetting_ablation.py's test.extra gives them (32 evenly spaced frames)
        cfg.test.extra = [{"name": name, "root": f"{a.pets}/{'reentry' if 're-entry' in name else 'split'}",
                           "frames": 32} for name in SETS[1:]]
        sets = [] if a.pets_only else [("synthetic", build_dataset_from_config(cfg.data).split(0), cfg)]
        sets += [(e["name"], split, c) for e, split, c in extra_test_sets(cfg)]
        feats = {}
        for name, split, c in sets:
            _, qf, gf = query_gallery_distances(model, split, c, "cpu")
            feats[name] = (qf, gf, split)
        for w in a.weights:
            cells, missed = [], {}
            for name in SETS:
                if name not in feats:
                    cells.append("- | -")
                    continue
                qf, gf, split = feats[name]
                if math.isinf(w):  # the frozen ImageNet feature alone
                    q, g = qf[:, d:], gf[:, d:]
                else:
                    q, g = torch.cat([qf[:, :d], w * qf[:, d:]], 1), torch.cat([gf[:, :d], w * gf[:, d:]], 1)
                D = torch.cdist(q.double(), g.double()).numpy()
                r = evaluate_rank(D, [t.pid for t in split.query], [t.pid for t in split.gallery],
                                  [t.camid for t in split.query], [t.camid for t in split.gallery])
                res[w][name].append((100 * float(r.cmc[0]), 100 * float(r.mAP)))
                cells.append(f"{100 * float(r.cmc[0]):.1f} | {100 * float(r.mAP):.1f}")
                if a.misses and name != "synthetic":
                    wrong = rank1_misses(D, split)
                    assert len(wrong) == round(len(split.query) * (1 - float(r.cmc[0])))  # the protocol's count
                    missed[name] = wrong
            print(f"| {path} | {w:g} | " + " | ".join(cells) + " |", flush=True)
            for name, wrong in missed.items():
                print(f"    {name}, w {w:g}: rank-1 misses " + ("; ".join(
                    f"query {i} ({qt}, person {qp}) ranked {gt} (person {gp}) first, its own "
                    f"{m:.4f} further" for i, qt, qp, gt, gp, m in wrong) or "none"), flush=True)
    print(f"\nMean ± population std over {len(a.checkpoints)} checkpoints:\n")
    print("| w | " + " | ".join(f"{s} R1 | mAP" for s in SETS) + " |\n|---|" + "---|---|" * len(SETS))
    for w in a.weights:
        cells = []
        for name in SETS:
            v = np.array(res[w][name])
            if not len(v):
                cells.append("- | -")
                continue
            cells.append(f"{v[:, 0].mean():.1f} ± {v[:, 0].std():.1f} | {v[:, 1].mean():.1f} ± {v[:, 1].std():.1f}")
        print(f"| {w:g} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
