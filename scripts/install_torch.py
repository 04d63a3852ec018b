"""Install torch and torchvision into the running interpreter's environment, the build that fits
this machine (what ``make install`` / ``make demo`` / ``make test`` run first):

* ``--index URL`` (``make ... TORCH_INDEX=URL``): from that index, e.g. PyTorch's CPU wheels
  ``https://download.pytorch.org/whl/cpu`` or a CUDA one (``.../whl/cu126``);
* otherwise, on a machine without an NVIDIA GPU, a CPU build of torch lying in pip's local wheel
  folders (``find-links`` in pip's configuration or ``$PIP_FIND_LINKS``) for this Python and
  platform, with the matching torchvision from the package index (torchvision 0.(m+15) for
  torch 2.m). PyPI has no CPU torchvision for Linux; its CUDA one imports beside a CPU torch
  (``vidreid/models/vision_libs.py``), and without CUDA libraries the environment weighs about
  a sixth as much;
* otherwise plain ``torch`` and ``torchvision`` from the package index (on Linux, PyPI's CUDA
  build, several GB), within any version cap pip's configuration sets.

No version is pinned that the machine does not have. Prints what it chose and why.

    python scripts/install_torch.py [--index URL] [--dry-run]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig


def has_nvidia_gpu() -> bool:
    if os.path.exists("/dev/nvidia0"):
        return True
    smi = shutil.which("nvidia-smi")
    if smi:
        r = subprocess.run([smi, "-L"], capture_output=True, text=True)
        return r.returncode == 0 and "GPU" in r.stdout
    return False


def find_links() -> list[str]:
    """Local wheel folders pip is configured with."""
    dirs = os.environ.get("PIP_FIND_LINKS", "").split()
    r = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        key, _, val = line.partition("=")
        if key.strip().endswith("find-links"):
            dirs += val.strip().strip("'\"").split()
    return [d[7:] if d.startswith("file://") else d for d in dirs if not d.startswith(("http://", "https://"))]


def local_cpu_torch() -> str | None:
    """The newest ``torch-*+cpu`` wheel in the local folders for this Python and platform."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    plat = sysconfig.get_platform().split("-")[-1]  # x86_64, aarch64
    best = None
    for d in find_links():
        for w in glob.glob(os.path.join(d, f"torch-*+cpu-{tag}-{tag}-*{plat}.whl")):
            v = re.match(r"torch-(\d+)\.(\d+)\.(\d+)", os.path.basename(w))
            key = tuple(int(x) for x in v.groups()) if v else (0,)
            if best is None or key > best[0]:
                best = (key, w)
    return best[1] if best else None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", default="", help="install torch and torchvision from this package index")
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args()
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    if a.index:
        cmd, why = pip + ["--index-url", a.index, "torch", "torchvision"], f"from the index {a.index} (TORCH_INDEX)"
    elif not has_nvidia_gpu() and (wheel := local_cpu_torch()):
        major, minor = re.match(r"torch-(\d+)\.(\d+)", os.path.basename(wheel)).groups()
        tv = f"torchvision==0.{int(minor) + 15}.*" if major == "2" else "torchvision"
        cmd, why = pip + [wheel, tv], f"a CPU build for this machine without an NVIDIA GPU: {wheel} with {tv}"
    else:
        cmd = pip + ["torch", "torchvision"]
        why = ("the package index's default build (an NVIDIA GPU is present)" if has_nvidia_gpu() else
               "the package index's default build (no local CPU wheel of torch for this Python; on Linux this is "
               "the CUDA bundle, several GB: pass TORCH_INDEX=https://download.pytorch.org/whl/cpu for a CPU one)")
    print(f"install_torch: {why}", flush=True)
    if a.dry_run:
        print(" ".join(cmd))
        return 0
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
