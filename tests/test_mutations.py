"""The mutation bank of the course's checkers: realistic learners' bugs, and right but unusual solutions.

Every bug is written as a learner would write it (not as a switch on the reference), and
declares the words its hint must use -- or ``None`` for a bug the checker cannot name, whose
line must then carry no hint at all ("absent": no hint is better than a wrong one).  A bug is
*caught* when the checker fails it; its hint is *right* when every hint line names its cause,
*wrong* when a line names something else.  Every right solution must pass with no hint.

``python -m tests.test_mutations`` prints the table: bug | checker | caught | hint, with counts.
"""
import numpy as np
import pytest

from scratchnet import course
from scratchnet.nn import gru, lstm, mask, maxpool1d, rnn
from scratchnet.nn.activations import sigmoid_forward

BUGS = {}   # id: (checker, fn, kwargs, words of the hint or None)
RIGHT = {}  # id: (checker, fn, kwargs)


def bug(checker, words, **kw):
    def register(fn):
        BUGS[fn.__name__] = (checker, fn, kw, words)
        return fn
    return register


def right(checker, **kw):
    def register(fn):
        RIGHT[fn.__name__] = (checker, fn, kw)
        return fn
    return register


def sigmoid(a):
    return sigmoid_forward(a)[0]


# =========================================================================== the RNN step
@bug(course.check_rnn_step_backward, "the ReLU mask is missing")
def step_without_relu_mask(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, prev_h.T @ dz, dz.sum(axis=0)


@bug(course.check_rnn_step_backward, "the derivative of the ReLU is written h")
def step_relu_derivative_as_h(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * next_h  # "the derivative of relu is relu"
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, prev_h.T @ dz, dz.sum(axis=0)


@bug(course.check_rnn_step_backward, "dWh: it is transposed")
def step_dWh_transposed(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (next_h > 0)
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, dz.T @ prev_h, dz.sum(axis=0)


@bug(course.check_rnn_step_backward, "db: it has shape (3, 5), expected (5,): it is dz itself, not summed; db sums dz over axis 0 (batch)")
def step_db_not_summed(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (next_h > 0)
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, prev_h.T @ dz, dz


@bug(course.check_rnn_step_backward, "db: it is 1/3 times the right value (1/N = 1/3)")
def step_db_mean(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (next_h > 0)
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, prev_h.T @ dz, dz.mean(axis=0)


@bug(course.check_rnn_step_backward, "dWh = h_t^T dz uses the state this step makes")
def step_dWh_from_next_h(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (next_h > 0)
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, next_h.T @ dz, dz.sum(axis=0)


@bug(course.check_rnn_step_backward, "dx = dz Wx: the transpose is missing")
def step_dx_without_transpose(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (next_h > 0)
    return dz @ Wx, dz @ Wh.T, x.T @ dz, prev_h.T @ dz, dz.sum(axis=0)


@bug(course.check_rnn_step_backward, "dprev_h uses Wx")
def step_dprev_h_through_Wx(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (next_h > 0)
    return dz @ Wx.T, dz @ Wx.T, x.T @ dz, prev_h.T @ dz, dz.sum(axis=0)


@bug(course.check_rnn_step_backward, "dprev_h = dz Wh: the transpose is missing")
def step_dprev_h_without_transpose(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (next_h > 0)
    return dz @ Wx.T, dz @ Wh, x.T @ dz, prev_h.T @ dz, dz.sum(axis=0)


@bug(course.check_rnn_step_backward, "dWx: the ReLU mask is missing")
def step_dWx_from_dnext_h(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (next_h > 0)
    return dz @ Wx.T, dz @ Wh.T, x.T @ dnext_h, prev_h.T @ dz, dz.sum(axis=0)


@right(course.check_rnn_step_backward)
def step_in_float32(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = (np.asarray(a, np.float32) for a in cache)
    dz = dnext_h.astype(np.float32) * (next_h > 0)
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, prev_h.T @ dz, dz.sum(axis=0)


@right(course.check_rnn_step_backward)
def step_with_einsum(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = np.where(next_h > 0, dnext_h, 0.0)
    return (np.einsum("nh,dh->nd", dz, Wx), np.einsum("nh,kh->nk", dz, Wh), np.einsum("nd,nh->dh", x, dz),
            np.einsum("nk,nh->kh", prev_h, dz), np.einsum("nh->h", dz))


@right(course.check_rnn_step_backward)
def step_masking_dnext_h_in_place(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dnext_h *= next_h > 0  # changes the caller's array: right maths, and a note
    return dnext_h @ Wx.T, dnext_h @ Wh.T, x.T @ dnext_h, prev_h.T @ dnext_h, dnext_h.sum(axis=0)


# =========================================================================== BPTT
def _zeros(dh, step_caches):
    N, T, H = dh.shape
    return np.zeros((N, T, step_caches[0][0].shape[1])), np.zeros((N, H))


@bug(course.check_bptt, "the gradient carried from step t+1 is missing")
def bptt_without_carry(dh, cache):
    step_caches, h0 = cache
    dx, dprev = _zeros(dh, step_caches)
    dWx = dWh = db = 0
    for t in reversed(range(dh.shape[1])):
        dx[:, t], dprev, a, b, c = rnn.rnn_step_backward(dh[:, t], step_caches[t])
        dWx, dWh, db = dWx + a, dWh + b, db + c
    return dx, dprev, dWx, dWh, db


@bug(course.check_bptt, "the carried gradient is added after the step instead of fed into it")
def bptt_carry_added_after_the_step(dh, cache):
    step_caches, h0 = cache
    dx, dprev = _zeros(dh, step_caches)
    dWx = dWh = db = 0
    for t in reversed(range(dh.shape[1])):
        dx[:, t], dprev_t, a, b, c = rnn.rnn_step_backward(dh[:, t], step_caches[t])
        dprev = dprev + dprev_t
        dWx, dWh, db = dWx + a, dWh + b, db + c
    return dx, dprev, dWx, dWh, db


@bug(course.check_bptt, "the weight gradients hold one step only")
def bptt_weights_overwritten(dh, cache):
    step_caches, h0 = cache
    dx, dprev = _zeros(dh, step_caches)
    for t in reversed(range(dh.shape[1])):
        dx[:, t], dprev, dWx, dWh, db = rnn.rnn_step_backward(dh[:, t] + dprev, step_caches[t])
    return dx, dprev, dWx, dWh, db


@bug(course.check_bptt, "the loop runs forwards in time")
def bptt_forwards_in_time(dh, cache):
    step_caches, h0 = cache
    dx, dprev = _zeros(dh, step_caches)
    dWx = dWh = db = 0
    for t in range(dh.shape[1]):
        dx[:, t], dprev, a, b, c = rnn.rnn_step_backward(dh[:, t] + dprev, step_caches[t])
        dWx, dWh, db = dWx + a, dWh + b, db + c
    return dx, dprev, dWx, dWh, db


@bug(course.check_bptt, "dh0: it is all zeros: dh0 is the gradient carried out of step 0")
def bptt_dh0_as_zeros(dh, cache):
    dx, _, dWx, dWh, db = rnn.rnn_backward(dh, cache)
    return dx, np.zeros_like(cache[1]), dWx, dWh, db


@bug(course.check_bptt, "the loop stops at t = 1")
def bptt_stops_at_one(dh, cache):
    step_caches, h0 = cache
    dx, dprev = _zeros(dh, step_caches)
    dWx = dWh = db = 0
    for t in range(dh.shape[1] - 1, 0, -1):
        dx[:, t], dprev, a, b, c = rnn.rnn_step_backward(dh[:, t] + dprev, step_caches[t])
        dWx, dWh, db = dWx + a, dWh + b, db + c
    return dx, dprev, dWx, dWh, db


@bug(course.check_bptt, "only dh[:, T-1] is used")
def bptt_last_output_only(dh, cache):
    step_caches, h0 = cache
    dx, dprev = _zeros(dh, step_caches)
    dWx = dWh = db = 0
    T = dh.shape[1]
    dnext = dh[:, T - 1]
    for t in reversed(range(T)):
        dx[:, t], dnext, a, b, c = rnn.rnn_step_backward(dnext, step_caches[t])
        dWx, dWh, db = dWx + a, dWh + b, db + c
    return dx, dnext, dWx, dWh, db


@bug(course.check_bptt, "dx: it is reversed along axis 1 (time)")
def bptt_dx_stored_reversed(dh, cache):
    step_caches, h0 = cache
    dx, dprev = _zeros(dh, step_caches)
    T = dh.shape[1]
    dWx = dWh = db = 0
    for i, t in enumerate(reversed(range(T))):
        dx[:, i], dprev, a, b, c = rnn.rnn_step_backward(dh[:, t] + dprev, step_caches[t])
        dWx, dWh, db = dWx + a, dWh + b, db + c
    return dx, dprev, dWx, dWh, db


@bug(course.check_bptt, "the ReLU mask is missing in the step backward")
def bptt_with_a_step_without_relu(dh, cache):
    step_caches, h0 = cache
    dx, dprev = _zeros(dh, step_caches)
    dWx = dWh = db = 0
    for t in reversed(range(dh.shape[1])):
        dx[:, t], dprev, a, b, c = step_without_relu_mask(dh[:, t] + dprev, step_caches[t])
        dWx, dWh, db = dWx + a, dWh + b, db + c
    return dx, dprev, dWx, dWh, db


@bug(course.check_bptt, "the step's dWh uses h_t")
def bptt_with_a_step_using_next_h(dh, cache):
    step_caches, h0 = cache
    dx, dprev = _zeros(dh, step_caches)
    dWx = dWh = db = 0
    for t in reversed(range(dh.shape[1])):
        dx[:, t], dprev, a, b, c = step_dWh_from_next_h(dh[:, t] + dprev, step_caches[t])
        dWx, dWh, db = dWx + a, dWh + b, db + c
    return dx, dprev, dWx, dWh, db


@right(course.check_bptt)
def bptt_adding_into_dh_in_place(dh, cache):
    step_caches, h0 = cache
    dx, dprev = _zeros(dh, step_caches)
    dWx = dWh = db = 0
    for t in reversed(range(dh.shape[1])):
        g = dh[:, t]
        g += dprev  # a view: changes the caller's dh, and the maths is right
        dx[:, t], dprev, a, b, c = rnn.rnn_step_backward(g, step_caches[t])
        dWx, dWh, db = dWx + a, dWh + b, db + c
    return dx, dprev, dWx, dWh, db


@right(course.check_bptt, seed=3, T=9, H=7)
def bptt_with_explicit_loops(dh, cache):
    step_caches, h0 = cache
    N, T, H = dh.shape
    D = step_caches[0][0].shape[1]
    dx, dh0 = np.zeros((N, T, D)), np.zeros((N, H))
    dWx, dWh, db = np.zeros((D, H)), np.zeros((H, H)), np.zeros(H)
    for n in range(N):  # one sequence at a time
        carry = np.zeros(H)
        for t in range(T - 1, -1, -1):
            x, prev_h, Wx, Wh, next_h = step_caches[t]
            dz = (dh[n, t] + carry) * (next_h[n] > 0)
            dx[n, t] = Wx @ dz
            carry = Wh @ dz
            dWx += np.outer(x[n], dz)
            dWh += np.outer(prev_h[n], dz)
            db += dz
        dh0[n] = carry
    return dx, dh0, dWx, dWh, db


@right(course.check_bptt)
def bptt_weights_once_at_the_end(dh, cache):
    step_caches, h0 = cache
    N, T, H = dh.shape
    dzs, carry = [None] * T, np.zeros((N, H))
    for t in reversed(range(T)):  # the carried gradients first, the weights in one product each
        x, prev_h, Wx, Wh, next_h = step_caches[t]
        dzs[t] = (dh[:, t] + carry) * (next_h > 0)
        carry = dzs[t] @ Wh.T
    dz = np.stack(dzs, axis=1)
    xs = np.stack([c[0] for c in step_caches], axis=1)
    hs = np.stack([c[1] for c in step_caches], axis=1)
    Wx = step_caches[0][2]
    return (dz @ Wx.T, carry, np.einsum("ntd,nth->dh", xs, dz), np.einsum("ntk,nth->kh", hs, dz),
            dz.sum(axis=(0, 1)))


# =========================================================================== truncated BPTT
def _truncated(dh, cache, k, cut_at, reset_weights=False):
    step_caches, h0 = cache
    dx, dprev = _zeros(dh, step_caches)
    T = dh.shape[1]
    dWx = dWh = db = 0
    for t in reversed(range(T)):
        if reset_weights and (t == T - 1 or (t + 1) % k == 0):
            dWx = dWh = db = 0  # a new chunk: fresh gradients
        dx[:, t], dprev, a, b, c = rnn.rnn_step_backward(dh[:, t] + dprev, step_caches[t])
        dWx, dWh, db = dWx + a, dWh + b, db + c
        if cut_at(t):
            dprev = np.zeros_like(dprev)
    return dx, dprev, dWx, dWh, db


@bug(course.check_truncated_bptt, "the carried gradient is never cut")
def truncated_never_cut(dh, cache, k):
    return rnn.rnn_backward(dh, cache)


@bug(course.check_truncated_bptt, "the cut is one step off")
def truncated_cut_one_step_late(dh, cache, k):
    return _truncated(dh, cache, k, lambda t: t % k == 1 % k and t > 0)


@bug(course.check_truncated_bptt, "dh0 is zero")
def truncated_cut_at_zero_too(dh, cache, k):
    return _truncated(dh, cache, k, lambda t: t % k == 0)


@bug(course.check_truncated_bptt, "the weight gradients are reset at every chunk")
def truncated_weights_reset_per_chunk(dh, cache, k):
    return _truncated(dh, cache, k, lambda t: t % k == 0 and t > 0, reset_weights=True)


@bug(course.check_truncated_bptt, "chunks are counted from the start of the sequence")
def truncated_chunks_from_the_end(dh, cache, k):
    T = dh.shape[1]
    return _truncated(dh, cache, k, lambda t: t > 0 and (T - t) % k == 0)


@bug(course.check_truncated_bptt, "sliding-window truncation")
def truncated_sliding_window(dh, cache, k):
    step_caches, h0 = cache
    dx, dh0 = _zeros(dh, step_caches)
    dWx = dWh = db = 0
    for t in range(dh.shape[1]):  # each output's gradient goes back k steps
        g = dh[:, t]
        for s in range(t, max(t - k, -1), -1):
            dx_s, g, a, b, c = rnn.rnn_step_backward(g, step_caches[s])
            dx[:, s] += dx_s
            dWx, dWh, db = dWx + a, dWh + b, db + c
        if t < k:
            dh0 += g
    return dx, dh0, dWx, dWh, db


@right(course.check_truncated_bptt, seed=2, T=10, k=4)
def truncated_chunk_by_chunk(dh, cache, k):
    step_caches, h0 = cache
    T = dh.shape[1]
    outs, dW = [], [0, 0, 0]
    dh0 = None
    for c in range(0, T, k):  # every chunk on its own, as stateful training runs it
        h0_c = h0 if c == 0 else step_caches[c][1]
        dx_c, dh0_c, *g = rnn.rnn_backward(dh[:, c:c + k], (step_caches[c:c + k], h0_c))
        outs.append(dx_c)
        dW = [a + b for a, b in zip(dW, g)]
        dh0 = dh0_c if c == 0 else dh0
    return (np.concatenate(outs, axis=1), dh0, *dW)


# =========================================================================== the soft mask
def _gains(cache):
    a, X, eps = cache
    F = X.shape[-1]
    a1, a2 = a[..., :F], a[..., F:]
    s = np.abs(a1) + np.abs(a2) + eps
    return a1, a2, X, s, np.abs(a1) / s, np.abs(a2) / s


@bug(course.check_mask_backward, "the gains use m = |a|, so da = dm * sign(a)")
def mask_without_sign(dy1, dy2, cache):
    a1, a2, X, s, g1, g2 = _gains(cache)
    dX = dy1 * g1 + dy2 * g2
    return np.concatenate([X / s * (dy1 - dX), X / s * (dy2 - dX)], -1), dX


@bug(course.check_mask_backward, "the quotient-rule term -X/s dX sign(a_i) is missing")
def mask_s_as_a_constant(dy1, dy2, cache):
    a1, a2, X, s, g1, g2 = _gains(cache)
    dX = dy1 * g1 + dy2 * g2
    return np.concatenate([X / s * dy1 * np.sign(a1), X / s * dy2 * np.sign(a2)], -1), dX


@bug(course.check_mask_backward, "the quotient-rule term -X/s dX sign(a_i) has the wrong sign")
def mask_denominator_term_sign(dy1, dy2, cache):
    a1, a2, X, s, g1, g2 = _gains(cache)
    dX = dy1 * g1 + dy2 * g2
    return np.concatenate([X / s * (dy1 + dX) * np.sign(a1), X / s * (dy2 + dX) * np.sign(a2)], -1), dX


@bug(course.check_mask_backward, "dX = dy1 g1 + dy2 g2 (the gains, not 1)")
def mask_dX_without_gains(dy1, dy2, cache):
    da, _ = mask.mask_backward(dy1, dy2, cache)
    return da, dy1 + dy2


@bug(course.check_mask_backward, "fails only on a silent frame (a = 0)")
def mask_sign_as_a_over_abs_a(dy1, dy2, cache):
    a1, a2, X, s, g1, g2 = _gains(cache)
    dX = dy1 * g1 + dy2 * g2
    with np.errstate(all="ignore"):
        return np.concatenate([X / s * (dy1 - dX) * a1 / np.abs(a1), X / s * (dy2 - dX) * a2 / np.abs(a2)], -1), dX


@bug(course.check_mask_backward, "fails only on a silent frame (a = 0)")
def mask_without_eps_in_backward(dy1, dy2, cache):
    a, X, eps = cache
    F = X.shape[-1]
    a1, a2 = a[..., :F], a[..., F:]
    with np.errstate(all="ignore"):
        s = np.abs(a1) + np.abs(a2)
        g1, g2 = np.abs(a1) / s, np.abs(a2) / s
        dX = dy1 * g1 + dy2 * g2
        return np.concatenate([X / s * (dy1 - dX) * np.sign(a1), X / s * (dy2 - dX) * np.sign(a2)], -1), dX


@bug(course.check_mask_backward, "da2 uses dy1")
def mask_copy_paste_dy1(dy1, dy2, cache):
    a1, a2, X, s, g1, g2 = _gains(cache)
    dX = dy1 * g1 + dy2 * g2
    return np.concatenate([X / s * (dy1 - dX) * np.sign(a1), X / s * (dy1 - dX) * np.sign(a2)], -1), dX


@bug(course.check_mask_backward, "dy2 g2 is missing")
def mask_dX_one_source(dy1, dy2, cache):
    da, _ = mask.mask_backward(dy1, dy2, cache)
    a1, a2, X, s, g1, g2 = _gains(cache)
    return da, dy1 * g1


@right(course.check_mask_backward)
def mask_expanded(dy1, dy2, cache):
    a1, a2, X, s, g1, g2 = _gains(cache)
    da1 = X * (dy1 * (1 - g1) - dy2 * g2) / s * np.sign(a1)  # dy1 - dX, expanded
    da2 = X * (dy2 * (1 - g2) - dy1 * g1) / s * np.sign(a2)
    return np.concatenate([da1, da2], axis=-1), g1 * dy1 + g2 * dy2


@right(course.check_mask_backward, seed=5, F=7)
def mask_with_loops(dy1, dy2, cache):
    a, X, eps = cache
    F = X.shape[-1]
    da, dX = np.zeros_like(a), np.zeros_like(X)
    for idx in np.ndindex(*X.shape):
        p, q = a[idx[:-1] + (idx[-1],)], a[idx[:-1] + (F + idx[-1],)]
        s = abs(p) + abs(q) + eps
        d1, d2 = dy1[idx], dy2[idx]
        dX[idx] = (d1 * abs(p) + d2 * abs(q)) / s
        da[idx[:-1] + (idx[-1],)] = X[idx] / s * (d1 - dX[idx]) * np.sign(p)
        da[idx[:-1] + (F + idx[-1],)] = X[idx] / s * (d2 - dX[idx]) * np.sign(q)
    return da, dX


# =========================================================================== the objectives
def _frames(y):
    return y.size // y.shape[-1]


@bug(course.check_loss, "the factor 2 of d(y - t)^2/dy = 2 (y - t) is missing", kind="mse")
def mse_without_factor_two(y1, y2, t1, t2, gamma=0.0):
    n = _frames(y1)
    loss = (np.sum((y1 - t1) ** 2) + np.sum((y2 - t2) ** 2) - gamma * (np.sum((y1 - t2) ** 2) + np.sum((y2 - t1) ** 2))) / n
    return loss, ((y1 - t1) - gamma * (y1 - t2)) / n, ((y2 - t2) - gamma * (y2 - t1)) / n


@bug(course.check_loss, "a mean over the bins too", kind="mse")
def mse_mean_over_bins(y1, y2, t1, t2, gamma=0.0):
    n = y1.size  # every bin, not every frame
    loss = (np.sum((y1 - t1) ** 2) + np.sum((y2 - t2) ** 2) - gamma * (np.sum((y1 - t2) ** 2) + np.sum((y2 - t1) ** 2))) / n
    return loss, 2 * ((y1 - t1) - gamma * (y1 - t2)) / n, 2 * ((y2 - t2) - gamma * (y2 - t1)) / n


@bug(course.check_loss, "off by a factor N*T", kind="mse")
def mse_not_normalised(y1, y2, t1, t2, gamma=0.0):
    loss = np.sum((y1 - t1) ** 2) + np.sum((y2 - t2) ** 2) - gamma * (np.sum((y1 - t2) ** 2) + np.sum((y2 - t1) ** 2))
    return loss, 2 * ((y1 - t1) - gamma * (y1 - t2)), 2 * ((y2 - t2) - gamma * (y2 - t1))


@bug(course.check_loss, "the discriminative term is missing", kind="mse")
def mse_without_discriminative_gradient(y1, y2, t1, t2, gamma=0.0):
    n = _frames(y1)
    loss = (np.sum((y1 - t1) ** 2) + np.sum((y2 - t2) ** 2) - gamma * (np.sum((y1 - t2) ** 2) + np.sum((y2 - t1) ** 2))) / n
    return loss, 2 * (y1 - t1) / n, 2 * (y2 - t2) / n


@bug(course.check_loss, "the discriminative term -gamma D(other source's target || estimate) has the wrong sign",
     kind="mse")
def mse_discriminative_plus(y1, y2, t1, t2, gamma=0.0):
    n = _frames(y1)
    loss = (np.sum((y1 - t1) ** 2) + np.sum((y2 - t2) ** 2) + gamma * (np.sum((y1 - t2) ** 2) + np.sum((y2 - t1) ** 2))) / n
    return loss, 2 * ((y1 - t1) + gamma * (y1 - t2)) / n, 2 * ((y2 - t2) + gamma * (y2 - t1)) / n


@bug(course.check_loss, "the right value with the wrong sign", kind="mse")
def mse_gradient_of_t_minus_y(y1, y2, t1, t2, gamma=0.0):
    n = _frames(y1)
    loss = (np.sum((y1 - t1) ** 2) + np.sum((y2 - t2) ** 2) - gamma * (np.sum((y1 - t2) ** 2) + np.sum((y2 - t1) ** 2))) / n
    return loss, 2 * ((t1 - y1) - gamma * (t2 - y1)) / n, 2 * ((t2 - y2) - gamma * (t1 - y2)) / n


@bug(course.check_loss, "compares the estimate with its own target", kind="mse")
def mse_discriminative_against_own_target(y1, y2, t1, t2, gamma=0.0):
    n = _frames(y1)
    loss = (np.sum((y1 - t1) ** 2) + np.sum((y2 - t2) ** 2) - gamma * (np.sum((y1 - t2) ** 2) + np.sum((y2 - t1) ** 2))) / n
    return loss, 2 * ((y1 - t1) - gamma * (y1 - t1)) / n, 2 * ((y2 - t2) - gamma * (y2 - t2)) / n


@bug(course.check_loss, "T = 3", kind="mse")
def mse_divided_by_batch_only(y1, y2, t1, t2, gamma=0.0):
    n = y1.shape[0]
    loss = (np.sum((y1 - t1) ** 2) + np.sum((y2 - t2) ** 2) - gamma * (np.sum((y1 - t2) ** 2) + np.sum((y2 - t1) ** 2))) / n
    return loss, 2 * ((y1 - t1) - gamma * (y1 - t2)) / n, 2 * ((y2 - t2) - gamma * (y2 - t1)) / n


def _objective(div):
    """A learner's objective from their divergence ``div(t, y) -> (D, dD/dy)``."""
    def loss(y1, y2, t1, t2, gamma=0.0):
        n = _frames(y1)
        with np.errstate(all="ignore"):
            (a, ga), (b, gb), (c, gc), (d, gd) = div(t1, y1), div(t2, y2), div(t2, y1), div(t1, y2)
            return ((a.sum() + b.sum() - gamma * (c.sum() + d.sum())) / n, (ga - gamma * gc) / n, (gb - gamma * gd) / n)
    return loss


E = 1e-2


def _kl_without_plus_one(t, y):
    tf, yf = t + E, y + E
    return tf * np.log(tf / yf) - tf + yf, -tf / yf  # d/dy of tf log(tf/yf) only


def _kl_floor_only_in_log(t, y):
    return t * np.log((t + E) / (y + E)) - t + y, 1 - t / (y + E)


def _is_log_sign(t, y):
    r = (t + E) / (y + E)
    return r + np.log(r) - 1, -(1 + r) / (y + E)


def _is_without_floor(t, y):
    return t / y - np.log(t / y) - 1, (1 - t / y) / y


def _kl_other_algebra(t, y):
    tf, yf = t + E, y + E
    return tf * (np.log(tf) - np.log(yf)) + (yf - tf), (yf - tf) / yf


def _is_other_algebra(t, y):
    tf, yf = t + E, y + E
    return tf / yf - np.log(tf) + np.log(yf) - 1, np.divide(yf - tf, yf * yf)


for _name, _div, _kind, _words in [
        ("kl_derivative_without_plus_one", _kl_without_plus_one, "kl", "the +1 of dD/dy = 1 - (t+e)/(y+e) is missing"),
        ("kl_floor_only_in_the_log", _kl_floor_only_in_log, "kl", "the floor is only inside the log"),
        ("is_log_term_with_wrong_sign", _is_log_sign, "is", "has the wrong sign"),
        ("is_without_floor", _is_without_floor, "is", "the floor is missing")]:
    _fn = _objective(_div)
    _fn.__name__ = _name
    BUGS[_name] = (course.check_loss, _fn, dict(kind=_kind), _words)
for _name, _div, _kind in [("kl_other_algebra", _kl_other_algebra, "kl"), ("is_other_algebra", _is_other_algebra, "is")]:
    _fn = _objective(_div)
    _fn.__name__ = _name
    RIGHT[_name] = (course.check_loss, _fn, dict(kind=_kind))


@right(course.check_loss, kind="mse", gamma=0.1, seed=43)
def mse_in_float32(y1, y2, t1, t2, gamma=0.0):
    y1, y2, t1, t2 = (a.astype(np.float32) for a in (y1, y2, t1, t2))
    n = np.float32(_frames(y1))
    e11, e22, e21, e12 = y1 - t1, y2 - t2, y1 - t2, y2 - t1
    loss = (np.sum(e11 * e11) + np.sum(e22 * e22) - gamma * (np.sum(e21 * e21) + np.sum(e12 * e12))) / n
    return float(loss), 2 * (e11 - np.float32(gamma) * e21) / n, 2 * (e22 - np.float32(gamma) * e12) / n


# =========================================================================== conv1d
def _conv_parts(dout, cache):
    x_pad, w, left, T = cache
    K = w.shape[0]
    dw = np.einsum("ntck,nto->kco", np.lib.stride_tricks.sliding_window_view(x_pad, K, axis=1), dout)
    dout_pad = np.pad(dout, ((0, 0), (K - 1, K - 1), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(dout_pad, K, axis=1)
    return x_pad, w, left, T, K, dw, win


@bug(course.check_conv1d_backward, "dx is the correlation with the kernel as it is: flip it in time")
def conv_kernel_not_flipped(dout, cache):
    x_pad, w, left, T, K, dw, win = _conv_parts(dout, cache)
    return np.einsum("nsoj,jco->nsc", win, w)[:, left:left + T], dw, dout.sum(axis=(0, 1))


@bug(course.check_conv1d_backward, "db: it has shape (2, 4), expected (4,): it is dout summed over axis 1 (time); db sums dout over axis 0 (batch), axis 1 (time)")
def conv_db_over_time_only(dout, cache):
    x_pad, w, left, T, K, dw, win = _conv_parts(dout, cache)
    return np.einsum("nsoj,jco->nsc", win, w[::-1])[:, left:left + T], dw, dout.sum(axis=1)


@bug(course.check_conv1d_backward, "dx is cropped from the padded gradient at frame 2", K=4)
def conv_dx_cropped_on_the_right(dout, cache):
    x_pad, w, left, T, K, dw, win = _conv_parts(dout, cache)
    return np.einsum("nsoj,jco->nsc", win, w[::-1])[:, K // 2:K // 2 + T], dw, dout.sum(axis=(0, 1))


@bug(course.check_conv1d_backward, "dw: it is reversed along axis 0 (tap)")
def conv_dw_taps_reversed(dout, cache):
    x_pad, w, left, T, K, dw, win = _conv_parts(dout, cache)
    return np.einsum("nsoj,jco->nsc", win, w[::-1])[:, left:left + T], dw[::-1], dout.sum(axis=(0, 1))


@bug(course.check_conv1d_backward, "dx: it has shape (2, 9, 3), expected (2, 7, 3): entries 1..7 along axis 1 (time) are right")
def conv_dx_still_padded(dout, cache):
    x_pad, w, left, T, K, dw, win = _conv_parts(dout, cache)
    return np.einsum("nsoj,jco->nsc", win, w[::-1]), dw, dout.sum(axis=(0, 1))


@bug(course.check_conv1d_backward, "db: it is 1/14 times the right value (1/(N*T) = 1/14)")
def conv_db_mean(dout, cache):
    x_pad, w, left, T, K, dw, win = _conv_parts(dout, cache)
    return np.einsum("nsoj,jco->nsc", win, w[::-1])[:, left:left + T], dw, dout.mean(axis=(0, 1))


@bug(course.check_conv1d_backward, "dx: tap 0 is missing")
def conv_dx_loop_skips_tap_zero(dout, cache):
    x_pad, w, left, T = cache
    K = w.shape[0]
    N, _, Cin = x_pad.shape
    dx_pad = np.zeros_like(x_pad)
    for k in range(1, K):  # off by one: tap 0 left out
        dx_pad[:, k:k + T] += dout @ w[k].T
    return dx_pad[:, left:left + T], _conv_parts(dout, cache)[5], dout.sum(axis=(0, 1))


@right(course.check_conv1d_backward, seed=1, K=4)
def conv_with_loops(dout, cache):
    x_pad, w, left, T = cache
    K, Cin, Cout = w.shape
    N = dout.shape[0]
    dx_pad, dw, db = np.zeros_like(x_pad), np.zeros_like(w), np.zeros(Cout)
    for n in range(N):
        for t in range(T):
            for k in range(K):
                dx_pad[n, t + k] += w[k] @ dout[n, t]
                dw[k] += np.outer(x_pad[n, t + k], dout[n, t])
            db += dout[n, t]
    return dx_pad[:, left:left + T], dw, db


# =========================================================================== conv2d
def _conv2d_parts(dout, cache):
    """A learner's pieces: dw from the windows of x_pad, dout padded for the full correlation."""
    x_pad, w, (sh, sw), (ph, pw), (H, W) = cache
    KH, KW = w.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(x_pad, (KH, KW), axis=(1, 2))[:, ::sh, ::sw]
    dw = np.einsum("nhwcij,nhwo->ijco", win, dout)
    dout_pad = np.pad(dout, ((0, 0), (KH - 1, KH - 1), (KW - 1, KW - 1), (0, 0)))  # stride 1 only
    dwin = np.lib.stride_tricks.sliding_window_view(dout_pad, (KH, KW), axis=(1, 2))
    return x_pad, w, ph, pw, H, W, dw, dwin


def _conv2d_dx(dwin, kernel, ph, pw, H, W):
    return np.einsum("nsrokl,klco->nsrc", dwin, kernel)[:, ph:ph + H, pw:pw + W]


@bug(course.check_conv2d_backward, "the kernel is not flipped -- flip it in both axes")
def conv2d_kernel_not_flipped(dout, cache):
    x_pad, w, ph, pw, H, W, dw, dwin = _conv2d_parts(dout, cache)
    return _conv2d_dx(dwin, w, ph, pw, H, W), dw, dout.sum(axis=(0, 1, 2))


@bug(course.check_conv2d_backward, "flipped in one axis only, time (w[::-1])")
def conv2d_kernel_flipped_in_time_only(dout, cache):
    x_pad, w, ph, pw, H, W, dw, dwin = _conv2d_parts(dout, cache)
    return _conv2d_dx(dwin, w[::-1], ph, pw, H, W), dw, dout.sum(axis=(0, 1, 2))


@bug(course.check_conv2d_backward, "dw's kernel axes are swapped")
def conv2d_dw_kernel_axes_swapped(dout, cache):
    x_pad, w, ph, pw, H, W, dw, dwin = _conv2d_parts(dout, cache)
    KH, KW = w.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(x_pad, (KH, KW), axis=(1, 2))
    return _conv2d_dx(dwin, w[::-1, ::-1], ph, pw, H, W), np.einsum("nhwcij,nhwo->jico", win, dout), \
        dout.sum(axis=(0, 1, 2))


@bug(course.check_conv2d_backward, "db: it has shape (6, 5, 4), expected (4,): it is dout summed over axis 0 (batch); "
                                   "db sums dout over axis 0 (batch), axis 1 (time), axis 2 (frequency)")
def conv2d_db_over_batch_only(dout, cache):
    x_pad, w, ph, pw, H, W, dw, dwin = _conv2d_parts(dout, cache)
    return _conv2d_dx(dwin, w[::-1, ::-1], ph, pw, H, W), dw, dout.sum(axis=0)


@bug(course.check_conv2d_backward, "db: it is 1/60 times the right value: a mean over the N*H'*W' = 60 output pixels")
def conv2d_db_mean(dout, cache):
    x_pad, w, ph, pw, H, W, dw, dwin = _conv2d_parts(dout, cache)
    return _conv2d_dx(dwin, w[::-1, ::-1], ph, pw, H, W), dw, dout.mean(axis=(0, 1, 2))


@bug(course.check_conv2d_backward, "dx still holds the padding")
def conv2d_dx_still_padded(dout, cache):
    x_pad, w, ph, pw, H, W, dw, dwin = _conv2d_parts(dout, cache)
    return np.einsum("nsrokl,klco->nsrc", dwin, w[::-1, ::-1]), dw, dout.sum(axis=(0, 1, 2))


@bug(course.check_conv2d_backward, "the stride (2, 2) is left out of dx (in both axes)", stride=2)
def conv2d_dx_without_stride(dout, cache):
    x_pad, w, (sh, sw), (ph, pw), (H, W) = cache
    KH, KW = w.shape[:2]
    Ho, Wo = dout.shape[1:3]
    dx_pad = np.zeros_like(x_pad)
    for i in range(KH):
        for j in range(KW):
            dx_pad[:, i:i + Ho, j:j + Wo] += dout @ w[i, j].T  # forgot: h*sh + i
    win = np.lib.stride_tricks.sliding_window_view(x_pad, (KH, KW), axis=(1, 2))[:, ::sh, ::sw]
    return dx_pad[:, ph:ph + H, pw:pw + W], np.einsum("nhwcij,nhwo->ijco", win, dout), dout.sum(axis=(0, 1, 2))


@bug(course.check_conv2d_backward, "dx: tap (0, 0) is missing")
def conv2d_dx_loop_skips_tap_zero(dout, cache):
    x_pad, w, ph, pw, H, W, dw, _ = _conv2d_parts(dout, cache)
    KH, KW = w.shape[:2]
    Ho, Wo = dout.shape[1:3]
    dx_pad = np.zeros_like(x_pad)
    for i in range(KH):
        for j in range(KW):
            if i == 0 and j == 0:
                continue  # "the centre is the origin" confusion: the corner tap left out
            dx_pad[:, i:i + Ho, j:j + Wo] += dout @ w[i, j].T
    return dx_pad[:, ph:ph + H, pw:pw + W], dw, dout.sum(axis=(0, 1, 2))


@right(course.check_conv2d_backward, seed=3, stride=(2, 1), padding=(1, 0), KW=2)
def conv2d_with_loops(dout, cache):
    x_pad, w, (sh, sw), (ph, pw), (H, W) = cache
    KH, KW, Cin, Cout = w.shape
    N, Ho, Wo, _ = dout.shape
    dx_pad, dw, db = np.zeros_like(x_pad), np.zeros_like(w), np.zeros(Cout)
    for n in range(N):
        for h in range(Ho):
            for v in range(Wo):
                for i in range(KH):
                    for j in range(KW):
                        dx_pad[n, h * sh + i, v * sw + j] += w[i, j] @ dout[n, h, v]
                        dw[i, j] += np.outer(x_pad[n, h * sh + i, v * sw + j], dout[n, h, v])
                db += dout[n, h, v]
    return dx_pad[:, ph:ph + H, pw:pw + W], dw, db


@right(course.check_conv2d_backward, seed=4, stride=2, padding="same", H=7)
def conv2d_with_dilation_and_einsum(dout, cache):
    x_pad, w, (sh, sw), (ph, pw), (H, W) = cache
    KH, KW = w.shape[:2]
    N, Ho, Wo, Cout = dout.shape
    Hp, Wp = x_pad.shape[1:3]
    dil = np.zeros((N, Hp - KH + 1, Wp - KW + 1, Cout))  # every window position, the strided ones set
    dil[:, ::sh, ::sw][:, :Ho, :Wo] = dout
    win = np.lib.stride_tricks.sliding_window_view(x_pad, (KH, KW), axis=(1, 2))
    dw = np.einsum("nhwcij,nhwo->ijco", win, dil)
    dil_pad = np.pad(dil, ((0, 0), (KH - 1, KH - 1), (KW - 1, KW - 1), (0, 0)))
    dwin = np.lib.stride_tricks.sliding_window_view(dil_pad, (KH, KW), axis=(1, 2))
    dx_pad = np.einsum("nsrokl,klco->nsrc", dwin, w[::-1, ::-1])
    return dx_pad[:, ph:ph + H, pw:pw + W], dw, np.einsum("nhwo->o", dout)


# =========================================================================== max-pooling
def pool_forward_keeping_x(x, pool_size, stride, padding):
    out, cache = maxpool1d.maxpool1d_forward(x, pool_size, stride, padding)
    return out, (x, out, pool_size, stride, cache)


def pool_forward_local_argmax(x, pool_size, stride, padding):
    """A learner's forward that keeps the argmax within each window."""
    out, (argmax, T_pad, left, T) = maxpool1d.maxpool1d_forward(x, pool_size, stride, padding)
    start = (np.arange(out.shape[1]) * stride)[None, :, None]
    return out, (argmax - start, T_pad, left, T, stride)


@bug(course.check_maxpool1d_backward, "fails only when a window has ties: its gradient must go to one frame only",
     forward=pool_forward_keeping_x)
def pool_every_tie(dout, cache):
    x, out, pool, stride, (argmax, T_pad, left, T) = cache
    x_pad = np.pad(x, ((0, 0), (left, T_pad - T - left), (0, 0)), constant_values=-np.inf)
    dx = np.zeros_like(x_pad)
    for t in range(out.shape[1]):
        win = x_pad[:, t * stride:t * stride + pool]
        dx[:, t * stride:t * stride + pool] += (win == out[:, t:t + 1]) * dout[:, t:t + 1]
    return dx[:, left:left + T]


@bug(course.check_maxpool1d_backward, "overlapping windows")
def pool_fancy_index_add(dout, cache):
    argmax, T_pad, left, T = cache
    N, _, C = dout.shape
    dx = np.zeros((N, T_pad, C))
    dx[np.arange(N)[:, None, None], argmax, np.arange(C)[None, None, :]] += dout
    return dx[:, left:left + T]


@bug(course.check_maxpool1d_backward, "as average pooling's", forward=pool_forward_keeping_x)
def pool_spread_over_the_window(dout, cache):
    x, out, pool, stride, (argmax, T_pad, left, T) = cache
    dx = np.zeros((x.shape[0], T_pad, x.shape[2]))
    for t in range(out.shape[1]):
        dx[:, t * stride:t * stride + pool] += dout[:, t:t + 1] / pool
    return dx[:, left:left + T]


@bug(course.check_maxpool1d_backward, "the argmax is an index within the window", forward=pool_forward_local_argmax,
     pool=4, stride=2)
def pool_window_index_as_frame(dout, cache):
    local, T_pad, left, T, stride = cache
    N, T_out, C = dout.shape
    dx = np.zeros((N, T_pad, C))
    np.add.at(dx, (np.arange(N)[:, None, None], local, np.arange(C)[None, None, :]), dout)
    return dx[:, left:left + T]


@bug(course.check_maxpool1d_backward, "the stride is left out", forward=pool_forward_local_argmax, pool=2, stride=2,
     padding="valid")
def pool_without_stride(dout, cache):
    local, T_pad, left, T, stride = cache
    N, T_out, C = dout.shape
    dx = np.zeros((N, T_pad, C))
    np.add.at(dx, (np.arange(N)[:, None, None], local + np.arange(T_out)[None, :, None], np.arange(C)[None, None, :]),
              dout)
    return dx[:, left:left + T]


@bug(course.check_maxpool1d_backward, "drop the padding (1 before, 1 after)")
def pool_padding_kept(dout, cache):
    argmax, T_pad, left, T = cache
    N, _, C = dout.shape
    dx = np.zeros((N, T_pad, C))
    np.add.at(dx, (np.arange(N)[:, None, None], argmax, np.arange(C)[None, None, :]), dout)
    return dx


@right(course.check_maxpool1d_backward, forward=pool_forward_keeping_x, seed=3, pool=4, stride=2)
def pool_with_loops(dout, cache):
    x, out, pool, stride, (argmax, T_pad, left, T) = cache
    x_pad = np.pad(x, ((0, 0), (left, T_pad - T - left), (0, 0)), constant_values=-np.inf)
    dx = np.zeros_like(x_pad)
    N, T_out, C = dout.shape
    for n in range(N):
        for t in range(T_out):
            for c in range(C):
                i = t * stride + int(np.argmax(x_pad[n, t * stride:t * stride + pool, c]))
                dx[n, i, c] += dout[n, t, c]
    return dx[:, left:left + T]


# =========================================================================== LSTM
def _lstm(dnext_h, dnext_c, cache, dsig=lambda s: s * (1 - s), dtanh=lambda t: 1 - t * t, dtanh_c=None,
          dprev_c_gate="f", order="ifgo", with_dnext_c=True, through_h=True, df_state="prev_c", dx_T=True):
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, tc = cache
    next_c = f * prev_c + i * g
    do = dnext_h * tc
    dc = (dnext_c if with_dnext_c else 0) + (dnext_h * o * (dtanh_c(tc, next_c) if dtanh_c else 1 - tc * tc)
                                             if through_h else 0)
    di, df, dg = dc * g, dc * (prev_c if df_state == "prev_c" else next_c), dc * i
    da = dict(i=di * dsig(i), f=df * dsig(f), g=dg * dtanh(g), o=do * dsig(o))
    da = np.concatenate([da[k] for k in order], axis=1)
    dprev_c = dc * dict(f=f, i=i)[dprev_c_gate]
    return da @ (Wx.T if dx_T else Wx), da @ Wh.T, dprev_c, x.T @ da, prev_h.T @ da, da.sum(axis=0)


@bug(course.check_lstm_step_backward, "dnext_c is left out")
def lstm_without_dnext_c(dnext_h, dnext_c, cache):
    return _lstm(dnext_h, dnext_c, cache, with_dnext_c=False)


@bug(course.check_lstm_step_backward, "the cell also gets gradient through h_t")
def lstm_cell_only_from_dnext_c(dnext_h, dnext_c, cache):
    return _lstm(dnext_h, dnext_c, cache, through_h=False)


@bug(course.check_lstm_step_backward, "the derivative of the sigmoid gates i, f, o is written 1 - s^2")
def lstm_sigmoid_derivative_as_one_minus_square(dnext_h, dnext_c, cache):
    return _lstm(dnext_h, dnext_c, cache, dsig=lambda s: 1 - s * s)


@bug(course.check_lstm_step_backward, "the derivative of the candidate g is written 1 - g")
def lstm_tanh_derivative_as_one_minus_tanh(dnext_h, dnext_c, cache):
    return _lstm(dnext_h, dnext_c, cache, dtanh=lambda t: 1 - t)


@bug(course.check_lstm_step_backward, "dprev_c uses the input gate i")
def lstm_dprev_c_through_input_gate(dnext_h, dnext_c, cache):
    return _lstm(dnext_h, dnext_c, cache, dprev_c_gate="i")


@bug(course.check_lstm_step_backward, "the derivative of tanh(c_t) is written 1 - c^2")
def lstm_tanh_derivative_of_c(dnext_h, dnext_c, cache):
    return _lstm(dnext_h, dnext_c, cache, dtanh_c=lambda tc, c: 1 - c * c)


@bug(course.check_lstm_step_backward, "the gate blocks of da are in the order i, f, o, g")
def lstm_gate_blocks_swapped(dnext_h, dnext_c, cache):
    return _lstm(dnext_h, dnext_c, cache, order="ifog")


@bug(course.check_lstm_step_backward, "dx = da Wx: the transpose is missing")
def lstm_dx_without_transpose(dnext_h, dnext_c, cache):
    return _lstm(dnext_h, dnext_c, cache, dx_T=False)


@bug(course.check_lstm_step_backward, "df uses c_t")
def lstm_df_from_next_c(dnext_h, dnext_c, cache):
    return _lstm(dnext_h, dnext_c, cache, df_state="next_c")


@right(course.check_lstm_step_backward, seed=52, N=4, D=6, H=2)
def lstm_from_the_pre_activations(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, tc = cache
    H = prev_h.shape[1]
    a = np.concatenate([np.log(i / (1 - i)), np.log(f / (1 - f)), np.arctanh(g), np.log(o / (1 - o))], axis=1)
    s = sigmoid(a)  # every gate's sigmoid, recomputed from its pre-activation
    i, f, o = s[:, :H], s[:, H:2 * H], s[:, 3 * H:]
    g = np.tanh(a[:, 2 * H:3 * H])
    c = f * prev_c + i * g
    dc = dnext_c + dnext_h * o * (1 - np.tanh(c) ** 2)
    da = np.empty_like(a)
    da[:, :H], da[:, H:2 * H] = dc * g * i * (1 - i), dc * prev_c * f * (1 - f)
    da[:, 2 * H:3 * H], da[:, 3 * H:] = dc * i * (1 - g ** 2), dnext_h * np.tanh(c) * o * (1 - o)
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


# =========================================================================== GRU
def _gru(dnext_h, cache, direct=True, dz_sign=1, bh_r=True, dr_through_tanh=True, dtanh=lambda n: 1 - n * n,
         swap_z=False, dx_T=True):
    x, prev_h, Wx, Wh, r, z, n, hn = cache
    keep = 1 - z if swap_z else z
    dn = dnext_h * (1 - keep)
    dz = dnext_h * (prev_h - n) * dz_sign * (-1 if swap_z else 1)
    da_n = dn * dtanh(n)
    da_r = (da_n if dr_through_tanh else dn) * hn * r * (1 - r)
    da_z = dz * z * (1 - z)
    dxw = np.concatenate([da_r, da_z, da_n], axis=1)
    dhw = np.concatenate([da_r, da_z, da_n * r], axis=1)
    dprev_h = (dnext_h * keep if direct else 0) + dhw @ Wh.T
    return (dxw @ (Wx.T if dx_T else Wx), dprev_h, x.T @ dxw, prev_h.T @ dhw, dxw.sum(axis=0),
            (dhw if bh_r else dxw).sum(axis=0))


@bug(course.check_gru_step_backward, "h_{t-1} reaches h_t directly too")
def gru_without_direct_path(dnext_h, cache):
    return _gru(dnext_h, cache, direct=False)


@bug(course.check_gru_step_backward, "the update gate's sign")
def gru_update_gate_sign(dnext_h, cache):
    return _gru(dnext_h, cache, dz_sign=-1)


@bug(course.check_gru_step_backward, "the candidate block of dbh is sum_n da_n r")
def gru_bh_without_r(dnext_h, cache):
    return _gru(dnext_h, cache, bh_r=False)


@bug(course.check_gru_step_backward, "dr skips the candidate's tanh")
def gru_dr_without_tanh_derivative(dnext_h, cache):
    return _gru(dnext_h, cache, dr_through_tanh=False)


@bug(course.check_gru_step_backward, "the derivative of the candidate n is written 1 - n")
def gru_tanh_derivative_as_one_minus_tanh(dnext_h, cache):
    return _gru(dnext_h, cache, dtanh=lambda n: 1 - n)


@bug(course.check_gru_step_backward, "z and 1 - z are swapped")
def gru_z_roles_swapped(dnext_h, cache):
    return _gru(dnext_h, cache, swap_z=True)


@bug(course.check_gru_step_backward, "dx = dxw Wx: the transpose is missing")
def gru_dx_without_transpose(dnext_h, cache):
    return _gru(dnext_h, cache, dx_T=False)


@right(course.check_gru_step_backward, seed=4, H=3)
def gru_in_another_order(dnext_h, cache):
    x, prev_h, Wx, Wh, r, z, n, hn = cache
    H = prev_h.shape[1]
    da_z = dnext_h * (prev_h - n) * z * (1 - z)
    da_n = dnext_h * (1 - z) * (1 - n ** 2)
    da_r = da_n * hn * r * (1 - r)
    dprev_h = dnext_h * z + da_r @ Wh[:, :H].T + da_z @ Wh[:, H:2 * H].T + (da_n * r) @ Wh[:, 2 * H:].T
    dWx = np.concatenate([x.T @ da_r, x.T @ da_z, x.T @ da_n], axis=1)
    dWh = np.concatenate([prev_h.T @ da_r, prev_h.T @ da_z, prev_h.T @ (da_n * r)], axis=1)
    dx = da_r @ Wx[:, :H].T + da_z @ Wx[:, H:2 * H].T + da_n @ Wx[:, 2 * H:].T
    return (dx, dprev_h, dWx, dWh, np.concatenate([da_r.sum(0), da_z.sum(0), da_n.sum(0)]),
            np.concatenate([da_r.sum(0), da_z.sum(0), (da_n * r).sum(0)]))


@right(course.check_gru_step_backward)
def gru_reusing_its_cache_in_place(dnext_h, cache):
    x, prev_h, Wx, Wh, r, z, n, hn = cache
    hn *= r * (1 - r)  # in place: the cache's hn now holds hn r (1 - r)
    da_n = dnext_h * (1 - z) * (1 - n * n)
    da_r, da_z = da_n * hn, dnext_h * (prev_h - n) * z * (1 - z)
    dxw = np.concatenate([da_r, da_z, da_n], axis=1)
    dhw = np.concatenate([da_r, da_z, da_n * r], axis=1)
    return dxw @ Wx.T, dnext_h * z + dhw @ Wh.T, x.T @ dxw, prev_h.T @ dhw, dxw.sum(axis=0), dhw.sum(axis=0)


# =========================================================================== bugs found by probing
# Written after the bank above, as other learners would: the diagnosis was then extended where a
# generic form was missing (a sum over the wrong axis, a factor left out), and the rest is absent.
@bug(course.check_rnn_step_backward, "it is dz summed over axis 1 (hidden); db sums dz over axis 0 (batch)")
def step_db_wrong_axis(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (next_h > 0)
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, prev_h.T @ dz, dz.sum(axis=1)


@bug(course.check_rnn_step_backward, "the mask is h_{t-1}'s (prev_h > 0)")
def step_mask_of_prev_h(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (prev_h > 0)
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, prev_h.T @ dz, dz.sum(axis=0)


@bug(course.check_bptt, "dWh: step 0 is missing")
def bptt_dWh_without_step_zero(dh, cache):
    step_caches, h0 = cache
    dx, dprev = _zeros(dh, step_caches)
    dWx = dWh = db = 0
    for t in reversed(range(dh.shape[1])):
        dx[:, t], dprev, a, b, c = rnn.rnn_step_backward(dh[:, t] + dprev, step_caches[t])
        dWx, db = dWx + a, db + c
        if t > 0:
            dWh = dWh + b   # "h_{-1} is zero"
    return dx, dprev, dWx, dWh, db


@bug(course.check_loss, "has the wrong sign", kind="kl")
def kl_log_flipped(y1, y2, t1, t2, gamma=0.0):
    def div(t, y):
        tf, yf = t + E, y + E
        return tf * np.log(yf / tf) - tf + yf, tf / yf + 1
    return _objective(div)(y1, y2, t1, t2, gamma)


@bug(course.check_loss, "off by a factor N*T = 6", kind="mse")
def mse_grad_not_divided(y1, y2, t1, t2, gamma=0.0):
    n = y1.size // y1.shape[-1]
    loss = (np.sum((y1 - t1) ** 2) + np.sum((y2 - t2) ** 2) - gamma * (np.sum((y1 - t2) ** 2) + np.sum((y2 - t1) ** 2))) / n
    return loss, 2 * ((y1 - t1) - gamma * (y1 - t2)), 2 * ((y2 - t2) - gamma * (y2 - t1))


@bug(course.check_loss, None, kind="is")
def is_ratio_inverted(y1, y2, t1, t2, gamma=0.0):
    def div(t, y):
        tf, yf = t + E, y + E
        r = yf / tf
        return r - np.log(r) - 1, (1 - 1 / r) / tf
    return _objective(div)(y1, y2, t1, t2, gamma)


@bug(course.check_conv1d_backward, None)
def conv_dw_dout_flipped(dout, cache):
    x_pad, w, left, T, K, dw, win = _conv_parts(dout, cache)
    dw2 = np.einsum("ntck,nto->kco", np.lib.stride_tricks.sliding_window_view(x_pad, K, axis=1), dout[:, ::-1])
    return np.einsum("nsoj,jco->nsc", win, w[::-1])[:, left:left + T], dw2, dout.sum(axis=(0, 1))


@bug(course.check_conv1d_backward, "it is dout summed over axis 0 (batch), axis 1 (time), axis 2 (output channel)")
def conv_db_scalar(dout, cache):
    x_pad, w, left, T, K, dw, win = _conv_parts(dout, cache)
    return np.einsum("nsoj,jco->nsc", win, w[::-1])[:, left:left + T], dw, dout.sum()


@bug(course.check_maxpool1d_backward, "it is shifted by 1 along axis 1 (time)")
def pool_crop_from_zero(dout, cache):
    argmax, T_pad, left, T = cache
    N, _, C = dout.shape
    dx = np.zeros((N, T_pad, C))
    np.add.at(dx, (np.arange(N)[:, None, None], argmax, np.arange(C)[None, None, :]), dout)
    return dx[:, :T]


@bug(course.check_lstm_step_backward, "lacks o")
def lstm_dc_without_o(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, tc = cache
    do = dnext_h * tc
    dc = dnext_c + dnext_h * (1 - tc * tc)
    da = np.concatenate([dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dc * i * (1 - g * g), do * o * (1 - o)], 1)
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(0)


@bug(course.check_gru_step_backward, "the direct path is dnext_h (1 - z)")
def gru_direct_path_1_minus_z(dnext_h, cache):
    x, prev_h, Wx, Wh, r, z, n, hn = cache
    dx, dprev_h, *rest = gru.gru_step_backward(dnext_h, cache)
    return (dx, dprev_h - dnext_h * z + dnext_h * (1 - z), *rest)


@bug(course.check_mask_backward, "da lacks the factor X")
def mask_without_X(dy1, dy2, cache):
    a1, a2, X, s, g1, g2 = _gains(cache)
    dX = dy1 * g1 + dy2 * g2
    return np.concatenate([(dy1 - dX) / s * np.sign(a1), (dy2 - dX) / s * np.sign(a2)], -1), dX


# =========================================================================== the bank
def verdict(entry):
    """(caught, 'right' | 'wrong' | 'absent', the checker's report) for a bug of the bank."""
    checker, fn, kw, words = entry
    result = checker(fn, verbose=False, **kw)
    hints = result.hints
    if not hints:
        status = "absent"
    elif words is not None and all(words in h for h in hints):
        status = "right"
    else:
        status = "wrong"
    return not result, status, result.report()


@pytest.mark.parametrize("name", list(BUGS))
def test_a_bug_fails_with_the_hint_that_names_it(name):
    caught, status, report = verdict(BUGS[name])
    assert caught, report
    assert status == ("absent" if BUGS[name][3] is None else "right"), report


@pytest.mark.parametrize("name", list(RIGHT))
def test_a_right_but_unusual_solution_passes_without_a_hint(name):
    checker, fn, kw = RIGHT[name]
    result = checker(fn, verbose=False, **kw)
    assert result and not result.hints, result.report()


def test_the_bank_is_as_large_as_the_issue_asks():
    checkers = {entry[0] for entry in BUGS.values()}
    assert len(BUGS) >= 40 and len(RIGHT) >= 10 and len(checkers) == 10


def test_an_in_place_solution_is_told_so_in_one_line():
    result = course.check_bptt(bptt_adding_into_dh_in_place, verbose=False)
    assert result and result.notes == ["bptt_adding_into_dh_in_place changed dh in place: copy it before += or *= "
                                       "(dh = dh.copy()), as the caller may still need it"]


def table():
    """The bank's table, with its counts."""
    rows, counts = [], {"caught": 0, "right": 0, "wrong": 0, "absent": 0}
    for name, entry in BUGS.items():
        caught, status, _ = verdict(entry)
        counts["caught"] += caught
        counts[status] += 1
        rows.append((name, entry[0].__name__, "yes" if caught else "NO", status))
    false_fail = [name for name, (checker, fn, kw) in RIGHT.items()
                  if not checker(fn, verbose=False, **kw) or checker(fn, verbose=False, **kw).hints]
    w = max(len(r[0]) for r in rows)
    c = max(len(r[1]) for r in rows)
    lines = [f"{'bug':<{w}} | {'checker':<{c}} | caught | hint", "-" * (w + c + 22)]
    lines += [f"{a:<{w}} | {b:<{c}} | {x:<6} | {s}" for a, b, x, s in rows]
    n = len(BUGS)
    lines.append(f"\n{n} bugs over {len({e[0] for e in BUGS.values()})} checkers: caught {counts['caught']}/{n}; "
                 f"hint right {counts['right']}, wrong {counts['wrong']}, absent {counts['absent']} "
                 f"({100 * counts['right'] / n:.0f}% named right)")
    lines.append(f"{len(RIGHT)} right but unusual solutions: {len(RIGHT) - len(false_fail)} pass without a hint"
                 + (f"; false FAIL or hint: {', '.join(false_fail)}" if false_fail else ", no false FAIL"))
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
