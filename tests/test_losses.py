"""Losses: exact gradients against centred differences, zero at the target, silent bins."""
import numpy as np
import pytest

from scratchnet.errors import ScratchnetError
from scratchnet.gradcheck import numerical_gradient, rel_error
from scratchnet.losses import LOSSES, get_loss, is_loss, kl_loss, mse_loss

SHAPE = (2, 3, 5)  # N,T,F


def spectra(seed, dtype=np.float64, low=0.2, high=1.5):
    """Four positive arrays away from 0: y1, y2, t1, t2."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, high, SHAPE).astype(dtype) for _ in range(4)]


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("gamma", [0.0, 0.05])
def test_gradient_matches_finite_difference(name, gamma):
    loss_fn = LOSSES[name]
    y1, y2, t1, t2 = spectra(0)
    _, dy1, dy2 = loss_fn(y1, y2, t1, t2, gamma=gamma)
    for y, dy in ((y1, dy1), (y2, dy2)):
        num = numerical_gradient(lambda: loss_fn(y1, y2, t1, t2, gamma=gamma)[0], y)
        err = rel_error(dy, num)
        assert err < 1e-6, f"{name} gamma={gamma}: rel error {err:.2e}"


def test_mse_matches_the_formula():
    y1, y2, t1, t2 = spectra(1)
    g = 0.05
    n_frames = SHAPE[0] * SHAPE[1]
    want = (np.sum((y1 - t1) ** 2) + np.sum((y2 - t2) ** 2)
            - g * (np.sum((y1 - t2) ** 2) + np.sum((y2 - t1) ** 2))) / n_frames
    assert mse_loss(y1, y2, t1, t2, gamma=g)[0] == pytest.approx(want, rel=1e-12)


def test_kl_matches_the_formula_without_floor():
    y1, y2, t1, t2 = spectra(2)
    n_frames = SHAPE[0] * SHAPE[1]

    def D(t, y):
        return np.sum(t * np.log(t / y) - t + y)
    want = (D(t1, y1) + D(t2, y2) - 0.05 * (D(t2, y1) + D(t1, y2))) / n_frames
    got = kl_loss(y1, y2, t1, t2, gamma=0.05, floor=1e-300)[0]
    assert got == pytest.approx(want, rel=1e-12)


def test_is_matches_the_formula_without_floor():
    y1, y2, t1, t2 = spectra(3)
    n_frames = SHAPE[0] * SHAPE[1]

    def D(t, y):
        return np.sum(t / y - np.log(t / y) - 1)
    want = (D(t1, y1) + D(t2, y2)) / n_frames
    assert is_loss(y1, y2, t1, t2, floor=1e-300)[0] == pytest.approx(want, rel=1e-12)


def test_normalised_per_frame():
    # Doubling the batch with a copy of itself leaves the loss unchanged.
    y1, y2, t1, t2 = spectra(4)
    twice = [np.concatenate([a, a]) for a in (y1, y2, t1, t2)]
    for loss_fn in LOSSES.values():
        assert loss_fn(*twice)[0] == pytest.approx(loss_fn(y1, y2, t1, t2)[0], rel=1e-12)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_zero_at_target_and_non_negative(name):
    loss_fn = LOSSES[name]
    y1, y2, t1, t2 = spectra(5, low=0.0)
    t1[0, 0, :2] = 0.0                    # silent target bins too
    loss, dy1, dy2 = loss_fn(t1.copy(), t2.copy(), t1, t2)
    assert loss == pytest.approx(0.0, abs=1e-12)
    assert np.max(np.abs(dy1)) < 1e-12 and np.max(np.abs(dy2)) < 1e-12
    for seed in range(5):
        y1, y2, _, _ = spectra(10 + seed, low=0.0)
        assert loss_fn(y1, y2, t1, t2)[0] >= 0.0


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("gamma", [0.0, 0.05])
def test_finite_on_silent_bins(name, gamma):
    y1, y2, t1, t2 = spectra(6, low=0.0)
    t1[0] = 0.0                           # silent vocals in the first excerpt
    y2[1, :, :3] = 0.0                    # estimate silent where the target is not
    y1[1, 0] = t1[1, 0] = 0.0             # both silent
    loss, dy1, dy2 = LOSSES[name](y1, y2, t1, t2, gamma=gamma)
    assert np.isfinite(loss) and np.all(np.isfinite(dy1)) and np.all(np.isfinite(dy2))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_float32_stays_float32(name):
    y1, y2, t1, t2 = spectra(7, dtype=np.float32)
    loss, dy1, dy2 = LOSSES[name](y1, y2, t1, t2, gamma=0.05)
    assert isinstance(loss, float)
    assert dy1.dtype == np.float32 and dy2.dtype == np.float32
    assert dy1.shape == SHAPE and dy2.shape == SHAPE
    _, d64, _ = LOSSES[name](*(a.astype(np.float64) for a in (y1, y2, t1, t2)), gamma=0.05)
    assert rel_error(dy1.astype(np.float64), d64) < 1e-4


def test_get_loss():
    assert get_loss("mse") is mse_loss and get_loss("kl") is kl_loss and get_loss("is") is is_loss
    with pytest.raises(ScratchnetError, match=r"unknown loss 'l1'.*'mse', 'kl', 'is'"):
        get_loss("l1")


def test_bad_arguments_are_named():
    y1, y2, t1, t2 = spectra(8)
    with pytest.raises(ScratchnetError, match="shape"):
        mse_loss(y1[:, :2], y2, t1, t2)
    with pytest.raises(ScratchnetError, match="gamma=1.5"):
        kl_loss(y1, y2, t1, t2, gamma=1.5)
    with pytest.raises(ScratchnetError, match="floor=0"):
        is_loss(y1, y2, t1, t2, floor=0)
