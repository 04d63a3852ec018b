"""Identity assignment without tuning (issue 25): ``vidreid match --assign`` with its default
threshold (no ``--threshold``) on scenes it was not tuned for, scored against the known person
ids (pair precision / recall / F1, identities formed).

    python scripts/assign_check.py --checkpoints CKPT_OR_CONFIG [...] [--pets ../shared/data/pets2009_s2l1]
        [--synthetic outputs/demo/data/prid2011] [--out outputs/assign_check]

Scenes:
* PETS 2009 S2.L1 (real): the ground-truth tracks cut by ``vidreid tracklets`` with the project's
  identities table, one view, ``--groups tracklet`` (19 tracks of 10 people);
* the synthetic PRID-like test split 0 (query cam_a and gallery cam_b tracklets as one set of two
  cameras), ``--groups camera``.
For each, also the pair F1 at the best threshold in hindsight (a sweep over the distances), to
show how far the default is from it. Writes ``OUT/assign_check.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def pets_tracklets(pets: Path, out: Path) -> Path:
    from vidreid.cli import main as cli
    from vidreid.data.datasets.pets import IDENTITIES, cvml_to_mot

    trk = out / "pets_tracklets"
    if not (trk / "tracklets.csv").is_file():
        mot = out / "pets2009_s2l1_gt.txt"
        cvml_to_mot(pets / "PETS2009-S2L1.xml", mot)
        assert cli(["tracklets", "--video", str(pets / "vtest.avi"), "--tracks", str(mot), "--out", str(trk),
                    "--camera", "View_001", "--min-length", "1", "--identities", str(IDENTITIES), "--quiet"]) == 0
    return trk


def synthetic_tracklets(root: Path, out: Path) -> Path:
    """Split 0's query and gallery as tracklet folders ``<pid>/c<camid>_<name>`` (symlinked frames)."""
    from vidreid.data.datasets import build_dataset

    trk = out / "synthetic_tracklets"
    if not trk.is_dir():
        split = build_dataset("prid2011", root).split(0)
        for t in split.query + split.gallery:
            d = trk / f"{t.pid:04d}" / f"c{t.camid}_{'q' if t in split.query else 'g'}"
            d.mkdir(parents=True)
            for f in t.frames:
                (d / Path(f).name).symlink_to((root / f).resolve())
    return trk


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoints", nargs="+", required=True)
    ap.add_argument("--pets", default="../shared/data/pets2009_s2l1")
    ap.add_argument("--synthetic", default="outputs/demo/data/prid2011")
    ap.add_argument("--out", default="outputs/assign_check")
    a = ap.parse_args()
    from vidreid.cli import main as cli
    from vidreid.inference.match import (Embeddings, assign_identities, assignment_distances, assignment_scores,
                                         known_different)

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    scenes = {"PETS 2009 (real)": (pets_tracklets(Path(a.pets), out), "tracklet")}
    if (Path(a.synthetic) / "synth_manifest.json").is_file():
        scenes["synthetic PRID-like split 0"] = (synthetic_tracklets(Path(a.synthetic), out), "camera")
    rows = []
    for ck in a.checkpoints:
        tag = Path(ck).parent.name if Path(ck).is_file() else ck.replace("/", "_")
        for scene, (trk, groups) in scenes.items():
            emb = out / f"{tag}_{trk.name}.npz"
            if not emb.is_file():
                assert cli(["embed", "--checkpoint", ck, "--tracklets", str(trk), "--out", str(emb)]) == 0
            m = out / f"match_{tag}_{trk.name}"
            assert cli(["match", "--query", str(emb), "--out", str(m), "--assign", "--groups", groups,
                        "--overwrite"]) == 0
            res = json.loads((m / "match.json").read_text())
            e = Embeddings.load(emb)
            D, _ = assignment_distances(e, "cosine")
            diff = known_different(e, groups)
            iu = np.triu_indices(len(e), 1)
            best = max((assignment_scores(assign_identities(e, t, groups=groups, distances=D), e.pids)["pair_f1"], t)
                       for t in np.unique(np.round(D[iu][~diff[iu]], 4)))
            rows.append({"model": ck, "scene": scene, "tracklets": len(e), "people": res["assignment"]["people"],
                         "threshold": res["assignment_distance"]["threshold"], **res["assignment"],
                         "best_f1_in_hindsight": best[0], "best_threshold": best[1]})
    (out / "assign_check.json").write_text(json.dumps(rows, indent=1))
    print("| model | scene | tracklets / people | auto threshold | identities | pair P | pair R | pair F1 | best F1 (thr) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['scene']} | {r['tracklets']} / {r['people']} | {r['threshold']:.3f} | {r['identities']} | "
              f"{r['pair_precision']:.3f} | {r['pair_recall']:.3f} | {r['pair_f1']:.3f} | "
              f"{r['best_f1_in_hindsight']:.3f} ({r['best_threshold']:.3f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
