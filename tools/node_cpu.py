"""The node's CPU time per frame: node process user + system time against frames published.

Starts ``pads-stream node`` (the code on ``PYTHONPATH``, else the installed package) on loopback,
replays S9/S11 sequences (``--source h36m``, 2 streams × 2 persons, root not sent, at a rate the
node keeps up with), stops the node with SIGTERM and reads its resource usage. Two replay lengths
per repeat: the per-frame cost is the slope (start-up and the model load cancel). Compare two
versions of the code by running this with each on ``PYTHONPATH`` in turn.
Usage: python tools/node_cpu.py [--data DIR] [--frames 100,300] [--rate FPS] [--repeats R]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--data", default="../shared/data")
parser.add_argument("--frames", default="100,300", help="two replay lengths, frames per stream")
parser.add_argument("--rate", type=float, default=10.0)
parser.add_argument("--repeats", type=int, default=3)
args = parser.parse_args()
inp, out = "tcp://127.0.0.1:5575", "tcp://127.0.0.1:5576"


def run(frames: int) -> tuple[float, int]:
    """(node CPU seconds, frames it published) for one replay of ``frames`` frames per stream."""
    node = subprocess.Popen([sys.executable, "-m", "pads_stream.cli", "node", "--in", inp, "--out", out],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert node.stdout.readline().startswith("pads-stream node: in")
    replay = [sys.executable, "-m", "pads_stream.cli", "replay", "--to", inp, "--node-out", out, "--source", "h36m",
              "--streams", "2", "--persons", "2", "--frames", str(frames), "--rate", str(args.rate),
              "--no-root", "--data", args.data, "--truth", "/tmp/node_cpu_truth.npz"]  # fmt: skip
    subprocess.run(replay, check=True, capture_output=True)
    time.sleep(1.0)
    node.send_signal(signal.SIGTERM)
    _, _, usage = os.wait4(node.pid, 0)
    published = int(re.search(r"stopped after (\d+) frames", node.stdout.read()).group(1))
    return usage.ru_utime + usage.ru_stime, published


short, long = map(int, args.frames.split(","))
slopes = []
for _ in range(args.repeats):
    (c1, f1), (c2, f2) = run(short), run(long)
    slopes.append(1000 * (c2 - c1) / (f2 - f1))
    print(f"{f1} frames: {c1:.2f} s CPU; {f2} frames: {c2:.2f} s CPU; {slopes[-1]:.2f} ms CPU per frame", flush=True)
print(f"median {sorted(slopes)[len(slopes) // 2]:.2f} ms CPU per frame (2 persons a frame) over {args.repeats} repeats")
