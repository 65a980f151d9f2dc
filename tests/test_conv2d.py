"""The two-dimensional layers: conv2d, its adjoint conv2d_transpose, maxpool2d (issue 26).

Every backward, readable and fast, against a centred finite difference in float64 over odd
and even sizes, stride 1 and 2, padding 0, 1 and "same", one and several channels, N > 1;
the transposed convolution held to be the adjoint of the convolution; both against PyTorch's
``conv2d`` / ``conv_transpose2d`` (forward and every gradient, through torch.autograd, layouts
transposed NCHW <-> NHWC); the arguments' errors.  The fast pairs against the readable ones,
and the Numba kernels against NumPy twins, are in tests/test_kernels.py.  Max-pooling is
checked on inputs without ties (a permutation of values 0.1 apart, far more than the step).
"""
import numpy as np
import pytest

from scratchnet.gradcheck import numerical_gradient, rel_error
from scratchnet.nn import conv2d as C
from scratchnet.nn import conv2d_transpose as T
from scratchnet.nn import maxpool2d as M

H_STEP = 1e-6  # finite-difference step
TOL = 1e-6  # largest relative error accepted in float64

PAIRS = {"reference": (C.conv2d_forward, C.conv2d_backward),
         "fast": (C.conv2d_forward_fast, C.conv2d_backward_fast)}
T_PAIRS = {"reference": (T.conv2d_transpose_forward, T.conv2d_transpose_backward),
           "fast": (T.conv2d_transpose_forward_fast, T.conv2d_transpose_backward_fast)}
M_PAIRS = {"reference": (M.maxpool2d_forward, M.maxpool2d_backward),
           "fast": (M.maxpool2d_forward_fast, M.maxpool2d_backward_fast)}

#: N, H, W, Cin, Cout, KH, KW, stride, padding
CONV_CASES = [
    (1, 5, 6, 1, 1, 3, 3, 1, 0),
    (2, 5, 6, 3, 4, 3, 3, 1, 1),
    (2, 5, 6, 4, 2, 3, 3, 1, "same"),  # Cout <= Cin: dx and dW from one unfolding of dout
    (2, 6, 7, 2, 3, 3, 3, 2, "same"),
    (2, 7, 6, 3, 2, 2, 3, (2, 1), (0, 1)),
    (1, 6, 5, 2, 2, 5, 3, 2, 2),
    (3, 4, 4, 1, 3, 3, 3, 1, "same"),
    (2, 5, 4, 2, 1, 1, 1, 2, 0),
]
#: N, H, W, Cin, Cout, KH, KW, stride, padding, output_padding
TRANSPOSE_CASES = [
    (1, 3, 4, 1, 1, 3, 3, 1, 0, 0),
    (2, 3, 4, 3, 2, 3, 3, 2, 1, 1),
    (2, 4, 3, 2, 3, 4, 4, 2, 1, 0),
    (1, 3, 3, 2, 2, 3, 2, (2, 3), (1, 0), (0, 2)),
    (3, 2, 5, 1, 2, 2, 2, 2, 0, 0),
]


def _draw(rng, *shapes):
    return [rng.standard_normal(s) for s in shapes]


def _check(forward, inputs, grads, dout):
    for name, x in inputs.items():
        num = numerical_gradient(forward, x, dout, h=H_STEP)
        err = rel_error(num, grads[name])
        assert err < TOL, f"d{name}: rel error {err:.2e}\nnumerical {num.ravel()[:6]}\nanalytic {grads[name].ravel()[:6]}"


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("backend", ["reference", "fast"])
@pytest.mark.parametrize("N,H,W,Cin,Cout,KH,KW,stride,padding", CONV_CASES)
def test_conv2d_gradients(backend, N, H, W, Cin, Cout, KH, KW, stride, padding):
    forward, backward = PAIRS[backend]
    rng = np.random.default_rng(0)
    x, w, b = _draw(rng, (N, H, W, Cin), (KH, KW, Cin, Cout), (Cout,))
    out, cache = forward(x, w, b, stride, padding)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = backward(dout, cache)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    _check(lambda: forward(x, w, b, stride, padding)[0], {"x": x, "w": w, "b": b},
           {"x": dx, "w": dw, "b": db}, dout)


@pytest.mark.parametrize("backend", ["reference", "fast"])
@pytest.mark.parametrize("N,H,W,Cin,Cout,KH,KW,stride,padding,output_padding", TRANSPOSE_CASES)
def test_conv2d_transpose_gradients(backend, N, H, W, Cin, Cout, KH, KW, stride, padding, output_padding):
    forward, backward = T_PAIRS[backend]
    rng = np.random.default_rng(1)
    x, w, b = _draw(rng, (N, H, W, Cin), (KH, KW, Cout, Cin), (Cout,))
    out, cache = forward(x, w, b, stride, padding, output_padding)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = backward(dout, cache)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    _check(lambda: forward(x, w, b, stride, padding, output_padding)[0], {"x": x, "w": w, "b": b},
           {"x": dx, "w": dw, "b": db}, dout)


# --------------------------------------------------------------------------- adjointness
@pytest.mark.parametrize("backend", ["reference", "fast"])
@pytest.mark.parametrize("N,H,W,Cin,Cout,KH,KW,stride,padding,output_padding", TRANSPOSE_CASES)
def test_transpose_is_the_adjoint_of_conv2d(backend, N, H, W, Cin, Cout, KH, KW, stride, padding, output_padding):
    """<A^T u, v> = <u, A v>, and the two passes swap: the transpose's forward is conv2d's dx,
    its dx is conv2d's forward."""
    (fwd, bwd), (t_fwd, t_bwd) = PAIRS[backend], T_PAIRS[backend]
    rng = np.random.default_rng(2)
    u, w = _draw(rng, (N, H, W, Cin), (KH, KW, Cout, Cin))
    At_u, t_cache = t_fwd(u, w, np.zeros(Cout), stride, padding, output_padding)  # N,H_out,W_out,Cout
    v = rng.standard_normal(At_u.shape)
    A_v, cache = fwd(v, w, np.zeros(Cin), stride, padding)  # back to N,H,W,Cin
    assert A_v.shape == u.shape
    np.testing.assert_allclose(np.sum(At_u * v), np.sum(u * A_v), rtol=1e-12)
    dv, dw, _ = bwd(u, cache)  # conv2d's dx of upstream u ...
    np.testing.assert_allclose(dv, At_u, rtol=1e-12, atol=1e-12)  # ... is the transpose's forward
    du, dw_t, _ = t_bwd(v, t_cache)  # the transpose's dx of upstream v ...
    np.testing.assert_allclose(du, A_v, rtol=1e-12, atol=1e-12)  # ... is conv2d's forward
    np.testing.assert_allclose(dw_t, dw, rtol=1e-12, atol=1e-12)  # and both see the same dW


def test_same_padding_sizes_and_alignment():
    x = np.zeros((1, 7, 8, 1))
    x[0, 3, 4, 0] = 1.0  # an impulse
    w = np.arange(9.0).reshape(3, 3, 1, 1)
    out, _ = C.conv2d_forward(x, w, np.zeros(1), padding="same")
    assert out.shape == x.shape
    np.testing.assert_array_equal(out[0, 2:5, 3:6, 0], w[::-1, ::-1, 0, 0])  # a correlation: the flipped kernel
    for stride, size in ((2, (4, 4)), ((3, 2), (3, 4))):
        assert C.conv2d_forward_fast(x, w, np.zeros(1), stride, "same")[0].shape == (1,) + size + (1,)


def test_transpose_undoes_a_strided_conv2ds_size():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 8, 10, 3))
    down, _ = C.conv2d_forward_fast(x, rng.standard_normal((3, 3, 3, 4)), np.zeros(4), 2, "same")  # 4 x 5
    up3, _ = T.conv2d_transpose_forward_fast(down, rng.standard_normal((3, 3, 3, 4)), np.zeros(3), 2, 1, 1)
    up4, _ = T.conv2d_transpose_forward_fast(down, rng.standard_normal((4, 4, 3, 4)), np.zeros(3), 2, 1)
    assert up3.shape == x.shape and up4.shape == x.shape


@pytest.mark.parametrize("pairs", [PAIRS, T_PAIRS], ids=["conv2d", "conv2d_transpose"])
@pytest.mark.parametrize("backend", ["reference", "fast"])
def test_float32_in_float32_out(pairs, backend):
    forward, backward = pairs[backend]
    rng = np.random.default_rng(4)
    f32 = np.float32
    x, w, b = (a.astype(f32) for a in _draw(rng, (2, 5, 6, 3), (3, 3, 3, 3), (3,)))
    out, cache = forward(x, w, b, 2, 1)
    grads = backward(np.ones_like(out), cache)
    assert out.dtype == f32 and all(g.dtype == f32 for g in grads)


@pytest.mark.parametrize("pairs", [PAIRS, T_PAIRS], ids=["conv2d", "conv2d_transpose"])
def test_input_grad_false_skips_only_dx(pairs):
    forward, backward = pairs["fast"]
    rng = np.random.default_rng(5)
    x, w, b = _draw(rng, (2, 5, 6, 3), (3, 3, 3, 3), (3,))
    out, cache = forward(x, w, b, 2, 1)
    dout = rng.standard_normal(out.shape)
    full, part = backward(dout, cache), backward(dout, cache, input_grad=False)
    assert part[0] is None
    for a, b_ in zip(full[1:], part[1:]):
        np.testing.assert_array_equal(a, b_)


# --------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("kwargs,words", [
    (dict(stride=0), "stride=0 must be a positive integer"),
    (dict(stride=(1, 2, 3)), r"stride=\(1, 2, 3\) must be"),
    (dict(stride=1.5), "stride=1.5 must be"),
    (dict(padding=-1), "padding=-1 must be an integer >= 0"),
    (dict(padding="full"), "padding='full' must be 'same', 'valid'"),
    (dict(w=np.ones((2, 3, 2, 4))), "padding='same' needs an odd kernel, got 2x3"),
    (dict(w=np.ones((3, 3, 3, 4))), r"w \(3, 3, 3, 4\)"),
    (dict(w=np.ones((9, 3, 2, 4)), padding=1), "a 9x3 kernel does not fit an input of 5x6"),
])
def test_conv2d_rejects_bad_arguments(kwargs, words):
    args = dict(x=np.ones((1, 5, 6, 2)), w=np.ones((3, 3, 2, 4)), b=np.ones(4), stride=1, padding="same")
    args.update(kwargs)
    args["b"] = np.ones(args["w"].shape[3])
    for forward, _ in PAIRS.values():
        with pytest.raises(ValueError, match=words):
            forward(**args)


@pytest.mark.parametrize("kwargs,words", [
    (dict(output_padding=2), r"output_padding=2 must be smaller than the stride \(2, 2\)"),
    (dict(output_padding=-1), "output_padding=-1 must be an integer >= 0"),
    (dict(padding="same"), "padding='same' must be an integer >= 0"),
    (dict(padding=4), "padding=4 leaves no output"),
    (dict(b=np.ones(3)), r"b \(3,\)"),
])
def test_conv2d_transpose_rejects_bad_arguments(kwargs, words):
    args = dict(x=np.ones((1, 2, 3, 2)), w=np.ones((3, 3, 4, 2)), b=np.ones(4), stride=2, padding=1)
    args.update(kwargs)
    for forward, _ in T_PAIRS.values():
        with pytest.raises(ValueError, match=words):
            forward(**args)


# --------------------------------------------------------------------------- PyTorch
def _torch_case(torch, rng, layer, N, H, W, Cin, Cout, KH, KW):
    """NHWC arrays and their NCHW torch leaves (weights as torch lays them out)."""
    w_shape = (KH, KW, Cin, Cout) if layer == "conv2d" else (KH, KW, Cout, Cin)
    x, w, b = _draw(rng, (N, H, W, Cin), w_shape, (Cout,))
    xt = torch.tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), requires_grad=True)  # NHWC -> NCHW
    # conv2d: (KH, KW, Cin, Cout) -> (Cout, Cin, KH, KW); transpose: (KH, KW, Cout, Cin) -> (Cin, Cout, KH, KW)
    wt = torch.tensor(np.ascontiguousarray(w.transpose(3, 2, 0, 1)), requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    return (x, w, b), (xt, wt, bt)


def _against_torch(torch, ours, theirs, arrays, leaves, rng):
    forward, backward = ours
    out, cache = forward(*arrays)
    out_t = theirs(*leaves)
    np.testing.assert_allclose(out, out_t.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-10,
                               err_msg="forward")
    dout = rng.standard_normal(out.shape)
    out_t.backward(torch.tensor(np.ascontiguousarray(dout.transpose(0, 3, 1, 2))))
    dx, dw, db = backward(dout, cache)
    xt, wt, bt = leaves
    for name, ours_g, theirs_g in (("dx", dx, xt.grad.numpy().transpose(0, 2, 3, 1)),
                                   ("dw", dw, wt.grad.numpy().transpose(2, 3, 1, 0)), ("db", db, bt.grad.numpy())):
        np.testing.assert_allclose(ours_g, theirs_g, rtol=1e-10, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("backend", ["reference", "fast"])
@pytest.mark.parametrize("N,H,W,Cin,Cout,KH,KW,stride,padding", CONV_CASES)
def test_conv2d_against_torch(backend, N, H, W, Cin, Cout, KH, KW, stride, padding):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(6)
    arrays, leaves = _torch_case(torch, rng, "conv2d", N, H, W, Cin, Cout, KH, KW)
    s, p = C.conv2d_geometry((KH, KW), stride, padding)
    forward, backward = PAIRS[backend]
    _against_torch(torch, (lambda x, w, b: forward(x, w, b, stride, padding), backward),
                   lambda x, w, b: F.conv2d(x, w, b, stride=s, padding=p), arrays, leaves, rng)


@pytest.mark.parametrize("backend", ["reference", "fast"])
@pytest.mark.parametrize("N,H,W,Cin,Cout,KH,KW,stride,padding,output_padding", TRANSPOSE_CASES)
def test_conv2d_transpose_against_torch(backend, N, H, W, Cin, Cout, KH, KW, stride, padding, output_padding):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    arrays, leaves = _torch_case(torch, rng, "transpose", N, H, W, Cin, Cout, KH, KW)
    forward, backward = T_PAIRS[backend]
    _against_torch(torch, (lambda x, w, b: forward(x, w, b, stride, padding, output_padding), backward),
                   lambda x, w, b: F.conv_transpose2d(x, w, b, stride=stride, padding=padding,
                                                      output_padding=output_padding), arrays, leaves, rng)


# --------------------------------------------------------------------------- max-pooling
#: N, H, W, C, pool_size, stride, padding
POOL_CASES = [(1, 4, 4, 1, 2, None, 0), (2, 5, 7, 3, 2, None, 0), (2, 6, 5, 2, 3, 2, 1),
              (1, 5, 6, 2, (2, 3), (1, 2), (1, 0)), (3, 4, 5, 1, 3, 1, 1)]


def _no_ties(rng, shape):
    return (rng.permutation(int(np.prod(shape))) * 0.1).reshape(shape)  # gaps of 0.1 >> H_STEP


@pytest.mark.parametrize("backend", ["reference", "fast"])
@pytest.mark.parametrize("N,H,W,C,pool,stride,padding", POOL_CASES)
def test_maxpool2d_gradients(backend, N, H, W, C, pool, stride, padding):
    forward, backward = M_PAIRS[backend]
    rng = np.random.default_rng(8)
    x = _no_ties(rng, (N, H, W, C))
    out, cache = forward(x, pool, stride, padding)
    dout = rng.standard_normal(out.shape)
    dx = backward(dout, cache)
    assert dx.shape == x.shape
    _check(lambda: forward(x, pool, stride, padding)[0], {"x": x}, {"x": dx}, dout)


@pytest.mark.parametrize("backend", ["reference", "fast"])
def test_maxpool2d_ties_go_to_the_first_pixel_and_overlaps_add(backend):
    forward, backward = M_PAIRS[backend]
    x = np.zeros((1, 3, 3, 1))  # all tied: every window's first pixel wins
    out, cache = forward(x, 2, 1, 0)
    dx = backward(np.ones_like(out), cache)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    x[0, 1, 1, 0] = 1.0  # the centre wins all four overlapping windows
    out, cache = forward(x, 2, 1, 0)
    assert backward(np.ones_like(out), cache)[0, 1, 1, 0] == 4


@pytest.mark.parametrize("backend", ["reference", "fast"])
def test_maxpool2d_float32_in_float32_out(backend):
    forward, backward = M_PAIRS[backend]
    x = np.random.default_rng(9).standard_normal((2, 4, 6, 3)).astype(np.float32)
    out, cache = forward(x, 2, None, 1)
    assert out.dtype == np.float32 and backward(np.ones_like(out), cache).dtype == np.float32


@pytest.mark.parametrize("kwargs,words", [
    (dict(pool_size=0), "pool_size=0 must be a positive integer"),
    (dict(stride=(2, 0)), r"stride=\(2, 0\) must be"),
    (dict(padding=2), r"padding=2 must be at most half of pool_size=\(2, 2\)"),
    (dict(pool_size=6), "a 6x6 window does not fit an input of 5x6"),
    (dict(x=np.ones((5, 6, 2))), r"x \(5, 6, 2\) is not \(N, H, W, C\)"),
])
def test_maxpool2d_rejects_bad_arguments(kwargs, words):
    args = dict(x=np.ones((1, 5, 6, 2)), pool_size=2, stride=None, padding=0)
    args.update(kwargs)
    for forward, _ in M_PAIRS.values():
        with pytest.raises(ValueError, match=words):
            forward(**args)


@pytest.mark.parametrize("backend", ["reference", "fast"])
@pytest.mark.parametrize("N,H,W,C,pool,stride,padding", POOL_CASES)
def test_maxpool2d_against_torch(backend, N, H, W, C, pool, stride, padding):
    torch = pytest.importorskip("torch")
    forward, backward = M_PAIRS[backend]
    rng = np.random.default_rng(10)
    x = _no_ties(rng, (N, H, W, C))
    out, cache = forward(x, pool, stride, padding)
    xt = torch.tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), requires_grad=True)
    out_t = torch.nn.functional.max_pool2d(xt, pool, stride, padding)
    np.testing.assert_array_equal(out, out_t.detach().numpy().transpose(0, 2, 3, 1))
    dout = rng.standard_normal(out.shape)
    out_t.backward(torch.tensor(np.ascontiguousarray(dout.transpose(0, 3, 1, 2))))
    np.testing.assert_allclose(backward(dout, cache), xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
