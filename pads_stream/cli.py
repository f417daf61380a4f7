"""The ``pads-stream`` console command: one subcommand per tool."""

from __future__ import annotations

import importlib
import sys

from .common.errors import UsageError
from .common.shutdown import exit_on_stop_signals

# command -> (module, one line, the extra that brings its packages beyond the base install)
COMMANDS = {
    "train": ("pads_stream.prior.train", "train the pose prior"),
    "baseline": ("pads_stream.evaluation.baseline", "train the supervised lifting baseline"),
    "tune": ("pads_stream.evaluation.tune", "tune the sampler on held-out S8 views and store it in a checkpoint"),
    "eval": ("pads_stream.evaluation.evaluate", "accuracy tables and plots on the V-H36M test set"),
    "export": ("pads_stream.runtime.export", "export the guided sampler to ONNX (and TensorRT where present)"),
    "bench": ("pads_stream.evaluation.bench", "latency and throughput of every backend against the compute floor"),
    "node": ("pads_stream.stream.node", "the streaming node: ZeroMQ 2D in, 3D out"),
    "cluster": ("pads_stream.cluster.router", "several node processes behind one input and one output address"),
    "replay": ("pads_stream.apps.replay", "publish recorded 2D keypoints as live streams"),
    "listen": ("pads_stream.apps.listen", "subscribe to 3D poses; print, record, score"),
    "demo": ("pads_stream.apps.demo", "replay -> node -> listen in one command"),
    "view": ("pads_stream.apps.view", "a live 3D view of a node's output in the browser"),
    "bridge": ("pads_stream.apps.bridges", "a node's poses to VRChat OSC trackers or the VMC protocol"),
    "calibrate": ("pads_stream.apps.calibrate", "a rig's extrinsics, clocks, scale and floor from one person walking"),
    "fuzz": ("pads_stream.apps.fuzz", "send hostile and valid traffic to a node and check its answers"),
}
EXTRAS = {"train": "train", "baseline": "train", "tune": "train", "eval": "plots", "export": "export",
          "bench": "export", "view": "view", "bridge": "bridges"}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--version"]:
        from . import __version__

        print(f"pads-stream {__version__}")
        return
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        print("usage: pads-stream [--version] COMMAND [options]  (pads-stream COMMAND --help for each)\n\ncommands:")
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:<{width}}  {text}")
        sys.exit(0 if argv and argv[0] in ("-h", "--help") else 2)
    if argv[0] in ("node", "cluster"):  # a stop signal while the model loads exits cleanly (code 0)
        exit_on_stop_signals()
    try:
        module = importlib.import_module(COMMANDS[argv[0]][0])
    except ModuleNotFoundError as err:
        if (err.name or "").startswith("pads_stream"):
            raise
        extra = EXTRAS.get(argv[0], "test")
        sys.exit(f"pads-stream {argv[0]} needs {err.name}, which is not installed: pip install 'pads-stream[{extra}]'")
    try:
        module.main(argv[1:])
    except Exception as err:  # a mistake a user can fix: one line saying what and how, exit code 2
        line = usage_error(err)
        if line is None:
            raise
        print(f"pads-stream {argv[0]}: {line}", file=sys.stderr)
        sys.exit(2)


def usage_error(err: Exception) -> str | None:
    """One line for an error a user can fix by changing the command (None: a bug, raised as it is)."""
    import errno

    import zmq

    from .runtime.stepgraph import BackendUnavailable

    if isinstance(err, zmq.ZMQError):
        if err.errno == errno.EADDRINUSE:
            return "address already in use: another node (or program) has that port; stop it or pick another port"
        if err.errno in (errno.EINVAL, errno.EPROTONOSUPPORT, getattr(zmq, "EPROTONOSUPPORT", -1)):
            return ("not a ZeroMQ address: write tcp://HOST:PORT (tcp://127.0.0.1:5555; tcp://*:5555 listens on "
                    "every interface) or ipc://PATH")  # fmt: skip
        if err.errno == errno.EADDRNOTAVAIL or err.errno == getattr(zmq, "ENODEV", -1):
            return "no such interface or host on this machine: bind to 127.0.0.1, * or one of its own addresses"
        return None
    if isinstance(err, UsageError):
        return str(err)
    if isinstance(err, BackendUnavailable):
        return f"backend unavailable: {err}"
    if isinstance(err, FileNotFoundError) and "not found" in str(err):
        return str(err)
    return None


if __name__ == "__main__":
    main()
