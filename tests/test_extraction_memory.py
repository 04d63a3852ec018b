"""All-frame extraction keeps peak memory bounded whatever the tracklet length (issue 3):
a 2,000-frame tracklet at 256x128 must not raise peak RSS by more than 10% over a 50-frame one
(stacking its frames at once would take 2,000 x 3 x 256 x 128 x 4 B = 786 MB)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

SCRIPT = textwrap.dedent("""
    import resource, sys, torch
    from vidreid.data.datasets import build_dataset
    from vidreid.data.sampling import TemporalSampler
    from vidreid.data.transforms import ClipTransform
    from vidreid.inference import extract_features
    torch.set_num_threads(1)
    from vidreid.models import ModelOutput

    class Tiny(torch.nn.Module):
        # the extraction interface of vidreid models, with negligible compute: the test is
        # about the frames held in memory, not the model
        def __init__(self, decomposable):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 8, stride=8)
            self.frame_decomposable = decomposable
        def frame_features(self, x):
            return self.conv(x).mean((2, 3))
        def head(self, pooled):
            return ModelOutput(embedding=pooled)
        def forward(self, clip):
            B, T = clip.shape[:2]
            return self.head(self.frame_features(clip.flatten(0, 1)).view(B, T, -1).mean(1))

    root, decomposable = sys.argv[1], sys.argv[2] == "1"
    split = build_dataset("folder", root).split(0)
    m = Tiny(decomposable)
    f = extract_features(m, split.root, split.query, TemporalSampler("all", 8, False), ClipTransform(256, 128, train=False),
                         batch_size=16, num_workers=0)
    assert f.shape[0] == 1
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def _tree(root, n):
    d = root / "query" / "0001" / "c1"
    d.mkdir(parents=True)
    (root / "gallery").mkdir()
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (256, 128, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    for i in range(n):
        (d / f"{i:05d}.jpg").write_bytes(buf.tobytes())
    return root


def _peak_kib(root, decomposable: bool) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(root), "1" if decomposable else "0"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("decomposable", [True, False], ids=["packed-frames", "chunked-clips"])
def test_peak_memory_independent_of_tracklet_length(tmp_path, decomposable):
    short = _peak_kib(_tree(tmp_path / "short", 50), decomposable)
    long = _peak_kib(_tree(tmp_path / "long", 2000), decomposable)
    assert long <= 1.10 * short, f"peak RSS {long} KiB for 2,000 frames vs {short} KiB for 50"
