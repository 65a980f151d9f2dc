"""Checkers of the 1-D convolution's and the max-pooling's backward passes.

The diagnosis gets, from here: dx as the sum of one term per tap (so that a tap missing or
counted twice is named), dx correlated with the kernel not flipped or cropped from the padded
gradient at the wrong offset; for max-pooling, what routing the gradient otherwise gives (a
repeated index that keeps one window, every tied frame, the whole window as in average
pooling, the argmax read as an index within the window, the stride ignored).
"""
import numpy as np

from ._check import (REFERENCE, TOL, Case, Hypothesis, Terms, call, call_learner, errors, explain, finish,
                     numeric, passes, run, sizes, snapshot)


# --------------------------------------------------------------------------- conv1d
_CONV_NAMES = ("dx", "dw", "db")
_CONV_AXES = {"dx": ("batch", "time", "input channel"), "dw": ("tap", "input channel", "output channel"),
              "db": [("output channel",), ("batch", "time", "output channel")],
              "db/full": ("batch", "time", "output channel")}
_FLIP_HINT = ("dx is a full correlation of dout with the kernel flipped in time, dx_pad[s] = sum_k dout[s-k] "
              "w[k]^T -- pad dout with K-1 zero frames on both sides, correlate with w[::-1], then drop the "
              "(K-1)//2 padded frames on the left")


def _conv_case(fn, forward, rng, N, T, Cin, Cout, K, tol):
    x, w, b = rng.standard_normal((N, T, Cin)), rng.standard_normal((K, Cin, Cout)), rng.standard_normal(Cout)
    out, cache = call(forward, *snapshot([x, w, b]), n=2)
    dout = rng.standard_normal(np.shape(out))
    got, notes = call_learner(fn, [dout, cache], ("dout", "cache"), n=3)
    ref = REFERENCE["conv1d_backward"](dout, REFERENCE["conv1d_forward"](x, w, b)[1])
    num = numeric(lambda: forward(x.copy(), w.copy(), b.copy())[0], [x, w, b], dout)
    return Case(_CONV_NAMES, got, ref, [num, ref], tol, notes, dout=dout, w=w, T=T)


def _conv_diagnosis(dout, w, T):
    K = w.shape[0]
    left = (K - 1) // 2
    dout_pad = np.pad(dout, ((0, 0), (K - 1, K - 1), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(dout_pad, K, axis=1)  # N,T+K-1,Cout,K
    full = np.einsum("nsoj,jco->nsc", win, w[::-1])  # the full correlation: dx_pad
    hyps = [Hypothesis("dx is the correlation with the kernel as it is: flip it in time (w[::-1]) -- " + _FLIP_HINT,
                       {"dx": np.einsum("nsoj,jco->nsc", win, w)[:, left:left + T]})]
    for o in range(K):
        if o != left:
            hyps.append(Hypothesis(f"dx is cropped from the padded gradient at frame {o}: the forward padded x "
                                   f"with (K-1)//2 = {left} frame(s) on the left, so dx = dx_pad[:, {left}:{left} + T]",
                                   {"dx": full[:, o:o + T]}))
    taps = [(f"tap {k}", np.einsum("nso,co->nsc", win[..., K - 1 - k], w[k])[:, left:left + T]) for k in range(K)]
    terms = {"dx": Terms(taps, formula="each tap's dout[s - k] w[k]^T")}
    return hyps, terms


def check_conv1d_backward(fn, *, forward=None, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(dout, cache) -> dx, dw, db``, the backward of a 1-D "same" convolution.

    ``forward(x, w, b) -> out, cache`` (default scratchnet's ``conv1d_forward``); sizes ``N, T,
    Cin, Cout, K``.  Explains: dx correlated with the kernel not flipped, cropped at the wrong
    offset, or with a tap missing or doubled; dw with its taps reversed or its axes swapped; db
    not summed over time; a kernel of one tap passing while K > 1 fails.
    """
    d = sizes(dict(N=2, T=7, Cin=3, Cout=4, K=3), dims)
    forward = forward or REFERENCE["conv1d_forward"]
    title = f"check_conv1d_backward: N={d['N']} T={d['T']} Cin={d['Cin']} Cout={d['Cout']} K={d['K']}, seed {seed}"

    def body():
        case = _conv_case(fn, forward, np.random.default_rng(seed), tol=tol, **d)
        found, hints = {}, []
        if not case.ok:
            hyps, terms = _conv_diagnosis(case.parts["dout"], case.parts["w"], d["T"])
            found, hints = explain(case, hyps, terms, dims=d, axes=_CONV_AXES,
                                   unreduced={"db": (case.parts["dout"], "dout", (0, 1))})
            if "dx" in set(case.failing) - set(found):
                one_tap = d["K"] > 1 and _conv_case(fn, forward, np.random.default_rng(seed), tol=tol,
                                                    **dict(d, K=1)).ok
                dw_right = "dw" not in case.failing
                if dw_right or one_tap:
                    hints.append(("dx is wrong but dw is right: " if dw_right else "a kernel of one tap passes: ")
                                 + _FLIP_HINT)
        return finish(title, case, hints, verbose, found)
    return run(title, verbose, body)


# --------------------------------------------------------------------------- max-pooling
_POOL_AXES = {"dx": ("batch", "time", "channel"), "dx (ties)": ("batch", "time", "channel")}


def _pool_case(fn, forward, rng, N, T, C, pool, stride, padding, tol, ties=False):
    """No ties: a permutation of values 0.1 apart.  ``ties``: small integers, many equal maxima."""
    x = rng.integers(0, 3, (N, T, C)).astype(float) if ties else (rng.permutation(N * T * C) * 0.1).reshape(N, T, C)
    out, cache = call(forward, x.copy(), pool, stride, padding, n=2)
    dout = rng.standard_normal(np.shape(out))
    got, notes = call_learner(fn, [dout, cache], ("dout", "cache"), n=1)
    ref_out, ref_cache = REFERENCE["maxpool1d_forward"](x, pool, stride, padding)
    ref = (REFERENCE["maxpool1d_backward"](dout, ref_cache),)
    wants = [ref] if ties else [ref, numeric(lambda: forward(x.copy(), pool, stride, padding)[0], [x], dout)]
    name = "dx (ties)" if ties else "dx"
    return Case((name,), got, ref, wants, tol, notes, x=x, dout=dout, ref_out=ref_out, ref_cache=ref_cache,
                pool=pool, stride=stride)


def _pool_variants(p):
    """What routing the gradient otherwise gives, from the reference's forward."""
    x, dout, ref_out, (argmax, T_pad, left, T) = p["x"], p["dout"], p["ref_out"], p["ref_cache"]
    pool, stride = p["pool"], p["stride"]
    N, _, C = x.shape
    T_out = ref_out.shape[1]
    n, c = np.arange(N)[:, None, None], np.arange(C)[None, None, :]
    start = (np.arange(T_out) * stride)[None, :, None]
    x_pad = np.pad(x, ((0, 0), (left, T_pad - T - left), (0, 0)), constant_values=-np.inf)
    out = {}
    one = np.zeros((N, T_pad, C))
    one[n, argmax, c] = dout  # fancy assignment: a repeated index keeps one value
    out["one window"] = one
    every, avg = np.zeros((N, T_pad, C)), np.zeros((N, T_pad, C))
    for t in range(T_out):
        win = x_pad[:, t * stride:t * stride + pool]
        every[:, t * stride:t * stride + pool] += (win == ref_out[:, t:t + 1]) * dout[:, t:t + 1]
        avg[:, t * stride:t * stride + pool] += dout[:, t:t + 1] / pool
    out["every tie"], out["average"] = every, avg
    local = np.zeros((N, T_pad, C))
    np.add.at(local, (n, argmax - start, c), dout)
    out["window index"] = local
    if stride > 1:
        no_stride = np.zeros((N, T_pad, C))
        np.add.at(no_stride, (n, np.minimum(argmax - start + np.arange(T_out)[None, :, None], T_pad - 1), c), dout)
        out["no stride"] = no_stride
    return {k: v[:, left:left + T] for k, v in out.items()}


_POOL_HINTS = {
    "one window": "overlapping windows (stride < pool): a frame that wins several windows collects all their "
                  "gradients; dx[n, idx, c] += dout with a repeated idx keeps only one, so use np.add.at or a loop",
    "every tie": "its gradient must go to one frame only, the first maximum (where np.argmax points, as in "
                 "the forward), not to every frame equal to the maximum",
    "average": "the gradient is spread over the whole window, as average pooling's: only the window's maximum "
               "moves the output, so all of dout goes to the argmax frame",
    "window index": "the argmax is an index within the window: add the window's first frame, t * stride, to "
                    "index x_pad",
    "no stride": "the window of output t starts at frame t * stride, not t: the stride is left out",
}


def check_maxpool1d_backward(fn, *, forward=None, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(dout, cache) -> dx``, the backward of max-pooling over time.

    ``forward(x, pool_size, stride, padding) -> out, cache`` (default scratchnet's
    ``maxpool1d_forward``); sizes ``N, T, C``, and ``pool``, ``stride``, ``padding``.  Two cases:
    distinct values (finite differences and the reference), and ties (the reference only: at a
    tie the gradient goes to the first maximum, where the forward's argmax points).  Explains:
    the gradient sent to every tied frame or spread over the window, overlapping windows
    overwriting instead of adding, the argmax read within the window, the stride left out, the
    padding not cropped.
    """
    d = sizes(dict(N=2, T=8, C=3, pool=3, stride=1, padding="same"), dims)
    forward = forward or REFERENCE["maxpool1d_forward"]
    title = (f"check_maxpool1d_backward: N={d['N']} T={d['T']} C={d['C']} pool {d['pool']} stride "
             f"{d['stride']} {d['padding']!r}, seed {seed}")

    def body():
        case = _pool_case(fn, forward, np.random.default_rng(seed), tol=tol, **d)
        ties = _pool_case(fn, forward, np.random.default_rng(seed), tol=tol, ties=True, **d)
        found, hints = {}, []
        for c in (case, ties):
            if not c.ok:
                name = c.names[0]
                hyps = [Hypothesis(_POOL_HINTS[k], {name: v}) for k, v in _pool_variants(c.parts).items()]
                f, h = explain(c, hyps, dims=d, axes=_POOL_AXES)
                found.update(f)
                hints += [x for x in h if x not in hints]
        if case.ok and not ties.ok and "dx (ties)" not in found:
            hints.append("fails only when a window has ties: its gradient must go to one frame only, the first "
                         "maximum (where np.argmax points, as in the forward)")
        elif case.ok and not ties.ok:
            hints = [f"fails only when a window has ties: {h.split(': ', 1)[1]}" for h in hints]
        case.names, case.errs = case.names + ties.names, {**case.errs, **ties.errs}
        case.tols, case.got, case.ref = {**case.tols, **ties.tols}, case.got + ties.got, case.ref + ties.ref
        case.notes = list(dict.fromkeys(case.notes + ties.notes))
        return finish(title, case, hints, verbose, found)
    return run(title, verbose, body)
