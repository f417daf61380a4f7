"""The torch backend's CUDA graphs: batch padding everywhere; parity with eager torch on a GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pads_stream.runtime.cudagraph import bucket, padded

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU; none is visible")


def test_batches_pad_to_the_next_power_of_two_with_the_first_row():
    assert [bucket(b) for b in (1, 2, 3, 4, 5, 16, 17, 1000)] == [1, 2, 4, 4, 8, 16, 32, 1024]
    x = np.arange(3 * 2, dtype=np.float32).reshape(3, 2)
    p = padded(x, 4)
    assert p.shape == (4, 2) and np.array_equal(p[:3], x) and np.array_equal(p[3], x[0])
    assert padded(x, 3) is x


@needs_cuda
def test_graphed_steps_match_eager_torch_for_changing_batches(tiny_checkpoint):
    from pads_stream.api import load_model

    model = load_model(tiny_checkpoint, backend="torch")
    rng = np.random.default_rng(0)
    K = np.array([[1000.0, 0, 500], [0, 1000, 500], [0, 0, 1]], np.float32)
    for b in (3, 5, 3, 1):  # 3 and 5 share no graph; the second 3 rebinds the first's buffers
        kp = (500 + 100 * rng.standard_normal((b, 17, 2))).astype(np.float32)
        root = np.tile([0.0, 0.0, 5.0], (b, 1)).astype(np.float32)
        model.backend.cuda_graphs = True
        graphed = model.estimate(kp, np.tile(K, (b, 1, 1)), root, steps=5)
        model.backend.cuda_graphs = False
        eager = model.estimate(kp, np.tile(K, (b, 1, 1)), root, steps=5)
        assert np.abs(graphed - eager).max() < 1e-3  # metres
