"""Measure the node's options end to end (replay -> node process -> listen, loopback TCP):

1. given root vs unknown root (V-H36M test samples, exact 2D);
2. S9/S11 sequences (25 and 12.5 Hz) through fixed virtual cameras: root given, 2D + K,
   2D + K + extrinsics, id switches, cold start, One Euro: accuracy, root error and jitter (mean
   per-joint acceleration error), and a plot of the error over time (node_error_over_time.png);
3. the load test: sustained rate, latency and drops for streams x persons x FPS (sequences,
   so persons keep their ids and warm-start as with a tracking rig).
Writes docs/node_results.md. Usage: python tools/node_experiments.py [--model PT] [--quick] [--repeats N]
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from pads_stream.apps.demo import run
from pads_stream.apps.replay import add_arguments
from pads_stream.stream.node import NodeConfig


def replay_args(**kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def node_args(model, backend, cfg: dict | None = None, tmp: Path | None = None) -> list[str]:
    out = ["--backend", backend] + (["--model", model] if model else [])
    if cfg:
        path = tmp / f"node_{abs(hash(json.dumps(cfg, sort_keys=True)))}.json"
        path.write_text(json.dumps(cfg))
        out += ["--config", str(path)]
    return out


def plot_over_time(runs: dict[str, dict], path: Path) -> None:
    """MPJPE and root error per frame (mean over the persons received in it), one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for label, r in runs.items():
        t = np.array(r["frames"]) / 25.0
        axes[0].plot(t, r["frame_mpjpe"], label=label, lw=1.2)
        axes[1].plot(t, r["frame_root_error"], label=label, lw=1.2)
    axes[0].set_ylabel("MPJPE (mm)")
    axes[1].set_ylabel("root error (mm)")
    axes[1].set_xlabel("time (s), S9/S11 sequences at 25 Hz, 2 streams x 2 persons")
    axes[0].legend(fontsize=8, loc="upper right")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="runs per sequence row (their mean is reported)")
    parser.add_argument("--out", default="docs/node_results.md")
    a = parser.parse_args()
    frames = 40 if a.quick else 150
    lines = ["# Node measurements", "", "Measured by `python tools/node_experiments.py` on the 2-core CPU machine "
             "(replay, node and listener on one host, loopback TCP).", ""]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lines += ["## Root given vs estimated (V-H36M, exact 2D, 2 streams x 2 persons at 10 FPS)", "",
                  "With extrinsics each stream replays one subject's samples of its camera (whose R, t are "
                  "known), so that row scores other samples than the two above.", "",
                  "| root | MPJPE | PA-MPJPE | root error | node p50 / p99 ms |", "|---|---|---|---|---|"]  # fmt: skip
        for no_root, ext in ((False, False), (True, False), (True, True)):
            r = run(replay_args(source="test", frames=frames, rate=10.0, no_root=no_root, extrinsics=ext),
                    node_args(a.model, a.backend))  # fmt: skip
            root = ("estimated with extrinsics" if ext else "estimated") if no_root else "given"
            lines.append(f"| {root} | {r['mpjpe']:.1f} | {r['pa_mpjpe']:.1f} | "
                         f"{r['root_error']:.1f} | {r['node_p50_ms']:.1f} / {r['node_p99_ms']:.1f} |")  # fmt: skip
            print(lines[-1], flush=True)
        lines += ["", "## Sequences: root given vs 2D + K (+ extrinsics), id switches, 25 Hz and 12.5 Hz", "",
                  "S9/S11 takes through one fixed virtual camera per stream (each frame's lowest joint on the floor), "
                  "2 streams x 2 persons, exact 2D, the default node config (warm start and depth filter for "
                  "tracked persons, one ONNX Runtime thread); "
                  "+ extrinsics = the cameras' R, t sent, so the node uses the floor; cold = warm start off. "
                  f"Each row is the mean of {a.repeats} runs (the node, sharing 2 cores with replay and listener, "
                  "drops a varying share of frames at 25 Hz); the acceleration error's range over the runs "
                  "in brackets.", "",
                  "| rate | root | ids | start | MPJPE | PA-MPJPE | root error | accel. error mm/frame² | persons |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        over_time = {}
        for stride in (1, 2):
            for no_root, ext, switch, warm, smooth in ((False, False, 0, True, False), (True, False, 0, True, False),
                                                       (True, True, 0, True, False), (True, False, 10, True, False),
                                                       (True, False, 0, False, False),
                                                       (True, False, 0, True, True)):  # fmt: skip
                cfg = {"warm_start": warm, "one_euro": smooth}
                runs = [run(replay_args(source="h36m", frames=frames, rate=25.0 / stride, stride=stride,
                                        no_root=no_root, extrinsics=ext, id_switch_every=switch),
                            node_args(a.model, a.backend, cfg, tmp)) for _ in range(a.repeats)]  # fmt: skip
                r = runs[0]
                mean = {k: float(np.mean([x.get(k, np.nan) for x in runs]))
                        for k in ("mpjpe", "pa_mpjpe", "root_error", "accel_error", "persons_received")}  # fmt: skip
                accel = [x.get("accel_error", np.nan) for x in runs]
                root = ("2D + K + extrinsics" if ext else "2D + K") if no_root else "given"
                start = ("warm" if warm else "cold") + (" + One Euro" if smooth else "")
                lines.append(f"| {25 / stride:.1f} Hz | {root} | {f'swap every {switch}' if switch else 'stable'} | "
                             f"{start} | {mean['mpjpe']:.1f} | {mean['pa_mpjpe']:.1f} | {mean['root_error']:.0f} | "
                             f"{mean['accel_error']:.1f} [{min(accel):.1f}–{max(accel):.1f}] | "
                             f"{mean['persons_received']:.0f}/{r['persons_expected']} |")  # fmt: skip
                print(lines[-1], flush=True)
                if stride == 1 and not switch and not smooth:
                    over_time[f"{root}, {start}"] = r
        plot = Path(a.out).with_name("node_error_over_time.png")
        plot_over_time(over_time, plot)
        lines += ["", f"![error over time, 25 Hz]({plot.name})"]
        lines += ["", "## Warm vs cold start (S9/S11 sequences at 25 Hz, 2 streams x 2 persons, exact 2D)", "",
                  "| start | steps | MPJPE | PA-MPJPE | accel. error mm/frame² | node p50 / p99 ms |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for warm in (False, True):
            cfg = {"warm_start": warm}
            r = run(replay_args(source="h36m", frames=frames, rate=25.0), node_args(a.model, a.backend, cfg, tmp))
            steps = f"{NodeConfig.warm_steps} from t={NodeConfig.warm_t_start} (10 for a new person)" if warm else "10"
            accel = r.get("accel_error", float("nan"))
            lines.append(f"| {'warm' if warm else 'cold'} | {steps} | {r['mpjpe']:.1f} | {r['pa_mpjpe']:.1f} | "
                         f"{accel:.1f} | {r['node_p50_ms']:.1f} / {r['node_p99_ms']:.1f} |")  # fmt: skip
            print(lines[-1], flush=True)
        lines += ["", "## Load test (S9/S11 sequences through virtual cameras, exact 2D, default node config: "
                  "tracked persons warm-start)", "",
                  "| streams x persons @ FPS | offered frames/s | published frames/s | dropped (superseded, stale) "
                  "| node p50 / p99 ms | end-to-end p50 / p99 ms |", "|---|---|---|---|---|---|"]  # fmt: skip
        grid = [(1, 1, 30), (4, 2, 30), (8, 4, 30), (8, 4, 15)] if not a.quick else [(2, 2, 30)]
        for streams, persons, fps in grid:
            r = run(replay_args(source="h36m", streams=streams, persons=persons, frames=frames, rate=float(fps)),
                    node_args(a.model, a.backend))  # fmt: skip
            d = r["dropped"]
            lines.append(f"| {streams} x {persons} @ {fps} | {r['fps_in']:.0f} | {r['fps_out']:.0f} | "
                         f"{d.get('superseded', 0)}, {d.get('stale', 0)} | "
                         f"{r['node_p50_ms']:.1f} / {r['node_p99_ms']:.1f} | "
                         f"{r['e2e_p50_ms']:.1f} / {r['e2e_p99_ms']:.1f} |")  # fmt: skip
            print(lines[-1], flush=True)
    Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
