"""Parity of vidreid's torchreid-compatible networks with torchreid's own code.

torchreid's model files (``torchreid/models/osnet.py``, ``osnet_ain.py``, ``resnet.py`` of
KaiyangZhou/deep-person-reid) are loaded from a local checkout given with ``--torchreid-src``
(nothing of torchreid is copied into vidreid). For every architecture: torchreid's model is
built (751 classes, no download), every parameter and BatchNorm statistic randomised, and the
state dict saved in both shapes torchreid writes (bare; ``save_checkpoint``'s dict with
``module.`` prefixes, ``epoch``, a NumPy ``rank1`` and an optimiser state). vidreid loads each
(:func:`vidreid.models.zoo.load_torchreid_weights`; the classifier is dropped) and the eval-mode
features of both on the same random batch are compared (relative L2 of the whole batch).

    python scripts/torchreid_parity.py --torchreid-src /path/to/deep-person-reid [--write-keys tests/data/torchreid_keys.json]

``--write-keys`` also writes each architecture's parameter and buffer names and shapes (the
reference layout ``tests/test_zoo.py`` checks vidreid's against without torchreid installed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REF = {"osnet": ["osnet_x1_0", "osnet_x0_75", "osnet_x0_5", "osnet_x0_25", "osnet_ibn_x1_0"],
       "osnet_ain": ["osnet_ain_x1_0", "osnet_ain_x0_75", "osnet_ain_x0_5", "osnet_ain_x0_25"],
       "resnet": ["resnet50", "resnet50_fc512"]}


def load_ref(src: Path, name: str):
    path = src / "torchreid" / "models" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"torchreid_ref_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def randomise(model: torch.nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.5)
            elif name.endswith(("running_mean", "bias")):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif name.endswith("weight") and t.dim() == 1:  # norm scales
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            else:
                fan = max(1, t[0].numel())
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / fan) ** 0.5)


def main() -> int:
    from vidreid.models.zoo import TorchreidVideo

    ap = argparse.ArgumentParser()
    ap.add_argument("--torchreid-src", required=True, help="a checkout of KaiyangZhou/deep-person-reid")
    ap.add_argument("--write-keys", default=None)
    a = ap.parse_args()
    src = Path(a.torchreid_src)
    g = torch.Generator().manual_seed(0)
    keys = {}
    worst = 0.0
    print("| arch | parameters + buffers | bare state dict | save_checkpoint dict | max rel. L2 |")
    print("|---|---|---|---|---|")
    for modname, archs in REF.items():
        mod = load_ref(src, modname)
        for arch in archs:
            ref = getattr(mod, arch)(num_classes=751, pretrained=False, loss="softmax")
            randomise(ref, g)
            ref.eval()
            sd = ref.state_dict()
            keys[arch] = {k: list(v.shape) for k, v in sd.items()}
            x = torch.randn(4, 3, 256, 128, generator=g)
            with torch.no_grad():
                want = ref(x)
            errs = []
            with tempfile.TemporaryDirectory() as t:
                bare = Path(t) / "bare.pth"
                torch.save(sd, bare)
                ck = Path(t) / "ckpt.pth.tar"
                torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}, "epoch": 60,
                            "rank1": np.float64(0.9), "optimizer": {"state": {}, "param_groups": [{"lr": 3e-4}]}}, ck)
                for f in (bare, ck):
                    ours = TorchreidVideo(arch, weights=str(f)).eval()
                    with torch.no_grad():
                        got = ours.frame_features(x)
                    errs.append(float((got - want).norm() / want.norm()))
            worst = max(worst, *errs)
            print(f"| {arch} | {len(sd)} | {errs[0]:.2e} | {errs[1]:.2e} | {max(errs):.2e} |")
    if a.write_keys:
        Path(a.write_keys).parent.mkdir(parents=True, exist_ok=True)
        Path(a.write_keys).write_text(json.dumps(keys, indent=0, sort_keys=True))
        print(f"keys: {a.write_keys}")
    print(f"worst relative L2: {worst:.2e} (tolerance 1e-5)")
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
