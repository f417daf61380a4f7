"""``pads-stream tune``: choose the sampler settings on held-out validation views, never on
the test set, and store them in the checkpoint that ships.

Validation: the S8 takes the prior never saw (``TrainConfig.holdout_takes``), every 8th frame,
each seen by a random camera of the virtual rig, with exact 2D and with detector-like 2D
(:func:`pads_stream.data.virtual_rig.detector_noise`). Criterion: mean of the two MPJPEs.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time
from pathlib import Path

import numpy as np
import torch

from ..api import PoseModel, load_model
from ..common.progress import progress
from ..data.datasets import DEFAULT_DATA, h36m_path, load_positions_3d, split_holdout
from ..data.virtual_rig import detector_noise, random_views
from ..geometry.metrics import mpjpe, p_mpjpe
from ..prior.checkpoint import load_checkpoint
from ..prior.train import TrainConfig
from .evaluate import limb_and_random_masks


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


def tune_denoise(model: PoseModel, gt: np.ndarray, steps: int) -> dict:
    """Denoising's Tweedie level (over the matched one) on held-out poses with 10, 25 and 50 mm
    noise, the noise level estimated as ``denoise`` does by default."""
    rng = np.random.default_rng(1)
    noisy = [gt + rng.normal(0, sigma_mm / 1000, gt.shape) for sigma_mm in (10, 25, 50)]
    noisy = [y - y[:, :1] for y in noisy]
    best = None
    print(
        "| denoise level | MPJPE after 10/25/50 mm noise (before: "
        + " / ".join(f"{mpjpe(y, gt).mean():.1f}" for y in noisy)
        + ") |\n|---|---|"
    )
    base = model.sampler
    for level in progress((1.0, 1.2, 1.4, 1.6, 2.0), "denoise", 5):
        model.sampler = dataclasses.replace(base, denoise_level=level)
        errs = [float(mpjpe(model.denoise(y, steps=steps), gt).mean()) for y in noisy]
        print(f"| {level} | {' / '.join(f'{e:.1f}' for e in errs)} |", flush=True)
        if best is None or sum(errs) < best[0]:
            best = (sum(errs), {"denoise_level": level})
    model.sampler = base
    return best[1]


def tune_complete(model: PoseModel, gt: np.ndarray, steps: int) -> dict:
    """Completion start level and step on held-out poses: each limb and 25 / 50 % random missing."""
    cases = limb_and_random_masks(len(gt), np.random.default_rng(2))
    best = None
    print("| complete t_start | rho | " + " | ".join(cases) + " | mean |\n|---" + "|---" * (len(cases) + 2) + "|")
    base = model.sampler
    for t_start, rho in progress(itertools.product((400, 500, 600), (2.0, 4.0, 8.0)), "complete", 9):
        model.sampler = dataclasses.replace(base, complete_t_start=t_start, complete_rho=rho)
        errs = []
        for mask in cases.values():
            x = model.complete(np.where(mask[..., None], gt, np.nan), mask, steps=steps)
            errs.append(float(1000 * np.linalg.norm(x - gt, axis=-1)[~mask].mean()))
        print(
            f"| {t_start} | {rho} | " + " | ".join(f"{e:.1f}" for e in errs) + f" | {np.mean(errs):.1f} |", flush=True
        )
        if best is None or np.mean(errs) < best[0]:
            best = (float(np.mean(errs)), {"complete_t_start": t_start, "complete_rho": rho})
    model.sampler = base
    return best[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pads-stream tune", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--model", required=True, help="checkpoint to tune")
    parser.add_argument("--out", help="write the checkpoint with the chosen sampler here")
    parser.add_argument("--data", default=DEFAULT_DATA, help="data folder holding h36m/positions_3d_25hz.npz")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--t-start", default="400,500,600")
    parser.add_argument("--rho", default="4,6,8")
    parser.add_argument("--rho-power", default="0.5", help="how rho shrinks with more steps (tune at --steps 50)")
    parser.add_argument("--spacing", default="0.7")
    parser.add_argument("--solver", default="dpm2m")
    parser.add_argument("--snap-power", default="3")
    parser.add_argument("--restart-t", default="200", help="restart run start levels")
    parser.add_argument("--restart-fraction", default="0.3", help="shares of the steps in the restart run")
    parser.add_argument("--tasks", default="estimate,denoise,complete")
    args = parser.parse_args(argv)

    val = validation_views(TrainConfig(h36m=h36m_path(args.data)), args.samples)
    model = load_model(args.model, backend="torch")  # any checkpoint, exported or not
    base = model.sampler
    tasks = args.tasks.split(",")
    if "denoise" in tasks:
        base = dataclasses.replace(base, **tune_denoise(model, val["gt"], args.steps))
    if "complete" in tasks:
        base = dataclasses.replace(base, **tune_complete(model, val["gt"][:200], args.steps))
    results = [(float("inf"), base)]
    if "estimate" in tasks:
        grid = list(
            itertools.product(
                [int(t) for t in args.t_start.split(",")],
                [float(r) for r in args.rho.split(",")],
                [float(p) for p in args.rho_power.split(",")],
                [float(p) for p in args.spacing.split(",")],
                args.solver.split(","),
                [float(p) for p in args.snap_power.split(",")],
                [int(t) for t in args.restart_t.split(",")],
                [float(f) for f in args.restart_fraction.split(",")],
            )
        )
        print("| t_start | rho | rho power | spacing | solver | snap | restart t / share | GT 2D MPJPE / PA "
              "| det. 2D MPJPE / PA | s |\n|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip
        for t_start, rho, power, spacing, solver, snap, restart_t, share in progress(grid, "estimate", len(grid)):
            model.sampler = dataclasses.replace(base, t_start=t_start, rho=rho, rho_power=power, spacing=spacing,
                                                solver=solver, snap_power=snap, restart_t_start=restart_t,
                                                restart_fraction=share)  # fmt: skip
            start = time.perf_counter()
            gt = model.estimate(val["kp2d"], val["K"], val["root"], steps=args.steps)
            det = model.estimate(val["kp2d_det"], val["K"], val["root"], val["conf_det"], steps=args.steps)
            e = [float(f(x, val["gt"]).mean()) for x in (gt, det) for f in (mpjpe, p_mpjpe)]
            results.append((0.5 * (e[0] + e[2]), model.sampler))
            print(f"| {t_start} | {rho} | {power} | {spacing} | {solver} | {snap} | {restart_t} / {share} | "
                  f"{e[0]:.1f} / {e[1]:.1f} | {e[2]:.1f} / {e[3]:.1f} | {time.perf_counter() - start:.1f} |",
                  flush=True)  # fmt: skip
    best_score, best = min(results, key=lambda r: r[0])
    score = f" (mean MPJPE {best_score:.1f} mm on validation)" if "estimate" in tasks else ""
    print(f"chosen{score}: {best}")
    if args.out:
        ckpt = load_checkpoint(args.model)
        ckpt["sampler"] = dataclasses.asdict(best)
        if "estimate" in tasks:  # else the estimation settings, and their validation record, stay
            ckpt["sampler_validation"] = {"mean_mpjpe_mm": best_score, "samples": len(val["gt"]), "steps": args.steps}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        torch.save(ckpt, args.out)
        print(f"wrote {args.out}; run `pads-stream export --model {args.out}` for the ONNX Runtime backend")
