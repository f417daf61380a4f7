"""``pads-stream bench``: per-frame latency and throughput of every backend, against the
compute floor, with the accuracy of each configuration beside its cost.

For each backend × batch × steps: p50/p99 of one whole ``estimate()`` call (a frame: all
persons at once, every step, input checks included) and poses per second. FLOPs per pose per
step are counted on the guided step itself (``torch.utils.flop_counter``); the device's peak
is measured in the same run (a large float32 matrix product; on a CPU one core's), so the compute floor is
FLOPs / peak and each result is reported as a ratio to it. Accuracy: MPJPE / PA-MPJPE on a
sample of the V-H36M test set (GT 2D) for each step count and backend.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ..api import PoseModel, load_model
from ..common.progress import progress
from ..data.datasets import DEFAULT_DATA, test_path
from ..geometry.metrics import mpjpe, p_mpjpe
from ..runtime.export import example_inputs, trace_task
from ..runtime.stepgraph import BackendUnavailable
from .evaluate import load_test


def step_flops(model: PoseModel, batch: int = 64) -> float:
    """FLOPs of one estimation step per pose, counted by torch on the traced projection graph —
    the graph that is exported: the network's forward and its vector-Jacobian product."""
    from ..prior.checkpoint import build_denoiser, load_checkpoint

    net, _, scale = build_denoiser(load_checkpoint(model.path))
    traced = trace_task(net, scale, "projection")
    with FlopCounterMode(display=False) as counter:
        traced(*example_inputs("projection", batch))
    return counter.get_total_flops() / batch


def measured_peak(device: str, n: int = 2048, reps: int = 10) -> float:
    """FLOP/s of an n×n×n float32 matrix product (best of ``reps``) on one CPU core (the node runs
    one thread, and the floor it is held to is one core's) or on the GPU."""
    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        a = torch.randn(n, n, device=device)
        b = torch.randn(n, n, device=device)
        best = float("inf")
        for _ in range(reps + 2):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            a @ b
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return 2 * n**3 / best


def frame_latency(model: PoseModel, data: dict, batch: int, steps: int, reps: int) -> np.ndarray:
    """Seconds of ``reps`` estimate() calls on ``batch`` persons (after two warm-up calls)."""
    kp, K, root = data["kp2d"][:batch], data["K"][:batch], data["root"][:batch]
    times = []
    for _ in range(reps + 2):
        start = time.perf_counter()
        model.estimate(kp, K, root, steps=steps)
        times.append(time.perf_counter() - start)
    return np.array(times[2:])


VARIANTS = {  # name: (backend, ONNX Runtime spinning, threads: None = --threads)
    "torch": ("torch", False, None),
    "torch-eager": ("torch", False, None),  # on a GPU: without CUDA graphs
    "onnxruntime": ("onnxruntime", False, None),
    "onnxruntime-spin": ("onnxruntime", True, None),
    "onnxruntime-1thread": ("onnxruntime", False, 1),
    "tensorrt": ("tensorrt", False, None),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pads-stream bench", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--model", help="checkpoint (default: the shipped model)")
    parser.add_argument("--backends", default="onnxruntime,onnxruntime-spin,onnxruntime-1thread,torch,tensorrt",
                        help=f"variants among {list(VARIANTS)}")  # fmt: skip
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime and torch threads (0: their default)")
    parser.add_argument("--batches", default="1,16,64")
    parser.add_argument("--steps", default="5,10,20")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--accuracy-samples", type=int, default=500)
    parser.add_argument("--data", default=DEFAULT_DATA, help="data folder holding h36m/test_vh36m.npz")
    parser.add_argument("--out", default="runs/bench", help="folder for bench.json, bench.md and bench.png")
    parser.add_argument("--replot", action="store_true", help="measure nothing: redraw bench.md and bench.png "
                        "from the bench.json in --out")  # fmt: skip
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.replot:
        result = json.loads((out / "bench.json").read_text())
        (out / "bench.md").write_text(markdown(result))
        plot(result["rows"], out / "bench.png")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_test(test_path(args.data), max(args.accuracy_samples, 64), seed=7)
    batches = [int(b) for b in args.batches.split(",")]
    steps_list = [int(s) for s in args.steps.split(",")]
    rows, skipped = [], {}
    cells = [(name, b, st) for name in args.backends.split(",") for b in batches for st in steps_list]
    bar = iter(progress(cells, desc="bench"))
    peaks = {"cpu": measured_peak("cpu")}
    flops = None
    for name in args.backends.split(","):
        backend, spinning, threads = VARIANTS[name]
        try:
            model = load_model(args.model, backend=backend, spinning=spinning,
                               threads=args.threads if threads is None else threads)  # fmt: skip
        except BackendUnavailable as err:
            skipped[name] = str(err)
            continue
        if name == "torch-eager":
            model.backend.cuda_graphs = False
        device = "cuda" if backend == "tensorrt" or (backend == "torch" and torch.cuda.is_available()) else "cpu"
        if device not in peaks:
            peaks[device] = measured_peak(device)
        flops = flops or step_flops(model)
        timed = {}
        for b in batches:
            for st in steps_list:
                timed[(b, st)] = frame_latency(model, data, b, st, args.reps)
                next(bar, None)
        acc = {}  # after the timings, so large accuracy batches do not disturb them
        for steps in steps_list:
            n = args.accuracy_samples
            x = model.estimate(data["kp2d"][:n], data["K"][:n], data["root"][:n], steps=steps)
            acc[steps] = (float(mpjpe(x, data["gt"][:n]).mean()), float(p_mpjpe(x, data["gt"][:n]).mean()))
        for (batch, steps), t in timed.items():
            floor = batch * steps * flops / peaks[device]
            p50 = float(np.median(t))
            rows.append({
                "backend": name, "device": device, "batch": batch, "steps": steps,
                "p50_ms": 1000 * p50, "p99_ms": 1000 * float(np.percentile(t, 99)),
                "poses_per_s": batch / p50, "floor_ms": 1000 * floor, "ratio_to_floor": p50 / floor,
                "mpjpe": acc[steps][0], "pa_mpjpe": acc[steps][1],
            })  # fmt: skip
    result = {"rows": rows, "skipped": skipped, "peak_flops": peaks, "flops_per_pose_step": flops,
              "threads": args.threads, "cpu": platform.processor() or platform.machine()}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=1))
    text = markdown(result)
    (out / "bench.md").write_text(text)
    plot(rows, out / "bench.png")
    print(text)


def markdown(result: dict) -> str:
    peaks = ", ".join(f"{d}: {p / 1e9:.1f} GFLOP/s" for d, p in result["peak_flops"].items())
    lines = [f"Measured peak (float32 matmul) {peaks}; {result['flops_per_pose_step'] / 1e6:.2f} MFLOP per pose "
             f"per step; threads {result['threads'] or 'default'}; floor = batch × steps × FLOPs / peak.", "",
             "| backend | device | batch | steps | p50 ms | p99 ms | poses/s | floor ms | × floor | MPJPE / PA (mm) |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        lines.append(f"| {r['backend']} | {r['device']} | {r['batch']} | {r['steps']} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {r['poses_per_s']:.0f} | {r['floor_ms']:.2f} | {r['ratio_to_floor']:.1f} | "
                     f"{r['mpjpe']:.1f} / {r['pa_mpjpe']:.1f} |")  # fmt: skip
    for name, why in result["skipped"].items():
        lines.append(f"\n{name}: not run here: {why}")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """Left: milliseconds per pose for each backend and batch at 10 steps (or the middle steps
    measured), beside the one-core FLOP floor. Right: accuracy against steps, per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps_list = sorted({r["steps"] for r in rows})
    steps = 10 if 10 in steps_list else steps_list[len(steps_list) // 2]
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    batches = sorted({r["batch"] for r in rows})
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 0.55 * len(backends) * len(batches) + 2.2),
                               gridspec_kw={"width_ratios": [1.6, 1]})  # fmt: skip
    height = 0.8 / len(batches)
    for k, batch in enumerate(batches):
        for y, backend in enumerate(backends):
            r = next((r for r in rows if (r["backend"], r["batch"], r["steps"]) == (backend, batch, steps)), None)
            if r is None:
                continue
            ms = r["p50_ms"] / batch
            a.barh(y + k * height, ms, height, color=f"C{k}", label=f"batch {batch}" if y == 0 else None)
            a.text(ms, y + k * height, f" {ms:.2f} ms ({r['ratio_to_floor']:.1f}× floor)", va="center", fontsize=8)
    floor = next(r["floor_ms"] / r["batch"] for r in rows if r["steps"] == steps)
    a.axvline(floor, color="k", ls="--", lw=1, label=f"FLOP floor, one core ({floor:.2f} ms)")
    a.set_yticks([y + height * (len(batches) - 1) / 2 for y in range(len(backends))], backends)
    a.invert_yaxis()
    a.set_xlim(0, 1.45 * max(r["p50_ms"] / r["batch"] for r in rows if r["steps"] == steps))
    a.set_xlabel(f"ms per pose at {steps} steps (p50 frame latency / batch)")
    a.legend(fontsize=8, loc="lower right")
    a.grid(axis="x", alpha=0.3)
    for k, backend in enumerate(backends):
        group = sorted(
            (r for r in rows if r["backend"] == backend and r["batch"] == batches[0]), key=lambda r: r["steps"]
        )
        b.plot([r["steps"] for r in group], [r["mpjpe"] for r in group], marker="o", color=f"C{k % 10}",
               alpha=0.8, label=backend)  # fmt: skip
    b.set_xticks(steps_list)
    b.set_xlabel("sampler steps")
    b.set_ylabel("MPJPE, mm (V-H36M, GT 2D)")
    b.grid(alpha=0.3)
    b.legend(fontsize=8)
    b.set_title("accuracy (the same for every backend)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
