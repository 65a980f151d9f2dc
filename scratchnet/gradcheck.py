"""Finite-difference gradient checks: the proof that a hand-written backward pass is right.

Every backward pass in scratchnet is compared, in float64, with the centred difference

    df/dx[i] ~ (f(x + h e_i) - f(x - h e_i)) / 2h,

whose error is O(h^2) for a smooth f.  A layer with an array output ``out`` is checked
against an upstream gradient ``dout`` by differencing the scalar ``sum(out * dout)``, the
quantity whose gradient the backward pass computes.  The result is a single relative error
that a learner can read: about 1e-10 or smaller for a correct pass in float64, 1e-2 or more
for a wrong one.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((3, 4))
>>> dout = rng.standard_normal((3, 4))
>>> num = numerical_gradient(lambda: np.tanh(x), x, dout)
>>> rel_error(num, dout * (1 - np.tanh(x) ** 2)) < 1e-8
True
"""
import numpy as np

from .errors import ScratchnetError


def _difference(f, x, idx, dout, h):
    """Centred difference of f (scalar, or summed against ``dout``) along entry ``idx`` of x."""
    old = x[idx]
    x[idx] = old + h
    fp = _copy_output(f())
    x[idx] = old - h
    fm = _copy_output(f())
    x[idx] = old  # restore: the caller's array is unchanged afterwards
    if dout is None:
        return (float(fp) - float(fm)) / (2 * h)
    if isinstance(dout, (tuple, list)):  # several outputs, one upstream gradient each
        return sum(np.sum((p - m) * d) for p, m, d in zip(fp, fm, dout)) / (2 * h)
    return np.sum((fp - fm) * dout) / (2 * h)


def _copy_output(out):
    # copy: f may return a view of a buffer that the next call overwrites
    if isinstance(out, (tuple, list)):
        return tuple(np.array(o, dtype=np.float64) for o in out)
    return np.array(out, dtype=np.float64)


def numerical_gradient(f, x, dout=None, h=1e-5):
    """Centred finite-difference gradient of ``f`` with respect to the array ``x``.

    Parameters
    ----------
    f : callable
        Takes no arguments and reads ``x`` (it closes over it).  Returns a scalar when
        ``dout`` is None, otherwise an array shaped like ``dout`` (or a tuple of arrays when
        ``dout`` is a tuple, for a layer with several outputs).
    x : ndarray
        Perturbed IN PLACE, one entry at a time, and restored; use float64.
    dout : ndarray or tuple of ndarray, optional
        Upstream gradient of the output(s).
    h : float
        Step size.

    Returns
    -------
    grad : ndarray, shape like x

    Notes
    -----
    ``grad[i] = sum((f(x + h e_i) - f(x - h e_i)) * dout) / (2 h)``, with ``dout = 1`` for a
    scalar ``f``.  Costs two calls of ``f`` per entry of ``x``.
    """
    if not isinstance(x, np.ndarray) or not x.flags.writeable:
        raise ScratchnetError(
            f"numerical_gradient needs a writable ndarray to perturb, got {type(x).__name__}")
    grad = np.zeros(x.shape, dtype=np.float64)
    for idx in np.ndindex(*x.shape):
        grad[idx] = _difference(f, x, idx, dout, h)
    return grad.astype(x.dtype, copy=False)


def rel_error(a, b):
    """Relative error ``||a - b|| / (||a|| + ||b||)`` of two arrays, in [0, 1].

    Notes
    -----
    CS231n uses the elementwise ``max(|a - b| / max(|a| + |b|, 1e-8))``.  That figure is
    dominated by entries where both gradients are nearly zero: two values of 1e-12 that differ
    by round-off give an error near 1 although the gradient is right.  The norm-based ratio
    weighs each entry by its size, so it reads as "how many digits of the whole gradient
    agree".  The denominator is floored at 1e-300 so that two zero arrays give 0, not NaN.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ScratchnetError(f"rel_error of arrays with shapes {a.shape} and {b.shape}")
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


def check_gradients(loss_fn, params, grads, h=1e-5, max_checks=None, seed=0):
    """Compare analytic gradients with finite differences, tensor by tensor.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn() -> float``; reads the arrays in ``params``, which are perturbed in place.
    params : dict of str -> ndarray
        The tensors to check (float64, writable).
    grads : dict of str -> ndarray
        Analytic gradient of the loss for every name in ``params``, same shapes.
    h : float
        Finite-difference step.
    max_checks : int, optional
        Check only this many randomly chosen entries per tensor (for big tensors); the
        relative error is then that of those entries.  None checks every entry.
    seed : int
        Seeds the choice of entries.

    Returns
    -------
    errors : dict of str -> float
        :func:`rel_error` of the numerical and the analytic gradient for every name.

    Examples
    --------
    >>> w = np.array([1.0, -2.0, 3.0])
    >>> check_gradients(lambda: float(np.sum(w ** 3)), {"w": w}, {"w": 3 * w ** 2})["w"] < 1e-9
    True
    """
    if max_checks is not None and (int(max_checks) != max_checks or max_checks < 1):
        raise ScratchnetError(f"{max_checks=} must be a positive integer or None")
    rng = np.random.default_rng(seed)
    errors = {}
    for name, x in params.items():
        if name not in grads:
            raise ScratchnetError(f"no analytic gradient for parameter {name!r}")
        g = np.asarray(grads[name])
        if g.shape != x.shape:
            raise ScratchnetError(f"gradient of {name!r} has shape {g.shape}, parameter has {x.shape}")
        if max_checks is None or max_checks >= x.size:
            errors[name] = rel_error(numerical_gradient(loss_fn, x, h=h), g)
            continue
        flat = rng.choice(x.size, size=int(max_checks), replace=False)
        idxs = [np.unravel_index(i, x.shape) for i in flat]
        num = np.array([_difference(loss_fn, x, idx, None, h) for idx in idxs])
        errors[name] = rel_error(num, np.array([g[idx] for idx in idxs]))
    return errors


def format_table(rows, threshold=None):
    """Format ``(what, tensor, rel_error)`` rows as an aligned, readable table.

    With ``threshold`` a last column says PASS (error below it) or FAIL; a NaN error fails.

    Examples
    --------
    >>> print(format_table([("affine", "dw", 3.2e-11), ("rnn", "dWh", 1.1e-9)]))
    what    tensor  rel. error
    ------  ------  ----------
    affine  dw        3.20e-11
    rnn     dWh       1.10e-09
    >>> print(format_table([("rnn", "dWh", 1.1e-9), ("rnn", "db", 0.3)], threshold=1e-6))
    what  tensor  rel. error  < 1e-06
    ----  ------  ----------  -------
    rnn   dWh       1.10e-09  PASS
    rnn   db        3.00e-01  FAIL
    """
    header = ("what", "tensor", "rel. error")
    body = [(str(w), str(t), f"{float(e):.2e}") for w, t, e in rows]
    if threshold is not None:
        header += (f"< {threshold:.0e}",)
        body = [r + (verdict(float(e), threshold),) for r, (_, _, e) in zip(body, rows)]
    n = len(header)
    widths = [max(len(r[i]) for r in [header] + body) for i in range(n)]
    align = ["<", "<", ">", "<"]

    def line(cells):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()
    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in body])


def verdict(error, threshold):
    """``"PASS"`` when ``error < threshold`` (a NaN error fails), else ``"FAIL"``."""
    return "PASS" if error < threshold else "FAIL"


# --------------------------------------------------------------------------- the full table
#: a gradient of the table passes when its relative error is below this (float64, h = 1e-6):
#: a right gradient gives 1e-8 or less, a wrong one 1e-3 or more, so the gap is wide
THRESHOLD = 1e-6

#: the groups of rows, in the order printed; ``--only`` picks among them
GROUPS = ("affine", "activations", "context", "conv1d", "maxpool1d", "mask", "rnn", "gru",
          "lstm", "loss", "model")


def _layer_check(what, forward, inputs, grads, dout, h=1e-6):
    """Rows (what, tensor, rel_error) for a layer: ``forward()`` reads the arrays in inputs."""
    return [(what, f"d{k}", rel_error(numerical_gradient(forward, x, dout, h=h), grads[k]))
            for k, x in inputs.items()]


def _away(rng, shape):
    """Values with 0.1 <= |v| <= 1, either sign: inputs of a kinked function, far from its kink."""
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 1.0, shape)


def _affine_rows(rng):
    from .nn import affine
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    out, c = affine.affine_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = affine.affine_backward(dout, c)
    return _layer_check("affine", lambda: affine.affine_forward(x, w, b)[0], {"x": x, "w": w, "b": b},
                        {"x": dx, "w": dw, "b": db}, dout)


def _activations_rows(rng):
    from .nn import activations as A
    rows = []
    for name in ("relu", "tanh", "sigmoid"):
        fwd, bwd = getattr(A, f"{name}_forward"), getattr(A, f"{name}_backward")
        x = _away(rng, (3, 4, 5))
        out, c = fwd(x)
        dout = rng.standard_normal(out.shape)
        rows += _layer_check(name, lambda: fwd(x)[0], {"x": x}, {"x": bwd(dout, c)}, dout)
    return rows


def _context_rows(rng):
    from .nn import context
    x = rng.standard_normal((2, 5, 3))
    out, c = context.context_forward(x, 1)
    dout = rng.standard_normal(out.shape)
    return _layer_check("context (k=1)", lambda: context.context_forward(x, 1)[0], {"x": x},
                        {"x": context.context_backward(dout, c)}, dout)


def _conv1d_rows(rng):
    from .nn import conv1d
    x, w, b = rng.standard_normal((2, 6, 4)), rng.standard_normal((3, 4, 5)), rng.standard_normal(5)
    out, c = conv1d.conv1d_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv1d.conv1d_backward(dout, c)
    return _layer_check("conv1d (K=3)", lambda: conv1d.conv1d_forward(x, w, b)[0],
                        {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, dout)


def _maxpool1d_rows(rng):
    from .nn import maxpool1d
    x = (rng.permutation(2 * 7 * 3) * 0.1).reshape(2, 7, 3)  # no ties: gaps of 0.1 >> h
    out, c = maxpool1d.maxpool1d_forward(x, 3, 1, "same")
    dout = rng.standard_normal(out.shape)
    return _layer_check("maxpool1d (3, 1)", lambda: maxpool1d.maxpool1d_forward(x, 3, 1, "same")[0],
                        {"x": x}, {"x": maxpool1d.maxpool1d_backward(dout, c)}, dout)


def _mask_rows(rng):
    from .nn import mask
    a, X = _away(rng, (2, 3, 8)), rng.uniform(0.1, 1.0, (2, 3, 4))
    (y1, y2), c = mask.mask_forward(a, X)
    d1, d2 = rng.standard_normal(y1.shape), rng.standard_normal(y2.shape)
    da, dX = mask.mask_backward(d1, d2, c)
    return _layer_check("mask", lambda: mask.mask_forward(a, X)[0], {"a": a, "X": X},
                        {"a": da, "X": dX}, (d1, d2))


def _rnn_rows(rng):
    """A step, then BPTT over a sequence, read from the step and from the kernels."""
    from .nn import rnn as R
    N, T, D, H = 2, 5, 3, 4
    while True:
        x, h0 = rng.standard_normal((N, T, D)), rng.uniform(0.1, 1, (N, H))
        Wx, Wh, b = rng.standard_normal((D, H)), 0.4 * rng.standard_normal((H, H)), rng.standard_normal(H)
        hs, zs = h0, []
        for t in range(T):
            zs.append(x[:, t] @ Wx + hs @ Wh + b)
            hs = np.maximum(zs[-1], 0)
        if np.abs(np.array(zs)).min() > 1e-2:  # every pre-activation far from the ReLU kink
            break
    out, c = R.rnn_step_forward(x[:, 0], h0, Wx, Wh, b)
    dout = rng.standard_normal(out.shape)
    g = dict(zip(("x", "prev_h", "Wx", "Wh", "b"), R.rnn_step_backward(dout, c)))
    x0 = x[:, 0].copy()
    rows = _layer_check("rnn step", lambda: R.rnn_step_forward(x0, h0, Wx, Wh, b)[0],
                        {"x": x0, "prev_h": h0, "Wx": Wx, "Wh": Wh, "b": b}, g, dout)
    for label, fwd, bwd in (("rnn BPTT (steps)", R.rnn_forward, R.rnn_backward),
                            ("rnn BPTT (kernels)", R.rnn_forward_fast, R.rnn_backward_fast)):
        out, c = fwd(x, h0, Wx, Wh, b)
        dout = rng.standard_normal(out.shape)
        g = dict(zip(("x", "h0", "Wx", "Wh", "b"), bwd(dout, c)))
        rows += _layer_check(label, lambda: fwd(x, h0, Wx, Wh, b)[0],
                             {"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "b": b}, g, dout)
    return rows


def _gated_module(cell):
    """``scratchnet.nn.gru`` / ``.lstm`` if that file exists, else None (their rows are left out)."""
    import importlib
    try:
        return importlib.import_module(f"scratchnet.nn.{cell}")
    except ModuleNotFoundError:
        return None


def _gated_rows(rng, cell):
    """Step and sequence rows of a gated cell, every input and parameter (smooth: no kinks)."""
    module = _gated_module(cell)
    if module is None:
        return []
    N, T, D, H = 2, 4, 3, 4
    G = 3 if cell == "gru" else 4  # gates stacked along the last axis of the weights
    x = rng.standard_normal((N, T, D))
    states = {"h": rng.standard_normal((N, H))} if cell == "gru" else {
        "h": rng.standard_normal((N, H)), "c": rng.standard_normal((N, H))}
    weights = {"Wx": 0.5 * rng.standard_normal((D, G * H)), "Wh": 0.5 * rng.standard_normal((H, G * H))}
    weights.update({"bx": rng.standard_normal(G * H), "bh": rng.standard_normal(G * H)} if cell == "gru"
                   else {"b": rng.standard_normal(G * H)})
    step_f, step_b = getattr(module, f"{cell}_step_forward"), getattr(module, f"{cell}_step_backward")
    x0 = x[:, 0].copy()
    prev = {"prev_" + k: v for k, v in states.items()}
    args = dict(x=x0, **prev, **weights)
    outs = step_f(*args.values())
    n_out = len(outs) - 1  # (next_h, cache) or (next_h, next_c, cache)
    douts = tuple(rng.standard_normal(o.shape) for o in outs[:n_out])
    grads = dict(zip(args, step_b(*douts, outs[-1])))
    fwd = (lambda: step_f(*args.values())[0]) if n_out == 1 else (lambda: step_f(*args.values())[:n_out])
    rows = _layer_check(f"{cell} step", fwd, args, grads, douts[0] if n_out == 1 else douts)
    seq = dict(x=x, **{k + "0": v for k, v in states.items()}, **weights)
    for label, suffix in ((f"{cell} BPTT", ""), (f"{cell} BPTT (kernels)", "_fast")):
        seq_f = getattr(module, f"{cell}_forward{suffix}")
        seq_b = getattr(module, f"{cell}_backward{suffix}")
        out, cache = seq_f(*seq.values())
        dout = rng.standard_normal(out.shape)
        grads = dict(zip(seq, seq_b(dout, cache)))
        rows += _layer_check(label, lambda: seq_f(*seq.values())[0], seq, grads, dout)
    return rows


def _loss_rows(rng):
    """The objectives, each in its discriminative form."""
    import functools

    from . import losses
    y1, y2, t1, t2 = (rng.uniform(0.1, 1.0, (2, 3, 4)) for _ in range(4))
    rows = []
    for name in ("mse", "kl", "is"):
        fn = functools.partial(losses.get_loss(name), gamma=0.05)
        _, g1, g2 = fn(y1, y2, t1, t2)
        rows += [(f"loss {name} (gamma 0.05)", f"d{k}",
                  rel_error(numerical_gradient(lambda: fn(y1, y2, t1, t2)[0], v, h=1e-6), g))
                 for k, v, g in (("y1", y1, g1), ("y2", y2, g2))]
    return rows


def _model_rows_all(seed):
    """Every model end to end, every parameter tensor and the input, on both backends: the
    reference rows run the readable pairs, so a bug planted in one of them shows here."""
    from .models import ARCHS
    from .models.config import CELLS
    rows = []
    for backend in ("reference", "fast"):
        rows += model_rows(ARCHS, backend=backend, seed=seed)
        rows += model_rows(["drnn-2"], backend=backend, seed=seed, bidirectional=True)
        for cell in CELLS:
            if cell != "relu":
                rows += model_rows(["drnn-2"], backend=backend, seed=seed, cell=cell)
    return rows


def gradient_table(seed=0, *, only=None):
    """Check every layer, objective and model of scratchnet; returns (what, tensor, error) rows.

    Float64 throughout, step h = 1e-6.  Inputs of kinked functions are drawn away from the
    kinks: ReLU inputs and mask logits have |value| >= 0.1, max-pool inputs are a permutation
    of values 0.1 apart, and models are checked at inputs whose :meth:`Model.kink_margin` is
    above 1e-3.  This is what ``python -m scratchnet.gradcheck`` prints.

    Parameters
    ----------
    seed : int
        Seeds the inputs; each group draws from its own stream, so ``only`` changes no row.
    only : iterable of str, optional
        Groups of :data:`GROUPS` to check (``["rnn", "mask"]``); None checks all.  The gated
        cells' groups give no rows until ``scratchnet/nn/gru.py`` / ``lstm.py`` exist.
    """
    only = GROUPS if only is None else tuple(only)
    unknown = [g for g in only if g not in GROUPS]
    if unknown:
        raise ScratchnetError(f"unknown group(s) {', '.join(map(repr, unknown))}: "
                              f"choose among {', '.join(GROUPS)}")
    makers = {"affine": _affine_rows, "activations": _activations_rows, "context": _context_rows,
              "conv1d": _conv1d_rows, "maxpool1d": _maxpool1d_rows, "mask": _mask_rows,
              "rnn": _rnn_rows, "gru": lambda r: _gated_rows(r, "gru"),
              "lstm": lambda r: _gated_rows(r, "lstm"), "loss": _loss_rows,
              "model": lambda r: _model_rows_all(seed)}
    rows = []
    for i, group in enumerate(GROUPS):
        if group in only:
            rows += makers[group](np.random.default_rng([seed, i]))
    return rows


def model_rows(archs, *, backend="reference", seed=0, **options):
    """Rows (what, tensor, rel_error) of whole models, every parameter and the input X.

    ``backend="reference"`` runs every layer on its readable pair, so a bug planted in one of
    them (``scratchnet.nn.rnn.rnn_step_backward``, say) shows in these rows.  ``options`` are
    model options (``cell="gru"``, ``bidirectional=True``) given to every architecture.
    """
    import functools

    from . import losses
    from .models import Model, make_config
    from .nn import use_backend
    rng = np.random.default_rng(seed + 1)
    rows = []
    small = {"hybrid": dict(conv_filters=[5, 4, 3], dense=[6, 4, 5, 4], rnn=[4, 3, 4])}
    for arch in archs:
        model = Model(make_config(arch=arch, n_bins=6, dtype="float64", seed=seed,
                                  **small.get(arch, dict(hidden=5)), **options))
        for k in model.params:
            if "/b" in k:
                model.params[k][...] = rng.uniform(-0.1, 0.1, model.params[k].shape)
        for _ in range(200):
            X = rng.uniform(0.2, 1.5, (2, 4, 6))
            if model.kink_margin(X) > 1e-3:
                break
        t1, t2 = rng.uniform(0.1, 1, X.shape), rng.uniform(0.1, 1, X.shape)
        fn = functools.partial(losses.mse_loss, gamma=0.05)
        with use_backend(backend):
            (y1, y2), cache = model.forward(X)
            _, d1, d2 = fn(y1, y2, t1, t2)
            grads, dX = model.backward(d1, d2, cache)
            errors = check_gradients(lambda: fn(*model.forward(X)[0], t1, t2)[0],
                                     dict(model.params, X=X), dict(grads, X=dX), h=1e-6)
        label = " ".join([arch] + [k if v is True else f"{k}={v}" for k, v in options.items()])
        rows += [(f"model {label} ({backend})", k, e) for k, e in errors.items()]
    return rows


def _parse_args(argv):
    import argparse
    parser = argparse.ArgumentParser(
        prog="python -m scratchnet.gradcheck",
        description="Check every hand-written gradient of scratchnet against centred finite "
                    "differences (float64, h = 1e-6) and print one row per gradient with its "
                    f"relative error and PASS/FAIL. A gradient passes when its error is below "
                    f"--threshold (default {THRESHOLD:.0e}). Exit status 0 when all pass, 1 when "
                    "any fails, 2 for a bad option.",
        epilog="groups: " + ", ".join(GROUPS) + " (gru and lstm give rows once scratchnet/nn/gru.py "
               "and lstm.py exist). Example: python -m scratchnet.gradcheck --only rnn,mask")
    parser.add_argument("--only", metavar="GROUPS", default=None,
                        help="comma-separated groups to check, e.g. rnn,mask (default: all)")
    parser.add_argument("--threshold", type=float, default=THRESHOLD,
                        help=f"largest relative error that passes (default {THRESHOLD:.0e})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    args = parser.parse_args(argv)
    if args.only is not None:
        args.only = [g.strip() for g in args.only.split(",") if g.strip()]
        unknown = [g for g in args.only if g not in GROUPS]
        if unknown or not args.only:
            parser.error(f"--only {','.join(unknown) or '(empty)'}: choose among {', '.join(GROUPS)}")
    if not args.threshold > 0:
        parser.error(f"--threshold {args.threshold} must be a positive number")
    return args


def main(argv=None):
    """``python -m scratchnet.gradcheck [--only rnn,mask] [--threshold 1e-6]``; returns the exit status."""
    args = _parse_args(argv)
    rows = gradient_table(args.seed, only=args.only)
    print(f"relative error ||num - analytic|| / (||num|| + ||analytic||), centred differences in "
          f"float64 (h = 1e-6); PASS below {args.threshold:.0e}\n")
    print(format_table(rows, threshold=args.threshold))
    failed = [r for r in rows if verdict(r[2], args.threshold) == "FAIL"]
    worst = max(rows, key=lambda r: r[2] if np.isfinite(r[2]) else np.inf)
    print(f"\n{len(rows)} gradients checked, {len(rows) - len(failed)} PASS, {len(failed)} FAIL "
          f"(threshold {args.threshold:.0e}); worst: {worst[0]} {worst[1]} {worst[2]:.2e}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
