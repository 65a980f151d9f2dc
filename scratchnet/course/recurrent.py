"""Checkers of the ReLU RNN: the step backward, BPTT, truncated BPTT (and its reference)."""
import numpy as np

from ..gradcheck import rnn_inputs
from ._check import (REFERENCE, TOL, call, errors, finish, numeric, passes, run, shape_value_hints,
                     sizes)


# --------------------------------------------------------------------------- the ReLU RNN
_STEP_NAMES = ("dx", "dprev_h", "dWx", "dWh", "db")


def _step_errors(fn, forward, rng, N, D, H, positive=False):
    x, prev_h, Wx, Wh, b = rnn_inputs(rng, N, 1, D, H, positive)
    x = x[:, 0].copy()
    args = [x, prev_h, Wx, Wh, b]
    out, cache = call(forward, *args, n=2)
    dnext_h = rng.standard_normal(np.shape(out))
    got = call(fn, dnext_h, cache, n=5)
    ref = REFERENCE["rnn_step_backward"](dnext_h, REFERENCE["rnn_step_forward"](*args)[1])
    num = numeric(lambda: forward(*args)[0], args, dnext_h)
    return errors(_STEP_NAMES, got, num, ref), got, ref


def check_rnn_step_backward(fn, *, forward=None, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(dnext_h, cache) -> dx, dprev_h, dWx, dWh, db``, the ReLU RNN step backward.

    ``forward`` makes the cache (default: scratchnet's ``rnn_step_forward``); sizes ``N, D, H``.
    Recognises: the ReLU mask missing; transposed, mis-shaped or mis-scaled gradients.
    """
    d = sizes(dict(N=3, D=4, H=5), dims)
    forward = forward or REFERENCE["rnn_step_forward"]
    title = f"check_rnn_step_backward: N={d['N']} D={d['D']} H={d['H']}, seed {seed}"

    def body():
        errs, got, ref = _step_errors(fn, forward, np.random.default_rng(seed), **d)
        hints = []
        if not passes(errs, tol):
            pos, _, _ = _step_errors(fn, forward, np.random.default_rng(seed), positive=True, **d)
            if passes(pos, tol):
                hints.append("the error vanishes when every pre-activation is positive: the ReLU mask "
                             "is missing (dz = dnext_h * (z > 0), before any product)")
            hints = hints or shape_value_hints(_STEP_NAMES, got, ref)
        return finish(title, errs, tol, hints, verbose)
    return run(title, verbose, body)


_SEQ_NAMES = ("dx", "dh0", "dWx", "dWh", "db")


def _bptt_variants(dh, cache, k=None):
    """What classic BPTT bugs return, from scratchnet's step: {bug: (dx, dh0, dWx, dWh, db)}."""
    step_caches, h0 = cache
    N, T, H = dh.shape
    step = REFERENCE["rnn_step_backward"]

    def loop(carry=True, accumulate=True, order=None, cut=lambda t: False):
        dx = np.zeros((N, T, step_caches[0][0].shape[1]))
        dW = None
        dprev = np.zeros((N, H))
        for t in (order or reversed(range(T))):
            dprev = 0 * dprev if cut(t) else dprev
            g = step(dh[:, t] + (dprev if carry else 0), step_caches[t])
            dx[:, t], dprev = g[0], g[1]
            dW = list(g[2:]) if dW is None or not accumulate else [a + b for a, b in zip(dW, g[2:])]
        return (dx, dprev, *dW)
    out = {"no carry": loop(carry=False), "no accumulation": loop(accumulate=False),
           "forwards in time": loop(order=range(T))}
    if k is not None:
        out["no truncation"] = loop()
        # at iteration t, ``dprev`` is what step t+1 sends back: truncation drops it if a chunk
        # starts at t+1, i.e. where (t + 1) % k == 0
        out["cut one step off"] = loop(cut=lambda t: t % k == 0)
        out["chunks counted from the end"] = loop(cut=lambda t: t < T - 1 and (T - 1 - t) % k == 0)
        right = loop(cut=lambda t: (t + 1) % k == 0)
        out["dh0 cut"] = (right[0], np.zeros_like(right[1]), *right[2:])
    return out


_BPTT_HINTS = {
    "no carry": "passes at T=1 but fails at T>1: the gradient carried from step t+1 is missing "
                "(add the dprev_h that step t+1 returned to dh[:, t] before the step backward)",
    "no accumulation": "the weight gradients hold one step only: every step uses the same weights, so "
                       "their gradients add up over the steps (+=)",
    "forwards in time": "the loop runs forwards in time: BPTT starts at the last step, t = T-1, where "
                        "nothing comes from the future, and walks back to t = 0",
    "no truncation": "the carried gradient is never cut: with truncation k it is set to zero where a "
                     "chunk starts (t = k, 2k, ...), so no gradient crosses a chunk boundary",
    "cut one step off": "the cut is one step off: chunk c holds steps ck .. ck+k-1, and the gradient "
                        "must not pass from step ck back to step ck-1 (cut after the step backward "
                        "of a step t with t % k == 0, not before it)",
    "dh0 cut": "dh0 is zero: it is the gradient on the first chunk's initial state h0, which the "
               "first chunk does use -- do not cut at t = 0",
    "chunks counted from the end": "chunks are counted from the start of the sequence (steps 0..k-1 "
                                   "are the first chunk), as stateful training feeds them",
}


def _bptt_errors(fn, forward, rng, N, T, D, H, k=None, positive=False):
    x, h0, Wx, Wh, b = rnn_inputs(rng, N, T, D, H, positive)
    args = [x, h0, Wx, Wh, b]
    out, cache = call(forward, *args, n=2)
    dh = rng.standard_normal(np.shape(out))
    got = call(fn, dh, cache, n=5) if k is None else call(fn, dh, cache, k, n=5)
    ref_cache = REFERENCE["rnn_forward"](*args)[1]
    if k is None:
        ref = REFERENCE["rnn_backward"](dh, ref_cache)
        num = numeric(lambda: forward(*args)[0], args, dh)
    else:
        ref = truncated_rnn_backward(dh, ref_cache, k)
        num = numeric(_truncated_forward(args, k), args, dh)
    variants = _bptt_variants(dh, ref_cache, k)
    return errors(_SEQ_NAMES, got, num, ref), got, ref, variants


def _sequence_hints(fn, forward, seed, d, errs, got, ref, variants, tol, k=None):
    hints = [_BPTT_HINTS[bug] for bug, v in variants.items() if passes(errors(_SEQ_NAMES, got, v), 1e-6)]
    if not hints and k is None and d["T"] > 1:
        one = _bptt_errors(fn, forward, np.random.default_rng(seed), **dict(d, T=1))[0]
        if passes(one, tol):
            hints.append("passes at T=1 but fails at T>1: what goes from step t+1 to step t is wrong -- "
                         "the gradient carried from step t+1 (dprev_h), the order of the loop, or += "
                         "on the weights")
    pos = _bptt_errors(fn, forward, np.random.default_rng(seed), positive=True, k=k, **d)[0]
    if passes(pos, tol):
        hints.append("the error vanishes when every pre-activation is positive: the ReLU mask is "
                     "missing (in the step backward: dz = dnext_h * (z > 0))")
    return hints or shape_value_hints(_SEQ_NAMES, got, ref)


def check_bptt(fn, *, forward=None, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(dh, cache) -> dx, dh0, dWx, dWh, db``, backpropagation through time.

    ``dh`` (N, T, H) holds only the per-step upstream gradients; ``fn`` must carry the gradient
    between steps itself.  ``forward`` makes the cache (default scratchnet's ``rnn_forward``);
    sizes ``N, T, D, H``.  Recognises: the carried gradient missing (passes at T=1, fails at
    T>1), the weight gradients not accumulated, the loop run forwards, the ReLU mask missing.
    """
    d = sizes(dict(N=2, T=6, D=3, H=4), dims)
    forward = forward or REFERENCE["rnn_forward"]
    title = f"check_bptt: N={d['N']} T={d['T']} D={d['D']} H={d['H']}, seed {seed}"

    def body():
        errs, got, ref, variants = _bptt_errors(fn, forward, np.random.default_rng(seed), **d)
        hints = [] if passes(errs, tol) else _sequence_hints(fn, forward, seed, d, errs, got, ref, variants, tol)
        return finish(title, errs, tol, hints, verbose)
    return run(title, verbose, body)


def truncated_rnn_backward(dh, cache, k):
    """Truncated BPTT (the reference): :func:`rnn_backward` with no gradient across chunk starts.

    The sequence is cut into chunks of ``k`` steps from its start (steps 0..k-1, k..2k-1, ...);
    the forward pass ran over all of it, but the gradient carried from step t back to step t-1
    is dropped wherever t is a multiple of k.  This is the gradient that stateful training
    computes when it feeds the chunks one at a time, carrying h forwards but not the gradient
    backwards.  ``dh0`` is the first chunk's gradient on h0.  ``cache`` is from ``rnn_forward``.
    """
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise ValueError(f"{k=} must be a positive integer")
    step_caches, h0 = cache
    N, T, H = dh.shape
    dx = np.zeros((N, T, step_caches[0][0].shape[1]))
    dWx, dWh, db = 0, 0, 0
    dprev_h = np.zeros((N, H))
    for t in reversed(range(T)):
        dx[:, t], dprev_h, dWx_t, dWh_t, db_t = REFERENCE["rnn_step_backward"](dh[:, t] + dprev_h,
                                                                               step_caches[t])
        dWx, dWh, db = dWx + dWx_t, dWh + dWh_t, db + db_t
        if t % k == 0 and t > 0:
            dprev_h = np.zeros((N, H))  # a chunk starts at t: its initial state is a constant
    return dx, dprev_h, dWx, dWh, db


def _truncated_forward(args, k):
    """``f()`` for finite differences of truncated BPTT: each chunk starts from a frozen state.

    The chunks' initial states are computed once, from the unperturbed arrays: perturbing a
    weight then changes each chunk's own steps only, which is what truncation differentiates.
    """
    x, h0, Wx, Wh, b = args
    T = x.shape[1]
    h_all, _ = REFERENCE["rnn_forward"](x, h0, Wx, Wh, b)
    starts = [None] + [h_all[:, c - 1].copy() for c in range(k, T, k)]

    def f():
        outs = [REFERENCE["rnn_forward"](x[:, c:c + k], h0 if c == 0 else starts[c // k], Wx, Wh, b)[0]
                for c in range(0, T, k)]
        return np.concatenate(outs, axis=1)
    return f


def check_truncated_bptt(fn, *, forward=None, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(dh, cache, k) -> dx, dh0, dWx, dWh, db``, BPTT truncated to chunks of k steps.

    See :func:`truncated_rnn_backward`; the finite difference runs each chunk from a frozen
    initial state.  Sizes ``N, T, D, H, k`` (T not a multiple of k by default, so that the last
    chunk is short).  Recognises: no truncation at all, a cut one step off, chunks counted from
    the end, and the BPTT bugs of :func:`check_bptt`.
    """
    d = sizes(dict(N=2, T=8, D=3, H=4, k=3), dims)
    forward = forward or REFERENCE["rnn_forward"]
    title = f"check_truncated_bptt: N={d['N']} T={d['T']} D={d['D']} H={d['H']} k={d['k']}, seed {seed}"

    def body():
        errs, got, ref, variants = _bptt_errors(fn, forward, np.random.default_rng(seed), **d)
        hints = [] if passes(errs, tol) else _sequence_hints(
            lambda dh, c, k: fn(dh, c, k), forward, seed, {k_: v for k_, v in d.items() if k_ != "k"},
            errs, got, ref, variants, tol, k=d["k"])
        return finish(title, errs, tol, hints, verbose)
    return run(title, verbose, body)
