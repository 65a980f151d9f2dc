"""The affine layer: ``out = x w + b`` over the last axis.

Equations (rows of x are the N*T frames, flattened)::

    out = x w + b                      x (..., D), w (D, M), b (M,)
    dx  = dout w^T                     (..., D)
    dw  = x^T dout                     (D, M): a sum over every row, as w is shared
    db  = sum_rows dout                (M,)

The readable pair is the equations as written.  The fast pair has the same signature and adds
two savings that a network makes on every step: the bias is added in place (no second
(..., M) array), and ``input_grad=False`` skips the GEMM of dx, as large as the forward's,
which a network's first layer does not need.  There is no kernel: a GEMM is BLAS's job.
"""
import numpy as np


# --------------------------------------------------------------------------- readable pair
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
    _check(x, w, b)
    out = x @ w + b  # ...,M
    return out, (x, w)


def affine_backward(dout, cache):
    """Backward of :func:`affine_forward`: dout (..., M) -> dx (..., D), dw (D, M), db (M,)."""
    x, w = cache
    D, M = w.shape
    dx = dout @ w.T  # ...,D
    dw = x.reshape(-1, D).T @ dout.reshape(-1, M)  # D,M: sum over every row (n, t)
    db = dout.reshape(-1, M).sum(axis=0)  # M
    return dx, dw, db


def _check(x, w, b):
    if x.shape[-1] != w.shape[0] or b.shape != (w.shape[1],):
        raise ValueError(f"affine: x {x.shape}, w {w.shape}, b {b.shape} do not fit (..., D) (D, M) (M,)")


# --------------------------------------------------------------------------- fast pair
def add_bias(out, b):
    """``out + b``, in place when that keeps the dtype that ``out + b`` would have.

    In place saves a whole (..., M) temporary per layer; a wider ``b`` (float64 bias on a
    float32 product) still widens the result, as ``x @ w + b`` would.
    """
    if np.result_type(out, b) != out.dtype:
        return out + b
    out += b
    return out


def affine_forward_fast(x, w, b):
    """:func:`affine_forward` with the bias added in place."""
    _check(x, w, b)
    return add_bias(x @ w, b), (x, w)


def affine_backward_fast(dout, cache, *, input_grad=True):
    """:func:`affine_backward`; ``input_grad=False`` returns ``dx = None`` and skips its GEMM."""
    x, w = cache
    D, M = w.shape
    dx = dout @ w.T if input_grad else None  # ...,D
    dw = x.reshape(-1, D).T @ dout.reshape(-1, M)  # D,M
    db = dout.reshape(-1, M).sum(axis=0)  # M
    return dx, dw, db
