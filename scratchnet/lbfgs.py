"""Huang et al.'s optimiser: L-BFGS, written from the two-loop recursion.

Huang et al. (2014) train full-batch with L-BFGS.  :func:`lbfgs` minimises a function of one
float64 vector with the two-loop recursion (Nocedal & Wright, Algorithm 7.4) and a
backtracking Armijo line search; :class:`LBFGS` applies it to a dict of parameter arrays
(flattened into one vector and back).
"""
import numpy as np

from .errors import ScratchnetError


def flatten(params):
    """Concatenate the arrays of a dict, in its key order, into one float64 vector."""
    if not params:
        return np.zeros(0)
    return np.concatenate([np.ravel(a).astype(np.float64) for a in params.values()])


def unflatten(vector, like_params):
    """Split ``vector`` into a new dict shaped and typed like ``like_params`` (same key order)."""
    size = sum(np.size(a) for a in like_params.values())
    if np.shape(vector) != (size,):
        raise ScratchnetError(
            f"vector has shape {np.shape(vector)}, the parameters hold ({size},) values")
    out, i = {}, 0
    for name, a in like_params.items():
        out[name] = np.asarray(vector[i:i + a.size], dtype=a.dtype).reshape(a.shape)
        i += a.size
    return out


def _two_loop(g, s_list, y_list, rho_list):
    """L-BFGS two-loop recursion: return ``H g`` for the implicit inverse Hessian ``H``.

    ``H`` is the BFGS update of ``gamma * I`` by the stored pairs ``(s_i, y_i)``, oldest
    first, with ``gamma = s'y / y'y`` of the newest pair (Nocedal & Wright, Alg. 7.4).
    """
    q = g.copy()
    alpha = np.empty(len(s_list))
    for i in range(len(s_list) - 1, -1, -1):            # newest to oldest
        alpha[i] = rho_list[i] * (s_list[i] @ q)
        q -= alpha[i] * y_list[i]
    if s_list:
        q *= (s_list[-1] @ y_list[-1]) / (y_list[-1] @ y_list[-1])
    for i in range(len(s_list)):                         # oldest to newest
        beta = rho_list[i] * (y_list[i] @ q)
        q += (alpha[i] - beta) * s_list[i]
    return q


def lbfgs(fun, x0, *, m=10, max_iter=100, tol=1e-9, callback=None):
    r"""Minimise ``fun`` with limited-memory BFGS and a backtracking Armijo line search.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> (f, g)``: the objective (float) and its gradient, shape (P,).
    x0 : ndarray, shape (P,)
        Starting point (copied, as float64).
    m : int, optional
        Number of correction pairs kept.
    max_iter : int, optional
        Maximum number of iterations (line searches).
    tol : float, optional
        Stop when ``max |g| <= tol`` or when an iteration lowers ``f`` by at most
        ``tol * max(|f|, |f_new|, 1)`` (SciPy's ``gtol`` and ``ftol`` tests).
    callback : callable, optional
        Called as ``callback(x, f)`` after every iteration.

    Returns
    -------
    x : ndarray, shape (P,)
        The last (best) point.
    info : dict
        ``f``, ``grad_max`` (max-abs gradient), ``nit`` (iterations), ``nfev``
        (evaluations of ``fun``), ``converged`` (bool) and ``message``.

    Notes
    -----
    Direction :math:`d = -H_k g_k` from the two-loop recursion.  The step
    :math:`\alpha` starts at 1 (at :math:`1/\|g_0\|` on the first iteration, where
    :math:`H_0 = I` knows nothing of the scale) and is halved until the Armijo condition
    :math:`f(x + \alpha d) \le f(x) + c_1 \alpha\, g^\top d` holds (:math:`c_1 = 10^{-4}`).
    A pair :math:`(s, y)` is stored only if :math:`s^\top y > 0` is safely positive, which
    keeps :math:`H` positive definite without a Wolfe curvature test.
    """
    if m < 1 or max_iter < 0:
        raise ScratchnetError(f"{m=} must be >= 1 and {max_iter=} >= 0")
    x = np.array(x0, dtype=np.float64).ravel()
    f, g = fun(x)
    f, g = float(f), np.asarray(g, dtype=np.float64).ravel()
    nfev = 1
    s_list, y_list, rho_list = [], [], []
    converged, message, nit = False, "maximum number of iterations reached", 0
    c1 = 1e-4
    for nit in range(1, max_iter + 1):
        if np.max(np.abs(g), initial=0.0) <= tol:
            converged, message, nit = True, "gradient below tol", nit - 1
            break
        d = -_two_loop(g, s_list, y_list, rho_list)      # P
        gd = g @ d
        if gd >= 0:                                      # not a descent direction: reset
            s_list, y_list, rho_list = [], [], []
            d, gd = -g, -(g @ g)
        alpha = 1.0 if s_list else min(1.0, 1.0 / np.linalg.norm(g))
        for _ in range(60):                              # backtracking line search
            x_new = x + alpha * d
            f_new, g_new = fun(x_new)
            nfev += 1
            f_new = float(f_new)
            if np.isfinite(f_new) and f_new <= f + c1 * alpha * gd:
                break
            alpha *= 0.5
        else:
            message, nit = "line search failed to decrease f", nit - 1
            break
        g_new = np.asarray(g_new, dtype=np.float64).ravel()
        s, y = x_new - x, g_new - g
        sy = s @ y
        if sy > 1e-10 * np.linalg.norm(s) * np.linalg.norm(y):   # curvature: keep H > 0
            s_list.append(s)
            y_list.append(y)
            rho_list.append(1.0 / sy)
            if len(s_list) > m:
                del s_list[0], y_list[0], rho_list[0]
        f_old, x, f, g = f, x_new, f_new, g_new
        if callback is not None:
            callback(x, f)
        if f_old - f <= tol * max(abs(f_old), abs(f), 1.0):
            converged, message = True, "relative reduction of f below tol"
            break
    info = {"f": f, "grad_max": float(np.max(np.abs(g), initial=0.0)), "nit": nit,
            "nfev": nfev, "converged": converged, "message": message}
    return x, info


class LBFGS:
    """L-BFGS on a parameter dict, for full-batch training (Huang et al. 2014).

    Parameters
    ----------
    m : int, optional
        Number of correction pairs kept.
    tol : float, optional
        Convergence tolerance, as in :func:`lbfgs`.
    callback : callable, optional
        Called as ``callback(params, loss)`` after every iteration.

    Notes
    -----
    The search runs on a float64 copy of the flattened parameters; each evaluation
    writes the point into the parameter arrays (in place, in their own dtype) before
    calling the model, so float32 models see float32 values, and at the end the arrays
    hold the final point.
    """

    def __init__(self, m=10, tol=1e-9, callback=None):
        self.m, self.tol, self.callback = m, tol, callback

    def minimize(self, loss_and_grad, params, max_iter=100):
        """Minimise ``loss_and_grad(params) -> (loss, grads dict)`` over ``params``.

        Returns the ``info`` dict of :func:`lbfgs`; ``params`` is updated in place.
        """
        def write(x):
            for name, a in unflatten(x, params).items():
                params[name][...] = a

        def fun(x):
            write(x)
            loss, grads = loss_and_grad(params)
            return loss, flatten({name: grads[name] for name in params})

        def callback(x, f):
            if self.callback is not None:
                write(x)
                self.callback(params, f)

        x, info = lbfgs(fun, flatten(params), m=self.m, max_iter=max_iter, tol=self.tol,
                        callback=callback)
        write(x)
        return info
