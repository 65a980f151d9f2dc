"""1-D convolution over time (the hybrid network's front end), stride 1, "same" padding.

Equations, a correlation as in every deep-learning library, with ``x_pad`` holding (K-1)//2
zero frames on the left and K//2 on the right::

    out[n, t, o] = b[o] + sum_k sum_c x_pad[n, t+k, c] w[k, c, o]        (N, T, Cout)
    dw[k]        = sum_{n,t} x_pad[n, t+k]^T dout[n, t]                   (K, Cin, Cout)
    db           = sum_{n,t} dout[n, t]                                   (Cout,)
    dx_pad[n, s] = sum_k dout[n, s-k] w[k]^T                              (N, T+K-1, Cin)

The last line is a *full* correlation of dout with the kernel flipped in time: the gradient
flows back along the same taps, in the other direction.  dx is dx_pad without its padding.

The readable pair writes the sums as ``einsum`` over sliding windows.  The fast pair unfolds
every output frame's K input frames side by side ("im2col", K slice copies) so that the whole
layer is one GEMM with the largest inner dimension the layer offers, and folds the unfolded
gradient back with K shifted additions.  No Numba: no loop is left that NumPy does not run at
full speed.
"""
import numpy as np


def _pad(x, K):
    left, right = (K - 1) // 2, K // 2
    return np.pad(x, ((0, 0), (left, right), (0, 0))), left  # N,T+K-1,Cin


def _check(x, w, b):
    if x.ndim != 3 or w.ndim != 3 or x.shape[2] != w.shape[1] or b.shape != (w.shape[2],):
        raise ValueError(
            f"conv1d: x {x.shape}, w {w.shape}, b {b.shape} do not fit (N, T, Cin) (K, Cin, Cout) (Cout,)")


# --------------------------------------------------------------------------- readable pair
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
    """
    _check(x, w, b)
    K = w.shape[0]
    x_pad, left = _pad(x, K)
    win = np.lib.stride_tricks.sliding_window_view(x_pad, K, axis=1)  # N,T,Cin,K: win[.., k] = x_pad[t+k]
    out = np.einsum("ntck,kco->nto", win, w) + b  # N,T,Cout
    return out, (x_pad, w, left, x.shape[1])


def conv1d_backward(dout, cache):
    """Backward of :func:`conv1d_forward`: dout (N, T, Cout) -> dx (N, T, Cin), dw, db."""
    x_pad, w, left, T = cache
    K = w.shape[0]
    win = np.lib.stride_tricks.sliding_window_view(x_pad, K, axis=1)  # N,T,Cin,K
    dw = np.einsum("ntck,nto->kco", win, dout)  # K,Cin,Cout
    db = dout.sum(axis=(0, 1))  # Cout
    # full correlation with the flipped kernel: window j of dout_pad at s holds dout[s - (K-1) + j]
    dout_pad = np.pad(dout, ((0, 0), (K - 1, K - 1), (0, 0)))  # N,T+2K-2,Cout
    dwin = np.lib.stride_tricks.sliding_window_view(dout_pad, K, axis=1)  # N,T+K-1,Cout,K
    dx_pad = np.einsum("nsoj,jco->nsc", dwin, w[::-1])  # N,T+K-1,Cin
    return dx_pad[:, left:left + T], dw, db


# --------------------------------------------------------------------------- fast pair
def _unfold(x_pad, K):
    """Rows (N*T, K*Cin): row n*T + t holds frames t .. t+K-1 of x_pad[n], side by side."""
    N, T_pad, Cin = x_pad.shape
    T = T_pad - K + 1
    x_unf = np.empty((N, T, K, Cin), x_pad.dtype)
    for k in range(K):
        x_unf[:, :, k] = x_pad[:, k:k + T]  # N,T,Cin: tap k of every output frame
    return x_unf.reshape(N * T, K * Cin)


def conv1d_forward_fast(x, w, b):
    """:func:`conv1d_forward` as one GEMM over unfolded frames."""
    _check(x, w, b)
    K, Cin, Cout = w.shape
    x_pad, left = _pad(x, K)
    N, T = x.shape[:2]
    out = (_unfold(x_pad, K) @ w.reshape(K * Cin, Cout)).reshape(N, T, Cout)  # the layer in one GEMM
    out += b
    return out, (x_pad, w, left, T)


def conv1d_backward_fast(dout, cache, *, input_grad=True):
    """:func:`conv1d_backward`; ``input_grad=False`` returns ``dx = None`` and skips its GEMM."""
    x_pad, w, left, T = cache
    K, Cin, Cout = w.shape
    N, T_pad, _ = x_pad.shape
    dout_rows = np.ascontiguousarray(dout).reshape(N * T, Cout)
    dw = (_unfold(x_pad, K).T @ dout_rows).reshape(K, Cin, Cout)  # sum over all N*T frames
    db = dout_rows.sum(axis=0)
    if not input_grad:
        return None, dw, db
    dx_unf = (dout_rows @ w.reshape(K * Cin, Cout).T).reshape(N, T, K, Cin)
    dx_pad = np.zeros((N, T_pad, Cin), dx_unf.dtype)
    for k in range(K):
        dx_pad[:, k:k + T] += dx_unf[:, :, k]  # fold: frame t+k received tap k of frame t
    return dx_pad[:, left:left + T], dw, db
