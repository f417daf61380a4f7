import numpy as np

from pads_stream.smoothing import OneEuroConfig, one_euro


def test_one_euro_smooths_jitter_and_follows_motion():
    rng = np.random.default_rng(0)
    cfg = OneEuroConfig(min_cutoff=1.0, beta=0.5)
    t = np.arange(200) / 25.0
    truth = np.zeros((200, 17, 3))
    truth[100:, :, 0] = np.linspace(0, 2.0, 100)[:, None]  # still, then walking 2 m in 4 s
    noisy = truth + rng.normal(0, 0.01, truth.shape)
    state, out = None, []
    for k in range(200):
        y, state = one_euro(state, noisy[k], t[k], cfg)
        out.append(y)
    out = np.array(out)
    still_in, still_out = (np.abs(noisy[20:100] - truth[20:100]).mean(), np.abs(out[20:100] - truth[20:100]).mean())
    assert still_out < 0.5 * still_in  # jitter at rest is halved at least
    assert np.abs(out[150:] - truth[150:]).mean() < 0.05  # a walking person is followed (lag < 5 cm)
    y, fresh = one_euro(state, noisy[0], t[0], cfg)  # time going back: restart, pass through
    np.testing.assert_array_equal(y, noisy[0])
