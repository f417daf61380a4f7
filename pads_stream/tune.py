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


def tune_denoise(model, gt: np.ndarray) -> dict:
    """Denoising start level and step on held-out poses with 10, 25 and 50 mm noise."""
    rng = np.random.default_rng(1)
    noisy = [gt + rng.normal(0, sigma_mm / 1000, gt.shape) for sigma_mm in (10, 25, 50)]
    best = None
    print("| denoise t_start | rho | MPJPE after 10/25/50 mm noise |\n|---|---|---|")
    for t_start, rho in itertools.product((50, 100, 150, 250), (0.25, 0.5, 1.0)):
        model.sampler = dataclasses.replace(model.sampler, denoise_t_start=t_start, denoise_rho=rho)
        errs = [float(mpjpe(model.denoise(y, steps=10), gt).mean()) for y in noisy]
        print(f"| {t_start} | {rho} | {' / '.join(f'{e:.1f}' for e in errs)} |", flush=True)
        if best is None or sum(errs) < best[0]:
            best = (sum(errs), {"denoise_t_start": t_start, "denoise_rho": rho})
    return best[1]


def tune_complete(model, gt: np.ndarray) -> dict:
    """Completion step on held-out poses with 25% of the joints (pelvis kept) missing."""
    rng = np.random.default_rng(2)
    mask = np.ones(gt.shape[:2], bool)
    for m in mask:
        m[1 + rng.choice(16, 4, replace=False)] = False
    best = None
    print("| complete rho | MPJPE on missing joints |\n|---|---|")
    for rho in (1.0, 2.0, 4.0, 8.0, 16.0):
        model.sampler = dataclasses.replace(model.sampler, complete_rho=rho)
        x = model.complete(np.where(mask[..., None], gt, np.nan), mask, steps=20)
        err = float(1000 * np.linalg.norm(x - gt, axis=-1)[~mask].mean())
        print(f"| {rho} | {err:.1f} |", flush=True)
        if best is None or err < best[0]:
            best = (err, {"complete_rho": rho})
    return best[1]


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
    parser.add_argument("--tasks", default="estimate,denoise,complete")
    args = parser.parse_args(argv)

    val = validation_views(TrainConfig(), args.samples)
    model = load_model(args.model, backend="torch")
    base = model.sampler
    tasks = args.tasks.split(",")
    if "denoise" in tasks:
        base = dataclasses.replace(base, **tune_denoise(model, val["gt"][:200]))
    if "complete" in tasks:
        base = dataclasses.replace(base, **tune_complete(model, val["gt"][:200]))
    if "estimate" not in tasks:
        args.t_start, args.rho, args.guidance, args.hypotheses = str(base.t_start), str(base.rho), base.guidance, "1"
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
