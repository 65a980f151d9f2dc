"""Training objectives for two-source separation, each returned with its exact gradient.

Every loss compares the estimated magnitude spectra ``y1`` (vocals) and ``y2``
(accompaniment) with the targets ``t1`` and ``t2`` and returns ``(loss, dy1, dy2)``:
the loss as a Python float and its gradients with respect to ``y1`` and ``y2``, of the
same shape and dtype as the estimates (float32 in, float32 out).  There is no cache and no
separate backward: a loss is the end of the graph, so its forward pass already knows
everything its gradient needs.

Each objective is built from a per-bin divergence ``D(t || y)`` in the same way (Huang et
al. 2014, eq. 6, the *discriminative* objective)::

    J = D(t1 || y1) + D(t2 || y2) - gamma * (D(t2 || y1) + D(t1 || y2))

``gamma = 0`` gives the plain objective; ``gamma > 0`` also rewards each estimate for
being *unlike* the other source, which reduces interference (the models use 0.05).

Normalisation: ``J`` is summed over all bins of both sources and divided by the number of
frames ``N * T``, so that its scale (and the learning rate that suits it) depends neither
on the batch size nor on the sequence length, only on the number of bins per frame.
"""
import numpy as np
from numba import njit

from .errors import ScratchnetError
from .nn.backend import get_backend
from .nn import threads
from .nn.threads import over_slices

#: Floors added to both target and estimate inside the KL and IS divergences.  Spectra in
#: scratchnet are of unit-L2-norm mixtures (1024-point STFT), whose bins are typically
#: 1e-3 .. 1 and exactly 0 in digital silence.  The floor is more than a guard against
#: log(0): both divergences weigh a bin by the *ratio* of target to estimate, so bins far
#: below the floor count as equal, and the floor sets how much the quiet, mostly inaudible
#: bins steer training (their gradients grow as 1/floor, 1/floor**2 for IS).  Measured on
#: MIR-1K (DRNN-2, 150 units, 800,000 training frames, validation vocal GNSDR; sweep
#: configs/sweeps/loss_floor.json, figures/README.md): KL 8.26 dB at 1e-6, 10.74 at 1e-2,
#: 10.79 at 3e-2; IS 3.39 dB at 1e-4, 4.51 at 1e-3, 9.61 at 1e-2, 10.19 at 3e-2 (MSE:
#: 10.84).  Small floors let near-silent bins dominate the gradient and the mask barely
#: moves from constant; large ones turn both divergences into a squared error on every bin
#: below the floor.  1e-2 (-40 dB re. the mixture's norm) is the default: the smallest
#: floor at which both train well, keeping as much of their ratio character as it can.
KL_FLOOR = 1e-2
IS_FLOOR = 1e-2


# --------------------------------------------------------------------------- checks
def _check_inputs(y1, y2, t1, t2, gamma):
    """Validate four same-shape arrays and gamma; return the number of frames N*T."""
    shapes = [np.shape(a) for a in (y1, y2, t1, t2)]
    if len(set(shapes)) != 1:
        raise ScratchnetError(
            f"y1, y2, t1, t2 must share one shape (N, T, F); got shapes {shapes}")
    if len(shapes[0]) < 1 or np.size(y1) == 0:
        raise ScratchnetError(f"loss inputs of shape {shapes[0]} hold no bins")
    if not (np.isfinite(gamma) and 0.0 <= gamma < 1.0):
        # gamma >= 1 makes the objective unbounded below (the estimate runs away from
        # the other source faster than it is pulled towards its own).
        raise ScratchnetError(f"{gamma=} must lie in [0, 1)")
    return np.size(y1) // shapes[0][-1]  # N*T frames (every axis but the last)


def _check_floor(floor):
    if not (np.isfinite(floor) and floor > 0):
        raise ScratchnetError(f"{floor=} must be a positive number")


# --------------------------------------------------------------------------- divergences
# Each returns (elementwise divergence, its derivative with respect to y), both shaped
# like y; the derivative with respect to the target is never needed.
def _squared_error(t, y):
    diff = y - t                           # N,T,F
    return diff * diff, 2 * diff


def _kl(t, y, floor):
    tf = t + floor                         # N,T,F floored target
    yf = y + floor                         # N,T,F floored estimate
    d = tf * np.log(tf / yf) - tf + yf     # >= 0, and 0 only where y == t
    return d, 1 - tf / yf


def _itakura_saito(t, y, floor):
    ratio = (t + floor) / (y + floor)      # N,T,F
    d = ratio - np.log(ratio) - 1          # x - log x - 1 >= 0, 0 only at x = 1
    return d, (1 - ratio) / (y + floor)


def _discriminative(div, y1, y2, t1, t2, gamma):
    """Combine a per-bin divergence into Huang's objective, normalised per frame.

    The loss is summed in float64 so that float32 inputs do not lose digits over
    hundreds of thousands of bins; the gradients stay in the inputs' dtype.
    """
    n_frames = _check_inputs(y1, y2, t1, t2, gamma)
    d11, g11 = div(t1, y1)                 # own source:   D(t1||y1)
    d22, g22 = div(t2, y2)                 #               D(t2||y2)
    loss = np.sum(d11, dtype=np.float64) + np.sum(d22, dtype=np.float64)
    dy1, dy2 = g11, g22
    if gamma > 0:
        d21, g21 = div(t2, y1)             # other source: D(t2||y1)
        d12, g12 = div(t1, y2)             #               D(t1||y2)
        loss -= gamma * (np.sum(d21, dtype=np.float64) + np.sum(d12, dtype=np.float64))
        dy1 = dy1 - gamma * g21
        dy2 = dy2 - gamma * g12
    scale = 1.0 / n_frames
    dy1 = (dy1 * scale).astype(y1.dtype, copy=False)    # N,T,F
    dy2 = (dy2 * scale).astype(y2.dtype, copy=False)    # N,T,F
    return float(loss * scale), dy1, dy2


# --------------------------------------------------------------------------- losses
def mse_loss(y1, y2, t1, t2, gamma=0.0):
    r"""Squared error, optionally discriminative (Huang et al. 2014).

    Parameters
    ----------
    y1, y2 : ndarray, shape (N, T, F)
        Estimated magnitude spectra of the vocals and the accompaniment.
    t1, t2 : ndarray, shape (N, T, F)
        Target magnitude spectra, same order.
    gamma : float, optional
        Weight of the discriminative terms, in [0, 1).  0 gives plain squared error.

    Returns
    -------
    loss : float
        The objective ``J`` below.
    dy1, dy2 : ndarray, shape (N, T, F)
        ``dJ/dy1`` and ``dJ/dy2``, in the dtype of ``y1`` and ``y2``.

    Notes
    -----
    .. math::

        J = \frac{1}{NT}\Big(\|y_1-t_1\|^2 + \|y_2-t_2\|^2
            - \gamma\,(\|y_1-t_2\|^2 + \|y_2-t_1\|^2)\Big)

        \frac{\partial J}{\partial y_1} = \frac{2}{NT}\big((y_1-t_1) - \gamma\,(y_1-t_2)\big)

    and symmetrically for :math:`y_2`.

    Examples
    --------
    >>> y = np.ones((1, 2, 3)); t = np.zeros((1, 2, 3))
    >>> mse_loss(y, y, t, t)[0]    # 12 unit errors over 2 frames
    6.0
    """
    if get_backend() == "reference":
        return _discriminative(_squared_error, y1, y2, t1, t2, gamma)
    n_frames = _check_inputs(y1, y2, t1, t2, gamma)
    # the same objective, fused into one pass (the kernel below, held to its twin)
    return discriminative_squared_error(y1, y2, t1, t2, gamma, 1.0 / n_frames)


def kl_loss(y1, y2, t1, t2, gamma=0.0, floor=KL_FLOOR):
    r"""Generalized Kullback-Leibler divergence of the targets from the estimates.

    Parameters
    ----------
    y1, y2 : ndarray, shape (N, T, F)
        Estimated magnitude spectra (non-negative) of the vocals and the accompaniment.
    t1, t2 : ndarray, shape (N, T, F)
        Target magnitude spectra (non-negative), same order.
    gamma : float, optional
        Weight of the discriminative terms, in [0, 1).
    floor : float, optional
        Added to both target and estimate so that silent bins (``t = 0`` or ``y = 0``)
        give finite values; see :data:`KL_FLOOR`.

    Returns
    -------
    loss : float
    dy1, dy2 : ndarray, shape (N, T, F)

    Notes
    -----
    With :math:`\tilde t = t + \epsilon` and :math:`\tilde y = y + \epsilon`
    (:math:`\epsilon` = ``floor``) the per-bin divergence is the generalized KL
    divergence of the floored values,

    .. math::

        D(t\|y) = \tilde t \log\frac{\tilde t}{\tilde y} - \tilde t + \tilde y,
        \qquad \frac{\partial D}{\partial y} = 1 - \frac{\tilde t}{\tilde y},

    which is non-negative and zero exactly where :math:`y = t` (so flooring both sides,
    not only the log, keeps the minimum at the target).  The objective is

    .. math::

        J = \frac{1}{NT}\sum_{\text{bins}} D(t_1\|y_1) + D(t_2\|y_2)
            - \gamma\,\big(D(t_2\|y_1) + D(t_1\|y_2)\big).
    """
    _check_floor(floor)
    return _discriminative(lambda t, y: _kl(t, y, floor), y1, y2, t1, t2, gamma)


def is_loss(y1, y2, t1, t2, gamma=0.0, floor=IS_FLOOR):
    r"""Itakura-Saito divergence of the targets from the estimates.

    Parameters
    ----------
    y1, y2 : ndarray, shape (N, T, F)
        Estimated magnitude spectra (non-negative) of the vocals and the accompaniment.
    t1, t2 : ndarray, shape (N, T, F)
        Target magnitude spectra (non-negative), same order.
    gamma : float, optional
        Weight of the discriminative terms, in [0, 1).
    floor : float, optional
        Added to both target and estimate; bins far below it count as equal.  See
        :data:`IS_FLOOR`.

    Returns
    -------
    loss : float
    dy1, dy2 : ndarray, shape (N, T, F)

    Notes
    -----
    With :math:`r = (t + \epsilon) / (y + \epsilon)` (:math:`\epsilon` = ``floor``),

    .. math::

        D_{IS}(t\|y) = r - \log r - 1, \qquad
        \frac{\partial D_{IS}}{\partial y} = \frac{1 - r}{y + \epsilon},

    non-negative and zero exactly where :math:`y = t`.  Being a function of the ratio
    only, it weighs quiet bins as much as loud ones, which suits the wide dynamic range
    of music spectra.  The objective combines it as in :func:`kl_loss`.
    """
    _check_floor(floor)
    return _discriminative(lambda t, y: _itakura_saito(t, y, floor), y1, y2, t1, t2, gamma)


# --------------------------------------------------------------------------- fused kernel
# The end of a training step in one pass: Huang's discriminative squared error with its
# gradients.  In NumPy it is a dozen whole-array temporaries (and float64 copies for the
# sums), which costs as much as the GEMMs of a small network.  The kernel repeats its twin's
# float operations in the same order, in the arrays' dtype, so the two agree to the last bit
# but for the order of the float64 sums, which are taken in chunks of threads.CHUNK elements
# (one stretch of chunks per thread): the same sums whatever the thread count.
@njit(cache=True, nogil=True)
def _discriminative_squared_error(y1, y2, t1, t2, gamma, scale, dy1, dy2, own, other, chunk, c0, c1):
    """Chunks c0..c1 of ``chunk`` elements: gradients, and the chunks' float64 sums in own/other."""
    g, sc, two = y1.dtype.type(gamma), y1.dtype.type(scale), y1.dtype.type(2)
    for c in range(c0, c1):
        s_own, s_other = 0.0, 0.0  # float64 sums of the own-source and other-source terms
        for i in range(c * chunk, min((c + 1) * chunk, y1.size)):
            e11, e22 = y1[i] - t1[i], y2[i] - t2[i]
            s_own += np.float64(e11 * e11) + np.float64(e22 * e22)
            if gamma > 0:
                e21, e12 = y1[i] - t2[i], y2[i] - t1[i]
                s_other += np.float64(e21 * e21) + np.float64(e12 * e12)
                dy1[i] = (two * e11 - g * (two * e21)) * sc
                dy2[i] = (two * e22 - g * (two * e12)) * sc
            else:
                dy1[i] = two * e11 * sc
                dy2[i] = two * e22 * sc
        own[c], other[c] = s_own, s_other


def discriminative_squared_error_numpy(y1, y2, t1, t2, gamma, scale):
    """Twin of :func:`discriminative_squared_error`, whole-array NumPy."""
    e11, e22, e21, e12 = y1 - t1, y2 - t2, y1 - t2, y2 - t1
    loss = np.sum(e11 * e11, dtype=np.float64) + np.sum(e22 * e22, dtype=np.float64)
    dy1, dy2 = 2 * e11, 2 * e22
    if gamma > 0:
        loss -= gamma * (np.sum(e21 * e21, dtype=np.float64) + np.sum(e12 * e12, dtype=np.float64))
        dy1, dy2 = dy1 - gamma * (2 * e21), dy2 - gamma * (2 * e12)
    return float(loss * scale), dy1 * scale, dy2 * scale


def discriminative_squared_error(y1, y2, t1, t2, gamma, scale):
    """Huang's discriminative squared error and its gradients, in one pass.

    ``loss = scale (|y1-t1|^2 + |y2-t2|^2 - gamma (|y1-t2|^2 + |y2-t1|^2))`` summed in
    float64; ``dy1 = scale (2 (y1-t1) - gamma 2 (y1-t2))``, ``dy2`` likewise, computed in the
    common float dtype of the four same-shape arrays and returned in the dtype of ``y1``.
    Returns ``(loss, dy1, dy2)``.
    """
    out_dtype = np.asarray(y1).dtype
    dtype = np.result_type(y1, y2, t1, t2, np.float32)
    y1, y2, t1, t2 = (np.ascontiguousarray(a, dtype=dtype) for a in (y1, y2, t1, t2))
    dy1, dy2 = np.empty_like(y1), np.empty_like(y2)
    y1f, y2f, t1f, t2f, d1f, d2f = (a.reshape(-1) for a in (y1, y2, t1, t2, dy1, dy2))
    chunk = threads.CHUNK
    chunks = -(-y1f.size // chunk)
    own, other = np.zeros(chunks), np.zeros(chunks)
    gamma, scale = float(gamma), float(scale)
    over_slices(lambda c0, c1: _discriminative_squared_error(y1f, y2f, t1f, t2f, gamma, scale, d1f, d2f,
                                                             own, other, chunk, c0, c1), chunks)
    loss = (own.sum() - gamma * other.sum()) * scale
    return float(loss), dy1.astype(out_dtype, copy=False), dy2.astype(out_dtype, copy=False)


LOSSES = {"mse": mse_loss, "kl": kl_loss, "is": is_loss}


def get_loss(name):
    """Return the loss function called ``name`` (a key of :data:`LOSSES`).

    Examples
    --------
    >>> get_loss("kl") is kl_loss
    True
    """
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ScratchnetError(
            f"unknown loss {name!r}: choose one of {', '.join(map(repr, LOSSES))}") from None
