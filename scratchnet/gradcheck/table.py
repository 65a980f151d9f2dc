"""The gradient table: every layer, objective and model of scratchnet against finite differences.

Each group of rows (:data:`GROUPS`) is one function of its own random stream, so that checking
some groups (``--only rnn,mask``) gives the same rows as checking all.  A gradient passes when
its relative error is below :data:`THRESHOLD`.
"""
import numpy as np

from ..errors import ScratchnetError
from .check import check_gradients, numerical_gradient, rel_error

#: a right gradient gives 1e-8 or less, a wrong one 1e-3 or more, so the gap is wide
THRESHOLD = 1e-6

#: the groups of rows, in the order printed; ``--only`` picks among them
#: (a group's random stream is its index here, so new groups go at the end: the rows of the
#: others stay as they were)
GROUPS = ("affine", "activations", "context", "conv1d", "maxpool1d", "mask", "rnn", "gru",
          "lstm", "loss", "model", "level", "conv2d", "conv2d_transpose", "maxpool2d",
          "norm2d")


def _layer_check(what, forward, inputs, grads, dout, h=1e-6):
    """Rows (what, tensor, rel_error) for a layer: ``forward()`` reads the arrays in inputs."""
    return [(what, f"d{k}", rel_error(numerical_gradient(forward, x, dout, h=h), grads[k]))
            for k, x in inputs.items()]


def _away(rng, shape):
    """Values with 0.1 <= |v| <= 1, either sign: inputs of a kinked function, far from its kink."""
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 1.0, shape)


def _affine_rows(rng):
    from ..nn import affine
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    out, c = affine.affine_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = affine.affine_backward(dout, c)
    return _layer_check("affine", lambda: affine.affine_forward(x, w, b)[0], {"x": x, "w": w, "b": b},
                        {"x": dx, "w": dw, "b": db}, dout)


def _activations_rows(rng):
    from ..nn import activations as A
    rows = []
    for name in ("relu", "tanh", "sigmoid"):
        fwd, bwd = getattr(A, f"{name}_forward"), getattr(A, f"{name}_backward")
        x = _away(rng, (3, 4, 5))
        out, c = fwd(x)
        dout = rng.standard_normal(out.shape)
        rows += _layer_check(name, lambda: fwd(x)[0], {"x": x}, {"x": bwd(dout, c)}, dout)
    return rows


def _context_rows(rng):
    from ..nn import context
    x = rng.standard_normal((2, 5, 3))
    out, c = context.context_forward(x, 1)
    dout = rng.standard_normal(out.shape)
    return _layer_check("context (k=1)", lambda: context.context_forward(x, 1)[0], {"x": x},
                        {"x": context.context_backward(dout, c)}, dout)


def _conv1d_rows(rng):
    from ..nn import conv1d
    x, w, b = rng.standard_normal((2, 6, 4)), rng.standard_normal((3, 4, 5)), rng.standard_normal(5)
    out, c = conv1d.conv1d_forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = conv1d.conv1d_backward(dout, c)
    return _layer_check("conv1d (K=3)", lambda: conv1d.conv1d_forward(x, w, b)[0],
                        {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, dout)


def _conv2d_rows(rng):
    """The readable and the fast pair, stride 1 with "same" padding and stride 2 with padding 1."""
    from ..nn import conv2d
    x, w, b = rng.standard_normal((2, 5, 6, 3)), rng.standard_normal((3, 3, 3, 4)), rng.standard_normal(4)
    rows = []
    for label, fwd, bwd in (("conv2d", conv2d.conv2d_forward, conv2d.conv2d_backward),
                            ("conv2d (fast)", conv2d.conv2d_forward_fast, conv2d.conv2d_backward_fast)):
        for stride, padding in ((1, "same"), (2, 1)):
            out, c = fwd(x, w, b, stride, padding)
            dout = rng.standard_normal(out.shape)
            dx, dw, db = bwd(dout, c)
            rows += _layer_check(f"{label} (3x3, s={stride}, p={padding})",
                                 lambda: fwd(x, w, b, stride, padding)[0],
                                 {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, dout)
    return rows


def _conv2d_transpose_rows(rng):
    """Upsampling by 2 (3x3 kernel, padding 1, output padding 1) and stride 1, both pairs."""
    from ..nn import conv2d_transpose as T
    x, w, b = rng.standard_normal((2, 3, 4, 3)), rng.standard_normal((3, 3, 2, 3)), rng.standard_normal(2)
    rows = []
    for label, fwd, bwd in (("conv2d_transpose", T.conv2d_transpose_forward, T.conv2d_transpose_backward),
                            ("conv2d_transpose (fast)", T.conv2d_transpose_forward_fast,
                             T.conv2d_transpose_backward_fast)):
        for stride, op in ((2, 1), (1, 0)):
            out, c = fwd(x, w, b, stride, 1, op)
            dout = rng.standard_normal(out.shape)
            dx, dw, db = bwd(dout, c)
            rows += _layer_check(f"{label} (3x3, s={stride}, p=1, op={op})",
                                 lambda: fwd(x, w, b, stride, 1, op)[0],
                                 {"x": x, "w": w, "b": b}, {"x": dx, "w": dw, "b": db}, dout)
    return rows


def _maxpool2d_rows(rng):
    """Windows side by side (2x2) and overlapping with padding (3x3, stride 2, padding 1), both pairs."""
    from ..nn import maxpool2d as M
    x = (rng.permutation(2 * 5 * 6 * 3) * 0.1).reshape(2, 5, 6, 3)  # no ties: gaps of 0.1 >> h
    rows = []
    for label, fwd, bwd in (("maxpool2d", M.maxpool2d_forward, M.maxpool2d_backward),
                            ("maxpool2d (fast)", M.maxpool2d_forward_fast, M.maxpool2d_backward_fast)):
        for pool, stride, padding in ((2, None, 0), (3, 2, 1)):
            out, c = fwd(x, pool, stride, padding)
            dout = rng.standard_normal(out.shape)
            rows += _layer_check(f"{label} ({pool}x{pool}, s={stride or pool}, p={padding})",
                                 lambda: fwd(x, pool, stride, padding)[0], {"x": x}, {"x": bwd(dout, c)}, dout)
    return rows


def _norm2d_rows(rng):
    """Batch and instance normalisation, x, gamma and beta, both pairs."""
    from ..nn import norm2d as Nm
    x = 2 * rng.standard_normal((2, 3, 4, 3)) + 1
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    rows = []
    for label, fwd, bwd in (("norm2d", Nm.norm2d_forward, Nm.norm2d_backward),
                            ("norm2d (fast)", Nm.norm2d_forward_fast, Nm.norm2d_backward_fast)):
        for over in Nm.OVER:
            out, c = fwd(x, gamma, beta, over)
            dout = rng.standard_normal(out.shape)
            dx, dgamma, dbeta = bwd(dout, c)
            rows += _layer_check(f"{label} ({over})", lambda: fwd(x, gamma, beta, over)[0],
                                 {"x": x, "gamma": gamma, "beta": beta},
                                 {"x": dx, "gamma": dgamma, "beta": dbeta}, dout)
    return rows


def _maxpool1d_rows(rng):
    from ..nn import maxpool1d
    x = (rng.permutation(2 * 7 * 3) * 0.1).reshape(2, 7, 3)  # no ties: gaps of 0.1 >> h
    out, c = maxpool1d.maxpool1d_forward(x, 3, 1, "same")
    dout = rng.standard_normal(out.shape)
    return _layer_check("maxpool1d (3, 1)", lambda: maxpool1d.maxpool1d_forward(x, 3, 1, "same")[0],
                        {"x": x}, {"x": maxpool1d.maxpool1d_backward(dout, c)}, dout)


def _mask_rows(rng):
    from ..nn import mask
    a, X = _away(rng, (2, 3, 8)), rng.uniform(0.1, 1.0, (2, 3, 4))
    (y1, y2), c = mask.mask_forward(a, X)
    d1, d2 = rng.standard_normal(y1.shape), rng.standard_normal(y2.shape)
    da, dX = mask.mask_backward(d1, d2, c)
    return _layer_check("mask", lambda: mask.mask_forward(a, X)[0], {"a": a, "X": X},
                        {"a": da, "X": dX}, (d1, d2))


def _level_rows(rng):
    """The level gain through both of its paths, for a window of one frame each side, of no
    frame (every frame alone) and of the whole sequence."""
    from ..nn import level
    X = rng.uniform(0.0, 1.0, (2, 5, 4))
    dZ = rng.standard_normal(X.shape)
    rows = []
    for K, label in ((1, "K=1"), (0, "K=0"), (None, "whole")):
        Z, c = level.level_forward(X, 0.3, K, max_gain=50.0)
        rows += _layer_check(f"level ({label})", lambda: level.level_forward(X, 0.3, K, max_gain=50.0)[0],
                             {"X": X}, {"X": level.level_backward(dZ, c)}, dZ)
    return rows


def rnn_inputs(rng, N, T, D, H, positive=False):
    """x, h0, Wx, Wh, b of a ReLU RNN whose pre-activations stay 0.02 or more from the kink.

    A centred difference is exact to O(h^2) only where no step crosses the kink.  Unless
    ``positive``, fewer than 90 % of the units are on, so the ReLU's mask matters to the check;
    ``positive`` draws positive inputs and weights: every ReLU on.
    """
    for _ in range(1000):
        if positive:
            x, h0 = rng.uniform(0.1, 1, (N, T, D)), rng.uniform(0.1, 1, (N, H))
            Wx, Wh, b = rng.uniform(0, 0.5, (D, H)), rng.uniform(0, 0.3, (H, H)), rng.uniform(0.1, 0.5, H)
        else:
            x, h0 = rng.standard_normal((N, T, D)), rng.uniform(0.1, 1, (N, H))
            Wx, Wh, b = rng.standard_normal((D, H)), 0.4 * rng.standard_normal((H, H)), rng.standard_normal(H)
        prev, zs = h0, []
        for t in range(T):
            zs.append(x[:, t] @ Wx + prev @ Wh + b)  # N,H pre-activation of step t
            prev = np.maximum(zs[-1], 0)
        zs = np.array(zs)
        if np.abs(zs).min() > 0.02 and (positive or (zs > 0).mean() < 0.9):
            return x, h0, Wx, Wh, b
    raise RuntimeError("could not draw RNN inputs away from the kink; try another seed")


def _rnn_rows(rng):
    """A step, then BPTT over a sequence, read from the step and from the kernels."""
    from ..nn import rnn as R
    x, h0, Wx, Wh, b = rnn_inputs(rng, 2, 5, 3, 4)
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

    from .. import losses
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
    from ..models import ARCHS
    from ..models.config import CELLS
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
    kinks: ReLU inputs and mask logits have |value| >= 0.1, max-pool inputs (1-D and 2-D) are
    a permutation of values 0.1 apart, and models are checked at inputs whose :meth:`Model.kink_margin` is
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
              "model": lambda r: _model_rows_all(seed), "level": _level_rows,
              "conv2d": _conv2d_rows, "conv2d_transpose": _conv2d_transpose_rows,
              "maxpool2d": _maxpool2d_rows, "norm2d": _norm2d_rows}
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

    from .. import losses
    from ..models import Model, make_config
    from ..nn import use_backend
    rng = np.random.default_rng(seed + 1)
    rows = []
    small = {"hybrid": dict(conv_filters=[5, 4, 3], dense=[6, 4, 5, 4], rnn=[4, 3, 4]),
             "unet": dict(unet_channels=[2, 3])}
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
