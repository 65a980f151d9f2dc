"""Checkers of the gated cells' step backward passes: the LSTM and the GRU (as PyTorch's)."""
import numpy as np

from ._check import (REFERENCE, TOL, call, errors, finish, numeric, passes, run, shape_value_hints,
                     sizes)

_LSTM_NAMES = ("dx", "dprev_h", "dprev_c", "dWx", "dWh", "db")
_GRU_NAMES = ("dx", "dprev_h", "dWx", "dWh", "dbx", "dbh")


# --------------------------------------------------------------------------- LSTM
def _lstm_variants(dnext_h, dnext_c, cache):
    """What the classic LSTM step bugs return, from the reference cache."""
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, tc = cache

    def grads(dc, tanh_grad=None):
        do = dnext_h * tc
        da = np.concatenate([dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dc * i * (1 - g * g),
                             do * o * (1 - o)], axis=1)
        return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)
    through_h = dnext_h * o * (1 - tc * tc)
    next_c = f * prev_c + i * g
    return {"no dnext_c": grads(through_h), "c only from dnext_c": grads(dnext_c),
            "tanh'(c) as 1 - c^2": grads(dnext_c + dnext_h * o * (1 - next_c * next_c))}


_LSTM_HINTS = {
    "no dnext_c": "dnext_c is left out: the cell's total gradient is dnext_c (from step t+1) plus "
                  "what comes through h_t = o tanh(c_t), dnext_h o (1 - tanh(c_t)^2)",
    "c only from dnext_c": "the cell also gets gradient through h_t = o tanh(c_t): dc = dnext_c + "
                           "dnext_h o (1 - tanh(c_t)^2)",
    "tanh'(c) as 1 - c^2": "the tanh's derivative is 1 - tanh(c)^2, not 1 - c^2",
}


def _lstm_errors(fn, forward, rng, N, D, H, dc_zero=False):
    x, prev_h, prev_c = rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    Wx, Wh, b = 0.5 * rng.standard_normal((D, 4 * H)), 0.5 * rng.standard_normal((H, 4 * H)), rng.standard_normal(4 * H)
    args = [x, prev_h, prev_c, Wx, Wh, b]
    h, c, cache = call(forward, *args, n=3)
    dnext_h = rng.standard_normal(np.shape(h))
    dnext_c = np.zeros(np.shape(c)) if dc_zero else rng.standard_normal(np.shape(c))
    got = call(fn, dnext_h, dnext_c, cache, n=6)
    ref_cache = REFERENCE["lstm_step_forward"](*args)[2]
    ref = REFERENCE["lstm_step_backward"](dnext_h, dnext_c, ref_cache)
    num = numeric(lambda: forward(*args)[:2], args, (dnext_h, dnext_c))
    return errors(_LSTM_NAMES, got, num, ref), got, ref, _lstm_variants(dnext_h, dnext_c, ref_cache)


def check_lstm_step_backward(fn, *, forward=None, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(dnext_h, dnext_c, cache) -> dx, dprev_h, dprev_c, dWx, dWh, db``.

    ``forward(x, prev_h, prev_c, Wx, Wh, b) -> next_h, next_c, cache`` (default scratchnet's
    ``lstm_step_forward``, gates i, f, g, o); sizes ``N, D, H``.  Recognises: dnext_c left out,
    the cell's gradient through h left out, tanh's derivative taken at c.
    """
    d = sizes(dict(N=3, D=4, H=5), dims)
    forward = forward or REFERENCE["lstm_step_forward"]
    title = f"check_lstm_step_backward: N={d['N']} D={d['D']} H={d['H']}, seed {seed}"

    def body():
        errs, got, ref, variants = _lstm_errors(fn, forward, np.random.default_rng(seed), **d)
        hints = []
        if not passes(errs, tol):
            hints = [_LSTM_HINTS[k] for k, v in variants.items() if passes(errors(_LSTM_NAMES, got, v), 1e-6)]
            if not hints and passes(_lstm_errors(fn, forward, np.random.default_rng(seed), dc_zero=True, **d)[0], tol):
                hints.append("passes when dnext_c = 0, fails otherwise: " + _LSTM_HINTS["no dnext_c"])
            hints = hints or shape_value_hints(_LSTM_NAMES, got, ref)
        return finish(title, errs, tol, hints, verbose)
    return run(title, verbose, body)


# --------------------------------------------------------------------------- GRU
def _gru_variants(dnext_h, cache):
    x, prev_h, Wx, Wh, r, z, n, hn = cache

    def grads(direct=True, bias_r=True):
        da_n = dnext_h * (1 - z) * (1 - n * n)
        da_r = da_n * hn * r * (1 - r)
        da_z = dnext_h * (prev_h - n) * z * (1 - z)
        dxw = np.concatenate([da_r, da_z, da_n], axis=1)
        dhw = np.concatenate([da_r, da_z, da_n * r], axis=1)
        dbh = dhw.sum(axis=0) if bias_r else np.concatenate([da_r, da_z, da_n], axis=1).sum(axis=0)
        dprev_h = (dnext_h * z if direct else 0) + dhw @ Wh.T
        return dxw @ Wx.T, dprev_h, x.T @ dxw, prev_h.T @ dhw, dxw.sum(axis=0), dbh
    return {"no direct path": grads(direct=False), "bh[n] without r": grads(bias_r=False)}


_GRU_HINTS = {
    "no direct path": "h_{t-1} reaches h_t directly too (h_t = (1 - z) n + z h_{t-1}): dprev_h = "
                      "dnext_h z + dhw Wh^T",
    "bh[n] without r": "the reset gate multiplies hw[n] = h_{t-1} Wh[n] + bh[n], its bias included, so "
                       "the candidate block of dbh is sum_n da_n r, not sum_n da_n",
}


def _gru_errors(fn, forward, rng, N, D, H):
    x, prev_h = rng.standard_normal((N, D)), rng.standard_normal((N, H))
    Wx, Wh = 0.5 * rng.standard_normal((D, 3 * H)), 0.5 * rng.standard_normal((H, 3 * H))
    bx, bh = rng.standard_normal(3 * H), rng.standard_normal(3 * H)
    args = [x, prev_h, Wx, Wh, bx, bh]
    h, cache = call(forward, *args, n=2)
    dnext_h = rng.standard_normal(np.shape(h))
    got = call(fn, dnext_h, cache, n=6)
    ref_cache = REFERENCE["gru_step_forward"](*args)[1]
    ref = REFERENCE["gru_step_backward"](dnext_h, ref_cache)
    num = numeric(lambda: forward(*args)[0], args, dnext_h)
    return errors(_GRU_NAMES, got, num, ref), got, ref, _gru_variants(dnext_h, ref_cache)


def check_gru_step_backward(fn, *, forward=None, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(dnext_h, cache) -> dx, dprev_h, dWx, dWh, dbx, dbh``, the GRU step backward.

    ``forward(x, prev_h, Wx, Wh, bx, bh) -> next_h, cache`` (default scratchnet's
    ``gru_step_forward``, blocks r, z, n); sizes ``N, D, H``.  Recognises: the direct path from
    h_{t-1} left out, the reset gate's bias gradient without r.
    """
    d = sizes(dict(N=3, D=4, H=5), dims)
    forward = forward or REFERENCE["gru_step_forward"]
    title = f"check_gru_step_backward: N={d['N']} D={d['D']} H={d['H']}, seed {seed}"

    def body():
        errs, got, ref, variants = _gru_errors(fn, forward, np.random.default_rng(seed), **d)
        hints = []
        if not passes(errs, tol):
            hints = [_GRU_HINTS[k] for k, v in variants.items() if passes(errors(_GRU_NAMES, got, v), 1e-6)]
            hints = hints or shape_value_hints(_GRU_NAMES, got, ref)
        return finish(title, errs, tol, hints, verbose)
    return run(title, verbose, body)
