"""BPTT against finite differences, and the fast RNN path against the step-by-step reference.

ReLU has a kink at 0, where a finite difference is meaningless.  Every gradient check below
draws its inputs with :func:`_draw_away_from_kinks`: it redraws (new seed) until every
pre-activation z is at least ``MARGIN`` from 0, and asserts that MARGIN exceeds, by a factor
of 10, a bound on how far a step of size H in any single entry can move any z.  A step then
never crosses a kink, and the loss is smooth along every difference the check takes.
"""
import numpy as np
import pytest

from scratchnet.nn import rnn as R
from scratchnet.gradcheck import check_gradients, numerical_gradient, rel_error

H_STEP = 1e-6  # finite-difference step
MARGIN = 1e-3  # smallest |pre-activation| accepted
TOL = 1e-6


def _draw(seed, N, T, D, Hd, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, T, D))
    h0 = rng.standard_normal((N, Hd))
    Wx = rng.standard_normal((D, Hd)) / np.sqrt(D)
    Wh = 0.6 * rng.standard_normal((Hd, Hd)) / np.sqrt(Hd)
    b = 0.1 * rng.standard_normal(Hd)
    return [a.astype(dtype) for a in (x, h0, Wx, Wh, b)]


def _preactivations(x, h0, Wx, Wh, b):
    h, _ = R.rnn_forward(x, h0, Wx, Wh, b)
    h_prev = np.concatenate([h0[:, None], h[:, :-1]], axis=1)
    return x @ Wx + h_prev @ Wh + b, h  # N,T,H each


def _draw_away_from_kinks(N, T, D, Hd):
    for seed in range(100):
        x, h0, Wx, Wh, b = _draw(seed, N, T, D, Hd)
        z, h = _preactivations(x, h0, Wx, Wh, b)
        if np.abs(z).min() < MARGIN:
            continue  # some pre-activation sits near the kink: redraw everything
        # A step H in one entry moves some z directly by at most H * c, c the largest of
        # |x|, |h| (for Wx, Wh entries), 1 (b), ||Wx||_2 (x), ||Wh||_2 (h0); ReLU is
        # 1-Lipschitz, so the change then grows by at most ||Wh||_2 per later step.
        wh = np.linalg.norm(Wh, 2)
        direct = max(np.abs(x).max(), np.abs(h).max(), np.abs(h0).max(), 1.0, np.linalg.norm(Wx, 2), wh)
        assert MARGIN > 10 * H_STEP * direct * sum(wh ** s for s in range(T + 1))
        return x, h0, Wx, Wh, b
    raise AssertionError("no draw kept every pre-activation away from 0")


# --------------------------------------------------------------------------- one step
def test_step_gradients():
    x, h0, Wx, Wh, b = _draw_away_from_kinks(3, 1, 4, 5)
    x = np.ascontiguousarray(x[:, 0])
    next_h, cache = R.rnn_step_forward(x, h0, Wx, Wh, b)
    dnext = np.random.default_rng(1).standard_normal(next_h.shape)
    grads = dict(zip(["x", "prev_h", "Wx", "Wh", "b"], R.rnn_step_backward(dnext, cache)))
    inputs = {"x": x, "prev_h": h0, "Wx": Wx, "Wh": Wh, "b": b}
    for name, arr in inputs.items():
        num = numerical_gradient(lambda: R.rnn_step_forward(x, h0, Wx, Wh, b)[0], arr, dnext, h=H_STEP)
        assert rel_error(num, grads[name]) < TOL, name


# --------------------------------------------------------------------------- sequence
@pytest.mark.parametrize("forward,backward", [(R.rnn_forward, R.rnn_backward),
                                              (R.rnn_forward_fast, R.rnn_backward_fast)])
def test_sequence_gradients_every_tensor(forward, backward):
    x, h0, Wx, Wh, b = _draw_away_from_kinks(2, 5, 3, 4)
    dh = np.random.default_rng(2).standard_normal((2, 5, 4))
    h, cache = forward(x, h0, Wx, Wh, b)
    dx, dh0, dWx, dWh, db = backward(dh, cache)

    def loss():
        return float(np.sum(forward(x, h0, Wx, Wh, b)[0] * dh))

    params = {"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "b": b}
    errors = check_gradients(loss, params, {"x": dx, "h0": dh0, "Wx": dWx, "Wh": dWh, "b": db}, h=H_STEP)
    assert max(errors.values()) < TOL, errors


def test_carried_gradient_matters():
    # upstream gradient on the LAST step only: every earlier step, and h0, gets its gradient
    # solely through the carried dprev_h, so a BPTT that forgot to carry it would give zeros
    x, h0, Wx, Wh, b = _draw_away_from_kinks(2, 5, 3, 4)
    dh = np.zeros((2, 5, 4))
    dh[:, -1] = 1.0
    _, cache = R.rnn_forward(x, h0, Wx, Wh, b)
    dx, dh0, *_ = R.rnn_backward(dh, cache)
    assert np.abs(dx[:, 0]).max() > 0 and np.abs(dh0).max() > 0


# --------------------------------------------------------------------------- fast == steps
@pytest.mark.parametrize("clip", [None, 0.05])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("with_h0", [True, False])
def test_fast_path_equals_steps(clip, dtype, tol, with_h0):
    x, h0, Wx, Wh, b = _draw(3, 3, 6, 5, 7, dtype)
    h0 = h0 if with_h0 else None
    dh = np.random.default_rng(4).standard_normal((3, 6, 7)).astype(dtype)
    h_ref, cache_ref = R.rnn_forward(x, h0, Wx, Wh, b)
    h, cache = R.rnn_forward_fast(x, h0, Wx, Wh, b)
    assert h.dtype == dtype
    np.testing.assert_allclose(h, h_ref, rtol=tol, atol=tol)
    names = ["dx", "dh0", "dWx", "dWh", "db"]
    for name, g, g_ref in zip(names, R.rnn_backward_fast(dh, cache, clip), R.rnn_backward(dh, cache_ref, clip)):
        assert g.dtype == dtype, name
        np.testing.assert_allclose(g, g_ref, rtol=tol, atol=tol, err_msg=name)


def test_clip_bounds_the_carried_gradient():
    # large recurrent weights make the carried gradient explode backwards in time
    rng = np.random.default_rng(5)
    x = np.abs(rng.standard_normal((2, 8, 3)))
    Wx, Wh, b = np.abs(rng.standard_normal((3, 4))), 2.0 * np.eye(4), np.ones(4)  # z > 0 always
    dh = np.zeros((2, 8, 4))
    dh[:, -1] = 1.0
    for forward, backward in [(R.rnn_forward, R.rnn_backward), (R.rnn_forward_fast, R.rnn_backward_fast)]:
        _, cache = forward(x, None, Wx, Wh, b)
        _, dh0_free, *_ = backward(dh, cache)
        np.testing.assert_allclose(dh0_free, 2.0 ** 8)  # (Wh^T)^8 applied to ones
        dx, dh0, *_ = backward(dh, cache, clip=1.0)
        assert np.abs(dh0).max() <= 1.0
        # step t < 7 gets the carried gradient only, clipped to 1, and then dx_t = 1 * Wx^T
        np.testing.assert_allclose(dx[:, 0], np.ones((2, 4)) @ Wx.T)


def test_rnn_rejects_bad_arguments():
    x, h0, Wx, Wh, b = _draw(0, 2, 3, 4, 5)
    with pytest.raises(ValueError, match=r"h0 has shape \(3, 5\)"):
        R.rnn_forward_fast(x, np.zeros((3, 5)), Wx, Wh, b)
    with pytest.raises(ValueError, match=r"Wh \(4, 4\)"):
        R.rnn_forward_fast(x, h0, Wx, np.zeros((4, 4)), b)
    _, cache = R.rnn_forward_fast(x, h0, Wx, Wh, b)
    with pytest.raises(ValueError, match="clip=0"):
        R.rnn_backward_fast(np.ones((2, 3, 5)), cache, clip=0)


def test_input_grad_false_skips_only_dx():
    x, h0, Wx, Wh, b = _draw(6, 2, 4, 3, 5)
    _, cache = R.rnn_forward_fast(x, h0, Wx, Wh, b)
    dh = np.random.default_rng(6).standard_normal((2, 4, 5))
    full, part = R.rnn_backward_fast(dh, cache, 1.0), R.rnn_backward_fast(dh, cache, 1.0, input_grad=False)
    assert part[0] is None
    for a, b_ in zip(full[1:], part[1:]):
        np.testing.assert_array_equal(a, b_)
