"""Issue 15 over real sockets: unseen joints, sender clocks, and every case docs/protocol.md names."""

from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest

from pads_stream.api import load_model
from pads_stream.geometry.skeleton import bones_plausible
from pads_stream.stream.wire import DROP_KINDS, kp2d_message

from .test_node import Harness, K, persons_of, poses


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture
def node(model):
    h = Harness(model, steps=3, warm_steps=3, status_period_s=0.05, latency_budget_ms=60_000)
    yield h
    h.close()


def errors(out, kind=None):
    return [e for t, e in out if t == "error" and (kind is None or e["kind"] == kind)]


def until(h, done, *messages, limit_s=30.0):
    """Send ``messages`` once, then spin the node until ``done(received)`` (however busy the machine)."""
    out = h.exchange(*messages)
    deadline = time.monotonic() + limit_s
    while not done(out):
        assert time.monotonic() < deadline, f"no complete answer within {limit_s} s: {out}"
        out += h.exchange()
    return out


def send_until_answered(h, message, stream, deadline_s=30.0):
    """Resend ``message`` until a pose3d of ``stream`` comes back (a reconnecting sender may lose one)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        got = poses(h.exchange(message), stream)
        if got:
            return got
    raise AssertionError(f"no pose3d of {stream} within {deadline_s} s")


def test_an_unseen_joint_never_wrecks_the_pose(node, test_set):
    """A confidence-0 joint (sent at (0, 0), as detectors do) comes from the prior: every bone of
    the published pose is of human size, and the seen joints stay where the all-seen estimate has them."""
    idx = list(range(0, 1600, 100))
    full = persons_of(test_set, idx)
    unseen = []
    for k, p in enumerate(full):
        kp = np.array(p["kp"])
        kp[[3, 13, 10][k % 3]] = 0.0  # right ankle, left wrist or head unseen
        unseen.append(dict(p, kp=kp.tolist()))
    (a,) = poses(until(node, lambda o: poses(o, "full"), node.frame("full", 0, full, camera=True)), "full")
    (b,) = poses(until(node, lambda o: poses(o, "unseen"), node.frame("unseen", 0, unseen, camera=True)), "unseen")
    assert len(b["persons"]) == len(idx)  # none refused
    rel_a = np.array([p["rel"] for p in a["persons"]])
    rel_b = np.array([p["rel"] for p in b["persons"]])
    assert bones_plausible(rel_b).all()
    gt = test_set["gt"][idx]
    seen = np.array([np.array(p["kp"])[:, 2] > 0 for p in unseen])
    err_a = np.linalg.norm(rel_a - gt, axis=-1)[seen].mean()
    err_b = np.linalg.norm(rel_b - gt, axis=-1)[seen].mean()
    assert err_b < err_a + 0.015  # m: the unseen joint no longer drags the rest (it added 60+ mm)
    assert np.linalg.norm(rel_b - gt, axis=-1)[~seen].max() < 0.6  # and it is on the body (was 0.5-1.7 m off)


def test_one_future_timestamp_never_silences_a_stream(node, test_set):
    """A frame stamped 10 s ahead is answered (timed by arrival, with a ``clock`` error); the
    frames after it are answered as before."""
    person = persons_of(test_set, [0])
    t0 = time.time_ns()
    answered = lambda n: lambda o: any(m["frame"] == n for m in poses(o, "c"))  # noqa: E731
    out = until(node, answered(0), kp2d_message("c", 0, t0, person, camera={"K": K.tolist()}))
    out += until(node, answered(1), kp2d_message("c", 1, t0 + 10_000_000_000, person))
    assert [e["frame"] for e in errors(out, "clock")] == [1]
    (reason,) = [e["reason"] for e in errors(out, "clock")]  # issue 28: which way the stamp moved, and how far
    moved = float(reason.split("jumped ")[1].split(" s ")[0])  # 10 s less the time since frame 0
    assert "ahead" in reason and 8.0 < moved <= 10.0, reason
    for n in range(2, 6):
        out += until(node, answered(n), kp2d_message("c", n, time.time_ns(), person))
    assert [m["frame"] for m in poses(out, "c")] == [0, 1, 2, 3, 4, 5]
    assert [e["frame"] for e in errors(out, "clock")] == [1]


def test_a_clock_stepped_back_is_followed_within_a_few_frames(model, test_set):
    """The sender's clock steps back 30 s: no frame is lost, at most ``clock_confirm`` frames are
    timed by arrival, then the stream's clock is followed again (a late frame is stale again)."""
    h = Harness(model, steps=2, warm_steps=2, status_period_s=0.05, latency_budget_ms=2000, clock_step_s=10)
    try:
        person = persons_of(test_set, [0])
        answered = lambda n: lambda o: any(m["frame"] == n for m in poses(o, "b"))  # noqa: E731
        out = until(h, answered(0), kp2d_message("b", 0, time.time_ns(), person, camera={"K": K.tolist()}))
        for n in range(1, 8):
            out += until(h, answered(n), kp2d_message("b", n, time.time_ns() - 30_000_000_000, person))
        assert [m["frame"] for m in poses(out, "b")] == list(range(8))
        assert [e["frame"] for e in errors(out, "clock")] == [1, 2]  # the third frame confirms the step
        out = until(h, errors, kp2d_message("b", 8, time.time_ns() - 35_000_000_000, person))  # 5 s late, new clock
        assert [e["kind"] for e in errors(out)] == ["stale"] and not poses(out, "b")
    finally:
        h.close()


@pytest.mark.parametrize("t_ns", [0, -1])
def test_a_frame_without_a_usable_clock_is_answered_by_arrival(node, test_set, t_ns):
    msg = kp2d_message("z", 3, t_ns, persons_of(test_set, [0]), camera={"K": K.tolist()})
    out = until(node, lambda o: poses(o, "z") and errors(o), msg)
    assert [m["frame"] for m in poses(out, "z")] == [3]
    assert [(e["frame"], e["kind"]) for e in errors(out)] == [(3, "clock")]


def test_every_dropped_frame_is_answered_with_its_reason(model, test_set):
    """Superseded and stale frames get an ``error`` of that kind (counted under ``dropped``), so a
    client can tell dropped from lost: each frame gets a pose3d or a drop notice."""
    h = Harness(model, steps=2, warm_steps=2, status_period_s=0.05, latency_budget_ms=1000, clock_step_s=10)
    try:
        person = persons_of(test_set, [0])
        until(h, lambda o: poses(o, "d"), h.frame("d", 0, person, camera=True))
        now = time.time_ns()
        msgs = [kp2d_message("d", n, now + n, person) for n in range(1, 6)]
        msgs.append(kp2d_message("d", 6, now - 3_000_000_000, person))  # captured 3 s before: stale
        answers = lambda o: {m["frame"] for m in poses(o, "d")} | {e["frame"] for e in errors(o)}  # noqa: E731
        out = until(h, lambda o: answers(o) >= set(range(1, 7)), *msgs)
        answered = {m["frame"]: "pose3d" for m in poses(out, "d")}
        notices = {e["frame"]: e["kind"] for e in errors(out) if e["kind"] in DROP_KINDS}
        assert not set(answered) & set(notices)
        assert set(answered) | set(notices) == set(range(1, 7))
        assert notices[6] == "stale"
        dropped = h.node.stats.dropped  # how many were superseded depends on when they arrived
        assert dropped["stale"] == 1 and dropped["superseded"] == len(notices) - 1
        assert not errors(out, "clock")
    finally:
        h.close()


@pytest.mark.parametrize("topic", [b"pose3d/x", b"status", b"kp2d", b"", b"camera"])
def test_other_topics_are_answered_and_counted(node, topic):
    payload = msgpack.packb({"v": 1, "stream": "x", "frame": 0, "t_ns": 1, "layout": "h36m17", "persons": []})
    out = until(node, errors, [topic, payload])
    assert [e["kind"] for e in errors(out)] == ["topic"]
    assert node.node.stats.errors["topic"] == 1


def test_person_errors_name_the_person(node, test_set):
    empty = {"id": 77, "kp": np.zeros((17, 3)).tolist()}
    out = until(node, lambda o: poses(o, "p") and errors(o), node.frame("p", 0, [*persons_of(test_set, [0]), empty],
                                                                          camera=True))  # fmt: skip
    (err,) = errors(out)
    assert (err["kind"], err["id"], err["stream"], err["frame"]) == ("no_joints", 77, "p", 0)
    out = until(node, errors, [b"kp2d/p", b"junk"])
    assert errors(out)[0]["id"] is None


@pytest.mark.parametrize("where", ["frame", "camera", "K"])
def test_a_deeply_nested_message_costs_little(node, test_set, where):
    """Issue 15, 3.9: 1000 levels of nesting are refused (``not_msgpack``) and the next valid frame
    is still answered (an outside fuzz saw it go unanswered for seconds; decoding the nested
    message takes well under a millisecond here, which a test on a shared machine does not time)."""
    value: object = [1.0]
    for _ in range(1000):
        value = [value]
    payload = {"v": 1, "stream": "n", "frame": 0, "t_ns": time.time_ns(), "layout": "h36m17", "persons": []}
    if where == "K":
        payload["camera"] = {"K": value}
    else:
        payload[where] = value
    probe = node.frame("n", 1, persons_of(test_set, [0]), camera=True)
    out = until(node, lambda o: poses(o, "n") and errors(o), [b"kp2d/n", msgpack.packb(payload)], probe)
    assert [e["kind"] for e in errors(out)] == ["not_msgpack"]
    assert [m["frame"] for m in poses(out, "n")] == [1]


def test_messages_beyond_the_limits(node, test_set):
    """1-2 MiB: refused as ``too_large``. Beyond 2 MiB ZeroMQ drops the sender's connection unread
    (documented): the sender reconnects by itself and the node goes on serving it."""
    big = msgpack.packb({"v": 1, "stream": "b", "frame": 0, "t_ns": 1, "layout": "h36m17", "pad": b"x" * (1 << 20)})
    out = until(node, errors, [b"kp2d/b", big])
    assert [e["kind"] for e in errors(out)] == ["too_large"]
    node.rig.send_multipart([b"kp2d/b", b"x" * (3 << 20)])
    (msg,) = send_until_answered(node, node.frame("b", 1, persons_of(test_set, [0]), camera=True), "b")[:1]
    assert msg["frame"] == 1
