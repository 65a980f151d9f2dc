"""First-order optimizers and a hand-written L-BFGS.

Parameters and gradients are dicts ``name -> ndarray``.  ``step(params, grads)`` updates the
parameter arrays **in place**, so a model that holds the same arrays sees the new values
without being told.  Each optimizer works in its parameters' dtype (float32 parameters get
float32 state) and can hand its state to ``np.savez`` and take it back::

    np.savez(path, **opt.state_dict())
    opt.load_state_dict(dict(np.load(path)))

after which the following steps are exactly those the original would have taken.

Two options are common to all: ``weight_decay`` adds ``weight_decay * p`` to each gradient
(an L2 penalty ``weight_decay/2 * ||p||^2`` on the loss), and ``clip_norm`` rescales all
gradients together when their global L2 norm exceeds it, which tames the exploding
gradients of recurrent networks without changing the gradient's direction.

Huang et al. (2014) train full-batch with L-BFGS; :func:`lbfgs` implements it from the
two-loop recursion with a backtracking Armijo line search, and :class:`LBFGS` applies it to
a parameter dict.
"""
import numpy as np
from numba import njit

from .errors import ScratchnetError
from .nn.backend import get_backend


# --------------------------------------------------------------------------- base class
class Optimizer:
    """Shared machinery: gradient pre-processing, state slots and (de)serialisation.

    Subclasses list their per-parameter state in ``slots`` and implement
    ``_update(name, p, g)``, which changes ``p`` in place.
    """

    slots = ()

    def __init__(self, lr, weight_decay=0.0, clip_norm=None):
        if not (np.isfinite(lr) and lr > 0):
            raise ScratchnetError(f"learning rate {lr=} must be a positive number")
        if not (np.isfinite(weight_decay) and weight_decay >= 0):
            raise ScratchnetError(f"{weight_decay=} must be a non-negative number")
        if clip_norm is not None and not (np.isfinite(clip_norm) and clip_norm > 0):
            raise ScratchnetError(f"{clip_norm=} must be a positive number or None")
        self.lr = lr
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.t = 0                         # number of steps taken
        self.state = {s: {} for s in self.slots}

    def step(self, params, grads):
        """Update every array of ``params`` in place from ``grads``.

        Parameters
        ----------
        params : dict of str to ndarray
            The parameters; each array is modified in place.
        grads : dict of str to ndarray
            Gradient of the loss for each parameter, same keys and shapes; not modified.

        Returns
        -------
        grad_norm : float
            Global L2 norm of the gradients (weight decay included) before clipping,
            worth logging: a spike announces a blow-up.
        """
        if set(params) != set(grads):
            only_p, only_g = sorted(set(params) - set(grads)), sorted(set(grads) - set(params))
            raise ScratchnetError(f"params and grads must have the same keys; "
                                  f"only in params: {only_p}, only in grads: {only_g}")
        g = {}
        for name, p in params.items():
            if np.shape(grads[name]) != p.shape:
                raise ScratchnetError(
                    f"grads[{name!r}] has shape {np.shape(grads[name])}, param has {p.shape}")
            gi = np.asarray(grads[name], dtype=p.dtype)
            g[name] = gi + self.weight_decay * p if self.weight_decay else gi
        norm = global_norm(g)
        if self.clip_norm is not None and norm > self.clip_norm:
            scale = self.clip_norm / norm  # same factor for all: direction kept
            g = {name: gi * scale for name, gi in g.items()}
        self.t += 1
        for name, p in params.items():
            self._update(name, p, g[name])
        return norm

    def _update(self, name, p, g):
        raise NotImplementedError

    def _slot(self, slot, name, p):
        """State array ``slot`` of parameter ``name``, created as zeros on first use."""
        s = self.state[slot].get(name)
        if s is None:
            s = self.state[slot][name] = np.zeros_like(p)
        elif s.shape != p.shape:
            raise ScratchnetError(
                f"optimizer state {slot}/{name} has shape {s.shape}, parameter has {p.shape}")
        elif s.dtype != p.dtype:
            s = self.state[slot][name] = s.astype(p.dtype)
        return s

    def state_dict(self):
        """Flat dict for ``np.savez``: ``"step"`` and ``"<slot>/<param name>"`` arrays."""
        d = {"step": self.t}
        for slot, arrays in self.state.items():
            for name, a in arrays.items():
                d[f"{slot}/{name}"] = a.copy()
        return d

    def load_state_dict(self, d):
        """Restore the state saved by :meth:`state_dict` (copies the arrays)."""
        if "step" not in d:
            raise ScratchnetError(f"optimizer state has no 'step' entry; keys: {sorted(d)}")
        state = {s: {} for s in self.slots}
        for key, value in d.items():
            if key == "step":
                continue
            slot, _, name = key.partition("/")
            if slot not in state or not name:
                raise ScratchnetError(
                    f"optimizer state key {key!r} does not fit {type(self).__name__}, "
                    f"whose state slots are {list(self.slots)}")
            state[slot][name] = np.array(value)  # a copy, never a view of the caller's
        self.t = int(d["step"])
        self.state = state


def global_norm(arrays):
    """L2 norm of all arrays of a dict together, accumulated in float64."""
    square_sum = sum_of_squares if get_backend() == "fast" else sum_of_squares_numpy
    return float(np.sqrt(sum(square_sum(a) for a in arrays.values())))


@njit(cache=True)
def _sum_of_squares(a):
    total = 0.0
    for i in range(a.size):
        total += np.float64(a[i]) * np.float64(a[i])
    return total


def sum_of_squares_numpy(a):
    """Twin of :func:`sum_of_squares`."""
    return float(np.sum(np.square(a, dtype=np.float64)))


def sum_of_squares(a):
    """``sum(a**2)`` accumulated in float64, without a float64 copy of ``a`` (a Numba loop)."""
    return float(_sum_of_squares(np.ascontiguousarray(a).reshape(-1)))


# --------------------------------------------------------------------------- first order
class SGD(Optimizer):
    r"""Stochastic gradient descent with (Nesterov) momentum.

    Notes
    -----
    With momentum :math:`\mu` and velocity :math:`v` (PyTorch's form, which keeps the
    step size equal to ``lr`` times the averaged gradient when ``lr`` changes):

    .. math::

        v \leftarrow \mu v + g, \qquad
        p \leftarrow p - \eta\,v \;\;\text{or, Nesterov,}\;\;
        p \leftarrow p - \eta\,(g + \mu v).

    ``momentum=0`` is plain gradient descent, :math:`p \leftarrow p - \eta g`.
    """

    slots = ("v",)

    def __init__(self, lr, momentum=0.9, nesterov=False, weight_decay=0.0, clip_norm=None):
        super().__init__(lr, weight_decay, clip_norm)
        if not 0 <= momentum < 1:
            raise ScratchnetError(f"{momentum=} must lie in [0, 1)")
        if nesterov and momentum == 0:
            raise ScratchnetError("nesterov=True needs momentum > 0")
        self.momentum = momentum
        self.nesterov = nesterov

    def _update(self, name, p, g):
        if self.momentum == 0:
            p -= self.lr * g
            return
        v = self._slot("v", name, p)
        v *= self.momentum
        v += g                                          # running sum of gradients
        p -= self.lr * (g + self.momentum * v if self.nesterov else v)


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al. 2011): per-element steps shrink with the summed squared gradient.

    Notes
    -----
    .. math::

        G \leftarrow G + g^2, \qquad p \leftarrow p - \eta\, g / (\sqrt{G} + \epsilon)
    """

    slots = ("G",)

    def __init__(self, lr, eps=1e-8, weight_decay=0.0, clip_norm=None):
        super().__init__(lr, weight_decay, clip_norm)
        self.eps = eps

    def _update(self, name, p, g):
        G = self._slot("G", name, p)
        G += g * g
        p -= self.lr * g / (np.sqrt(G) + self.eps)


class Adadelta(Optimizer):
    r"""Adadelta (Zeiler 2012): steps in the units of the parameters, no tuned rate needed.

    Notes
    -----
    .. math::

        E_g &\leftarrow \rho E_g + (1-\rho)\, g^2 \\
        \Delta &= -\frac{\sqrt{E_\Delta + \epsilon}}{\sqrt{E_g + \epsilon}}\, g \\
        E_\Delta &\leftarrow \rho E_\Delta + (1-\rho)\, \Delta^2 \\
        p &\leftarrow p + \eta \Delta
    """

    slots = ("Eg2", "Edx2")

    def __init__(self, lr=1.0, rho=0.95, eps=1e-6, weight_decay=0.0, clip_norm=None):
        super().__init__(lr, weight_decay, clip_norm)
        if not 0 <= rho < 1:
            raise ScratchnetError(f"{rho=} must lie in [0, 1)")
        self.rho = rho
        self.eps = eps

    def _update(self, name, p, g):
        Eg2 = self._slot("Eg2", name, p)
        Edx2 = self._slot("Edx2", name, p)
        Eg2 *= self.rho
        Eg2 += (1 - self.rho) * g * g
        dx = -np.sqrt(Edx2 + self.eps) / np.sqrt(Eg2 + self.eps) * g
        Edx2 *= self.rho
        Edx2 += (1 - self.rho) * dx * dx
        p += self.lr * dx


class Adam(Optimizer):
    r"""Adam (Kingma & Ba 2015): momentum on the gradient, scaled by its running RMS.

    Notes
    -----
    At step :math:`t` (counted from 1):

    .. math::

        m &\leftarrow \beta_1 m + (1-\beta_1)\, g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2)\, g^2 \\
        p &\leftarrow p - \eta \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}
            \frac{m}{\sqrt{v} + \epsilon}

    (the bias corrections folded into the rate, as in the paper's section 2).
    """

    slots = ("m", "v")

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                 clip_norm=None):
        super().__init__(lr, weight_decay, clip_norm)
        for b_name, b in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= b < 1:
                raise ScratchnetError(f"{b_name}={b} must lie in [0, 1)")
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def _update(self, name, p, g):
        m = self._slot("m", name, p)
        v = self._slot("v", name, p)
        lr_t = self.lr * np.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t)
        if get_backend() == "fast" and p.flags.c_contiguous and p.dtype.kind == "f":
            # m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  p <- p - lr_t m / (sqrt(v) + eps)
            adam_update(p, g, m, v, lr_t, self.beta1, self.beta2, self.eps)  # one fused pass
        else:
            adam_update_numpy(p, g, m, v, lr_t, self.beta1, self.beta2, self.eps)


# Adam's update in one pass over each tensor instead of a dozen whole-array temporaries.  The
# kernel repeats its twin's float operations in the same order, in the parameters' dtype.
@njit(cache=True)
def _adam_update(p, g, m, v, lr_t, beta1, beta2, eps):
    dt = p.dtype.type
    b1, b2, c1, c2 = dt(beta1), dt(beta2), dt(1 - beta1), dt(1 - beta2)
    lr, e = dt(lr_t), dt(eps)
    for i in range(p.size):
        m[i] = m[i] * b1 + c1 * g[i]
        v[i] = v[i] * b2 + c2 * g[i] * g[i]
        p[i] -= lr * m[i] / (np.sqrt(v[i]) + e)


def adam_update_numpy(p, g, m, v, lr_t, beta1, beta2, eps):
    """Twin of :func:`adam_update`: the same update with in-place NumPy operations."""
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    p -= float(lr_t) * m / (np.sqrt(v) + eps)


def adam_update(p, g, m, v, lr_t, beta1, beta2, eps):
    """One Adam step in place: ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g^2``,
    ``p -= lr_t m / (sqrt(v) + eps)``, with the bias corrections folded into ``lr_t``.

    ``p``, ``m`` and ``v`` must be contiguous arrays of one float dtype (they are updated in
    place); ``g`` is converted to it.
    """
    if not all(a.flags.c_contiguous and a.dtype == p.dtype for a in (p, m, v)):
        raise ValueError("adam_update: p, m and v must be C-contiguous arrays of one dtype")
    g = np.ascontiguousarray(g, dtype=p.dtype)
    _adam_update(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                 float(lr_t), float(beta1), float(beta2), float(eps))


OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "adadelta": Adadelta, "adam": Adam}


def get_optimizer(name, **kw):
    """Build the optimizer called ``name`` (a key of :data:`OPTIMIZERS`) with options ``kw``.

    Examples
    --------
    >>> opt = get_optimizer("adam", lr=1e-3, clip_norm=5.0)
    >>> type(opt).__name__
    'Adam'
    """
    try:
        cls = OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise ScratchnetError(
            f"unknown optimizer {name!r}: choose one of {', '.join(map(repr, OPTIMIZERS))}"
        ) from None
    try:
        return cls(**kw)
    except TypeError as e:  # a misspelt or missing option
        raise ScratchnetError(f"bad options for optimizer {name!r}: {e}") from None


# --------------------------------------------------------------------------- L-BFGS
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
