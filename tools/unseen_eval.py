"""Joints a detector did not see (confidence 0), through the API and through the node, on V-H36M.

For each of the 17 joints unseen alone, each limb unseen, and 25 % of the joints unseen at random
(GT 2D, 10 steps, root given and unknown), prints a markdown table: MPJPE on the seen joints
against the all-seen estimate of the same joints, MPJPE on the unseen joints against
``complete()`` of the same joints (from the exact 3D of the seen joints, and from the estimate's
own seen joints), and how many persons have a bone outside the human range
(``skeleton.BONE_RANGE``). Unseen keypoints are sent as a detector does: (0, 0) with
confidence 0. ``--node`` repeats the limb and random cases through a node over real sockets.

Usage: python tools/unseen_eval.py [--data DIR] [--samples N] [--root given|unknown|both] [--node] [--out FILE]
"""

from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import zmq

from pads_stream.api import PoseModel, load_model
from pads_stream.data.datasets import DEFAULT_DATA, test_path
from pads_stream.evaluation.evaluate import LIMBS, load_test
from pads_stream.geometry.skeleton import H36M_JOINTS, bones_plausible
from pads_stream.stream.node import Node, NodeConfig
from pads_stream.stream.wire import camera_message, decode_pose3d, kp2d_message


def cases(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """(n, 17) seen masks: each joint unseen alone, each limb, a COCO hip with what H36M derives from
    it, 25 % of the joints at random."""
    out = {}
    for j, name in enumerate(H36M_JOINTS):
        mask = np.ones((n, 17), bool)
        mask[:, j] = False
        out[name] = mask
    for name, joints in LIMBS.items():
        mask = np.ones((n, 17), bool)
        mask[:, list(joints)] = False
        out[name] = mask
    for side, hip in (("right", 1), ("left", 4)):  # a COCO hip unseen: H36M's pelvis and spine derive from it
        mask = np.ones((n, 17), bool)
        mask[:, [0, hip, 7]] = False
        out[f"COCO {side} hip (+ pelvis, spine)"] = mask
    mask = np.ones((n, 17), bool)
    for row in mask:
        row[rng.choice(17, 4, replace=False)] = False
    out["25% random"] = mask
    return out


def err_mm(x: np.ndarray, gt: np.ndarray, where: np.ndarray) -> float:
    return float(1000 * np.linalg.norm(x - gt, axis=-1)[where].mean())


def node_estimates(model: PoseModel, t: dict, seen: np.ndarray, root_given: bool) -> np.ndarray:
    """Every sample through a node on loopback (one stream per camera, 32 persons a frame, each
    frame answered before the next is sent); returns the published ``rel`` (N, 17, 3)."""
    ctx = zmq.Context()
    cfg = NodeConfig(inp="tcp://127.0.0.1:*", out="tcp://127.0.0.1:*", latency_budget_ms=600_000, log_period_s=0)
    node = Node(model, cfg, ctx)
    inp, out = node.endpoints
    thread = threading.Thread(target=node.run)
    thread.start()
    rig, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
    rig.connect(inp)
    sub.setsockopt(zmq.SUBSCRIBE, b"pose3d/")
    sub.connect(out)
    rel = np.full((len(seen), 17, 3), np.nan)
    try:
        for cam in np.unique(t["camera"]):
            stream = f"cam{cam}"
            idx = np.flatnonzero(t["camera"] == cam)
            K = t["K"][idx[0]]
            assert np.allclose(t["K"][idx], K), "one K per camera"
            while True:  # readiness: resend the camera until an empty probe frame is answered
                rig.send_multipart(camera_message(stream, K))
                rig.send_multipart(kp2d_message(stream, -1, time.time_ns(), []))
                if sub.poll(200):
                    sub.recv_multipart()
                    break
            for lo in range(0, len(idx), 32):
                batch = idx[lo : lo + 32]
                persons = []
                for i in batch:
                    kp = np.where(seen[i, :, None], t["kp2d"][i], 0.0)
                    p = {"id": int(i), "kp": np.concatenate([kp, seen[i, :, None]], -1).tolist()}
                    if root_given:
                        p["root"] = t["root"][i].tolist()
                    persons.append(p)
                rig.send_multipart(kp2d_message(stream, lo, time.time_ns(), persons))
                while True:
                    if not sub.poll(60_000):
                        raise RuntimeError("the node did not answer within 60 s")
                    msg = decode_pose3d(sub.recv_multipart())
                    if msg.frame == lo and msg.stream == stream:
                        break
                for p in msg.persons:
                    rel[p.id] = p.rel
    finally:
        node.stop()
        thread.join()
        rig.close(0)
        sub.close(0)
        node.close()
        ctx.term()
    return rel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--model", help="checkpoint (default: the shipped model)")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--node", action="store_true", help="also run the limb and random cases through a node")
    parser.add_argument(
        "--root", choices=("given", "unknown", "both"), default="both", help="root given, estimated, or both"
    )
    parser.add_argument("--out", help="write the tables here (markdown)")
    args = parser.parse_args()
    t = load_test(test_path(args.data), args.samples)
    t = {k: (v.astype(np.float64) if v.dtype == np.float32 else v) for k, v in t.items()}
    gt, n = t["gt"], len(t["gt"])
    model = load_model(args.model, backend=args.backend, threads=1)
    all_cases = cases(n, np.random.default_rng(0))
    lines = [
        "# Unseen joints (confidence 0)",
        "",
        f"Measured by `python tools/unseen_eval.py --samples {n}{' --node' if args.node else ''} --out <this file>`: "
        f"V-H36M, {n} samples, GT 2D, 10 steps, the shipped model on ONNX Runtime; MPJPE in mm, pelvis-relative.",
        "Unseen keypoints are sent as detectors send them: (0, 0) with confidence 0. *seen joints*: the same joints'",
        "error when every joint is seen, and in the unseen case (Δ the difference). *unseen joints*: their error,",
        "beside `complete()` with the same joints missing, given the exact 3D of the seen joints (an oracle: the",
        "estimate knows them only from 2D), and given the estimate's own seen joints. The last column counts",
        "persons with a bone outside the human range the node enforces (`skeleton.BONE_RANGE`); the node",
        "publishes none of them (`estimate_failed`). An unseen pelvis has error 0 by definition (poses are",
        "pelvis-relative).",
        "",
    ]
    for root_given in {"given": (True,), "unknown": (False,), "both": (True, False)}[args.root]:
        root = t["root"] if root_given else None
        full = model.estimate(t["kp2d"], t["K"], root)
        lines += [
            f"### Root {'given' if root_given else 'unknown (2D + K)'}",
            "",
            "| unseen | seen joints: all seen | unseen case | Δ | unseen joints | complete() from exact 3D "
            "| complete() from the estimate | persons with a bone out of range |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, seen in all_cases.items():
            kp = np.where(seen[..., None], t["kp2d"], 0.0)
            x = model.estimate(kp, t["K"], root, conf=seen.astype(float))
            unseen = ~seen
            exact = model.complete(gt, seen)
            own = model.complete(x, seen)
            a, b = err_mm(full, gt, seen), err_mm(x, gt, seen)
            bad = int((~bones_plausible(x)).sum())
            lines.append(f"| {name} | {a:.1f} | {b:.1f} | {b - a:+.1f} | {err_mm(x, gt, unseen):.1f} | "
                         f"{err_mm(exact, gt, unseen):.1f} | {err_mm(own, gt, unseen):.1f} | {bad} |")  # fmt: skip
            print(lines[-1], flush=True)
        lines.append("")
        if args.node:
            lines += [
                f"Through a node over loopback sockets (root {'given' if root_given else 'unknown'}):",
                "",
                "| unseen | API seen / unseen | node seen / unseen | published | persons with a bone out of range |",
                "|---|---|---|---|---|",
            ]
            for name in (*LIMBS, "COCO right hip (+ pelvis, spine)", "25% random"):
                seen = all_cases[name]
                kp = np.where(seen[..., None], t["kp2d"], 0.0)
                x = model.estimate(kp, t["K"], root, conf=seen.astype(float))
                y = node_estimates(model, t, seen, root_given)
                done = np.isfinite(y).all(axis=(1, 2))
                s, u = seen & done[:, None], ~seen & done[:, None]
                lines.append(
                    f"| {name} | {err_mm(x, gt, s):.1f} / {err_mm(x, gt, u):.1f} | {err_mm(y, gt, s):.1f} / "
                    f"{err_mm(y, gt, u):.1f} | {done.sum()} of {n} | {int((~bones_plausible(y[done])).sum())} |"
                )
                print(lines[-1], flush=True)
            lines.append("")
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines))


if __name__ == "__main__":
    main()
