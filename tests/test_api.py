import numpy as np
import pytest

from pads_stream.api import load_model


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
    with pytest.raises(ValueError, match="partial has NaN"):
        model.complete(partial, np.ones((5, 17), bool), steps=3)
    with pytest.raises(ValueError, match="noisy must have shape"):
        model.denoise(gt[:, :, :2])
    assert model.generate(3, steps=4).shape == (3, 17, 3)
    with pytest.raises(ValueError, match="n must be"):
        model.generate(0)


def test_unknown_backend_is_refused(tiny_checkpoint):
    with pytest.raises(ValueError, match="backend must be one of"):
        load_model(tiny_checkpoint, backend="tpu")
