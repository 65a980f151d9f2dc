r"""Huang et al.'s joint soft time-frequency mask, trained with the network.

The last affine layer gives ``a`` (N, T, 2F): ``a1 = a[..., :F]`` for the vocals and
``a2 = a[..., F:]`` for the accompaniment.  The mask turns them into two gains that sum to
one and multiplies the mixture's magnitude ``X`` (N, T, F) by each.

Equations, with ``m_i = |a_i|``, ``s = m1 + m2 + eps`` and the gains ``g_i = m_i / s``::

    y_i = g_i X                                   so y1 + y2 = X (1 - eps / s)

Backward (quotient rule): ``dg_i/dm_j = ([i = j] - g_i) / s``, which gives::

    dX   = dy1 g1 + dy2 g2                        (the mask's direct use of X)
    dm_i = X / s (dy_i - dX)
    da_i = dm_i sign(a_i)                         (sign 0 at a_i = 0: a subgradient)

``eps`` keeps a silent frame (a = 0) defined: its gains are 0 and so is its gradient on a.

The readable pair is these lines in NumPy.  The fast pair runs them as one fused Numba pass
over the bins each way (a dozen NumPy temporaries otherwise), recomputing s and g_i in the
backward instead of caching five arrays.
"""
import numpy as np
from numba import njit

from .threads import over_slices


def _check(a, X, eps):
    if eps <= 0:
        raise ValueError(f"mask {eps=} must be positive, or silence gives 0/0")
    F = X.shape[-1]
    if a.shape[:-1] != X.shape[:-1] or a.shape[-1] != 2 * F:
        raise ValueError(f"mask: a {a.shape} must be X {X.shape} with twice the last axis")


# --------------------------------------------------------------------------- readable pair
def mask_forward(a, X, eps=1e-8):
    """Soft mask: a (N, T, 2F), X (N, T, F) -> ``(y1, y2), cache``, each y (N, T, F)."""
    _check(a, X, eps)
    F = X.shape[-1]
    m1, m2 = np.abs(a[..., :F]), np.abs(a[..., F:])  # N,T,F each
    s = m1 + m2 + eps
    g1, g2 = m1 / s, m2 / s  # gains, summing to 1 - eps/s
    return (g1 * X, g2 * X), (a, X, eps)


def mask_backward(dy1, dy2, cache):
    """Backward of :func:`mask_forward`: dy1, dy2 (N, T, F) -> da (N, T, 2F), dX (N, T, F)."""
    a, X, eps = cache
    F = X.shape[-1]
    a1, a2 = a[..., :F], a[..., F:]
    m1, m2 = np.abs(a1), np.abs(a2)
    s = m1 + m2 + eps  # recomputed: cheaper than caching
    g1, g2 = m1 / s, m2 / s
    dX = dy1 * g1 + dy2 * g2
    dm1, dm2 = X / s * (dy1 - dX), X / s * (dy2 - dX)
    da = np.concatenate([dm1 * np.sign(a1), dm2 * np.sign(a2)], axis=-1)  # N,T,2F
    return da, dX


# --------------------------------------------------------------------------- kernels
# Both kernels run on a stretch of rows (frames), one per thread (threads.py); each row is
# computed alone, so the results do not depend on the split.
@njit(cache=True, nogil=True)
def _mask_forward(a, X, eps, y1, y2):
    R, F = X.shape
    e = X.dtype.type(eps)
    for r in range(R):
        for f in range(F):
            m1, m2 = abs(a[r, f]), abs(a[r, F + f])
            s = m1 + m2 + e
            y1[r, f] = m1 / s * X[r, f]
            y2[r, f] = m2 / s * X[r, f]
    return y1, y2


@njit(cache=True, nogil=True)
def _mask_backward(dy1, dy2, a, X, eps, da, dX):
    R, F = X.shape
    e = X.dtype.type(eps)
    for r in range(R):
        for f in range(F):
            a1, a2 = a[r, f], a[r, F + f]
            m1, m2 = abs(a1), abs(a2)
            s = m1 + m2 + e
            g1, g2 = m1 / s, m2 / s
            d1, d2 = dy1[r, f], dy2[r, f]
            dx = d1 * g1 + d2 * g2
            xs = X[r, f] / s
            da[r, f] = xs * (d1 - dx) * np.sign(a1)
            da[r, F + f] = xs * (d2 - dx) * np.sign(a2)
            dX[r, f] = dx
    return da, dX


_GRAIN = 64  # frames: fewer are not worth a second thread


def _rows(*arrays):
    """Arrays in their common float dtype, contiguous, with every leading axis as rows."""
    dtype = np.result_type(*arrays, np.float32)
    return [np.ascontiguousarray(x, dtype=dtype).reshape(-1, x.shape[-1]) for x in arrays]


# --------------------------------------------------------------------------- fast pair
def mask_forward_fast(a, X, eps=1e-8):
    """:func:`mask_forward` as one fused pass over the bins."""
    _check(a, X, eps)
    a2d, X2d = _rows(a, X)
    y1, y2, e = np.empty_like(X2d), np.empty_like(X2d), float(eps)
    over_slices(lambda i, j: _mask_forward(a2d[i:j], X2d[i:j], e, y1[i:j], y2[i:j]), len(X2d), grain=_GRAIN)
    return (y1.reshape(X.shape), y2.reshape(X.shape)), (a, X, eps)


def mask_backward_fast(dy1, dy2, cache):
    """:func:`mask_backward` as one fused pass over the bins."""
    a, X, eps = cache
    d1, d2, a2d, X2d = _rows(dy1, dy2, a, X)
    da, dX, e = np.empty_like(a2d), np.empty_like(X2d), float(eps)
    over_slices(lambda i, j: _mask_backward(d1[i:j], d2[i:j], a2d[i:j], X2d[i:j], e, da[i:j], dX[i:j]),
                len(X2d), grain=_GRAIN)
    return da.reshape(a.shape), dX.reshape(X.shape)
