"""The finite-difference check itself: numerical gradients, the relative error, the table format.

See :mod:`scratchnet.gradcheck` for what it proves and how it is read.

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

from ..errors import ScratchnetError


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
