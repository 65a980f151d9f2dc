"""A ReLU recurrent layer and backpropagation through time, written from the step function.

Huang et al.'s deep recurrent network (DRNN) uses the recurrence

    h_t = relu(x_t Wx + h_{t-1} Wh + b),       t = 0 .. T-1,   h_{-1} = h0.

The module gives it twice:

* the readable reference: :func:`rnn_step_forward` / :func:`rnn_step_backward` for one step,
  and :func:`rnn_forward_steps` / :func:`rnn_backward_steps`, a Python loop over the steps;
* the fast path used by the models, :func:`rnn_forward` / :func:`rnn_backward`: the same
  maths with one GEMM for ``x Wx + b`` over all N*T frames, Numba kernels for the loop over
  time (:mod:`scratchnet.kernels`), and GEMMs for the weight gradients.

``tests/test_recurrent.py`` checks the reference against finite differences and holds the
fast path to the reference.  Every sequence in a batch starts from h0: training sequences
are independent chunks of songs.
"""
import numpy as np

from . import kernels
from .errors import ScratchnetError
from .layers import add_bias


# --------------------------------------------------------------------------- one step
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One step of the ReLU RNN: ``next_h = relu(x Wx + prev_h Wh + b)``.

    Parameters
    ----------
    x : ndarray, shape (N, D)
    prev_h : ndarray, shape (N, H)
    Wx : ndarray, shape (D, H)
    Wh : ndarray, shape (H, H)
    b : ndarray, shape (H,)

    Returns
    -------
    next_h : ndarray, shape (N, H)
    cache : tuple
    """
    z = x @ Wx + prev_h @ Wh + b  # N,H pre-activation
    next_h = np.maximum(z, 0)  # N,H
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    """Backward of :func:`rnn_step_forward`: dnext_h (N, H) -> dx, dprev_h, dWx, dWh, db.

    Notes
    -----
    ``dz = dnext_h * [z > 0]``; then ``dx = dz Wx^T``, ``dprev_h = dz Wh^T``,
    ``dWx = x^T dz``, ``dWh = prev_h^T dz``, ``db = sum_n dz``.
    """
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (next_h > 0)  # N,H: z > 0 exactly where next_h > 0
    dx = dz @ Wx.T  # N,D
    dprev_h = dz @ Wh.T  # N,H
    dWx = x.T @ dz  # D,H
    dWh = prev_h.T @ dz  # H,H
    db = dz.sum(axis=0)  # H
    return dx, dprev_h, dWx, dWh, db


# --------------------------------------------------------------------------- reference loop
def _check_shapes(x, h0, Wx, Wh, b):
    H = Wx.shape[-1]
    if x.ndim != 3 or Wx.shape != (x.shape[-1], H) or Wh.shape != (H, H) or b.shape != (H,):
        raise ScratchnetError(
            f"rnn: x {x.shape}, Wx {Wx.shape}, Wh {Wh.shape}, b {b.shape} do not fit (N, T, D) (D, H) (H, H) (H,)")
    N = x.shape[0]
    if h0 is None:
        return np.zeros((N, H), np.result_type(x, Wx))
    if h0.shape != (N, H):
        raise ScratchnetError(f"rnn: h0 has shape {h0.shape}, expected {(N, H)}")
    return h0


def _check_clip(clip):
    if clip is not None and not clip > 0:
        raise ScratchnetError(f"{clip=} must be a positive number or None")


def rnn_forward_steps(x, h0, Wx, Wh, b):
    """Run the RNN over a sequence, one :func:`rnn_step_forward` per frame (the reference).

    Parameters
    ----------
    x : ndarray, shape (N, T, D)
    h0 : ndarray, shape (N, H), or None for zeros
    Wx, Wh, b : ndarray, shapes (D, H), (H, H), (H,)

    Returns
    -------
    h : ndarray, shape (N, T, H)
        Hidden state of every frame.
    cache : tuple
    """
    h0 = _check_shapes(x, h0, Wx, Wh, b)
    T = x.shape[1]
    hs, step_caches = [], []
    prev_h = h0
    for t in range(T):
        prev_h, step_cache = rnn_step_forward(x[:, t, :], prev_h, Wx, Wh, b)
        hs.append(prev_h)
        step_caches.append(step_cache)
    return np.stack(hs, axis=1), (step_caches, h0)  # N,T,H


def rnn_backward_steps(dh, cache, clip=None):
    """Backpropagation through time, one :func:`rnn_step_backward` per frame (the reference).

    ``dh[:, t]`` is ONLY the upstream gradient of h_t -- from the layer above at step t.
    h_t also feeds step t+1, so its total gradient is ``dh[:, t]`` plus the gradient that
    step t+1 sends back through Wh.  This function carries that gradient (``dprev_h``) from
    each step to the one before, itself: forgetting it is the classic BPTT bug.

    Parameters
    ----------
    dh : ndarray, shape (N, T, H)
        Per-step upstream gradients.
    cache : tuple
        From :func:`rnn_forward_steps`.
    clip : float, optional
        Clip the carried gradient elementwise to [-clip, clip] after every step, dh0
        included, to tame exploding gradients.  None: no clipping.

    Returns
    -------
    dx : ndarray, shape (N, T, D)
    dh0 : ndarray, shape (N, H)
    dWx, dWh, db : ndarray, shapes (D, H), (H, H), (H,)
        Summed over all steps: every step uses the same weights.
    """
    _check_clip(clip)
    step_caches, h0 = cache
    N, T, H = dh.shape
    x0, _, Wx, Wh, _ = step_caches[0]
    dx = np.zeros((N, T, Wx.shape[0]), dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(H, dh.dtype)
    dprev_h = np.zeros((N, H), dh.dtype)  # gradient carried back from step t+1: none after T-1
    for t in reversed(range(T)):
        dnext_h = dh[:, t, :] + dprev_h  # total gradient on h_t: from above + from step t+1
        dx_t, dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dnext_h, step_caches[t])
        if clip is not None:
            dprev_h = np.clip(dprev_h, -clip, clip)  # tame exploding gradients
        dx[:, t, :] = dx_t
        dWx += dWx_t  # += : the weights are shared by every step
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db  # dprev_h of step 0 is dh0


# --------------------------------------------------------------------------- fast path
def rnn_forward(x, h0, Wx, Wh, b):
    """Run the RNN over a sequence, fast: same maths and results as :func:`rnn_forward_steps`.

    Parameters
    ----------
    x : ndarray, shape (N, T, D)
    h0 : ndarray, shape (N, H), or None for zeros
    Wx, Wh, b : ndarray, shapes (D, H), (H, H), (H,)

    Returns
    -------
    h : ndarray, shape (N, T, H)
    cache : tuple

    Notes
    -----
    The input term of every frame does not depend on the recurrence, so
    ``xw = x Wx + b`` is one (N*T, D) x (D, H) GEMM; only ``h_t = relu(xw_t + h_{t-1} Wh)``
    runs step by step, in :func:`scratchnet.kernels.rnn_recurrence_forward`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 5, 3))
    >>> Wx, Wh, b = rng.standard_normal((3, 4)), 0.5 * rng.standard_normal((4, 4)), np.zeros(4)
    >>> h, cache = rnn_forward(x, None, Wx, Wh, b)
    >>> dx, dh0, dWx, dWh, db = rnn_backward(np.ones_like(h), cache, clip=5.0)
    >>> h.shape, dh0.shape
    ((2, 5, 4), (2, 4))
    """
    h0 = _check_shapes(x, h0, Wx, Wh, b)
    N, T, D = x.shape
    H = Wx.shape[1]
    xw = add_bias(x.reshape(N * T, D) @ Wx, b)  # N*T,H: all frames at once
    h = kernels.rnn_recurrence_forward(xw.reshape(N, T, H), h0, Wh)  # N,T,H: the loop over time
    return h, (x, h0, Wx, Wh, h)


def rnn_backward(dh, cache, clip=None, *, input_grad=True):
    """BPTT, fast: same maths and results as :func:`rnn_backward_steps`.

    As there, ``dh`` (N, T, H) holds only the per-step upstream gradients; the kernel
    :func:`scratchnet.kernels.rnn_recurrence_backward` carries the gradient from step t+1 to
    step t (clipped to [-clip, clip] after every step if ``clip`` is given) and returns the
    gradient on every pre-activation, ``dz`` (N, T, H), and dh0.  ``input_grad=False``
    returns ``dx = None`` and skips its GEMM (for a network's first layer).

    Returns
    -------
    dx, dh0, dWx, dWh, db : ndarray
        Shapes (N, T, D), (N, H), (D, H), (H, H), (H,).

    Notes
    -----
    With ``dz`` known for every step the rest is batched over time:
    ``dx = dz Wx^T``, ``dWx = sum_t x_t^T dz_t``, ``db = sum_{n,t} dz``, and
    ``dWh = sum_t h_{t-1}^T dz_t`` -- one GEMM over the hidden states shifted by one frame.
    In the flattened rows ``r = n T + t`` the row before ``dz_t`` is ``h_{t-1}``, except at
    ``t = 0``, where it is the previous sequence's last state instead of ``h0``: the GEMM runs
    on the shifted rows as they are, and those N rank-one terms are then swapped.
    """
    _check_clip(clip)
    x, h0, Wx, Wh, h = cache
    N, T, D = x.shape
    H = Wx.shape[1]
    dz, dh0 = kernels.rnn_recurrence_backward(dh, h, h0, Wh, clip)  # N,T,H and N,H
    dz_rows, h_rows = dz.reshape(N * T, H), h.reshape(N * T, H)
    dx = (dz_rows @ Wx.T).reshape(N, T, D) if input_grad else None
    dWx = x.reshape(N * T, D).T @ dz_rows  # D,H
    dWh = h_rows[:-1].T @ dz_rows[1:]  # H,H: every (row r-1, row r) pair, no shifted copy
    dWh -= h[:-1, -1].T @ dz[1:, 0]  # minus the pairs (h_{T-1} of sequence n-1, dz_0 of n)
    dWh += h0.T @ dz[:, 0]  # plus the true first steps' (h0, dz_0)
    db = dz_rows.sum(axis=0)  # H
    return dx, dh0, dWx, dWh, db
