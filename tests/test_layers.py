"""Every layer's backward pass against a centred finite difference, in float64.

Every test runs twice, on the readable pairs of :mod:`scratchnet.nn` and on the fast ones
(the ``L`` namespace below picks ``x_forward`` or ``x_forward_fast`` by the backend).

Each check perturbs one input or parameter tensor, differences ``sum(out * dout)`` for a
random upstream gradient ``dout`` and compares with the analytic gradient by
:func:`scratchnet.gradcheck.rel_error`.  Layers with kinks (ReLU at 0, max-pool ties, |a|
at 0 in the mask) get inputs drawn away from the kink by much more than the step h, so that
no finite-difference step crosses one.
"""
import numpy as np
import pytest

from scratchnet.gradcheck import numerical_gradient, rel_error
from scratchnet.nn import activations, affine, context, conv1d, init, mask, maxpool1d


class _Layers:
    """``L.affine_forward`` etc.: the readable pair, or the fast pair when ``fast`` is set."""
    modules = (affine, activations, context, conv1d, maxpool1d, mask, init)
    fast = False

    def __getattr__(self, name):
        for m in self.modules:
            if hasattr(m, name):
                return getattr(m, name + "_fast", None) if self.fast and hasattr(m, name + "_fast") \
                    else getattr(m, name)
        raise AttributeError(name)


L = _Layers()


@pytest.fixture(autouse=True, params=["reference", "fast"])
def backend(request):
    L.fast = request.param == "fast"
    yield request.param
    L.fast = False

H = 1e-6  # finite-difference step
TOL = 1e-6  # largest relative error accepted in float64


def _rng(seed=0):
    return np.random.default_rng(seed)


def _away_from_zero(rng, shape, margin=0.1):
    """Random signs times |values| in [margin, 1]: no entry within ``margin`` >> H of 0."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(margin, 1.0, size=shape)


def _check(forward, inputs, backward_grads, dout):
    """Assert rel_error < TOL for every named input; ``forward()`` reads the arrays in inputs."""
    for name, x in inputs.items():
        num = numerical_gradient(forward, x, dout, h=H)
        err = rel_error(num, backward_grads[name])
        assert err < TOL, (f"d{name}: rel error {err:.2e}\n"
                           f"numerical {num.ravel()[:6]}\nanalytic {backward_grads[name].ravel()[:6]}")


# --------------------------------------------------------------------------- gradient checks
def test_affine_gradients_3d_input():
    rng = _rng(1)
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    out, cache = L.affine_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = L.affine_backward(dout, cache)
    _check(lambda: L.affine_forward(x, w, b)[0], {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, dout)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_activation_gradients(name):
    rng = _rng(2)
    x = _away_from_zero(rng, (3, 4, 5)) * 3  # ReLU kink at 0 is >= 0.3 away; tanh/sigmoid smooth
    fwd, bwd = getattr(L, f"{name}_forward"), getattr(L, f"{name}_backward")
    out, cache = fwd(x)
    dout = rng.standard_normal(out.shape)
    _check(lambda: fwd(x)[0], {"x": x}, {"x": bwd(dout, cache)}, dout)


def test_sigmoid_is_stable_for_large_inputs():
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    with np.errstate(over="raise"):
        out, _ = L.sigmoid_forward(x)
    np.testing.assert_allclose(out, [0.0, 1 / (1 + np.exp(30.0)), 0.5, 1 / (1 + np.exp(-30.0)), 1.0], rtol=1e-12)


@pytest.mark.parametrize("k", [0, 1, 2])
def test_context_gradients(k):
    rng = _rng(3)
    x = rng.standard_normal((2, 4, 3))  # T=4 with k=2: the edge frames repeat
    out, cache = L.context_forward(x, k)
    dout = rng.standard_normal(out.shape)
    _check(lambda: L.context_forward(x, k)[0], {"x": x}, {"x": L.context_backward(dout, cache)}, dout)


def test_context_layout_repeats_edge_frames():
    x = np.arange(4, dtype=float).reshape(1, 4, 1)  # frame t holds the value t
    out, _ = L.context_forward(x, 1)
    np.testing.assert_array_equal(out[0], [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]])


@pytest.mark.parametrize("K", [1, 3, 4])
def test_conv1d_gradients(K):
    rng = _rng(4)
    x, w, b = rng.standard_normal((2, 5, 3)), rng.standard_normal((K, 3, 2)), rng.standard_normal(2)
    out, cache = L.conv1d_forward(x, w, b)
    assert out.shape == (2, 5, 2)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = L.conv1d_backward(dout, cache)
    _check(lambda: L.conv1d_forward(x, w, b)[0], {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, dout)


def test_conv1d_same_padding_alignment():
    # K=2 pads 0 frames left, 1 right: out[t] = x[t] w[0] + x[t+1] w[1]
    x = np.arange(1.0, 4.0).reshape(1, 3, 1)
    w = np.array([1.0, 10.0]).reshape(2, 1, 1)
    out, _ = L.conv1d_forward(x, w, np.zeros(1))
    np.testing.assert_array_equal(out.ravel(), [21.0, 32.0, 3.0])


def test_conv1d_with_one_tap_equals_affine():
    rng = _rng(5)
    x, w, b = rng.standard_normal((2, 5, 3)), rng.standard_normal((3, 4)), rng.standard_normal(4)
    conv, ccache = L.conv1d_forward(x, w[None], b)
    aff, acache = L.affine_forward(x, w, b)
    np.testing.assert_allclose(conv, aff, rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(aff.shape)
    for gc, ga in zip(L.conv1d_backward(dout, ccache), L.affine_backward(dout, acache)):
        np.testing.assert_allclose(gc.reshape(ga.shape), ga, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("pool", [2, 3])
@pytest.mark.parametrize("stride", [1, 2])
def test_maxpool1d_gradients(padding, pool, stride):
    rng = _rng(6)
    N, T, C = 2, 7, 3
    # a random permutation of values 0.1 apart: no ties, and the gap between a window's
    # maximum and runner-up (>= 0.1) is far more than 2H, so no step changes the argmax
    x = rng.permutation(N * T * C).reshape(N, T, C) * 0.1
    out, cache = L.maxpool1d_forward(x, pool, stride, padding)
    T_out = -(-T // stride) if padding == "same" else 1 + (T - pool) // stride
    assert out.shape == (N, T_out, C)
    dout = rng.standard_normal(out.shape)
    dx = L.maxpool1d_backward(dout, cache)
    assert dx.shape == x.shape
    _check(lambda: L.maxpool1d_forward(x, pool, stride, padding)[0], {"x": x}, {"x": dx}, dout)


def test_maxpool1d_same_keeps_frames_and_ties_go_first():
    x = np.array([1.0, 3.0, 3.0, 2.0]).reshape(1, 4, 1)
    out, cache = L.maxpool1d_forward(x, 3, 1, "same")
    np.testing.assert_array_equal(out.ravel(), [3.0, 3.0, 3.0, 3.0])
    dx = L.maxpool1d_backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(dx.ravel(), [0.0, 3.0, 1.0, 0.0])  # tie 3,3 -> first


def test_mask_gradients():
    rng = _rng(7)
    N, T, F = 2, 3, 4
    a = _away_from_zero(rng, (N, T, 2 * F))  # |a| >= 0.1: the kink of |.| at 0 is never crossed
    X = rng.uniform(0.1, 2.0, size=(N, T, F))
    (y1, y2), cache = L.mask_forward(a, X)
    dy1, dy2 = rng.standard_normal(y1.shape), rng.standard_normal(y2.shape)
    da, dX = L.mask_backward(dy1, dy2, cache)
    both = (dy1, dy2)  # difference sum(y1 dy1) + sum(y2 dy2): both outputs at once
    _check(lambda: L.mask_forward(a, X)[0], {"a": a, "X": X}, {"a": da, "X": dX}, both)
    # and each output on its own
    zero = np.zeros_like(dy1)
    for d1, d2 in [(dy1, zero), (zero, dy2)]:
        da_i, dX_i = L.mask_backward(d1, d2, cache)
        _check(lambda: L.mask_forward(a, X)[0], {"a": a, "X": X}, {"a": da_i, "X": dX_i}, (d1, d2))


def test_mask_outputs_sum_to_mixture():
    rng = _rng(8)
    a = _away_from_zero(rng, (2, 3, 10))
    X = rng.uniform(0.0, 2.0, size=(2, 3, 5))
    (y1, y2), _ = L.mask_forward(a, X, eps=1e-12)  # |a1| + |a2| >= 0.2 >> eps
    np.testing.assert_allclose(y1 + y2, X, rtol=1e-10)
    assert (y1 >= 0).all() and (y2 >= 0).all()


def test_mask_on_silence_is_zero_without_nan():
    a, X = np.zeros((1, 2, 6)), np.zeros((1, 2, 3))
    (y1, y2), cache = L.mask_forward(a, X)
    da, dX = L.mask_backward(np.ones_like(y1), np.ones_like(y2), cache)
    for arr in (y1, y2, da, dX):
        assert np.isfinite(arr).all() and not arr.any()


def test_mask_rejects_bad_input():
    with pytest.raises(ValueError, match="eps=0"):
        L.mask_forward(np.ones((1, 2, 6)), np.ones((1, 2, 3)), eps=0)
    with pytest.raises(ValueError, match=r"\(1, 2, 5\)"):
        L.mask_forward(np.ones((1, 2, 5)), np.ones((1, 2, 3)))


def test_layers_reject_bad_arguments():
    x = np.ones((1, 4, 3))
    with pytest.raises(ValueError, match="k=-1"):
        L.context_forward(x, -1)
    with pytest.raises(ValueError, match="pool_size=0"):
        L.maxpool1d_forward(x, 0)
    with pytest.raises(ValueError, match="padding='full'"):
        L.maxpool1d_forward(x, 3, 1, "full")
    with pytest.raises(ValueError, match="pool_size=5"):
        L.maxpool1d_forward(x, 5, 1, "valid")
    with pytest.raises(ValueError, match=r"w \(2, 4, 2\)"):
        L.conv1d_forward(x, np.ones((2, 4, 2)), np.ones(2))
    with pytest.raises(ValueError, match="affine"):
        L.affine_forward(x, np.ones((4, 2)), np.ones(2))


# --------------------------------------------------------------------------- dtype
def test_float32_in_float32_out():
    rng = _rng(9)
    f32 = np.float32
    x = rng.standard_normal((2, 5, 3)).astype(f32)
    w, b = rng.standard_normal((3, 4)).astype(f32), rng.standard_normal(4).astype(f32)
    wc = rng.standard_normal((3, 3, 4)).astype(f32)

    def grads_of(out, backward, cache):
        return backward(np.ones_like(out), cache)

    cases = {
        "affine": (L.affine_forward(x, w, b), L.affine_backward),
        "relu": (L.relu_forward(x), L.relu_backward),
        "tanh": (L.tanh_forward(x), L.tanh_backward),
        "sigmoid": (L.sigmoid_forward(x), L.sigmoid_backward),
        "context": (L.context_forward(x, 1), L.context_backward),
        "conv1d": (L.conv1d_forward(x, wc, b), L.conv1d_backward),
        "maxpool1d same": (L.maxpool1d_forward(x, 3, 2, "same"), L.maxpool1d_backward),
        "maxpool1d valid": (L.maxpool1d_forward(x, 2, 1, "valid"), L.maxpool1d_backward),
    }
    for name, ((out, cache), backward) in cases.items():
        grads = grads_of(out, backward, cache)
        grads = grads if isinstance(grads, tuple) else (grads,)
        assert out.dtype == f32, name
        assert all(g.dtype == f32 for g in grads), name
    a = rng.standard_normal((2, 5, 6)).astype(f32)
    (y1, y2), cache = L.mask_forward(a, np.abs(x))
    da, dX = L.mask_backward(np.ones_like(y1), np.ones_like(y2), cache)
    assert {y1.dtype, y2.dtype, da.dtype, dX.dtype} == {np.dtype(f32)}


# --------------------------------------------------------------------------- initializers
def test_initializers_shapes_limits_dtype():
    rng = _rng(10)
    w = L.glorot_uniform(30, 20, rng, np.float32)
    assert w.shape == (30, 20) and w.dtype == np.float32
    assert np.abs(w).max() <= np.sqrt(6 / 50) and np.abs(w).max() > 0.8 * np.sqrt(6 / 50)
    Wh = L.recurrent_uniform(40, rng, np.float64)
    assert Wh.shape == (40, 40) and Wh.dtype == np.float64
    assert np.abs(Wh).max() <= np.sqrt(6 / 120) and np.abs(Wh).max() > 0.8 * np.sqrt(6 / 120)
    wc = L.conv_glorot(3, 8, 16, rng, np.float32)
    assert wc.shape == (3, 8, 16)
    assert np.abs(wc).max() <= np.sqrt(6 / (24 + 48)) and np.abs(wc).max() > 0.8 * np.sqrt(6 / 72)


def test_input_grad_false_skips_only_dx(backend):
    if backend != "fast":
        pytest.skip("input_grad is an option of the fast pairs only")
    rng = _rng(9)
    x, w, b = rng.standard_normal((2, 4, 3)), rng.standard_normal((3, 5)), rng.standard_normal(5)
    out, cache = L.affine_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    full, part = L.affine_backward(dout, cache), L.affine_backward(dout, cache, input_grad=False)
    assert part[0] is None
    for a, b_ in zip(full[1:], part[1:]):
        np.testing.assert_array_equal(a, b_)
    wc = rng.standard_normal((3, 3, 5))
    out, cache = L.conv1d_forward(x, wc, b)
    full, part = L.conv1d_backward(dout, cache), L.conv1d_backward(dout, cache, input_grad=False)
    assert part[0] is None
    for a, b_ in zip(full[1:], part[1:]):
        np.testing.assert_array_equal(a, b_)
