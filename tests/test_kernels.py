"""Every Numba kernel against its plain NumPy twin, and every fast pair against the readable one.

The kernels live beside the one function that calls them: the overlap-add beside ``istft``,
the recurrences in ``nn/rnn.py``, ``nn/gru.py`` and ``nn/lstm.py`` (the gated cells' small
product in ``nn/gru.py``), the gather/scatter, max-pool and mask loops in their ``nn/`` files
(where the readable pair is the twin), the 2-D convolution's row unfolding and folding
in ``nn/conv2d.py`` (their twins below), the fused loss beside its loss, Adam's update beside
Adam.

float64 must agree to round-off (the kernels and twins sum in different orders), float32 to
a few float32 ulps of the values' scale.  Sizes are odd and even, including size-1 axes.
The suite also runs with ``NUMBA_DISABLE_JIT=1``, which checks the kernels' Python bodies.
"""
import numpy as np
import pytest

from scratchnet import losses, optimizers, signal
from scratchnet.nn import _gated, context, conv1d, conv2d, conv2d_transpose, mask, maxpool1d, maxpool2d, norm2d
from scratchnet.nn import gru as G
from scratchnet.nn import lstm as L
from scratchnet.nn import rnn as R

DTYPES = [(np.float64, 1e-12), (np.float32, 1e-5)]


def _randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _close(a, b, tol, what):
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} vs twin {b.dtype}"
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs twin {b.shape}"
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=what)


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("T,n,hop", [(1, 8, 4), (5, 8, 4), (6, 7, 3), (4, 5, 5)])
def test_overlap_add(dtype, tol, T, n, hop):
    frames = _randn(np.random.default_rng(0), (T, n), dtype)
    length = (T - 1) * hop + n + 2
    _close(signal.overlap_add(frames, hop, length), signal.overlap_add_numpy(frames, hop, length), tol, "overlap_add")


@pytest.mark.parametrize("n,C,up,down", [(1, 1, 1, 3), (37, 1, 3, 2), (200, 2, 160, 441), (90, 3, 441, 160),
                                         (64, 1, 2, 1)])
def test_resample_poly(n, C, up, down):
    x = np.random.default_rng(1).standard_normal((n, C) if C > 1 else n)
    _close(signal.resample_poly(x, up, down), signal.resample_poly_numpy(x, up, down), 1e-12, "resample_poly")


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("N,T,H", [(1, 1, 1), (2, 5, 3), (3, 4, 8)])
def test_rnn_recurrence(dtype, tol, N, T, H):
    rng = np.random.default_rng(1)
    xw, h0, dh = _randn(rng, (N, T, H), dtype), _randn(rng, (N, H), dtype), _randn(rng, (N, T, H), dtype)
    Wh = _randn(rng, (H, H), dtype) / np.sqrt(H).astype(dtype)
    h = R.recurrence_forward(xw, h0, Wh)
    _close(h, R.recurrence_forward_numpy(xw, h0, Wh), tol, "rnn forward")
    for clip in [0.0, np.inf, 0.3]:  # 0 and inf mean no clipping
        dz, dh0 = R.recurrence_backward(dh, h, h0, Wh, clip)
        dz_ref, dh0_ref = R.recurrence_backward_numpy(dh, h, h0, Wh, clip)
        _close(dz, dz_ref, tol, f"rnn backward dz {clip=}")
        _close(dh0, dh0_ref, tol, f"rnn backward dh0 {clip=}")
        if clip == 0.3 and T > 1:
            assert np.abs(dh0).max() <= 0.3


def test_rnn_recurrence_zero_h0_and_no_clip_by_none():
    rng = np.random.default_rng(2)
    xw, Wh, dh = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 4)), rng.standard_normal((2, 3, 4))
    h = R.recurrence_forward(xw, None, Wh)
    np.testing.assert_array_equal(h, R.recurrence_forward(xw, np.zeros((2, 4)), Wh))
    a, b = R.recurrence_backward(dh, h, None, Wh, None), R.recurrence_backward(dh, h, None, Wh, 0.0)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("N,T,Cin,Cout,k", [(1, 1, 1, 1, 1), (2, 5, 3, 4, 3), (3, 6, 2, 5, 4), (2, 3, 4, 1, 5)])
def test_conv1d(dtype, tol, N, T, Cin, Cout, k):
    rng = np.random.default_rng(3)
    x, w, b = _randn(rng, (N, T, Cin), dtype), _randn(rng, (k, Cin, Cout), dtype), _randn(rng, (Cout,), dtype)
    out, cache = conv1d.conv1d_forward_fast(x, w, b)
    out_ref, cache_ref = conv1d.conv1d_forward(x, w, b)
    _close(out, out_ref, tol, "conv1d forward")
    dout = _randn(rng, out.shape, dtype)
    dx, dw, db = conv1d.conv1d_backward_fast(dout, cache)
    dx_ref, dw_ref, db_ref = conv1d.conv1d_backward(dout, cache_ref)
    _close(dx, dx_ref, tol, "conv1d dx")
    _close(dw, dw_ref, tol, "conv1d dw")
    _close(db, db_ref, tol, "conv1d db")


#: N, H, W, Cin, Cout, KH, KW, stride, padding: odd and even sizes, size-1 axes, padding beyond K-1
CONV2D_CASES = [(1, 1, 1, 1, 1, 1, 1, 1, 0), (2, 5, 6, 3, 4, 3, 3, 1, 1), (2, 6, 7, 2, 3, 3, 3, 2, "same"),
                (3, 7, 6, 3, 2, 2, 3, (2, 1), (0, 1)), (1, 4, 5, 2, 2, 2, 2, 1, (2, 3)), (2, 5, 5, 1, 3, 5, 3, 3, 2)]


def _unfold_rows_numpy(x, n, r0, step, count, KW, sw, pw, Wo):
    """conv2d._unfold_rows's twin: windows along frequency of rows r0, r0+step, ... of image n, zero-padded."""
    N, H, W, C = x.shape
    rows = r0 + step * np.arange(count)
    x_pad = np.pad(x[n], ((0, 0), (pw, pw + KW), (0, 0)))
    picked = np.where(((rows >= 0) & (rows < H))[:, None, None], x_pad[np.clip(rows, 0, H - 1)], 0)
    win = np.lib.stride_tricks.sliding_window_view(picked, KW, axis=1)[:, ::sw][:, :Wo]  # count,Wo,C,KW
    return win.transpose(0, 1, 3, 2).reshape(count * Wo, KW * C).astype(x.dtype)


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("N,H,W,C,KW,sw,pw,n,r0,step,count", [
    (1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1), (2, 5, 6, 3, 3, 1, 1, 1, -1, 1, 6), (2, 4, 7, 2, 3, 2, 1, 0, 2, 1, 4),
    (1, 3, 5, 2, 2, 1, 0, 0, -2, 1, 7), (2, 7, 6, 3, 3, 2, 1, 1, -1, 2, 5), (1, 9, 4, 1, 2, 1, 0, 0, 1, 3, 3)])
def test_conv2d_unfold_and_fold_rows(dtype, tol, N, H, W, C, KW, sw, pw, n, r0, step, count):
    rng = np.random.default_rng(16)
    x = _randn(rng, (N, H, W, C), dtype)
    Wo = (W + 2 * pw - KW) // sw + 1
    U = np.full((count * Wo, KW * C + 1), np.nan, dtype)  # every entry must be written
    U = conv2d._unfold_rows(x, n, r0, step, count, KW, sw, pw, Wo, U)
    _close(U[:, :-1], _unfold_rows_numpy(x, n, r0, step, count, KW, sw, pw, Wo), tol, "unfold_rows")
    np.testing.assert_array_equal(U[:, -1], 1)  # the bias's constant input
    dU = _randn(rng, (len(U), KW * C), dtype)
    dx = conv2d._fold_rows(dU, n, r0, step, count, KW, sw, pw, Wo, np.zeros_like(x))
    np.testing.assert_allclose(np.sum(dx * x), np.sum(dU * U[:, :-1]), rtol=tol * 10)  # the adjoint
    assert not dx[np.arange(N) != n].any()  # no other image touched


def _fast_pair_matches_readable(module, name, args, rng, dtype, tol):
    """``name``'s fast forward and backward against its readable pair, on ``args``."""
    out, cache = getattr(module, name + "_forward_fast")(*args)
    out_ref, cache_ref = getattr(module, name + "_forward")(*args)
    _close(out, out_ref, tol, f"{name} forward")
    dout = _randn(rng, out.shape, dtype)
    for what, g, g_ref in zip(("dx", "dw", "db"), getattr(module, name + "_backward_fast")(dout, cache),
                              getattr(module, name + "_backward")(dout, cache_ref)):
        _close(g, g_ref, tol, f"{name} {what}")


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("N,H,W,Cin,Cout,KH,KW,stride,padding", CONV2D_CASES)
def test_conv2d(dtype, tol, N, H, W, Cin, Cout, KH, KW, stride, padding):
    rng = np.random.default_rng(12)
    x, w, b = _randn(rng, (N, H, W, Cin), dtype), _randn(rng, (KH, KW, Cin, Cout), dtype), _randn(rng, (Cout,), dtype)
    _fast_pair_matches_readable(conv2d, "conv2d", (x, w, b, stride, padding), rng, dtype, tol)


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("N,H,W,Cin,Cout,KH,KW,stride,padding,output_padding", [
    (1, 1, 1, 1, 1, 1, 1, 1, 0, 0), (2, 3, 4, 3, 2, 3, 3, 2, 1, 1), (2, 4, 3, 2, 3, 4, 4, 2, 1, 0),
    (1, 3, 3, 2, 2, 3, 2, (2, 3), (1, 0), (0, 2)), (2, 3, 5, 2, 1, 3, 3, 1, 1, 0)])
def test_conv2d_transpose(dtype, tol, N, H, W, Cin, Cout, KH, KW, stride, padding, output_padding):
    rng = np.random.default_rng(13)
    x, w, b = _randn(rng, (N, H, W, Cin), dtype), _randn(rng, (KH, KW, Cout, Cin), dtype), _randn(rng, (Cout,), dtype)
    _fast_pair_matches_readable(conv2d_transpose, "conv2d_transpose", (x, w, b, stride, padding, output_padding),
                                rng, dtype, tol)


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("N,T_pad,C,pool,stride", [(1, 1, 1, 1, 1), (2, 7, 3, 3, 1), (2, 8, 5, 2, 2),
                                                   (3, 9, 2, 3, 2), (1, 6, 4, 4, 3)])
def test_maxpool1d(dtype, tol, N, T_pad, C, pool, stride):
    rng = np.random.default_rng(4)
    x_pad = _randn(rng, (N, T_pad, C), dtype)
    n_tie = len(range(1, T_pad, 3))
    x_pad[:, 1::3] = x_pad[:, 0:3 * n_tie:3]  # frame 3j+1 repeats frame 3j: exact ties, first wins
    out, cache = maxpool1d.maxpool1d_forward_fast(x_pad, pool, stride, "valid")
    out_ref, cache_ref = maxpool1d.maxpool1d_forward(x_pad, pool, stride, "valid")
    _close(out, out_ref, tol, "maxpool forward")
    np.testing.assert_array_equal(cache[0], cache_ref[0])  # argmax: the first of ties
    dout = _randn(rng, out.shape, dtype)
    _close(maxpool1d.maxpool1d_backward_fast(dout, cache), maxpool1d.maxpool1d_backward(dout, cache_ref),
           tol, "maxpool backward")


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("N,H,W,C,pool,stride,padding", [(1, 1, 1, 1, 1, None, 0), (2, 6, 7, 3, 2, None, 0),
                                                         (2, 5, 6, 2, 3, 2, 1), (1, 4, 7, 3, (2, 3), 1, (1, 1))])
def test_maxpool2d(dtype, tol, N, H, W, C, pool, stride, padding):
    rng = np.random.default_rng(14)
    x = _randn(rng, (N, H, W, C), dtype)
    x[:, :, 1::2] = x[:, :, 0:W - 1:2]  # bin 2j+1 repeats bin 2j: exact ties, the first wins
    out, cache = maxpool2d.maxpool2d_forward_fast(x, pool, stride, padding)
    out_ref, cache_ref = maxpool2d.maxpool2d_forward(x, pool, stride, padding)
    _close(out, out_ref, tol, "maxpool2d forward")
    dout = _randn(rng, out.shape, dtype)
    _close(maxpool2d.maxpool2d_backward_fast(dout, cache), maxpool2d.maxpool2d_backward(dout, cache_ref),
           tol, "maxpool2d backward")  # the same winners: the same routes


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("over", ["batch", "instance"])
@pytest.mark.parametrize("shape", [(1, 1, 2, 1), (2, 3, 4, 5), (3, 5, 2, 8)])
def test_norm2d(dtype, tol, over, shape):
    rng = np.random.default_rng(15)
    x = (3 * _randn(rng, shape, dtype) + 2).astype(dtype)
    gamma, beta = _randn(rng, shape[3:], dtype), _randn(rng, shape[3:], dtype)
    out, cache = norm2d.norm2d_forward_fast(x, gamma, beta, over)
    out_ref, cache_ref = norm2d.norm2d_forward(x, gamma, beta, over)
    _close(out, out_ref, tol, "norm2d forward")
    for name, i in (("mean", 2), ("var", 3)):  # the fast pair keeps them in float64
        _close(cache[i].astype(dtype), cache_ref[i], tol, f"norm2d {name}")
    dout = _randn(rng, shape, dtype)
    for name, g, g_ref in zip(("dx", "dgamma", "dbeta"), norm2d.norm2d_backward_fast(dout, cache),
                              norm2d.norm2d_backward(dout, cache_ref)):
        _close(g, g_ref, tol * 10, f"norm2d {name}")  # sums of products over a group


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("N,T,F,k", [(1, 1, 1, 1), (2, 5, 3, 1), (3, 4, 2, 2), (1, 2, 4, 3)])
def test_context(dtype, tol, N, T, F, k):
    rng = np.random.default_rng(5)
    x = _randn(rng, (N, T, F), dtype)
    out, cache = context.context_forward_fast(x, k)
    _close(out, context.context_forward(x, k)[0], tol, "context forward")
    dout = _randn(rng, out.shape, dtype)
    _close(context.context_backward_fast(dout, cache), context.context_backward(dout, cache), tol,
           "context backward")


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 5, 3), (3, 4, 8)])
def test_mask(dtype, tol, shape):
    rng = np.random.default_rng(6)
    a = _randn(rng, shape[:-1] + (2 * shape[-1],), dtype)
    a[..., 0] = 0  # |a| = 0: sign 0, and silence when both halves are 0
    a[..., shape[-1]] = 0
    X = np.abs(_randn(rng, shape, dtype))
    (y, cache), (y_ref, cache_ref) = mask.mask_forward_fast(a, X, 1e-8), mask.mask_forward(a, X, 1e-8)
    for got, ref in zip(y, y_ref):
        _close(got, ref, tol, "mask forward")
    dy1, dy2 = _randn(rng, shape, dtype), _randn(rng, shape, dtype)
    for got, ref in zip(mask.mask_backward_fast(dy1, dy2, cache), mask.mask_backward(dy1, dy2, cache_ref)):
        _close(got, ref, tol, "mask backward")


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("gamma", [0.0, 0.05])
def test_discriminative_squared_error(dtype, tol, gamma):
    rng = np.random.default_rng(7)
    y1, y2, t1, t2 = (_randn(rng, (2, 5, 3), dtype) for _ in range(4))
    loss, dy1, dy2 = losses.discriminative_squared_error(y1, y2, t1, t2, gamma, 0.1)
    loss_ref, dy1_ref, dy2_ref = losses.discriminative_squared_error_numpy(y1, y2, t1, t2, gamma, 0.1)
    assert abs(loss - loss_ref) <= 1e-12 * abs(loss_ref)  # both sum in float64
    _close(dy1, dy1_ref, tol, "dy1")
    _close(dy2, dy2_ref, tol, "dy2")


@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_adam_update_and_sum_of_squares(dtype, tol):
    rng = np.random.default_rng(8)
    p, g = _randn(rng, (4, 3), dtype), _randn(rng, (4, 3), dtype)
    m, v = _randn(rng, (4, 3), dtype), np.abs(_randn(rng, (4, 3), dtype))
    p_ref, m_ref, v_ref = p.copy(), m.copy(), v.copy()
    optimizers.adam_update(p, g, m, v, 1e-2, 0.9, 0.999, 1e-8)
    optimizers.adam_update_numpy(p_ref, g, m_ref, v_ref, 1e-2, 0.9, 0.999, 1e-8)
    for name, a, b in [("p", p, p_ref), ("m", m, m_ref), ("v", v, v_ref)]:
        _close(a, b, tol, f"adam {name}")
    assert abs(optimizers.sum_of_squares(g) - optimizers.sum_of_squares_numpy(g)) <= 1e-12 * optimizers.sum_of_squares_numpy(g)


# --------------------------------------------------------------------------- gated cells (nn/gru.py, nn/lstm.py)
@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("N,K,M", [(1, 1, 1), (3, 5, 7), (5, 8, 4), (10, 9, 16), (7, 1100, 6), (11, 513, 9)])
def test_small_matmul(dtype, tol, N, K, M):
    # blocks of 5 rows of A and their tail, of 4 rows of Bt and their tail, 1-3 chunks of k
    rng = np.random.default_rng(9)
    A, Bt, C = _randn(rng, (N, K), dtype), _randn(rng, (M, K), dtype), _randn(rng, (N, M), dtype)
    ref = C + A @ Bt.T
    _gated._accumulate_dots(A, Bt, C)
    _close(C, ref, tol * np.sqrt(K), "C += A @ Bt.T")


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("N,T,H", [(1, 1, 1), (2, 5, 3), (3, 4, 8), (5, 3, 6)])
def test_gru_recurrence(dtype, tol, N, T, H):
    rng = np.random.default_rng(10)
    xw, h0, dh = _randn(rng, (N, T, 3 * H), dtype), _randn(rng, (N, H), dtype), _randn(rng, (N, T, H), dtype)
    Wh, bh = _randn(rng, (H, 3 * H), dtype) / np.sqrt(H).astype(dtype), _randn(rng, (3 * H,), dtype)
    h, gates, hn = G.recurrence_forward(xw, h0, Wh, bh)
    for what, got, ref in zip(["h", "gates", "hn"], (h, gates, hn), G.recurrence_forward_numpy(xw, h0, Wh, bh)):
        _close(got, ref, tol, f"gru forward {what}")
    for clip in [0.0, np.inf, 0.3]:  # 0 and inf mean no clipping
        got = G.recurrence_backward(dh, h, h0, gates, hn, Wh, clip)
        ref = G.recurrence_backward_numpy(dh, h, h0, gates, hn, Wh, clip)
        for what, a, b in zip(["dxw", "dhw", "dh0"], got, ref):
            _close(a, b, tol, f"gru backward {what} {clip=}")
        if clip == 0.3:
            assert np.abs(got[2]).max() <= 0.3


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("N,T,H", [(1, 1, 1), (2, 5, 3), (3, 4, 8), (5, 3, 6)])
def test_lstm_recurrence(dtype, tol, N, T, H):
    rng = np.random.default_rng(11)
    xw, dh = _randn(rng, (N, T, 4 * H), dtype), _randn(rng, (N, T, H), dtype)
    h0, c0 = _randn(rng, (N, H), dtype), _randn(rng, (N, H), dtype)
    Wh = _randn(rng, (H, 4 * H), dtype) / np.sqrt(H).astype(dtype)
    h, c, tc, gates = L.recurrence_forward(xw, h0, c0, Wh)
    for what, got, ref in zip(["h", "c", "tanh(c)", "gates"], (h, c, tc, gates),
                              L.recurrence_forward_numpy(xw, h0, c0, Wh)):
        _close(got, ref, tol, f"lstm forward {what}")
    for clip in [0.0, np.inf, 0.3]:
        got = L.recurrence_backward(dh, c, c0, tc, gates, Wh, clip)
        ref = L.recurrence_backward_numpy(dh, c, c0, tc, gates, Wh, clip)
        for what, a, b in zip(["da", "dh0", "dc0"], got, ref):
            _close(a, b, tol, f"lstm backward {what} {clip=}")
        if clip == 0.3:
            assert max(np.abs(got[1]).max(), np.abs(got[2]).max()) <= 0.3


def test_gated_recurrence_zero_states_and_no_clip_by_none():
    rng = np.random.default_rng(12)
    xw, dh, Wh, bh = (rng.standard_normal(s) for s in ((2, 3, 12), (2, 3, 4), (4, 12), (12,)))
    h, gates, hn = G.recurrence_forward(xw, None, Wh, bh)
    np.testing.assert_array_equal(h, G.recurrence_forward(xw, np.zeros((2, 4)), Wh, bh)[0])
    for a, b in zip(G.recurrence_backward(dh, h, None, gates, hn, Wh, None),
                    G.recurrence_backward(dh, h, np.zeros((2, 4)), gates, hn, Wh, 0.0)):
        np.testing.assert_array_equal(a, b)
    xw, Wh = rng.standard_normal((2, 3, 16)), rng.standard_normal((4, 16))
    h, c, tc, gates = L.recurrence_forward(xw, None, None, Wh)
    np.testing.assert_array_equal(h, L.recurrence_forward(xw, np.zeros((2, 4)), np.zeros((2, 4)), Wh)[0])
    for a, b in zip(L.recurrence_backward(dh, c, None, tc, gates, Wh, None),
                    L.recurrence_backward(dh, c, np.zeros((2, 4)), tc, gates, Wh, 0.0)):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- threads (nn/threads.py)
from scratchnet.nn import threads  # noqa: E402


@pytest.fixture
def kernel_threads():
    """Set the kernels' thread count inside a test; restored afterwards."""
    previous = threads.get_threads()
    yield threads.set_threads
    threads.set_threads(previous)


def test_slices_cover_the_range_evenly():
    assert threads.slices(10, 2) == [(0, 5), (5, 10)]
    assert threads.slices(7, 3) == [(0, 2), (2, 4), (4, 7)]
    assert threads.slices(1, 4) == [(0, 1)]  # never an empty slice
    for n in range(0, 30):
        for k in range(1, 6):
            parts = threads.slices(n, k)
            assert [i for a, b in parts for i in range(a, b)] == list(range(n))


def test_over_slices_runs_every_slice_and_raises_after_all(kernel_threads):
    kernel_threads(3)
    seen = np.zeros(10, int)

    def work(a, b):
        seen[a:b] += 1
    threads.over_slices(work, 10)
    np.testing.assert_array_equal(seen, 1)

    def fail_on_second(a, b):
        seen[a:b] += 1
        if a > 0:
            raise ValueError("slice failed")
    with pytest.raises(ValueError, match="slice failed"):
        threads.over_slices(fail_on_second, 10)
    np.testing.assert_array_equal(seen, 2)  # the other slices ran to the end
    with pytest.raises(Exception):
        threads.set_threads(0)


def _recurrences(rng_seed=0, N=10, T=13, D=7, H=9):
    """Forward and backward of the three fast sequence pairs, every output in a list."""
    rng = np.random.default_rng(rng_seed)
    f32 = lambda *s: (0.4 * rng.standard_normal(s)).astype(np.float32)  # noqa: E731
    x, dh = f32(N, T, D), f32(N, T, H)
    out = []
    h, c = R.rnn_forward_fast(x, f32(N, H), f32(D, H), f32(H, H), f32(H))
    out += [h, *R.rnn_backward_fast(dh, c, clip=1.0)]
    h, c = G.gru_forward_fast(x, f32(N, H), f32(D, 3 * H), f32(H, 3 * H), f32(3 * H), f32(3 * H))
    out += [h, *G.gru_backward_fast(dh, c, clip=1.0)]
    h, c = L.lstm_forward_fast(x, f32(N, H), f32(N, H), f32(D, 4 * H), f32(H, 4 * H), f32(4 * H))
    out += [h, *L.lstm_backward_fast(dh, c, clip=1.0)]
    return out


def test_recurrences_give_the_same_numbers_on_any_number_of_threads(kernel_threads):
    kernel_threads(1)
    one = _recurrences()
    kernel_threads(2)  # 10 sequences as 5 + 5: every kernel runs the same code per sequence
    for a, b in zip(one, _recurrences()):
        np.testing.assert_array_equal(a, b)
    kernel_threads(3)  # 3 + 3 + 4: the gated cells' small product blocks rows by five, so a
    for a, b in zip(one, _recurrences()):  # different split may round differently
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_resampling_is_the_same_on_any_number_of_threads(kernel_threads):
    x = np.random.default_rng(2).standard_normal((40000, 2))
    kernel_threads(1)
    one = signal.resample_poly(x, 160, 441)
    kernel_threads(2)
    assert np.array_equal(signal.resample_poly(x, 160, 441), one)


def test_adam_and_norm_are_the_same_on_any_number_of_threads(kernel_threads):
    rng = np.random.default_rng(3)
    n = 3 * threads.CHUNK + 17  # long enough for three threads
    p0, g = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    results = []
    for k in (1, 2, 3):
        kernel_threads(k)
        p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
        for _ in range(3):
            optimizers.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8)
        results.append((p, m, v, optimizers.sum_of_squares(g)))
    for r in results[1:]:
        for a, b in zip(results[0], r):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(results[0][3], optimizers.sum_of_squares_numpy(g), rtol=1e-12)


def test_mask_and_loss_are_the_same_on_any_number_of_threads(kernel_threads):
    rng = np.random.default_rng(4)
    N, T, F = 3, 70, 40  # 210 frames, 8400 bins per source: several threads and loss chunks
    a, X = rng.standard_normal((N, T, 2 * F)), np.abs(rng.standard_normal((N, T, F)))
    t1, t2, d1, d2 = (rng.standard_normal((N, T, F)) for _ in range(4))
    chunk = threads.CHUNK
    threads.CHUNK = 1000  # small chunks, so that the loss is split too
    try:
        results = []
        for k in (1, 2, 3):
            kernel_threads(k)
            (y1, y2), cache = mask.mask_forward_fast(a, X, 1e-8)
            results.append([y1, y2, *mask.mask_backward_fast(d1, d2, cache),
                            *losses.discriminative_squared_error(y1, y2, t1, t2, 0.05, 0.01)])
    finally:
        threads.CHUNK = chunk
    for r in results[1:]:
        for u, v in zip(results[0], r):
            np.testing.assert_array_equal(u, v)


def _conv2d_passes(rng_seed=0):
    """Every fast conv2d route: forward, the stride-1 backward through dout, the fold, the transpose."""
    rng = np.random.default_rng(rng_seed)
    x, dout = rng.standard_normal((5, 6, 7, 3)), rng.standard_normal((5, 6, 7, 2))
    w, w_up, b = rng.standard_normal((3, 3, 3, 2)), rng.standard_normal((3, 3, 2, 3)), rng.standard_normal(2)
    out, cache = conv2d.conv2d_forward_fast(x, w, b, 1, "same")
    results = [out, *conv2d.conv2d_backward_fast(dout, cache)]  # Cout <= Cin: through dout
    out, cache = conv2d.conv2d_forward_fast(x, w, b, 2, 1)
    results += [out, *conv2d.conv2d_backward_fast(dout[:, :3, :4], cache)]  # stride 2: the fold
    out, cache = conv2d_transpose.conv2d_transpose_forward_fast(x, w_up, b, 2, 1, 1)
    results += [out, *conv2d_transpose.conv2d_transpose_backward_fast(rng.standard_normal(out.shape), cache)]
    return results


def test_conv2d_is_the_same_on_any_number_of_threads(kernel_threads):
    kernel_threads(1)
    one = _conv2d_passes()
    for k in (2, 3):  # images split 3 + 2, then 2 + 2 + 1: each thread sums its own images' dW
        kernel_threads(k)
        for a, b in zip(one, _conv2d_passes()):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
