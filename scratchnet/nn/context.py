"""Huang et al.'s context window: each frame stacked with its k neighbours on either side.

Equations, with the frame index clipped to the sequence (the end frames repeat)::

    idx[t, j] = clip(t - k + j, 0, T-1)                      j = 0 .. 2k
    out[n, t, j*F:(j+1)*F] = x[n, idx[t, j]]                 (N, T, (2k+1) F)
    dx[n, s] = sum over (t, j) with idx[t, j] = s of dout[n, t, j*F:(j+1)*F]

Every output block is a copy of some frame, so the backward adds each copy's gradient back to
the frame it came from; the repeated edge frames collect several.  The readable pair is one
fancy index and one ``np.add.at`` scatter; the fast pair runs the same gather and scatter as
Numba loops (``np.add.at`` is an unbuffered scatter, ten times slower than the loop).
"""
import numpy as np
from numba import njit


def frame_index(T, k):
    """``idx`` (T, 2k+1): the frame that block j of output frame t copies."""
    if not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"context half-width {k=} must be a non-negative integer")
    return np.clip(np.arange(T)[:, None] + np.arange(-k, k + 1)[None, :], 0, T - 1)  # T,2k+1


# --------------------------------------------------------------------------- readable pair
def context_forward(x, k):
    """Stack each frame with its ``k`` neighbours on either side.

    Parameters
    ----------
    x : ndarray, shape (N, T, F)
    k : int
        Half-width; ``k = 1`` gives Huang et al.'s "3 frames".

    Returns
    -------
    out : ndarray, shape (N, T, (2k+1) F)
        Block ``j`` holds frame ``t - k + j``, clipped to [0, T-1].
    cache : tuple
    """
    N, T, F = x.shape
    idx = frame_index(T, k)
    out = x[:, idx, :].reshape(N, T, idx.shape[1] * F)  # N,T,(2k+1)F
    return out, (idx, x.shape)


def context_backward(dout, cache):
    """Backward of :func:`context_forward`: dout (N, T, (2k+1) F) -> dx (N, T, F)."""
    idx, (N, T, F) = cache
    dx = np.zeros((N, T, F), dout.dtype)
    np.add.at(dx, (slice(None), idx), dout.reshape(N, T, idx.shape[1], F))  # += every copy
    return dx


# --------------------------------------------------------------------------- kernels
@njit(cache=True)
def _gather(x, idx, out):
    N, T, F = x.shape
    J = idx.shape[1]
    for n in range(N):
        for t in range(T):
            for j in range(J):
                s = idx[t, j]
                for f in range(F):
                    out[n, t, j * F + f] = x[n, s, f]
    return out


@njit(cache=True)
def _scatter_add(dout, idx, dx):
    N, T, F = dx.shape
    J = idx.shape[1]
    for n in range(N):
        for t in range(T):
            for j in range(J):
                s = idx[t, j]
                for f in range(F):
                    dx[n, s, f] += dout[n, t, j * F + f]  # += : edge frames are copied repeatedly
    return dx


# --------------------------------------------------------------------------- fast pair
def context_forward_fast(x, k):
    """:func:`context_forward` with the gather as a Numba loop."""
    x = np.ascontiguousarray(x)
    N, T, F = x.shape
    idx = frame_index(T, k)
    out = np.empty((N, T, idx.shape[1] * F), x.dtype)
    return _gather(x, idx.astype(np.int64), out), (idx, x.shape)


def context_backward_fast(dout, cache):
    """:func:`context_backward` with the scatter as a Numba loop."""
    idx, (N, T, F) = cache
    dout = np.ascontiguousarray(dout)
    dx = np.zeros((N, T, F), dout.dtype)
    return _scatter_add(dout, np.ascontiguousarray(idx, dtype=np.int64), dx)
