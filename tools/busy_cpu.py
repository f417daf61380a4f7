"""One person's 10-step estimate on a quiet CPU and with the other core busy, per backend.

A busy loop in a second process holds one core while the estimate runs. Prints the median of a
few estimates each way and their ratio (the backend must not collapse on a shared CPU).
Usage: python tools/busy_cpu.py [--data DIR]
"""

import argparse
import subprocess
import sys
import time

import numpy as np

from pads_stream.api import load_model
from pads_stream.data.datasets import DEFAULT_DATA, test_path
from pads_stream.evaluation.evaluate import load_test

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", default=DEFAULT_DATA)
args = parser.parse_args()
t = load_test(test_path(args.data), 1, seed=7)


def median_ms(model, reps: int) -> float:
    times = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        model.estimate(t["kp2d"], t["K"], t["root"], steps=10)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times[1:]))


print("| backend | threads | quiet ms | other core busy ms | ratio |\n|---|---|---|---|---|")
for backend, threads in (("onnxruntime", 1), ("onnxruntime", 0), ("torch", 1), ("torch", 2)):
    model = load_model(backend=backend, threads=threads)
    quiet = median_ms(model, 7)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        busy = median_ms(model, 3)
    finally:
        hog.kill()
    label = threads or "default"
    print(f"| {backend} | {label} | {quiet:.1f} | {busy:.1f} | {busy / quiet:.2f} |", flush=True)
