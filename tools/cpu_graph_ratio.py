"""The CPU graphs (native LayerNormalization) against the portable ones, on ONNX Runtime, one thread:
the largest difference of 300 detected-2D estimates and the time of one whole ``estimate()`` per
batch, interleaved in one run (median of the calls; ratio = CPU graph / portable graph).

Usage: python tools/cpu_graph_ratio.py [--data DIR]
"""

from __future__ import annotations

import argparse
import copy
from functools import partial

import numpy as np

import pads_stream
from pads_stream.common.timing import interleaved_medians
from pads_stream.data.datasets import DEFAULT_DATA, test_path
from pads_stream.runtime.backends import OnnxRuntimeBackend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder holding h36m/")
    args = parser.parse_args()
    d = np.load(test_path(args.data))
    cpu = pads_stream.load_model(backend="onnxruntime", threads=1)
    portable = pads_stream.load_model(backend="onnxruntime", threads=1)
    manifest = copy.deepcopy(portable.backend.manifest)
    manifest.pop("cpu_graphs")
    portable.backend = OnnxRuntimeBackend(portable.backend.folder, manifest, 1, False)
    idx = np.random.default_rng(0).choice(len(d["gt"]), 300, replace=False)
    args_ = (d["kp2d_det"][idx], d["K"][idx], d["root"][idx], d["conf_det"][idx])
    diff = 1000 * np.abs(cpu.estimate(*args_) - portable.estimate(*args_)).max()
    print(f"largest difference over 300 detected-2D estimates: {diff:.3f} mm\n")
    print("| persons | portable graph ms | CPU graph ms | ratio |\n|---|---|---|---|")
    for n in (1, 4, 16, 64):
        kp, K, root = d["kp2d"][:n], d["K"][:n], d["root"][:n]
        runs = {"portable": partial(portable.estimate, kp, K, root), "cpu": partial(cpu.estimate, kp, K, root)}
        p, c = (1000 * t for t in interleaved_medians(runs, 30 if n < 64 else 10).values())
        print(f"| {n} | {p:.2f} | {c:.2f} | {c / p:.3f} |")


if __name__ == "__main__":
    main()
