"""The exported step: its graph against TensorRT 10's parser table, parity of the ONNX Runtime
backend with torch through the whole sampler, manifests, and TensorRT where it exists."""

import dataclasses
import json

import numpy as np
import onnx
import pytest
from onnx import helper

from pads_stream.api import load_model
from pads_stream.backends import BackendUnavailable, engines_root
from pads_stream.export import INPUTS, OPSET, build_manifest, export_onnx, trt_problems
from pads_stream.tensorrt_engine import unavailable_reason


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp("engines")
    monkeypatch_module.setenv("PADS_STREAM_ENGINES", str(root))
    model = load_model(tiny_checkpoint, backend="torch")
    folder = root / tiny_checkpoint.stem
    graphs = {g: export_onnx(model, folder / f"step_{g}.onnx", g).name for g in ("dps", "cheap")}
    manifest = build_manifest(model, graphs, OPSET, "fp32", 256)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_graph_is_within_tensorrt_support(exported):
    for name in ("step_dps.onnx", "step_cheap.onnx"):
        model = onnx.load(str(exported / name))
        onnx.checker.check_model(model)
        assert model.opset_import[0].version == OPSET
        assert [i.name for i in model.graph.input] == list(INPUTS)
        batch = {
            i.type.tensor_type.shape.dim[0].dim_param
            for i in model.graph.input
            if len(i.type.tensor_type.shape.dim) > 1
        }
        assert len(batch) == 1 and batch != {""}  # one dynamic batch dimension shared by all batched inputs
        assert "LayerNormalization" not in {n.op_type for n in model.graph.node}
        assert trt_problems(model) == []


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


@pytest.mark.parametrize("guidance", ["dps", "cheap"])
@pytest.mark.parametrize("batch", [1, 3, 64])
def test_onnxruntime_matches_torch_through_the_sampler(exported, tiny_checkpoint, test_set, batch, guidance):
    ref = load_model(tiny_checkpoint, backend="torch")
    ort_model = load_model(tiny_checkpoint, backend="onnxruntime")
    for m in (ref, ort_model):
        m.sampler = dataclasses.replace(m.sampler, guidance=guidance, eta=0.3, rho=2.0)
    kp, K, root, conf = (
        test_set["kp2d_det"][:batch],
        test_set["K"][:batch],
        test_set["root"][:batch],
        test_set["conf_det"][:batch],
    )
    a = ref.estimate(kp, K, root, conf, steps=10, seed=3)
    b = ort_model.estimate(kp, K, root, conf, steps=10, seed=3)
    assert np.abs(a - b).max() <= 1e-4  # metres


def test_auto_prefers_the_exported_graph_on_cpu(exported, tiny_checkpoint):
    assert load_model(tiny_checkpoint, backend="auto").backend.name in ("onnxruntime", "tensorrt")


def test_stale_manifest_is_refused(exported, tiny_checkpoint, tmp_path, monkeypatch):
    folder = tmp_path / tiny_checkpoint.stem
    folder.mkdir()
    manifest = json.loads((exported / "manifest.json").read_text())
    manifest["model"]["hash"] = "0" * 16
    (folder / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("PADS_STREAM_ENGINES", str(tmp_path))
    assert engines_root() == tmp_path
    with pytest.raises(BackendUnavailable, match="re-run `pads-stream export"):
        load_model(tiny_checkpoint, backend="onnxruntime")
    assert load_model(tiny_checkpoint, backend="auto").backend.name == "torch"  # falls back, still works


def test_missing_export_is_refused_with_the_command(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("PADS_STREAM_ENGINES", str(tmp_path))
    with pytest.raises(BackendUnavailable, match="no exported model"):
        load_model(tiny_checkpoint, backend="onnxruntime")


TRT_REASON = unavailable_reason()


@pytest.mark.skipif(TRT_REASON is not None, reason=f"TensorRT engine tests need TensorRT and a GPU: {TRT_REASON}")
def test_tensorrt_engine_matches_torch(exported, tiny_checkpoint, test_set):
    from pads_stream.tensorrt_engine import build_engines

    manifest = json.loads((exported / "manifest.json").read_text())
    manifest["engines"], reason = build_engines(exported, manifest["graph"]["files"], "fp32", 64, 8)
    assert reason is None
    (exported / "manifest.json").write_text(json.dumps(manifest))
    ref = load_model(tiny_checkpoint, backend="torch")
    trt = load_model(tiny_checkpoint, backend="tensorrt")
    kp, K, root = test_set["kp2d"][:16], test_set["K"][:16], test_set["root"][:16]
    assert np.abs(ref.estimate(kp, K, root, steps=10) - trt.estimate(kp, K, root, steps=10)).max() <= 1e-3


def test_tensorrt_backend_says_why_it_cannot_run(tiny_checkpoint):
    if TRT_REASON is None:
        pytest.skip("TensorRT and a GPU are present here")
    with pytest.raises(BackendUnavailable, match="TensorRT|GPU"):
        load_model(tiny_checkpoint, backend="tensorrt")
