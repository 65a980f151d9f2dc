"""Separators that learn nothing: the oracle masks (upper bounds) and robust PCA (a blind
baseline).

Every separator has a ``name``, a ``needs_references`` flag and
``separate(mixture, references=None) -> (vocals, accompaniment)``.  Each one computes a
time-frequency mask ``m`` in ``[0, 1]`` for the vocals, applies ``m`` and ``1 - m`` to the
mixture's STFT (so the estimates keep the mixture's phase), and inverts with
``istft(..., length=len(mixture))``.  Because the ISTFT is linear, the two estimates always
sum back to the mixture.

The oracle masks are computed from the true sources, which a real system never sees: they
bound what any magnitude mask on this STFT can reach.  Robust PCA (Huang et al., ICASSP
2012) splits the mixture's magnitude spectrogram into a low-rank part (the repetitive
accompaniment) and a sparse part (the voice).
"""
import numpy as np

from .errors import ScratchnetError
from .signal import HOP_LENGTH, N_FFT, WINDOW, istft, stft


def rpca(M, *, lam=None, tol=1e-7, max_iter=100):
    """Robust PCA by the inexact augmented Lagrange multiplier method.

    Parameters
    ----------
    M : ndarray, shape (F, T)
        Matrix to split, here a magnitude spectrogram.
    lam : float, optional
        Weight of the sparse part; defaults to ``1 / sqrt(max(F, T))``.
    tol : float
        Stop when ``||M - L - S||_F / ||M||_F < tol``.
    max_iter : int
        Stop after this many iterations in any case.

    Returns
    -------
    L : ndarray, shape (F, T)
        Low-rank part.
    S : ndarray, shape (F, T)
        Sparse part; ``L + S = M`` to within ``tol``.  Both have ``M``'s dtype; the
        iteration runs in float64.

    Notes
    -----
    Principal component pursuit (Candès, Li, Ma & Wright 2011) solves

        min ||L||_* + lam ||S||_1   subject to   L + S = M,

    with ``||.||_*`` the nuclear norm (sum of singular values).  The inexact ALM method
    (Lin, Chen & Ma 2010, Algorithm 5) alternates one minimisation of the augmented
    Lagrangian in each variable, then a dual ascent step on the multiplier ``Y``:

        L <- D_{1/mu}(M - S + Y / mu),        D_tau(X) = U max(Sigma - tau, 0) V^T
        S <- shrink_{lam/mu}(M - L + Y / mu), shrink_tau(x) = sign(x) max(|x| - tau, 0)
        Y <- Y + mu (M - L - S)
        mu <- min(rho mu, mu_max)

    starting from ``S = 0``, ``Y = M / max(||M||_2, ||M||_max / lam)``,
    ``mu = 1.25 / ||M||_2``, ``rho = 1.5`` and ``mu_max = 1e7 mu``, where ``||M||_2`` is the
    largest singular value and ``||M||_max`` the largest absolute entry.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> L0 = rng.standard_normal((60, 2)) @ rng.standard_normal((2, 50))
    >>> S0 = np.where(rng.random((60, 50)) < 0.05, 10.0, 0.0)
    >>> L, S = rpca(L0 + S0)
    >>> bool(np.linalg.norm(L - L0) < 1e-4 * np.linalg.norm(L0))
    True
    """
    M = np.asarray(M)
    if M.ndim != 2:
        raise ScratchnetError(f"rpca expects a matrix of shape (F, T), got shape {M.shape}")
    X = M.astype(np.float64)                        # F,T
    F, T = X.shape
    lam = 1.0 / np.sqrt(max(F, T)) if lam is None else float(lam)
    norm_fro = np.linalg.norm(X)
    if norm_fro == 0:                               # nothing to split (silence)
        return np.zeros_like(M), np.zeros_like(M)
    norm_two = np.linalg.norm(X, 2)                 # largest singular value
    Y = X / max(norm_two, np.abs(X).max() / lam)    # F,T dual variable, scaled so that J(Y) = 1
    mu = 1.25 / norm_two
    mu_max, rho = mu * 1e7, 1.5
    S = np.zeros_like(X)                            # F,T
    for _ in range(max_iter):
        U, sigma, Vt = np.linalg.svd(X - S + Y / mu, full_matrices=False)
        L = (U * np.maximum(sigma - 1.0 / mu, 0.0)) @ Vt                       # F,T singular value thresholding
        G = X - L + Y / mu
        S = np.sign(G) * np.maximum(np.abs(G) - lam / mu, 0.0)                 # F,T soft thresholding
        residual = X - L - S
        Y += mu * residual
        mu = min(mu * rho, mu_max)
        if np.linalg.norm(residual) / norm_fro < tol:
            break
    return L.astype(M.dtype, copy=False), S.astype(M.dtype, copy=False)


class _MaskSeparator:
    """Shared STFT -> mask -> ISTFT pipeline; subclasses supply ``mask``."""
    name = None
    needs_references = False

    def __init__(self, *, n_fft=N_FFT, hop_length=HOP_LENGTH, window=WINDOW):
        self.n_fft, self.hop_length, self.window = n_fft, hop_length, window

    @property
    def stft_kw(self):
        """The STFT the mask belongs to, as keywords of ``stft`` and ``istft``."""
        return dict(n_fft=self.n_fft, hop_length=self.hop_length, window=self.window)

    def _stft(self, y):
        return stft(y, **self.stft_kw)

    def vocal_mask(self, mixture):
        """The vocal mask (F, T) of ``mixture`` (n,): what :func:`separate` applies (blind
        separators only: the oracles need the sources)."""
        if self.needs_references:
            raise ScratchnetError(f"{self.name} is an oracle: it needs the true sources (use separate)")
        return self.mask(self._stft(np.asarray(mixture, dtype=np.float64)), None)

    def mask(self, X, references):
        """Vocal mask in [0, 1], shape (F, T), for the mixture STFT ``X`` (F, T)."""
        raise NotImplementedError

    def separate(self, mixture, references=None):
        """Split ``mixture`` (n,) into ``(vocals, accompaniment)``, each (n,).

        ``references=(vocals, accompaniment)``, each (n,), is required when
        ``needs_references`` and ignored otherwise.
        """
        mixture = np.asarray(mixture)
        if mixture.ndim != 1:
            raise ScratchnetError(f"{self.name}: expected a mono mixture of shape (n,), got shape {mixture.shape}")
        if self.needs_references:
            if references is None or len(references) != 2:
                raise ScratchnetError(
                    f"{self.name} is an oracle: pass references=(vocals, accompaniment)")
            for ref in references:
                if np.shape(ref) != mixture.shape:
                    raise ScratchnetError(
                        f"{self.name}: reference of shape {np.shape(ref)} does not match the "
                        f"mixture's shape {mixture.shape}")
        X = self._stft(mixture)                                  # F,T
        m = self.mask(X, references).astype(X.real.dtype, copy=False)   # F,T
        inverse = dict(n_fft=self.n_fft, hop_length=self.hop_length, window=self.window,
                       length=mixture.shape[0])
        vocals = istft(m * X, **inverse)                         # n
        accompaniment = istft((1 - m) * X, **inverse)            # n
        return vocals, accompaniment

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class IdealRatioMask(_MaskSeparator):
    """Oracle soft mask ``|V| / (|V| + |A|)`` from the true sources' STFTs.

    Where both sources are silent (0 / 0) the mask is 1/2, which splits a silent mixture
    into two silent halves.
    """
    name = "irm"
    needs_references = True

    def mask(self, X, references):
        V = np.abs(self._stft(references[0]))                    # F,T
        A = np.abs(self._stft(references[1]))                    # F,T
        total = V + A
        return np.divide(V, total, out=np.full_like(V, 0.5), where=total > 0)


class IdealBinaryMask(_MaskSeparator):
    """Oracle binary mask: 1 where the voice is louder than the accompaniment, ``|V| > |A|``."""
    name = "ibm"
    needs_references = True

    def mask(self, X, references):
        V = np.abs(self._stft(references[0]))                    # F,T
        A = np.abs(self._stft(references[1]))                    # F,T
        return (V > A).astype(V.dtype)


class RPCA(_MaskSeparator):
    """Robust PCA separation (Huang, Chen, Smaragdis & Hasegawa-Johnson, ICASSP 2012).

    The mixture's magnitude spectrogram is split by :func:`rpca` into a low-rank part ``L``
    (accompaniment, which repeats) and a sparse part ``S`` (the voice).  With
    ``mask="binary"`` (Huang's choice) the vocal mask is 1 where ``|S| > gain |L|``; with
    ``mask="soft"`` it is ``|S| / (|S| + |L|)``.

    Parameters
    ----------
    n_fft, hop_length, window
        STFT parameters (Huang 2012 used a 1024-point window with hop 256 at 16 kHz; the
        defaults here are the package's, hop 512).
    lam : float, optional
        Sparsity weight, default ``1 / sqrt(max(F, T))`` (Huang's ``k = 1``).
    mask : {"binary", "soft"}
    gain : float
        Threshold of the binary mask.
    tol, max_iter
        Passed to :func:`rpca`.
    """
    name = "rpca"
    needs_references = False

    # Huang et al. (2012) ran RPCA on a 1024-point STFT with hop 256: on 10 test clips of the
    # shared copy that scored 2.70 dB GNSDR against 1.67 dB at the networks' hop of 512.
    def __init__(self, *, n_fft=N_FFT, hop_length=256, window=WINDOW, lam=None,
                 mask="binary", gain=1.0, tol=1e-7, max_iter=100):
        super().__init__(n_fft=n_fft, hop_length=hop_length, window=window)
        if mask not in ("binary", "soft"):
            raise ScratchnetError(f"{mask=} must be 'binary' or 'soft'")
        self.lam, self.mask_kind, self.gain, self.tol, self.max_iter = lam, mask, gain, tol, max_iter

    def mask(self, X, references):
        L, S = rpca(np.abs(X), lam=self.lam, tol=self.tol, max_iter=self.max_iter)  # F,T each
        L, S = np.abs(L), np.abs(S)
        if self.mask_kind == "binary":
            return (S > self.gain * L).astype(L.dtype)
        total = S + L
        return np.divide(S, total, out=np.zeros_like(S), where=total > 0)


SEPARATORS = {"irm": IdealRatioMask, "ibm": IdealBinaryMask, "rpca": RPCA}
