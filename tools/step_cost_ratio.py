"""One whole ``estimate()`` of this tree against the same call at an earlier commit, interleaved in
one process on ONNX Runtime with one thread (the node's setting): the fair way to state a speed-up
across sessions whose machines run at different speeds. The earlier package is taken from git
(``git archive``) into a temporary folder under another name, with its own shipped weights and
graphs. Default: the tree before the step-cost work (issue 18) began.

Usage: python tools/step_cost_ratio.py [--commit C] [--persons 1,4,16] [--data DIR]
"""

from __future__ import annotations

import argparse
import importlib
import io
import subprocess
import sys
import tarfile
import tempfile
from functools import partial
from pathlib import Path

import numpy as np

import pads_stream
from pads_stream.common.timing import interleaved_medians
from pads_stream.data.datasets import DEFAULT_DATA, test_path

BEFORE_18 = "04c35a3"  # the last commit before the step-cost work


def earlier_package(commit: str, folder: Path):
    """The package at ``commit``, importable as ``pads_stream_<commit>``."""
    name = f"pads_stream_{commit}"
    tar = subprocess.run(["git", "archive", commit, "pads_stream"], check=True, capture_output=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout  # fmt: skip
    tarfile.open(fileobj=io.BytesIO(tar)).extractall(folder, filter="data")
    (folder / "pads_stream").rename(folder / name)
    graph = folder / name / "stepgraph.py"  # it finds its package data by its package's name
    graph.write_text(graph.read_text().replace('files("pads_stream")', f'files("{name}")'))
    sys.path.insert(0, str(folder))
    return importlib.import_module(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commit", default=BEFORE_18, help="the earlier commit (default: before issue 18)")
    parser.add_argument("--persons", default="1,4,16", help="batch sizes, comma-separated")
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder holding h36m/")
    args = parser.parse_args()
    d = np.load(test_path(args.data))
    with tempfile.TemporaryDirectory() as tmp:
        old = earlier_package(args.commit, Path(tmp)).load_model(backend="onnxruntime", threads=1)
        new = pads_stream.load_model(backend="onnxruntime", threads=1)
        print(f"estimate(), root given, 10 steps, GT 2D, one thread; {args.commit} against this tree\n")
        print(f"| persons | {args.commit} ms | this tree ms | ratio | largest difference mm |\n|---|---|---|---|---|")
        for n in map(int, args.persons.split(",")):
            kp, K, root = d["kp2d"][:n], d["K"][:n], d["root"][:n]
            diff = 1000 * np.abs(old.estimate(kp, K, root) - new.estimate(kp, K, root)).max()
            runs = {"old": partial(old.estimate, kp, K, root), "new": partial(new.estimate, kp, K, root)}
            o, w = (1000 * t for t in interleaved_medians(runs, 60 if n < 16 else 20).values())
            print(f"| {n} | {o:.2f} | {w:.2f} | {w / o:.3f} | {diff:.3f} |", flush=True)


if __name__ == "__main__":
    main()
