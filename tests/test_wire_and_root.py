import dataclasses

import msgpack
import numpy as np
import pytest

from pads_stream.geometry.camera import normalized_rays
from pads_stream.geometry.rootfind import bone_scale, initial_root
from pads_stream.stream.wire import Kp2dFrame, WireError, camera_message, decode, decode_inbound, encode, kp2d_message

K = [[1145.0, 0.0, 512.0], [0.0, 1145.0, 515.0], [0.0, 0.0, 1.0]]


def test_round_trip_nested_list_and_raw_bytes():
    kp = np.random.default_rng(0).uniform(0, 1, (17, 3)).astype("<f4")
    msg = kp2d_message("cam0", 7, 123, [{"id": 1, "kp": kp.tobytes(), "root": [0, 0, 4]}, {"id": 2, "kp": kp.tolist()}],
                       camera={"K": K, "dist": [0.1, 0, 0, 0, 0]})  # fmt: skip
    assert msg[0] == b"kp2d/cam0"
    frame = decode_inbound(msg)
    assert isinstance(frame, Kp2dFrame) and frame.frame == 7 and frame.t_ns == 123
    np.testing.assert_allclose(frame.persons[0].kp, kp[:, :2], rtol=1e-6)
    np.testing.assert_allclose(frame.persons[1].conf, kp[:, 2], rtol=1e-6)
    assert frame.persons[1].root is None and frame.camera is not None and frame.camera.dist is not None
    cam = decode_inbound(camera_message("cam0", np.array(K)))
    np.testing.assert_array_equal(cam.camera.K, K)
    topic, payload = decode(encode("status", {"a": [1, 2]}))
    assert topic == "status" and payload == {"a": [1, 2]}


def good(**change):
    payload = {"v": 1, "stream": "s", "frame": 1, "t_ns": 5, "layout": "h36m17", "camera": {"K": K},
               "persons": [{"id": 0, "kp": np.ones((17, 3)).tolist(), "root": [0.0, 0.0, 4.0]}]}  # fmt: skip
    payload.update(change)
    return [b"kp2d/s", msgpack.packb(payload)]


def person(**change):
    p = {"id": 0, "kp": np.ones((17, 3)).tolist(), "root": [0.0, 0.0, 4.0]}
    p.update(change)
    return [p]


nan_kp = np.ones((17, 3))
nan_kp[4, 0] = np.nan
MALFORMED = {
    "not_msgpack": [b"kp2d/s", b"\xc1\xc1 definitely not msgpack"],
    "frames": [b"kp2d/s"],
    "version": good(v=2),
    "layout": good(layout="openpose25"),
    "schema": good(frame="12"),
    "shape": good(persons=person(kp=np.ones((16, 3)).tolist())),
    "value": good(persons=person(kp=nan_kp.tolist())),
    "camera": good(camera={"K": np.zeros((3, 3)).tolist()}),
    "too_large": [b"kp2d/s", b"\x00" * (2 << 20)],
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_messages_raise_with_a_kind(kind):
    with pytest.raises(WireError) as err:
        decode_inbound(MALFORMED[kind])
    assert err.value.kind == kind


def test_depth_and_huge_person_lists_are_rejected():
    with pytest.raises(WireError, match="0 < Z"):
        decode_inbound(good(persons=person(root=[0.0, 0.0, -1.0])))
    with pytest.raises(WireError) as err:
        decode_inbound(good(persons=[{"id": k, "kp": np.ones((17, 3)).tolist()} for k in range(65)]))
    assert err.value.kind == "too_large"
    with pytest.raises(WireError, match="does not match") as err:
        decode_inbound([b"kp2d/other", good()[1]])
    assert err.value.kind == "topic"


def nested(depth: int) -> dict:
    value: dict = {"x": 1}
    for _ in range(depth):
        value = {"x": value}
    return value


huge_kp = np.ones((17, 3))
huge_kp[3, 0] = 1e300  # finite in float64, infinite in float32
# Issue 9's findings, each with the kind docs/protocol.md gives it.
HOSTILE = {
    "nested v": (good(v=nested(500)), "not_msgpack"),
    "nested layout": (good(layout=nested(900)), "not_msgpack"),
    "joint at 1e300": (good(persons=person(kp=huge_kp.tolist())), "value"),
    "root z 1e300": (good(persons=person(root=[0.0, 0.0, 1e300])), "value"),
    "K diagonal 1e300": (good(camera={"K": [[1e300, 0, 1], [0, 1e300, 1], [0, 0, 1]]}), "camera"),
    "empty map": ([b"kp2d/s", msgpack.packb({})], "schema"),
    "v nil": (good(v=None), "schema"),
    "10,000 persons": (good(persons=[{"id": k, "kp": b""} for k in range(10000)]), "too_large"),
    "kp2d payload on camera topic": ([b"camera/s", good()[1]], "topic"),
    "layout not a string": (good(layout=[1, 2]), "schema"),
    "stream not a string": (good(stream={"a": 1}), "schema"),
    "1 MB stream name": (good(stream="x" * 1_000_000), "schema"),
    # Issue 15, part 3: each case as docs/protocol.md states it (a client of another language found them).
    "topic pose3d/x": ([b"pose3d/x", good()[1]], "topic"),
    "topic status": ([b"status", good()[1]], "topic"),
    "topic kp2d without slash": ([b"kp2d", good()[1]], "topic"),
    "empty topic": ([b"", good()[1]], "topic"),
    "frame missing": (
        [b"kp2d/s", msgpack.packb({k: v for k, v in msgpack.unpackb(good()[1]).items() if k != "frame"})],
        "schema",
    ),  # fmt: skip
    "v true": (good(v=True), "schema"),
    "v 1.0": (good(v=1.0), "schema"),
    "v 2": (good(v=2), "version"),
    "boolean kp": (good(persons=person(kp=np.full((17, 3), True).tolist())), "schema"),
    "boolean K entry": (good(camera={"K": [[True, 0, 1], [0, 1.0, 1], [0, 0, 1]]}), "schema"),
    "frame true": (good(frame=True), "schema"),
    "t_ns true": (good(t_ns=True), "schema"),
    "id true": (good(persons=person(id=True)), "schema"),
    "kp missing": (good(persons=[{"id": 0}]), "schema"),
    "kp a string": (good(persons=person(kp="x")), "schema"),
    "a joint with 2 values": (good(persons=person(kp=np.ones((17, 2)).tolist())), "shape"),
    "one joint with 2 values": (good(persons=person(kp=[[1.0, 1.0], *np.ones((16, 3)).tolist()])), "shape"),
    "kp a number": (good(persons=person(kp=3.0)), "shape"),
    "camera message without camera": ([b"camera/s", msgpack.packb({"v": 1, "stream": "s"})], "schema"),
    "camera not a map": (good(camera=[1, 2]), "schema"),
    "camera without K": (good(camera={"dist": [0, 0, 0, 0, 0]}), "schema"),
    "R without t": (good(camera={"K": K, "R": np.eye(3).tolist()}), "schema"),
    "R not a rotation": (good(camera={"K": K, "R": (2 * np.eye(3)).tolist(), "t": [0, 0, 0]}), "camera"),
    "t beyond 1e4 m": (good(camera={"K": K, "R": np.eye(3).tolist(), "t": [0, 0, 2e4]}), "camera"),
    "rig not a string": (good(camera={"K": K, "R": np.eye(3).tolist(), "t": [0, 0, 0], "rig": 7}), "schema"),
    "rig name empty": (good(camera={"K": K, "R": np.eye(3).tolist(), "t": [0, 0, 0], "rig": ""}), "schema"),
    "rig_ids a number": (
        good(camera={"K": K, "R": np.eye(3).tolist(), "t": [0, 0, 0], "rig": "r", "rig_ids": 1}),
        "schema",
    ),
    "repeated person id": (good(persons=person() + person()), "value"),
    "K transposed": (good(camera={"K": np.array(K).T.tolist()}), "camera"),
    "nested 1000 deep in frame": (good(frame=nested(1000)), "not_msgpack"),
    "nested 1000 deep in camera": (good(camera=nested(1000)), "not_msgpack"),
    "nested 1000 deep in K": (good(camera={"K": nested(1000)}), "not_msgpack"),
    # Issue 27: a person's stature (metres) sizes an estimated root
    "stature a string": (good(persons=person(stature_m="1.7")), "schema"),
    "stature true": (good(persons=person(stature_m=True)), "schema"),
    "stature an array": (good(persons=person(stature_m=[1.7])), "shape"),
    "stature NaN": (good(persons=person(stature_m=float("nan"))), "value"),
    "stature 1e300": (good(persons=person(stature_m=1e300)), "value"),
    "stature in millimetres": (good(persons=person(stature_m=1750)), "value"),
    "stature 0": (good(persons=person(stature_m=0.0)), "value"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_fields_get_their_documented_kind_and_a_short_reason(case):
    frames, kind = HOSTILE[case]
    with pytest.raises(WireError) as err:
        decode_inbound(frames)
    assert err.value.kind == kind
    assert len(err.value.reason) <= 200  # never echoes the input


def test_a_stature_is_read_in_metres_and_may_be_nil():
    (p,) = decode_inbound(good(persons=person(stature_m=1.62))).persons
    assert p.stature_m == pytest.approx(1.62)
    assert decode_inbound(good(persons=person(stature_m=None))).persons[0].stature_m is None
    assert decode_inbound(good(persons=person(stature_m=2))).persons[0].stature_m == 2.0  # an int is a number
    assert decode_inbound(good()).persons[0].stature_m is None


def test_frame_may_be_nil():
    assert decode_inbound(good(frame=None)).frame is None


def test_unseen_keypoints_may_be_nil_or_nan():
    """The schema allows nil (and NaN) x, y where the confidence is 0; elsewhere nil is no number."""
    kp = np.ones((17, 3)).tolist()
    kp[4] = [None, None, 0.0]
    kp[5] = [float("nan"), float("nan"), 0.0]
    frame = decode_inbound(good(persons=person(kp=kp)))
    assert frame.persons[0].conf[4] == 0 and np.all(np.isfinite(frame.persons[0].kp))
    kp[6] = [None, None, 1.0]
    with pytest.raises(WireError) as err:
        decode_inbound(good(persons=person(kp=kp)))
    assert err.value.kind == "value"
    with pytest.raises(WireError) as err:
        decode_inbound(good(persons=person(root=[None, 0.0, 4.0])))
    assert err.value.kind == "schema"


def test_binary_arrays_are_read_wherever_the_schema_allows_them():
    f32 = lambda a: np.asarray(a, "<f4").tobytes()  # noqa: E731
    cam = {"K": f32(K), "dist": f32(np.zeros(5)), "R": f32(np.eye(3)), "t": f32([0.0, 0.0, 1.0])}
    frame = decode_inbound(good(camera=cam, persons=person(root=f32([0.0, 0.0, 4.0]))))
    np.testing.assert_array_equal(frame.camera.t, [0, 0, 1])
    np.testing.assert_array_equal(frame.persons[0].root, [0, 0, 4])


def test_body_size_guess_is_close_and_bone_scale_recovers_depth(test_set):
    n = 500
    rays = normalized_rays(test_set["kp2d"][:n].astype(float), test_set["K"][:n].astype(float))[..., :2]
    conf = np.ones((n, 17))
    root = test_set["root"][:n].astype(float)
    guess, ok = initial_root(rays, conf)
    assert ok.all()
    ratio = guess[:, 2] / root[:, 2]
    assert abs(np.median(ratio) - 1) < 0.1 and np.percentile(np.abs(ratio - 1), 90) < 0.2
    gt = test_set["gt"][:n].astype(float)
    # the true pose seen 20 % too far (scaled along the rays) is brought back by its bone lengths
    np.testing.assert_allclose(bone_scale(1.2 * gt, conf), 1 / 1.2, rtol=0.03)
    assert np.all(bone_scale(gt, np.zeros((n, 17))) == 1.0)  # nothing confident: unchanged
    conf[:, [13, 16]] = 0.0  # wrists missing still works
    assert np.all(np.isfinite(initial_root(rays, conf)[0]))


def test_root_finding_never_raises_on_degenerate_persons():
    """Issue 9, crash 1: one confident joint, or every joint on one pixel."""
    rays = np.zeros((3, 17, 2))
    rays[1] = np.random.default_rng(0).normal(0, 0.05, (17, 2))
    conf = np.zeros((3, 17))
    conf[0, 5] = 1.0  # one confident joint
    conf[1] = 1.0  # a normal person
    conf[2] = 1.0  # every joint on one pixel
    root, ok = initial_root(rays, conf)
    assert ok.tolist() == [False, True, False] and np.all(np.isfinite(root))
    scale = bone_scale(np.zeros((3, 17, 3)), conf)  # zero-length bones: no division by zero
    assert np.all(np.isfinite(scale))


def test_every_outbound_message_round_trips_through_its_encoder_and_decoder():
    """Issue 16: typed records both ways, an encoder beside each decoder."""
    from pads_stream.stream.wire import (
        ClusterStatus,
        ErrorMessage,
        Pose3d,
        PosePerson,
        RigView,
        Status,
        WorkerLoad,
        WorkerState,
        decode_cluster,
        decode_error,
        decode_heartbeat,
        decode_pose3d,
        decode_status,
        encode_cluster,
        encode_error,
        encode_heartbeat,
        encode_pose3d,
        encode_status,
    )

    rng = np.random.default_rng(0)
    rel = rng.normal(0, 0.3, (17, 3))
    rel[0] = 0
    root = np.array([0.1, -0.2, 4.0])
    people = (PosePerson(3, rel + root, root, rel, 1.5, rng.uniform(0, 1, 17), rel + [0, 0, 1]),
              PosePerson(-7, rel + root, root, rel, 0.0, np.ones(17)))  # fmt: skip
    msg = Pose3d("cam0", None, 12, 34, 56, people)
    frames = encode_pose3d(msg)
    assert frames[0] == b"pose3d/cam0"
    back = decode_pose3d(frames)
    assert (back.stream, back.frame, back.t_ns, back.t_recv_ns, back.t_pub_ns) == ("cam0", None, 12, 34, 56)
    for a, b in zip(back.persons, people, strict=True):
        assert a.id == b.id and a.reproj_px == b.reproj_px and (a.joints_world is None) == (b.joints_world is None)
        for key in ("joints", "root", "rel", "conf"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    views = (RigView("cam0", 3, True, np.eye(3), np.array([0.5, -1.0, 4.0])), RigView("cam1", None, False))
    rig = decode_pose3d(encode_pose3d(Pose3d("studio", 0, 12, 34, 56, people, views, "cam0")))
    assert [(v.stream, v.frame, v.used) for v in rig.views] == [("cam0", 3, True), ("cam1", None, False)]
    np.testing.assert_array_equal(rig.views[0].R, np.eye(3))
    np.testing.assert_array_equal(rig.views[0].t, [0.5, -1.0, 4.0])
    assert rig.views[1].R is None and rig.views[1].t is None  # a view without extrinsics: the keys are left out
    err = ErrorMessage("s", 4, 9, "no_joints", "x" * 300)
    assert decode_error(encode_error(err)) == ErrorMessage("s", 4, 9, "no_joints", "x" * 200)
    status = Status(1, 2, 3, {"stale": 0, "superseded": 1}, {"topic": 2}, 0, {"p50": 1.0, "p99": 2.0},
                    {"p50": 3.0, "p99": 4.0}, 5, 6, "onnxruntime", "abc", 7.5)  # fmt: skip
    assert decode_status(encode_status(status)) == status
    status = dataclasses.replace(status, busy=0.5, worker="w1")
    assert decode_status(encode_status(status)) == status
    load = WorkerLoad(123, 2, 3, 0.25, 10, 9)
    assert decode_heartbeat(encode_heartbeat(load)) == load and decode_heartbeat(encode_heartbeat(None)) is None
    workers = (WorkerState("w0", True, 2, 12.5, 1, 0, load, ("stream:a", "rig:b")),
               WorkerState("w1", False, 0, 900.0, 1, 1, None))  # fmt: skip
    cluster = ClusterStatus(workers, 100, 2, 3, 1, ("t+1.0 s w1 lost",), 4.5)
    assert decode_cluster(encode_cluster(cluster)) == cluster
    kp = rng.uniform(0, 500, (17, 3))
    kp[:, 2] = 1.0
    inbound = decode_inbound(
        kp2d_message("c", 1, 2, [{"id": 5, "kp": kp.tolist(), "root": [0, 0, 3.0]}], camera={"K": K})
    )
    np.testing.assert_array_equal(inbound.persons[0].kp, kp[:, :2])
    cam = decode_inbound(camera_message("c", np.array(K), R=np.eye(3), t=np.array([0, 0, 2.0])))
    np.testing.assert_array_equal(cam.camera.t, [0, 0, 2])
    with pytest.raises(WireError):
        decode_status(encode_error(err))


@pytest.mark.parametrize(
    ("floor", "kind"),
    [("x", "schema"), ([1.0, 2.0], "schema"), ({"height_m": "1.6"}, "schema"), ({"height_m": True}, "schema"),
     ({"height_m": [1.6]}, "shape")],
)  # fmt: skip
def test_a_pose3d_floor_decodes_to_numbers_or_is_refused(floor, kind):
    """A pose3d's floor is a map of names to numbers (listen formats them): anything else is a
    WireError of its kind, never a floor a consumer then trips over."""
    from pads_stream.stream.wire import Pose3d, PosePerson, decode_pose3d, encode_pose3d

    rel = np.zeros((17, 3))
    person = PosePerson(1, rel, np.zeros(3), rel, 0.0, np.ones(17))
    good = {"height_m": 1.6, "height_sd_m": 0.08, "pitch_deg": 12, "roll_deg": -0.5, "confidence": 0.7}
    assert decode_pose3d(encode_pose3d(Pose3d("c", 1, 1, 1, 1, (person,), floor=good))).floor == good
    topic, payload = encode_pose3d(Pose3d("c", 1, 1, 1, 1, (person,)))
    with pytest.raises(WireError) as err:
        decode_pose3d([topic, msgpack.packb({**msgpack.unpackb(payload), "floor": floor})])
    assert err.value.kind == kind


@pytest.mark.parametrize(
    "message, kind, words",
    [
        ([b"kp2d/s", msgpack.packb({1: 2, "v": 1})], "schema", "map key is not a string"),  # one msgpack object
        (good(persons=person(root=[0.0, 0.0, 4500.0])), "value", "millimetres"),
        (good(camera={"K": [[1e-30, 0, 0.5], [0, 1e-30, 0.5], [0, 0, 1]]}), "camera", "normalised"),
        (good(camera={"K": [[0.9, 0, 0.5], [0, 0.9, 0.5], [0, 0, 1]]}), "camera", "normalised"),
        ([b"", b""], "not_msgpack", "msgpack"),  # the payload is read before the topic (documented)
    ],
)
def test_reasons_say_what_is_wrong(message, kind, words):
    """Issue 28, item 3: each refusal's kind and reason name the actual mistake."""
    with pytest.raises(WireError) as err:
        decode_inbound(message)
    assert err.value.kind == kind and words in err.value.reason, err.value.reason


def test_a_focal_length_of_one_pixel_is_a_camera():
    frame = decode_inbound(good(camera={"K": [[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1]]}))
    assert frame.camera is not None and frame.camera.K[0, 0] == 1.0
