import numpy as np
import pytest

from pads_stream.api import load_model
from pads_stream.geometry.camera import normalized_rays


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return load_model(tiny_checkpoint, backend="torch")


@pytest.fixture
def inputs(test_set):
    return test_set["kp2d"][:4].copy(), test_set["K"][:4].copy(), test_set["root"][:4].copy()


def test_estimate_accepts_single_K_and_missing_joints(model, inputs):
    kp, K, root = inputs
    conf = np.ones((4, 17))
    conf[:, [3, 13]] = 0.0
    kp[:, [3, 13]] = np.nan  # missing joints may be NaN
    x = model.estimate(kp, K[0], root, conf=conf, steps=3)
    assert x.shape == (4, 17, 3) and np.all(np.isfinite(x))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda kp, K, root, conf: (kp[:, :16], K, root, conf), "kp2d must have shape"),
        (lambda kp, K, root, conf: (kp, K[:, :2], root, conf), "K must have shape"),
        (lambda kp, K, root, conf: (kp, np.zeros_like(K), root, conf), "K is singular"),
        (lambda kp, K, root, conf: (kp, K, root[:, :2], conf), "root must have shape"),
        (lambda kp, K, root, conf: (kp, K, root * [1, 1, -1], conf), "root depth must be > 0"),
        (lambda kp, K, root, conf: (kp, K, root, conf * 2), "conf must be finite and within"),
        (lambda kp, K, root, conf: (np.where(np.arange(17)[:, None] == 5, np.nan, kp), K, root, conf), "kp2d has NaN"),
    ],
)
def test_estimate_bad_input_names_the_argument(model, inputs, change, message):
    kp, K, root = inputs
    args = change(kp, K, root, np.ones((4, 17)))
    with pytest.raises(ValueError, match=message):
        model.estimate(*args[:3], conf=args[3], steps=2)


def test_other_tasks_shapes_and_validation(model, test_set):
    gt = test_set["gt"][:5]
    assert model.denoise(gt, steps=3).shape == (5, 17, 3)
    mask = np.ones((5, 17), bool)
    mask[:, 13] = False
    partial = np.where(mask[..., None], gt, np.nan)
    assert np.all(np.isfinite(model.complete(partial, mask, steps=3)))
    with pytest.raises(ValueError, match="mask must be a bool"):
        model.complete(partial, mask.astype(int), steps=3)
    with pytest.raises(ValueError, match="partial must be finite"):
        model.complete(partial, np.ones((5, 17), bool), steps=3)
    with pytest.raises(ValueError, match="noisy must have shape"):
        model.denoise(gt[:, :, :2])
    for bad in (np.nan, -0.01, [0.01, 0.02], "1cm"):
        with pytest.raises(ValueError, match="noise_std must"):
            model.denoise(gt, noise_std=bad)
    assert model.denoise(gt, steps=2, noise_std=np.full(5, 0.02)).shape == (5, 17, 3)
    assert model.generate(3, steps=4).shape == (3, 17, 3)
    with pytest.raises(ValueError, match="n must be"):
        model.generate(0)


def test_completion_keeps_the_observed_joints(model, test_set):
    gt = test_set["gt"][:4]
    mask = np.ones((4, 17), bool)
    mask[:, [1, 2, 3]] = False
    x = model.complete(np.where(mask[..., None], gt, np.nan), mask, steps=4)
    np.testing.assert_allclose(x[mask], gt[mask], atol=1e-6)
    assert np.all(np.isfinite(x))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, kp, K, root: m.estimate(kp, K, root, steps=0), "steps must be"),
        (lambda m, kp, K, root: m.estimate(kp, K, root, steps=2.5), "steps must be"),
        (lambda m, kp, K, root: m.estimate(kp, K, root, t_start=5000), "t_start must be"),
        (lambda m, kp, K, root: m.estimate(kp, K, root, t_start="400"), "t_start must be"),
        (lambda m, kp, K, root: m.estimate("kp", K, root), "kp2d must be a numeric array"),
        (lambda m, kp, K, root: m.estimate(kp, K, root, layout="openpose"), "layout must be one of"),
        (lambda m, kp, K, root: m.estimate(kp * 1e300, K, root), "kp2d has"),
        (lambda m, kp, K, root: m.estimate(kp, K, root * 1e300), "root must be finite"),
        (lambda m, kp, K, root: m.generate("3"), "n must be"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(model, inputs, call, message):
    with pytest.raises(ValueError, match=message):
        call(model, *inputs)


def test_millimetre_root_warns(model, inputs):
    kp, K, root = inputs
    with pytest.warns(RuntimeWarning, match="millimetres"):
        model.estimate(kp, K, root * 1000, steps=2)


def test_what_a_new_user_gets_wrong_fails_loudly(model, inputs):
    """Issue 15, part 5: a transposed K, normalised keypoints, a person with nothing seen and a step
    count out of range raise, naming the argument and its valid range."""
    kp, K, root = inputs
    with pytest.raises(ValueError, match="transposed"):
        model.estimate(kp, K[0].T, root, steps=2)
    with pytest.raises(ValueError, match="normalised"):
        model.estimate(kp / 1000.0, K, root, steps=2)
    conf = np.ones(kp.shape[:2])
    conf[1] = 0.0
    with pytest.raises(ValueError, match="sample 1 has no joint"):
        model.estimate(kp, K, root, conf=conf, steps=2)
    hi = model.max_steps(model.sampler.t_start)
    assert model.estimate(kp[:1], K[:1], root[:1], steps=hi).shape == (1, 17, 3)
    with pytest.raises(ValueError, match=rf"steps must be an integer in \[1, {hi}\].*got {hi + 1}"):
        model.estimate(kp, K, root, steps=hi + 1)


def test_coco_layout_is_accepted(model, test_set):
    from pads_stream.geometry.layout import get as get_layout
    from pads_stream.geometry.skeleton import H36M_JOINTS

    COCO_JOINTS = get_layout("coco17").joints

    kp_h36m = test_set["kp2d"][:3]
    coco = np.zeros((3, 17, 2))
    for i, name in enumerate(COCO_JOINTS):  # COCO joints that exist in H36M, the face from the head
        src = H36M_JOINTS.index(name) if name in H36M_JOINTS else H36M_JOINTS.index("head")
        coco[:, i] = kp_h36m[:, src]
    coco[:, COCO_JOINTS.index("nose")] = kp_h36m[:, H36M_JOINTS.index("neck_nose")]
    x = model.estimate(coco, test_set["K"][:3], test_set["root"][:3], steps=3, layout="coco17")
    assert x.shape == (3, 17, 3) and np.all(np.isfinite(x))


def test_root_is_estimated_when_not_given(model, test_set):
    idx = np.arange(0, 400, 40)
    kp, K, root = test_set["kp2d"][idx], test_set["K"][idx], test_set["root"][idx]
    _, r = model.estimate(kp, K, None, steps=3, return_root=True)
    assert r.shape == (10, 3) and np.all(r[:, 2] > 0)
    assert np.median(np.linalg.norm(r - root, axis=-1)) < 1.0  # body-size depth, even with a random prior


def test_unknown_backend_is_refused(tiny_checkpoint):
    with pytest.raises(ValueError, match="backend must be one of"):
        load_model(tiny_checkpoint, backend="tpu")


def test_a_root_guess_from_the_previous_frame_is_moved_onto_this_frames_pelvis_ray(model, test_set):
    """A tracked person who walked: the previous root, 0.5 m to the side, lends its depth only."""
    idx = np.arange(0, 400, 40)
    kp, K, root = test_set["kp2d"][idx], test_set["K"][idx], test_set["root"][idx]
    guess = root + [0.5, 0.0, 0.0]
    rays = normalized_rays(kp, K)[..., :2]
    _, r, ok = model.lift(rays, np.ones((10, 17)), None, steps=3, depth_guess=guess[:, 2])
    pelvis_ray = np.einsum("nij,nj->ni", np.linalg.inv(K), np.concatenate([kp[:, 0], np.ones((10, 1))], -1))
    off_ray = np.linalg.norm(np.cross(r, pelvis_ray / np.linalg.norm(pelvis_ray, axis=-1, keepdims=True)), axis=-1)
    assert ok.all() and off_ray.max() < 1e-3  # metres from the ray; the guess itself is 0.5 m off


def test_auto_steps_fill_the_budget_the_model_has_measured(test_set):
    """Issue 30: ``steps="auto"`` runs 10 steps until a call was timed, then as many as fit in
    ``budget_ms`` (here all 40), and needs a budget."""
    model = load_model()
    kp, K, root = test_set["kp2d"][:3], test_set["K"][:3], test_set["root"][:3]
    first = model.estimate(kp, K, root, steps="auto", budget_ms=1e6)
    np.testing.assert_array_equal(first, model.estimate(kp, K, root, steps=10))
    np.testing.assert_array_equal(model.estimate(kp, K, root, steps="auto", budget_ms=1e6),
                                  model.estimate(kp, K, root, steps=40))  # fmt: skip
    tight = model.estimate(kp, K, root, steps="auto", budget_ms=1e-3)  # nothing fits: the fewest steps
    np.testing.assert_array_equal(tight, first)
    with pytest.raises(ValueError, match="budget_ms"):
        model.estimate(kp, K, root, steps="auto")
