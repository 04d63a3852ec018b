"""The README's "Bring your own data" commands, run as written (issue 25): a labelled folder
tree, two cameras (a video and an image sequence) with MOT tracks, then train, test, tracklets,
embed, match --assign (its default threshold), adapt. Only sizes shrink (key=value overrides
appended to train / test / adapt / embed / match, e.g. 64 x 32 crops, one epoch); file names,
options and their order are the README's. A README edit that breaks a command breaks this test."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidreid.cli import main

REPO = Path(__file__).resolve().parents[1]
SMALL = ["data.height=64", "data.width=32", "data.num_workers=0", "train.progress=false"]
TRAIN_SMALL = SMALL + ["schedule.epochs=1", "data.p=3", "data.k=2"]


def readme_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    sec = text[text.index("## Bring your own data"):text.index("## Training on GPUs")]
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", sec, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("vidreid "):
                cmds.append(shlex.split(line)[1:])
    return cmds


def _people(rng, n: int) -> list[np.ndarray]:
    """n "people": a 100 x 40 patch each, a colour for the torso and the legs."""
    out = []
    for _ in range(n):
        p = np.zeros((100, 40, 3), np.uint8)
        p[:50] = rng.integers(0, 255, 3)
        p[50:] = rng.integers(0, 255, 3)
        out.append(p)
    return out


def _scene(people, frames: int, rng) -> tuple[list[np.ndarray], str]:
    """Frames (240 x 320 BGR) with every person walking across, and their MOT ground truth."""
    imgs, lines = [], []
    starts = rng.integers(0, 100, len(people))
    for f in range(frames):
        img = np.full((240, 320, 3), 90, np.uint8)
        for tid, (p, x0) in enumerate(zip(people, starts), start=1):
            x, y = int(x0 + 10 * f) % 260, 20 + 50 * (tid % 3)
            img[y:y + 100, x:x + 40] = p
            lines.append(f"{f + 1},{tid},{x},{y},40,100,1,1,1\n")
        imgs.append(img)
    return imgs, "".join(lines)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_tree):
    """A user's folder: my_data (the folder layout), cam1.mp4 + cam1_tracks.txt, cam2/img1 +
    cam2_tracks.txt."""
    from vidreid.synth import generate

    d = tmp_path_factory.mktemp("readme")
    generate("folder", "tiny", d / "my_data", workers=1)
    rng = np.random.default_rng(0)
    people = _people(rng, 3)
    imgs, mot = _scene(people, 12, rng)
    vw = cv2.VideoWriter(str(d / "cam1.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for im in imgs:
        vw.write(im)
    vw.release()
    (d / "cam1_tracks.txt").write_text(mot)
    imgs, mot = _scene(people, 12, rng)
    (d / "cam2" / "img1").mkdir(parents=True)
    for i, im in enumerate(imgs, start=1):
        cv2.imwrite(str(d / "cam2" / "img1" / f"{i:06d}.jpg"), im)
    (d / "cam2_tracks.txt").write_text(mot)
    return d


def test_the_readme_commands_run_as_written(workdir, capsys):
    cmds = readme_commands()
    names = [c[0] for c in cmds]
    assert names == ["stats", "train", "test", "tracklets", "tracklets", "embed", "match", "adapt", "embed"], names
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        for c in cmds:
            extra = {"train": TRAIN_SMALL, "adapt": TRAIN_SMALL, "test": SMALL, "embed": SMALL}.get(c[0], [])
            code = main([*c, *extra])
            out = capsys.readouterr()
            assert code == 0, (c, out.err[-2000:])
    finally:
        os.chdir(cwd)
    assert (workdir / "outputs" / "folder_baseline" / "checkpoint.pt").is_file()
    rep = json.loads((workdir / "matches" / "match.json").read_text())
    a = rep["assignment_distance"]
    assert a["threshold_from"].startswith("median") and a["known_different_pairs"] > 0
    rows = (workdir / "matches" / "assignment.csv").read_text().splitlines()
    assert len(rows) == 1 + 6  # 3 people x 2 cameras
    assert (workdir / "adapted" / "checkpoint.pt").is_file() and (workdir / "adapted.npz").is_file()
