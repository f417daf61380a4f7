import msgpack
import numpy as np
import pytest

from pads_stream.camera import normalized_rays
from pads_stream.rootfind import initial_root, solve_root
from pads_stream.wire import Kp2dFrame, WireError, camera_message, decode, decode_inbound, encode, kp2d_message

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
    with pytest.raises(WireError, match="depth"):
        decode_inbound(good(persons=person(root=[0.0, 0.0, -1.0])))
    with pytest.raises(WireError) as err:
        decode_inbound(good(persons=[{"id": k, "kp": np.ones((17, 3)).tolist()} for k in range(65)]))
    assert err.value.kind == "too_large"
    with pytest.raises(WireError, match="does not match"):
        decode_inbound([b"kp2d/other", good()[1]])


def test_root_from_pose_is_exact_and_body_size_guess_is_close(test_set):
    n = 500
    rays = normalized_rays(test_set["kp2d"][:n].astype(float), test_set["K"][:n].astype(float))[..., :2]
    conf = np.ones((n, 17))
    root = test_set["root"][:n].astype(float)
    np.testing.assert_allclose(solve_root(test_set["gt"][:n].astype(float), rays, conf), root, atol=1e-3)
    guess = initial_root(rays, conf)
    ratio = guess[:, 2] / root[:, 2]
    assert abs(np.median(ratio) - 1) < 0.1 and np.percentile(np.abs(ratio - 1), 90) < 0.2
    conf[:, [13, 16]] = 0.0  # wrists missing still works
    assert np.all(np.isfinite(initial_root(rays, conf)))
