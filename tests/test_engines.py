"""The exported step graphs: their operators against TensorRT 10's parser table, parity of the
ONNX Runtime backend with torch through the whole sampler for every task, the manifest, the
ONNX Runtime path without torch, and TensorRT where it exists."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

from pads_stream.api import load_model
from pads_stream.common.files import engine_roots
from pads_stream.runtime.export import OPSET, export, trt_problems
from pads_stream.runtime.stepgraph import TASKS, BackendUnavailable
from pads_stream.runtime.tensorrt import unavailable_reason


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp("engines")
    monkeypatch_module.setenv("PADS_STREAM_ENGINES", str(root))
    folder = root / tiny_checkpoint.stem
    export(tiny_checkpoint, folder, precision="fp32", max_batch=256)
    return folder


def test_graphs_are_within_tensorrt_support(exported):
    manifest = json.loads((exported / "manifest.json").read_text())
    assert set(manifest["graphs"]) == set(TASKS)
    for task, name in manifest["graphs"].items():
        model = onnx.load(str(exported / name))
        onnx.checker.check_model(model)
        assert model.opset_import[0].version == OPSET
        assert [i.name for i in model.graph.input] == list(TASKS[task].inputs)
        assert [o.name for o in model.graph.output] == ["x0", "grad"]
        batch = {
            i.type.tensor_type.shape.dim[0].dim_param
            for i in model.graph.input
            if len(i.type.tensor_type.shape.dim) > 1
        }
        assert len(batch) == 1 and batch != {""}  # one dynamic batch dimension shared by all batched inputs
        assert "LayerNormalization" not in {n.op_type for n in model.graph.node}
        assert trt_problems(model) == []


def test_manifest_carries_what_the_runtime_needs(exported, tiny_checkpoint):
    manifest = json.loads((exported / "manifest.json").read_text())
    torch_model = load_model(tiny_checkpoint, backend="torch")
    assert manifest["model"]["scale"] == pytest.approx(torch_model.scale)
    assert manifest["model"]["hash"] == torch_model.model_hash
    ort_model = load_model(tiny_checkpoint, backend="onnxruntime")
    assert ort_model.sampler == torch_model.sampler
    np.testing.assert_array_equal(ort_model.abar, torch_model.abar)


def test_trt_check_catches_what_the_parser_refuses():
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])
    axes = helper.make_tensor_value_info("axes", onnx.TensorProto.INT64, [1])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4])
    nodes = [
        helper.make_node("Bernoulli", ["x"], ["b"], name="bern"),
        helper.make_node("ReduceSum", ["b", "axes"], ["y"], name="sum"),
    ]
    model = helper.make_model(helper.make_graph(nodes, "g", [x, axes], [y]))
    problems = trt_problems(model)
    assert any("Bernoulli is not supported" in p for p in problems)
    assert any("ReduceSum axes input is not a constant" in p for p in problems)


@pytest.mark.parametrize("batch", [1, 3, 64])
def test_onnxruntime_matches_torch_through_the_sampler(exported, tiny_checkpoint, test_set, batch):
    ref = load_model(tiny_checkpoint, backend="torch")
    ort_model = load_model(tiny_checkpoint, backend="onnxruntime")
    kp, K, root, conf = (test_set[k][:batch] for k in ("kp2d_det", "K", "root", "conf_det"))
    for m in (ref, ort_model):
        assert m.sampler.solver == "dpm2m" and m.sampler.rho > 0  # the shipped kind of run, guided
    a = ref.estimate(kp, K, root, conf, steps=10)
    b = ort_model.estimate(kp, K, root, conf, steps=10)
    assert np.abs(a - b).max() <= 1e-4  # metres
    a, ra = ref.estimate(kp, K, None, conf, steps=10, return_root=True)  # root estimated: same path
    b, rb = ort_model.estimate(kp, K, None, conf, steps=10, return_root=True)
    assert np.abs(a - b).max() <= 1e-4 and np.abs(ra - rb).max() <= 1e-4
    gt = test_set["gt"][:batch]
    assert np.abs(ref.denoise(gt, steps=5) - ort_model.denoise(gt, steps=5)).max() <= 1e-4
    mask = np.ones((batch, 17), bool)
    mask[:, 11:14] = False
    partial = np.where(mask[..., None], gt, np.nan)
    assert np.abs(ref.complete(partial, mask, steps=5) - ort_model.complete(partial, mask, steps=5)).max() <= 1e-4
    assert np.abs(ref.generate(batch, steps=5) - ort_model.generate(batch, steps=5)).max() <= 1e-4


def test_rig_graph_matches_torch_through_the_sampler(exported, tiny_checkpoint, rig_views):
    ref = load_model(tiny_checkpoint, backend="torch")
    ort_model = load_model(tiny_checkpoint, backend="onnxruntime")
    v = rig_views
    for views in ([0, 1, 2, 3], [1, 3]):
        args = (v["kp2d_det"][views], v["K"][views], v["R"][views], v["t"][views])
        a = ref.estimate_rig(*args, conf=v["conf_det"][views], steps=10)
        b = ort_model.estimate_rig(*args, conf=v["conf_det"][views], steps=10)
        assert np.abs(a - b).max() <= 1e-4  # metres


def test_the_cpu_graphs_keep_layer_norm_whole_and_match_the_portable_ones(exported, tiny_checkpoint, test_set):
    """Issue 18: ONNX Runtime on a CPU runs graphs with native LayerNormalization (faster there, not
    parsable by TensorRT) with the outputs of the TensorRT-parsable ones."""
    import copy

    from pads_stream.runtime.backends import OnnxRuntimeBackend

    manifest = json.loads((exported / "manifest.json").read_text())
    assert set(manifest["cpu_graphs"]) == set(TASKS)
    for task, name in manifest["cpu_graphs"].items():
        ops = {n.op_type for n in onnx.load(str(exported / name)).graph.node}
        assert "LayerNormalization" in ops, task
        assert "LayerNormalization" not in {
            n.op_type for n in onnx.load(str(exported / manifest["graphs"][task])).graph.node
        }
    cpu = load_model(tiny_checkpoint, backend="onnxruntime")
    portable = load_model(tiny_checkpoint, backend="onnxruntime")
    without = copy.deepcopy(portable.backend.manifest)
    without.pop("cpu_graphs")
    portable.backend = OnnxRuntimeBackend(portable.backend.folder, without)
    kp, K, root, conf = (test_set[k][:16] for k in ("kp2d_det", "K", "root", "conf_det"))
    assert np.abs(cpu.estimate(kp, K, root, conf) - portable.estimate(kp, K, root, conf)).max() <= 1e-4
    assert cpu.backend.session("projection")._model_path.endswith(".cpu.onnx")


def test_onnxruntime_path_runs_without_torch(exported, tiny_checkpoint):
    """What `pip install pads-stream` (no extras) gives: the API must not import torch."""
    code = f"""
import sys
sys.modules["torch"] = None  # any import of torch now raises ImportError
import numpy as np
import pads_stream
m = pads_stream.load_model({str(tiny_checkpoint)!r})
assert m.backend.name == "onnxruntime", m.backend.name
K = np.array([[1000.0, 0, 500], [0, 1000, 500], [0, 0, 1]])
kp = 500 + 40 * np.random.default_rng(0).standard_normal((2, 17, 2))
x = m.estimate(kp, K, None, steps=4)
assert x.shape == (2, 17, 3) and np.isfinite(x).all()
print("ok")
"""
    env = {"PADS_STREAM_ENGINES": str(engine_roots()[0]), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_auto_prefers_the_exported_graph_on_cpu(exported, tiny_checkpoint):
    assert load_model(tiny_checkpoint, backend="auto").backend.name in ("onnxruntime", "tensorrt")


def test_stale_manifest_is_refused(exported, tiny_checkpoint, tmp_path, monkeypatch):
    folder = tmp_path / tiny_checkpoint.stem
    folder.mkdir()
    manifest = json.loads((exported / "manifest.json").read_text())
    manifest["model"]["hash"] = "0" * 16
    (folder / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("PADS_STREAM_ENGINES", str(tmp_path))
    assert engine_roots() == [tmp_path]
    with pytest.raises(BackendUnavailable, match="re-run `pads-stream export"):
        load_model(tiny_checkpoint, backend="onnxruntime")
    with pytest.warns(RuntimeWarning, match="re-run `pads-stream export"):  # falls back, says why
        assert load_model(tiny_checkpoint, backend="auto").backend.name == "torch"


def test_missing_export_is_refused_with_the_command(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("PADS_STREAM_ENGINES", str(tmp_path))
    with pytest.raises(BackendUnavailable, match="no exported model"):
        load_model(tiny_checkpoint, backend="onnxruntime")


TRT_REASON = unavailable_reason()


@pytest.mark.skipif(TRT_REASON is not None, reason=f"TensorRT engine tests need TensorRT and a GPU: {TRT_REASON}")
def test_tensorrt_engine_matches_torch(exported, tiny_checkpoint, test_set, rig_views):
    from pads_stream.runtime.tensorrt import build_engines

    manifest = json.loads((exported / "manifest.json").read_text())
    manifest["engines"], reason = build_engines(exported, manifest["graphs"], "fp32", 64, 8)
    assert reason is None
    (exported / "manifest.json").write_text(json.dumps(manifest))
    ref = load_model(tiny_checkpoint, backend="torch")
    trt = load_model(tiny_checkpoint, backend="tensorrt")
    kp, K, root = test_set["kp2d"][:16], test_set["K"][:16], test_set["root"][:16]
    assert np.abs(ref.estimate(kp, K, root, steps=10) - trt.estimate(kp, K, root, steps=10)).max() <= 1e-3
    v = rig_views
    args = (v["kp2d_det"], v["K"], v["R"], v["t"], v["conf_det"])
    assert np.abs(ref.estimate_rig(*args) - trt.estimate_rig(*args)).max() <= 1e-3


def test_tensorrt_backend_says_why_it_cannot_run(tiny_checkpoint):
    if TRT_REASON is None:
        pytest.skip("TensorRT and a GPU are present here")
    with pytest.raises(BackendUnavailable, match="TensorRT|GPU"):
        load_model(tiny_checkpoint, backend="tensorrt")


def test_a_reused_bound_step_takes_each_calls_inputs(exported, tiny_checkpoint, test_set):
    """ONNX Runtime keeps one IO-bound step per (graph, batch): a second batch of the same size must
    be estimated from its own inputs (a fresh backend for each gives the reference), and a third
    call with the first batch's inputs must repeat the first result."""
    kp, K, root, conf = (test_set[k][:8] for k in ("kp2d_det", "K", "root", "conf_det"))
    halves = [(kp[:4], K[:4], root[:4], conf[:4]), (kp[4:], K[4:], root[4:], conf[4:])]
    shared = load_model(tiny_checkpoint, backend="onnxruntime")
    got = [shared.estimate(*h, steps=4) for h in halves] + [shared.estimate(*halves[0], steps=4)]
    assert len(shared.backend.bound) == 1  # one step of 4 poses served all three calls
    fresh = [load_model(tiny_checkpoint, backend="onnxruntime").estimate(*h, steps=4) for h in halves]
    assert np.abs(got[0] - fresh[0]).max() <= 1e-6 and np.abs(got[1] - fresh[1]).max() <= 1e-6
    assert np.array_equal(got[0], got[2]) and np.abs(got[0] - got[1]).max() > 1e-3


def test_the_kept_steps_are_the_most_recently_used():
    """Bound ONNX Runtime steps and captured CUDA graphs are kept by key, the least recently used
    dropped beyond the limit; a kept one is handed back, not made again."""
    from pads_stream.common.recent import Recent

    made = []
    kept = Recent(2)
    for key in ("a", "b", "a", "c", "a", "b"):
        kept.get(key, lambda key=key: made.append(key) or key.upper())
    assert made == ["a", "b", "c", "b"]  # "b" was the least recently used when "c" came
    assert len(kept) == 2 and kept.get("a", lambda: "new") == ("A", False)
