"""Feed-forward layers as forward/backward pairs, and weight initializers.

Every operation is a pair ``x_forward(inputs...) -> (out, cache)`` and
``x_backward(dout, cache) -> gradients``: the cache holds exactly what backward needs, and
there is no other state.  ``d<name>`` is the gradient of the loss with respect to ``<name>``
and ``dout`` the upstream gradient.  Arrays are batch-first, ``(N, T, ...)``; every function
keeps the input's float dtype (float32 for training, float64 for gradient checks).  Each
backward pass is held to a finite difference in ``tests/test_layers.py``.

The layers are those of Huang et al. (2014) -- affine, ReLU, a context window of
neighbouring frames and the joint soft time-frequency mask -- and of the hybrid network of
Amer & Al Tmeme (2021): 1-D convolution and max-pooling over time.  The loops of the context
window, the mask and max-pooling are Numba kernels in :mod:`scratchnet.kernels`, and the
convolution is one GEMM over unfolded frames there.  Backward passes of the layers with
weights take ``input_grad=False`` to skip the gradient of their input, which a network's
first layer does not need.
"""
import numpy as np

from . import kernels
from .errors import ScratchnetError


# --------------------------------------------------------------------------- affine
def add_bias(out, b):
    """``out + b``, in place when that keeps the dtype that ``out + b`` would have.

    In place saves a whole (..., M) temporary per layer; a wider ``b`` (float64 bias on a
    float32 product) still widens the result, as ``x @ w + b`` would.
    """
    if np.result_type(out, b) != out.dtype:
        return out + b
    out += b
    return out


def affine_forward(x, w, b):
    """Affine map of the last axis: ``out = x w + b``.

    Parameters
    ----------
    x : ndarray, shape (..., D)
    w : ndarray, shape (D, M)
    b : ndarray, shape (M,)

    Returns
    -------
    out : ndarray, shape (..., M)
    cache : tuple

    Examples
    --------
    >>> x, w, b = np.ones((2, 5, 3)), np.ones((3, 4)), np.zeros(4)
    >>> out, cache = affine_forward(x, w, b)
    >>> dx, dw, db = affine_backward(np.ones_like(out), cache)
    >>> out.shape, float(dw[0, 0])  # dw sums over all N*T = 10 rows
    ((2, 5, 4), 10.0)
    """
    if x.shape[-1] != w.shape[0] or b.shape != (w.shape[1],):
        raise ScratchnetError(
            f"affine: x {x.shape}, w {w.shape}, b {b.shape} do not fit (..., D) (D, M) (M,)")
    out = add_bias(x @ w, b)  # ...,M
    return out, (x, w)


def affine_backward(dout, cache, *, input_grad=True):
    """Backward of :func:`affine_forward`: dout (..., M) -> dx (..., D), dw (D, M), db (M,).

    ``input_grad=False`` returns ``dx = None`` and skips its GEMM, which is as large as the
    forward's: a network's first layer needs no gradient for its input in training.

    Notes
    -----
    With all leading axes flattened into rows: ``dx = dout w^T``, ``dw = x^T dout``,
    ``db = sum_rows dout``.
    """
    x, w = cache
    D, M = w.shape
    dx = dout @ w.T if input_grad else None  # ...,D
    dw = x.reshape(-1, D).T @ dout.reshape(-1, M)  # D,M: sum over every row (n, t)
    db = dout.reshape(-1, M).sum(axis=0)  # M
    return dx, dw, db


# --------------------------------------------------------------------------- activations
def relu_forward(x):
    """``out = max(x, 0)``, any shape."""
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    """``dx = dout * [x > 0]`` (the subgradient 0 at x = 0)."""
    x = cache
    return dout * (x > 0)


def tanh_forward(x):
    """``out = tanh(x)``, any shape."""
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """``dx = dout * (1 - tanh(x)^2)``, from the cached output."""
    out = cache
    return dout * (1 - out * out)


def sigmoid_forward(x):
    """``out = 1 / (1 + exp(-x))``, computed without overflow for large ``|x|``."""
    z = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    out = np.where(x >= 0, 1 / (1 + z), z / (1 + z))
    return out, out


def sigmoid_backward(dout, cache):
    """``dx = dout * s (1 - s)`` with ``s = sigmoid(x)`` from the cache."""
    out = cache
    return dout * out * (1 - out)


# --------------------------------------------------------------------------- context window
def context_forward(x, k):
    """Stack each frame with its ``k`` neighbours on either side (Huang's context window).

    Parameters
    ----------
    x : ndarray, shape (N, T, F)
    k : int
        Half-width; ``k = 1`` gives Huang et al.'s "3 frames".

    Returns
    -------
    out : ndarray, shape (N, T, (2k+1) F)
        Block ``j`` (``out[..., j*F:(j+1)*F]``, j = 0..2k) holds frame ``t - k + j``; at the
        edges the end frames repeat (the frame index is clipped to [0, T-1]).
    cache : tuple
    """
    if not isinstance(k, (int, np.integer)) or k < 0:
        raise ScratchnetError(f"context half-width {k=} must be a non-negative integer")
    N, T, F = x.shape
    idx = np.clip(np.arange(T)[:, None] + np.arange(-k, k + 1)[None, :], 0, T - 1)  # T,2k+1
    out = kernels.context_forward(x, idx)  # N,T,(2k+1)F: out[n, t, block j] = x[n, idx[t, j]]
    return out, (idx, x.shape)


def context_backward(dout, cache):
    """Backward of :func:`context_forward`: dout (N, T, (2k+1) F) -> dx (N, T, F).

    Every output block is a copy of some frame, so ``dx[t]`` is the sum of the blocks that
    copied frame t; the repeated edge frames accumulate several.
    """
    idx, (N, T, F) = cache
    return kernels.context_backward(dout, idx, F)  # N,T,F


# --------------------------------------------------------------------------- conv1d
def conv1d_forward(x, w, b):
    """1-D convolution over time, stride 1, "same" zero padding.

    Parameters
    ----------
    x : ndarray, shape (N, T, Cin)
    w : ndarray, shape (K, Cin, Cout)
    b : ndarray, shape (Cout,)

    Returns
    -------
    out : ndarray, shape (N, T, Cout)
    cache : tuple

    Notes
    -----
    A correlation, as in every deep-learning library:
    ``out[n, t, o] = b[o] + sum_k sum_c x_pad[n, t + k, c] w[k, c, o]``, where ``x_pad`` has
    ``(K-1)//2`` zero frames on the left and ``K//2`` on the right.
    """
    if x.ndim != 3 or w.ndim != 3 or x.shape[2] != w.shape[1] or b.shape != (w.shape[2],):
        raise ScratchnetError(
            f"conv1d: x {x.shape}, w {w.shape}, b {b.shape} do not fit (N, T, Cin) (K, Cin, Cout) (Cout,)")
    K = w.shape[0]
    left, right = (K - 1) // 2, K // 2
    x_pad = np.pad(x, ((0, 0), (left, right), (0, 0)))  # N,T+K-1,Cin
    out = kernels.conv1d_forward(x_pad, w) + b  # N,T,Cout
    return out, (x_pad, w, left, x.shape[1])


def conv1d_backward(dout, cache, *, input_grad=True):
    """Backward of :func:`conv1d_forward`: dout (N, T, Cout) -> dx, dw, db.

    ``input_grad=False`` returns ``dx = None`` and skips its GEMM (for a first layer).

    Notes
    -----
    ``dw[k] = sum_{n,t} x_pad[n, t+k]^T dout[n, t]``, ``dx_pad[n, t+k] += dout[n, t] w[k]^T``
    (then the padding is cut off), ``db = sum_{n,t} dout[n, t]``.
    """
    x_pad, w, left, T = cache
    dx_pad, dw = kernels.conv1d_backward(dout, x_pad, w, input_grad=input_grad)  # N,T_pad,Cin; K,Cin,Cout
    dx = dx_pad[:, left:left + T] if input_grad else None
    return dx, dw, dout.sum(axis=(0, 1))


# --------------------------------------------------------------------------- maxpool1d
def maxpool1d_forward(x, pool_size=3, stride=1, padding="same"):
    """Max-pooling over time, channel by channel.

    Parameters
    ----------
    x : ndarray, shape (N, T, C)
    pool_size : int
        Frames per window.
    stride : int
        Frames between window starts.
    padding : {"same", "valid"}
        ``"same"`` pads ``(pool-1)//2`` frames of -inf on the left and ``pool//2`` on the
        right, so ``T_out = ceil(T / stride)`` (T with stride 1); ``"valid"`` does not pad,
        ``T_out = 1 + (T - pool) // stride``.

    Returns
    -------
    out : ndarray, shape (N, T_out, C)
    cache : tuple
    """
    if not isinstance(pool_size, (int, np.integer)) or pool_size < 1:
        raise ScratchnetError(f"{pool_size=} must be a positive integer")
    if not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ScratchnetError(f"{stride=} must be a positive integer")
    if padding not in ("same", "valid"):
        raise ScratchnetError(f"{padding=} must be 'same' or 'valid'")
    T = x.shape[1]
    left, right = ((pool_size - 1) // 2, pool_size // 2) if padding == "same" else (0, 0)
    if T + left + right < pool_size:
        raise ScratchnetError(f"{padding!r} max-pooling needs at least {pool_size=} frames, got {T}")
    x_pad = np.pad(x, ((0, 0), (left, right), (0, 0)), constant_values=-np.inf)  # -inf never wins
    out, argmax = kernels.maxpool1d_forward(x_pad, pool_size, stride)  # N,T_out,C each
    return out, (argmax, x_pad.shape[1], left, T)


def maxpool1d_backward(dout, cache):
    """Backward of :func:`maxpool1d_forward`: each window's gradient goes to its argmax frame.

    Ties go to the first maximal frame; overlapping windows (stride < pool) accumulate.
    """
    argmax, T_pad, left, T = cache
    dx_pad = kernels.maxpool1d_backward(dout, argmax, T_pad)  # N,T_pad,C
    return dx_pad[:, left:left + T]


# --------------------------------------------------------------------------- soft mask
def mask_forward(a, X, eps=1e-8):
    """Huang et al.'s joint soft time-frequency mask ("softabs") on the linear output.

    Parameters
    ----------
    a : ndarray, shape (N, T, 2F)
        Output of the last affine layer: ``a1 = a[..., :F]`` for the vocals, ``a2 =
        a[..., F:]`` for the accompaniment.
    X : ndarray, shape (N, T, F)
        Magnitude spectrogram of the mixture.
    eps : float
        Keeps the mask defined on silence (``a = 0`` gives ``y = 0``).

    Returns
    -------
    (y1, y2) : tuple of ndarray, shape (N, T, F) each
        Estimated vocal and accompaniment magnitudes.
    cache : tuple

    Notes
    -----
    With ``m_i = |a_i|``, ``s = m1 + m2 + eps`` and the gains ``g_i = m_i / s``:
    ``y_i = g_i X``, so ``y1 + y2 = X (1 - eps / s)``.  Differentiating,
    ``dg_i/dm_j = ([i = j] - g_i) / s``, which gives

        dX  = dy1 g1 + dy2 g2
        dm_i = X / s (dy_i - dX)
        da_i = dm_i sign(a_i)          (sign 0 at a_i = 0: a subgradient)
    """
    if eps <= 0:
        raise ScratchnetError(f"mask {eps=} must be positive, or silence gives 0/0")
    F = X.shape[-1]
    if a.shape[:-1] != X.shape[:-1] or a.shape[-1] != 2 * F:
        raise ScratchnetError(f"mask: a {a.shape} must be X {X.shape} with twice the last axis")
    y1, y2 = kernels.mask_forward(a, X, eps)  # N,T,F each: one fused pass over the bins
    return (y1, y2), (a, X, eps)  # backward recomputes s and g_i: cheaper than caching them


def mask_backward(dy1, dy2, cache):
    """Backward of :func:`mask_forward`: dy1, dy2 (N, T, F) -> da (N, T, 2F), dX (N, T, F)."""
    a, X, eps = cache
    return kernels.mask_backward(dy1, dy2, a, X, eps)  # the Notes' three lines, fused


# --------------------------------------------------------------------------- initializers
def _uniform(limit, shape, rng, dtype):
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def glorot_uniform(fan_in, fan_out, rng, dtype=np.float32):
    """Glorot & Bengio (2010) uniform weights, shape (fan_in, fan_out).

    Drawn from U(-limit, limit) with ``limit = sqrt(6 / (fan_in + fan_out))``.
    """
    return _uniform(np.sqrt(6.0 / (fan_in + fan_out)), (fan_in, fan_out), rng, dtype)


def recurrent_uniform(H, rng, dtype=np.float32):
    """Recurrent weights Wh, shape (H, H), from U(-limit, limit), ``limit = sqrt(6 / (3 H))``."""
    # Glorot for an (H, H) matrix, but counted with three fan terms (H + H + H) as in Huang's
    # code, so the recurrent weights start a little smaller than sqrt(6 / 2H).
    return _uniform(np.sqrt(6.0 / (3 * H)), (H, H), rng, dtype)


def conv_glorot(K, Cin, Cout, rng, dtype=np.float32):
    """Glorot uniform convolution weights, shape (K, Cin, Cout).

    Each output sees ``K * Cin`` inputs and each input reaches ``K * Cout`` outputs, so
    ``limit = sqrt(6 / (K Cin + K Cout))``.
    """
    return _uniform(np.sqrt(6.0 / (K * Cin + K * Cout)), (K, Cin, Cout), rng, dtype)
