"""``pads-stream eval``: accuracy tables on the V-H36M test set (S9, S11), JSON and PNG plots.

Rows: estimation from ground-truth and detected 2D (PADS at several step counts, cheap
guidance, the inverse-projection start alone, the supervised baseline), an accuracy-against-
steps curve with its cost, denoising, completion and generation. Every PADS row runs the same
sampler as the node, through ``load_model``. Metrics in millimetres.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from ..api import PoseModel, load_model
from ..common.progress import progress
from ..data.datasets import (
    DEFAULT_DATA,
    HOLDOUT_TAKES,
    TRAIN_SUBJECTS,
    h36m_path,
    load_positions_3d,
    split_holdout,
    test_path,
)
from ..geometry import metrics
from ..geometry.camera import inverse_projection
from ..geometry.skeleton import H36M_JOINTS, H36M_LEFT, H36M_PARENTS, H36M_RIGHT, LIMBS, bone_lengths


def limb_and_random_masks(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """(n, 17) observed masks: each limb missing, and 25 % / 50 % of the non-pelvis joints missing."""
    cases: dict[str, np.ndarray] = {}
    for name, joints in LIMBS.items():
        mask = np.ones((n, 17), bool)
        mask[:, list(joints)] = False
        cases[name] = mask
    for frac in (0.25, 0.5):
        mask = np.ones((n, 17), bool)
        for m in mask:
            m[1 + rng.choice(16, int(round(frac * 16)), replace=False)] = False
        cases[f"{int(frac * 100)}% random"] = mask
    return cases


def load_test(path: str | Path, samples: int | None, seed: int = 123) -> dict[str, np.ndarray]:
    """The test set, or ``samples`` of it drawn as ``default_rng(seed).choice(N, samples)``."""
    data = dict(np.load(path))
    n = len(data["gt"])
    if samples and samples < n:
        idx = np.random.default_rng(seed).choice(n, samples, replace=False)
        data = {k: v[idx] for k, v in data.items()}
    return data


def scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Mean MPJPE, PA-MPJPE, N-MPJPE (mm), PCK@150 mm and AUC over all samples."""
    return {
        "mpjpe": float(metrics.mpjpe(pred, gt).mean()),
        "pa_mpjpe": float(metrics.p_mpjpe(pred, gt).mean()),
        "n_mpjpe": float(metrics.n_mpjpe(pred, gt).mean()),
        "pck150": float(metrics.pck(pred, gt).mean()),
        "auc": float(metrics.auc(pred, gt).mean()),
    }


def per_action(pred: np.ndarray, gt: np.ndarray, actions: np.ndarray) -> dict[str, list[float]]:
    """{action: [MPJPE, PA-MPJPE]} in mm."""
    e, pa = metrics.mpjpe(pred, gt), metrics.p_mpjpe(pred, gt)
    return {a: [float(e[actions == a].mean()), float(pa[actions == a].mean())] for a in np.unique(actions)}


def timed(fn, *args, **kwargs) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def estimation_rows(model: PoseModel, test: dict, steps_list: list[int], baseline: str | None) -> dict:
    """Estimation from GT and detected 2D for every method; returns rows and predictions.

    Besides the shipped sampler at each step count: the inverse-projection start alone, two
    ablations at 10 steps (first-order DDIM update; no final ray snap) and the supervised baseline.
    """
    gt, acts = test["gt"], test["action"]
    rows: dict[str, dict] = {}
    preds: dict[str, np.ndarray] = {}
    inputs = {"gt2d": (test["kp2d"], None), "det2d": (test["kp2d_det"], test["conf_det"])}
    variants = {"ddim10": {"solver": "ddim"}, "nosnap10": {"snap_power": 0.0}}
    for src, (kp, conf) in progress(inputs.items(), desc="estimation rows", total=len(inputs)):
        init = inverse_projection(kp.astype(np.float64), test["K"].astype(np.float64), test["root"].astype(np.float64))
        rows[f"init/{src}"] = scores(init, gt)
        for steps in steps_list:
            x, sec = timed(model.estimate, kp, test["K"], test["root"], conf, steps=steps)
            rows[f"pads{steps}/{src}"] = {**scores(x, gt), "ms_per_pose": 1000 * sec / len(gt)}
            preds[f"pads{steps}/{src}"] = x
        shipped = model.sampler
        for name, change in variants.items():
            model.sampler = dataclasses.replace(shipped, **change)
            try:
                x, sec = timed(model.estimate, kp, test["K"], test["root"], conf, steps=10)
            finally:
                model.sampler = shipped
            rows[f"{name}/{src}"] = {**scores(x, gt), "ms_per_pose": 1000 * sec / len(gt)}
        if baseline:
            from .baseline import Baseline

            x = Baseline(baseline).estimate(kp, test["K"], test["root"], conf)
            rows[f"supervised/{src}"] = scores(x, gt)
            preds[f"supervised/{src}"] = x
    main = f"pads{10 if 10 in steps_list else steps_list[0]}"
    actions = {k: per_action(preds[k], gt, acts) for k in preds if k.startswith(main) or k.startswith("supervised")}
    return {"rows": rows, "per_action": actions, "preds": preds}


def steps_curve(model: PoseModel, test: dict, steps_list: list[int]) -> list[dict]:
    """Accuracy and cost against the number of steps, GT 2D."""
    out = []
    for steps in progress(steps_list, desc="steps curve"):
        x, sec = timed(model.estimate, test["kp2d"], test["K"], test["root"], None, steps=steps)
        out.append({"steps": steps, **scores(x, test["gt"]), "ms_per_pose": 1000 * sec / len(x)})
    return out


def denoise_rows(model: PoseModel, gt: np.ndarray, rng: np.random.Generator) -> list[dict]:
    out = []
    for sigma_mm in (10, 25, 50):
        noisy = gt + rng.normal(0, sigma_mm / 1000, gt.shape)
        noisy -= noisy[:, :1]
        x = model.denoise(noisy, steps=10)
        before, after = float(metrics.mpjpe(noisy, gt).mean()), float(metrics.mpjpe(x, gt).mean())
        out.append({"sigma_mm": sigma_mm, "before": before, "after": after, "ratio": after / before})
    return out


def completion_rows(model: PoseModel, gt: np.ndarray, rng: np.random.Generator,
                    reference: np.ndarray | None = None) -> list[dict]:  # fmt: skip
    """MPJPE on the missing joints only (10 steps); the pelvis is always observed (it is the origin).
    With ``reference`` poses (the prior's training poses), each missing limb also gets the
    nearest-neighbour reference of :func:`knn_limb`."""
    out = []
    for name, mask in progress(limb_and_random_masks(len(gt), rng).items(), desc="completion"):
        x = model.complete(np.where(mask[..., None], gt, np.nan), mask, steps=10)
        err = 1000 * np.linalg.norm(x - gt, axis=-1)[~mask].mean()
        out.append({"case": name, "mpjpe_missing": float(err)})
        if reference is not None and name in LIMBS:
            x = knn_limb(reference, gt, LIMBS[name])
            out[-1]["knn_mm"] = float(1000 * np.linalg.norm(x - gt, axis=-1)[~mask].mean())
    return out


def body_frame(x: np.ndarray, across: tuple[int, int]) -> np.ndarray:
    """(N, 3, 3) rotations whose rows are a body's axes: x from joint ``across[1]`` to
    ``across[0]`` (left hip from right hip, or the shoulders), y from the pelvis towards the
    thorax (made orthogonal), z their cross product. ``R @ joint`` is the joint in that frame."""
    e1 = x[:, across[0]] - x[:, across[1]]
    e1 /= np.linalg.norm(e1, axis=-1, keepdims=True)
    up = x[:, 8] - x[:, 0]
    e2 = up - (up * e1).sum(-1, keepdims=True) * e1
    e2 /= np.linalg.norm(e2, axis=-1, keepdims=True)
    return np.stack([e1, e2, np.cross(e1, e2)], axis=1)


def knn_limb(train: np.ndarray, gt: np.ndarray, limb: tuple[int, ...], k: int = 20) -> np.ndarray:
    """A non-parametric reference for completing a missing limb: the mean limb of the ``k``
    training poses nearest on the observed joints, all poses compared in a body frame built from
    observed joints (:func:`body_frame`: across the hips, or the shoulders when a leg is
    missing). It estimates the posterior mean from the prior's own training poses, so it shows
    how much of a limb the rest of one frame's body determines.

    Args:
        train: (M, 17, 3) pelvis-relative training poses, metres, any frame.
        gt: (N, 17, 3) pelvis-relative poses, metres; the ``limb`` joints are not used.

    Returns:
        (N, 17, 3) ``gt`` with the limb's joints replaced, metres.
    """
    seen = np.setdiff1d(np.arange(17), limb)
    across = (4, 1) if {1, 4}.isdisjoint(limb) else (11, 14)
    R_train, R_gt = body_frame(train, across), body_frame(gt, across)
    a = np.einsum("mij,mkj->mki", R_train, train)
    q = np.einsum("nij,nkj->nki", R_gt, gt)
    A, Q = a[:, seen].reshape(len(a), -1), q[:, seen].reshape(len(q), -1)
    out, norms = gt.copy(), (A**2).sum(axis=1)
    for lo in range(0, len(Q), 256):
        d = norms[None] - 2 * Q[lo : lo + 256] @ A.T  # squared distance up to a per-row constant
        idx = np.argpartition(d, k, axis=1)[:, :k]
        limb_mean = a[idx][:, :, list(limb)].mean(axis=1)  # body frame
        out[lo : lo + 256, list(limb)] = np.einsum("nji,nkj->nki", R_gt[lo : lo + 256], limb_mean)
    return out


def generation_row(model: PoseModel, gt: np.ndarray, n: int = 500) -> dict:
    """APD of ``n`` samples; plausibility as bone-length error against the mean test skeleton
    (relative, %), and the mean distance to the nearest test pose after Procrustes (mm)."""
    x = model.generate(n, steps=50, seed=0)
    ref = bone_lengths(gt).mean(axis=0)
    rel = np.abs(bone_lengths(x) / ref - 1).mean() * 100
    sub = gt[:: max(1, len(gt) // 2000)]
    nearest = np.full(n, np.inf)
    for k in range(len(sub)):  # the nearest test pose after similarity alignment
        nearest = np.minimum(nearest, metrics.p_mpjpe(x, np.broadcast_to(sub[k], x.shape).copy()))
    return {"apd_mm": metrics.apd(x), "bone_error_pct": float(rel), "nearest_pa_mm": float(nearest.mean())}


def estimation_markdown(est: dict) -> list[str]:
    """The estimation and per-action tables."""
    lines = ["### Estimation (V-H36M; mm; MPJPE / PA-MPJPE / N-MPJPE, PCK@150, AUC)", "",
             "| method | GT 2D | detected 2D | ms/pose (GT) |", "|---|---|---|---|"]  # fmt: skip
    rows = est["rows"]
    for method in dict.fromkeys(k.split("/")[0] for k in rows):
        cells = []
        for src in ("gt2d", "det2d"):
            r = rows.get(f"{method}/{src}")
            cells.append(
                f"{r['mpjpe']:.1f} / {r['pa_mpjpe']:.1f} / {r['n_mpjpe']:.1f}, {r['pck150']:.3f}, {r['auc']:.3f}"
                if r
                else "—"
            )
        ms = rows.get(f"{method}/gt2d", {}).get("ms_per_pose")
        lines.append(f"| {method} | {cells[0]} | {cells[1]} | {'' if ms is None else f'{ms:.2f}'} |")
    acts = est["per_action"]
    if acts:
        keys = list(acts)
        lines += ["", "### Per action (MPJPE / PA-MPJPE, mm)", "", "| action | " + " | ".join(keys) + " |",
                  "|---" * (len(keys) + 1) + "|"]  # fmt: skip
        for a in next(iter(acts.values())):
            lines.append(f"| {a} | " + " | ".join(f"{acts[k][a][0]:.1f} / {acts[k][a][1]:.1f}" for k in keys) + " |")
    return lines


def markdown(report: dict) -> str:
    """The report's tables as markdown."""
    lines = []
    if report.get("estimation"):
        lines += estimation_markdown(report["estimation"])
    if report.get("curve"):
        lines += [
            "",
            "### Accuracy against steps (GT 2D)",
            "",
            "| steps | MPJPE | PA-MPJPE | ms/pose |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {c['steps']} | {c['mpjpe']:.1f} | {c['pa_mpjpe']:.1f} | {c['ms_per_pose']:.2f} |"
            for c in report["curve"]
        ]
    if report.get("denoise"):
        lines += ["", "### Denoising (MPJPE mm, 10 steps)", "", "| noise σ | before | after | after / before |",
                  "|---|---|---|---|"]  # fmt: skip
        lines += [f"| {d['sigma_mm']} mm | {d['before']:.1f} | {d['after']:.1f} | {d['ratio']:.2f} |"
                  for d in report["denoise"]]  # fmt: skip
    if report.get("completion"):
        lines += ["", "### Completion (MPJPE on missing joints, mm, 10 steps)", "",
                  "Reference: the mean limb of the 20 training poses nearest on the observed joints "
                  "(`evaluate.knn_limb`), an estimate of the posterior mean from the prior's own data.", "",
                  "| missing | MPJPE | nearest-neighbour reference |", "|---|---|---|"]  # fmt: skip
        lines += [f"| {c['case']} | {c['mpjpe_missing']:.1f} | {c['knn_mm']:.1f} |" if "knn_mm" in c
                  else f"| {c['case']} | {c['mpjpe_missing']:.1f} | — |" for c in report["completion"]]  # fmt: skip
    if report.get("generation"):
        g = report["generation"]
        lines += ["", "### Generation (500 samples, 50 steps)", "",
                  f"APD {g['apd_mm']:.1f} mm; bone-length error {g['bone_error_pct']:.1f}%; "
                  f"nearest test pose (PA) {g['nearest_pa_mm']:.1f} mm"]  # fmt: skip
    return "\n".join(lines) + "\n"


def side_colour(joint: int) -> str:
    """Red for the subject's left limbs, blue for the right, grey for the trunk (H36M-17)."""
    return "tab:red" if joint in H36M_LEFT else "tab:blue" if joint in H36M_RIGHT else "0.35"


def plots(report: dict, preds: dict, test: dict, out: Path) -> None:
    """Skeletons side by side, error per joint, error against steps (PNG files in ``out``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    key = next((k for k in preds if k.startswith("pads10/gt2d")), next(iter(preds)))
    pred, gt = preds[key], test["gt"]
    fig = plt.figure(figsize=(15, 5.6))
    for col, i in enumerate(np.linspace(0, len(gt) - 1, 3).astype(int)):
        ax = fig.add_subplot(1, 3, col + 1, projection="3d")
        # truth thin and black, the estimate thick: red left, blue right, green trunk
        for pose, colour, lw in ((gt[i], "black", 1.4), (pred[i], None, 3.0)):
            for j, p in enumerate(H36M_PARENTS):
                if p >= 0:  # camera frame: x right, y down, z forward -> plot (x, z, -y)
                    seg = [[pose[j, a] * s, pose[p, a] * s] for a, s in ((0, 1), (2, 1), (1, -1))]
                    side = side_colour(j) if j in H36M_LEFT or j in H36M_RIGHT else "tab:green"
                    ax.plot(*seg, "-", color=colour or side, lw=lw, alpha=0.9 if colour else 0.75)
        ax.plot([], [], "-", color="black", lw=1.4, label="truth")
        ax.plot([], [], "-", color=side_colour(4), lw=3, label=f"{key}: left")
        ax.plot([], [], "-", color=side_colour(1), lw=3, label=f"{key}: right")
        ax.set_box_aspect((1, 1, 1), zoom=1.15)
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.set_major_locator(matplotlib.ticker.MultipleLocator(0.5))
        ax.tick_params(labelsize=8)
        centre = gt[i].mean(0)
        for setter, a, s in ((ax.set_xlim, 0, 1), (ax.set_ylim, 2, 1), (ax.set_zlim, 1, -1)):
            setter(s * centre[a] - 0.9, s * centre[a] + 0.9)  # the same 1.8 m on every axis
        ax.set_xlabel("x (m)")
        ax.set_ylabel("z, depth (m)")
        ax.set_zlabel("−y, up (m)")
        ax.view_init(elev=12, azim=-70)
        ax.set_title(
            f"{test['action'][i]}: {1000 * np.linalg.norm(pred[i] - gt[i], axis=-1).mean():.0f} mm", fontsize=11
        )
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "skeletons.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 3.5))
    for k in preds:
        if k.endswith("gt2d"):
            ax.plot(1000 * np.linalg.norm(preds[k] - gt, axis=-1).mean(0), marker="o", label=k)
    ax.set_xticks(range(17), H36M_JOINTS, rotation=60, fontsize=7)
    ax.set_ylabel("mean error (mm)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "error_per_joint.png", dpi=90)
    plt.close(fig)

    if report.get("curve"):
        c = report["curve"]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot([r["steps"] for r in c], [r["mpjpe"] for r in c], marker="o", label="MPJPE")
        ax.plot([r["steps"] for r in c], [r["pa_mpjpe"] for r in c], marker="o", label="PA-MPJPE")
        ax.set_xscale("log")
        ax.set_xlabel("DDIM steps")
        ax.set_ylabel("mm (GT 2D)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "error_vs_steps.png", dpi=90)
        plt.close(fig)


def training_poses(data: str, stride: int = 2) -> np.ndarray | None:
    """The prior's Human3.6M training poses (every ``stride``-th frame), or None (with a note)
    when the data folder lacks them."""
    try:
        poses = load_positions_3d(h36m_path(data))
    except FileNotFoundError as err:
        print(f"completion: no nearest-neighbour reference ({err})")
        return None
    kept, _ = split_holdout({s: poses[s] for s in TRAIN_SUBJECTS if s in poses}, HOLDOUT_TAKES)
    return np.concatenate([x[::stride] for takes in kept.values() for x in takes.values()]).astype(np.float64)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pads-stream eval", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--model", help="checkpoint (default: the shipped model)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--data", default=DEFAULT_DATA, help="data folder holding h36m/test_vh36m.npz")
    parser.add_argument("--samples", type=int, default=2000, help="test samples (0 = all 29,560)")
    parser.add_argument("--steps", default="5,10,20", help="step counts of the estimation rows")
    parser.add_argument("--curve", default="5,10,20,50,100", help="step counts of the curve ('' = none)")
    parser.add_argument("--curve-samples", type=int, default=1000)
    parser.add_argument("--baseline", help="supervised baseline checkpoint (pads-stream baseline)")
    parser.add_argument("--tasks", default="estimate,denoise,complete,generate")
    parser.add_argument("--out", default="runs/eval", help="folder for report.json, report.md, PNGs")
    args = parser.parse_args(argv)

    test_file = test_path(args.data)
    model = load_model(args.model, backend=args.backend)
    test = load_test(test_file, args.samples)
    tasks = set(args.tasks.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "model": model.name, "model_hash": model.model_hash, "backend": model.backend.name,
        "sampler": dataclasses.asdict(model.sampler), "test": test_file, "samples": len(test["gt"]),
    }  # fmt: skip
    preds: dict = {}
    if "estimate" in tasks:
        est = estimation_rows(model, test, [int(s) for s in args.steps.split(",")], args.baseline)
        preds = est.pop("preds")
        report["estimation"] = est
        if args.curve:
            curve_test = load_test(test_file, args.curve_samples)
            report["curve"] = steps_curve(model, curve_test, [int(s) for s in args.curve.split(",")])
    rng = np.random.default_rng(0)
    small = test["gt"][:1000]
    if "denoise" in tasks:
        report["denoise"] = denoise_rows(model, small, rng)
    if "complete" in tasks:
        report["completion"] = completion_rows(model, small, rng, training_poses(args.data))
    if "generate" in tasks:
        report["generation"] = generation_row(model, test["gt"])
    text = markdown(report)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(text)
    if preds:
        plots(report, preds, test, out)
    print(text)
    print(f"wrote {out}/report.json, report.md and plots")
