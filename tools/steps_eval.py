"""Steps that fill the frame budget: the node choosing its steps per batch against a node fixed at 10.

Each row replays S9/S11 sequences through a fresh ``pads-stream node`` process (loopback TCP,
``pads_stream.apps.demo.run``: replay -> node -> listen), exact 2D, root given, at 25 Hz, once with
``steps_max`` 0 (always ``steps`` = 10) and once with ``steps_max`` (default 40: as many steps as
fit before the streams' next frames, at least 10), the rest of the config the package's. Prints
MPJPE, the share of sent frames answered with a pose, node latency p99 and the ratio of the MPJPEs.
Ratios compare two runs on the same machine; absolute times are this machine's.
Usage: python tools/steps_eval.py [--frames 150] [--steps-max 40] [--loads 1x1,2x2,8x2] [--backend onnxruntime]
"""

import argparse
import json
import tempfile
from pathlib import Path

from pads_stream.apps.demo import run
from pads_stream.apps.replay import add_arguments
from pads_stream.common.config import load_json, to_dict
from pads_stream.stream.node import DEFAULT_CONFIG, NodeConfig

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--frames", type=int, default=150)
parser.add_argument("--steps-max", type=int, default=40)
parser.add_argument("--loads", default="1x1,2x2,8x2", help="streams x persons, comma-separated")
parser.add_argument("--rate", type=float, default=25.0)
parser.add_argument("--backend", default="onnxruntime")
args = parser.parse_args()


def replay(streams: int, persons: int) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    r = p.parse_args([])
    r.source, r.streams, r.persons, r.frames, r.rate = "h36m", streams, persons, args.frames, args.rate
    return r


shipped = to_dict(load_json(NodeConfig, str(DEFAULT_CONFIG)))
print(f"S9/S11 sequences at {args.rate:g} Hz, exact 2D, root given, {args.frames} frames, backend {args.backend}\n")
print("| streams x persons | steps | MPJPE | answered % | node p99 ms | steps p50 (min-max) | MPJPE auto / fixed |")
print("|---|---|---|---|---|---|---|")
with tempfile.TemporaryDirectory() as tmp:
    for load in args.loads.split(","):
        streams, persons = map(int, load.split("x"))
        runs = {}
        for label, steps_max in (("fixed 10", 0), (f"10-{args.steps_max}", args.steps_max)):
            cfg = {k: v for k, v in shipped.items() if k in ("steps", "warm_start", "warm_steps", "warm_t_start")}
            cfg.update(steps=10, steps_max=steps_max)
            path = Path(tmp, f"node_{steps_max}.json")
            path.write_text(json.dumps(cfg))
            r = run(replay(streams, persons), ["--backend", args.backend, "--config", str(path)])
            runs[label] = r
            answered = 100 * r["frames_received"] / max(r["frames_sent"], 1)
            st = r.get("steps") or {}
            steps = f"{st.get('p50', '-')} ({st.get('min', '-')}-{st.get('max', '-')})" if st else "-"
            ratio = r["mpjpe"] / runs["fixed 10"]["mpjpe"] if label != "fixed 10" else 1.0
            print(f"| {streams} x {persons} | {label} | {r['mpjpe']:.1f} | {answered:.0f} | {r['node_p99_ms']:.1f} | "
                  f"{steps} | {ratio:.2f} |", flush=True)  # fmt: skip
