"""The ReLU recurrent layer of Huang et al.'s DRNN, and backpropagation through time.

Equations, for t = 0 .. T-1 and h_{-1} = h0::

    z_t = x_t Wx + h_{t-1} Wh + b                  x (N, T, D), Wx (D, H), Wh (H, H), b (H,)
    h_t = relu(z_t)                                h (N, T, H)

BPTT.  h_t is used twice: by the layer above at step t (upstream gradient ``dh[:, t]``) and
by step t+1 through Wh.  Its total gradient is therefore the sum of the two::

    dh_total_t = dh[:, t] + dz_{t+1} Wh^T          (nothing comes from step T)
    dz_t       = dh_total_t * [z_t > 0]
    dx_t = dz_t Wx^T,   dWx = sum_t x_t^T dz_t,   dWh = sum_t h_{t-1}^T dz_t,   db = sum_t dz_t

The second term of the first line is the gradient *carried* from step t+1 to step t; a
sequence backward that forgets it trains a network that cannot use its memory.

The file reads top to bottom as the issue of how to compute this fast:

1. the step pair :func:`rnn_step_forward` / :func:`rnn_step_backward`;
2. the readable sequence pair :func:`rnn_forward` / :func:`rnn_backward`, a Python loop over
   the steps that calls the step pair and carries the gradient itself;
3. the recurrence kernels: ``x Wx + b`` does not depend on the recurrence, so it is one GEMM
   over all N*T frames, and only ``h_t = relu(xw_t + h_{t-1} Wh)`` runs step by step, in
   Numba (each held by a test to its NumPy twin);
4. the fast sequence pair :func:`rnn_forward_fast` / :func:`rnn_backward_fast`, same
   signature and results as 2, built from one GEMM, the kernels and GEMMs for the weights.

Every sequence of a batch starts from h0 (zeros unless given): training sequences are
independent chunks of songs.
"""
import numpy as np
from numba import njit

from .affine import add_bias
from .threads import over_slices


# --------------------------------------------------------------------------- 1. one step
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


# --------------------------------------------------------------------------- 2. readable sequence pair
def _check_shapes(x, h0, Wx, Wh, b):
    H = Wx.shape[-1]
    if x.ndim != 3 or Wx.shape != (x.shape[-1], H) or Wh.shape != (H, H) or b.shape != (H,):
        raise ValueError(
            f"rnn: x {x.shape}, Wx {Wx.shape}, Wh {Wh.shape}, b {b.shape} do not fit (N, T, D) (D, H) (H, H) (H,)")
    N = x.shape[0]
    if h0 is None:
        return np.zeros((N, H), np.result_type(x, Wx))
    if h0.shape != (N, H):
        raise ValueError(f"rnn: h0 has shape {h0.shape}, expected {(N, H)}")
    return h0


def _check_clip(clip):
    if clip is not None and not clip > 0:
        raise ValueError(f"{clip=} must be a positive number or None")


def rnn_forward(x, h0, Wx, Wh, b):
    """Run the RNN over a sequence, one :func:`rnn_step_forward` per frame.

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


def rnn_backward(dh, cache, clip=None):
    """Backpropagation through time, one :func:`rnn_step_backward` per frame.

    ``dh[:, t]`` is ONLY the upstream gradient of h_t -- from the layer above at step t.
    h_t also feeds step t+1, so its total gradient is ``dh[:, t]`` plus the gradient that
    step t+1 sends back through Wh.  This function carries that gradient (``dprev_h``) from
    each step to the one before, itself: forgetting it is the classic BPTT bug.

    Parameters
    ----------
    dh : ndarray, shape (N, T, H)
        Per-step upstream gradients.
    cache : tuple
        From :func:`rnn_forward`.
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
    _, _, Wx, Wh, _ = step_caches[0]
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


# --------------------------------------------------------------------------- 3. recurrence kernels
# Each step is an (N,H) x (H,H) product with N rows only (10 in training, 1 in separation),
# and the rows are ReLU outputs, about half of them zeros.  BLAS is a poor fit there: it packs
# all of Wh for every step, cannot skip the zeros, and, called from Numba, uses SciPy's
# OpenBLAS -- a second thread pool beside NumPy's, and a barrier per step when threaded (a
# hundred times slower under load; see bench/RESULTS.md).  So the product is written out,
# without BLAS; a second thread takes a share of the sequences instead (threads.py).
@njit(cache=True)
def _accumulate_matmul(src, s, W, dst, d, idx):
    """``dst[n, d] += src[n, s] @ W`` for every n, skipping the zero entries of ``src[n, s]``.

    src (N,*,K), W (K,M), dst (N,*,M); idx is scratch space of K ints.  Each row of W is
    added in whole to the output row (a vectorised AXPY), four rows per sweep to cut the
    loads and stores of the output, and W is visited in chunks of rows that stay in cache
    while every n uses them.
    """
    N, K = src.shape[0], src.shape[2]
    M = W.shape[1]
    zero = src.dtype.type(0)
    chunk = max(16, 65536 // M)  # 65536 floats of W: 256 KB in float32, within L2
    for k0 in range(0, K, chunk):
        k1 = min(k0 + chunk, K)
        for n in range(N):
            m = 0  # the nonzero inputs of this row and chunk
            for k in range(k0, k1):
                if src[n, s, k] != zero:
                    idx[m] = k
                    m += 1
            o = dst[n, d]  # M
            i = 0
            while i + 4 <= m:
                ka, kb, kc, kd = idx[i], idx[i + 1], idx[i + 2], idx[i + 3]
                pa, pb, pc, pd = src[n, s, ka], src[n, s, kb], src[n, s, kc], src[n, s, kd]
                wa, wb, wc, wd = W[ka], W[kb], W[kc], W[kd]
                for j in range(M):
                    o[j] += pa * wa[j] + pb * wb[j] + pc * wc[j] + pd * wd[j]
                i += 4
            while i < m:
                p, w = src[n, s, idx[i]], W[idx[i]]
                for j in range(M):
                    o[j] += p * w[j]
                i += 1


# The kernels run on a slice of the batch's sequences (nogil: one slice per thread, see
# threads.py) and write into arrays the wrappers allocate.
@njit(cache=True, nogil=True)
def _recurrence_forward(h, h0, Wh):
    """In place: ``h`` (N,T,H) holds xw on entry and the states h_t on return."""
    N, T, H = h.shape
    zero = h.dtype.type(0)  # typed zero: keeps float32 in float32
    idx = np.empty(H, np.int64)
    h0_3 = h0.reshape(N, 1, H)
    for t in range(T):  # each step adds h_{t-1} Wh to its xw_t, then applies the ReLU
        if t == 0:
            _accumulate_matmul(h0_3, 0, Wh, h, 0, idx)
        else:
            _accumulate_matmul(h, t - 1, Wh, h, t, idx)
        for n in range(N):
            for j in range(H):
                if not h[n, t, j] > zero:  # ReLU (NaN -> 0, as max(z, 0) would not)
                    h[n, t, j] = zero


@njit(cache=True, nogil=True)
def _recurrence_backward(dh, h, WhT, clip, dz, carry):
    """Writes dz (N,T,H) and ``carry`` (N,1,H, zeros on entry): dh0 on return."""
    N, T, H = dh.shape
    zero = dh.dtype.type(0)
    c = dh.dtype.type(clip)
    clipping = c > zero and c < np.inf  # convention: clip <= 0 or inf means no clipping
    idx = np.empty(H, np.int64)
    for t in range(T - 1, -1, -1):  # carry: dL/dh_t arriving from step t+1, none after T-1
        for n in range(N):
            for j in range(H):
                # total gradient on h_t, through the ReLU (h > 0 exactly where z > 0)
                dz[n, t, j] = dh[n, t, j] + carry[n, 0, j] if h[n, t, j] > zero else zero
                carry[n, 0, j] = zero
        _accumulate_matmul(dz, t, WhT, carry, 0, idx)  # N,H gradient on h_{t-1}: dz_t Wh^T
        if clipping:
            for n in range(N):
                for j in range(H):
                    carry[n, 0, j] = min(max(carry[n, 0, j], -c), c)


def recurrence_forward_numpy(xw, h0, Wh):
    """Twin of :func:`recurrence_forward`: the same loop, time-major, with ``@``."""
    hs, prev = [], h0
    for xw_t in np.moveaxis(xw, 1, 0):  # T of N,H
        prev = np.maximum(xw_t + prev @ Wh, 0)
        hs.append(prev)
    return np.stack(hs, axis=1)  # N,T,H


def recurrence_backward_numpy(dh, h, h0, Wh, clip):
    """Twin of :func:`recurrence_backward`, with ``np.clip`` and the ReLU mask as a product."""
    N, T, H = dh.shape
    dz = np.zeros_like(dh)
    carry = np.zeros((N, H), dh.dtype)
    for t in reversed(range(T)):
        dz[:, t] = (dh[:, t] + carry) * (h[:, t] > 0)
        carry = dz[:, t] @ Wh.T
        if clip is not None and 0 < clip < np.inf:
            carry = np.clip(carry, -clip, clip)
    return dz, carry


def recurrence_forward(xw, h0, Wh):
    """Run ``h_t = relu(xw_t + h_{t-1} Wh)`` over t; xw (N,T,H), h0 (N,H) or None, Wh (H,H).

    Returns h (N,T,H) in the common float dtype of the inputs.
    """
    dtype = np.result_type(xw, Wh, np.float32)
    xw = np.ascontiguousarray(xw, dtype=dtype)
    N, T, H = xw.shape
    h0 = np.zeros((N, H), dtype) if h0 is None else np.ascontiguousarray(h0, dtype=dtype)
    Wh = np.ascontiguousarray(Wh, dtype=dtype)
    h = xw.copy()  # the kernel turns xw into h in place
    over_slices(lambda n0, n1: _recurrence_forward(h[n0:n1], h0[n0:n1], Wh), N)
    return h


def recurrence_backward(dh, h, h0, Wh, clip=0.0):
    """Backward of :func:`recurrence_forward`: gradients on the pre-activations and on h0.

    dh (N,T,H) holds the upstream gradient of every h_t; the kernel adds the gradient carried
    back from step t+1 itself.  ``h0`` is not read (dh0 comes out of the recurrence); it is
    taken so that the call mirrors the forward.  ``clip`` > 0 clips the carried gradient to
    [-clip, clip] after every step; None, 0, a negative value or inf means no clipping.
    Returns dz (N,T,H) and dh0 (N,H).
    """
    dtype = np.result_type(dh, h, Wh, np.float32)
    dh = np.ascontiguousarray(dh, dtype=dtype)
    clip = 0.0 if clip is None else float(clip)
    WhT = np.ascontiguousarray(np.asarray(Wh, dtype=dtype).T)  # rows of Wh^T: AXPYs, as forward
    h = np.ascontiguousarray(h, dtype=dtype)
    N, T, H = dh.shape
    dz, carry = np.empty_like(dh), np.zeros((N, 1, H), dtype)
    over_slices(lambda n0, n1: _recurrence_backward(dh[n0:n1], h[n0:n1], WhT, clip, dz[n0:n1],
                                                       carry[n0:n1]), N)
    return dz, carry.reshape(N, H)


# --------------------------------------------------------------------------- 4. fast sequence pair
def rnn_forward_fast(x, h0, Wx, Wh, b):
    """:func:`rnn_forward`, fast: ``xw = x Wx + b`` in one GEMM, then the recurrence kernel.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 5, 3))
    >>> Wx, Wh, b = rng.standard_normal((3, 4)), 0.5 * rng.standard_normal((4, 4)), np.zeros(4)
    >>> h, cache = rnn_forward_fast(x, None, Wx, Wh, b)
    >>> dx, dh0, dWx, dWh, db = rnn_backward_fast(np.ones_like(h), cache, clip=5.0)
    >>> h.shape, dh0.shape
    ((2, 5, 4), (2, 4))
    """
    h0 = _check_shapes(x, h0, Wx, Wh, b)
    N, T, D = x.shape
    H = Wx.shape[1]
    xw = add_bias(x.reshape(N * T, D) @ Wx, b)  # N*T,H: all frames at once
    h = recurrence_forward(xw.reshape(N, T, H), h0, Wh)  # N,T,H: the loop over time
    return h, (x, h0, Wx, Wh, h)


def rnn_backward_fast(dh, cache, clip=None, *, input_grad=True):
    """:func:`rnn_backward`, fast: the recurrence kernel gives dz, then GEMMs batched over time.

    As there, ``dh`` (N, T, H) holds only the per-step upstream gradients; the kernel carries
    the gradient from step t+1 to step t.  ``input_grad=False`` returns ``dx = None`` and skips
    its GEMM (for a network's first layer).

    Notes
    -----
    ``dWh = sum_t h_{t-1}^T dz_t`` is one GEMM over the hidden states shifted by one frame.
    In the flattened rows ``r = n T + t`` the row before ``dz_t`` is ``h_{t-1}``, except at
    ``t = 0``, where it is the previous sequence's last state instead of ``h0``: the GEMM runs
    on the shifted rows as they are, and those N rank-one terms are then swapped.
    """
    _check_clip(clip)
    x, h0, Wx, Wh, h = cache
    N, T, D = x.shape
    H = Wx.shape[1]
    dz, dh0 = recurrence_backward(dh, h, h0, Wh, clip)  # N,T,H and N,H
    dz_rows, h_rows = dz.reshape(N * T, H), h.reshape(N * T, H)
    dx = (dz_rows @ Wx.T).reshape(N, T, D) if input_grad else None
    dWx = x.reshape(N * T, D).T @ dz_rows  # D,H
    dWh = h_rows[:-1].T @ dz_rows[1:]  # H,H: every (row r-1, row r) pair, no shifted copy
    dWh -= h[:-1, -1].T @ dz[1:, 0]  # minus the pairs (h_{T-1} of sequence n-1, dz_0 of n)
    dWh += h0.T @ dz[:, 0]  # plus the true first steps' (h0, dz_0)
    db = dz_rows.sum(axis=0)  # H
    return dx, dh0, dWx, dWh, db
