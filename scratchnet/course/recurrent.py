"""Checkers of the ReLU RNN: the step backward, BPTT, truncated BPTT (and its reference).

The diagnosis (see :mod:`scratchnet.course._check`) gets, from here, what the classic bugs
return -- each computed from the reference's own parts: the step with the ReLU's derivative
written otherwise, with the state of the neighbouring time step, with Wx where Wh belongs; the
sequence loop without its carried gradient, with the carry added after the step, run
forwards, stopping at t = 1, resetting or overwriting the weight gradients, truncated at the
wrong steps or over a sliding window -- and the additive terms of the weight gradients, one
per time step (dWh = sum_t h_{t-1}^T dz_t).
"""
import numpy as np

from ..gradcheck import rnn_inputs
from ._check import (REFERENCE, TOL, Case, Hypothesis, Terms, call, call_learner, derivative_hypotheses,
                     explain, finish, numeric, run, shape_error, sizes, snapshot, square_rerun)

# --------------------------------------------------------------------------- the ReLU RNN
_STEP_NAMES = ("dx", "dprev_h", "dWx", "dWh", "db")
_STEP_AXES = {"dx": ("batch", "input"), "dprev_h": ("batch", "hidden"), "db": [("hidden",), ("batch", "hidden")],
              "db/full": ("batch", "hidden")}


def _inputs(rng, N, T, D, H, positive):
    """:func:`rnn_inputs` with some units on: a draw where every ReLU is off checks nothing
    (every gradient is zero, so a function returning zeros would pass)."""
    for _ in range(100):
        x, h0, Wx, Wh, b = rnn_inputs(rng, N, T, D, H, positive)
        h, _ = REFERENCE["rnn_forward"](x, h0, Wx, Wh, b)
        if (h > 0).mean() >= 0.2:
            break
    return x, h0, Wx, Wh, b


def _step_case(fn, forward, rng, N, D, H, tol, positive=False):
    x, prev_h, Wx, Wh, b = _inputs(rng, N, 1, D, H, positive)
    x = x[:, 0].copy()
    args = [x, prev_h, Wx, Wh, b]
    out, cache = call(forward, *snapshot(args), n=2)
    dnext_h = rng.standard_normal(np.shape(out))
    got, notes = call_learner(fn, [dnext_h, cache], ("dnext_h", "cache"), n=5)
    ref_cache = REFERENCE["rnn_step_forward"](*args)[1]
    ref = REFERENCE["rnn_step_backward"](dnext_h, ref_cache)
    num = numeric(lambda: forward(*snapshot(args))[0], args, dnext_h)
    return Case(_STEP_NAMES, got, ref, [num, ref], tol, notes, dnext_h=dnext_h, cache=ref_cache)


def _step_grads(dnext_h, cache, relu=None, dWh_state=None, dWx_input=None, dx_W=None, dprev_W=None):
    """The step backward, each factor replaceable: {tensor: array}."""
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * ((next_h > 0) if relu is None else relu)
    return dict(dx=dz @ (Wx.T if dx_W is None else dx_W), dprev_h=dz @ (Wh.T if dprev_W is None else dprev_W),
                dWx=(x if dWx_input is None else dWx_input).T @ dz,
                dWh=(prev_h if dWh_state is None else dWh_state).T @ dz, db=dz.sum(axis=0))


def _step_hypotheses(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    hyps = derivative_hypotheses(lambda d: _step_grads(dnext_h, cache, relu=d), "the ReLU", "relu", next_h, "h")
    hyps.append(Hypothesis("the mask is h_{t-1}'s (prev_h > 0): this step's ReLU is next_h = relu(z), so "
                           "dz = dnext_h * (next_h > 0)", _step_grads(dnext_h, cache, relu=prev_h > 0)))
    hyps.append(Hypothesis("dWh = h_t^T dz uses the state this step makes: Wh multiplies h_{t-1}, so "
                           "dWh = prev_h^T dz", {"dWh": _step_grads(dnext_h, cache, dWh_state=next_h)["dWh"]}))
    hyps.append(Hypothesis("dprev_h = dz Wh: the transpose is missing -- for z = h W, dh = dz W^T",
                           {"dprev_h": _step_grads(dnext_h, cache, dprev_W=Wh)["dprev_h"]}))
    if Wx.shape[0] == Wx.shape[1]:  # square: the mix-ups that only run when D = H
        wrong = [("dx", dict(dx_W=Wx), "dx = dz Wx: the transpose is missing -- for z = x Wx, dx = dz Wx^T"),
                 ("dx", dict(dx_W=Wh.T), "dx uses Wh: x enters through Wx, so dx = dz Wx^T"),
                 ("dprev_h", dict(dprev_W=Wx.T), "dprev_h uses Wx: h_{t-1} enters through Wh, so dprev_h = dz Wh^T"),
                 ("dWx", dict(dWx_input=prev_h), "dWx uses h_{t-1}: Wx multiplies x, so dWx = x^T dz"),
                 ("dWh", dict(dWh_state=x), "dWh uses x: Wh multiplies h_{t-1}, so dWh = prev_h^T dz")]
        hyps += [Hypothesis(h, {t: _step_grads(dnext_h, cache, **kw)[t]}) for t, kw, h in wrong]
    return hyps


_RELU_CONDITION = ("the error vanishes when every pre-activation is positive: the ReLU mask is missing "
                   "(dz = dnext_h * (z > 0), before any product)")


def check_rnn_step_backward(fn, *, forward=None, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(dnext_h, cache) -> dx, dprev_h, dWx, dWh, db``, the ReLU RNN step backward.

    ``forward`` makes the cache (default: scratchnet's ``rnn_step_forward``); sizes ``N, D, H``.
    Returns a :class:`~scratchnet.course._check.CheckResult` (true when every gradient passes).
    Explains: the ReLU's derivative left out or written otherwise; h_t where h_{t-1} belongs;
    a missing transpose or Wx where Wh belongs (when the shapes do not fit, it runs again with
    D = H); transposed, mis-shaped or mis-scaled gradients.
    """
    d = sizes(dict(N=3, D=4, H=5), dims)
    forward = forward or REFERENCE["rnn_step_forward"]
    title = f"check_rnn_step_backward: N={d['N']} D={d['D']} H={d['H']}, seed {seed}"

    def diagnose(case, d):
        dnext_h, cache = case.parts["dnext_h"], case.parts["cache"]
        found, hints = explain(case, _step_hypotheses(dnext_h, cache), dims=d, axes=_STEP_AXES,
                               unreduced={"db": (dnext_h * (cache[4] > 0), "dz", (0,))})
        if d["D"] != d["H"]:
            sq = dict(d, D=d["H"])
            found, hints = square_rerun(case, found, hints, lambda: diagnose(
                _step_case(fn, forward, np.random.default_rng(seed), tol=tol, **sq), sq), f"D = H = {d['H']}")
        if set(case.failing) - set(found):
            pos = _step_case(fn, forward, np.random.default_rng(seed), tol=tol, positive=True, **d)
            if pos.ok:
                hints.append(_RELU_CONDITION)
        return found, hints

    def body():
        case = _step_case(fn, forward, np.random.default_rng(seed), tol=tol, **d)
        found, hints = diagnose(case, d) if not case.ok else ({}, [])
        return finish(title, case, hints, verbose, found)

    def retry(failed):
        if not shape_error(failed) or d["D"] == d["H"]:
            return []
        sq = dict(d, D=d["H"])
        case = _step_case(fn, forward, np.random.default_rng(seed), tol=tol, **sq)
        if case.ok:
            return [f"with D = H = {d['H']} it runs and passes: an array is made or multiplied with H where D "
                    f"belongs, or the reverse (a missing .T?)"]
        return [f"with D = H = {d['H']}, where the shapes fit, {h}" for h in diagnose(case, sq)[1]]
    return run(title, verbose, body, retry)


# --------------------------------------------------------------------------- BPTT
_SEQ_NAMES = ("dx", "dh0", "dWx", "dWh", "db")
_SEQ_AXES = {"dx": ("batch", "time", "input"), "dh0": ("batch", "hidden"), "db": [("hidden",), ("batch", "hidden")]}


def _bptt_loop(dh, cache, k=None, *, step=None, carry="into", accumulate=True, order=None, cut=None,
               reset=None, upstream=None):
    """A BPTT loop from the reference step, with a switch for each classic bug.

    ``carry``: "into" (right: step t gets dh[:, t] + what step t+1 sent back), "none", or
    "after" (the carry summed with what step t sends back, never through the step);
    ``cut(t)``: the carry leaving step t is dropped (truncation: right where t % k == 0, t > 0);
    ``reset(t)``: the weight gradients are zeroed before step t adds its share;
    ``upstream(t)``: whether step t gets its dh[:, t].  Returns the five gradients and the
    steps' own outputs {t: (dx_t, dprev_t, dWx_t, dWh_t, db_t)}.
    """
    step_caches, h0 = cache
    step = step or REFERENCE["rnn_step_backward"]
    N, T, H = dh.shape
    if cut is None:
        cut = (lambda t: t % k == 0 and t > 0) if k is not None else (lambda t: False)
    dx = np.zeros((N, T, step_caches[0][0].shape[1]))
    dW = [0, 0, 0]
    dprev = np.zeros((N, H))
    steps = {}
    for t in (reversed(range(T)) if order is None else order):
        up = dh[:, t] if upstream is None or upstream(t) else np.zeros((N, H))
        g = step(up + dprev if carry == "into" else up, step_caches[t])
        dx[:, t] = g[0]
        dprev = g[1] + dprev if carry == "after" else g[1]
        if reset is not None and reset(t):
            dW = [0, 0, 0]
        dW = [a + b for a, b in zip(dW, g[2:])] if accumulate else list(g[2:])
        steps[t] = g
        if cut(t):
            dprev = np.zeros((N, H))
    return (dx, dprev, *dW), steps


def _sliding_window(dh, cache, k):
    """The gradient of each dh[:, t] pushed back k steps from t (a window ending at t), summed."""
    step_caches, h0 = cache
    N, T, H = dh.shape
    dx, dW, dh0 = np.zeros((N, T, step_caches[0][0].shape[1])), [0, 0, 0], np.zeros((N, H))
    for t in range(T):
        g = dh[:, t]
        for s in range(t, max(t - k, -1), -1):
            out = REFERENCE["rnn_step_backward"](g, step_caches[s])
            dx[:, s] += out[0]
            g = out[1]
            dW = [a + b for a, b in zip(dW, out[2:])]
        if t - k < 0:
            dh0 += g
    return (dx, dh0, *dW)


def _step_bug(relu=None, dWh_state_next=False):
    """A learner's step backward with one bug, for the sequence checkers' hypotheses."""
    def step(dnext_h, cache):
        g = _step_grads(dnext_h, cache, relu=None if relu is None else relu(cache[4]),
                        dWh_state=cache[4] if dWh_state_next else None)
        return tuple(g[n] for n in _STEP_NAMES)
    return step


_BPTT_HINTS = {
    "no carry": "passes at T=1 but fails at T>1: the gradient carried from step t+1 is missing "
                "(add the dprev_h that step t+1 returned to dh[:, t] before the step backward)",
    "carry after": "the carried gradient is added after the step instead of fed into it: step t must get "
                   "dh[:, t] + dprev_h (what step t+1 sent back) as its dnext_h, so that the carry goes "
                   "through step t's ReLU and Wh",
    "no accumulation": "the weight gradients hold one step only: every step uses the same weights, so "
                       "their gradients add up over the steps (+=)",
    "forwards in time": "the loop runs forwards in time: BPTT starts at the last step, t = T-1, where "
                        "nothing comes from the future, and walks back to t = 0",
    "stops at t=1": "the loop stops at t = 1: range(T-1, 0, -1) leaves out step 0, which uses the weights "
                    "and h0 too -- use reversed(range(T)) (range(T-1, -1, -1))",
    "last step only": "only dh[:, T-1] is used: every step's output has its own upstream gradient dh[:, t], "
                      "added to the carried gradient at every step",
    "step no relu": "the ReLU mask is missing in the step backward (dz = dnext_h * (z > 0))",
    "step dWh h_t": "the step's dWh uses h_t: Wh multiplies h_{t-1}, so dWh = prev_h^T dz",
    "no truncation": "the carried gradient is never cut: with truncation k it is set to zero where a "
                     "chunk starts (t = k, 2k, ...), so no gradient crosses a chunk boundary",
    "cut one step off": "the cut is one step off: chunk c holds steps ck .. ck+k-1, and the gradient "
                        "must not pass from step ck back to step ck-1 (cut after the step backward "
                        "of a step t with t % k == 0, not before it)",
    "dh0 cut": "dh0 is zero: it is the gradient on the first chunk's initial state h0, which the "
               "first chunk does use -- do not cut at t = 0",
    "chunks counted from the end": "chunks are counted from the start of the sequence (steps 0..k-1 "
                                   "are the first chunk), as stateful training feeds them",
    "weights reset per chunk": "the weight gradients are reset at every chunk: truncation cuts the carried "
                               "gradient only -- dWx, dWh, db sum over every chunk's steps",
    "sliding window": "this is a sliding-window truncation (each dh[:, t] pushed back k steps from t): "
                      "truncated BPTT cuts the sequence into fixed chunks, steps 0..k-1, k..2k-1, ..., and "
                      "the carried gradient is only dropped where a chunk starts",
}


def _bptt_hypotheses(dh, cache, k=None):
    """What the classic (truncated) BPTT bugs return, from scratchnet's step."""
    T = dh.shape[1]
    loop = lambda **kw: _bptt_loop(dh, cache, k, **kw)[0]  # noqa: E731
    bugs = {"no carry": loop(carry="none"), "carry after": loop(carry="after"),
            "no accumulation": loop(accumulate=False), "forwards in time": loop(order=range(T)),
            "stops at t=1": loop(order=range(T - 1, 0, -1)), "last step only": loop(upstream=lambda t: t == T - 1),
            "step no relu": loop(step=_step_bug(relu=np.ones_like)),
            "step dWh h_t": loop(step=_step_bug(dWh_state_next=True))}
    if k is not None:
        bugs.update({
            "no truncation": loop(cut=lambda t: False),
            "dh0 cut": loop(cut=lambda t: t % k == 0),
            "cut one step off": loop(cut=lambda t: t % k == 1 % k and t > 0),
            "cut one step off ": loop(cut=lambda t: (t + 1) % k == 0),
            "chunks counted from the end": loop(cut=lambda t: t > 0 and (T - t) % k == 0),
            "weights reset per chunk": loop(reset=lambda t: t == T - 1 or (t + 1) % k == 0),
            "sliding window": _sliding_window(dh, cache, k)})
    return [Hypothesis.of(_BPTT_HINTS[bug.strip()], _SEQ_NAMES, out, partial=False) for bug, out in bugs.items()]


def _bptt_terms(steps, T):
    """dx, dWx, dWh, db as sums of one term per step (the reference's own steps)."""
    terms = {}
    for i, (name, formula) in enumerate([("dx", None), ("dWx", "x_t^T dz_t over the steps t"),
                                         ("dWh", "h_{t-1}^T dz_t over the steps t"), ("db", "dz_t over the steps t")]):
        j = (0, 2, 3, 4)[i]
        parts = []
        for t in range(T):
            if j == 0:
                a = np.zeros((steps[t][0].shape[0], T, steps[t][0].shape[1]))
                a[:, t] = steps[t][0]
            else:
                a = steps[t][j]
            parts.append((f"step {t}", a))
        terms[name] = Terms(parts, formula=formula or "dz_t Wx^T at each step t")
    return terms


def _seq_case(fn, forward, rng, N, T, D, H, tol, k=None, positive=False):
    x, h0, Wx, Wh, b = _inputs(rng, N, T, D, H, positive)
    args = [x, h0, Wx, Wh, b]
    out, cache = call(forward, *snapshot(args), n=2)
    dh = rng.standard_normal(np.shape(out))
    if k is None:
        got, notes = call_learner(fn, [dh, cache], ("dh", "cache"), n=5)
    else:
        got, notes = call_learner(fn, [dh, cache, k], ("dh", "cache", "k"), n=5)
    ref_cache = REFERENCE["rnn_forward"](*args)[1]
    ref, steps = _bptt_loop(dh, ref_cache, k)
    if k is None:
        num = numeric(lambda: forward(*snapshot(args))[0], args, dh)
    else:
        num = numeric(_truncated_forward(args, k), args, dh)
    return Case(_SEQ_NAMES, got, ref, [num, ref], tol, notes, dh=dh, cache=ref_cache, steps=steps)


def _seq_diagnose(fn, forward, seed, d, case, tol, k=None):
    T = d["T"]
    found, hints = explain(case, _bptt_hypotheses(case.parts["dh"], case.parts["cache"], k),
                           terms=_bptt_terms(case.parts["steps"], T), dims=d, axes=_SEQ_AXES,
                           zero_hints={"dh0": "it is all zeros: dh0 is the gradient carried out of step 0 (the "
                                              "dprev_h that step 0's backward returns): return that"})
    if set(case.failing) - set(found):
        if k is None and T > 1:
            one = _seq_case(fn, forward, np.random.default_rng(seed), tol=tol, **dict(d, T=1))
            if one.ok:
                hints.append("passes at T=1 but fails at T>1: what goes from step t+1 to step t is wrong -- "
                             "the gradient carried from step t+1 (dprev_h), the order of the loop, or += "
                             "on the weights")
        pos = _seq_case(fn, forward, np.random.default_rng(seed), tol=tol, positive=True, k=k, **d)
        if pos.ok:
            hints.append("the error vanishes when every pre-activation is positive: the ReLU mask is "
                         "missing (in the step backward: dz = dnext_h * (z > 0))")
    return found, hints


def check_bptt(fn, *, forward=None, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(dh, cache) -> dx, dh0, dWx, dWh, db``, backpropagation through time.

    ``dh`` (N, T, H) holds only the per-step upstream gradients; ``fn`` must carry the gradient
    between steps itself.  ``forward`` makes the cache (default scratchnet's ``rnn_forward``);
    sizes ``N, T, D, H``.  Explains: the carried gradient missing or added after the step, the
    weight gradients not accumulated (or missing some steps), the loop run forwards or stopping
    at t = 1, only the last step's dh used, dh0 left at zero, a step without the ReLU mask.
    """
    d = sizes(dict(N=2, T=6, D=3, H=4), dims)
    forward = forward or REFERENCE["rnn_forward"]
    title = f"check_bptt: N={d['N']} T={d['T']} D={d['D']} H={d['H']}, seed {seed}"

    def body():
        case = _seq_case(fn, forward, np.random.default_rng(seed), tol=tol, **d)
        found, hints = _seq_diagnose(fn, forward, seed, d, case, tol) if not case.ok else ({}, [])
        return finish(title, case, hints, verbose, found)
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
    chunk is short).  Explains: no truncation at all, a cut one step off, dh0 cut, chunks counted
    from the end, the weight gradients reset per chunk, a sliding-window truncation, and the BPTT
    bugs of :func:`check_bptt`.
    """
    d = sizes(dict(N=2, T=8, D=3, H=4, k=3), dims)
    forward = forward or REFERENCE["rnn_forward"]
    title = f"check_truncated_bptt: N={d['N']} T={d['T']} D={d['D']} H={d['H']} k={d['k']}, seed {seed}"
    dd = {k_: v for k_, v in d.items() if k_ != "k"}

    def body():
        case = _seq_case(fn, forward, np.random.default_rng(seed), tol=tol, k=d["k"], **dd)
        found, hints = _seq_diagnose(fn, forward, seed, dd, case, tol, k=d["k"]) if not case.ok else ({}, [])
        return finish(title, case, hints, verbose, found)
    return run(title, verbose, body)
