r"""Level normalisation: the network hears every mixture at the level it was trained on.

A mask is a ratio, so it can be computed from the mixture at any level and applied to the
mixture as it is.  The network itself is not scale-free (its ReLUs and biases see absolute
values): trained on MIR-1K's quiet 0 dB mixtures, it fails on a mastered song 30 dB louder.
So before the features, each frame's magnitudes are multiplied by a gain that brings the
mixture's local level to a reference ``r`` (the training clips' level), and the mask's raw
magnitudes ``X`` are left alone.  Scaling the input by c then divides every gain by c: the
features, the masks, and so the scores do not change.

Equations, for magnitudes ``X`` (N, T, F), a window of ``K`` frames each side and a ceiling
``g_max`` on the gain (digital silence is not raised without bound)::

    e_t = (1/F) sum_f X_tf^2                        frame power                  N,T
    E_t = (1/n_t) sum_{|s - t| <= K} e_s            windowed mean power          N,T
    g_t = r / sqrt(E_t + c),   c = (r / g_max)^2    gain                         N,T
    Z_tf = g_t X_tf                                 the normalised magnitudes    N,T,F

where ``n_t`` counts the frames of the window inside the sequence (fewer at its ends).
With ``K`` at least the sequence's length every frame gets one gain: the whole input's
mean power is brought to ``r^2`` (a MIR-1K clip is normalised as a whole); a song longer
than the window is normalised by its local level, so a quiet intro is raised apart from a
loud chorus.  ``K = 0`` normalises every frame by itself.

Backward, with ``dZ`` upstream (the gain depends on X, so dX has two paths)::

    dg_t = sum_f dZ_tf X_tf
    dE_t = -dg_t g_t / (2 (E_t + c))
    de_s = sum_{|t - s| <= K} dE_t / n_t            the window mean's transpose
    dX_tf = g_t dZ_tf + (2/F) X_tf de_t

Both window sums are differences of one cumulative sum.  There is no loop worth a kernel,
so the readable pair is the only pair and both backends use it.
"""
import numpy as np


def _window_sum(x, K):
    """``out_t = sum_{|s - t| <= K, 0 <= s < T} x_s`` along axis 1 of x (N, T)."""
    T = x.shape[1]
    c = np.concatenate([np.zeros_like(x[:, :1]), np.cumsum(x, axis=1)], axis=1)  # N,T+1
    t = np.arange(T)
    lo, hi = np.maximum(t - K, 0), np.minimum(t + K + 1, T)
    return c[:, hi] - c[:, lo]


def _counts(T, K):
    """``n_t``: how many frames of the window around t lie inside a sequence of T frames."""
    t = np.arange(T)
    return (np.minimum(t + K + 1, T) - np.maximum(t - K, 0)).astype(np.float64)


def _gain(X, ref, K, max_gain):
    """The gain g (N, T) of the module docstring and the intermediates its backward reads."""
    N, T, F = X.shape
    K = T if K is None else int(K)
    e = np.mean(np.square(X, dtype=np.float64), axis=2)  # N,T
    n = _counts(T, K)  # T
    E = _window_sum(e, K) / n  # N,T
    c = (ref / max_gain) ** 2
    g = ref / np.sqrt(E + c)  # N,T
    return g, E, c, n, K


def level_gains(X, ref, K, max_gain=1e4):
    """The gains ``g`` (N, T) that bring magnitudes X (N, T, F) to the level ``ref``; see the
    module docstring.  ``K`` is the half window in frames (None: the whole sequence)."""
    return _gain(X, ref, K, max_gain)[0]


def level_forward(X, ref, K, max_gain=1e4):
    """Normalise X (N, T, F) to level ``ref``: ``Z = g X`` (N, T, F) and the cache."""
    g, E, c, n, K = _gain(X, ref, K, max_gain)
    Z = (g[..., None] * X).astype(X.dtype)  # N,T,F
    return Z, (X, g, E, c, n, K)


def level_backward(dZ, cache):
    """Backward of :func:`level_forward`: dZ (N, T, F) -> dX (N, T, F), through both paths."""
    X, g, E, c, n, K = cache
    F = X.shape[2]
    dg = np.sum(dZ * X, axis=2, dtype=np.float64)  # N,T
    dE = -dg * g / (2 * (E + c))  # N,T
    de = _window_sum(dE / n, K)  # N,T: each frame's power enters the windows around it
    dX = g[..., None] * dZ + (2.0 / F) * X * de[..., None]
    return dX.astype(dZ.dtype)
