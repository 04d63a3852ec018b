"""The real-footage check of the practitioner's path (issue 16): PETS 2009 S2.L1 through
``vidreid tracklets`` -> ``vidreid embed`` -> ``vidreid match``, beside the existing PETS
evaluation (``prepare_pets2009`` + the test protocol) of the same checkpoint.

    python scripts/pets2009_check.py --checkpoint outputs/demo/baseline/checkpoint.pt \
        [--pets ../shared/data/pets2009_s2l1] [--out outputs/pets_check] [--thresholds 10 15 20]

1. The CVML ground truth is converted to MOT format (``cvml_to_mot``).
2. ``vidreid tracklets`` crops it (labelled with identities.csv) into ``OUT/tracklets/View_001``.
3. ``vidreid embed`` embeds every track (all frames, the checkpoint's test protocol).
4. ``vidreid match`` ranks every track against all the others (re-entry protocol: a track's
   matches are the other tracks of its person; tracks without one are skipped and counted) and
   links re-entries with ``--assign --groups tracklet`` (tracks overlapping in time are never
   linked) at each threshold given.
5. The existing evaluation: ``prepare_pets2009`` and ``evaluate_split`` on its re-entry root.
Prints one JSON line per result and writes ``OUT/pets_check.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--pets", default="../shared/data/pets2009_s2l1")
    ap.add_argument("--out", default="outputs/pets_check")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[10.0, 12.5, 15.0, 17.5, 20.0, 25.0],
                    help="--assign distance thresholds to sweep (euclidean distances of BN-neck embeddings are ~5-30)")
    ap.add_argument("--metric", default=None, choices=[None, "euclidean", "cosine"])
    a = ap.parse_args()
    from vidreid.api import load
    from vidreid.cli import main as cli
    from vidreid.data.datasets import FolderDataset
    from vidreid.data.datasets.pets import cvml_to_mot, prepare_pets2009
    from vidreid.engine.evaluator import evaluate_split
    from vidreid.fileio import atomic_write_json

    pets, out = Path(a.pets), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    mot = out / "pets2009_s2l1_gt.txt"
    n = cvml_to_mot(pets / "PETS2009-S2L1.xml", mot)
    print(f"MOT ground truth: {n} boxes -> {mot}", flush=True)
    trk = out / "tracklets"
    if not (trk / "View_001").exists():
        rc = cli(["tracklets", "--video", str(pets / "vtest.avi"), "--tracks", str(mot), "--out", str(trk),
                  "--camera", "View_001", "--min-length", "1", "--identities", str(pets / "identities.csv"), "--quiet"])
        assert rc == 0, rc
    emb = out / "embeddings.npz"
    metric = ["--metric", a.metric] if a.metric else []
    assert cli(["embed", "--checkpoint", a.checkpoint, "--tracklets", str(trk), "--out", str(emb)]) == 0
    results = {"checkpoint": a.checkpoint}
    assert cli(["match", "--query", str(emb), "--out", str(out / "match"), *metric]) == 0
    results["match"] = json.loads((out / "match" / "match.json").read_text())
    results["assign"] = {}
    for t in a.thresholds:
        d = out / f"assign_{t:g}"
        assert cli(["match", "--query", str(emb), "--out", str(d), "--assign", "--threshold", str(t),
                    "--groups", "tracklet", *metric]) == 0
        results["assign"][f"{t:g}"] = json.loads((d / "match.json").read_text()).get("assignment")
    # the existing PETS evaluation of the same checkpoint (all frames)
    prep = out / "prepared"
    if not (prep / "pets2009_prepare.json").is_file():
        prepare_pets2009(pets, prep)
    m = load(a.checkpoint)
    cfg = m.cfg
    if a.metric:
        cfg.test.distance = a.metric
    r = evaluate_split(m.model, FolderDataset(prep / "reentry").split(0), cfg, m.device)
    results["existing_reentry_eval"] = {k: r[k] for k in ("rank1", "rank5", "mAP", "num_valid_queries") if k in r}
    print(json.dumps(results, indent=1))
    atomic_write_json(out / "pets_check.json", results)


if __name__ == "__main__":
    sys.exit(main())
