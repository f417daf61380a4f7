import json

import numpy as np
import pytest

from pads_stream.common.files import shipped
from pads_stream.data.bvh import JointMapping, forward_kinematics, load_bvh_h36m, parse_bvh
from pads_stream.geometry.layout import get as get_layout
from pads_stream.geometry.layout import to_h36m
from pads_stream.geometry.skeleton import H36M_JOINTS, bone_lengths, mirror

COCO_JOINTS = get_layout("coco17").joints

BVH = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Chest
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT Hand
    {
      OFFSET 5 0 0
      CHANNELS 3 Yrotation Xrotation Zrotation
      End Site
      {
        OFFSET 1 0 0
      }
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.04
0 0 0 0 0 0 0 0 0 0 0 0
1 2 3 90 0 0 0 0 0 0 90 0
"""


def test_bvh_forward_kinematics_known_answer():
    bvh = parse_bvh(BVH)
    assert bvh.names == ("Hips", "Chest", "Hand") and bvh.parents == (-1, 0, 1)
    pos = forward_kinematics(bvh)
    np.testing.assert_allclose(pos[0], [[0, 0, 0], [0, 10, 0], [5, 10, 0]], atol=1e-9)
    # frame 2: root moved to (1, 2, 3) and turned 90° about Z: the local +Y offset of Chest
    # points along -X; Chest's rotation is identity, then Hand is turned 90° about X (no effect
    # on its own position), so Hand = Chest + Rz(90°)·(5, 0, 0) = Chest + (0, 5, 0).
    np.testing.assert_allclose(pos[1], [[1, 2, 3], [-9, 2, 3], [-9, 7, 3]], atol=1e-9)


def test_bvh_rejects_malformed():
    with pytest.raises(ValueError, match="malformed"):
        parse_bvh(BVH.replace("0 0 0 0 0 0 0 0 0 0 0 0\n", ""))


def test_joint_mapping_builds_h36m_in_metres(tmp_path):
    weights = {name: {"Hips": 1.0} for name in H36M_JOINTS}
    weights["head"] = {"Hand": 2.0, "Chest": -1.0}  # extrapolated past the hand
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"scale": 0.01, "joints": weights}))
    bvh_path = tmp_path / "clip.bvh"
    bvh_path.write_text(BVH)
    x, fps = load_bvh_h36m(bvh_path, JointMapping.from_json(path))
    assert x.shape == (2, 17, 3) and fps == pytest.approx(25.0)
    np.testing.assert_allclose(x[0, 10], [0.10, 0.10, 0.0], atol=1e-12)
    weights["head"] = {"Hand": 0.5}
    path.write_text(json.dumps({"scale": 0.01, "joints": weights}))
    with pytest.raises(ValueError, match="sum to"):
        JointMapping.from_json(path)


def test_shipped_bandai_mapping_loads():
    m = JointMapping.from_json(shipped("configs", "bandai_to_h36m.json"))
    assert m.scale == 0.01 and len(m.weights) == 17


def test_coco_to_h36m_derived_joints_and_confidence():
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 100, (2, 17, 2))
    conf = rng.uniform(0.5, 1.0, (2, 17))
    conf[1, COCO_JOINTS.index("l_hip")] = 0.0  # a missing source joint
    out, c = to_h36m(kp, conf, "coco17")
    i = {n: k for k, n in enumerate(COCO_JOINTS)}
    np.testing.assert_allclose(out[:, 0], (kp[:, i["l_hip"]] + kp[:, i["r_hip"]]) / 2)
    np.testing.assert_allclose(out[:, 8], (kp[:, i["l_shoulder"]] + kp[:, i["r_shoulder"]]) / 2)
    np.testing.assert_allclose(out[:, 7], (out[:, 0] + out[:, 8]) / 2)
    np.testing.assert_allclose(out[:, 10], (kp[:, i["l_eye"]] + kp[:, i["r_eye"]]) / 2)
    np.testing.assert_allclose(out[:, 9], kp[:, i["nose"]])
    assert c[0, 0] == min(conf[0, i["l_hip"]], conf[0, i["r_hip"]])
    assert c[1, 0] == 0.0 and c[1, 7] == 0.0 and c[1, 4] == 0.0  # pelvis, spine, l_hip missing
    with pytest.raises(ValueError, match="layout"):
        to_h36m(kp, conf, "openpose25")


def test_mirror_keeps_bone_lengths_and_is_an_involution():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.3, (3, 17, 3))
    swapped = [3, 4, 5, 0, 1, 2, 6, 7, 8, 9, 13, 14, 15, 10, 11, 12]  # bones of left/right pairs swap
    np.testing.assert_allclose(bone_lengths(mirror(x)), bone_lengths(x)[:, swapped])
    np.testing.assert_allclose(mirror(mirror(x)), x)


def test_written_bvh_reproduces_the_motion(tmp_path):
    """listen --record FILE.bvh: forward kinematics of the written file gives back the joints
    (exactly where bone lengths are constant, as in motion capture)."""
    from pads_stream.data.bvh import forward_kinematics, parse_bvh, write_bvh
    from pads_stream.data.datasets import load_positions_3d

    from .conftest import H36M, MISSING_DATA

    if not H36M.exists():
        pytest.skip(MISSING_DATA)
    seq = load_positions_3d(H36M)["S9"]["walking_1"][:60].astype(float)
    seq = seq + [0, 1.0, 0] + np.linspace(0, 2, 60)[:, None, None] * [1, 0, 0]  # walking forward
    write_bvh(tmp_path / "walk.bvh", seq, 0.04)
    bvh = parse_bvh((tmp_path / "walk.bvh").read_text())
    pos = forward_kinematics(bvh)[:, [bvh.names.index(n) for n in H36M_JOINTS]] / 100
    assert np.abs(pos - seq).max() < 1e-4


def test_every_layout_is_one_record_the_wire_and_the_api_read(test_set):
    """Issue 16: a layout is a data file; Halpe-26 and COCO-WholeBody-133 (its body part) lift the
    same body as COCO-17 where they carry the same joints, over the wire and through the API."""
    from pads_stream.api import load_model
    from pads_stream.geometry.layout import NAMES, layouts
    from pads_stream.stream.wire import decode_inbound, kp2d_message

    assert set(layouts()) == set(NAMES) and {lay.count for lay in layouts().values()} == {17, 26, 133}
    h36m = test_set["kp2d"][:4].astype(float)
    index = {name: k for k, name in enumerate(H36M_JOINTS)}
    coco_from = {"nose": "neck_nose", "l_eye": "head", "r_eye": "head", "l_ear": "head", "r_ear": "head"}
    model = load_model()
    poses = {}
    for name in ("coco17", "halpe26", "coco_wholebody133"):
        lay = get_layout(name)
        kp, conf = np.zeros((4, lay.count, 2)), np.zeros((4, lay.count))
        for k, joint in enumerate(lay.joints):
            source = coco_from.get(joint, joint)
            if source in index:
                kp[:, k], conf[:, k] = h36m[:, index[source]], 1.0
        if name == "halpe26":  # its own pelvis, neck and head top
            for joint, source in (("hip", "pelvis"), ("neck", "thorax"), ("head", "head")):
                kp[:, lay.joints.index(joint)], conf[:, lay.joints.index(joint)] = h36m[:, index[source]], 1.0
        frame = decode_inbound(kp2d_message("s", 0, 1, [{"id": 0, "kp": np.concatenate([kp[0], conf[0, :, None]], -1)
                                                          .tolist()}], layout=name))  # fmt: skip
        assert frame.layout == name and frame.persons[0].kp.shape == (lay.count, 2)
        poses[name] = model.estimate(kp, test_set["K"][:4], test_set["root"][:4], conf=conf, layout=name, steps=4)
    np.testing.assert_allclose(poses["coco_wholebody133"], poses["coco17"], atol=1e-5)  # the same 17 body joints
    halpe_err = np.linalg.norm(poses["halpe26"] - test_set["gt"][:4], axis=-1).mean()
    coco_err = np.linalg.norm(poses["coco17"] - test_set["gt"][:4], axis=-1).mean()
    assert halpe_err < coco_err + 0.01  # its own pelvis, thorax and head: no worse than COCO's midpoints
    with pytest.raises(ValueError, match="coco_wholebody133 needs 133 joints"):
        get_layout("coco_wholebody133").to_h36m(np.zeros((1, 17, 2)), np.ones((1, 17)))
