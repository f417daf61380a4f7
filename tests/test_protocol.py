"""docs/protocol.md and docs/protocol.schema.json against the code: the schema validates what the
encoders and a live node send, the documented error kinds are the code's, the documented example
runs against a node, generated messages never get anything but a WireError from the decoder, and
a bounded fuzz run against a live node answers every bad message and stays finite."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import jsonschema
import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pads_stream.api import load_model
from pads_stream.apps import fuzz
from pads_stream.stream.wire import (
    DROP_KINDS,
    ERROR_KINDS,
    ROUTER_KINDS,
    WireError,
    camera_message,
    decode_inbound,
    kp2d_message,
)

from .conftest import ROOT
from .test_node import Harness, persons_of

SCHEMA = json.loads((ROOT / "docs" / "protocol.schema.json").read_text())
DOC = (ROOT / "docs" / "protocol.md").read_text()


def jsonable(value):
    """A msgpack payload as JSON Schema sees it: bin as a str of the same length, NaN as null."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def check(topic: str, payload: dict) -> None:
    name = {"kp2d": "kp2d", "camera": "camera_msg", "pose3d": "pose3d", "cluster": "cluster"}.get(
        topic.split("/")[0], topic
    )
    jsonschema.validate(jsonable(payload), {**SCHEMA, "$ref": f"#/$defs/{name}"})


def test_schema_describes_what_the_encoders_send():
    kp = np.random.default_rng(0).uniform(0, 1, (17, 3)).astype("<f4")
    kp[3] = [np.nan, np.nan, 0.0]
    for msg in (
        kp2d_message(
            "c",
            3,
            5,
            [{"id": 1, "kp": kp.tobytes()}, {"id": 2, "kp": kp.tolist(), "root": [0, 0, 4.0], "stature_m": 1.7}],
            camera={"K": fuzz.K, "dist": [0.1, 0, 0, 0, 0]},
        ),  # fmt: skip
        kp2d_message("c", None, 5, [], layout="coco17"),
        camera_message("c", np.array(fuzz.K)),
    ):
        check(msg[0].decode(), msgpack.unpackb(msg[1]))
    with pytest.raises(jsonschema.ValidationError):
        check("kp2d/c", msgpack.unpackb(kp2d_message("c", 3, 5, [{"id": 1, "kp": kp[:16].tolist()}])[1]))


def test_schema_describes_what_a_live_node_sends(test_set):
    h = Harness(load_model(), steps=2, status_period_s=0.05)
    try:
        out = h.exchange(h.frame("s", 0, persons_of(test_set, [0, 1], root=False), camera=True),
                         [b"kp2d/s", b"\x00\x01"], spins=8)  # fmt: skip
        topics = {t.split("/")[0] for t, _ in out}
        assert {"pose3d", "status", "error"} <= topics
        for topic, payload in out:
            check(topic, payload)
    finally:
        h.close()


def test_schema_layouts_are_the_layout_records():
    from pads_stream.geometry.layout import layouts

    layout = SCHEMA["$defs"]["kp2d"]["properties"]["layout"]
    assert layout["enum"] == list(layouts()) and layout["x-joints"] == {n: v.count for n, v in layouts().items()}
    for name, lay in layouts().items():
        assert f"`{name}`" in DOC.split("## Layouts")[1] and f"{lay.count} joints" in DOC.split("## Layouts")[1]


def test_documented_error_kinds_are_the_codes():
    documented = set(re.findall(r"^\| `([a-z_]+)` \| ", DOC.split("## Out: `error`")[1].split("##")[0], re.M))
    kinds = set(ERROR_KINDS) | set(DROP_KINDS) | set(ROUTER_KINDS)
    assert documented == kinds == set(SCHEMA["$defs"]["error"]["properties"]["kind"]["enum"])
    status = SCHEMA["$defs"]["status"]["properties"]
    assert set(status["errors"]["required"]) == set(ERROR_KINDS)
    assert set(status["dropped"]["required"]) == set(DROP_KINDS)


def test_the_documented_example_runs_against_a_node(tmp_path):
    code = DOC.split("```python\n")[-1].split("```")[0]
    inp, out = "tcp://127.0.0.1:5555", "tcp://127.0.0.1:5556"  # the example's endpoints
    node = subprocess.Popen([sys.executable, "-m", "pads_stream.cli", "node", "--in", inp.replace("127.0.0.1", "*"),
                             "--out", out.replace("127.0.0.1", "*")], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert node.stdout.readline().startswith("pads-stream node: in")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.startswith("pose3d/cam0"), result.stdout[-500:]
    finally:
        node.terminate()
        assert node.wait(timeout=30) == 0


json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.binary(max_size=300),
)  # fmt: skip
json_any = st.recursive(
    json_leaf, lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=8), c, max_size=5), max_leaves=30
)
FIELDS = ["v", "stream", "frame", "t_ns", "layout", "camera", "persons"]
PERSON_FIELDS = ["id", "kp", "root", "stature_m"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS + PERSON_FIELDS), value=json_any, topic=st.sampled_from(["kp2d/s", "camera/s"]))
def test_decoder_gives_only_wire_errors_on_generated_fields(field, value, topic):
    payload = msgpack.unpackb(
        fuzz.kp2d("s", 1, [{"id": 0, "kp": fuzz.person_kp(np.random.default_rng(0)).tolist()}])[1]
    )
    if field in PERSON_FIELDS:
        payload["persons"][0][field] = value
    else:
        payload[field] = value
    try:
        msg = decode_inbound([topic.encode(), msgpack.packb(payload, use_bin_type=True)])
    except WireError as err:
        assert err.kind in ERROR_KINDS and len(err.reason) <= 200
        return
    for person in getattr(msg, "persons", ()):  # what passes is finite where used
        assert np.isfinite(person.kp[person.conf > 0]).all() and np.abs(person.kp).max() <= 1e6
        assert person.stature_m is None or 0.5 <= person.stature_m <= 2.5


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=600), frames=st.integers(0, 4))
def test_decoder_gives_only_wire_errors_on_generated_bytes(payload, frames):
    try:
        decode_inbound([b"kp2d/s", payload] + [b""] * max(0, frames - 2) if frames >= 2 else [payload][:frames])
    except WireError as err:
        assert err.kind in ERROR_KINDS


def test_bounded_fuzz_against_a_live_node(tmp_path):
    """A live node process (shipped model, ONNX Runtime): every bad message answered, finite
    outputs, valid streams answered, exit code 0 after the run."""
    inp, out = f"ipc://{tmp_path}/in", f"ipc://{tmp_path}/out"
    node = subprocess.Popen([sys.executable, "-m", "pads_stream.cli", "node", "--in", inp, "--out", out],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert node.stdout.readline().startswith("pads-stream node: in")
        r = fuzz.run(inp, out, messages=3000, bad_rate=300, streams=2, fps=10, pid=node.pid)
        assert node.poll() is None
        assert r["nonfinite_outputs"] == 0
        # Each bad message gives at least one error, and every error is published. Counts allow a few
        # messages lost in ZeroMQ's queues when both cores are busy: the claim is the behaviour, not
        # a perfect count (`pads-stream fuzz` reports the exact figures of a run).
        counted = sum(r["errors_counted_by_node"].values())
        received = sum(r["errors_received"].values())
        assert counted >= 0.95 * r["messages"] and r["errors_unsent"] == 0
        assert 0.95 * counted <= received <= counted + 10  # +: errors published after the last status
        assert r["valid_answered"] >= 0.9 * r["valid_sent"]  # a pose3d or a drop notice
    finally:
        node.terminate()
        assert node.wait(timeout=30) == 0
    time.sleep(0.1)
