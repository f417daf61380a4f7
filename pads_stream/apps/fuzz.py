"""``pads-stream fuzz``: hostile and valid traffic against a running node, and what came back.

Valid streams send frames at a steady rate while a flood of generated bad messages (every
class of ``docs/protocol.md``: broken framing, not msgpack, deep nesting, wrong types, wrong
shapes, NaN/1e300/huge values, bad cameras, unknown topics, degenerate persons) goes to the
same input. The run checks that the node stays up, that every output is finite, that bad
messages are answered on ``error`` (counting those the error rate limit withheld), the share of
valid frames answered, and the node's memory (RSS, from ``/proc`` when ``--pid`` is given).
Loopback or a node you own only: it sends bounded traffic and stops by itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import msgpack
import numpy as np

from ..stream.sockets import Curve, add_curve_argument, publisher, subscriber
from ..stream.wire import DROP_KINDS, VERSION, Status, decode_error, decode_pose3d, decode_status, encode
from .listen import merge_statuses

K = [[1145.0, 0.0, 512.0], [0.0, 1145.0, 515.0], [0.0, 0.0, 1.0]]
# A person standing about 4.5 m from that camera, facing it, H36M-17 order (pixels).
STANDING_PX = [[512, 512], [486, 512], [486, 611], [486, 710], [538, 512], [538, 611], [538, 710], [512, 457],
               [512, 402], [512, 380], [512, 358], [552, 406], [567, 457], [574, 501], [472, 406], [457, 457],
               [450, 501]]  # fmt: skip


def person_kp(rng: np.random.Generator) -> np.ndarray:
    """(17, 3) a plausible standing person's [x, y, conf] in a 1024 px image (H36M-17)."""
    kp = np.array(STANDING_PX) + rng.normal(0, 2, (17, 2))
    return np.concatenate([kp, rng.uniform(0.6, 1.0, (17, 1))], -1)


def kp2d(stream: str, frame: int | None, persons: list, with_camera: bool = True, **change) -> list[bytes]:
    """A kp2d message (camera inline unless ``with_camera`` is False); ``change`` overrides keys."""
    payload = {"v": VERSION, "stream": stream, "frame": frame, "t_ns": time.time_ns(), "layout": "h36m17",
               "persons": persons, **({"camera": {"K": K}} if with_camera else {})}  # fmt: skip
    payload.update(change)
    return encode(f"kp2d/{stream}", payload)


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def bad_messages(rng: np.random.Generator) -> list[tuple[str, Callable[[], list[bytes]]]]:
    """(class, make) pairs: each make() returns the frames of one message the node must reject
    as a whole or in part (one error per rejection)."""
    p = lambda **c: [{"id": 0, "kp": person_kp(rng).tolist(), **c}]  # noqa: E731
    kp_with = lambda j, v: (lambda a: (a.__setitem__((j, 0), v), a)[1])(person_kp(rng)).tolist()  # noqa: E731
    one_joint = np.zeros((17, 3))
    one_joint[4] = [500, 500, 1]
    one_pixel = np.ones((17, 3))
    one_pixel[:, :2] = 500
    return [
        ("frames", lambda: [b"kp2d/f"]),
        ("frames", lambda: [b"kp2d/f", b"\x80", b"extra"]),
        ("random bytes", lambda: [b"kp2d/f", bytes(rng.integers(0, 256, int(rng.integers(1, 400)), dtype=np.uint8))]),
        ("not_msgpack", lambda: [b"kp2d/f", msgpack.packb({"v": nested(int(rng.integers(7, 900)))})]),
        ("schema", lambda: [b"kp2d/f", msgpack.packb([1, 2, 3])]),
        ("schema", lambda: [b"kp2d/f", msgpack.packb({})]),
        ("schema", lambda: kp2d("f", 1, p(), layout={"x": [1]})),
        ("schema", lambda: kp2d("f", "one", p())),
        ("schema", lambda: kp2d("f", 1, "persons")),
        ("version", lambda: kp2d("f", 1, p(), v=2)),
        ("version", lambda: kp2d("f", 1, p(), v=None)),
        ("topic", lambda: [b"kp2d/other", kp2d("f", 1, p())[1]]),
        ("topic", lambda: [b"camera/f", kp2d("f", 1, p())[1]]),
        ("topic", lambda: [b"kp2d/\xff\xfe", kp2d("f", 1, p())[1]]),
        ("layout", lambda: kp2d("f", 1, p(), layout="openpose25")),
        ("shape", lambda: kp2d("f", 1, p(kp=np.ones((16, 3)).tolist()))),
        ("shape", lambda: kp2d("f", 1, p(kp=b"\x00" * 203))),
        ("value", lambda: kp2d("f", 1, p(kp=kp_with(3, 1e300)))),
        ("value", lambda: kp2d("f", 1, p(kp=kp_with(3, float("nan"))))),
        ("value", lambda: kp2d("f", 1, p(root=[0.0, 0.0, 1e300]))),
        ("value", lambda: kp2d("f", 1, p(root=[0.0, 0.0, -4.0]))),
        ("value", lambda: kp2d("f", 1, p(stature_m=float("nan")))),
        ("value", lambda: kp2d("f", 1, p(stature_m=1750.0))),
        ("schema", lambda: kp2d("f", 1, p(stature_m="tall"))),
        ("camera", lambda: kp2d("f", 1, p(), camera={"K": [[1e300, 0, 1], [0, 1e300, 1], [0, 0, 1]]})),
        ("camera", lambda: kp2d("f", 1, p(), camera={"K": np.zeros((3, 3)).tolist()})),
        ("schema", lambda: kp2d("f", 1, p(), camera={"K": K, "R": np.eye(3).tolist(), "t": [0, 0, 0], "rig": 5})),
        (
            "schema",
            lambda: kp2d(
                "f", 1, p(), camera={"K": K, "R": np.eye(3).tolist(), "t": [0, 0, 0], "rig": "r", "rig_ids": 1}
            ),
        ),  # fmt: skip
        ("too_large", lambda: [b"kp2d/f", b"\x00" * (1 << 20) + b"\x00"]),
        ("too_large", lambda: kp2d("f", 1, [{"id": k, "kp": b""} for k in range(10_000)])),
        ("no_camera", lambda: kp2d(f"nocam{int(rng.integers(1 << 30))}", 1, p(), with_camera=False)),
        ("no_joints", lambda: kp2d("f", 1, p(kp=np.zeros((17, 3)).tolist()))),
        ("no_root", lambda: kp2d("f", 1, [{"id": 0, "kp": one_joint.tolist()}])),
        ("no_root", lambda: kp2d("f", 1, [{"id": 1, "kp": one_pixel.tolist()}])),
    ]


def rss_kb(pid: int | None) -> int | None:
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def run(inp: str, out: str, messages: int, bad_rate: float, streams: int, fps: float, pid: int | None,
        seed: int = 0, curve: Curve | None = None) -> dict:  # fmt: skip
    """Send ``messages`` bad messages at ``bad_rate`` per second alongside ``streams`` valid
    streams at ``fps``; returns the counts (see module docstring)."""
    rng = np.random.default_rng(seed)
    sub = subscriber(out, hwm=0, curve=curve)
    pub = publisher(inp, curve, hwm=0)
    try:
        deadline = time.monotonic() + 10
        while not (sub.poll(100) and sub.recv_multipart()[0] == b"status"):  # readiness: the node's status
            if time.monotonic() > deadline:
                raise RuntimeError(f"no status from a node at {out} within 10 s")
        makers = bad_messages(rng)
        sent: Counter[str] = Counter()
        got_errors: Counter[str] = Counter()
        valid_sent = valid_answered = nonfinite = outputs = 0
        rss: list[tuple[float, int]] = []
        statuses: dict[str | None, Status] = {}  # the latest of each node (a cluster's workers by name)
        start = time.monotonic()
        next_valid, frame = start, 0
        bad_sent, duration = 0, messages / bad_rate

        def receive(timeout_ms: int) -> None:
            nonlocal valid_answered, nonfinite, outputs
            while sub.poll(timeout_ms):
                timeout_ms = 0
                frames = sub.recv_multipart()
                topic = frames[0]
                if topic == b"error":
                    err = decode_error(frames)
                    if err.kind in DROP_KINDS:  # a valid frame answered with a drop notice
                        valid_answered += str(err.stream).startswith("valid")
                    else:
                        got_errors[err.kind] += 1
                elif topic == b"status":
                    status = decode_status(frames)
                    statuses[status.worker] = status
                elif topic.startswith(b"pose3d/"):
                    outputs += 1
                    msg = decode_pose3d(frames)
                    arrays = [a for p in msg.persons for a in (p.joints, p.rel, p.root)]
                    nonfinite += sum(int(not np.isfinite(a).all()) for a in arrays)
                    valid_answered += msg.stream.startswith("valid")

        while bad_sent < messages:
            now = time.monotonic()
            if now >= next_valid:
                for s in range(streams):
                    pub.send_multipart(kp2d(f"valid{s}", frame, [{"id": m, "kp": person_kp(rng).tolist()}
                                                                  for m in range(2)]))  # fmt: skip
                    valid_sent += 1
                frame += 1
                next_valid += 1 / fps
            due = min(messages, int((now - start) * bad_rate) + 1)
            while bad_sent < due:
                kind, make = makers[int(rng.integers(len(makers)))]
                pub.send_multipart(make())
                sent[kind] += 1
                bad_sent += 1
            receive(1)
            if not rss or now - rss[-1][0] > 1.0:
                value = rss_kb(pid)
                if value is not None:
                    rss.append((now, value))
        settle = time.monotonic() + 3.0
        while time.monotonic() < settle:
            receive(100)
        last_status = merge_statuses(list(statuses.values())) if statuses else None
        status_errors = last_status.errors if last_status else {}
        return {
            "messages": bad_sent, "seconds": duration, "bad_rate": bad_rate, "streams": streams, "fps": fps,
            "sent_by_class": dict(sent), "errors_received": dict(got_errors),
            "errors_counted_by_node": {k: v for k, v in status_errors.items() if v},
            "errors_unsent": last_status.errors_unsent if last_status else None,
            "outputs": outputs, "nonfinite_outputs": nonfinite,
            "valid_sent": valid_sent, "valid_answered": valid_answered,
            "rss_kb": [v for _, v in rss], "node_status": dataclasses.asdict(last_status) if last_status else {},
        }  # fmt: skip
    finally:
        pub.close(0)
        sub.close(0)


def summary(r: dict) -> str:
    rss = r["rss_kb"]
    lines = [
        f"bad messages: {r['messages']} at {r['bad_rate']:.0f}/s over every class "
        f"({len(r['sent_by_class'])} classes) beside {r['streams']} valid streams at {r['fps']:.0f} FPS",
        f"errors received {sum(r['errors_received'].values())}, counted by the node "
        f"{sum(r['errors_counted_by_node'].values())} (withheld by the rate limit: {r['errors_unsent']})",
        f"valid frames answered: {r['valid_answered']} of {r['valid_sent']} "
        f"({100 * r['valid_answered'] / max(1, r['valid_sent']):.1f} %); non-finite outputs: {r['nonfinite_outputs']}",
    ]
    if rss:
        lines.append(
            f"node RSS: {rss[len(rss) // 5] / 1024:.1f} MiB after warm-up, {rss[-1] / 1024:.1f} MiB at the end"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pads-stream fuzz", description=__doc__,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--to", default="tcp://127.0.0.1:5555", help="the node's input")
    parser.add_argument("--node-out", default="tcp://127.0.0.1:5556", help="the node's output")
    parser.add_argument("--messages", type=int, default=100_000, help="bad messages to send")
    parser.add_argument("--rate", type=float, default=1000.0, help="bad messages per second")
    parser.add_argument("--streams", type=int, default=4, help="valid streams (2 persons each)")
    parser.add_argument("--fps", type=float, default=10.0, help="frames per second per valid stream")
    parser.add_argument("--pid", type=int, help="the node's process id, for its RSS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the full result (counts by class and kind, RSS series) here")
    add_curve_argument(parser)
    args = parser.parse_args(argv)
    result = run(args.to, args.node_out, args.messages, args.rate, args.streams, args.fps, args.pid, args.seed,
                 args.curve)  # fmt: skip
    print(summary(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
