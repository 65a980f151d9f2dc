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


def format_table(rows):
    """Format ``(what, tensor, rel_error)`` rows as an aligned, readable table.

    Examples
    --------
    >>> print(format_table([("affine", "dw", 3.2e-11), ("rnn", "dWh", 1.1e-9)]))
    what    tensor  rel. error
    ------  ------  ----------
    affine  dw        3.20e-11
    rnn     dWh       1.10e-09
    """
    header = ("what", "tensor", "rel. error")
    body = [(str(w), str(t), f"{float(e):.2e}") for w, t, e in rows]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(3)]
    lines = [f"{header[0]:<{widths[0]}}  {header[1]:<{widths[1]}}  {header[2]:>{widths[2]}}",
             "  ".join("-" * w for w in widths)]
    lines += [f"{w:<{widths[0]}}  {t:<{widths[1]}}  {e:>{widths[2]}}" for w, t, e in body]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the full table
def _layer_check(what, forward, inputs, grads, dout, h=1e-6):
    """Rows (what, tensor, rel_error) for a layer: ``forward()`` reads the arrays in inputs."""
    return [(what, f"d{k}", rel_error(numerical_gradient(forward, x, dout, h=h), grads[k]))
            for k, x in inputs.items()]


def gradient_table(seed=0):
    """Check every layer, objective and model of scratchnet; returns (what, tensor, error) rows.

    Float64 throughout, step h = 1e-6.  Inputs of kinked functions are drawn away from the
    kinks: ReLU inputs and mask logits have |value| >= 0.1, max-pool inputs are a permutation
    of values 0.1 apart, and models are checked at inputs whose :meth:`Model.kink_margin` is
    above 1e-3.  This is what ``python -m scratchnet.gradcheck`` prints.
    """
    import functools

    from . import losses
    from .models import ARCHS
    from .nn import activations as A
    from .nn import affine, context, conv1d, maxpool1d, mask
    from .nn import rnn as R

    rng = np.random.default_rng(seed)
    away = lambda shape: rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 1.0, shape)  # noqa: E731
    rows = []
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    out, c = affine.affine_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = affine.affine_backward(dout, c)
    rows += _layer_check("affine", lambda: affine.affine_forward(x, w, b)[0], {"x": x, "w": w, "b": b},
                         {"x": dx, "w": dw, "b": db}, dout)
    for name in ("relu", "tanh", "sigmoid"):
        fwd, bwd = getattr(A, f"{name}_forward"), getattr(A, f"{name}_backward")
        x = away((3, 4, 5))
        out, c = fwd(x)
        dout = rng.standard_normal(out.shape)
        rows += _layer_check(name, lambda: fwd(x)[0], {"x": x}, {"x": bwd(dout, c)}, dout)
    x = rng.standard_normal((2, 5, 3))
    out, c = context.context_forward(x, 1)
    dout = rng.standard_normal(out.shape)
    rows += _layer_check("context (k=1)", lambda: context.context_forward(x, 1)[0], {"x": x},
                         {"x": context.context_backward(dout, c)}, dout)
    x, w, b = rng.standard_normal((2, 6, 4)), rng.standard_normal((3, 4, 5)), rng.standard_normal(5)
    out, c = conv1d.conv1d_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv1d.conv1d_backward(dout, c)
    rows += _layer_check("conv1d (K=3)", lambda: conv1d.conv1d_forward(x, w, b)[0],
                         {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, dout)
    x = (rng.permutation(2 * 7 * 3) * 0.1).reshape(2, 7, 3)  # no ties: gaps of 0.1 >> h
    out, c = maxpool1d.maxpool1d_forward(x, 3, 1, "same")
    dout = rng.standard_normal(out.shape)
    rows += _layer_check("maxpool1d (3, 1)", lambda: maxpool1d.maxpool1d_forward(x, 3, 1, "same")[0],
                         {"x": x}, {"x": maxpool1d.maxpool1d_backward(dout, c)}, dout)
    a, X = away((2, 3, 8)), rng.uniform(0.1, 1.0, (2, 3, 4))
    (y1, y2), c = mask.mask_forward(a, X)
    d1, d2 = rng.standard_normal(y1.shape), rng.standard_normal(y2.shape)
    da, dX = mask.mask_backward(d1, d2, c)
    rows += _layer_check("mask", lambda: mask.mask_forward(a, X)[0], {"a": a, "X": X},
                         {"a": da, "X": dX}, (d1, d2))
    # recurrent: a step, then BPTT over a sequence, read from the step and from the kernels
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
    rows += _layer_check("rnn step", lambda: R.rnn_step_forward(x0, h0, Wx, Wh, b)[0],
                         {"x": x0, "prev_h": h0, "Wx": Wx, "Wh": Wh, "b": b}, g, dout)
    for label, fwd, bwd in (("rnn BPTT (steps)", R.rnn_forward, R.rnn_backward),
                            ("rnn BPTT (kernels)", R.rnn_forward_fast, R.rnn_backward_fast)):
        out, c = fwd(x, h0, Wx, Wh, b)
        dout = rng.standard_normal(out.shape)
        g = dict(zip(("x", "h0", "Wx", "Wh", "b"), bwd(dout, c)))
        rows += _layer_check(label, lambda: fwd(x, h0, Wx, Wh, b)[0],
                             {"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "b": b}, g, dout)
    # objectives, each in its discriminative form
    y1, y2, t1, t2 = (rng.uniform(0.1, 1.0, (2, 3, 4)) for _ in range(4))
    for name in ("mse", "kl", "is"):
        fn = functools.partial(losses.get_loss(name), gamma=0.05)
        _, g1, g2 = fn(y1, y2, t1, t2)
        rows += [(f"loss {name} (gamma 0.05)", f"d{k}",
                  rel_error(numerical_gradient(lambda: fn(y1, y2, t1, t2)[0], v, h=1e-6), g))
                 for k, v, g in (("y1", y1, g1), ("y2", y2, g2))]
    # every model end to end, every parameter tensor and the input, on both backends: the
    # reference rows run the readable pairs, so a bug planted in one of them shows here
    for backend in ("reference", "fast"):
        rows += model_rows(ARCHS, backend=backend, seed=seed)
        rows += model_rows(["drnn-2"], backend=backend, seed=seed, bidirectional=True)
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


def main():
    rows = gradient_table()
    print(format_table(rows))
    worst = max(rows, key=lambda r: r[2])
    print(f"\n{len(rows)} gradients checked; worst: {worst[0]} {worst[1]} {worst[2]:.2e}")
    return 0 if worst[2] < 1e-6 else 1


if __name__ == "__main__":
    raise SystemExit(main())
