"""Load, failover and hop latency of ``pads-stream cluster`` against one node, on this machine.

Every run starts the real commands (``pads-stream node`` or ``pads-stream cluster --workers N``) and
drives them with the real replay and listen (``pads_stream.apps.demo.run``): the sender and the listener run
in this process, on the same cores as the node processes, and are counted in what those cores do.

1. **Throughput**: V-H36M test frames (exact 2D, root given, 10 steps) from S streams at 25 Hz with P
   persons each, for each offered load; published frames/s, end-to-end latency p50/p99 (capture to the
   listener), MPJPE of what was published; a plain node, a 1-worker and a 2-worker cluster.
2. **Hop latency**: one stream at 10 Hz, one person: the time outside the node (end-to-end minus the
   node's own t_pub − t_recv) through a plain node (2 hops) and a 1-worker cluster (4 hops).
3. **Failover**: S9/S11 sequences (tracked persons, warm starts) on 2 workers; the worker with streams is
   killed (SIGKILL) mid-run; the cluster restarts it. Per stream: frames never answered, time from the
   kill until the stream's first pose3d of a frame sent after it, MPJPE before and after.

    python tools/cluster_load.py --out docs/cluster_tables.md --plot docs/cluster.png
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from pads_stream.apps.demo import free_endpoint, run, start_node
from pads_stream.apps.listen import Listener
from pads_stream.apps.replay import Replayer, add_arguments, load_recording, wait_until_answered
from pads_stream.geometry import metrics
from pads_stream.stream.sockets import subscriber
from pads_stream.stream.wire import decode_cluster


def replay_args(data: str, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--data", data, *extra])


def throughput(data: str, setups: list[tuple[str, str, list[str]]], loads: list[tuple[int, int]],
               seconds: float) -> list[dict]:  # fmt: skip
    rows = []
    for streams, persons in loads:
        frames = int(seconds * 25)
        args = replay_args(data, "--streams", str(streams), "--persons", str(persons), "--frames", str(frames))
        rec = load_recording(args)
        truth = {(f"cam{s}", f, int(rec.ids[s, f, m])): rec.gt[s, f, m] for s, f, m in np.ndindex(rec.ids.shape)}
        group = []
        for name, command, extra in setups:
            r = run(args, extra, command)
            group.append({"setup": name, "streams": streams, "persons": persons, **r})
            print(f"{name:>10} {streams:>2} streams x {persons}: {r['fps_in']:6.1f} offered, {r['fps_out']:6.1f} "
                  f"published frames/s; e2e p50 {r['e2e_p50_ms']:.0f} p99 {r['e2e_p99_ms']:.0f} ms; "
                  f"MPJPE {r.get('mpjpe', float('nan')):.1f} mm", flush=True)  # fmt: skip
        common = sorted(set.intersection(*(set(r["poses"]) for r in group)))  # persons every setup published
        for r in group:
            poses = r.pop("poses")
            pred = np.stack([poses[k][0] for k in common])
            r["mpjpe_common"] = float(metrics.mpjpe(pred, np.stack([truth[k] for k in common])).mean())
            r["common"] = len(common)
        rows += group
    return rows


def hop_latency(data: str, seconds: float) -> list[dict]:
    args = replay_args(data, "--streams", "1", "--persons", "1", "--frames", str(int(seconds * 10)), "--rate", "10")
    rows = []
    for name, command, extra in (("node", "node", []), ("cluster 1", "cluster", ["--workers", "1"])):
        r = run(args, extra, command)
        rows.append({"setup": name, **r, "outside_p50_ms": r["e2e_p50_ms"] - r["node_p50_ms"]})
        print(f"{name}: e2e p50 {r['e2e_p50_ms']:.2f} ms, node {r['node_p50_ms']:.2f} ms", flush=True)
    return rows


def failover(data: str, seconds: float, kill_frame: int, streams: int, kill: bool) -> dict:
    """2 workers; with ``kill``, the one holding streams is killed (SIGKILL) when frame ``kill_frame``
    is due; per stream: frames never answered, the first answer after the kill, each frame's MPJPE."""
    args = replay_args(data, "--source", "h36m", "--streams", str(streams), "--persons", "1",
                       "--frames", str(int(seconds * 25)))  # fmt: skip
    rec = load_recording(args)
    inp, out = free_endpoint(), free_endpoint()
    proc = start_node(inp, out, ["--workers", "2"], "cluster")
    listener = Listener(out)
    cluster = subscriber(out, (b"cluster",))
    replayer = Replayer(rec, inp, 25.0)
    last, victim, killed_ns = None, None, None
    try:
        if not wait_until_answered(replayer, listener, 60.0):
            raise RuntimeError("the cluster did not answer the probe frames")
        while replayer.send_due():
            listener.poll(max(1, int(1000 * replayer.next_due())))
            while cluster.poll(0):
                last = decode_cluster(cluster.recv_multipart())
            if kill and killed_ns is None and replayer.frame >= kill_frame and last is not None:
                victim = next(w for w in last.workers if w.keys and w.load and w.alive)
                killed_ns = time.time_ns()
                os.kill(victim.load.pid, signal.SIGKILL)
                print(f"killed {victim.name} (pid {victim.load.pid}; {', '.join(victim.placed)})", flush=True)
        quiet = time.monotonic()
        while time.monotonic() - quiet < 1.5:
            if listener.poll(100):
                quiet = time.monotonic()
        while cluster.poll(0):
            last = decode_cluster(cluster.recv_multipart())
    finally:
        replayer.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        cluster.close(0)
    dropped = {(e.stream, e.frame) for e in listener.errors if e.kind in ("superseded", "stale", "late", "no_worker")}
    per_stream = {}
    for s, name in enumerate(replayer.names):
        sent = range(replayer.frame)
        lost = [f for f in sent if (name, f) not in listener.frames and (name, f) not in dropped]
        err = {}
        for f in sent:
            key = (name, f, int(rec.ids[s, f, 0]))
            if key in listener.poses:
                err[f] = float(metrics.mpjpe(listener.poses[key][0][None], rec.gt[s, f, 0][None])[0])
        after = [f for f in sent if f >= kill_frame and (name, f) in listener.arrived]
        back_s = (listener.arrived[(name, after[0])] - killed_ns) / 1e9 if after and killed_ns else float("nan")
        per_stream[name] = {"lost": len(lost), "lost_after_kill": sum(f >= kill_frame for f in lost),
                            "answered_again_s": back_s, "err": err}  # fmt: skip
    victims = [k.removeprefix("stream:") for k in victim.placed] if victim else []
    return {"streams": per_stream, "victims": victims, "victim": victim.name if victim else None,
            "events": list(last.events) if last else [], "moved": last.moved if last else 0,
            "restarts": last.restarts if last else 0}  # fmt: skip


def mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def markdown(tp: list[dict], hops: list[dict], fo: dict, base: dict, seconds: float, command: str) -> str:
    lines = [
        "# Cluster: load, failover, hop latency",
        "",
        f"Measured by `{command}` on this 2-core machine (no GPU): each row starts the real command and drives it",
        "with the real replay and listen; the sender and the listener run on the same two cores. V-H36M test",
        f"frames, exact 2D, root given, 10 steps, {seconds:g} s per row, 25 Hz per stream.",
        "",
        "## Published frames/s against offered load",
        "",
        "MPJPE is over the persons a setup published (overloaded setups publish different frames) and over",
        "the persons every setup of the row's load published (the same frames: what the model gives each).",
        "",
        "| streams × persons | offered frames/s | setup | published frames/s | end-to-end p50 / p99 ms "
        "| MPJPE mm: published / common (persons) |",
        "|---|---|---|---|---|---|",
    ]
    for r in tp:
        mpjpe = r.get("mpjpe", float("nan"))
        lines.append(f"| {r['streams']} × {r['persons']} | {r['fps_in']:.0f} | {r['setup']} | {r['fps_out']:.1f} | "
                     f"{r['e2e_p50_ms']:.0f} / {r['e2e_p99_ms']:.0f} | {mpjpe:.1f} / {r['mpjpe_common']:.1f} "
                     f"({r['common']}) |")  # fmt: skip
    lines += ["", "Ratio of published frames/s, 2 workers against 1, at the same offered load:", ""]
    for s, p in sorted({(r["streams"], r["persons"]) for r in tp}):
        one = next((r for r in tp if (r["streams"], r["persons"], r["setup"]) == (s, p, "cluster 1")), None)
        two = next((r for r in tp if (r["streams"], r["persons"], r["setup"]) == (s, p, "cluster 2")), None)
        if one and two:
            lines.append(f"- {s} × {p}: {two['fps_out'] / one['fps_out']:.2f}× "
                         f"({one['fps_out']:.1f} → {two['fps_out']:.1f}; offered {one['fps_in']:.0f})")  # fmt: skip
    lines += ["", "## Latency per hop (1 stream, 10 Hz, 1 person)", "",
              "| setup | hops outside the node | end-to-end p50 / p99 ms | inside the node p50 ms | outside p50 ms |",
              "|---|---|---|---|---|"]  # fmt: skip
    for r in hops:
        hop_count = 2 if r["setup"] == "node" else 4
        lines.append(f"| {r['setup']} | {hop_count} | {r['e2e_p50_ms']:.2f} / {r['e2e_p99_ms']:.2f} | "
                     f"{r['node_p50_ms']:.2f} | {r['outside_p50_ms']:.2f} |")  # fmt: skip
    if len(hops) == 2:
        added = hops[1]["outside_p50_ms"] - hops[0]["outside_p50_ms"]
        lines += ["", f"The router and the proxy add {added:.2f} ms at p50 for their two extra hops "
                  f"({added / 2:.2f} ms per hop)."]  # fmt: skip
    lines += ["", "## A worker killed under load (S9/S11 sequences, tracked persons, 2 workers)", "",
              f"8 streams × 1 person at 25 Hz, root given. At frame {fo['kill_frame']} the worker {fo['victim']} "
              f"was killed with SIGKILL; the cluster restarted it ({fo['restarts']} restart) and it took its streams "
              f"back (streams moved {fo['moved']} times in all). The same recording ran once more without the kill: "
              "the MPJPE columns compare the same frames of the two runs (1 s = 25 frames from the kill; from the "
              "kill to the end).", "",
              "| stream | on the killed worker | frames never answered | of them from the kill | first answer after "
              "the kill, s | MPJPE 1 s from the kill, killed / not | MPJPE from the kill to the end, killed / not |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in fo["streams"].items():
        b = base["streams"][name]["err"]
        window = [f for f in r["err"] if fo["kill_frame"] <= f < fo["kill_frame"] + 25 and f in b]
        rest = [f for f in r["err"] if f >= fo["kill_frame"] and f in b]
        killed = f"{mean([r['err'][f] for f in window]):.1f} / {mean([b[f] for f in window]):.1f}"
        to_end = f"{mean([r['err'][f] for f in rest]):.1f} / {mean([b[f] for f in rest]):.1f}"
        lines.append(f"| {name} | {'yes' if name in fo['victims'] else 'no'} | {r['lost']} | {r['lost_after_kill']} | "
                     f"{r['answered_again_s']:.3f} | {killed} | {to_end} |")  # fmt: skip
    lines += ["", "The cluster's events, as its `cluster` message gave them:", ""]
    lines += [f"- `{e}`" for e in fo["events"]]
    return "\n".join(lines) + "\n"


def plot(tp: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for setup, style in (("node", "k--"), ("cluster 1", "C0-o"), ("cluster 2", "C1-s")):
        rows = sorted((r for r in tp if r["setup"] == setup), key=lambda r: r["fps_in"])
        if not rows:
            continue
        x = [r["fps_in"] for r in rows]
        a.plot(x, [r["fps_out"] for r in rows], style, label=setup)
        b.plot(x, [r["e2e_p99_ms"] for r in rows], style, label=f"{setup} p99")
        b.plot(x, [r["e2e_p50_ms"] for r in rows], style, alpha=0.4, label=f"{setup} p50")
    top = max(r["fps_in"] for r in tp)
    a.plot([0, top], [0, top], color="0.8", lw=1, label="all published")
    a.set(xlabel="offered frames/s", ylabel="published frames/s", title="Throughput (2 cores)")
    b.set(xlabel="offered frames/s", ylabel="capture to listener, ms", title="End-to-end latency")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--seconds", type=float, default=12.0, help="per throughput row")
    parser.add_argument("--persons", type=int, default=2)
    parser.add_argument("--streams", default="1,2,4,8,16", help="offered loads: streams at 25 Hz")
    parser.add_argument("--failover-seconds", type=float, default=30.0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    setups = [("node", "node", []), ("cluster 1", "cluster", ["--workers", "1"]),
              ("cluster 2", "cluster", ["--workers", "2"])]  # fmt: skip
    loads = [(int(s), args.persons) for s in args.streams.split(",")]
    tp = throughput(args.data, setups, loads, args.seconds)
    hops = hop_latency(args.data, 20.0)
    kill_frame = int(args.failover_seconds * 25 / 3)
    fo = failover(args.data, args.failover_seconds, kill_frame, 8, kill=True)
    fo["kill_frame"] = kill_frame
    base = failover(args.data, args.failover_seconds, kill_frame, 8, kill=False)
    text = markdown(tp, hops, fo, base, args.seconds, "python tools/cluster_load.py " + " ".join(sys.argv[1:]))
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.plot:
        plot(tp, args.plot)


if __name__ == "__main__":
    main()
