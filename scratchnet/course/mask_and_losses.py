"""Checkers of the soft mask's backward and of the objectives (MSE, KL, IS; discriminative).

The diagnosis gets, from here, the additive terms of each reference formula: the mask's two
quotient-rule terms per source (``dm_i = X/s dy_i - X/s dX``) and the two terms of dX; each
objective's own-source and discriminative terms, and the parts of each divergence's derivative
(the +1 of KL's 1 - t/y, the 1/(y+e) of IS's (1 - r)/(y+e)).  A learner's gradient that is the
reference with a term missing, negated, doubled or swapped for its neighbour is named so.
"""
import numpy as np

from .. import losses as _losses
from ._check import (REFERENCE, TOL, Case, Hypothesis, Terms, call_learner, explain, finish, numeric, run,
                     sizes)


# --------------------------------------------------------------------------- the soft mask
_MASK_NAMES = ("da", "dX")
_MASK_AXES = {"da": ("batch", "time", "logit"), "dX": ("batch", "time", "bin")}
_SILENT_HINT = ("fails only on a silent frame (a = 0): |a| has no derivative there; use the subgradient "
                "sign(0) = 0 (np.sign, not a / |a|) and keep eps in s = |a1| + |a2| + eps in the backward "
                "pass as in the forward")
_NO_SIGN_HINT = ("the gains use m = |a|, so da = dm * sign(a) (d|a|/da = sign(a)): passes when every a > 0, "
                 "fails where a < 0")


def _mask_parts(dy1, dy2, a, X, eps):
    F = X.shape[-1]
    a1, a2 = a[..., :F], a[..., F:]
    m1, m2 = np.abs(a1), np.abs(a2)
    s = m1 + m2 + eps
    return a1, a2, m1, m2, s, m1 / s, m2 / s


def _mask_diagnosis(dy1, dy2, a, X, eps):
    """The mask's hypotheses and terms, from the reference's parts."""
    a1, a2, m1, m2, s, g1, g2 = _mask_parts(dy1, dy2, a, X, eps)
    dX = dy1 * g1 + dy2 * g2
    sg1, sg2 = np.sign(a1), np.sign(a2)
    z = np.zeros_like(X)
    both = lambda u, v: np.concatenate([u, v], -1)  # noqa: E731
    direct1, direct2 = both(X / s * dy1 * sg1, z), both(z, X / s * dy2 * sg2)
    quot1, quot2 = both(-X / s * dX * sg1, z), both(z, -X / s * dX * sg2)
    q = "the quotient-rule term -X/s dX sign(a_i)"
    terms = {
        "da": Terms([("the direct term of da1, X/s dy1 sign(a1),", direct1), ("the direct term of da2, X/s dy2 sign(a2),", direct2),
                     (f"{q} of da1", quot1), (f"{q} of da2", quot2)],
                    groups={q: [f"{q} of da1", f"{q} of da2"],
                            "the direct term X/s dy_i sign(a_i)": ["the direct term of da1, X/s dy1 sign(a1),",
                                                                 "the direct term of da2, X/s dy2 sign(a2),"]},
                    swaps=[("the direct term of da1, X/s dy1 sign(a1),", both(X / s * dy2 * sg1, z),
                            "da1 uses dy2: y1 = g1 X, so dm1 = X/s (dy1 - dX)"),
                           ("the direct term of da2, X/s dy2 sign(a2),", both(z, X / s * dy1 * sg2),
                            "da2 uses dy1: y2 = g2 X, so dm2 = X/s (dy2 - dX)")],
                    why={q: "s = |a1| + |a2| + eps depends on a too; by the quotient rule dg_i/dm_j = "
                            "([i = j] - g_i) / s, so dm_i = X/s (dy_i - dX) with dX = dy1 g1 + dy2 g2"}),
        "dX": Terms([("dy1 g1", dy1 * g1), ("dy2 g2", dy2 * g2)],
                    swaps=[("dy1 g1", dy1 * g2, "dX pairs dy1 with g2: y1 = g1 X, so dX = dy1 g1 + dy2 g2"),
                           ("dy2 g2", dy2 * g1, "dX pairs dy2 with g1: y2 = g2 X, so dX = dy1 g1 + dy2 g2")],
                    why={"dy1 g1": "y1 = g1 X, so dX = dy1 g1 + dy2 g2",
                         "dy2 g2": "y2 = g2 X, so dX = dy1 g1 + dy2 g2"})}
    dm1, dm2 = X / s * (dy1 - dX), X / s * (dy2 - dX)
    hyps = [
        Hypothesis(_NO_SIGN_HINT, {"da": both(dm1, dm2)}),
        Hypothesis("dX is wrong: y_i = g_i X uses X directly, so dX = dy1 g1 + dy2 g2 (the gains, not 1)",
                   {"dX": dy1 + dy2}),
        Hypothesis("dX pairs each dy with the other gain: y1 = g1 X, y2 = g2 X, so dX = dy1 g1 + dy2 g2",
                   {"dX": dy1 * g2 + dy2 * g1}),
        Hypothesis("the sign of a is taken from the other block: da1 = dm1 sign(a1), da2 = dm2 sign(a2)",
                   {"da": both(dm1 * sg2, dm2 * sg1)}),
        Hypothesis("da lacks the factor X: y_i = g_i X, so dm_i = X/s (dy_i - dX)",
                   {"da": both(dm1 / X * sg1, dm2 / X * sg2)})]
    return hyps, terms


def _mask_case(fn, forward, rng, N, T, F, tol, silent=True, positive=False):
    """A frame of zero logits (``silent``) in sequence 0; logits 0.1 <= |a| <= 1 elsewhere."""
    a = rng.uniform(0.1, 1.0, (N, T, 2 * F)) * (1 if positive else rng.choice([-1.0, 1.0], (N, T, 2 * F)))
    if silent:
        a[0, T // 2] = 0.0  # a silent frame: both gains 0, |a| at its kink
    X, eps = rng.uniform(0.1, 1.0, (N, T, F)), 1e-8
    with np.errstate(all="ignore"):
        (y1, y2), cache = call_learner(forward, [a, X, eps], ("a", "X", "eps"), n=2)[0]
        dy1, dy2 = rng.standard_normal(np.shape(y1)), rng.standard_normal(np.shape(y2))
        got, notes = call_learner(fn, [dy1, dy2, cache], ("dy1", "dy2", "cache"), n=2)
    ref = REFERENCE["mask_backward"](dy1, dy2, REFERENCE["mask_forward"](a, X, eps)[1])
    num = numeric(lambda: forward(a.copy(), X.copy(), eps)[0], [a, X], (dy1, dy2))  # |a| at 0: +h and -h agree
    return Case(_MASK_NAMES, got, ref, [num, ref], tol, notes, dy1=dy1, dy2=dy2, a=a, X=X, eps=eps)


def check_mask_backward(fn, *, forward=None, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(dy1, dy2, cache) -> da, dX``, the backward of Huang's joint soft mask.

    ``forward(a, X, eps) -> (y1, y2), cache`` (default scratchnet's ``mask_forward``); sizes
    ``N, T, F``.  One frame is silent (a = 0).  Explains: a failure on the silent frame only
    (sign(0) or eps), the sign of |a| left out (or taken from the other block), a quotient-rule
    term missing or with the wrong sign (s treated as a constant), dy1 and dy2 mixed up, dX
    without the gains or with one of its two terms missing.
    """
    d = sizes(dict(N=2, T=4, F=5), dims)
    forward = forward or REFERENCE["mask_forward"]
    title = f"check_mask_backward: N={d['N']} T={d['T']} F={d['F']} (one silent frame), seed {seed}"

    def body():
        case = _mask_case(fn, forward, np.random.default_rng(seed), tol=tol, **d)
        found, hints = {}, []
        if not case.ok:
            loud = _mask_case(fn, forward, np.random.default_rng(seed), tol=tol, silent=False, **d)
            if loud.ok:  # right everywhere but on the silent frame
                found, hints = {n: _SILENT_HINT for n in case.failing}, [_SILENT_HINT]
            else:
                p = case.parts
                hyps, terms = _mask_diagnosis(p["dy1"], p["dy2"], p["a"], p["X"], p["eps"])
                with np.errstate(all="ignore"):
                    found, hints = explain(case, hyps, terms, dims=d, axes=_MASK_AXES)
                if set(case.failing) - set(found) and _mask_case(
                        fn, forward, np.random.default_rng(seed), tol=tol, silent=False, positive=True, **d).ok:
                    hints.append(_NO_SIGN_HINT)
        return finish(title, case, hints, verbose, found)
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


def _divergence_parts(kind, t, y):
    """{part: (elementwise divergence part, its derivative part)}: the terms of D(t||y)."""
    if kind == "mse":
        return {"(y - t)^2": ((y - t) ** 2, 2 * (y - t))}
    e = _losses.KL_FLOOR if kind == "kl" else _losses.IS_FLOOR
    tf, yf = t + e, y + e
    if kind == "kl":
        return {"log": (tf * np.log(tf / yf), -tf / yf), "linear": (yf - tf, np.ones_like(y))}
    r = tf / yf
    return {"r": (r, -r / yf), "log": (-np.log(r), 1 / yf), "-1": (-np.ones_like(y), np.zeros_like(y))}


_PART_WORDS = {
    ("kl", "linear"): ("the +1 of dD/dy = 1 - (t+e)/(y+e)", "the -(t+e) + (y+e) of D"),
    ("kl", "log"): ("the -(t+e)/(y+e) of dD/dy = 1 - (t+e)/(y+e)", "the log term (t+e) log((t+e)/(y+e)) of D"),
    ("is", "log"): ("the 1/(y+e) of dD/dy = (1 - r)/(y+e), from D's -log r,", "the log term -log r of D = r - log r - 1"),
    ("is", "r"): ("the -r/(y+e) of dD/dy = (1 - r)/(y+e), from D's r,", "the term r of D = r - log r - 1"),
    ("is", "-1"): (None, "the -1 of D = r - log r - 1"),
}


def _loss_diagnosis(kind, y1, y2, t1, t2, gamma, n_frames):
    """The objective's terms (own source, discriminative; the divergence's parts) per tensor."""
    pairs = {"own": [(t1, y1, "dy1"), (t2, y2, "dy2")], "disc": [(t2, y1, "dy1"), (t1, y2, "dy2")]}
    weight = {"own": 1.0, "disc": -gamma}
    loss_parts, grad_parts = [], {"dy1": [], "dy2": []}
    for which in ("own", "disc"):
        if which == "disc" and gamma == 0:
            continue
        for part in _divergence_parts(kind, t1, y1):
            total = 0.0
            for t, y, gname in pairs[which]:
                val, der = _divergence_parts(kind, t, y)[part]
                total += weight[which] * float(np.sum(val)) / n_frames
                grad_parts[gname].append(((which, part), weight[which] * der / n_frames))
            loss_parts.append(((which, part), np.asarray(total)))
    disc = "the discriminative term -gamma D(other source's target || estimate)"
    why_disc = ("J = D(t1||y1) + D(t2||y2) - gamma (D(t2||y1) + D(t1||y2)): dy1 gets -gamma dD(t2||y1)/dy1, "
                "dy2 gets -gamma dD(t1||y2)/dy2")

    def terms_of(parts, grad):
        label = lambda wp: f"{'the discriminative' if wp[0] == 'disc' else 'the own-source'} term's {wp[1]} part"  # noqa: E731
        groups, why = {}, {}
        if gamma > 0:
            groups[disc] = [label(wp) for wp, _ in parts if wp[0] == "disc"]
            why[disc] = why_disc
        for part in _divergence_parts(kind, t1, y1):
            words = _PART_WORDS.get((kind, part))
            if words and words[0 if grad else 1]:
                groups[words[0 if grad else 1]] = [label(wp) for wp, _ in parts if wp[1] == part]
        return Terms([(label(wp), a) for wp, a in parts], groups=groups, why=why)
    terms = {"loss": terms_of(loss_parts, False), "dy1": terms_of(grad_parts["dy1"], True),
             "dy2": terms_of(grad_parts["dy2"], True)}
    hyps = []
    if gamma > 0:  # the discriminative term of the other estimate, or against the own target
        der = lambda t, y: sum(p[1] for p in _divergence_parts(kind, t, y).values())  # noqa: E731
        own1, own2 = der(t1, y1) / n_frames, der(t2, y2) / n_frames
        hyps += [Hypothesis(f"the discriminative terms are each other's: {why_disc}",
                            {"dy1": own1 - gamma * der(t1, y2) / n_frames, "dy2": own2 - gamma * der(t2, y1) / n_frames}),
                 Hypothesis(f"the discriminative term compares the estimate with its own target: {why_disc}",
                            {"dy1": own1 - gamma * der(t1, y1) / n_frames, "dy2": own2 - gamma * der(t2, y2) / n_frames}),
                 Hypothesis(f"the discriminative term is missing: {why_disc}", {"dy1": own1, "dy2": own2})]
    return hyps, terms


def _loss_constants(kind, n_frames, F):
    words = {n_frames: f"off by a factor N*T = {n_frames}: J is summed over the bins and divided by the number "
                       "of frames N*T (not by the bins, not by N)",
             1 / n_frames: f"off by a factor N*T = {n_frames}: J is divided by the number of frames N*T once, "
                           "not twice",
             1 / F: f"1/F = 1/{F}: a mean over the bins too -- J is summed over the F bins of a frame and divided by "
                    "the number of frames N*T only"}
    if kind == "mse":
        words[0.5] = "the factor 2 of d(y - t)^2/dy = 2 (y - t) is missing"
        words[2.0] = "d(y - t)^2/dy is 2 (y - t), not 4 (y - t)"
    return {n: dict(words) for n in _LOSS_NAMES}


def _loss_case(fn, kind, rng, N, T, F, gamma, tol, silent=True):
    """Estimates and targets in [0.1, 1], with silent bins (0) in t1 and y2 when ``silent``."""
    y1, y2, t1, t2 = (rng.uniform(0.1, 1.0, (N, T, F)) for _ in range(4))
    if silent:
        t1[0, 0, : F // 2 + 1] = 0.0  # a target with silent bins
        y2[-1, -1, F // 2:] = 0.0     # an estimate with silent bins
    got, notes = call_learner(fn, [y1, y2, t1, t2], ("y1", "y2", "t1", "t2"), n=3, gamma=gamma)
    ref = REFERENCE[kind](y1, y2, t1, t2, gamma=gamma)
    arrays = [y1, y2, t1, t2]

    def loss():
        try:
            return float(fn(*(a.copy() for a in arrays), gamma=gamma)[0])
        except Exception:
            return np.nan
    num = numeric(loss, [y1, y2], None)  # of the learner's own loss: are its gradients its own?
    try:
        value = np.asarray(float(got[0]))
    except (TypeError, ValueError):
        value = np.asarray(np.nan)
    got = [value] + list(got[1:])
    ref = [np.asarray(ref[0]), *ref[1:]]
    return Case(_LOSS_NAMES, got, ref, [ref, [ref[0], *num]], tol, notes, arrays=arrays, n_frames=N * T)


def check_loss(fn, kind="mse", *, gamma=0.05, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(y1, y2, t1, t2, gamma=...) -> loss, dy1, dy2`` against scratchnet's ``kind`` loss.

    ``kind`` is ``"mse"``, ``"kl"`` or ``"is"`` (their default floors); sizes ``N, T, F``.  The
    loss value is compared with the reference, the gradients with finite differences of the
    learner's own loss and with the reference.  Some target and estimate bins are silent (0).
    Explains: the discriminative terms missing, with the wrong sign or of the wrong source; a
    part of the divergence or its derivative missing or with the wrong sign (KL's +1, IS's log
    term); the floor missing or in the wrong place; the factor 2 of the squared error; the
    normalisation by the N*T frames (a mean over the bins, no division).
    """
    if kind not in _losses.LOSSES:
        raise ValueError(f"{kind=} must be one of {', '.join(_losses.LOSSES)}")
    d = sizes(dict(N=2, T=3, F=4), dims)
    title = f"check_loss({kind!r}): N={d['N']} T={d['T']} F={d['F']}, gamma {gamma}, seed {seed}"

    def body():
        with np.errstate(all="ignore"):  # a learner's log(0) is reported, not warned about
            case = _loss_case(fn, kind, np.random.default_rng(seed), gamma=gamma, tol=tol, **d)
            found, hints = {}, []
            if not case.ok:
                found, hints = _loss_hints(fn, kind, seed, d, gamma, case, tol)
        return finish(title, case, hints, verbose, found)
    return run(title, verbose, body)


def _loss_hints(fn, kind, seed, d, gamma, case, tol):
    y1, y2, t1, t2 = case.parts["arrays"]
    n_frames = case.parts["n_frames"]
    hyps = []
    if kind != "mse":
        for k, v in _floor_variants(kind, y1, y2, t1, t2, gamma).items():
            hyps.append(Hypothesis.of(_FLOOR_HINTS[k], _LOSS_NAMES, [np.asarray(v[0]), *v[1:]]))
    if kind != "mse" and not all(np.all(np.isfinite(case.get(n))) for n in _LOSS_NAMES):
        nan = ("NaN or inf on silent bins (t = 0 or y = 0): the floor is missing -- add it to both the target "
               f"and the estimate (default {_losses.KL_FLOOR:g})")
        found = {n: nan for n in case.failing if not np.all(np.isfinite(case.get(n)))}
        other, hints = explain(_only(case, set(case.failing) - set(found)), hyps)
        return {**found, **other}, [nan] + hints
    more, terms = _loss_diagnosis(kind, y1, y2, t1, t2, gamma, n_frames)
    found, hints = explain(case, hyps + more, terms, dims=d, constants=_loss_constants(kind, n_frames, d["F"]))
    if set(case.failing) - set(found) and gamma > 0:
        if _loss_case(fn, kind, np.random.default_rng(seed), gamma=0.0, tol=tol, **d).ok:
            hints.append("gamma = 0 passes but gamma > 0 fails: the discriminative terms are wrong -- "
                         "J also has -gamma (D(t2||y1) + D(t1||y2)), so dy1 gets -gamma dD(t2||y1)/dy1 "
                         "and dy2 gets -gamma dD(t1||y2)/dy2")
    return found, hints


class _only:
    """A view of a case whose failing tensors are limited to ``names``."""

    def __init__(self, case, names):
        self._case, self.failing = case, [n for n in case.failing if n in names]

    def __getattr__(self, attr):
        return getattr(self._case, attr)
