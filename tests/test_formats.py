"""Detector files users have (COCO results, OpenPose folders, VideoPose3D npz) read and replayed
through a live node."""

import argparse
import json

import numpy as np
import pytest

from pads_stream.apps.demo import run
from pads_stream.apps.replay import add_arguments
from pads_stream.data.formats import OPENPOSE_TO_COCO, read_coco_results, read_openpose_folder, read_videopose3d
from pads_stream.geometry.layout import get as get_layout
from pads_stream.geometry.skeleton import H36M_JOINTS

COCO_JOINTS = get_layout("coco17").joints


def coco_from_h36m(kp_h36m: np.ndarray) -> np.ndarray:
    """(F, 17, 2) H36M-17 pixels -> (F, 17, 2) COCO-17 (face joints from the head)."""
    coco = np.zeros_like(kp_h36m)
    for i, name in enumerate(COCO_JOINTS):
        src = H36M_JOINTS.index(name) if name in H36M_JOINTS else H36M_JOINTS.index("head")
        coco[:, i] = kp_h36m[:, src]
    coco[:, COCO_JOINTS.index("nose")] = kp_h36m[:, H36M_JOINTS.index("neck_nose")]
    return coco


@pytest.fixture
def coco_file(tmp_path, test_set):
    coco = coco_from_h36m(test_set["kp2d"][:12].astype(float))
    items = [{"image_id": 100 + i // 2, "category_id": 1, "score": 0.9,
              "keypoints": np.concatenate([coco[i], np.full((17, 1), 0.8)], -1).ravel().tolist()}
             for i in range(12)]  # fmt: skip
    items[3]["keypoints"][2::3] = [0.0] * 17  # a person with nothing seen
    path = tmp_path / "results.json"
    path.write_text(json.dumps(items))
    return path


def test_readers(coco_file, tmp_path, test_set):
    k = read_coco_results(coco_file)
    assert k.kp.shape == (6, 2, 17, 2) and k.layout == "coco17" and k.conf[1, 1].max() == 0 and k.conf[0, 0, 0] == 0.8
    body25 = np.zeros((25, 3))
    body25[list(OPENPOSE_TO_COCO[25]), :2] = np.arange(34).reshape(17, 2)
    body25[list(OPENPOSE_TO_COCO[25]), 2] = 0.7
    for i in range(3):
        (tmp_path / f"f{i:04d}_keypoints.json").write_text(
            json.dumps({"people": [{"pose_keypoints_2d": body25.ravel().tolist()}]})
        )
    op = read_openpose_folder(tmp_path)
    assert op.kp.shape == (3, 1, 17, 2) and np.array_equal(op.kp[0, 0], np.arange(34).reshape(17, 2))
    np.savez(tmp_path / "vp3d.npz", positions_2d={"S9": {"Walking 1": [test_set["kp2d"][:5]]}})
    vp = read_videopose3d(tmp_path / "vp3d.npz", "S9", "Walking 1", 0)
    assert vp.kp.shape == (5, 1, 17, 2) and vp.layout == "h36m17"
    with pytest.raises(ValueError, match="no S9/Running"):
        read_videopose3d(tmp_path / "vp3d.npz", "S9", "Running", 0)


def test_coco_results_replay_through_the_node(coco_file, tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--source", "coco", "--input", str(coco_file), "--K", "1145,1144,512,515",
                              "--no-root", "--rate", "10"])  # fmt: skip
    config = tmp_path / "node.json"  # a latency budget no busy machine exceeds: every frame is estimated
    config.write_text(json.dumps({"latency_budget_ms": 60000.0}))
    result = run(args, ["--backend", "auto", "--config", str(config)])
    assert result["node_exit_code"] == 0 and result["frames_received"] == 6
    assert result["errors"].get("no_joints", 0) == 0  # the empty person was not sent


def test_replayed_id_switches_are_valid_frames_with_swapped_ids():
    from pads_stream.apps.replay import Replayer, load_recording
    from pads_stream.stream.wire import decode_inbound

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--source", "h36m", "--frames", "12", "--no-root", "--id-switch-every", "5"])
    rec = load_recording(args)
    sent = []
    rep = Replayer(rec, "inproc://unused", 25.0, send_root=False)
    rep.socket.send_multipart = sent.append
    for f in (0, 5):
        rep.send_frame(f)
    rep.close()
    ids = [[p.id for p in decode_inbound(frames).persons] for frames in sent[::2]]  # stream 0, frames 0 and 5
    assert ids == [[0, 1], [1, 0]]


def test_replayed_sequences_send_their_cameras_extrinsics_and_stand_on_the_floor():
    """Issue 8: ``--extrinsics`` on S9/S11 sequences sends each virtual camera's R, t (world Z up),
    and in that world every replayed person's lowest joint is on the floor z = 0."""
    from pads_stream.apps.replay import Replayer, load_recording
    from pads_stream.geometry.camera import camera_to_world
    from pads_stream.stream.wire import decode_inbound

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--source", "h36m", "--frames", "30", "--no-root", "--extrinsics"])
    rec = load_recording(args)
    sent = []
    rep = Replayer(rec, "inproc://unused", 25.0, send_root=False, send_extrinsics=True)
    rep.socket.send_multipart = sent.append
    rep.send_frame(0)
    rep.close()
    for s, frames in enumerate(sent):
        cam = decode_inbound(frames).camera
        np.testing.assert_allclose(cam.R, rec.R[s, 0])
        np.testing.assert_allclose(cam.t, rec.t[s, 0])
        joints = rec.gt[s] + rec.root[s][:, :, None]  # (F, M, 17, 3) camera frame
        world = camera_to_world(joints.reshape(len(joints), -1, 3), rec.R[s], rec.t[s]).reshape(joints.shape)
        np.testing.assert_allclose(world[..., 2].min(axis=-1), 0.0, atol=1e-9)
        assert np.all(world[..., 2].max(axis=-1) > 1.0)  # upright: the head is well above the floor


def test_jitter_is_scored_along_each_true_person_through_id_switches(tmp_path):
    """Predictions off by a constant per person have no acceleration error, whatever the ids do:
    the listener follows the truth's person, not the (switching) id, across frames."""
    from pads_stream.apps.listen import Listener
    from pads_stream.apps.recordings import load_recording, with_id_switches

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    rec = load_recording(parser.parse_args(["--source", "h36m", "--frames", "20", "--streams", "1"]))
    rec = with_id_switches(rec, 5)
    rec.save_truth(tmp_path / "truth.npz", ["s0"])
    listener = Listener("inproc://scores-only")
    offset = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.02]])  # person 1's joints all 2 cm too far
    for f in range(20):
        for m in range(2):
            rel = rec.gt[0, f, m] + offset[m]
            listener.poses[("s0", f, int(rec.ids[0, f, m]))] = (rel, rec.root[0, f, m])
    scores = listener.score(tmp_path / "truth.npz")
    listener.socket.close()
    assert scores["persons_received"] == 40 and scores["mpjpe"] > 1.0
    assert scores["accel_error"] < 1e-6


def test_no_jitter_is_scored_between_unrelated_test_samples(tmp_path):
    """The test-set source sends a different person in every frame: acceleration is undefined there."""
    from pads_stream.apps.listen import Listener
    from pads_stream.apps.replay import load_recording

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    rec = load_recording(parser.parse_args(["--source", "test", "--frames", "6", "--streams", "1"]))
    rec.save_truth(tmp_path / "truth.npz", ["s0"])
    listener = Listener("inproc://scores-only-test")
    for f in range(6):
        for m in range(rec.ids.shape[2]):
            listener.poses[("s0", f, int(rec.ids[0, f, m]))] = (rec.gt[0, f, m], rec.root[0, f, m])
    scores = listener.score(tmp_path / "truth.npz")
    listener.socket.close()
    assert scores["persons_received"] == 6 * rec.ids.shape[2] and "accel_error" not in scores


@pytest.mark.parametrize(
    ("fmt", "name", "content", "message"),
    [
        ("coco", "bad.json", '[{"image_id": 1, "keypoints": [1, 2', "JSON syntax error at line 1"),
        ("coco", "short.json", json.dumps([{"image_id": 1, "keypoints": [1, 2, 3]}]), "keypoints must be 51 numbers"),
        ("coco", "map.json", json.dumps({"annotations": []}), "expected a COCO results list"),
        ("openpose", "op", '{"people": [{"pose_keypoints_2d": "x"}]}', "not an OpenPose keypoints file"),
        ("openpose", "op2", '{"people": [{}]}', "missing key 'pose_keypoints_2d'"),
        ("vp3d", "vp.npz", "not an npz", "not a valid vp3d file"),
        ("coco", "absent.json", None, "no such file"),
    ],
)
def test_a_malformed_file_is_named_with_what_is_wrong(tmp_path, fmt, name, content, message):
    """Issue 15, part 5: a ValueError naming the file, never a raw traceback from the parser."""
    from pads_stream.data.formats import read

    path = tmp_path / name
    if content is not None and fmt == "openpose":
        path.mkdir()
        (path / "000_keypoints.json").write_text(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message) as err:
        read(fmt, path)
    assert name in str(err.value)


@pytest.mark.parametrize("command", ["train", "tune", "baseline", "export", "bench"])
def test_a_command_without_its_extra_says_which_to_install(monkeypatch, capsys, command):
    import sys

    from pads_stream import cli

    monkeypatch.setitem(sys.modules, "torch", None)  # as on a base install: import torch fails
    for name in [m for m in sys.modules if m.startswith("pads_stream.") and m != "pads_stream.cli"]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(SystemExit) as err:
        cli.main([command, "--help"])
    assert f"pip install 'pads-stream[{cli.EXTRAS[command]}]'" in str(err.value) and "torch" in str(err.value)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["demo", "--source", "coco", "--input", "/nope.json", "--K", "1145,1145,512,515"], "pads-stream demo: /nope"),
        (
            ["replay", "--source", "coco", "--input", "examples/coco_results.json", "--K", "0.9,0.9,0.5,0.5"],
            "normalised K",
        ),
        (
            ["replay", "--source", "coco", "--input", "examples/coco_results.json", "--K", "512,515,1145,1145"],
            "swapped",
        ),
        (["demo", "--data", "../shared/data/h36m"], "did you mean --data ../shared/data"),
    ],
)
def test_a_wrong_input_or_K_is_one_line_naming_the_mistake(argv, words, capsys):
    """Issue 31, items 2 and 4: the command that ran names itself, and a normalised or reordered K, or
    a --data one folder too deep, is refused with the likely mistake (exit code 2)."""
    from pathlib import Path

    from pads_stream.cli import main

    if "--data" in argv and not Path("../shared/data/h36m/test_vh36m.npz").exists():
        pytest.skip("the data folder is absent")
    with pytest.raises(SystemExit) as err:
        main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert err.value.code == 2 and len(lines) == 1 and words in lines[0], lines
