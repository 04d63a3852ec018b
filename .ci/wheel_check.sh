#!/usr/bin/env bash
# Build the wheel, install it (not editable) into a clean venv, and run vidreid from outside the
# repository: the packaged configs must be found there, and a tiny synthetic train + test must run.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-python3.11}"
"$PY" -c "import sys" 2>/dev/null || { echo "[wheel-check] interpreter $PY is missing or broken" >&2; exit 2; }
WORK="$(mktemp -d -t vidreid_wheel.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT  # the folder this script made
echo "[wheel-check] in $WORK"
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --upgrade pip >/dev/null
"$WORK/venv/bin/pip" wheel -q --no-deps -w "$WORK/dist" "$REPO"
# torch / torchvision as the Makefile installs them (scripts/install_torch.py), then the built wheel
"$WORK/venv/bin/python" "$REPO/scripts/install_torch.py" ${TORCH_INDEX:+--index "$TORCH_INDEX"}
"$WORK/venv/bin/pip" install -q "$WORK"/dist/vidreid-*.whl
cd "$WORK"
V="$WORK/venv/bin/vidreid"
"$V" --version
"$V" synth --layout prid2011 --preset tiny --out data --quiet >/dev/null
"$V" train --config demo/prid2011 data.root=data train.output_dir=run schedule.epochs=1 data.p=3 data.k=2 \
    data.height=64 data.width=32 train.progress=false
"$V" test --checkpoint run/checkpoint.pt --out run/test data.num_workers=0
"$WORK/venv/bin/python" -c "import vidreid; m = vidreid.load('run/checkpoint.pt'); print('api ok', tuple(m.embed(['data/prid_2011/multi_shot/cam_a/person_0001']).shape))"
echo "[wheel-check] ok"
