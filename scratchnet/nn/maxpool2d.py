"""Max-pooling over (time, frequency), channel by channel (an encoder's downsampling).

Equations, for windows of ``(kh, kw)`` pixels starting every ``(sh, sw)`` pixels of ``x_pad``
(x with ``ph`` rows of -inf above and below, ``pw`` columns either side)::

    out[n, h, w, c]    = max_{i < kh, j < kw} x_pad[n, h*sh + i, w*sw + j, c]     (N, H', W', C)
    argmax[n, h, w, c] = the first (i, j), row by row, that attains it            (ties: first wins)
    dx_pad[n, s, r, c] = sum over windows (h, w) whose argmax is (s, r) of dout[n, h, w, c]

with ``H' = (H + 2 ph - kh) // sh + 1`` (W' alike).  Only the winning pixel of a window moves
the output, so the whole gradient of the window goes to it; overlapping windows (stride <
pool) add up on a pixel that wins several.  The padding is -inf, which never wins, and at most
half a window (as in PyTorch), so every window holds a real pixel.

The readable pair takes max and argmax over a sliding-window view and routes the gradient with
one ``np.add.at``; the fast pair runs both as Numba loops, as :mod:`maxpool1d` does.
"""
import numpy as np
from numba import njit

from .conv2d import _pair


def _geometry(x, pool_size, stride, padding):
    """``(kh, kw), (sh, sw), (ph, pw), (H', W')`` after checking every argument."""
    if x.ndim != 4:
        raise ValueError(f"maxpool2d: x {x.shape} is not (N, H, W, C)")
    kh, kw = _pair(pool_size, "pool_size", 1)
    sh, sw = (kh, kw) if stride is None else _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(f"{padding=} must be at most half of pool_size={(kh, kw)}")
    H, W = x.shape[1:3]
    if H + 2 * ph < kh or W + 2 * pw < kw:
        raise ValueError(f"maxpool2d: a {kh}x{kw} window does not fit an input of {H}x{W} padded by {(ph, pw)}")
    return (kh, kw), (sh, sw), (ph, pw), ((H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1)


def _pad(x, ph, pw):
    if ph == pw == 0:
        return x  # read only: no copy
    return np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=-np.inf)  # N,H_pad,W_pad,C


# --------------------------------------------------------------------------- readable pair
def maxpool2d_forward(x, pool_size=2, stride=None, padding=0):
    """Max-pooling over (time, frequency).

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    pool_size : int or (int, int)
        ``(kh, kw)`` pixels per window.
    stride : int or (int, int), optional
        ``(sh, sw)`` between window starts; default the pool size (windows side by side).
    padding : int or (int, int)
        ``(ph, pw)`` rows and columns of -inf on each side, at most half the pool size.

    Returns
    -------
    out : ndarray, shape (N, H', W', C)
        ``H' = (H + 2 ph - kh) // sh + 1``, W' alike.
    cache : tuple

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> maxpool2d_forward(x)[0][0, :, :, 0].tolist()
    [[5.0, 7.0], [13.0, 15.0]]
    """
    (kh, kw), (sh, sw), (ph, pw), (Ho, Wo) = _geometry(x, pool_size, stride, padding)
    x_pad = _pad(x, ph, pw)
    win = np.lib.stride_tricks.sliding_window_view(x_pad, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]  # N,H',W',C,kh,kw
    flat = win.reshape(win.shape[:4] + (kh * kw,))  # window pixels row by row: index i*kw + j
    out = flat.max(axis=-1)  # N,H',W',C
    k = flat.argmax(axis=-1)  # N,H',W',C: the first of ties
    rows = np.arange(Ho)[None, :, None, None] * sh + k // kw  # N,H',W',C: row of the winner in x_pad
    cols = np.arange(Wo)[None, None, :, None] * sw + k % kw  # its column
    return out, (rows, cols, x_pad.shape, (ph, pw), x.shape[1:3])


def maxpool2d_backward(dout, cache):
    """Backward of :func:`maxpool2d_forward`: each window's gradient goes to its argmax pixel."""
    rows, cols, pad_shape, (ph, pw), (H, W) = cache
    N, Ho, Wo, C = dout.shape
    dx_pad = np.zeros(pad_shape, dout.dtype)
    n = np.arange(N)[:, None, None, None]
    c = np.arange(C)[None, None, None, :]
    np.add.at(dx_pad, (n, rows, cols, c), dout)  # += : windows overlap
    return dx_pad[:, ph:ph + H, pw:pw + W]


# --------------------------------------------------------------------------- kernels
@njit(cache=True, nogil=True)
def _max_argmax(x_pad, kh, kw, sh, sw, out, argmax):
    """out[n, h, w, c] and the flat index s * W_pad + r in x_pad[n, :, :, c] of its first winner."""
    N, Ho, Wo, C = out.shape
    W_pad = x_pad.shape[2]
    for n in range(N):
        for h in range(Ho):
            for w in range(Wo):
                s0, r0 = h * sh, w * sw
                for c in range(C):
                    out[n, h, w, c] = x_pad[n, s0, r0, c]
                    argmax[n, h, w, c] = s0 * W_pad + r0
                for i in range(kh):
                    for j in range(kw):
                        s, r = s0 + i, r0 + j
                        for c in range(C):
                            if x_pad[n, s, r, c] > out[n, h, w, c]:  # strict: ties keep the first pixel
                                out[n, h, w, c] = x_pad[n, s, r, c]
                                argmax[n, h, w, c] = s * W_pad + r
    return out, argmax


@njit(cache=True, nogil=True)
def _route(dout, argmax, dx_pad):
    N, Ho, Wo, C = dout.shape
    W_pad = dx_pad.shape[2]
    for n in range(N):
        for h in range(Ho):
            for w in range(Wo):
                for c in range(C):
                    a = argmax[n, h, w, c]
                    dx_pad[n, a // W_pad, a % W_pad, c] += dout[n, h, w, c]  # += : windows overlap
    return dx_pad


# --------------------------------------------------------------------------- fast pair
def maxpool2d_forward_fast(x, pool_size=2, stride=None, padding=0):
    """:func:`maxpool2d_forward` as a Numba loop."""
    (kh, kw), (sh, sw), (ph, pw), (Ho, Wo) = _geometry(x, pool_size, stride, padding)
    x_pad = _pad(np.ascontiguousarray(x), ph, pw)
    N, C = x.shape[0], x.shape[3]
    out, argmax = _max_argmax(x_pad, kh, kw, sh, sw, np.empty((N, Ho, Wo, C), x_pad.dtype),
                              np.empty((N, Ho, Wo, C), np.int64))
    return out, (argmax, x_pad.shape, (ph, pw), x.shape[1:3])


def maxpool2d_backward_fast(dout, cache):
    """:func:`maxpool2d_backward` as a Numba loop."""
    argmax, pad_shape, (ph, pw), (H, W) = cache
    dout = np.ascontiguousarray(dout)
    dx_pad = np.zeros(pad_shape, dout.dtype)
    return _route(dout, argmax, dx_pad)[:, ph:ph + H, pw:pw + W]
