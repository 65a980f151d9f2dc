"""First-order optimizers: SGD with momentum, Adagrad, Adadelta, Adam (L-BFGS: :mod:`scratchnet.lbfgs`).

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

Huang et al. (2014) train full-batch with L-BFGS: :mod:`scratchnet.lbfgs` (its names are
importable from here too).
"""
import numpy as np
from numba import njit

from .errors import ScratchnetError
from .nn.backend import get_backend
from .nn import threads
from .nn.threads import over_slices


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


# Both kernels below run on stretches of a flat array, one per thread (nn/threads.py).  The
# sum of squares is taken in chunks of threads.CHUNK whatever the thread count, so the norm,
# and the clipping that follows it, are the same to the bit with 1 or 2 threads.


@njit(cache=True, nogil=True)
def _sum_of_squares(a, partial, chunk, c0, c1):
    for c in range(c0, c1):  # partial[c]: the sum over chunk c, in float64
        total = 0.0
        for i in range(c * chunk, min((c + 1) * chunk, a.size)):
            total += np.float64(a[i]) * np.float64(a[i])
        partial[c] = total


def sum_of_squares_numpy(a):
    """Twin of :func:`sum_of_squares`."""
    return float(np.sum(np.square(a, dtype=np.float64)))


def sum_of_squares(a):
    """``sum(a**2)`` accumulated in float64, without a float64 copy of ``a`` (a Numba loop)."""
    a = np.ascontiguousarray(a).reshape(-1)
    chunk = threads.CHUNK
    partial = np.zeros(-(-a.size // chunk))
    over_slices(lambda c0, c1: _sum_of_squares(a, partial, chunk, c0, c1), partial.size)
    return float(partial.sum())


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
@njit(cache=True, nogil=True)
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
    dtype = p.dtype
    p, g, m, v = (np.ascontiguousarray(a, dtype=dtype).reshape(-1) for a in (p, g, m, v))  # p, m, v: views
    lr_t, beta1, beta2, eps = float(lr_t), float(beta1), float(beta2), float(eps)
    over_slices(lambda i, j: _adam_update(p[i:j], g[i:j], m[i:j], v[i:j], lr_t, beta1, beta2, eps),
                p.size, grain=threads.CHUNK)


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


# L-BFGS lives in its own module; these names stay importable from here.
from .lbfgs import LBFGS, flatten, lbfgs, unflatten  # noqa: E402,F401
