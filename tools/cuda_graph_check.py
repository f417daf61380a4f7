"""The torch backend on a GPU with and without CUDA graphs: same poses, and the time of each.

On the V-H36M test set (GT 2D, root given), ``estimate()`` runs for several batch sizes, each
with the captured step graphs (:mod:`pads_stream.runtime.cudagraph`) and eagerly; printed per batch:
the largest difference between the two (mm, over every joint), and the p50 of one whole
10-step call for each (ms), interleaved in one run. Needs a CUDA GPU.

Usage: python tools/cuda_graph_check.py [--model PT] [--data DIR] [--batches 1,3,16,64,200] [--reps 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pads_stream.api import load_model
from pads_stream.data.datasets import DEFAULT_DATA, test_path
from pads_stream.evaluation.evaluate import load_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint (default: the shipped model)")
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder holding h36m/test_vh36m.npz")
    parser.add_argument("--batches", default="1,3,16,64,200")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU is visible to torch: CUDA graphs cannot run here")
    model = load_model(args.model, backend="torch")
    batches = [int(b) for b in args.batches.split(",")]
    data = load_test(test_path(args.data), max(batches))
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {args.steps} steps\n")
    print("| batch | max diff mm | graphs p50 ms | eager p50 ms | eager / graphs |")
    print("|---|---|---|---|---|")
    for b in batches:
        kp, K, root = data["kp2d"][:b], data["K"][:b], data["root"][:b]
        out, times = {}, {True: [], False: []}
        for rep in range(args.reps + 2):
            for graphs in (True, False):
                model.backend.cuda_graphs = graphs
                start = time.perf_counter()
                out[graphs] = model.estimate(kp, K, root, steps=args.steps)
                if rep >= 2:
                    times[graphs].append(time.perf_counter() - start)
        diff = 1000 * float(np.abs(out[True] - out[False]).max())
        g, e = 1000 * np.median(times[True]), 1000 * np.median(times[False])
        print(f"| {b} | {diff:.3f} | {g:.2f} | {e:.2f} | {e / g:.1f} |")


if __name__ == "__main__":
    main()
