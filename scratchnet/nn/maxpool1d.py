"""Max-pooling over time, channel by channel (the hybrid network's pooling).

Equations, for windows of ``pool`` frames starting every ``stride`` frames of ``x_pad``::

    out[n, t, c]    = max_{i < pool} x_pad[n, t*stride + i, c]
    argmax[n, t, c] = the first i-th frame that attains it                  (ties: first wins)
    dx_pad[n, s, c] = sum over windows (t) whose argmax is s of dout[n, t, c]

Only the winning frame of a window moves the output, so the whole gradient of a window goes
to it; overlapping windows (stride < pool) add up on a frame that wins several.  "same"
padding adds (pool-1)//2 frames of -inf on the left and pool//2 on the right (-inf never
wins), so that with stride 1 every frame keeps its output.

The readable pair takes max and argmax over a sliding-window view and routes the gradient with
one ``np.add.at``; the fast pair runs both as Numba loops.
"""
import numpy as np
from numba import njit


def _pad(x, pool_size, stride, padding):
    if not isinstance(pool_size, (int, np.integer)) or pool_size < 1:
        raise ValueError(f"{pool_size=} must be a positive integer")
    if not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"{stride=} must be a positive integer")
    if padding not in ("same", "valid"):
        raise ValueError(f"{padding=} must be 'same' or 'valid'")
    T = x.shape[1]
    left, right = ((pool_size - 1) // 2, pool_size // 2) if padding == "same" else (0, 0)
    if T + left + right < pool_size:
        raise ValueError(f"{padding!r} max-pooling needs at least {pool_size=} frames, got {T}")
    x_pad = np.pad(x, ((0, 0), (left, right), (0, 0)), constant_values=-np.inf)  # N,T_pad,C
    return x_pad, left


# --------------------------------------------------------------------------- readable pair
def maxpool1d_forward(x, pool_size=3, stride=1, padding="same"):
    """Max-pooling over time.

    Parameters
    ----------
    x : ndarray, shape (N, T, C)
    pool_size : int
        Frames per window.
    stride : int
        Frames between window starts.
    padding : {"same", "valid"}
        ``"same"``: ``T_out = ceil(T / stride)``; ``"valid"``: no padding,
        ``T_out = 1 + (T - pool) // stride``.

    Returns
    -------
    out : ndarray, shape (N, T_out, C)
    cache : tuple
    """
    x_pad, left = _pad(x, pool_size, stride, padding)
    win = np.lib.stride_tricks.sliding_window_view(x_pad, pool_size, axis=1)[:, ::stride]  # N,T_out,C,pool
    start = (np.arange(win.shape[1]) * stride)[None, :, None]  # first frame of each window
    out = win.max(axis=-1)  # N,T_out,C
    argmax = win.argmax(axis=-1) + start  # N,T_out,C: index into x_pad, the first of ties
    return out, (argmax, x_pad.shape[1], left, x.shape[1])


def maxpool1d_backward(dout, cache):
    """Backward of :func:`maxpool1d_forward`: each window's gradient goes to its argmax frame."""
    argmax, T_pad, left, T = cache
    N, T_out, C = dout.shape
    dx_pad = np.zeros((N, T_pad, C), dout.dtype)
    n = np.arange(N)[:, None, None]
    c = np.arange(C)[None, None, :]
    np.add.at(dx_pad, (n, argmax, c), dout)  # += : windows overlap
    return dx_pad[:, left:left + T]


# --------------------------------------------------------------------------- kernels
@njit(cache=True)
def _max_argmax(x_pad, pool, stride, out, argmax):
    N, T_out, C = out.shape
    for n in range(N):
        for t in range(T_out):
            s = t * stride
            for c in range(C):
                out[n, t, c] = x_pad[n, s, c]
                argmax[n, t, c] = s
            for i in range(s + 1, s + pool):
                for c in range(C):
                    if x_pad[n, i, c] > out[n, t, c]:  # strict: ties keep the first frame
                        out[n, t, c] = x_pad[n, i, c]
                        argmax[n, t, c] = i
    return out, argmax


@njit(cache=True)
def _route(dout, argmax, dx_pad):
    N, T_out, C = dout.shape
    for n in range(N):
        for t in range(T_out):
            for c in range(C):
                dx_pad[n, argmax[n, t, c], c] += dout[n, t, c]  # += : windows overlap
    return dx_pad


# --------------------------------------------------------------------------- fast pair
def maxpool1d_forward_fast(x, pool_size=3, stride=1, padding="same"):
    """:func:`maxpool1d_forward` as a Numba loop."""
    x_pad, left = _pad(np.ascontiguousarray(x), pool_size, stride, padding)
    N, T_pad, C = x_pad.shape
    T_out = 1 + (T_pad - pool_size) // stride
    out, argmax = _max_argmax(x_pad, int(pool_size), int(stride), np.empty((N, T_out, C), x_pad.dtype),
                              np.empty((N, T_out, C), np.int64))
    return out, (argmax, T_pad, left, x.shape[1])


def maxpool1d_backward_fast(dout, cache):
    """:func:`maxpool1d_backward` as a Numba loop."""
    argmax, T_pad, left, T = cache
    dout = np.ascontiguousarray(dout)
    dx_pad = np.zeros((dout.shape[0], int(T_pad), dout.shape[2]), dout.dtype)
    return _route(dout, argmax, dx_pad)[:, left:left + T]
