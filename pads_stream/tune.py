"""``pads-stream tune``: choose the sampler settings on held-out validation views, never on
the test set, and store them in the checkpoint that ships.

Validation: the S8 takes the prior never saw (``TrainConfig.holdout_takes``), every 8th frame,
each seen by a random camera of the virtual rig, with exact 2D and with detector-like 2D
(:func:`pads_stream.rig.detector_noise`). Criterion: mean of the two MPJPEs.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time
from pathlib import Path

import numpy as np
import torch

from .api import load_model
from .checkpoint import load_checkpoint
from .data import load_positions_3d
from .metrics import mpjpe, p_mpjpe
from .rig import detector_noise, random_views
from .train import TrainConfig, split_holdout


def validation_views(cfg: TrainConfig, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` held-out poses through the virtual rig: kp2d, kp2d_det, conf_det, K, root, gt."""
    data = load_positions_3d(cfg.h36m)
    _, held = split_holdout(data, cfg.holdout_takes)
    poses = np.concatenate([x[::8] for takes in held.values() for x in takes.values()])
    rng = np.random.default_rng(seed)
    poses = poses[rng.choice(len(poses), min(n, len(poses)), replace=False)]
    v = random_views(poses, rng)
    det, conf = detector_noise(v.kp2d, rng)
    return {"kp2d": v.kp2d, "kp2d_det": det, "conf_det": conf, "K": v.K, "root": v.root, "gt": v.gt}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pads-stream tune", description=__doc__)
    parser.add_argument("--model", required=True, help="checkpoint to tune")
    parser.add_argument("--out", help="write the checkpoint with the chosen sampler here")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--t-start", default="200,300,400,500")
    parser.add_argument("--rho", default="0.5,1,2,4")
    parser.add_argument("--guidance", default="dps,cheap")
    parser.add_argument("--hypotheses", default="1")
    args = parser.parse_args(argv)

    val = validation_views(TrainConfig(), args.samples)
    model = load_model(args.model, backend="torch")
    base = model.sampler
    results = []
    grid = itertools.product(
        [int(t) for t in args.t_start.split(",")],
        [float(r) for r in args.rho.split(",")],
        args.guidance.split(","),
        [int(h) for h in args.hypotheses.split(",")],
    )
    print(
        "| t_start | rho | guidance | hyp | GT 2D MPJPE / PA | det. 2D MPJPE / PA | s |\n|---|---|---|---|---|---|---|"
    )
    for t_start, rho, guidance, hyp in grid:
        model.sampler = dataclasses.replace(base, t_start=t_start, rho=rho, guidance=guidance, hypotheses=hyp)
        start = time.perf_counter()
        gt = model.estimate(val["kp2d"], val["K"], val["root"], steps=args.steps)
        det = model.estimate(val["kp2d_det"], val["K"], val["root"], val["conf_det"], steps=args.steps)
        e = [float(f(x, val["gt"]).mean()) for x in (gt, det) for f in (mpjpe, p_mpjpe)]
        results.append((0.5 * (e[0] + e[2]), model.sampler))
        print(f"| {t_start} | {rho} | {guidance} | {hyp} | {e[0]:.1f} / {e[1]:.1f} | {e[2]:.1f} / {e[3]:.1f} "
              f"| {time.perf_counter() - start:.1f} |", flush=True)  # fmt: skip
    best_score, best = min(results, key=lambda r: r[0])
    print(f"best (mean MPJPE {best_score:.1f} mm on validation): {best}")
    if args.out:
        ckpt = load_checkpoint(args.model)
        ckpt["sampler"] = dataclasses.asdict(best)
        ckpt["sampler_validation"] = {"mean_mpjpe_mm": best_score, "samples": len(val["gt"]), "steps": args.steps}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        torch.save(ckpt, args.out)
        print(f"wrote {args.out}")
