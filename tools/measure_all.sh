#!/usr/bin/env bash
# The measurements behind docs/ after `pads-stream eval` (see tools/make_release.sh):
# latency (docs/bench), streams through the node (docs/node_results.md), hostile input (docs/fuzz.md).
set -euo pipefail
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  pads-stream bench --backends onnxruntime,onnxruntime-spin,torch --batches 1,16 --steps 5,10,20 --reps 50 \
    --accuracy-samples 300 --out docs/bench
fi
python tools/node_experiments.py --out docs/node_results.md
# 100,000 bad messages at 1,000/s beside 4 valid streams at 10 FPS, against a node process
pads-stream node --in tcp://127.0.0.1:5755 --out tcp://127.0.0.1:5756 > runs/fuzz_node.log 2>&1 &
NODE=$!
trap 'kill $NODE 2>/dev/null || true' EXIT
sleep 5
pads-stream fuzz --to tcp://127.0.0.1:5755 --node-out tcp://127.0.0.1:5756 --messages 100000 --rate 1000 \
  --streams 4 --fps 10 --pid $NODE --json runs/fuzz.json | tee runs/fuzz.txt
kill -TERM $NODE && wait $NODE && echo "node exit code $?" | tee -a runs/fuzz.txt
