"""Per-channel normalisation of channel-last maps: batch norm and instance norm, training mode.

Each channel is normalised over a group of pixels, then scaled and shifted by learned
per-channel ``gamma`` and ``beta``.  The group is every pixel of the batch (``over="batch"``:
batch norm, statistics shared by the N images) or of one image (``over="instance"``: instance
norm, statistics per image).  For a group of M pixels ``x[m, c]``::

    mu[c]      = 1/M sum_m x[m, c]
    var[c]     = 1/M sum_m (x[m, c] - mu[c])^2                  (biased, as in training)
    xhat[m, c] = (x[m, c] - mu[c]) / sqrt(var[c] + eps)
    out[m, c]  = gamma[c] xhat[m, c] + beta[c]

    dbeta[c]   = sum over all pixels of dout                     (C,)
    dgamma[c]  = sum over all pixels of dout xhat                (C,)
    dx[m, c]   = gamma[c] / sqrt(var[c] + eps) * (dout[m, c] - mean_m(dout[., c])
                                                  - xhat[m, c] mean_m(dout[., c] xhat[., c]))

The last line is the one learners miss: mu and var depend on every x of the group, so dx is
dout's share *less* its mean (through mu) and less its projection on xhat (through var).  The
statistics here are the batch's own; a model keeps their running means for inference, where
the layer is a fixed per-channel affine map (the cache holds ``mean`` and ``var``, (G, C)).

The readable pair is NumPy over axes with ``keepdims``; the fast pair does each pass as one
Numba loop over the rows of ``x.reshape(-1, C)`` (statistics summed in float64), where NumPy
takes five or six passes over the array.
"""
import numpy as np
from numba import njit

OVER = ("batch", "instance")


def _check(x, gamma, beta, over, eps):
    if over not in OVER:
        raise ValueError(f"{over=} must be 'batch' or 'instance'")
    if not eps > 0:
        raise ValueError(f"{eps=} must be a positive number")
    if x.ndim != 4 or gamma.shape != (x.shape[3],) or beta.shape != (x.shape[3],):
        raise ValueError(f"norm2d: x {x.shape}, gamma {gamma.shape}, beta {beta.shape} do not fit "
                         f"(N, H, W, C) (C,) (C,)")
    if x.shape[1] * x.shape[2] * (x.shape[0] if over == "batch" else 1) < 2:
        raise ValueError(f"norm2d over {over!r} needs two pixels a group at least, got x {x.shape}")


def _axes(over):
    return (0, 1, 2) if over == "batch" else (1, 2)  # the pixels of a group


# --------------------------------------------------------------------------- readable pair
def norm2d_forward(x, gamma, beta, over="batch", eps=1e-5):
    """Batch or instance normalisation, with the batch's own statistics.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    gamma, beta : ndarray, shape (C,)
        Scale and shift of each channel.
    over : {"batch", "instance"}
        The pixels a channel is normalised over: the whole batch, or each image alone.
    eps : float
        Added to the variance.

    Returns
    -------
    out : ndarray, shape (N, H, W, C)
    cache : tuple
        ``(x, gamma, mean, var, over, eps)``, mean and var of shape (G, C): G = 1 for "batch",
        N for "instance".

    Examples
    --------
    >>> x = np.arange(8.0).reshape(2, 2, 2, 1)
    >>> out, _ = norm2d_forward(x, np.ones(1), np.zeros(1), "instance")
    >>> np.round(out[:, :, :, 0], 3).tolist()
    [[[-1.342, -0.447], [0.447, 1.342]], [[-1.342, -0.447], [0.447, 1.342]]]
    """
    _check(x, gamma, beta, over, eps)
    axes = _axes(over)
    mu = x.mean(axis=axes, keepdims=True)  # G,1,1,C (G = 1 or N)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)  # biased: the batch's own spread
    xhat = (x - mu) / np.sqrt(var + eps)  # N,H,W,C
    out = gamma * xhat + beta
    C = x.shape[3]
    return out, (x, gamma, mu.reshape(-1, C), var.reshape(-1, C), over, eps)


def norm2d_backward(dout, cache):
    """Backward of :func:`norm2d_forward`: dout (N, H, W, C) -> dx, dgamma, dbeta."""
    x, gamma, mean, var, over, eps = cache
    axes = _axes(over)
    G, C = mean.shape
    mu, var = mean.reshape(G, 1, 1, C), var.reshape(G, 1, 1, C)
    xhat = (x - mu) / np.sqrt(var + eps)  # recomputed: cheaper to keep x than x and xhat
    dbeta = dout.sum(axis=(0, 1, 2))  # C
    dgamma = (dout * xhat).sum(axis=(0, 1, 2))  # C: gamma is shared by every group
    # through mu (the mean of dout) and through var (the projection on xhat), group by group
    dx = gamma / np.sqrt(var + eps) * (dout - dout.mean(axis=axes, keepdims=True)
                                       - xhat * (dout * xhat).mean(axis=axes, keepdims=True))
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------- kernels
@njit(cache=True, nogil=True)
def _statistics(x2, M, eps, mean, var, inv_std):
    """mean[g], var[g] and 1/sqrt(var[g] + eps) of each group of M rows of x2 (rows, C), in float64."""
    G, C = mean.shape
    acc = np.zeros(C)
    for g in range(G):
        acc[:] = 0.0
        for m in range(g * M, (g + 1) * M):
            for c in range(C):
                acc[c] += x2[m, c]
        for c in range(C):
            mean[g, c] = acc[c] / M
        acc[:] = 0.0
        for m in range(g * M, (g + 1) * M):  # a second pass: no cancellation in E[x^2] - E[x]^2
            for c in range(C):
                d = x2[m, c] - mean[g, c]
                acc[c] += d * d
        for c in range(C):
            var[g, c] = acc[c] / M
            inv_std[g, c] = 1.0 / np.sqrt(var[g, c] + eps)
    return mean, var, inv_std


@njit(cache=True, nogil=True)
def _normalise(x2, M, mean, inv_std, gamma, beta, out2):
    G, C = mean.shape
    for g in range(G):
        for m in range(g * M, (g + 1) * M):
            for c in range(C):
                out2[m, c] = gamma[c] * ((x2[m, c] - mean[g, c]) * inv_std[g, c]) + beta[c]
    return out2


@njit(cache=True, nogil=True)
def _norm_backward(dout2, x2, M, mean, inv_std, gamma, dx2, dgamma, dbeta):
    """dx2 (rows, C) and dgamma, dbeta (C,) summed in float64, from two passes over each group."""
    G, C = mean.shape
    s1, s2 = np.zeros(C), np.zeros(C)  # a group's sum of dout and of dout * xhat
    dgamma[:] = 0.0
    dbeta[:] = 0.0
    for g in range(G):
        s1[:] = 0.0
        s2[:] = 0.0
        for m in range(g * M, (g + 1) * M):
            for c in range(C):
                s1[c] += dout2[m, c]
                s2[c] += dout2[m, c] * ((x2[m, c] - mean[g, c]) * inv_std[g, c])
        for c in range(C):
            dbeta[c] += s1[c]
            dgamma[c] += s2[c]
            s1[c] /= M
            s2[c] /= M
        for m in range(g * M, (g + 1) * M):
            for c in range(C):
                xhat = (x2[m, c] - mean[g, c]) * inv_std[g, c]
                dx2[m, c] = gamma[c] * inv_std[g, c] * (dout2[m, c] - s1[c] - xhat * s2[c])
    return dx2


# --------------------------------------------------------------------------- fast pair
def norm2d_forward_fast(x, gamma, beta, over="batch", eps=1e-5):
    """:func:`norm2d_forward` in two Numba passes (statistics, then the normalised output)."""
    _check(x, gamma, beta, over, eps)
    N, H, W, C = x.shape
    dtype = np.result_type(x.dtype, gamma.dtype, beta.dtype)
    x2 = np.ascontiguousarray(x, dtype).reshape(-1, C)  # rows (n, h, w): a group is M consecutive rows
    G = 1 if over == "batch" else N
    M = len(x2) // G
    mean, var, inv_std = _statistics(x2, M, float(eps), np.empty((G, C)), np.empty((G, C)), np.empty((G, C)))
    gamma = gamma.astype(dtype)
    out2 = _normalise(x2, M, mean, inv_std, gamma, beta.astype(dtype), np.empty_like(x2))
    return out2.reshape(x.shape), (x2, gamma, mean, var, over, eps, inv_std)  # statistics in float64


def norm2d_backward_fast(dout, cache):
    """:func:`norm2d_backward` in two Numba passes over each group."""
    x2, gamma, mean, var, over, eps, inv_std = cache
    C = x2.shape[1]
    dout2 = np.ascontiguousarray(dout, x2.dtype).reshape(-1, C)
    M = len(x2) // len(mean)
    dgamma, dbeta = np.empty(C), np.empty(C)
    dx2 = _norm_backward(dout2, x2, M, mean, inv_std, gamma, np.empty_like(x2), dgamma, dbeta)
    return dx2.reshape(dout.shape), dgamma.astype(x2.dtype), dbeta.astype(x2.dtype)
