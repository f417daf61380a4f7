import numpy as np

from pads_stream.geometry.smoothing import DepthFilterConfig, OneEuroConfig, depth_filter, one_euro


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


def test_depth_filter_smooths_jitter_follows_a_walker_and_restarts_on_jumps():
    rng = np.random.default_rng(0)
    cfg = DepthFilterConfig()
    t = np.arange(250) / 25.0
    truth = np.where(t < 4, 4.0, 4.0 + 1.5 * (t - 4))  # stands at 4 m, then walks away at 1.5 m/s
    measured = truth * np.exp(rng.normal(0, 0.01, t.shape))  # 1 % depth jitter per frame
    state, out = None, []
    for k in range(len(t)):
        z, state = depth_filter(state, float(measured[k]), float(t[k]), cfg)
        out.append(z)
    out = np.array(out)
    assert out[0] == measured[0]  # a new track passes unchanged
    jitter_in = np.abs(np.diff(measured[25:100] - truth[25:100], 2)).mean()
    jitter_out = np.abs(np.diff(out[25:100] - truth[25:100], 2)).mean()
    assert jitter_out < 0.5 * jitter_in  # acceleration noise at rest halved at least
    assert np.abs(out[150:] / truth[150:] - 1).mean() < 0.01  # a walker is followed within 1 %
    z, fresh = depth_filter(state, 2.0 * float(truth[-1]), float(t[-1]) + 0.04, cfg)  # twice as far: a new person
    assert z == 2.0 * float(truth[-1]) and fresh.mean[1] == 0.0
    z, _ = depth_filter(state, 3.0, float(t[0]), cfg)  # time going back: restart, pass through
    assert z == 3.0


def test_a_warm_track_that_keeps_disagreeing_with_cold_checks_is_replaced():
    """Issue 16: a warm start can keep a wrong pose for good (found when a cluster moved a stream);
    the tracker's cold check replaces it after ``cold_check_runs`` disagreements in a row, and only then."""
    from pads_stream.stream.tracker import TrackerConfig, cold_check

    cfg = TrackerConfig(cold_check_mm=100.0, cold_check_runs=2)
    rng = np.random.default_rng(0)
    pose = rng.normal(0, 0.3, (17, 3))
    far, near = pose + [0, 0, 0.25], pose + [0, 0, 0.05]  # 250 mm and 50 mm from the warm pose

    def run(cold: np.ndarray, disagreed: int) -> tuple[np.ndarray, tuple[int, int]]:
        rel = np.stack([pose, cold])  # row 0: person 0's warm estimate; row 1: its cold check
        root = np.array([[0, 0, 4.0], [0, 0, 4.1]])
        checks = [(5, disagreed)]  # the track's (since_check, disagreed), due a check
        cold_check(rel, root, np.ones(2, bool), np.array([0, 0]), checks, cfg)
        return rel[0], checks[0]

    kept, state = run(far, 0)
    assert np.array_equal(kept, pose) and state == (0, 1)  # one disagreement: kept, counted
    replaced, state = run(far, 1)
    assert np.array_equal(replaced, far) and state == (0, 0)  # the second in a row: the cold pose wins
    kept, state = run(near, 1)
    assert np.array_equal(kept, pose) and state == (0, 0)  # agreement resets the count
