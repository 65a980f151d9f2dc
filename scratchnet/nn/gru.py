"""The gated recurrent unit (GRU) of Cho et al., as PyTorch's ``nn.GRU``, and BPTT through it.

Equations, for t = 0 .. T-1 and h_{-1} = h0, with ``sigmoid(a) = 1 / (1 + exp(-a))``::

    xw_t = x_t Wx + bx,   hw_t = h_{t-1} Wh + bh          x (N, T, D), Wx (D, 3H), Wh (H, 3H)
    r_t = sigmoid(xw_t[r] + hw_t[r])                       reset gate
    z_t = sigmoid(xw_t[z] + hw_t[z])                       update gate
    n_t = tanh(xw_t[n] + r_t * hw_t[n])                    candidate state
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}                  h (N, T, H)

``[r]``, ``[z]``, ``[n]`` are the three blocks of H columns, in that order (PyTorch's
``weight_ih_l0`` is ``Wx.T``, ``weight_hh_l0`` is ``Wh.T``, ``bias_ih_l0`` is ``bx``,
``bias_hh_l0`` is ``bh``).  The reset gate multiplies ``hw_t[n] = h_{t-1} Wh[n] + bh[n]``, its
bias included: that is why the GRU keeps two biases where one would do for the other gates.

BPTT.  With ``g_t = dh[:, t] + carry_t`` the total gradient on h_t (from the layer above, and
carried back from step t+1; nothing comes from step T)::

    dn = g_t (1 - z_t),             da_n = dn (1 - n_t^2)                    through the tanh
    dz = g_t (h_{t-1} - n_t),       da_z = dz z_t (1 - z_t)
    dr = da_n hw_t[n],              da_r = dr r_t (1 - r_t)
    dxw_t = [da_r, da_z, da_n]                     gradient on x_t Wx + bx   (N, 3H)
    dhw_t = [da_r, da_z, da_n * r_t]               gradient on h_{t-1} Wh + bh
    carry_{t-1} = g_t z_t + dhw_t Wh^T             h_{t-1} is used twice: directly, and by Wh
    dx_t = dxw_t Wx^T,  dWx = sum_t x_t^T dxw_t,  dbx = sum_t dxw_t
    dWh = sum_t h_{t-1}^T dhw_t,  dbh = sum_t dhw_t

``carry`` is the gradient carried from step t+1 to step t: a BPTT that forgets it trains a
layer without memory.

The file reads top to bottom as rnn.py does:

1. the step pair :func:`gru_step_forward` / :func:`gru_step_backward`;
2. the readable sequence pair :func:`gru_forward` / :func:`gru_backward`, a Python loop over
   the steps that calls the step pair and carries the gradient itself;
3. the kernels: ``x Wx + bx`` does not depend on the recurrence, so it is one GEMM over all
   N*T frames; the loop over time (``h_{t-1} Wh`` and the gates, each way) runs in Numba, each
   kernel held by a test to its NumPy twin.  The small product of a step and the gate
   functions are in ``_gated.py``, shared with the LSTM;
4. the fast sequence pair :func:`gru_forward_fast` / :func:`gru_backward_fast`, same
   signature and results as 2, built from one GEMM, the kernels and GEMMs for the weights.

Every sequence of a batch starts from h0 (zeros unless given).
"""
import numpy as np
from numba import njit

from ._gated import _accumulate_dots, _check_clip, _common_dtype, _sigmoid, _sigmoid_scalar, _tanh_scalar
from .affine import add_bias
from .threads import over_slices


# --------------------------------------------------------------------------- 1. one step
def gru_step_forward(x, prev_h, Wx, Wh, bx, bh):
    """One GRU step.

    Parameters
    ----------
    x : ndarray, shape (N, D)
    prev_h : ndarray, shape (N, H)
    Wx : ndarray, shape (D, 3H)
        Input weights of the reset, update and candidate blocks, in that order.
    Wh : ndarray, shape (H, 3H)
        Recurrent weights, same blocks.
    bx, bh : ndarray, shape (3H,)
        Input and recurrent biases.

    Returns
    -------
    next_h : ndarray, shape (N, H)
    cache : tuple
    """
    H = prev_h.shape[1]
    xw = x @ Wx + bx  # N,3H: the input's share of every gate
    hw = prev_h @ Wh + bh  # N,3H: the recurrent share
    r = _sigmoid(xw[:, :H] + hw[:, :H])  # N,H reset gate
    z = _sigmoid(xw[:, H:2 * H] + hw[:, H:2 * H])  # N,H update gate
    hn = hw[:, 2 * H:]  # N,H: the recurrent part of the candidate, which r scales
    n = np.tanh(xw[:, 2 * H:] + r * hn)  # N,H candidate
    next_h = (1 - z) * n + z * prev_h  # N,H: z keeps the old state, 1 - z takes the new
    return next_h, (x, prev_h, Wx, Wh, r, z, n, hn)


def gru_step_backward(dnext_h, cache):
    """Backward of :func:`gru_step_forward`: dnext_h (N, H) -> dx, dprev_h, dWx, dWh, dbx, dbh.

    Notes
    -----
    See the module docstring: ``dxw = [da_r, da_z, da_n]`` and ``dhw = [da_r, da_z, da_n r]``
    are the gradients on ``x Wx + bx`` and ``prev_h Wh + bh``; prev_h gets ``dnext_h z``
    directly and ``dhw Wh^T`` through the gates.
    """
    x, prev_h, Wx, Wh, r, z, n, hn = cache
    dn = dnext_h * (1 - z)  # N,H
    dz = dnext_h * (prev_h - n)  # N,H
    da_n = dn * (1 - n * n)  # through the tanh
    da_r = da_n * hn * r * (1 - r)  # dr = da_n hn, then through the sigmoid
    da_z = dz * z * (1 - z)
    dxw = np.concatenate([da_r, da_z, da_n], axis=1)  # N,3H on x Wx + bx
    dhw = np.concatenate([da_r, da_z, da_n * r], axis=1)  # N,3H on prev_h Wh + bh
    dx = dxw @ Wx.T  # N,D
    dprev_h = dnext_h * z + dhw @ Wh.T  # N,H: the direct path, and the path through the gates
    dWx = x.T @ dxw  # D,3H
    dWh = prev_h.T @ dhw  # H,3H
    return dx, dprev_h, dWx, dWh, dxw.sum(axis=0), dhw.sum(axis=0)


# --------------------------------------------------------------------------- 2. readable sequence pair
def _check_shapes(x, h0, Wx, Wh, bx, bh):
    H = Wh.shape[0]
    G = 3 * H
    if (x.ndim != 3 or Wh.shape != (H, G) or Wx.shape != (x.shape[-1], G) or bx.shape != (G,)
            or bh.shape != (G,)):
        raise ValueError(
            f"gru: x {x.shape}, Wx {Wx.shape}, Wh {Wh.shape}, bx {bx.shape}, bh {bh.shape} do not "
            f"fit (N, T, D) (D, 3H) (H, 3H) (3H,) (3H,)")
    N = x.shape[0]
    if h0 is None:
        return np.zeros((N, H), np.result_type(x, Wx))
    if h0.shape != (N, H):
        raise ValueError(f"gru: h0 has shape {h0.shape}, expected {(N, H)}")
    return h0


def gru_forward(x, h0, Wx, Wh, bx, bh):
    """Run the GRU over a sequence, one :func:`gru_step_forward` per frame.

    Parameters
    ----------
    x : ndarray, shape (N, T, D)
    h0 : ndarray, shape (N, H), or None for zeros
    Wx, Wh : ndarray, shapes (D, 3H), (H, 3H)
    bx, bh : ndarray, shape (3H,)

    Returns
    -------
    h : ndarray, shape (N, T, H)
        Hidden state of every frame.
    cache : tuple
    """
    h0 = _check_shapes(x, h0, Wx, Wh, bx, bh)
    hs, step_caches = [], []
    prev_h = h0
    for t in range(x.shape[1]):
        prev_h, step_cache = gru_step_forward(x[:, t, :], prev_h, Wx, Wh, bx, bh)
        hs.append(prev_h)
        step_caches.append(step_cache)
    return np.stack(hs, axis=1), (step_caches, h0)  # N,T,H


def gru_backward(dh, cache, clip=None):
    """Backpropagation through time, one :func:`gru_step_backward` per frame.

    ``dh[:, t]`` is ONLY the upstream gradient of h_t -- from the layer above at step t.
    h_t also feeds step t+1 (directly, and through Wh), so its total gradient is ``dh[:, t]``
    plus what step t+1 sends back.  This function carries that gradient (``dprev_h``) from
    each step to the one before, itself.

    Parameters
    ----------
    dh : ndarray, shape (N, T, H)
        Per-step upstream gradients.
    cache : tuple
        From :func:`gru_forward`.
    clip : float, optional
        Clip the carried gradient elementwise to [-clip, clip] after every step, dh0
        included, to tame exploding gradients.  None: no clipping.

    Returns
    -------
    dx : ndarray, shape (N, T, D)
    dh0 : ndarray, shape (N, H)
    dWx, dWh : ndarray, shapes (D, 3H), (H, 3H)
    dbx, dbh : ndarray, shape (3H,)
        Summed over all steps: every step uses the same weights.
    """
    _check_clip(clip)
    step_caches, h0 = cache
    N, T, H = dh.shape
    Wx, Wh = step_caches[0][2], step_caches[0][3]
    dx = np.zeros((N, T, Wx.shape[0]), dh.dtype)
    dWx, dWh = np.zeros_like(Wx), np.zeros_like(Wh)
    dbx, dbh = np.zeros(3 * H, dh.dtype), np.zeros(3 * H, dh.dtype)
    dprev_h = np.zeros((N, H), dh.dtype)  # gradient carried back from step t+1: none after T-1
    for t in reversed(range(T)):
        dnext_h = dh[:, t, :] + dprev_h  # total gradient on h_t: from above + from step t+1
        dx_t, dprev_h, dWx_t, dWh_t, dbx_t, dbh_t = gru_step_backward(dnext_h, step_caches[t])
        if clip is not None:
            dprev_h = np.clip(dprev_h, -clip, clip)  # tame exploding gradients
        dx[:, t, :] = dx_t
        dWx += dWx_t  # += : the weights are shared by every step
        dWh += dWh_t
        dbx += dbx_t
        dbh += dbh_t
    return dx, dprev_h, dWx, dWh, dbx, dbh  # dprev_h of step 0 is dh0


# --------------------------------------------------------------------------- 3. recurrence kernels
# The step's product h_{t-1} Wh (_accumulate_dots) and the gate functions live in _gated.py,
# shared with the LSTM.
# The loops over the units run one equation each, on rows of a few arrays: LLVM vectorises
# them (a loop that writes many arrays at once needs more overlap checks than it will make).
# Each kernel runs on a slice of the batch's sequences (nogil: one slice per thread, see
# threads.py) and writes into arrays that its wrapper allocates.
@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _recurrence_forward(xw, h0, WhT, bh, h, gates, hn):
    """Writes h (N,T,H), the gates r, z, n of every step (N,T,3H) and hn = hw_t[n] (N,T,H)."""
    N, T, G = xw.shape
    H = G // 3
    one = xw.dtype.type(1)  # typed one: keeps float32 in float32
    prev = h0.copy()  # N,H: h_{t-1}, contiguous for the product
    hw = np.empty((N, G), xw.dtype)
    for t in range(T):
        for n in range(N):
            hw[n] = bh
        _accumulate_dots(prev, WhT, hw)  # N,3H: h_{t-1} Wh + bh
        for n in range(N):
            x_n, hw_n, g_n, p_n = xw[n, t], hw[n], gates[n, t], prev[n]
            for j in range(2 * H):  # r and z
                g_n[j] = _sigmoid_scalar(x_n[j] + hw_n[j], one)
            for j in range(H):  # the candidate n, through the reset gate
                g_n[2 * H + j] = _tanh_scalar(x_n[2 * H + j] + g_n[j] * hw_n[2 * H + j], one)
            for j in range(H):  # h_t = (1 - z) n + z h_{t-1}
                z, c = g_n[H + j], g_n[2 * H + j]
                p_n[j] = (one - z) * c + z * p_n[j]
            h[n, t] = p_n
            hn[n, t] = hw_n[2 * H:]


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _recurrence_backward(dh, h, h0, gates, hn, Wh, clip, dxw, dhw, carry):
    """Writes dxw and dhw (N,T,3H: gradients on x_t Wx + bx and on h_{t-1} Wh + bh) and
    ``carry`` (N,H, zeros on entry): dL/dh_t from step t+1 while it runs, dh0 at the end."""
    N, T, H = dh.shape
    G = 3 * H
    zero, one = dh.dtype.type(0), dh.dtype.type(1)
    lim = dh.dtype.type(clip)
    clipping = lim > zero and lim < np.inf  # convention: clip <= 0 or inf means no clipping
    step = np.empty((N, G), dh.dtype)  # dhw_t, contiguous for the product
    for t in range(T - 1, -1, -1):
        for n in range(N):
            g_n, c_n, hn_n, dx_n, s_n = gates[n, t], carry[n], hn[n, t], dxw[n, t], step[n]
            prev_n = h[n, t - 1] if t > 0 else h0[n]
            for j in range(H):  # total gradient on h_t: from above, and carried from t+1
                c_n[j] += dh[n, t, j]
            for j in range(H):  # through the candidate's tanh and the update gate
                z, cand = g_n[H + j], g_n[2 * H + j]
                dx_n[2 * H + j] = c_n[j] * (one - z) * (one - cand * cand)
                dx_n[H + j] = c_n[j] * (prev_n[j] - cand) * z * (one - z)
            for j in range(H):  # through the reset gate
                r = g_n[j]
                dx_n[j] = dx_n[2 * H + j] * hn_n[j] * r * (one - r)
            for j in range(2 * H):  # dhw_t: r and z blocks as dxw_t ...
                s_n[j] = dx_n[j]
            for j in range(H):  # ... the candidate's scaled by r
                s_n[2 * H + j] = dx_n[2 * H + j] * g_n[j]
            for j in range(H):  # the direct path h_{t-1} -> h_t
                c_n[j] *= g_n[H + j]
        _accumulate_dots(step, Wh, carry)  # N,H: plus dhw_t Wh^T, the path through the gates
        for n in range(N):
            dhw[n, t] = step[n]
        if clipping:
            for n in range(N):
                for j in range(H):
                    carry[n, j] = min(max(carry[n, j], -lim), lim)


def recurrence_forward_numpy(xw, h0, Wh, bh):
    """Twin of :func:`recurrence_forward`: the same loop, time-major, in NumPy."""
    H = Wh.shape[0]
    hs, gs, hns, prev = [], [], [], h0
    for xw_t in np.moveaxis(xw, 1, 0):  # T of N,3H
        hw = prev @ Wh + bh
        r = _sigmoid(xw_t[:, :H] + hw[:, :H])
        z = _sigmoid(xw_t[:, H:2 * H] + hw[:, H:2 * H])
        n = np.tanh(xw_t[:, 2 * H:] + r * hw[:, 2 * H:])
        prev = (1 - z) * n + z * prev
        hs.append(prev)
        gs.append(np.concatenate([r, z, n], axis=1))
        hns.append(hw[:, 2 * H:])
    return np.stack(hs, axis=1), np.stack(gs, axis=1), np.stack(hns, axis=1)


def recurrence_backward_numpy(dh, h, h0, gates, hn, Wh, clip):
    """Twin of :func:`recurrence_backward`, with whole-array operations and ``np.clip``."""
    N, T, H = dh.shape
    dxw, dhw = np.zeros((N, T, 3 * H), dh.dtype), np.zeros((N, T, 3 * H), dh.dtype)
    carry = np.zeros((N, H), dh.dtype)
    for t in reversed(range(T)):
        g = dh[:, t] + carry
        prev = h[:, t - 1] if t > 0 else h0
        r, z, n = gates[:, t, :H], gates[:, t, H:2 * H], gates[:, t, 2 * H:]
        da_n = g * (1 - z) * (1 - n * n)
        da_z = g * (prev - n) * z * (1 - z)
        da_r = da_n * hn[:, t] * r * (1 - r)
        dxw[:, t] = np.concatenate([da_r, da_z, da_n], axis=1)
        dhw[:, t] = np.concatenate([da_r, da_z, da_n * r], axis=1)
        carry = g * z + dhw[:, t] @ Wh.T
        if clip is not None and 0 < clip < np.inf:
            carry = np.clip(carry, -clip, clip)
    return dxw, dhw, carry


def recurrence_forward(xw, h0, Wh, bh):
    """Run the GRU's loop over time on precomputed ``xw = x Wx + bx`` (N, T, 3H).

    h0 (N, H) or None for zeros, Wh (H, 3H), bh (3H,).  Returns h (N, T, H), the gates
    (N, T, 3H: r, z, n of every step) and hn (N, T, H: ``h_{t-1} Wh[n] + bh[n]``), in the
    common float dtype of the inputs.
    """
    dtype = _common_dtype(xw, Wh, bh)
    xw = np.ascontiguousarray(xw, dtype=dtype)
    N, T, G = xw.shape
    h0 = np.zeros((N, G // 3), dtype) if h0 is None else np.ascontiguousarray(h0, dtype=dtype)
    WhT = np.ascontiguousarray(np.asarray(Wh, dtype=dtype).T)  # 3H,H: a row per output column
    bh = np.ascontiguousarray(bh, dtype=dtype)
    H = G // 3
    h, gates, hn = np.empty((N, T, H), dtype), np.empty((N, T, G), dtype), np.empty((N, T, H), dtype)
    over_slices(lambda a, b: _recurrence_forward(xw[a:b], h0[a:b], WhT, bh, h[a:b], gates[a:b], hn[a:b]), N)
    return h, gates, hn


def recurrence_backward(dh, h, h0, gates, hn, Wh, clip=0.0):
    """Backward of :func:`recurrence_forward`: the gradients on xw, on ``h_{t-1} Wh + bh`` and h0.

    dh (N, T, H) holds the upstream gradient of every h_t; the kernel adds the gradient carried
    back from step t+1 itself.  ``clip`` > 0 clips the carried gradient to [-clip, clip] after
    every step; None, 0, a negative value or inf means no clipping.  Returns dxw (N, T, 3H),
    dhw (N, T, 3H) and dh0 (N, H).
    """
    dtype = _common_dtype(dh, h, Wh)
    N, T, H = dh.shape
    h0 = np.zeros((N, H), dtype) if h0 is None else np.ascontiguousarray(h0, dtype=dtype)
    clip = 0.0 if clip is None else float(clip)
    as_dtype = lambda v: np.ascontiguousarray(v, dtype=dtype)  # noqa: E731
    # Wh as it is: its rows are the rows of Wh^T's columns, what dhw_t Wh^T dots with
    dh, h, gates, hn, Wh = (as_dtype(v) for v in (dh, h, gates, hn, Wh))
    dxw, dhw, carry = np.empty((N, T, 3 * H), dtype), np.empty((N, T, 3 * H), dtype), np.zeros((N, H), dtype)
    over_slices(lambda a, b: _recurrence_backward(dh[a:b], h[a:b], h0[a:b], gates[a:b], hn[a:b], Wh, clip,
                                                     dxw[a:b], dhw[a:b], carry[a:b]), N)
    return dxw, dhw, carry


# --------------------------------------------------------------------------- 4. fast sequence pair
def gru_forward_fast(x, h0, Wx, Wh, bx, bh):
    """:func:`gru_forward`, fast: ``xw = x Wx + bx`` in one GEMM, then the recurrence kernel.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 5, 3))
    >>> Wx, Wh = rng.standard_normal((3, 12)), 0.5 * rng.standard_normal((4, 12))
    >>> bx, bh = np.zeros(12), np.zeros(12)
    >>> h, cache = gru_forward_fast(x, None, Wx, Wh, bx, bh)
    >>> dx, dh0, dWx, dWh, dbx, dbh = gru_backward_fast(np.ones_like(h), cache, clip=5.0)
    >>> h.shape, dh0.shape, dWh.shape
    ((2, 5, 4), (2, 4), (4, 12))
    """
    h0 = _check_shapes(x, h0, Wx, Wh, bx, bh)
    N, T, D = x.shape
    xw = add_bias(x.reshape(N * T, D) @ Wx, bx)  # N*T,3H: all frames at once
    h, gates, hn = recurrence_forward(xw.reshape(N, T, -1), h0, Wh, bh)  # the loop over time
    return h, (x, h0, Wx, Wh, h, gates, hn)


def gru_backward_fast(dh, cache, clip=None, *, input_grad=True):
    """:func:`gru_backward`, fast: the kernel gives dxw and dhw, then GEMMs batched over time.

    As there, ``dh`` (N, T, H) holds only the per-step upstream gradients; the kernel carries
    the gradient from step t+1 to step t.  ``input_grad=False`` returns ``dx = None`` and skips
    its GEMM (for a network's first layer).

    Notes
    -----
    ``dWh = sum_t h_{t-1}^T dhw_t`` is one GEMM over the hidden states shifted by one frame,
    as in :func:`scratchnet.nn.rnn.rnn_backward_fast`: in the flattened rows ``r = n T + t``
    the row before ``dhw_t`` is ``h_{t-1}``, except at ``t = 0``, where it is the previous
    sequence's last state instead of ``h0``; those N rank-one terms are swapped afterwards.
    """
    _check_clip(clip)
    x, h0, Wx, Wh, h, gates, hn = cache
    N, T, D = x.shape
    G = Wx.shape[1]
    dxw, dhw, dh0 = recurrence_backward(dh, h, h0, gates, hn, Wh, clip)  # N,T,3H twice; N,H
    dxw_rows, dhw_rows, h_rows = dxw.reshape(N * T, G), dhw.reshape(N * T, G), h.reshape(N * T, -1)
    dx = (dxw_rows @ Wx.T).reshape(N, T, D) if input_grad else None
    dWx = x.reshape(N * T, D).T @ dxw_rows  # D,3H
    dWh = h_rows[:-1].T @ dhw_rows[1:]  # H,3H: every (row r-1, row r) pair, no shifted copy
    dWh -= h[:-1, -1].T @ dhw[1:, 0]  # minus the pairs (h_{T-1} of sequence n-1, dhw_0 of n)
    dWh += h0.T @ dhw[:, 0]  # plus the true first steps' (h0, dhw_0)
    return dx, dh0, dWx, dWh, dxw_rows.sum(axis=0), dhw_rows.sum(axis=0)
