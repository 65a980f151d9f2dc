"""The machinery every checker shares: calling the learner's function safely, comparing its
gradients with finite differences and the reference, the verdict lines, generic hints.

The references are scratchnet's readable functions, taken when this module is imported, so a
learner who installs their own function in :mod:`scratchnet.nn` (to train a model with it) is
still checked against scratchnet's.
"""
import re
import traceback

import numpy as np

from .. import losses as _losses
from ..gradcheck import numerical_gradient, rel_error
from ..nn import conv1d as _conv1d
from ..nn import gru as _gru
from ..nn import lstm as _lstm
from ..nn import mask as _mask
from ..nn import maxpool1d as _maxpool1d
from ..nn import rnn as _rnn

TOL = 1e-7  # a right gradient gives ~1e-10 in float64 with h = 1e-6; a wrong one 1e-3 or more
H_STEP = 1e-6

#: scratchnet's readable functions, taken now: what every learner's function is compared with
REFERENCE = {name: getattr(module, name) for module, names in [
    (_rnn, ("rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward")),
    (_gru, ("gru_step_forward", "gru_step_backward")),
    (_lstm, ("lstm_step_forward", "lstm_step_backward")),
    (_mask, ("mask_forward", "mask_backward")),
    (_conv1d, ("conv1d_forward", "conv1d_backward")),
    (_maxpool1d, ("maxpool1d_forward", "maxpool1d_backward"))] for name in names}
REFERENCE.update(mse=_losses.mse_loss, kl=_losses.kl_loss, **{"is": _losses.is_loss})


def sci(x):
    """3e-11, 1e-7: one digit, no padded exponent."""
    if x == 0:
        return "0"
    return "nan" if not np.isfinite(x) else re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{x:.0e}").replace("e+", "e")


class Failed(Exception):
    """The learner's function raised, or returned the wrong number of arrays."""


def call(fn, *args, n=None, **kw):
    try:
        out = fn(*args, **kw)
    except Exception as e:  # the learner's bug: show it, do not crash the checker
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename != __file__]
        where = "".join(traceback.format_list(frames[-2:])).rstrip()  # the learner's lines only
        raise Failed(f"{getattr(fn, '__name__', 'the function')} raised {type(e).__name__}: {e}\n"
                      f"{where}") from None
    if n is not None:
        out = (out,) if n == 1 and not isinstance(out, (tuple, list)) else out
        if not isinstance(out, (tuple, list)) or len(out) != n:
            got = len(out) if isinstance(out, (tuple, list)) else 1
            raise Failed(f"{getattr(fn, '__name__', 'the function')} returned {got} value(s), "
                          f"expected {n}")
    return out


def errors(names, got, *wants):
    """{name: error}: the largest rel_error of got against each of wants; inf for a bad shape."""
    errs = {}
    for i, name in enumerate(names):
        g = np.asarray(got[i], dtype=np.float64) if got[i] is not None else np.zeros(0)
        if g.shape != np.shape(wants[0][i]):
            errs[name] = np.inf
            continue
        e = max(rel_error(g, w[i]) for w in wants)
        errs[name] = np.nan if not np.isfinite(e) else e  # NaN in the learner's gradient
    return errs


def passes(errs, tol):
    return all(e < tol for e in errs.values())  # NaN fails


def shape_value_hints(names, got, want):
    """Generic hints: a wrong shape, a transposed matrix, a wrong sign, a constant factor, zeros."""
    hints = []
    for name, g, w in zip(names, got, want):
        g, w = (np.asarray(g, dtype=np.float64) if g is not None else np.zeros(0)), np.asarray(w)
        if g.shape != w.shape:
            if g.shape == w.shape[::-1]:
                hints.append(f"{name} has shape {g.shape}, the transpose of {w.shape}: "
                             f"swap the two factors of the product (and transpose each)")
            elif g.ndim == w.ndim + 1 and g.shape[1:] == w.shape:
                hints.append(f"{name} has shape {g.shape}, expected {w.shape}: sum over the batch "
                             f"axis (axis 0), as the parameter is shared by every row")
            else:
                hints.append(f"{name} has shape {g.shape}, expected {w.shape}: a gradient has "
                             f"the shape of what it is the gradient of")
            continue
        if not np.all(np.isfinite(g)):
            hints.append(f"{name} holds NaN or inf: a division by zero or the log of zero?")
        elif not np.any(g) and np.any(w):
            hints.append(f"{name} is all zeros: was it computed, or only initialised?")
        elif g.ndim == 2 and g.shape[0] == g.shape[1] and rel_error(g, w.T) < 1e-6:
            hints.append(f"{name} is transposed: for z = a W the gradient of W is a^T dz, not dz^T a")
        elif w.any() and rel_error(g, -w) < 1e-6:
            hints.append(f"{name} has the wrong sign")
        elif w.any():
            c = float(np.vdot(g, w) / np.vdot(w, w))
            if abs(c - 1) > 1e-3 and rel_error(g, c * w) < 1e-6:
                hints.append(f"{name} is {c:.4g} times the right value: a sum or a mean too "
                             f"many or too few?")
    return hints


def finish(title, errs, tol, hints, verbose):
    """Print the verdict lines and the hints; return whether everything passed."""
    ok = passes(errs, tol)
    if verbose:
        print(title)
        w = max(len(n) for n in errs)
        for name, e in errs.items():
            what = "wrong shape" if e == np.inf else f"rel. error {sci(e)}"
            print(f"{'PASS' if e < tol else 'FAIL'} {name:<{w}}  {what} (needs < {sci(tol)})")
        for h in dict.fromkeys(hints):  # in order, without repeats
            print(f"hint: {h}")
        if ok:
            print("all gradients right")
    return ok


def run(title, verbose, body):
    """Run a checker's body; a learner's exception becomes one FAIL line and the traceback."""
    try:
        return body()
    except Failed as e:
        if verbose:
            print(f"{title}\nFAIL {e}")
            if "NotImplementedError" in str(e):
                print("hint: the stub is still in place: replace `raise NotImplementedError` by your code")
        return False


def sizes(defaults, given):
    unknown = set(given) - set(defaults)
    if unknown:
        raise TypeError(f"unknown size(s) {', '.join(sorted(unknown))}: choose among {', '.join(defaults)}")
    return {**defaults, **given}


def numeric(out_fn, arrays, dout):
    """Centred differences of sum(out_fn() * dout) with respect to every array of ``arrays``."""
    return [numerical_gradient(out_fn, a, dout, h=H_STEP) for a in arrays]
