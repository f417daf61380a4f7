"""Rigs in the node: member frames grouped by capture time, persons associated across views with
per-camera ids, a late or missing camera; socket-free (pads_stream.stream.fusion) and over real sockets."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pads_stream.api import load_model
from pads_stream.data.virtual_rig import load_rig
from pads_stream.geometry.camera import normalized_rays
from pads_stream.stream.fusion import FusionConfig, RigFrames, RigTracks, ViewPerson, Waiting, fuse_frame
from pads_stream.stream.wire import camera_map, decode, kp2d_message

from .conftest import CAMERAS, H36M, SHARED
from .test_node import Harness, poses
from .test_node_contract import errors, until

MS = 1_000_000  # ns


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def scene(rig_views):
    """Two persons 1.2 m apart in the S9 rig walking 5 cm a moment: world (F, 2, 17, 3) and their
    exact 2D in the 4 cameras, kp (F, 4, 2, 17, 2) px."""
    rig = load_rig(str(CAMERAS), "S9")
    world = np.repeat(rig_views["world"][None, :2], 6, axis=0)
    world[:, 1] += [1.2, 0.0, 0.0]
    world += np.arange(6)[:, None, None, None] * np.array([0.0, 0.05, 0.0])
    kp = np.stack([rig.project(w) for w in world])  # (F, 4, 2, 17, 2)
    return {"rig": rig, "world": world, "kp": kp}


def test_frames_of_one_moment_are_grouped_and_a_late_view_is_refused():
    cfg = FusionConfig(rig_window_ms=10, rig_wait_ms=50)
    frames: RigFrames[int] = RigFrames()
    t0, now = 10_000 * MS, 100.0
    for v in range(4):  # one moment, arrival spread 3 ms
        assert frames.add(Waiting(f"c{v}", t0 + v * MS, t0 + v * MS, v), now, cfg) == (None, False)
    assert frames.take(t0 + 4 * MS, now, cfg) is None  # the first moment waits: its members are not known yet
    assert [w.item for w in frames.take(t0 + 51 * MS, now, cfg)] == [0, 1, 2, 3]
    for v in range(3):  # the next moment: camera 3 is late
        frames.add(Waiting(f"c{v}", t0 + 40 * MS, t0 + 41 * MS, 10 + v), now, cfg)
    assert frames.take(t0 + 45 * MS, now, cfg) is None  # waits for camera 3 (still a live member)
    assert [w.item for w in frames.take(t0 + 92 * MS, now, cfg)] == [10, 11, 12]  # but not beyond rig_wait_ms
    refused, late = frames.add(Waiting("c3", t0 + 40 * MS, t0 + 140 * MS, 13), now, cfg)
    assert refused.item == 13 and late  # its moment was fused without it
    # cameras sending faster than rig_wait_ms while one is missing: each moment ends when the next begins
    for v in range(3):
        frames.add(Waiting(f"c{v}", t0 + 160 * MS, t0 + 161 * MS, 20 + v), now, cfg)
    assert frames.take(t0 + 170 * MS, now, cfg) is None
    for v in range(3):
        assert frames.add(Waiting(f"c{v}", t0 + 193 * MS, t0 + 194 * MS, 30 + v), now, cfg) == (None, False)
    assert [w.item for w in frames.take(t0 + 195 * MS, now, cfg)] == [20, 21, 22]  # camera 0 moved on
    assert frames.take(t0 + 196 * MS, now, cfg) is None  # the next moment waits its turn
    frames.add(Waiting("c0", t0 + 300 * MS, t0 + 301 * MS, 40), now + 5.0, cfg)
    assert [w.item for w in frames.take(t0 + 302 * MS, now + 5.0, cfg)] == [30, 31, 32]  # c0 moved on again
    assert [w.item for w in frames.take(t0 + 303 * MS, now + 5.0, cfg)] == [40]  # the others went silent


def view_persons(scene, f, ids):
    rig = scene["rig"]
    out = []
    for v in range(4):
        persons = []
        for m in range(2):
            kp = scene["kp"][f, v, m]
            rays = normalized_rays(kp, rig.K[v])[..., :2]
            persons.append(ViewPerson(ids[v][m], kp, np.ones(17), rays, rig.K[v], rig.R[v], rig.t[v]))
        out.append(persons)
    return out


def test_persons_are_associated_across_views_whatever_each_camera_calls_them(model, scene):
    ids = [[0, 1], [1, 0], [7, 3], [3, 7]]  # each camera's own tracker, swapped between cameras
    tracks = RigTracks()
    seen_ids = []
    streams = [f"cam{v}" for v in range(4)]
    for f in range(3):  # from the second frame on, each person starts from its last pose (a warm start)
        fused, refused = fuse_frame(model, 3, view_persons(scene, f, ids), FusionConfig(), tracks, f * 40 * MS,
                                    streams=streams)  # fmt: skip
        assert len(tracks.detections) == 8 and set(tracks.pose) == {p.id for p in fused}
        assert refused == [] and len(fused) == 2
        for person in fused:
            truth = {i for _, i, _ in person.detections}  # index m within each view: the true person
            assert len(person.detections) == 4 and len(truth) == 1
            m = truth.pop()
            err = np.linalg.norm(person.world - scene["world"][f, m], axis=-1).mean()
            assert err < 0.01  # exact 2D in 4 views: the true pose, in the world
            seen_ids.append((f, m, person.id))
    by_person = {m: {pid for _, mm, pid in seen_ids if mm == m} for m in (0, 1)}
    assert all(len(v) == 1 for v in by_person.values()) and by_person[0] != by_person[1]  # ids kept over time


class RigHarness(Harness):
    def member(self, v, f, scene, ids, t_ns, conf=None):
        rig = scene["rig"]
        persons = []
        for m in range(2):
            c = np.ones(17) if conf is None else conf[m]
            persons.append({"id": ids[v][m], "kp": np.concatenate([scene["kp"][f, v, m], c[:, None]], -1).tolist()})
        camera = camera_map(rig.K[v], R=rig.R[v], t=rig.t[v], rig="studio")
        return kp2d_message(f"cam{v}", f, t_ns, persons, camera=camera)


@pytest.fixture
def node(model):
    h = RigHarness(model, steps=3, warm_steps=3, status_period_s=0.05, latency_budget_ms=60_000, rig_wait_ms=80)
    yield h
    h.close()


def rig_frames(out):
    return poses(out, "studio")


def test_a_rig_over_sockets_fuses_views_and_goes_on_without_a_camera(node, scene):
    ids = [[0, 1], [1, 0], [5, 6], [6, 5]]
    t0 = time.time_ns()
    got = []
    for f in range(2):
        msgs = [node.member(v, f, scene, ids, t0 + f * 40 * MS) for v in range(4)]
        got += rig_frames(until(node, lambda o: rig_frames(o), *msgs))
    for msg in got:
        assert msg["rig"] and len(msg["views"]) == 4 and all(v["used"] for v in msg["views"])
        for v in msg["views"]:  # every view's camera where it is (the viewer draws them all)
            k = int(v["stream"][3:])
            np.testing.assert_allclose(v["R"], scene["rig"].R[k], atol=1e-9)
            np.testing.assert_allclose(v["t"], scene["rig"].t[k], atol=1e-9)
        assert len(msg["persons"]) == 2
        for p in msg["persons"]:
            streams = sorted(v["stream"] for v in p["views"])
            assert streams == ["cam0", "cam1", "cam2", "cam3"]
            sent = {(v["stream"], v["id"]) for v in p["views"]}
            truth = {m for m in (0, 1) if sent == {(f"cam{v}", ids[v][m]) for v in range(4)}}
            assert len(truth) == 1  # the four detections of one true person
            world = np.array(p["joints_world"])
            f = got.index(msg)
            assert np.linalg.norm(world - scene["world"][f, truth.pop()], axis=-1).mean() < 0.01
    # camera 3 stops; the rig waits for it no longer than rig_wait_ms, then fuses the other three
    msgs = [node.member(v, 2, scene, ids, t0 + 80 * MS) for v in range(3)]
    (msg,) = rig_frames(until(node, lambda o: rig_frames(o), *msgs))
    assert [v["stream"] for v in msg["views"]] == ["cam0", "cam1", "cam2"] and len(msg["persons"]) == 2
    # camera 3's frame of that moment arrives 100 ms late: refused as late, nothing else lost
    out = until(node, lambda o: errors(o, "late"), node.member(3, 2, scene, ids, t0 + 80 * MS))
    assert errors(out, "late")[0]["stream"] == "cam3"
    msgs = [node.member(v, 3, scene, ids, t0 + 120 * MS) for v in range(4)]
    (msg,) = rig_frames(until(node, lambda o: rig_frames(o), *msgs))
    assert len(msg["views"]) == 4 and len(msg["persons"]) == 2


def test_replay_sends_the_test_rig_and_listen_scores_it(model, tmp_path):
    """``replay --rig`` (per-camera ids, camera 3 without the left arm) through a node to
    ``listen``, scored against the world truth."""
    from pads_stream.apps.listen import Listener
    from pads_stream.apps.recordings import from_test_set
    from pads_stream.apps.replay import Replayer

    from .conftest import TEST_SET

    rec = from_test_set(str(TEST_SET), 4, 2, 3, detected=False, rig=str(CAMERAS)).occluded((11, 12, 13), [3])
    # each rig frame waits for its four views (a loaded machine read them over 60 ms apart and fused a
    # moment twice: 8 rig persons for 6)
    h = Harness(model, steps=3, status_period_s=0.05, latency_budget_ms=60_000, rig_wait_ms=2000)
    listener = Listener(h.node.endpoints[1], context=h.ctx)
    rep = Replayer(rec, h.node.endpoints[0], 25.0, send_root=False, send_extrinsics=True, context=h.ctx,
                   rig="studio")  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not all((name, -1) in listener.frames for name in rep.names):  # readiness, as replay does it
            assert time.monotonic() < deadline
            rep.probe()
            h.node.spin_once()
            listener.poll(20)
        for f in range(3):
            rep.send_frame(f)
            while not all((name, f) in listener.frames for name in rep.names):
                assert time.monotonic() < deadline
                h.node.spin_once()
                listener.poll(20)
        rec.save_truth(tmp_path / "truth.npz", rep.names)
        scores = listener.score(tmp_path / "truth.npz")
    finally:
        rep.close()
        listener.close()
        h.close()
    assert scores["rig_persons"] == 6 and scores["rig_association"] == 1.0
    assert scores["rig_world_mpjpe"] < 5 and scores["rig_root_error"] < 5  # mm: exact 2D from 4 views


def test_a_rig_named_like_a_stream_is_refused(node, scene):
    until(node, lambda o: poses(o, "solo"), node.frame("solo", 0, [], camera=True))
    rig = scene["rig"]
    bad = kp2d_message("cam0", 0, time.time_ns(), [], camera=camera_map(rig.K[0], R=rig.R[0], t=rig.t[0], rig="solo"))
    (err,) = errors(until(node, lambda o: errors(o, "camera"), bad), "camera")
    assert err["stream"] == "cam0" and "rig" in err["reason"]


def test_a_rig_persons_filter_follows_its_id_and_forgets_it_with_the_person():
    from pads_stream.geometry.smoothing import OneEuroConfig

    rng = np.random.default_rng(0)
    tracks, cfg = RigTracks(), FusionConfig()
    truth = rng.normal(0, 0.3, (17, 3)) + [0.0, 0.0, 1.0]
    raw, out = [], []
    for f in range(50):  # a person standing still, 1 cm of jitter per frame at 25 Hz
        noisy = truth + rng.normal(0, 0.01, truth.shape)
        (pid,) = tracks.assign(noisy[None], f * 40 * MS, cfg)
        raw.append(noisy)
        out.append(tracks.smoothed(pid, noisy, f * 0.04, OneEuroConfig(1.0, 0.5)))
    jitter = lambda x: np.linalg.norm(np.diff(np.array(x[10:]), axis=0), axis=-1).mean()  # noqa: E731
    assert jitter(out) < 0.5 * jitter(raw)
    tracks.assign(np.full((1, 17, 3), 5.0), 10_000 * MS, cfg)  # much later: the first person is forgotten
    assert pid not in tracks.smooth and pid not in tracks.pelvis


def test_status_says_which_rig_camera_is_off_its_calibration(node, scene):
    """Issue 29, item 2: ``status.rigs`` reports each member camera's median reprojection error (px);
    a camera whose latched extrinsics are 2 degrees off (bumped) reads well above the others."""
    rig = scene["rig"]
    a = np.deg2rad(2.0)
    bump = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])

    def member(v, f, t_ns):
        msg = node.member(v, f, scene, [[0, 1]] * 4, t_ns)
        if v == 3:  # the same 2D, sent with camera 3's extrinsics rotated by 2 degrees
            persons = [{"id": m, "kp": np.concatenate([scene["kp"][f, 3, m], np.ones((17, 1))], -1).tolist()}
                       for m in range(2)]  # fmt: skip
            camera = camera_map(rig.K[3], R=bump @ rig.R[3], t=rig.t[3], rig="studio")
            msg = kp2d_message("cam3", f, t_ns, persons, camera=camera)
        return msg

    t0 = time.time_ns()
    for f in range(3):
        until(node, lambda o: rig_frames(o), *[member(v, f, t0 + f * 40 * MS) for v in range(4)])
    out = node.exchange(spins=10)
    status = [p for t, p in out if t == "status"][-1]
    px = status["rigs"]["studio"]
    assert set(px) == {"cam0", "cam1", "cam2", "cam3"}
    others = [px["cam0"], px["cam1"], px["cam2"]]
    assert px["cam3"] > max(others) and px["cam3"] > 2 * np.median(others), px  # (the fusion shares the blame)


@pytest.mark.skipif(not H36M.exists(), reason=f"needs the Human3.6M poses in {SHARED}")
@pytest.mark.parametrize("align", [True, False], ids=["aligned", "as captured"])
def test_views_of_free_running_cameras_are_fused_at_one_instant(model, align):
    """Issue 33: four cameras that are not triggered together (one clock, shutters up to 20 ms apart)
    see S8 walking at 0.8 m/s; each rig frame is fused at its newest capture with every view's 2D moved there
    along its motion (``rig_align_views``). Aligned, the fused world pose is the pose of that instant;
    as captured, it mixes four instants (the comparison shows what the alignment is for)."""
    from pads_stream.data.walks import camera_views, foot_locked_path, place_walk, sample_at

    poses = np.load(H36M, allow_pickle=True)["positions_3d"].item()["S8"]["walking_1"][100:140]  # 0.8 m/s
    rig = load_rig(str(CAMERAS), "S9")
    world = place_walk(foot_locked_path(poses, recentre_s=1000), rig, np.random.default_rng(3))
    shutter_s = np.array([0.0, 0.012, -0.006, 0.014])  # each camera's capture time after camera 0's
    frames = 14
    kp, tau_ns, _ = camera_views(world, rig, shutter_s, np.zeros(4), frames)
    captured = tau_ns + np.round(shutter_s * 1e9).astype(np.int64)[:, None]  # capture times, ns from the walk's start
    stamps = captured + time.time_ns()  # as the cameras stamp them (one clock)
    # a rig frame waits for all four views (a loaded machine can read them over 80 ms apart, and a frame
    # fused from fewer views is not what this test compares)
    h = RigHarness(model, steps=3, warm_steps=3, latency_budget_ms=60_000, rig_wait_ms=2000, one_euro=False,
                   rig_align_views=align)  # fmt: skip
    errs = []
    try:
        for f in range(frames):
            if f == 1:  # the rig's first moment waited for its members (rig_wait_ms): go on from now, as a live
                stamps[:, 1:] += max(0, time.time_ns() - stamps[:, 1].max())  # rig would (not a 2 s clock step)
            while time.time_ns() < stamps[:, f].max():  # frames in real time, never ahead of their capture
                time.sleep(0.001)
            msgs = [kp2d_message(f"cam{v}", f, int(stamps[v, f]), [{"id": 7, "kp": np.concatenate(
                        [kp[v, f], np.ones((17, 1))], -1).tolist()}],  # fmt: skip
                    camera=camera_map(rig.K[v], R=rig.R[v], t=rig.t[v], rig="studio"))
                    for v in np.argsort(stamps[:, f])]  # fmt: skip
            # this frame's fused pose (a loaded machine may answer the frame before in the same exchange)
            done = until(h, lambda o, f=f: any(m["frame"] == f for m in rig_frames(o)), *msgs)
            msg = [m for m in rig_frames(done) if m["frame"] == f][-1]
            instant_s = captured[:, f].max() / 1e9
            truth = sample_at(world, np.array([instant_s]))[0]
            if f >= 3:  # a view moves once its previous frame is known (frame 1's, after the first moment's wait,
                # is too old: frame 1 is fused as captured, and frame 2 starts from that pose)
                errs.append(np.linalg.norm(np.array(msg["persons"][0]["joints_world"]) - truth, axis=-1).mean())
    finally:
        h.close()
    error_mm = 1000 * float(np.mean(errs))
    if align:
        assert error_mm < 3, error_mm  # mm, measured 0.7 (beside three CPU hogs on two cores too)
    else:
        assert error_mm > 5, error_mm  # measured 7.2: the four instants mixed, what the alignment removes


@pytest.mark.skipif(not H36M.exists(), reason=f"needs the Human3.6M poses in {SHARED}")
def test_a_rig_replayed_faster_than_real_time_is_aligned_as_one_sent_live(model):
    """Issue 33: the free-running cameras above, replayed as fast as the node answers (a recording
    processed offline), so their stamps run ahead of this host's clock. The node's capture times
    then carry a transit offset that drops with every view (each arrives "earlier" than any before),
    which would squeeze a moment's views onto one time and leave them unaligned (measured 5.9 mm);
    aligned on the rig's own stamps they are fused at one instant as when sent live. Frames are
    120 ms apart (a slow walk), so that the stamps run ahead even of a node that takes 100 ms a frame."""
    from pads_stream.data.walks import camera_views, foot_locked_path, place_walk, sample_at

    rate = 25 / 3  # Hz: the walk's frames and the cameras' (0.27 m/s)
    poses = np.load(H36M, allow_pickle=True)["positions_3d"].item()["S8"]["walking_1"][100:140]
    rig = load_rig(str(CAMERAS), "S9")
    world = place_walk(foot_locked_path(poses, recentre_s=1000, rate_hz=rate), rig, np.random.default_rng(3))
    shutter_s = np.array([0.0, 0.036, -0.018, 0.042])  # the same share of a frame as above
    frames = 14
    kp, tau_ns, _ = camera_views(world, rig, shutter_s, np.zeros(4), frames, rate)
    captured = tau_ns + np.round(shutter_s * 1e9).astype(np.int64)[:, None]
    stamps = captured + time.time_ns()
    h = RigHarness(model, steps=3, warm_steps=3, latency_budget_ms=60_000, rig_wait_ms=2000, one_euro=False,
                   rig_window_ms=100)  # fmt: skip
    errs, ahead_ms = [], []
    try:
        for f in range(frames):
            if f == 1:  # after the first moment's wait for its members, from now on
                stamps[:, 1:] += max(0, time.time_ns() - stamps[:, 1].max())
            ahead_ms.append((stamps[:, f].min() - time.time_ns()) / 1e6)
            msgs = [kp2d_message(f"cam{v}", f, int(stamps[v, f]), [{"id": 7, "kp": np.concatenate(
                        [kp[v, f], np.ones((17, 1))], -1).tolist()}],  # fmt: skip
                    camera=camera_map(rig.K[v], R=rig.R[v], t=rig.t[v], rig="studio"))
                    for v in np.argsort(stamps[:, f])]  # fmt: skip
            for m in msgs:
                h.rig.send_multipart(m)
            got = []
            deadline = time.monotonic() + 30
            while not any(m["frame"] == f for m in rig_frames(got)):  # answered, then the next at once
                assert time.monotonic() < deadline, got
                h.node.spin_once()
                while h.sub.poll(1):
                    got.append(decode(h.sub.recv_multipart()))
            msg = [m for m in rig_frames(got) if m["frame"] == f][-1]
            truth = sample_at(world, np.array([captured[:, f].max() / 1e9]), rate)[0]
            if f >= 3:
                errs.append(np.linalg.norm(np.array(msg["persons"][0]["joints_world"]) - truth, axis=-1).mean())
    finally:
        h.close()
    if max(ahead_ms[3:]) <= 0:
        pytest.skip(f"this machine answered each frame slower than 120 ms: never ahead ({ahead_ms})")
    error_mm = 1000 * float(np.mean(errs))
    assert error_mm < 3, (error_mm, ahead_ms)  # mm, measured 0.7 (beside a CPU hog too); 5.9 aligned on host times
