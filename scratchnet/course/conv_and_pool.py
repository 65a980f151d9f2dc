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
from ..nn import conv2d as _conv2d


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


# --------------------------------------------------------------------------- conv2d
_INPUT_GRAD = _conv2d.conv2d_input_grad  # dx_pad from dout: the reference's own part
_CONV2D_AXES = {"dx": ("batch", "time", "frequency", "input channel"),
                "dw": ("kernel row", "kernel column", "input channel", "output channel"),
                "db": [("output channel",), ("batch", "time", "frequency", "output channel")],
                "db/full": ("batch", "time", "frequency", "output channel")}
_FLIP2_HINT = ("dx is a full correlation of the stride-dilated dout with the kernel flipped in both axes, "
               "dx_pad[s, r] = sum_ij dout[s-i, r-j] w[i, j]^T -- pad dout with KH-1 rows and KW-1 columns "
               "of zeros on both sides, correlate with w[::-1, ::-1], then drop the padding: "
               "dx = dx_pad[:, ph:ph + H, pw:pw + W]")


def _conv2d_case(fn, forward, rng, N, H, W, Cin, Cout, KH, KW, stride, padding, tol):
    x, w, b = rng.standard_normal((N, H, W, Cin)), rng.standard_normal((KH, KW, Cin, Cout)), rng.standard_normal(Cout)
    out, cache = call(forward, *snapshot([x, w, b]), stride, padding, n=2)
    dout = rng.standard_normal(np.shape(out))
    got, notes = call_learner(fn, [dout, cache], ("dout", "cache"), n=3)
    ref = REFERENCE["conv2d_backward"](dout, REFERENCE["conv2d_forward"](x, w, b, stride, padding)[1])
    num = numeric(lambda: forward(x.copy(), w.copy(), b.copy(), stride, padding)[0], [x, w, b], dout)
    (sh, sw), (ph, pw) = _conv2d.conv2d_geometry(w.shape, stride, padding)
    return Case(_CONV_NAMES, got, ref, [num, ref], tol, notes, x=x, dout=dout, w=w,
                stride=(sh, sw), padding=(ph, pw))


def _scatter(dout, w, step, size_pad):
    """dx_pad with each output pixel's ``dout w[i, j]^T`` added at (h*step_h + i, w*step_w + j)."""
    N, Ho, Wo, _ = dout.shape
    KH, KW, Cin, _ = w.shape
    (a, c), (Hp, Wp) = step, size_pad
    out = np.zeros((N, max(Hp, (Ho - 1) * a + KH), max(Wp, (Wo - 1) * c + KW), Cin))
    for i in range(KH):
        for j in range(KW):
            out[:, i:i + (Ho - 1) * a + 1:a, j:j + (Wo - 1) * c + 1:c] += dout @ w[i, j].T
    return out[:, :Hp, :Wp]


def _conv2d_diagnosis(x, dout, w, stride, padding):
    (sh, sw), (ph, pw) = stride, padding
    KH, KW = w.shape[:2]
    H, W = x.shape[1:3]
    Hp, Wp = H + 2 * ph, W + 2 * pw
    crop = lambda a: a[:, ph:ph + H, pw:pw + W]  # noqa: E731
    dx_with = lambda v: _INPUT_GRAD(dout, v, (H, W), stride, padding)  # noqa: E731 -- the correlation with v[::-1, ::-1]
    full = _INPUT_GRAD(dout, w, (Hp, Wp), stride, (0, 0))  # dx_pad, N,Hp,Wp,Cin
    hyps = [Hypothesis("dx is the correlation with the kernel as it is: the kernel is not flipped -- flip it in "
                       "both axes (w[::-1, ::-1]) -- " + _FLIP2_HINT, {"dx": dx_with(w[::-1, ::-1])})]
    if KH > 1:
        hyps.append(Hypothesis("dx is the correlation with the kernel flipped in one axis only, time (w[::-1]): "
                               "flip it in both axes (w[::-1, ::-1]) -- " + _FLIP2_HINT, {"dx": dx_with(w[:, ::-1])}))
    if KW > 1:
        hyps.append(Hypothesis("dx is the correlation with the kernel flipped in one axis only, frequency "
                               "(w[:, ::-1]): flip it in both axes (w[::-1, ::-1]) -- " + _FLIP2_HINT,
                               {"dx": dx_with(w[::-1])}))
    hyps.append(Hypothesis(f"dx still holds the padding: it is dx_pad, of shape {full.shape}; the forward padded x "
                           f"by {(ph, pw)}, so dx = dx_pad[:, {ph}:{ph} + H, {pw}:{pw} + W]", {"dx": full}))
    for a in range(Hp - H + 1):
        for c in range(Wp - W + 1):
            if (a, c) != (ph, pw):
                hyps.append(Hypothesis(f"dx is cropped from the padded gradient at ({a}, {c}): the forward padded x "
                                       f"by {(ph, pw)} on each side, so dx = dx_pad[:, {ph}:{ph} + H, {pw}:{pw} + W]",
                                       {"dx": full[:, a:a + H, c:c + W]}))
    left_out = {(1, 1): "in time" if sw == 1 else "in frequency" if sh == 1 else "in both axes"}
    if sh > 1 and sw > 1:
        left_out.update({(1, sw): "in time", (sh, 1): "in frequency"})
    for step, words in left_out.items():
        if (sh, sw) != (1, 1):
            hyps.append(Hypothesis(f"the stride {stride} is left out of dx ({words}): output pixel (h, w) read the "
                                   f"window at (h*sh, w*sw), so its gradient dout[h, w] w[i, j]^T goes to dx_pad[h*sh + i, "
                                   f"w*sw + j] -- dilate dout by the stride (zeros between) before the full correlation",
                                   {"dx": crop(_scatter(dout, w, step, (Hp, Wp)))}))
    x_pad = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(x_pad, (KH, KW), axis=(1, 2))  # N,.,.,Cin,KH,KW
    Ho, Wo = dout.shape[1:3]
    dw = np.einsum("nhwcij,nhwo->ijco", win[:, ::sh, ::sw][:, :Ho, :Wo], dout)
    if KH > 1 or KW > 1:
        hyps.append(Hypothesis("dw's taps are flipped in both axes: dw[i, j] = sum x_pad[h*sh + i, w*sw + j]^T "
                               "dout[h, w], tap (i, j) meets the pixel it multiplied in the forward",
                               {"dw": dw[::-1, ::-1]}))
    if KH == KW:
        hyps.append(Hypothesis("dw's kernel axes are swapped (dw.transpose(1, 0, 2, 3)): dw[i, j] is the gradient of "
                               "w[i, j], row i in time and column j in frequency", {"dw": dw.transpose(1, 0, 2, 3)}))
    hyps.append(Hypothesis("dw's channel axes are swapped: dw[i, j] = window^T dout is (Cin, Cout), the shape of "
                           "w[i, j] -- not dout^T window", {"dw": dw.transpose(0, 1, 3, 2)}))
    if (sh, sw) != (1, 1):
        dw_ns = np.einsum("nhwcij,nhwo->ijco", win[:, :Ho, :Wo], dout)
        hyps.append(Hypothesis(f"the stride {stride} is left out of dw: output pixel (h, w) read the window at "
                               f"(h*sh, w*sw) of x_pad, not at (h, w)", {"dw": dw_ns}))
    taps = [(f"tap ({i}, {j})", dx_with(np.where(_one_tap(w, i, j), w, 0))) for i in range(KH) for j in range(KW)]
    terms = {"dx": Terms(taps, formula="each tap's dout[s - i, r - j] w[i, j]^T")}
    return hyps, terms


def _one_tap(w, i, j):
    mask = np.zeros(w.shape, bool)
    mask[i, j] = True
    return mask


def check_conv2d_backward(fn, *, forward=None, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(dout, cache) -> dx, dw, db``, the backward of a 2-D convolution, channels last.

    ``forward(x, w, b, stride, padding) -> out, cache`` (default scratchnet's ``conv2d_forward``:
    x (N, H, W, Cin), w (KH, KW, Cin, Cout)); sizes ``N, H, W, Cin, Cout, KH, KW`` and ``stride``,
    ``padding`` (as ``conv2d_forward`` takes them).  Explains: dx correlated with the kernel not
    flipped, or flipped in one axis only, still padded or cropped at the wrong offset, with the
    stride left out, or with a tap missing or doubled; dw with its taps flipped, its kernel or
    channel axes swapped, or the stride left out; db not summed over N, H, W (or a mean); a
    kernel of one tap passing while a larger one fails.
    """
    d = sizes(dict(N=2, H=6, W=5, Cin=3, Cout=4, KH=3, KW=3, stride=1, padding=1), dims)
    forward = forward or REFERENCE["conv2d_forward"]
    title = (f"check_conv2d_backward: N={d['N']} H={d['H']} W={d['W']} Cin={d['Cin']} Cout={d['Cout']} "
             f"KH={d['KH']} KW={d['KW']} stride {d['stride']} padding {d['padding']!r}, seed {seed}")

    def body():
        case = _conv2d_case(fn, forward, np.random.default_rng(seed), tol=tol, **d)
        found, hints = {}, []
        if not case.ok:
            p = case.parts
            hyps, terms = _conv2d_diagnosis(p["x"], p["dout"], p["w"], p["stride"], p["padding"])
            Ho, Wo = p["dout"].shape[1:3]
            named = {k: d[k] for k in ("N", "H", "W", "Cin", "Cout", "KH", "KW")}
            if (Ho, Wo) != (d["H"], d["W"]):
                named.update({"H'": Ho, "W'": Wo})
            pixels = d["N"] * Ho * Wo
            mean = {1 / pixels: f"a mean over the N*H'*W' = {pixels} output pixels, where db sums dout over them"}
            found, hints = explain(case, hyps, terms, dims=named, axes=_CONV2D_AXES, constants={"db": mean},
                                   unreduced={"db": (p["dout"], "dout", (0, 1, 2))})
            if "dx" in set(case.failing) - set(found):
                one_tap = (d["KH"], d["KW"]) != (1, 1) and _conv2d_case(
                    fn, forward, np.random.default_rng(seed), tol=tol, **dict(d, KH=1, KW=1, padding=0)).ok
                dw_right = "dw" not in case.failing
                if dw_right or one_tap:
                    hints.append(("dx is wrong but dw is right: " if dw_right else "a kernel of one tap passes: ")
                                 + _FLIP2_HINT)
        return finish(title, case, hints, verbose, found)
    return run(title, verbose, body)
