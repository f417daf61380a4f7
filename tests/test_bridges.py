"""VRChat OSC and VMC bridges: rotations derived from the skeleton, and OSC over loopback."""

import threading

import numpy as np
import pytest

from pads_stream.apps.bridges import joint_frames, t_pose, unity_euler, vmc_messages, vrchat_messages, world_joints
from pads_stream.stream.wire import PosePerson

Z_UP = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # Y-up -> Z-up (inverse of the bridge's turn)


def test_a_t_pose_has_identity_rotations_and_turning_shows_in_the_hips():
    world = t_pose() @ Z_UP.T + [0, 0, 1.0]
    pos, rot = joint_frames(world)
    np.testing.assert_allclose(rot, np.broadcast_to(np.eye(3), rot.shape), atol=1e-9)
    assert pos[10, 1] > pos[0, 1] > pos[3, 1]  # Unity Y up: head above hips above feet
    turn = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])  # 90° about the world's vertical
    _, turned = joint_frames(world @ turn.T)
    assert abs(abs(unity_euler(turned[0])[1]) - 90) < 1e-6  # hips yaw 90°


def test_messages_and_osc_over_loopback():
    pythonosc = pytest.importorskip("pythonosc", reason="the bridges need the [bridges] extra (python-osc)")
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer
    from pythonosc.udp_client import SimpleUDPClient

    joints = t_pose() * [1, -1, -1] + [0.2, 0.3, 3.0]  # camera frame, 3 m ahead
    world = world_joints(PosePerson(0, joints, joints[0], joints - joints[0], 0.0, np.ones(17)))
    np.testing.assert_allclose(world[0], [0.2, 3.0, 1.3])  # seen by the default camera: 1.6 m up, facing +Y
    vr = vrchat_messages(world)
    assert len(vr) == 18 and vr[0][0] == "/tracking/trackers/1/position"
    vmc = vmc_messages(world, 0.5)
    assert vmc[0][0] == "/VMC/Ext/Root/Pos" and {m[1][0] for m in vmc if m[0] == "/VMC/Ext/Bone/Pos"} >= {
        "Hips",
        "Head",
    }
    got = []
    dispatcher = Dispatcher()
    dispatcher.set_default_handler(lambda address, *args: got.append((address, args)))
    server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = SimpleUDPClient("127.0.0.1", server.server_address[1])
        for address, values in vr + vmc:
            client.send_message(address, values)
        for _ in range(100):
            if len(got) >= len(vr) + len(vmc):
                break
            threading.Event().wait(0.02)
    finally:
        server.shutdown()
    assert len(got) == len(vr) + len(vmc)
    hip = dict(got)["/tracking/trackers/1/position"]
    np.testing.assert_allclose(hip, joint_frames(world)[0][0], atol=1e-5)
    assert pythonosc is not None
