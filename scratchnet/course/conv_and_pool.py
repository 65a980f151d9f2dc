"""Checkers of the 1-D convolution's and the max-pooling's backward passes."""
import numpy as np

from ..gradcheck import rel_error
from ._check import (REFERENCE, TOL, call, errors, finish, numeric, passes, run, shape_value_hints,
                     sizes)


# --------------------------------------------------------------------------- conv1d
_CONV_NAMES = ("dx", "dw", "db")


def _conv_errors(fn, forward, rng, N, T, Cin, Cout, K):
    x, w, b = rng.standard_normal((N, T, Cin)), rng.standard_normal((K, Cin, Cout)), rng.standard_normal(Cout)
    out, cache = call(forward, x, w, b, n=2)
    dout = rng.standard_normal(np.shape(out))
    got = call(fn, dout, cache, n=3)
    ref = REFERENCE["conv1d_backward"](dout, REFERENCE["conv1d_forward"](x, w, b)[1])
    num = numeric(lambda: forward(x, w, b)[0], [x, w, b], dout)
    # the classic bug: dx as a full correlation with the kernel *not* flipped
    left = (K - 1) // 2
    dout_pad = np.pad(dout, ((0, 0), (K - 1, K - 1), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(dout_pad, K, axis=1)  # N,T+K-1,Cout,K
    unflipped = np.einsum("nsoj,jco->nsc", win, w)[:, left:left + T]
    return errors(_CONV_NAMES, got, num, ref), got, ref, unflipped


def check_conv1d_backward(fn, *, forward=None, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(dout, cache) -> dx, dw, db``, the backward of a 1-D "same" convolution.

    ``forward(x, w, b) -> out, cache`` (default scratchnet's ``conv1d_forward``); sizes ``N, T,
    Cin, Cout, K``.  Recognises: dx wrong while dw is right (the flipped kernel, the full
    correlation), a kernel of one tap passing while K > 1 fails.
    """
    d = sizes(dict(N=2, T=7, Cin=3, Cout=4, K=3), dims)
    forward = forward or REFERENCE["conv1d_forward"]
    title = f"check_conv1d_backward: N={d['N']} T={d['T']} Cin={d['Cin']} Cout={d['Cout']} K={d['K']}, seed {seed}"

    def body():
        errs, got, ref, unflipped = _conv_errors(fn, forward, np.random.default_rng(seed), **d)
        hints = []
        if not passes(errs, tol):
            if np.shape(got[0]) == unflipped.shape and rel_error(got[0], unflipped) < 1e-6:
                hints.append("dx is the correlation with the kernel as it is: flip it in time (w[::-1])")
            one_tap = d["K"] > 1 and passes(_conv_errors(fn, forward, np.random.default_rng(seed),
                                                          **dict(d, K=1))[0], tol)
            dw_right = not errs["dx"] < tol and errs["dw"] < tol
            if dw_right or one_tap:
                hints.append(("dx is wrong but dw is right: " if dw_right else "a kernel of one tap passes: ")
                             + "dx is a full correlation of dout with the kernel flipped in time, "
                             "dx_pad[s] = sum_k dout[s-k] w[k]^T -- pad dout with K-1 zero frames on both "
                             "sides, correlate with w[::-1], then drop the (K-1)//2 padded frames on the left")
            hints = hints or shape_value_hints(_CONV_NAMES, got, ref)
        return finish(title, errs, tol, hints, verbose)
    return run(title, verbose, body)


# --------------------------------------------------------------------------- max-pooling
def _pool_errors(fn, forward, rng, N, T, C, pool, stride, padding, ties=False):
    """No ties: a permutation of values 0.1 apart.  ``ties``: small integers, many equal maxima."""
    x = rng.integers(0, 3, (N, T, C)).astype(float) if ties else (rng.permutation(N * T * C) * 0.1).reshape(N, T, C)
    out, cache = call(forward, x, pool, stride, padding, n=2)
    dout = rng.standard_normal(np.shape(out))
    got = call(fn, dout, cache, n=1)
    ref_out, ref_cache = REFERENCE["maxpool1d_forward"](x, pool, stride, padding)
    ref = (REFERENCE["maxpool1d_backward"](dout, ref_cache),)
    wants = [ref] if ties else [ref, numeric(lambda: forward(x, pool, stride, padding)[0], [x], dout)]
    name = "dx (ties)" if ties else "dx"
    # what the classic bugs give: every tied frame gets the gradient; one window per frame only
    argmax, T_pad, left, _ = ref_cache
    n, c = np.arange(N)[:, None, None], np.arange(C)[None, None, :]
    one_window = np.zeros((N, T_pad, C))
    one_window[n, argmax, c] = dout  # fancy assignment: a repeated index keeps one value
    x_pad = np.pad(x, ((0, 0), (left, T_pad - T - left), (0, 0)), constant_values=-np.inf)
    every_tie = np.zeros((N, T_pad, C))
    for t in range(ref_out.shape[1]):
        win = x_pad[:, t * stride:t * stride + pool]
        every_tie[:, t * stride:t * stride + pool] += (win == ref_out[:, t:t + 1]) * dout[:, t:t + 1]
    variants = {"one window": one_window[:, left:left + T], "every tie": every_tie[:, left:left + T]}
    return errors((name,), got, *wants), got, ref, variants


def check_maxpool1d_backward(fn, *, forward=None, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(dout, cache) -> dx``, the backward of max-pooling over time.

    ``forward(x, pool_size, stride, padding) -> out, cache`` (default scratchnet's
    ``maxpool1d_forward``); sizes ``N, T, C``, and ``pool``, ``stride``, ``padding``.  Two cases:
    distinct values (finite differences and the reference), and ties (the reference only: at a
    tie the gradient goes to the first maximum, where the forward's argmax points).  Recognises:
    the gradient sent to every tied frame, overlapping windows overwriting instead of adding.
    """
    d = sizes(dict(N=2, T=8, C=3, pool=3, stride=1, padding="same"), dims)
    forward = forward or REFERENCE["maxpool1d_forward"]
    title = (f"check_maxpool1d_backward: N={d['N']} T={d['T']} C={d['C']} pool {d['pool']} stride "
             f"{d['stride']} {d['padding']!r}, seed {seed}")

    def body():
        errs, got, ref, variants = _pool_errors(fn, forward, np.random.default_rng(seed), **d)
        errs_t, got_t, _, variants_t = _pool_errors(fn, forward, np.random.default_rng(seed), ties=True, **d)
        hints = []
        if not passes(errs, tol) and passes(errors(("dx",), got, (variants["one window"],)), 1e-6):
            hints.append("overlapping windows (stride < pool): a frame that wins several windows collects "
                         "all their gradients; dx[n, idx, c] += dout with a repeated idx keeps only one, "
                         "so use np.add.at or a loop")
        if passes(errs, tol) and not passes(errs_t, tol):
            hints.append("fails only when a window has ties: its gradient must go to one frame only, the "
                         "first maximum (where np.argmax points, as in the forward)"
                         + (", not to every frame equal to the maximum"
                            if passes(errors(("dx",), got_t, (variants_t["every tie"],)), 1e-6) else ""))
        if not passes(errs, tol) and not hints:
            hints = shape_value_hints(("dx",), got, ref)
        return finish(title, {**errs, **errs_t}, tol, hints, verbose)
    return run(title, verbose, body)
