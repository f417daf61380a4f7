"""OpenVINO against ONNX Runtime on the shipped CPU step graph: same outputs? how fast?

The exported projection step (the CPU graph, LayerNorm whole) runs on ONNX Runtime (the node's
setting: one thread, spinning off) and on OpenVINO's CPU plugin in float32, one thread, with the
batch dimension dynamic (one compiled model for every person count, as a node needs) and static
(one compiled model per batch size). Per batch: the largest output difference to ONNX Runtime
and the median time of one step, interleaved in one run, as a ratio to ONNX Runtime's.

OpenVINO 2026.4's CPU plugin computes this graph's gradient wrong (it multiplies by a Linear's
weight where the backward pass has its transpose); folding each Transpose of a constant into a
new constant first (:func:`fold_constant_transposes`) makes it match. Both are measured.

Usage: pip install openvino; python tools/openvino_ratio.py [--batches 1,4,16,64] [--reps 300]
"""

from __future__ import annotations

import argparse

import numpy as np
import onnxruntime as ort
import openvino as ov
from openvino import opset13

from pads_stream.api import load_model
from pads_stream.common.timing import interleaved_medians
from pads_stream.runtime.stepgraph import read_manifest


def fold_constant_transposes(model: ov.Model) -> ov.Model:
    """Replace each Transpose of a constant by a new constant holding the transposed array."""
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Transpose":
            continue
        src, perm = (op.input_value(i).get_node() for i in (0, 1))
        if src.get_type_name() == "Constant" and perm.get_type_name() == "Constant":
            folded = opset13.constant(np.ascontiguousarray(np.transpose(src.get_data(), perm.get_data())))
            for target in op.output(0).get_target_inputs():
                target.replace_source_output(folded.output(0))
    return model


def feeds_for(batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "x_t": rng.standard_normal((batch, 17, 3)).astype(np.float32),
        "rays": rng.normal(0, 0.2, (batch, 17, 2)).astype(np.float32),
        "root": np.tile([0.0, 0.0, 5.0], (batch, 1)).astype(np.float32),
        "weights": np.ones((batch, 17), np.float32),
        "t": np.array([300.0], np.float32),
        "alpha": np.array([0.5], np.float32),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="1,4,16,64")
    parser.add_argument("--reps", type=int, default=300)
    args = parser.parse_args()
    model = load_model(backend="onnxruntime", threads=1)
    folder, manifest = read_manifest(model.name, model.model_hash)
    path = str(folder / manifest["cpu_graphs"]["projection"])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1}

    def compiled(feeds: dict[str, np.ndarray] | None, fold: bool):
        m = core.read_model(path)
        if fold:
            fold_constant_transposes(m)
        if feeds is not None:
            m.reshape({k: list(v.shape) for k, v in feeds.items()})
        return core.compile_model(m, "CPU", config).create_infer_request()

    dynamic = {fold: compiled(None, fold) for fold in (False, True)}
    print(f"OpenVINO {ov.__version__}, ONNX Runtime {ort.__version__}, one thread each, float32\n")
    print("| batch | variant | largest grad difference | step ms | × ONNX Runtime |")
    print("|---|---|---|---|---|")
    for batch in (int(b) for b in args.batches.split(",")):
        feeds = feeds_for(batch, np.random.default_rng(batch))
        static = compiled(feeds, True)
        variants = {
            "onnxruntime": lambda f=feeds: session.run(["x0", "grad"], f),
            "openvino dynamic, as read": lambda f=feeds: dynamic[False].infer(f),
            "openvino dynamic, transposes folded": lambda f=feeds: dynamic[True].infer(f),
            "openvino static, transposes folded": lambda f=feeds, r=static: r.infer(f),
        }
        ref = variants["onnxruntime"]()[1]
        diff = {k: float(np.abs(np.asarray(run()["grad"]) - ref).max()) for k, run in list(variants.items())[1:]}
        times = interleaved_medians(variants, args.reps)
        for k, t in times.items():
            d = "—" if k == "onnxruntime" else f"{diff[k]:.2e}"
            print(f"| {batch} | {k} | {d} | {1000 * t:.3f} | {t / times['onnxruntime']:.2f} |")


if __name__ == "__main__":
    main()
