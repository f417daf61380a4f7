#!/usr/bin/env bash
# How the shipped model and its published numbers are made, after training:
#   pads-stream train --config configs/train_default.json --out runs/prior
#   pads-stream train --config configs/train_finetune.json --out runs/prior_ft         (stage 2)
#   pads-stream train --config configs/train_finetune_stage3.json --out runs/prior_ft3 (stage 3)
#   pads-stream baseline --minutes 12 --out runs/baseline.pt
# Run from the repository root; DATA is the data folder (default ../shared/data).
set -euo pipefail
PRIOR=${PRIOR:-runs/prior_ft3/prior.pt}
DATA=${DATA:-../shared/data}
SHIP=pads_stream/weights/pads_h36m.pt

# 1. sampler settings chosen on held-out S8 views (never the test set), stored in the checkpoint
pads-stream tune --model "$PRIOR" --data "$DATA" --samples 500 --t-start 400,500,600 --rho 4,6,8 \
  --out "$SHIP" | tee runs/tune.md
# 2. the exported step graphs and manifest for the ONNX Runtime / TensorRT backends
pads-stream export --model "$SHIP"
# 3. accuracy tables (ONNX Runtime backend, the node's default on a CPU), then the 10-step rows on torch
pads-stream eval --backend auto --data "$DATA" --samples "${EVAL_SAMPLES:-5000}" --baseline runs/baseline.pt \
  --out runs/eval
pads-stream eval --backend torch --data "$DATA" --samples "${EVAL_SAMPLES:-5000}" --steps 10 --curve "" \
  --tasks estimate --out runs/eval_torch
# 4. latency against the compute floor, streams through the node, hostile input
bash tools/measure_all.sh
