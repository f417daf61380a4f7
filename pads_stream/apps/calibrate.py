"""``pads-stream calibrate``: a rig's extrinsics, clocks, scale and floor from one person walking — no board.

Listens where a node would (``--in``, the rigs' and detectors' PUB sockets connect) for ``--seconds``
after the first frame of the rig ``--rig`` (the streams whose camera names it, sent without R and
t), keeps the frames that hold exactly one person, and calibrates (:func:`pads_stream.calibrate_rig`:
robust essential matrices, clock offsets and drifts, one bundle adjustment; ``docs/calibrate.md``).
``--from FILE.npz`` calibrates a recording instead (arrays ``kp2d`` (V, F, 17, 2) px, ``K``
(V, 3, 3), optional ``conf`` (V, F, 17), ``t_ns`` (V, F), ``streams`` (V,)).

Writes ``--out`` (a ``pads-stream-rig/1`` file): ``pads-stream node --rig-calibration FILE`` then
fuses the rig's cameras sent without extrinsics, their clocks corrected. ``--height`` (the person's
stature, metres) or ``--baseline`` (two cameras' measured distance) fixes the scale; without either
the mean adult's size does, with 4 % uncertainty.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import zmq

from ..common.errors import UsageError
from ..data import rig_files
from ..geometry.camera import undistort_points
from ..geometry.layout import to_h36m
from ..geometry.selfcalib import RigCalibration, calibrate_rig
from ..stream.calibration import walkers
from ..stream.sockets import inbound
from ..stream.wire import Camera, CameraUpdate, Kp2dFrame, WireError, decode_inbound

Collected = tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def listen(endpoint: str, rig: str, seconds: float, bind: bool = True, wait_s: float = 60.0,
           context: zmq.Context | None = None) -> Collected:  # fmt: skip
    """Collect one person's 2D from rig ``rig``'s member streams for ``seconds`` after its first frame.

    The person of frames with exactly one person; with the rig's own ids (``camera.rig_ids``), each
    person apart, and the one seen longest by the most cameras is the walker.

    Returns (streams, kp2d (V, F, 17, 2) px undistorted H36M-17, K (V, 3, 3), conf (V, F, 17),
    t_ns (V, F)); each camera keeps the walker's first F frames (F the fewest any has).
    """
    ctx = context or zmq.Context.instance()
    sub = inbound(ctx, 10000)
    try:
        (sub.bind if bind else sub.connect)(endpoint)
    except zmq.ZMQError as err:
        sub.close(linger=0)
        raise UsageError(f"cannot {'bind' if bind else 'connect'} {endpoint}: {err}") from None
    cameras: dict[str, Camera] = {}
    seen_by: dict[int | None, dict[str, list[tuple[int, np.ndarray, np.ndarray]]]] = {}  # walker -> stream -> frames
    first, started = None, time.monotonic()
    try:
        while (first is None and time.monotonic() - started < wait_s) or (
            first is not None and time.monotonic() - first < seconds
        ):
            if not sub.poll(100):
                continue
            try:
                msg = decode_inbound(sub.recv_multipart())
            except WireError:
                continue
            if isinstance(msg, CameraUpdate):
                cameras[msg.stream] = msg.camera
                continue
            frame: Kp2dFrame = msg
            if frame.camera is not None:
                cameras[frame.stream] = frame.camera
            cam = cameras.get(frame.stream)
            people = walkers(frame.persons, cam.rig_ids) if cam is not None else []
            if cam is None or cam.rig != rig or not people or frame.t_ns <= 0:
                continue
            first = time.monotonic() if first is None else first
            for walker, p in people:
                kp, conf = to_h36m(p.kp[None], p.conf[None], frame.layout)
                if cam.dist is not None:
                    kp = undistort_points(kp, cam.K, cam.dist)
                seen_by.setdefault(walker, {}).setdefault(frame.stream, []).append((frame.t_ns, kp[0], conf[0]))
    finally:
        sub.close(linger=0)
    # the walker seen longest by the most cameras
    seen = max(seen_by.values(), key=lambda w: (len(w), min(len(f) for f in w.values())), default={})
    if len(seen) < 2:
        raise UsageError(f"rig {rig!r}: heard {len(seen)} member streams with one person in {seconds:g} s "
                         "(need 2 or more; do its cameras name it in camera.rig?)")  # fmt: skip
    streams = sorted(seen)
    frames = min(len(seen[s]) for s in streams)
    if frames < 50:
        raise UsageError(f"rig {rig!r}: only {frames} frames with one person per camera; walk for longer")
    take = [sorted(seen[s], key=lambda item: item[0])[:frames] for s in streams]
    kp = np.stack([np.stack([f[1] for f in frames_of]) for frames_of in take])
    conf = np.stack([np.stack([f[2] for f in frames_of]) for frames_of in take])
    t_ns = np.array([[f[0] for f in frames_of] for frames_of in take], dtype=np.int64)
    return streams, kp, np.stack([cameras[s].K for s in streams]), conf, t_ns


SCALE_WORDS = {"height": "the height given", "baseline": "the cameras' distance given", "prior": "the mean adult size"}


def baseline(text: str | None, streams: list[str]) -> tuple[int, int, float] | None:
    """``--baseline STREAM,STREAM,METRES`` as (i, j, metres) of the rig's cameras in ``streams`` order."""
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) != 3 or parts[0] not in streams or parts[1] not in streams:
        raise UsageError(f"--baseline {text}: give two of the rig's streams ({', '.join(streams)}) and the metres "
                         "between their cameras, e.g. --baseline cam0,cam1,3.2")  # fmt: skip
    try:
        metres = float(parts[2])
    except ValueError:
        raise UsageError(f"--baseline {text}: {parts[2]!r} is no distance in metres") from None
    return streams.index(parts[0]), streams.index(parts[1]), metres


def summary(rig: str, streams: list[str], cal: RigCalibration) -> str:
    """What a user reads after a calibration: per camera its state, residual and clock; the scale and floor."""
    lines = [f"rig {rig}: {cal.frames} frames, world {cal.world}"
             + ("" if cal.floor_determined else " (the feet did not fix the floor: walk over more of it)"),
             f"scale from {SCALE_WORDS[cal.scale_source]} "
             f"(±{100 * cal.scale_sd:.1f} %), the person {cal.height_m:.2f} m tall"]  # fmt: skip
    for v, s in enumerate(streams):
        lines.append(f"  {s}: {cal.state[v]}, residual {cal.residual_px[v]:.1f} px, clock offset "
                     f"{cal.offset_ns[v] / 1e6:+.1f} ms, drift {cal.drift_ppm[v]:+.0f} ppm, centre "
                     f"{np.round(cal.centres[v], 2).tolist()} m")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pads-stream calibrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--rig", required=True, help="the rig's name (its cameras' camera.rig)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to listen after the rig's first frame")
    parser.add_argument("--height", type=float, help="the walking person's stature, metres (fixes the scale)")
    parser.add_argument("--baseline", metavar="STREAM,STREAM,METRES", help="the measured distance between two "
                        "cameras (fixes the scale instead of --height)")  # fmt: skip
    parser.add_argument("--out", required=True, help="the rig file to write (pads-stream-rig/1 JSON)")
    parser.add_argument("--in", dest="inp", default="tcp://*:5555", help="bind here, as a node would")
    parser.add_argument("--in-connect", help="connect to this endpoint instead of binding")
    parser.add_argument("--from", dest="source", help="calibrate a recording (.npz) instead of listening")
    args = parser.parse_args(argv)
    if args.source:
        try:
            rec = np.load(args.source)
        except OSError as err:
            raise UsageError(f"--from {args.source}: {err}") from None
        if "kp2d" not in rec or "K" not in rec:
            raise UsageError(f"--from {args.source}: needs arrays kp2d (V, F, 17, 2) and K (V, 3, 3)")
        kp, K = rec["kp2d"], rec["K"]
        conf = rec["conf"] if "conf" in rec else None
        t_ns = rec["t_ns"] if "t_ns" in rec else None
        streams = [str(s) for s in rec["streams"]] if "streams" in rec else [f"cam{v}" for v in range(len(kp))]
    else:
        print(f"pads-stream calibrate: listening for rig {args.rig!r}; walk through the cameras' views "
              f"for {args.seconds:g} s", flush=True)  # fmt: skip
        endpoint, bind = (args.in_connect, False) if args.in_connect else (args.inp, True)
        streams, kp, K, conf, t_ns = listen(endpoint, args.rig, args.seconds, bind)
    try:
        cal = calibrate_rig(kp, K, conf, t_ns, height_m=args.height, baseline_m=baseline(args.baseline, streams))
    except ValueError as err:
        raise UsageError(str(err)) from None
    rig_files.save(args.out, args.rig, streams, K, cal)
    print(summary(args.rig, streams, cal))
    print(f"wrote {Path(args.out)}: pads-stream node --rig-calibration {args.out}")


if __name__ == "__main__":
    main()
