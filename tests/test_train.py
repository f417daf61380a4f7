import numpy as np
import torch

from pads_stream.data.datasets import AugmentConfig, augment_to_camera, load_positions_3d
from pads_stream.geometry.skeleton import bone_lengths
from pads_stream.prior.checkpoint import load_checkpoint
from pads_stream.prior.model import Denoiser, PriorConfig
from pads_stream.prior.schedule import DiffusionConfig, add_noise, alphas_cumprod
from pads_stream.prior.train import TrainConfig, train

from .conftest import H36M, needs_data

pytestmark = needs_data


def held_out_loss(net: Denoiser, x0: torch.Tensor) -> float:
    g = torch.Generator().manual_seed(0)
    abar = torch.tensor(alphas_cumprod(DiffusionConfig()), dtype=torch.float32)
    t = torch.randint(0, 1000, (x0.shape[0],), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        return float(((net(add_noise(x0, eps, abar[t][:, None, None]), t) - eps) ** 2).mean())


def test_a_few_training_steps_lower_the_loss(tmp_path):
    prior = {"d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64}
    cfg = TrainConfig(
        h36m=str(H36M), bvh_dirs=(), train_subjects=("S1",), holdout_takes="", prior=prior,
        batch_size=64, steps=150, warmup=10, lr=3e-3, checkpoint_every=1000, threads=1,
    )  # fmt: skip
    final = train(cfg, tmp_path)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["step"] == 150 and "optimizer" not in load_checkpoint(final)

    poses = load_positions_3d(H36M)["S5"]["walking_1"][:256]  # another subject
    x0 = torch.from_numpy(augment_to_camera(poses, np.random.default_rng(1), AugmentConfig())) / ckpt["scale"]
    torch.manual_seed(cfg.seed)
    untrained = Denoiser(PriorConfig(**prior))
    trained = Denoiser(PriorConfig(**prior))
    trained.load_state_dict(ckpt["raw_weights"])
    assert held_out_loss(trained, x0) < 0.7 * held_out_loss(untrained, x0)


def test_augmentation_varies_bones_and_stays_pelvis_relative():
    poses = load_positions_3d(H36M)["S1"]["walking_1"][:100]
    x = augment_to_camera(poses, np.random.default_rng(0), AugmentConfig())
    np.testing.assert_allclose(x[:, 0], 0.0, atol=1e-6)
    ratio = bone_lengths(x) / bone_lengths(poses)
    assert 0.05 < ratio.std() < 0.2 and 0.9 < ratio.mean() < 1.1


def test_torchrun_two_processes_train_and_resume(tmp_path):
    import json
    import shutil
    import subprocess

    torchrun = shutil.which("torchrun")
    assert torchrun, "torchrun ships with torch"
    cfg = {"h36m": str(H36M), "batch_size": 32, "steps": 10, "bvh_dirs": [], "train_subjects": ["S1"],
           "holdout_takes": "", "prior": {"d_model": 32, "n_layers": 1, "n_heads": 4, "d_ff": 64},
           "checkpoint_every": 5, "threads": 1}  # fmt: skip
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    base = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "pads_stream.prior.train",
            "--config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "run")]  # fmt: skip
    for extra in ([], ["--resume", "--steps", "15"]):
        done = subprocess.run(base + extra, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["step"] == 15 and len(ckpt["rng"]) == 2 and ckpt["rng"][0] != ckpt["rng"][1]


def test_plain_arrays_join_the_training_pool(tmp_path):
    from pads_stream.prior.train import training_pools

    extra = np.random.default_rng(0).normal(0, 0.3, (7, 17, 3)).astype(np.float32)
    np.save(tmp_path / "poses.npy", extra)
    base = TrainConfig(h36m=str(H36M), bvh_dirs=(), train_subjects=("S1",), holdout_takes="")
    with_plain = TrainConfig(**{**base.__dict__, "plain_arrays": (str(tmp_path / "poses.npy"),)})
    a, b = training_pools(base)[0], training_pools(with_plain)[0]
    assert len(b) == len(a) + 7
    np.testing.assert_allclose(b[-7:], extra - extra[:, :1])  # made pelvis-relative


def test_saved_pools_replace_the_data_folders(tmp_path):
    from pads_stream.prior.train import save_pools, training_pools

    base = TrainConfig(h36m=str(H36M), bvh_dirs=(), train_subjects=("S1",), holdout_takes="")
    save_pools(base, tmp_path / "pools.npz")
    from_file = TrainConfig(h36m="absent.npz", bvh_dirs=("absent",), pools=str(tmp_path / "pools.npz"), bvh_fraction=0)
    a, b = training_pools(base), training_pools(from_file)
    assert len(a) == len(b) == 1 and np.array_equal(a[0], b[0])


def test_a_time_budget_shrinks_the_schedule_to_the_steps_that_fit(tmp_path):
    from pads_stream.prior.train import fitted_steps

    assert fitted_steps(1000, 200, rate=10.0, seconds_left=30.0) == 500
    assert fitted_steps(1000, 200, rate=10.0, seconds_left=1e6) == 1000
    assert fitted_steps(1000, 200, rate=10.0, seconds_left=-5.0) == 201  # over budget: stop at the next step
    cfg = TrainConfig(
        h36m=str(H36M), bvh_dirs=(), train_subjects=("S1",), holdout_takes="", batch_size=16, steps=10**7,
        prior={"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32}, checkpoint_every=10**7, threads=1,
        max_seconds=3.0,
    )  # fmt: skip
    ckpt = load_checkpoint(train(cfg, tmp_path))
    assert 200 < ckpt["step"] < 10**7 and ckpt["train"]["steps"] == ckpt["step"]  # the schedule that ran is saved


def test_a_resumed_run_ends_with_the_weights_of_an_unbroken_one(tmp_path, monkeypatch):
    import shutil

    cfg = TrainConfig(
        h36m=str(H36M), bvh_dirs=(), train_subjects=("S1",), holdout_takes="", batch_size=32, steps=20,
        prior={"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32}, checkpoint_every=10, threads=1,
    )  # fmt: skip
    save = torch.save

    def keep_step_10(obj, path, *args, **kwargs):  # the step-10 checkpoint, before step 20 overwrites it
        save(obj, path, *args, **kwargs)
        if isinstance(obj, dict) and obj.get("step") == 10 and "optimizer" in obj:
            save(obj, tmp_path / "step10.pt")

    monkeypatch.setattr(torch, "save", keep_step_10)
    train(cfg, tmp_path / "unbroken")
    monkeypatch.setattr(torch, "save", save)
    (tmp_path / "resumed").mkdir()
    shutil.copy(tmp_path / "step10.pt", tmp_path / "resumed" / "last.pt")
    train(cfg, tmp_path / "resumed", resume=True)
    a, b = (load_checkpoint(tmp_path / run / "last.pt") for run in ("unbroken", "resumed"))
    assert a["step"] == b["step"] == 20
    for name, weight in a["raw_weights"].items():  # the batches drawn ahead on the prefetch thread included
        assert torch.equal(weight, b["raw_weights"][name]), name
