"""Issue 33: a rig calibrated from one person walking (pads_stream.calibrate_rig), its file, the
``calibrate`` command, and a node that fuses a rig sent without extrinsics from that file."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

import pads_stream
from pads_stream.data import rig_files
from pads_stream.data.virtual_rig import detector_noise, load_rig
from pads_stream.data.walks import camera_views, foot_locked_path, place_walk
from pads_stream.geometry import epipolar
from pads_stream.geometry.skeleton import bone_lengths, stature_m
from pads_stream.stream.wire import kp2d_message

from .conftest import CAMERAS, H36M, SHARED

pytestmark = pytest.mark.skipif(not H36M.exists(), reason=f"needs the Human3.6M poses in {SHARED}")


def walk(subject_rig: str, seconds: float, offsets_s, seed: int = 0, detected: bool = True):
    """S8 walking (tuning data, never the test subjects) in a real rig: (rig, kp, conf, t_ns, height)."""
    poses = np.load(H36M, allow_pickle=True)["positions_3d"].item()["S8"]["walking_1"]
    rig = load_rig(str(CAMERAS), subject_rig)
    rng = np.random.default_rng(seed)
    world = place_walk(foot_locked_path(poses[: int(seconds * 25) + 50]), rig, rng)
    kp, t_ns, _ = camera_views(world, rig, np.asarray(offsets_s, float), np.zeros(4), int(seconds * 25))
    conf = None
    if detected:
        kp, conf = detector_noise(kp, rng)
    return rig, kp, conf, t_ns, float(stature_m(np.median(bone_lengths(world), axis=0)))


def relative_rotation_errors(cal, rig) -> np.ndarray:
    return np.array([epipolar.rotation_angle_deg((cal.R[v] @ cal.R[0].T) @ (rig.R[v] @ rig.R[0].T).T)
                     for v in range(1, len(rig.R))])  # fmt: skip


def test_a_walk_calibrates_the_rig_its_clocks_scale_and_floor():
    offsets = [0.0, 0.012, 0.031, 0.007]
    rig, kp, conf, t_ns, height = walk("S9", 10, offsets)
    t_ns = t_ns + 1_700_000_000_000_000_000  # epoch clocks
    cal = pads_stream.calibrate_rig(kp, rig.K, conf, t_ns, height_m=height)
    assert cal.state == ("ok",) * 4 and (cal.residual_px < 5).all()
    assert relative_rotation_errors(cal, rig).max() < 0.5  # degrees
    true_centres = -np.einsum("vji,vj->vi", rig.R, rig.t)
    dist = np.linalg.norm(true_centres[1:] - true_centres[0], axis=1)
    assert np.abs(np.linalg.norm(cal.centres[1:] - cal.centres[0], axis=1) / dist - 1).max() < 0.01  # the scale
    mid = int(t_ns[0, len(t_ns[0]) // 2])
    found_ms = np.array([cal.reference_ns(v, mid) - mid for v in range(4)]) / 1e6
    assert np.abs(found_ms - 1e3 * np.array(offsets)).max() < 3.0
    assert cal.world == "floor" and cal.floor_determined  # Z up: camera 0's up agrees with the truth's
    assert np.degrees(np.arccos((cal.R[0] @ [0, 0, 1.0]) @ (rig.R[0] @ [0, 0, 1.0]))) < 1.0
    assert abs(cal.centres[0, 2] - true_centres[0, 2]) < 0.05  # camera height above the floor, m
    # without the height: the mean adult's size, and an uncertainty that covers the error
    prior = pads_stream.calibrate_rig(kp, rig.K, conf, t_ns)
    err = np.median(np.linalg.norm(prior.centres[1:] - prior.centres[0], axis=1) / dist) - 1
    assert prior.scale_source == "prior" and abs(err) <= 2 * prior.scale_sd
    assert prior.scale_sd < 0.06  # a body of the mean adult's proportions: about one adult's 4 %
    # a measured distance between two cameras fixes the scale instead
    base = pads_stream.calibrate_rig(kp, rig.K, conf, t_ns, baseline_m=(0, 2, float(dist[1])))
    found = np.linalg.norm(base.centres[1:] - base.centres[0], axis=1)
    assert base.scale_source == "baseline" and abs(found[1] - dist[1]) < 1e-6 and np.abs(found / dist - 1).max() < 0.01


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: {**a, "kp2d": a["kp2d"][:1]}, "V >= 2"),
        (lambda a: {**a, "K": a["K"][:, :2]}, "intrinsics"),
        (lambda a: {**a, "conf": a["conf"] * 2}, r"\[0, 1\]"),
        (lambda a: {**a, "t_ns": a["t_ns"][:, ::-1].copy()}, "increasing"),
        (lambda a: {**a, "height_m": 175.0}, "stature in metres"),
        (lambda a: {**a, "baseline_m": (1, 1, 3.0)}, "i != j"),
        (lambda a: {**a, "baseline_m": (0, 1, float("nan"))}, "metres between"),
        (lambda a: {**a, "baseline_m": (0, 1, 3.0), "height_m": 1.7}, "not both"),
    ],
)
def test_bad_calibration_input_is_named(change, message):
    rig = load_rig(str(CAMERAS), "S9")
    kp = np.random.default_rng(0).uniform(0, 1000, (4, 60, 17, 2))
    args = {"kp2d": kp, "K": rig.K, "conf": np.ones(kp.shape[:3]), "t_ns": np.tile(np.arange(60) * 40_000_000, (4, 1))}
    with pytest.raises(ValueError, match=message):
        pads_stream.calibrate_rig(**change(args))


def test_pnp_places_a_camera_on_points_despite_outliers():
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, (500, 3)) + [0, 0, 5]
    R, t = epipolar.rotation_from_vector(np.array([0.1, 1.0, 0.05])), np.array([-3, 0.2, 3.0])
    p = X @ R.T + t
    x = p[:, :2] / p[:, 2:] + rng.normal(0, 3 / 1100, (500, 2))
    x[:50] += rng.uniform(-0.05, 0.05, (50, 2))  # 10 % far off
    Re, te = epipolar.pnp(X, x, np.ones(500), 1100.0, rng)
    assert epipolar.rotation_angle_deg(Re @ R.T) < 0.2 and np.abs(te - t).max() < 0.02


def test_the_command_writes_a_rig_file_the_node_reads(tmp_path):
    rig, kp, conf, t_ns, height = walk("S11", 8, [0.0, 0.0, 0.0, 0.0])
    rec = tmp_path / "walk.npz"
    np.savez(rec, kp2d=kp, K=rig.K, conf=conf, streams=np.array([f"cam{v}" for v in range(4)]))
    out = tmp_path / "studio.json"
    cmd = [sys.executable, "-m", "pads_stream.cli", "calibrate", "--rig", "studio", "--out", str(out)]
    run = subprocess.run([*cmd, "--from", str(rec), "--height", f"{height:.3f}"], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "cam3: ok" in run.stdout and "world floor" in run.stdout
    cams = rig_files.load(out)
    assert sorted(cams) == ["cam0", "cam1", "cam2", "cam3"] and cams["cam1"].rig == "studio"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "pads-stream-rig/1", "rig": "studio", "cameras": [{"stream": "c"}]}))
    with pytest.raises(ValueError, match="camera 0 is incomplete"):
        rig_files.load(bad)
    missing = subprocess.run([*cmd, "--from", str(tmp_path / "none.npz")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "pads-stream calibrate: --from" in missing.stderr
    unknown = subprocess.run([*cmd, "--from", str(rec), "--baseline", "cam0,cam9,3"], capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    assert unknown.returncode == 2 and "two of the rig's streams (cam0, cam1, cam2, cam3)" in unknown.stderr


def test_a_node_fuses_a_rig_sent_without_extrinsics_from_its_calibration(tmp_path):
    """The S11 rig calibrated from a walk, then V-H36M persons of S11 sent by its 4 cameras without
    R and t: the node fuses them with the file's extrinsics (camera-frame joints against the truth)."""
    from pads_stream.api import load_model
    from pads_stream.apps.recordings import from_test_set

    from .conftest import TEST_SET
    from .test_node import Harness, poses
    from .test_node_contract import errors, until

    rig, kp, conf, _, height = walk("S11", 8, [0.0] * 4, seed=1)
    cal = pads_stream.calibrate_rig(kp, rig.K, conf, height_m=height)
    path = tmp_path / "studio.json"
    rig_files.save(path, "studio", [f"cam{v}" for v in range(4)], rig.K, cal)
    rec = from_test_set(str(TEST_SET), 4, 1, 3, detected=False, rig=str(CAMERAS))  # streams 0-3: S11's cameras
    h = Harness(load_model(), steps=5, latency_budget_ms=60_000, rig_calibration=str(path), rig_autocalibrate_s=0)
    try:
        errs = []
        for f in range(3):
            t = 1_000_000_000 + f * 40_000_000
            kp = np.concatenate([rec.kp2d[:, f, 0], rec.conf[:, f, 0, :, None]], -1)  # (4, 17, 3): x, y, conf
            msgs = [kp2d_message(f"cam{s}", f, t, [{"id": 0, "kp": kp[s].tolist()}],
                                 camera={"K": rec.K[s, f].tolist(), "rig": "studio"}) for s in range(4)]  # fmt: skip
            out = until(h, lambda o: poses(o, "studio"), *msgs)
            (msg,) = poses(out, "studio")
            errs.append(msg["persons"][0]["joints"] - (rec.gt[0, f, 0] + rec.root[0, f, 0]))
        unknown = kp2d_message("other", 0, t, [], camera={"K": rec.K[0, 0].tolist(), "rig": "studio"})
        (err,) = errors(until(h, lambda o: errors(o, "camera"), unknown), "camera")
    finally:
        h.close()
    assert 1000 * np.linalg.norm(np.array(errs), axis=-1).mean() < 60  # mm, absolute in camera 0's frame
    assert "rig_calibration" in err["reason"]


@pytest.mark.parametrize("source", ["self", "file", "two people with the rig's ids"])
def test_a_rig_without_extrinsics_calibrates_itself_in_the_node_and_a_bumped_camera_is_replaced(source, tmp_path):
    """Four cameras of the S9 rig sent without R and t, one person walking (exact 2D, stamps at real
    time): the node answers ``calibrating`` while it collects 4 s, calibrates in a child process, fuses
    the rig (``file``: from a rig file instead); camera 2 then turns by 2°, and the node re-places it on
    its fused poses and says so (with the rig's own ids, also while two people walk)."""
    from pads_stream.api import load_model
    from pads_stream.geometry.epipolar import rotation_from_vector

    from .test_node import Harness, poses

    rig, kp, conf, _, height = walk("S9", 8, [0.0] * 4, detected=False)
    motion = np.load(H36M, allow_pickle=True)["positions_3d"].item()["S8"]["walking_1"][:700]
    world = place_walk(foot_locked_path(motion), rig, np.random.default_rng(2))
    people = [world]
    if source.startswith("two"):
        other = np.load(H36M, allow_pickle=True)["positions_3d"].item()["S8"]["walking_2"][:700]
        people.append(place_walk(foot_locked_path(other), rig, np.random.default_rng(3)) + [1.2, 0.0, 0.0])
    cfg = {"rig_autocalibrate_s": 4.0}
    if source == "file":
        path = tmp_path / "studio.json"
        rig_files.save(path, "studio", [f"cam{v}" for v in range(4)], rig.K,
                       pads_stream.calibrate_rig(kp, rig.K, conf, height_m=height))  # fmt: skip
        cfg = {"rig_autocalibrate_s": 0.0, "rig_calibration": str(path)}
    h = Harness(load_model(), steps=3, latency_budget_ms=60_000, status_period_s=0.2, **cfg)
    bumped, bumped_t = rig.R.copy(), rig.t.copy()  # camera 2 turned by 2° about its own centre
    turn = rotation_from_vector(np.radians([0.0, 2.0, 0.0]))
    bumped[2], bumped_t[2] = turn @ rig.R[2], turn @ rig.t[2]
    out, t0, k, bumped_at = [], time.time_ns(), 0, None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and k < len(world):
            R, t = (bumped, bumped_t) if bumped_at is not None else (rig.R, rig.t)
            persons = [[] for _ in range(4)]
            for m, walker in enumerate(people):
                uv = np.einsum("vij,jk->vik", R, walker[k].T).transpose(0, 2, 1) + t[:, None]
                uv = np.einsum("vij,vkj->vki", rig.K, uv)
                for v in range(4):
                    persons[v].append({"id": m, "kp": np.concatenate([uv[v, :, :2] / uv[v, :, 2:], np.ones((17, 1))],
                                                                     -1).tolist()})  # fmt: skip
            ids = {"rig_ids": True} if len(people) > 1 else {}
            cams = [{"K": rig.K[v].tolist(), "rig": "studio", **ids} for v in range(4)]
            msgs = [kp2d_message(f"cam{v}", k, t0 + k * 40_000_000, persons[v], camera=cams[v]) for v in range(4)]
            out += h.exchange(*msgs, spins=1)
            while time.time_ns() < t0 + (k + 1) * 40_000_000:
                out += h.exchange(spins=1)
            fused = poses(out, "studio")
            if bumped_at is None and len(fused) >= 60:
                bumped_at = k
            statuses = [p for t, p in out if t == "status"]
            if bumped_at is not None and any("cam2 moved" in e for e in statuses[-1]["events"]):
                break
            k += 1
    finally:
        h.close()
    statuses = [p for t, p in out if t == "status"]
    if source == "self":
        drops = [p for t, p in out if t == "error" and p["kind"] == "calibrating"]
        assert drops and {d["stream"] for d in drops} == {f"cam{v}" for v in range(4)}
        cal = statuses[-1]["calibration"]["studio"]
        assert cal["state"] == "done" and set(cal["cameras"]) == {f"cam{v}" for v in range(4)}
        assert any("rig studio: calibrated" in e for e in statuses[-1]["events"])
        assert cal["cameras"]["cam2"]["state"] == "replaced"
    fused = poses(out, "studio")
    assert len(fused) >= 60 and all(len(f["persons"]) == len(people) for f in fused[:60])  # before the bump
    assert all(p["joints_world"] is not None for f in fused for p in f["persons"])
    assert bumped_at is not None and any("cam2 moved" in e for e in statuses[-1]["events"]), "the bump was not seen"
    R = {s: h.node.calibrations[s].R for s in ("cam0", "cam2")}  # what the node fuses with now
    err = epipolar.rotation_angle_deg((R["cam2"] @ R["cam0"].T) @ (bumped[2] @ rig.R[0].T).T)
    assert err < 0.5  # degrees: the camera's new pose


def test_a_test_set_rig_replayed_without_extrinsics_is_calibrated_by_the_node():
    """V-H36M persons of S11 (a new pose every frame, no walk) sent by its four cameras without R and
    t at 25 Hz: the node calibrates the rig from its first 4 s and then publishes world poses; in
    camera 0's frame they are the truth (up to the prior-size scale)."""
    from pads_stream.api import load_model
    from pads_stream.apps.recordings import from_test_set

    from .conftest import TEST_SET
    from .test_node import Harness, poses

    rec = from_test_set(str(TEST_SET), 4, 1, 200, detected=False, rig=str(CAMERAS))  # streams 0-3: S11's cameras
    h = Harness(load_model(), steps=3, latency_budget_ms=60_000, status_period_s=0.2, rig_autocalibrate_s=4.0)
    out, t0, errs = [], time.time_ns(), []
    try:
        for f in range(200):
            kp = np.concatenate([rec.kp2d[:, f, 0], rec.conf[:, f, 0, :, None]], -1)
            msgs = [kp2d_message(f"cam{s}", f, t0 + f * 40_000_000, [{"id": 0, "kp": kp[s].tolist()}],
                                 camera={"K": rec.K[s, f].tolist(), "rig": "studio"}) for s in range(4)]  # fmt: skip
            got = h.exchange(*msgs, spins=1)
            while time.time_ns() < t0 + (f + 1) * 40_000_000:
                got += h.exchange(spins=1)
            for msg in poses(got, "studio"):  # joints in the camera frame of the stream named in "camera"
                s, k = int(msg["camera"][3:]), int(msg["views"][0]["frame"])
                errs.append(msg["persons"][0]["joints"] - (rec.gt[s, k, 0] + rec.root[s, k, 0]))
            out += got
            if len(errs) >= 20:
                break
    finally:
        h.close()
    status = [p for t, p in out if t == "status"][-1]
    assert status["calibration"]["studio"]["state"] == "done", status["calibration"]
    assert len(errs) >= 20, "no calibrated world poses"
    mpjpe = 1000 * np.linalg.norm(np.array(errs), axis=-1).mean()
    assert mpjpe < 20, mpjpe  # mm, absolute in a camera's frame (exact 2D; the prior's size is these subjects')


def test_a_swapped_K_is_said_once_and_the_frames_are_still_estimated():
    """Issue 31, item 2, in the node: fx, fy, cx, cy sent in another order (the principal point far
    beyond every keypoint, the focal length below it) gets one ``intrinsics`` error naming it."""
    from pads_stream.api import load_model

    from .conftest import TEST_SET
    from .test_node import Harness, persons_of, poses
    from .test_node_contract import errors

    test = dict(np.load(TEST_SET))
    h = Harness(load_model(), steps=2)
    swapped = [[512.0, 0, 1145], [0, 515, 1145], [0, 0, 1]]
    out = []
    try:
        for f in range(30):
            out += h.exchange(kp2d_message("s", f, time.time_ns(), persons_of(test, [2 * f, 2 * f + 1], root=False),
                                           camera={"K": swapped}), spins=2)  # fmt: skip
        out += h.exchange(
            kp2d_message("ok", 0, time.time_ns(), persons_of(test, [0]), camera={"K": test["K"][0].tolist()})
        )
        for f in range(1, 30):
            out += h.exchange(kp2d_message("ok", f, time.time_ns(), persons_of(test, [f])), spins=2)
    finally:
        h.close()
    said = errors(out, "intrinsics")
    assert len(said) == 1 and said[0]["stream"] == "s" and "swapped" in said[0]["reason"]
    assert len(poses(out, "s")) >= 25  # still estimated


def test_a_rig_calibrates_itself_from_one_of_several_people_when_its_ids_are_its_own():
    """Two people walk through the S9 rig's views, sent without R and t by a multi-camera tracker
    (``rig_ids``: each person's id is the same in every camera): the node collects each person's
    walk apart, calibrates from the first one long enough, then fuses both people in the world."""
    from pads_stream.api import load_model

    from .test_node import Harness, poses

    rig = load_rig(str(CAMERAS), "S9")
    takes = np.load(H36M, allow_pickle=True)["positions_3d"].item()["S8"]
    rng = np.random.default_rng(4)
    people = [place_walk(foot_locked_path(takes[name][:700]), rig, rng) + shift
              for name, shift in (("walking_1", [-0.6, 0.0, 0.0]), ("walking_2", [0.6, 0.0, 0.0]))]  # fmt: skip
    h = Harness(load_model(), steps=3, latency_budget_ms=60_000, status_period_s=0.2, rig_autocalibrate_s=4.0)
    out, t0 = [], time.time_ns()
    try:
        for k in range(700):  # 28 s at most: a 4 s walk, its calibration in a thread (slow on a busy machine)
            persons = [[] for _ in range(4)]
            for m, world in enumerate(people):
                uv = np.einsum("vij,kj->vki", rig.R, world[k]) + rig.t[:, None]
                uv = np.einsum("vij,vkj->vki", rig.K, uv)
                for v in range(4):
                    kp = np.concatenate([uv[v, :, :2] / uv[v, :, 2:], np.ones((17, 1))], -1)
                    persons[v].append({"id": m, "kp": kp.tolist()})
            msgs = [kp2d_message(f"cam{v}", k, t0 + k * 40_000_000, persons[v],
                                 camera={"K": rig.K[v].tolist(), "rig": "studio", "rig_ids": True})
                    for v in range(4)]  # fmt: skip
            out += h.exchange(*msgs, spins=1)
            while time.time_ns() < t0 + (k + 1) * 40_000_000:
                out += h.exchange(spins=1)
            if len(poses(out, "studio")) >= 10:
                break
    finally:
        h.close()
    statuses = [p for t, p in out if t == "status"]
    cal = statuses[-1]["calibration"].get("studio")
    assert cal is not None and cal["state"] == "done", statuses[-1]["calibration"]
    R = {s: np.array(c["R"]).reshape(3, 3) for s, c in cal["cameras"].items()}
    errs = [epipolar.rotation_angle_deg((R[f"cam{v}"] @ R["cam0"].T) @ (rig.R[v] @ rig.R[0].T).T) for v in (1, 2, 3)]
    assert max(errs) < 0.5, errs  # degrees
    fused = poses(out, "studio")
    assert len(fused) >= 10 and all(len(f["persons"]) == 2 for f in fused)


def test_the_command_listens_to_a_rig_and_takes_the_walker_most_cameras_see():
    """``calibrate`` listening (``listen``): two people sent with the rig's own ids, one seen by all four
    cameras, one by three: the walk of the one all four see is collected, and it calibrates the rig."""
    import threading

    import zmq

    from pads_stream.apps.calibrate import listen

    rig = load_rig(str(CAMERAS), "S9")
    takes = np.load(H36M, allow_pickle=True)["positions_3d"].item()["S8"]
    rng = np.random.default_rng(5)
    people = [place_walk(foot_locked_path(takes[name][:200]), rig, rng) + shift
              for name, shift in (("walking_1", [-0.6, 0.0, 0.0]), ("walking_2", [0.6, 0.0, 0.0]))]  # fmt: skip
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)  # the rig's sender binds; the command connects (--in-connect)
    pub.setsockopt(zmq.SNDHWM, 0)
    endpoint = f"tcp://127.0.0.1:{pub.bind_to_random_port('tcp://127.0.0.1')}"
    got = {}
    thread = threading.Thread(target=lambda: got.update(out=listen(endpoint, "studio", 2.0, bind=False, context=ctx)))
    thread.start()
    time.sleep(0.5)  # the subscription reaches the publisher
    for k in range(200):
        for v in range(4):
            persons = []
            for m, world in enumerate(people):
                if m == 1 and v == 3:
                    continue  # camera 3 does not see the second person
                uv = (world[k] @ rig.R[v].T + rig.t[v]) @ rig.K[v].T
                persons.append({"id": m, "kp": np.concatenate([uv[:, :2] / uv[:, 2:], np.ones((17, 1))], -1).tolist()})
            camera = {"K": rig.K[v].tolist(), "rig": "studio", "rig_ids": True}
            pub.send_multipart(kp2d_message(f"cam{v}", k, 1_000_000_000 + k * 40_000_000, persons, camera=camera))
    thread.join(60)
    pub.close(0)
    ctx.destroy(linger=0)
    streams, kp, K, conf, t_ns = got["out"]
    assert streams == ["cam0", "cam1", "cam2", "cam3"] and kp.shape == (4, 200, 17, 2)
    cal = pads_stream.calibrate_rig(kp, K, conf, t_ns)
    assert relative_rotation_errors(cal, rig).max() < 0.5  # degrees: the first person's walk, not a mix


def test_a_self_calibrated_rig_is_refined_from_a_longer_walk_in_the_same_world():
    """The S9 rig calibrates itself from 8 s of one person's walk (the feet fix the floor), then again
    from the next 9 s (``rig_refine_s``): the refinement is said in ``events`` and ``status``, its
    cameras are as right, and the rig's world keeps its origin and heading (each camera stays where
    the first calibration put it, to 1 cm: 0.4 measured; taken as found, the new walk's own origin
    moves them 2.8 cm)."""
    from pads_stream.api import load_model

    from .test_node import Harness

    rig = load_rig(str(CAMERAS), "S9")
    motion = np.load(H36M, allow_pickle=True)["positions_3d"].item()["S8"]["walking_2"][:900]
    world = place_walk(foot_locked_path(motion), rig, np.random.default_rng(6))
    h = Harness(load_model(), steps=3, latency_budget_ms=60_000, status_period_s=0.2, rig_autocalibrate_s=8.0,
                rig_refine_s=9.0)  # fmt: skip
    out, t0, first = [], time.time_ns(), None
    try:
        for k in range(len(world)):  # 36 s at most: two walks and their calibrations (slow on a busy machine)
            uv = np.einsum("vij,kj->vki", rig.R, world[k]) + rig.t[:, None]
            uv = np.einsum("vij,vkj->vki", rig.K, uv)
            kp = np.concatenate([uv[..., :2] / uv[..., 2:], np.ones((4, 17, 1))], -1)
            msgs = [kp2d_message(f"cam{v}", k, t0 + k * 40_000_000, [{"id": 0, "kp": kp[v].tolist()}],
                                 camera={"K": rig.K[v].tolist(), "rig": "studio"}) for v in range(4)]  # fmt: skip
            out += h.exchange(*msgs, spins=1)
            while time.time_ns() < t0 + (k + 1) * 40_000_000:
                out += h.exchange(spins=1)
            cal = ([p for t, p in out if t == "status"] or [{}])[-1].get("calibration", {}).get("studio", {})
            if first is None and cal.get("state") == "done":
                first = cal
            if cal.get("refinement") in ("done", "failed"):
                break
    finally:
        h.close()
    assert first is not None and first["cameras"] and cal["refinement"] == "done", cal
    events = [p for t, p in out if t == "status"][-1]["events"]
    assert any("rig studio: refined from" in e for e in events), events

    def centres(c):
        return {s: -np.array(v["R"]).reshape(3, 3).T @ np.array(v["t"]) for s, v in c["cameras"].items()}

    before, after = centres(first), centres(cal)
    assert max(np.linalg.norm(after[s] - before[s]) for s in before) < 0.01  # metres: the same world
    R = {s: np.array(c["R"]).reshape(3, 3) for s, c in cal["cameras"].items()}
    errs = [epipolar.rotation_angle_deg((R[f"cam{v}"] @ R["cam0"].T) @ (rig.R[v] @ rig.R[0].T).T) for v in (1, 2, 3)]
    assert max(errs) < 0.5, errs  # degrees


def test_a_walk_that_cannot_calibrate_is_said_and_collected_again():
    """The node's calibrator (socket-free): a walk whose cameras never see the person together is
    calibrated in the child process, its ValueError comes back as the reason, and a new walk starts."""
    from pads_stream.stream.calibration import RigCalibrator

    rig = load_rig(str(CAMERAS), "S9")
    calibrator = RigCalibrator(seconds=2.0)
    try:
        for k in range(60):
            for v in range(2):
                conf = np.zeros(17)
                conf[:8] = 1.0 if v == 0 else 0.0  # camera 0 sees the legs, camera 1 nothing
                kp = np.random.default_rng(k).uniform(0, 1000, (17, 2))
                calibrator.observe("studio", f"cam{v}", 1_000_000_000 + k * 40_000_000, rig.K[v], kp, conf)
        assert calibrator.status()["studio"]["state"] == "calibrating"
        deadline = time.monotonic() + 60
        while not calibrator.events and time.monotonic() < deadline:
            assert calibrator.finished() == []
            time.sleep(0.05)
    finally:
        calibrator.close()
    (event,) = calibrator.events
    assert "calibration failed (camera 1 shares 0 seen joints with camera 0" in event, event
    assert calibrator.status()["studio"]["state"] == "collecting"


BANDAI = SHARED / "bandai" / "dataset-1"
needs_bandai = pytest.mark.skipif(not BANDAI.exists(), reason=f"needs the Bandai Namco BVH clips in {BANDAI}")


def straight_walk(style: str, subject_rig: str, rng: np.random.Generator, offsets_s=None):
    """A Bandai actor's walk (30 Hz, 10 s) back and forth on one line in a real rig, detector-like 2D:
    (rig, kp, conf, t_ns, offsets_s); offsets None: drawn from ``rng``, 0-40 ms."""
    from pads_stream.common.files import shipped
    from pads_stream.data.bvh import JointMapping, load_bvh_h36m
    from pads_stream.data.datasets import to_17

    mapping = JointMapping.from_json(shipped("configs", "bandai_to_h36m.json"))
    clips = [BANDAI / f"dataset-1_walk_{style}_00{k}.bvh" for k in (1, 2)]
    poses = np.concatenate([to_17(load_bvh_h36m(c, mapping)[0]) for c in clips])
    rig = load_rig(str(CAMERAS), subject_rig)
    world = place_walk(foot_locked_path(poses[:350], rate_hz=30.0), rig, rng)
    offsets = np.r_[0.0, rng.uniform(0, 0.040, 3)] if offsets_s is None else np.asarray(offsets_s, float)
    kp, t_ns, _ = camera_views(world, rig, offsets, np.zeros(4), 300, 30.0)
    kp, conf = detector_noise(kp, rng)
    return rig, kp, conf, t_ns, offsets


@needs_bandai
def test_a_slow_walk_on_one_line_is_not_left_in_a_wrong_placement():
    """Another actor walking slowly on one line keeps the joints near one plane: from camera 0 as the
    only reference the adjustment settled with cameras 10 degrees off at a residual of 2 px (and said
    "ok"); each camera in turn is the reference now, the best fit kept."""
    rig, kp, conf, _, _ = straight_walk("not-confident", "S9", np.random.default_rng(0), np.zeros(4))
    cal = pads_stream.calibrate_rig(kp, rig.K, conf, height_m=1.6)
    assert cal.state == ("ok",) * 4
    assert relative_rotation_errors(cal, rig).max() < 1.0  # degrees


@needs_bandai
def test_a_body_unlike_the_mean_adult_publishes_a_scale_uncertainty_that_covers_it():
    """Without a height the mean adult's bones set the scale; this actor's (mapped) bones are about
    15 % shorter, and unevenly so: the published uncertainty grows with how unlike the mean adult's
    proportions the bones are (it took their ratios' spread in the adjustment's own units, over √16)."""
    rig, kp, conf, _, _ = straight_walk("normal", "S9", np.random.default_rng(3), np.zeros(4))
    cal = pads_stream.calibrate_rig(kp, rig.K, conf)
    true_c = -np.einsum("vji,vj->vi", rig.R, rig.t)
    found = np.linalg.norm(cal.centres[1:] - cal.centres[0], axis=1)
    error = np.median(found / np.linalg.norm(true_c[1:] - true_c[0], axis=1)) - 1
    assert abs(error) > 0.08  # the case: a scale well off the mean adult's
    assert 0.08 < cal.scale_sd < 0.3 and abs(error) <= 2 * cal.scale_sd


@needs_bandai
def test_unknown_clocks_on_a_straight_walk_do_not_mislead_the_offset_scan():
    """One essential matrix fitted before the clocks were known (frames up to 23 ms apart) steered the
    scan to wrong offsets (3.8 ms for 10.4), and two cameras ended turned half round: the scan starts
    where the joints' image speeds agree (no geometry needed) and finds the clocks, and the cameras."""
    rig, kp, conf, t_ns, offsets = straight_walk("angry", "S11", np.random.default_rng([*b"angry", 10, 1, 7]))
    cal = pads_stream.calibrate_rig(kp, rig.K, conf, t_ns, height_m=1.6)
    assert relative_rotation_errors(cal, rig).max() < 1.0  # degrees
    mid = int(t_ns[0, 150])
    found_ms = np.array([cal.reference_ns(v, mid) - mid for v in range(4)]) / 1e6
    assert np.abs(found_ms - 1e3 * offsets).max() < 3.0


def test_a_camera_turned_half_round_is_told_apart_by_depth():
    """Reprojection alone cannot tell a camera turned half round (the person behind it) where the
    adjustment can settle: the depth test marks it for re-placing; the same camera facing the person passes."""
    from pads_stream.geometry.bundle import Bundle, Observations
    from pads_stream.geometry.selfcalib import _misplaced

    X = np.random.default_rng(0).normal([0, 0, 4], 0.5, (40, 3))  # the person, 4 m before camera 0
    obs = Observations(np.repeat([0, 1], 40), np.tile(np.arange(40), 2), np.zeros((80, 2)), np.ones(80),
                       np.zeros((80, 2)), np.zeros(80))  # fmt: skip
    R = np.repeat(np.eye(3)[None], 2, 0)
    t = np.array([[0, 0, 0], [-1.0, 0, 0]])  # camera 1 a metre to the side, facing the same way
    facing = Bundle(R, t, X, np.zeros(2), np.zeros(2), np.zeros(80))
    assert not _misplaced(facing, obs, 1)  # residuals 0 px: only the depth test can tell
    turned = R.copy()
    turned[1] = np.diag([-1.0, 1, -1])  # half a turn about its y axis, at the same centre
    away = Bundle(turned, np.einsum("vij,vj->vi", turned, t), X, np.zeros(2), np.zeros(2), np.zeros(80))
    assert _misplaced(away, obs, 1)
