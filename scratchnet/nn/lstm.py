"""The long short-term memory (LSTM) layer, as PyTorch's ``nn.LSTM``, and BPTT through it.

Equations, for t = 0 .. T-1, h_{-1} = h0 and c_{-1} = c0::

    a_t = x_t Wx + h_{t-1} Wh + b                  x (N, T, D), Wx (D, 4H), Wh (H, 4H), b (4H,)
    i_t = sigmoid(a_t[i])                          input gate
    f_t = sigmoid(a_t[f])                          forget gate
    g_t = tanh(a_t[g])                             candidate cell
    o_t = sigmoid(a_t[o])                          output gate
    c_t = f_t * c_{t-1} + i_t * g_t                cell state (N, T, H)
    h_t = o_t * tanh(c_t)                          hidden state, the layer's output (N, T, H)

``[i]``, ``[f]``, ``[g]``, ``[o]`` are the four blocks of H columns, in that order (PyTorch's
``weight_ih_l0`` is ``Wx.T``, ``weight_hh_l0`` is ``Wh.T``, and ``b`` is
``bias_ih_l0 + bias_hh_l0``: two biases that are always added are one).

BPTT.  Two states carry gradient back in time.  With ``gh_t = dh[:, t] + carry_h`` the total
gradient on h_t, and ``carry_c`` the gradient on c_t from step t+1 (none from step T)::

    do = gh_t tanh(c_t)
    gc = carry_c + gh_t o_t (1 - tanh(c_t)^2)      total gradient on c_t
    di = gc g_t,   df = gc c_{t-1},   dg = gc i_t
    da_t = [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)]       gradient on a_t (N, 4H)
    carry_c <- gc f_t                              to c_{t-1}
    carry_h <- da_t Wh^T                           to h_{t-1}
    dx_t = da_t Wx^T,  dWx = sum_t x_t^T da_t,  dWh = sum_t h_{t-1}^T da_t,  db = sum_t da_t

The cell's path ``c_{t-1} -> c_t`` is a product by f_t only, with no squashing: that is how
an LSTM carries a gradient over many steps.  Forgetting either carry breaks BPTT.

The file reads top to bottom as rnn.py and gru.py do: the step pair, the readable sequence
pair built from it, the recurrence kernels (the loop over time in Numba, beside its NumPy
twin), and the fast sequence pair with the same signature.  The mechanisms the two gated
cells share live once, in _gated.py: the small product of a step (``_accumulate_dots``),
the gate functions of the kernels, the clip check.
"""
import numpy as np
from numba import njit

from .affine import add_bias
from ._gated import _accumulate_dots, _check_clip, _common_dtype, _sigmoid, _sigmoid_scalar, _tanh_scalar
from .threads import over_slices


# --------------------------------------------------------------------------- 1. one step
def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step.

    Parameters
    ----------
    x : ndarray, shape (N, D)
    prev_h, prev_c : ndarray, shape (N, H)
    Wx : ndarray, shape (D, 4H)
        Input weights of the i, f, g, o blocks, in that order.
    Wh : ndarray, shape (H, 4H)
    b : ndarray, shape (4H,)

    Returns
    -------
    next_h, next_c : ndarray, shape (N, H)
    cache : tuple
    """
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b  # N,4H pre-activations of the four gates
    i = _sigmoid(a[:, :H])  # input gate
    f = _sigmoid(a[:, H:2 * H])  # forget gate
    g = np.tanh(a[:, 2 * H:3 * H])  # candidate cell
    o = _sigmoid(a[:, 3 * H:])  # output gate
    next_c = f * prev_c + i * g  # N,H
    tc = np.tanh(next_c)  # N,H, kept: the backward needs it twice
    next_h = o * tc
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, g, o, tc)


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Backward of :func:`lstm_step_forward`.

    Parameters
    ----------
    dnext_h, dnext_c : ndarray, shape (N, H)
        Gradients on next_h and next_c.
    cache : tuple

    Returns
    -------
    dx : ndarray, shape (N, D)
    dprev_h, dprev_c : ndarray, shape (N, H)
    dWx, dWh, db : ndarray, shapes (D, 4H), (H, 4H), (4H,)
    """
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, tc = cache
    do = dnext_h * tc
    dc = dnext_c + dnext_h * o * (1 - tc * tc)  # total gradient on next_c: direct + through h
    di, df, dg = dc * g, dc * prev_c, dc * i
    dprev_c = dc * f
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)],
                        axis=1)  # N,4H through each gate's squashing function
    dx = da @ Wx.T  # N,D
    dprev_h = da @ Wh.T  # N,H
    dWx = x.T @ da  # D,4H
    dWh = prev_h.T @ da  # H,4H
    return dx, dprev_h, dprev_c, dWx, dWh, da.sum(axis=0)


# --------------------------------------------------------------------------- 2. readable sequence pair
def _check_shapes(x, h0, c0, Wx, Wh, b):
    H = Wh.shape[0]
    G = 4 * H
    if x.ndim != 3 or Wh.shape != (H, G) or Wx.shape != (x.shape[-1], G) or b.shape != (G,):
        raise ValueError(
            f"lstm: x {x.shape}, Wx {Wx.shape}, Wh {Wh.shape}, b {b.shape} do not fit "
            f"(N, T, D) (D, 4H) (H, 4H) (4H,)")
    N = x.shape[0]
    states = []
    for name, s in (("h0", h0), ("c0", c0)):
        if s is None:
            s = np.zeros((N, H), np.result_type(x, Wx))
        elif s.shape != (N, H):
            raise ValueError(f"lstm: {name} has shape {s.shape}, expected {(N, H)}")
        states.append(s)
    return states


def lstm_forward(x, h0, c0, Wx, Wh, b):
    """Run the LSTM over a sequence, one :func:`lstm_step_forward` per frame.

    Parameters
    ----------
    x : ndarray, shape (N, T, D)
    h0, c0 : ndarray, shape (N, H), or None for zeros
    Wx, Wh, b : ndarray, shapes (D, 4H), (H, 4H), (4H,)

    Returns
    -------
    h : ndarray, shape (N, T, H)
        Hidden state of every frame: the layer's output (the cell states stay inside).
    cache : tuple
    """
    prev_h, prev_c = h0, c0 = _check_shapes(x, h0, c0, Wx, Wh, b)
    hs, step_caches = [], []
    for t in range(x.shape[1]):
        prev_h, prev_c, step_cache = lstm_step_forward(x[:, t, :], prev_h, prev_c, Wx, Wh, b)
        hs.append(prev_h)
        step_caches.append(step_cache)
    return np.stack(hs, axis=1), (step_caches, h0, c0)  # N,T,H


def lstm_backward(dh, cache, clip=None):
    """Backpropagation through time, one :func:`lstm_step_backward` per frame.

    ``dh[:, t]`` is ONLY the upstream gradient of h_t, from the layer above; c_t has none (it
    is not an output).  Both h_t and c_t also feed step t+1, so this function carries two
    gradients from each step to the one before, itself: ``dprev_h`` and ``dprev_c``.

    Parameters
    ----------
    dh : ndarray, shape (N, T, H)
        Per-step upstream gradients.
    cache : tuple
        From :func:`lstm_forward`.
    clip : float, optional
        Clip both carried gradients elementwise to [-clip, clip] after every step, dh0 and
        dc0 included.  None: no clipping.

    Returns
    -------
    dx : ndarray, shape (N, T, D)
    dh0, dc0 : ndarray, shape (N, H)
    dWx, dWh, db : ndarray, shapes (D, 4H), (H, 4H), (4H,)
        Summed over all steps.
    """
    _check_clip(clip)
    step_caches, h0, c0 = cache
    N, T, H = dh.shape
    Wx, Wh = step_caches[0][3], step_caches[0][4]
    dx = np.zeros((N, T, Wx.shape[0]), dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(4 * H, dh.dtype)
    dprev_h = np.zeros((N, H), dh.dtype)  # carried back from step t+1: none after T-1
    dprev_c = np.zeros((N, H), dh.dtype)
    for t in reversed(range(T)):
        dnext_h = dh[:, t, :] + dprev_h  # total gradient on h_t: from above + from step t+1
        dnext_c = dprev_c  # c_t's only consumer is step t+1
        dx_t, dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(dnext_h, dnext_c, step_caches[t])
        if clip is not None:
            dprev_h = np.clip(dprev_h, -clip, clip)  # tame exploding gradients
            dprev_c = np.clip(dprev_c, -clip, clip)
        dx[:, t, :] = dx_t
        dWx += dWx_t  # += : the weights are shared by every step
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dprev_c, dWx, dWh, db  # the carries of step 0 are dh0, dc0


# --------------------------------------------------------------------------- 3. recurrence kernels
# As in gru.py: the step's product h_{t-1} Wh by the shared small-product kernel, the gate
# functions from one exp each, one loop per equation.  The forward keeps i, f, g, o, c_t and
# tanh(c_t) of every step (a few MB) so that the backward recomputes nothing.
# Each kernel runs on a slice of the batch's sequences (nogil: one slice per thread, see
# threads.py) and writes into arrays that its wrapper allocates.
@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _recurrence_forward(xw, h0, c0, WhT, h, c, tc, gates):
    """Writes h, c, tanh(c) (N,T,H each) and the gates i, f, g, o of every step (N,T,4H)."""
    N, T, G = xw.shape
    H = G // 4
    one = xw.dtype.type(1)  # typed one: keeps float32 in float32
    prev_h, prev_c = h0.copy(), c0.copy()  # N,H each, contiguous
    a = np.empty((N, G), xw.dtype)
    for t in range(T):
        for n in range(N):
            a[n] = xw[n, t]
        _accumulate_dots(prev_h, WhT, a)  # N,4H: x_t Wx + b + h_{t-1} Wh
        for n in range(N):  # one loop per equation, as in gru.py
            a_n, pc_n, ph_n, tc_n = a[n], prev_c[n], prev_h[n], tc[n, t]
            for j in range(2 * H):  # i and f
                a_n[j] = _sigmoid_scalar(a_n[j], one)
            for j in range(2 * H, 3 * H):  # g
                a_n[j] = _tanh_scalar(a_n[j], one)
            for j in range(3 * H, 4 * H):  # o
                a_n[j] = _sigmoid_scalar(a_n[j], one)
            for j in range(H):  # c_t = f c_{t-1} + i g
                pc_n[j] = a_n[H + j] * pc_n[j] + a_n[j] * a_n[2 * H + j]
            for j in range(H):
                tc_n[j] = _tanh_scalar(pc_n[j], one)
            for j in range(H):  # h_t = o tanh(c_t)
                ph_n[j] = a_n[3 * H + j] * tc_n[j]
            gates[n, t] = a_n
            c[n, t] = pc_n
            h[n, t] = ph_n


@njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def _recurrence_backward(dh, c, c0, tc, gates, Wh, clip, da, carry_h, carry_c):
    """Writes da (N,T,4H), the gradient on a_t = x_t Wx + h_{t-1} Wh + b, and the carries
    (N,H each, zeros on entry): dL/dh_t and dL/dc_t from step t+1, dh0 and dc0 at the end."""
    N, T, H = dh.shape
    G = 4 * H
    zero, one = dh.dtype.type(0), dh.dtype.type(1)
    lim = dh.dtype.type(clip)
    clipping = lim > zero and lim < np.inf  # convention: clip <= 0 or inf means no clipping
    step = np.empty((N, G), dh.dtype)  # da_t, contiguous for the product
    for t in range(T - 1, -1, -1):
        for n in range(N):
            g_n, tc_n, s_n, ch_n, cc_n = gates[n, t], tc[n, t], step[n], carry_h[n], carry_c[n]
            pc_n = c[n, t - 1] if t > 0 else c0[n]
            for j in range(H):  # total gradient on h_t: from above, and carried from t+1
                ch_n[j] += dh[n, t, j]
            for j in range(H):  # total gradient on c_t: carried, and through h_t
                cc_n[j] += ch_n[j] * g_n[3 * H + j] * (one - tc_n[j] * tc_n[j])
            for j in range(H):  # through each gate's squashing function
                i, f, g, o = g_n[j], g_n[H + j], g_n[2 * H + j], g_n[3 * H + j]
                s_n[j] = cc_n[j] * g * i * (one - i)
                s_n[H + j] = cc_n[j] * pc_n[j] * f * (one - f)
                s_n[2 * H + j] = cc_n[j] * i * (one - g * g)
                s_n[3 * H + j] = ch_n[j] * tc_n[j] * o * (one - o)
            for j in range(H):  # to c_{t-1}; h_{t-1} gets da_t Wh^T below
                cc_n[j] *= g_n[H + j]
                ch_n[j] = zero
        _accumulate_dots(step, Wh, carry_h)  # N,H: da_t Wh^T, to h_{t-1}
        for n in range(N):
            da[n, t] = step[n]
        if clipping:
            for n in range(N):
                for j in range(H):
                    carry_h[n, j] = min(max(carry_h[n, j], -lim), lim)
                    carry_c[n, j] = min(max(carry_c[n, j], -lim), lim)


def recurrence_forward_numpy(xw, h0, c0, Wh):
    """Twin of :func:`recurrence_forward`: the same loop, time-major, in NumPy."""
    H = Wh.shape[0]
    hs, cs, tcs, gs = [], [], [], []
    prev_h, prev_c = h0, c0
    for xw_t in np.moveaxis(xw, 1, 0):  # T of N,4H
        a = xw_t + prev_h @ Wh
        i, f = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H])
        g, o = np.tanh(a[:, 2 * H:3 * H]), _sigmoid(a[:, 3 * H:])
        prev_c = f * prev_c + i * g
        tcs.append(np.tanh(prev_c))
        prev_h = o * tcs[-1]
        hs.append(prev_h)
        cs.append(prev_c)
        gs.append(np.concatenate([i, f, g, o], axis=1))
    return tuple(np.stack(v, axis=1) for v in (hs, cs, tcs, gs))


def recurrence_backward_numpy(dh, c, c0, tc, gates, Wh, clip):
    """Twin of :func:`recurrence_backward`, with whole-array operations and ``np.clip``."""
    N, T, H = dh.shape
    da = np.zeros((N, T, 4 * H), dh.dtype)
    carry_h, carry_c = np.zeros((N, H), dh.dtype), np.zeros((N, H), dh.dtype)
    for t in reversed(range(T)):
        gh = dh[:, t] + carry_h
        i, f, g, o = (gates[:, t, k * H:(k + 1) * H] for k in range(4))
        gc = carry_c + gh * o * (1 - tc[:, t] ** 2)
        prev_c = c[:, t - 1] if t > 0 else c0
        da[:, t] = np.concatenate([gc * g * i * (1 - i), gc * prev_c * f * (1 - f),
                                   gc * i * (1 - g * g), gh * tc[:, t] * o * (1 - o)], axis=1)
        carry_c, carry_h = gc * f, da[:, t] @ Wh.T
        if clip is not None and 0 < clip < np.inf:
            carry_h, carry_c = np.clip(carry_h, -clip, clip), np.clip(carry_c, -clip, clip)
    return da, carry_h, carry_c


def recurrence_forward(xw, h0, c0, Wh):
    """Run the LSTM's loop over time on precomputed ``xw = x Wx + b`` (N, T, 4H).

    h0, c0 (N, H) or None for zeros, Wh (H, 4H).  Returns h, c, tanh(c) (N, T, H each) and the
    gates (N, T, 4H: i, f, g, o of every step), in the common float dtype of the inputs.
    """
    dtype = _common_dtype(xw, Wh)
    xw = np.ascontiguousarray(xw, dtype=dtype)
    N, T, G = xw.shape
    h0, c0 = (np.zeros((N, G // 4), dtype) if s is None else np.ascontiguousarray(s, dtype=dtype)
              for s in (h0, c0))
    WhT = np.ascontiguousarray(np.asarray(Wh, dtype=dtype).T)  # 4H,H: a row per output column
    h, c, tc = (np.empty((N, T, G // 4), dtype) for _ in range(3))
    gates = np.empty((N, T, G), dtype)
    over_slices(lambda a, b: _recurrence_forward(xw[a:b], h0[a:b], c0[a:b], WhT, h[a:b], c[a:b], tc[a:b],
                                                    gates[a:b]), N)
    return h, c, tc, gates


def recurrence_backward(dh, c, c0, tc, gates, Wh, clip=0.0):
    """Backward of :func:`recurrence_forward`: the gradient on every a_t, and on h0 and c0.

    dh (N, T, H) holds the upstream gradient of every h_t; the kernel adds the gradients
    carried back from step t+1 itself.  ``clip`` > 0 clips both carried gradients to
    [-clip, clip] after every step; None, 0, a negative value or inf means no clipping.
    Returns da (N, T, 4H), dh0 and dc0 (N, H).
    """
    dtype = _common_dtype(dh, c, Wh)
    N, T, H = dh.shape
    c0 = np.zeros((N, H), dtype) if c0 is None else np.ascontiguousarray(c0, dtype=dtype)
    clip = 0.0 if clip is None else float(clip)
    as_dtype = lambda v: np.ascontiguousarray(v, dtype=dtype)  # noqa: E731
    dh, c, tc, gates, Wh = (as_dtype(v) for v in (dh, c, tc, gates, Wh))
    da, carry_h, carry_c = np.empty((N, T, 4 * H), dtype), np.zeros((N, H), dtype), np.zeros((N, H), dtype)
    over_slices(lambda a, b: _recurrence_backward(dh[a:b], c[a:b], c0[a:b], tc[a:b], gates[a:b], Wh, clip,
                                                     da[a:b], carry_h[a:b], carry_c[a:b]), N)
    return da, carry_h, carry_c


# --------------------------------------------------------------------------- 4. fast sequence pair
def lstm_forward_fast(x, h0, c0, Wx, Wh, b):
    """:func:`lstm_forward`, fast: ``xw = x Wx + b`` in one GEMM, then the recurrence kernel.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 5, 3))
    >>> Wx, Wh, b = rng.standard_normal((3, 16)), 0.5 * rng.standard_normal((4, 16)), np.zeros(16)
    >>> h, cache = lstm_forward_fast(x, None, None, Wx, Wh, b)
    >>> dx, dh0, dc0, dWx, dWh, db = lstm_backward_fast(np.ones_like(h), cache, clip=5.0)
    >>> h.shape, dc0.shape, dWh.shape
    ((2, 5, 4), (2, 4), (4, 16))
    """
    h0, c0 = _check_shapes(x, h0, c0, Wx, Wh, b)
    N, T, D = x.shape
    xw = add_bias(x.reshape(N * T, D) @ Wx, b)  # N*T,4H: all frames at once
    h, c, tc, gates = recurrence_forward(xw.reshape(N, T, -1), h0, c0, Wh)  # the loop over time
    return h, (x, h0, c0, Wx, Wh, h, c, tc, gates)


def lstm_backward_fast(dh, cache, clip=None, *, input_grad=True):
    """:func:`lstm_backward`, fast: the kernel gives every da_t, then GEMMs batched over time.

    As there, ``dh`` (N, T, H) holds only the per-step upstream gradients; the kernel carries
    both gradients from step t+1 to step t.  ``input_grad=False`` returns ``dx = None`` and
    skips its GEMM.  ``dWh`` is one GEMM over the hidden states shifted by one frame, as in
    :func:`scratchnet.nn.gru.gru_backward_fast`.
    """
    _check_clip(clip)
    x, h0, c0, Wx, Wh, h, c, tc, gates = cache
    N, T, D = x.shape
    G = Wx.shape[1]
    da, dh0, dc0 = recurrence_backward(dh, c, c0, tc, gates, Wh, clip)  # N,T,4H; N,H; N,H
    da_rows, h_rows = da.reshape(N * T, G), h.reshape(N * T, -1)
    dx = (da_rows @ Wx.T).reshape(N, T, D) if input_grad else None
    dWx = x.reshape(N * T, D).T @ da_rows  # D,4H
    dWh = h_rows[:-1].T @ da_rows[1:]  # H,4H: every (row r-1, row r) pair
    dWh -= h[:-1, -1].T @ da[1:, 0]  # minus the pairs (h_{T-1} of sequence n-1, da_0 of n)
    dWh += h0.T @ da[:, 0]  # plus the true first steps' (h0, da_0)
    return dx, dh0, dc0, dWx, dWh, da_rows.sum(axis=0)
