"""Per-step latency of two exported step graphs, timed interleaved in one process (the fair way
to compare sampler costs across sessions whose machines differ). Default: the previous release's
DPS step (`git show 5374146:engines/pads_h36m/step_dps.onnx > /tmp/old_dps.onnx`) against the
shipped projection step. Usage: python tools/step_ratio.py [OLD.onnx]
"""

import sys
import time

import numpy as np
import onnxruntime as ort

from pads_stream.common.files import shipped

old = sys.argv[1] if len(sys.argv) > 1 else "/tmp/old_dps.onnx"
new = str(shipped("engines", "pads_h36m", "step_projection.onnx"))
b = lambda *s: np.zeros(s, np.float32)  # noqa: E731
feeds = {
    old: {"x_t": b(1, 17, 3), "z": b(1, 17, 3), "rays": b(1, 17, 2), "root": np.array([[0, 0, 5.0]], np.float32),
          "weights": np.ones((1, 17), np.float32), "t": np.array([300.0], np.float32),
          "coef": np.array([0.5, 0.6, 0.7, 0.0], np.float32), "rho": np.array([1.0], np.float32)},
    new: {"x_t": b(1, 17, 3), "rays": b(1, 17, 2), "root": np.array([[0, 0, 5.0]], np.float32),
          "weights": np.ones((1, 17), np.float32), "t": np.array([300.0], np.float32),
          "alpha": np.array([0.5], np.float32)},
}  # fmt: skip
for threads in (1, 2):
    for spin in ("0", "1"):
        sessions = {}
        for path in (old, new):
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.add_session_config_entry("session.intra_op.allow_spinning", spin)
            sessions[path] = ort.InferenceSession(path, so)
        times: dict[str, list[float]] = {old: [], new: []}
        for _ in range(300):
            for path in (old, new):
                start = time.perf_counter()
                sessions[path].run(None, feeds[path])
                times[path].append(time.perf_counter() - start)
        o, n = (1000 * np.median(times[p]) for p in (old, new))
        print(f"threads {threads} spinning {spin}: old {o:.2f} ms, new {n:.2f} ms per step, new/old {n / o:.2f}")
