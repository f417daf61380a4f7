"""Root given vs estimated (2D + K) vs estimated with the rig's extrinsics (floor), on V-H36M.

Prints pelvis-relative MPJPE / PA-MPJPE and the root error (mm) for exact and detected 2D, 10
steps, shipped model on ONNX Runtime. Usage: python tools/root_eval.py [--data DIR] [--samples N]
"""

import argparse
import json

import numpy as np

from pads_stream.api import load_model
from pads_stream.data.datasets import DEFAULT_DATA, data_file, test_path
from pads_stream.evaluation.evaluate import load_test
from pads_stream.geometry.metrics import mpjpe, p_mpjpe

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--data", default=DEFAULT_DATA)
parser.add_argument("--samples", type=int, default=1000)
args = parser.parse_args()
t = load_test(test_path(args.data), args.samples)
rig = json.loads(data_file(args.data, "h36m", "cameras_s9_s11.json").read_text())["subjects"]
R = np.stack([np.array(rig[str(s)][int(c)]["R"]) for s, c in zip(t["subject"], t["camera"], strict=True)])
tt = np.stack([np.array(rig[str(s)][int(c)]["t"]).reshape(3) for s, c in zip(t["subject"], t["camera"], strict=True)])
model = load_model(backend="onnxruntime")
for src, kp, conf in (("exact 2D", t["kp2d"], None), ("detected 2D", t["kp2d_det"], t["conf_det"])):
    x = model.estimate(kp, t["K"], t["root"], conf, steps=10)
    print(f"{src}, root given: {mpjpe(x, t['gt']).mean():.1f} / {p_mpjpe(x, t['gt']).mean():.1f}")
    for name, ext in (("2D + K", None), ("2D + K + extrinsics", (R, tt))):
        x, r = model.estimate(kp, t["K"], None, conf, steps=10, return_root=True, extrinsics=ext)
        err = 1000 * np.linalg.norm(r - t["root"], axis=-1)
        print(f"{src}, {name}: {mpjpe(x, t['gt']).mean():.1f} / {p_mpjpe(x, t['gt']).mean():.1f}; "
              f"root error mean {err.mean():.0f}, median {np.median(err):.0f} mm", flush=True)  # fmt: skip
