"""Checkers of the soft mask's backward and of the objectives (MSE, KL, IS; discriminative)."""
import numpy as np

from .. import losses as _losses
from ..gradcheck import rel_error
from ._check import (REFERENCE, TOL, call, errors, finish, numeric, passes, run, shape_value_hints,
                     sizes)


# --------------------------------------------------------------------------- the soft mask
_MASK_NAMES = ("da", "dX")
_MASK_HINTS = {
    "s constant": "s = |a1| + |a2| + eps depends on a too: by the quotient rule dg_i/dm_j = "
                  "([i = j] - g_i) / s, so dm_i = X / s (dy_i - dX) with dX = dy1 g1 + dy2 g2",
    "no sign": "passes when every a > 0, fails where a < 0: the gains use m = |a|, so da = dm * "
               "sign(a) (d|a|/da = sign(a))",
    "dX without gains": "dX is wrong: y_i = g_i X uses X directly, so dX = dy1 g1 + dy2 g2",
}


def _mask_variants(dy1, dy2, a, X, eps):
    F = X.shape[-1]
    m1, m2 = np.abs(a[..., :F]), np.abs(a[..., F:])
    s = m1 + m2 + eps
    g1, g2 = m1 / s, m2 / s
    dX = dy1 * g1 + dy2 * g2
    dm1, dm2 = X / s * (dy1 - dX), X / s * (dy2 - dX)
    sign1, sign2 = np.sign(a[..., :F]), np.sign(a[..., F:])
    return {"s constant": (np.concatenate([X / s * dy1 * sign1, X / s * dy2 * sign2], -1), dX),
            "no sign": (np.concatenate([dm1, dm2], -1), dX),
            "dX without gains": (np.concatenate([dm1 * sign1, dm2 * sign2], -1), dy1 + dy2)}


def _mask_errors(fn, forward, rng, N, T, F, silent=True, positive=False):
    """A frame of zero logits (``silent``) in sequence 0; logits 0.1 <= |a| <= 1 elsewhere."""
    a = rng.uniform(0.1, 1.0, (N, T, 2 * F)) * (1 if positive else rng.choice([-1.0, 1.0], (N, T, 2 * F)))
    if silent:
        a[0, T // 2] = 0.0  # a silent frame: both gains 0, |a| at its kink
    X, eps = rng.uniform(0.1, 1.0, (N, T, F)), 1e-8
    (y1, y2), cache = call(forward, a, X, eps, n=2)
    dy1, dy2 = rng.standard_normal(np.shape(y1)), rng.standard_normal(np.shape(y2))
    got = call(fn, dy1, dy2, cache, n=2)
    ref = REFERENCE["mask_backward"](dy1, dy2, REFERENCE["mask_forward"](a, X, eps)[1])
    num = numeric(lambda: forward(a, X, eps)[0], [a, X], (dy1, dy2))  # |a| at 0: +h and -h agree
    return errors(_MASK_NAMES, got, num, ref), got, ref, _mask_variants(dy1, dy2, a, X, eps)


def check_mask_backward(fn, *, forward=None, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(dy1, dy2, cache) -> da, dX``, the backward of Huang's joint soft mask.

    ``forward(a, X, eps) -> (y1, y2), cache`` (default scratchnet's ``mask_forward``); sizes
    ``N, T, F``.  One frame is silent (a = 0).  Recognises: a failure on the silent frame only
    (sign(0) or eps), a failure only where a < 0 (the sign of |a|), s treated as a constant in
    the quotient rule, dX without the gains.
    """
    d = sizes(dict(N=2, T=4, F=5), dims)
    forward = forward or REFERENCE["mask_forward"]
    title = f"check_mask_backward: N={d['N']} T={d['T']} F={d['F']} (one silent frame), seed {seed}"

    def body():
        errs, got, ref, variants = _mask_errors(fn, forward, np.random.default_rng(seed), **d)
        hints = []
        if not passes(errs, tol):
            hints = [_MASK_HINTS[k] for k, v in variants.items() if passes(errors(_MASK_NAMES, got, v), 1e-6)]
            loud = _mask_errors(fn, forward, np.random.default_rng(seed), silent=False, **d)[0]
            if passes(loud, tol):
                hints.append("fails only on a silent frame (a = 0): |a| has no derivative there; use the "
                             "subgradient sign(0) = 0 (np.sign, not a / |a|) and keep eps in s = |a1| + "
                             "|a2| + eps in the backward pass as in the forward")
            elif passes(_mask_errors(fn, forward, np.random.default_rng(seed), silent=False,
                                      positive=True, **d)[0], tol):
                hints.append(_MASK_HINTS["no sign"])
            hints = hints or shape_value_hints(_MASK_NAMES, got, ref)
        return finish(title, errs, tol, hints, verbose)
    return run(title, verbose, body)


# --------------------------------------------------------------------------- the objectives
_LOSS_NAMES = ("loss", "dy1", "dy2")


def _floor_variants(kind, y1, y2, t1, t2, gamma, floor=_losses.KL_FLOOR):
    """The classic floor bugs of KL and IS, combined as the objective combines any divergence."""
    def kl_log_only(t, y):
        return t * np.log((t + floor) / (y + floor)) - t + y, 1 - t / (y + floor)

    def is_estimate_only(t, y):
        r = t / (y + floor)
        with np.errstate(divide="ignore", invalid="ignore"):
            return r - np.log(r) - 1, (1 - r) / (y + floor)
    div = {"kl": kl_log_only, "is": is_estimate_only}[kind]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {kind: _losses._discriminative(div, y1, y2, t1, t2, gamma)}


_FLOOR_HINTS = {
    "kl": "the floor is only inside the log: floor both the target and the estimate everywhere, "
          "D = (t+e) log((t+e)/(y+e)) - (t+e) + (y+e), so that D = 0 exactly where y = t",
    "is": "only the estimate is floored: floor both, r = (t + e) / (y + e), so that a silent target "
          "bin gives a finite, correct divergence",
}


def _loss_errors(fn, kind, rng, N, T, F, gamma, silent=True):
    """Estimates and targets in [0.1, 1], with silent bins (0) in t1 and y2 when ``silent``."""
    y1, y2, t1, t2 = (rng.uniform(0.1, 1.0, (N, T, F)) for _ in range(4))
    if silent:
        t1[0, 0, : F // 2 + 1] = 0.0  # a target with silent bins
        y2[-1, -1, F // 2:] = 0.0     # an estimate with silent bins
    got = call(fn, y1, y2, t1, t2, gamma=gamma, n=3)
    ref = REFERENCE[kind](y1, y2, t1, t2, gamma=gamma)
    variants = _floor_variants(kind, y1, y2, t1, t2, gamma) if kind != "mse" else {}
    loss = lambda: float(fn(y1, y2, t1, t2, gamma=gamma)[0])  # noqa: E731
    num = numeric(loss, [y1, y2], None)  # of the learner's own loss: are its gradients its own?
    got = [np.asarray(float(got[0]))] + list(got[1:])
    ref = [np.asarray(ref[0]), *ref[1:]]
    return errors(_LOSS_NAMES, got, [ref[0], *num], ref), got, ref, variants, N * T


def _loss_hints(fn, kind, seed, d, gamma, got, ref, variants, n_frames, tol):
    hints = [_FLOOR_HINTS[k] for k, v in variants.items()
             if passes(errors(_LOSS_NAMES, got, [np.asarray(v[0]), *v[1:]]), 1e-6)]
    if gamma > 0 and passes(_loss_errors(fn, kind, np.random.default_rng(seed), gamma=0.0, **d)[0], tol):
        hints.append("gamma = 0 passes but gamma > 0 fails: the discriminative terms are wrong -- "
                     "J also has -gamma (D(t2||y1) + D(t1||y2)), so dy1 gets -gamma dD(t2||y1)/dy1 "
                     "and dy2 gets -gamma dD(t1||y2)/dy2")
    if kind != "mse" and not all(np.all(np.isfinite(g)) for g in got):
        hints.append("NaN or inf on silent bins (t = 0 or y = 0): the floor is missing -- add it to "
                     f"both the target and the estimate (default {_losses.KL_FLOOR:g})")
    scaled = []
    for name, g, r in zip(_LOSS_NAMES, got, ref):
        c = float(np.vdot(g, r) / np.vdot(r, r)) if np.shape(g) == np.shape(r) and np.any(r) else 0
        if c and rel_error(g, c * r) < 1e-6 and min(abs(c - n_frames), abs(1 / c - n_frames)) < 1e-6:
            scaled.append(name)
    if scaled:
        hints.append(f"{', '.join(scaled)} off by a factor N*T = {n_frames}: J is summed over the bins "
                     "and divided by the number of frames N*T (not by the bins, not by N)")
    return hints or shape_value_hints(_LOSS_NAMES, got, ref)


def check_loss(fn, kind="mse", *, gamma=0.05, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(y1, y2, t1, t2, gamma=...) -> loss, dy1, dy2`` against scratchnet's ``kind`` loss.

    ``kind`` is ``"mse"``, ``"kl"`` or ``"is"`` (their default floors); sizes ``N, T, F``.  The
    loss value is compared with the reference, the gradients with finite differences of the
    learner's own loss and with the reference.  Some target and estimate bins are silent (0).
    Recognises: the discriminative terms wrong (gamma = 0 passes, gamma > 0 fails), the floor
    missing or in the wrong place, the normalisation by N*T frames.
    """
    if kind not in _losses.LOSSES:
        raise ValueError(f"{kind=} must be one of {', '.join(_losses.LOSSES)}")
    d = sizes(dict(N=2, T=3, F=4), dims)
    title = f"check_loss({kind!r}): N={d['N']} T={d['T']} F={d['F']}, gamma {gamma}, seed {seed}"

    def body():
        with np.errstate(all="ignore"):  # a learner's log(0) is reported, not warned about
            errs, got, ref, variants, n_frames = _loss_errors(fn, kind, np.random.default_rng(seed),
                                                              gamma=gamma, **d)
            hints = [] if passes(errs, tol) else _loss_hints(fn, kind, seed, d, gamma, got, ref,
                                                              variants, n_frames, tol)
        return finish(title, errs, tol, hints, verbose)
    return run(title, verbose, body)
