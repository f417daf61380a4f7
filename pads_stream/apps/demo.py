"""``pads-stream demo``: replay -> node -> listen in one command, on the shipped model.

The node runs as its own process (``pads-stream node``) on loopback sockets; replay and listen
share this process and its one thread, interleaved. Prints FPS, latency p50/p99 and accuracy
against the replayed truth.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

from .listen import Listener, accuracy_line
from .replay import Replayer, add_arguments, load_recording, wait_until_answered


def free_endpoint() -> str:
    """A loopback TCP endpoint with a port nobody is using right now."""
    with zmq.Context.instance().socket(zmq.PUB) as s:
        port = s.bind_to_random_port("tcp://127.0.0.1")
    return f"tcp://127.0.0.1:{port}"


def start_node(inp: str, out: str, extra: list[str], command: str = "node") -> subprocess.Popen:
    """Start ``pads-stream node`` (or ``cluster``) bound to ``inp``/``out`` and wait until it says it is up."""
    cmd = [sys.executable, "-m", "pads_stream.cli", command, "--in", inp, "--out", out, *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(f"pads-stream {command}: in"):
            return proc
    raise RuntimeError(f"the {command} exited before it was up (code {proc.wait()})")


def run(args: argparse.Namespace, node_args: list[str], command: str = "node") -> dict:
    """Replay ``args`` through a fresh node (or ``cluster``) process; returns the measured figures."""
    rec = load_recording(args)
    inp, out = free_endpoint(), free_endpoint()
    node = start_node(inp, out, node_args, command)
    listener = Listener(out)
    replayer = Replayer(rec, inp, args.rate, send_root=not args.no_root, send_extrinsics=args.extrinsics)
    try:
        if not wait_until_answered(replayer, listener, 60.0):
            raise RuntimeError("the node did not answer the probe frames within 60 s")
        start = time.monotonic()
        while replayer.send_due():
            listener.poll(max(1, int(1000 * replayer.next_due())))
        sent = time.monotonic() - start
        expected = {(name, f) for name in replayer.names for f in range(replayer.frame)}
        deadline = time.monotonic() + 30.0
        while not expected <= listener.answered() and time.monotonic() < deadline:  # stragglers, however late
            listener.poll(100)
        node.send_signal(signal.SIGTERM)
        code = node.wait(timeout=30)
        listener.poll(200)
    finally:
        replayer.close()
        if node.poll() is None:
            node.kill()
    with tempfile.TemporaryDirectory() as tmp:
        truth = Path(tmp) / "truth.npz"
        rec.save_truth(truth, replayer.names)
        scores = listener.score(truth)
    received = len([f for f in listener.frames if f[1] >= 0])
    status = listener.status
    listener.close()
    return {
        "streams": rec.kp2d.shape[0], "persons": rec.kp2d.shape[2], "rate": args.rate,
        "frames_sent": replayer.frame * len(replayer.names), "frames_received": received,
        "fps_in": replayer.frame * len(replayer.names) / sent, "fps_out": received / sent,
        "dropped": status.dropped if status else {}, "errors": status.errors if status else {},
        "backend": status.backend if status else None, "steps": status.steps if status else {},
        "node_exit_code": code, **listener.latency(), **scores,
        "poses": listener.poses,  # (stream, frame, id) -> (rel, root), for comparisons between runs
    }  # fmt: skip


def nonzero(counts: dict | None) -> str:
    """``kind n`` for each non-zero count, or "none"."""
    return ", ".join(f"{k} {v}" for k, v in (counts or {}).items() if v) or "none"


def report(r: dict) -> str:
    lines = [
        f"streams x persons @ rate: {r['streams']} x {r['persons']} @ {r['rate']:.0f} FPS (backend {r['backend']})",
        f"frames: sent {r['frames_sent']}, received {r['frames_received']} ({r['fps_out']:.1f} frames/s out of "
        f"{r['fps_in']:.1f} in); dropped {nonzero(r['dropped'])}; errors {nonzero(r['errors'])}",
        f"latency: node p50 {r['node_p50_ms']:.1f} ms, p99 {r['node_p99_ms']:.1f} ms; "
        f"end-to-end p50 {r['e2e_p50_ms']:.1f} ms, p99 {r['e2e_p99_ms']:.1f} ms",
    ]
    if "persons_expected" in r:
        lines.append(accuracy_line(r))
    lines.append(f"node exit code {r['node_exit_code']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pads-stream demo", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    add_arguments(parser)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--model", help="checkpoint (default: the shipped model)")
    parser.add_argument("--node-config", help="node config JSON (default: the package's configs/node.json)")
    parser.set_defaults(frames=150, streams=2, persons=2, rate=25.0)
    args = parser.parse_args(argv)
    load_recording(args)  # fail early (naming --data when the data is missing): pads-stream demo: one line
    node_args = ["--backend", args.backend] + (["--model", args.model] if args.model else [])
    node_args += ["--config", args.node_config] if args.node_config else []
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    result = run(args, node_args)
    print(report(result))
    if result["node_exit_code"] != 0 or result["frames_received"] == 0:
        sys.exit(1)
