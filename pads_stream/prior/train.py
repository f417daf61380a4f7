"""Train the unconditional pose prior: ε-prediction DDPM on camera-frame poses.

Single process: ``pads-stream train --config configs/train_default.json --out runs/prior``.
Several processes (CPU gloo or GPU nccl): ``torchrun --standalone --nproc_per_node N -m pads_stream.prior.train ...``;
every rank draws its own random batches (seed + rank) and DDP averages the gradients.
"""

from __future__ import annotations

import argparse
import copy
import gc
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from ..common.config import from_dict, load_json, to_dict
from ..common.files import shipped
from ..data.bvh import JointMapping
from ..data.datasets import (
    HOLDOUT_TAKES,
    TRAIN_SUBJECTS,
    AugmentConfig,
    augment_to_camera,
    bvh_poses,
    h36m_path,
    load_plain,
    load_positions_3d,
    split_holdout,
    to_17,
)
from .checkpoint import FORMAT, load_checkpoint, strip_for_release
from .model import Denoiser, PriorConfig
from .schedule import DiffusionConfig, add_noise, alphas_cumprod


@dataclass(frozen=True)
class TrainConfig:
    """Data, augmentation and optimisation of a training run. Paths relative to the CWD; an
    empty ``bvh_mapping`` is the package's ``configs/bandai_to_h36m.json``."""

    h36m: str = "../shared/data/h36m/positions_3d_25hz.npz"
    train_subjects: tuple[str, ...] = TRAIN_SUBJECTS
    holdout_takes: str = HOLDOUT_TAKES  # "subject:suffix": takes held out for validation and tuning
    bvh_dirs: tuple[str, ...] = ("../shared/data/bandai",)
    bvh_mapping: str = ""
    bvh_stride: int = 2  # keep every n-th BVH frame (30 fps data)
    bvh_fraction: float = 0.2  # share of each batch drawn from BVH poses
    plain_arrays: tuple[str, ...] = ()  # .npy files of (N, 17, 3) Y-up metre poses, added to the H36M pool
    pools: str = ""  # an .npz written by `pads-stream train --save-pools`: replaces h36m, bvh_dirs and plain_arrays
    prior: dict | None = None  # PriorConfig overrides
    diffusion: dict | None = None  # DiffusionConfig overrides
    augment: dict | None = None  # AugmentConfig overrides
    batch_size: int = 512
    steps: int = 40000
    lr: float = 1e-3
    warmup: int = 500
    weight_decay: float = 0.01
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 1000
    threads: int = 0  # torch CPU threads per process, 0 = torch's default
    init_from: str = ""  # checkpoint whose EMA weights and scale start the run (fine-tuning); "" = random init
    max_seconds: float = 0.0  # wall-clock budget: after 200 steps, `steps` shrinks to what fits; 0 = none


def training_pools(cfg: TrainConfig) -> list[np.ndarray]:
    """The Y-up pose pools a batch is drawn from: [H36M training takes, BVH poses]."""
    if cfg.pools:
        with np.load(cfg.pools) as saved:
            return [to_17(saved["h36m"])] + ([to_17(saved["bvh"])] if "bvh" in saved and cfg.bvh_fraction > 0 else [])
    data = load_positions_3d(cfg.h36m)
    data = {s: data[s] for s in cfg.train_subjects}
    kept, _ = split_holdout(data, cfg.holdout_takes) if cfg.holdout_takes else (data, {})
    pools = [
        np.concatenate(
            [x for takes in kept.values() for x in takes.values()] + [load_plain(p) for p in cfg.plain_arrays]
        )
    ]
    if cfg.bvh_dirs and cfg.bvh_fraction > 0:
        mapping = JointMapping.from_json(cfg.bvh_mapping or shipped("configs", "bandai_to_h36m.json"))
        pools.append(np.concatenate([bvh_poses(d, mapping, cfg.bvh_stride) for d in cfg.bvh_dirs]))
    return pools


def draw_batch(pools: list[np.ndarray], cfg: TrainConfig, aug: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """(batch, 17, 3) camera-frame poses in metres, BVH poses making up ``bvh_fraction``."""
    n_bvh = int(round(cfg.batch_size * cfg.bvh_fraction)) if len(pools) > 1 else 0
    parts = [pools[0][rng.integers(0, len(pools[0]), cfg.batch_size - n_bvh)]]
    if n_bvh:
        parts.append(pools[1][rng.integers(0, len(pools[1]), n_bvh)])
    return augment_to_camera(np.concatenate(parts), rng, aug)


def draw_step(pools: list[np.ndarray], cfg: TrainConfig, aug: AugmentConfig, rng: np.random.Generator,
              num_train_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """One step's random draws, in a fixed order: poses (B, 17, 3) metres, timesteps (B,), noise (B, 17, 3)."""
    x0 = draw_batch(pools, cfg, aug, rng)
    return x0, rng.integers(0, num_train_steps, cfg.batch_size), rng.standard_normal(x0.shape, dtype=np.float32)


def pose_scale(pools: list[np.ndarray], aug: AugmentConfig, seed: int) -> float:
    """Normalisation: the RMS joint coordinate (metres) of 20k augmented training poses."""
    rng = np.random.default_rng(seed)
    x = augment_to_camera(pools[0][rng.integers(0, len(pools[0]), 20000)], rng, aug)
    return float(np.sqrt(np.mean(x[:, 1:] ** 2)))


def save_pools(cfg: TrainConfig, path: Path) -> None:
    """Write the training pools to one compressed .npz (for ``pools``): a run on another machine
    then needs this file alone, not the H36M and BVH folders."""
    pools = training_pools(cfg)
    np.savez_compressed(path, h36m=pools[0], **({"bvh": pools[1]} if len(pools) > 1 else {}))


def fitted_steps(total: int, step: int, rate: float, seconds_left: float) -> int:
    """The step count to train to: ``total``, or fewer when the steps from ``step`` on, at ``rate``
    steps/s, would not finish within ``seconds_left``."""
    return min(total, step + max(1, int(rate * seconds_left)))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 5% of the peak rate."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(cfg: TrainConfig, out: Path, resume: bool = False, log_every: int = 50) -> Path:
    """Run training; returns the path of the final released checkpoint ``out/prior.pt``."""
    started = time.time()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = 0
    device = torch.device("cpu")
    if distributed:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        rank = dist.get_rank()
        if torch.cuda.is_available():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matrix products: ample for a 17-token network
        torch.backends.cudnn.allow_tf32 = True
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    prior_cfg = from_dict(PriorConfig, cfg.prior or {}, "train.prior")
    diff_cfg = from_dict(DiffusionConfig, cfg.diffusion or {}, "train.diffusion")
    aug = from_dict(AugmentConfig, cfg.augment or {}, "train.augment")

    torch.manual_seed(cfg.seed)
    pools = training_pools(cfg)
    scale = pose_scale(pools, aug, cfg.seed)
    net = Denoiser(prior_cfg).to(device)
    if cfg.init_from:
        init = load_checkpoint(cfg.init_from)
        if init["prior"] != to_dict(prior_cfg) or init["diffusion"] != to_dict(diff_cfg):
            raise ValueError(f"init_from {cfg.init_from}: its prior/diffusion config differs from this run's")
        net.load_state_dict(init["weights"])
        scale = float(init["scale"])
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng([cfg.seed, rank])
    step = 0
    last = out / "last.pt"
    if resume and last.exists():
        ckpt = load_checkpoint(last)
        net.load_state_dict(ckpt["raw_weights"])
        ema.load_state_dict(ckpt["weights"])
        opt.load_state_dict(ckpt["optimizer"])
        step, scale = ckpt["step"], ckpt["scale"]
        rng.bit_generator.state = ckpt["rng"][rank] if rank < len(ckpt["rng"]) else rng.bit_generator.state
    model = torch.nn.parallel.DistributedDataParallel(net) if distributed else net
    abar = torch.tensor(alphas_cumprod(diff_cfg), dtype=torch.float32, device=device)

    def save(path: Path, release: bool) -> None:
        states = [rng_state]
        if distributed:
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, rng_state)
            states = gathered
        if rank != 0:
            return
        ckpt = {
            "format": FORMAT,
            "prior": to_dict(prior_cfg),
            "diffusion": to_dict(diff_cfg),
            "train": to_dict(cfg),
            "scale": scale,
            "step": step,
            "weights": {k: v.cpu() for k, v in ema.state_dict().items()},
            "raw_weights": net.state_dict(),
            "optimizer": opt.state_dict(),
            "rng": states,
        }
        out.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(strip_for_release(ckpt) if release else ckpt, tmp)
        tmp.replace(path)

    bar = tqdm(total=cfg.steps, initial=step, disable=rank != 0, dynamic_ncols=True, mininterval=5)
    running, t0, start_step = None, time.time(), step
    # The next step's draws are made on a second thread while the network trains on this one (numpy
    # releases the GIL). Only that thread uses the rng, one step at a time, and a checkpoint stores
    # its state from before the draw in flight: a resumed run draws what the unbroken run would have.
    prefetch = ThreadPoolExecutor(1)
    rng_state = rng.bit_generator.state
    pending = prefetch.submit(draw_step, pools, cfg, aug, rng, diff_cfg.num_train_steps)
    while step < cfg.steps:
        x0, t, eps = (torch.from_numpy(a).to(device) for a in pending.result())
        x0 = x0 / scale  # (B, 17, 3)
        rng_state = rng.bit_generator.state
        pending = prefetch.submit(draw_step, pools, cfg, aug, rng, diff_cfg.num_train_steps)
        x_t = add_noise(x0, eps, abar[t][:, None, None])
        loss = torch.nn.functional.mse_loss(model(x_t, t), eps)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(ema.parameters()), list(net.parameters()), 1 - cfg.ema_decay)
        step += 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        bar.update(1)
        if step - start_step == 200 and cfg.max_seconds > 0:
            now = time.time()
            fitted = [fitted_steps(cfg.steps, step, 200 / (now - t0), cfg.max_seconds - (now - started))]
            if distributed:
                dist.broadcast_object_list(fitted)  # every rank stops at rank 0's count
            if fitted[0] < cfg.steps:
                cfg = replace(cfg, steps=fitted[0])  # saved with the checkpoints: the schedule that ran
                bar.total = cfg.steps
                if rank == 0:
                    print(f"max_seconds {cfg.max_seconds:.0f}: training to step {cfg.steps}")
        if step % log_every == 0:
            bar.set_postfix(loss=f"{running:.4f}", lr=f"{lr_at(step, cfg):.2e}")
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            save(last, release=False)
    prefetch.shutdown(cancel_futures=True)
    bar.close()
    final = out / "prior.pt"
    save(final, release=True)
    if rank == 0:
        print(f"trained {step} steps in {time.time() - t0:.0f} s, loss {running:.4f} -> {final}")
    if distributed:
        # DDP's reducer holds the group: free it first, or gloo's threads outlive the group and
        # the interpreter aborts on exit ("terminate called without an active exception").
        del model
        gc.collect()
        dist.barrier()  # no rank tears the group down while another still uses it
        dist.destroy_process_group()
    return final


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pads-stream train", description=__doc__)
    parser.add_argument("--config", help="JSON file of TrainConfig overrides")
    parser.add_argument("--out", default="runs/prior", help="output folder for checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument(
        "--data", help="data folder: sets h36m to DIR/h36m/positions_3d_25hz.npz and bvh_dirs to DIR/bandai"
    )
    parser.add_argument("--steps", type=int, help="override the number of steps")
    parser.add_argument("--seed", type=int, help="override the seed")
    parser.add_argument("--max-seconds", type=float, help="override the wall-clock budget (max_seconds)")
    parser.add_argument("--save-pools", metavar="NPZ", help="write the training pools to NPZ (for `pools`) and exit")
    args = parser.parse_args(argv)
    cfg = load_json(TrainConfig, args.config)
    given = {"steps": args.steps, "seed": args.seed, "max_seconds": args.max_seconds}
    overrides = {k: v for k, v in given.items() if v is not None}
    if args.data:
        overrides["h36m"] = h36m_path(args.data)
        overrides["bvh_dirs"] = [str(Path(args.data) / "bandai")] if cfg.bvh_dirs else []
    if overrides:
        cfg = from_dict(TrainConfig, {**to_dict(cfg), **overrides})
    if args.save_pools:
        save_pools(cfg, Path(args.save_pools))
        return
    train(cfg, Path(args.out), resume=args.resume)


if __name__ == "__main__":
    main()
