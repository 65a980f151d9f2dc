"""Short-time Fourier transform and its windowed least-squares inverse, coded by hand.

The forward transform frames the signal, multiplies each frame by the analysis window and
takes NumPy's real FFT.  The inverse takes the inverse FFT of each column, windows it again,
overlap-adds the frames (a Numba kernel beside :func:`istft`, its one caller) and divides
by the overlap-added squared window.  That is the least-squares estimate of Griffin & Lim
(1984): it returns the signal exactly for any window and hop that satisfy the NOLA condition
(the summed squared window is nowhere zero), not only for COLA pairs.

Conventions follow librosa: spectrograms are ``(F, T)`` with ``F = 1 + n_fft // 2``, and with
``center=True`` the signal is zero-padded by ``n_fft // 2`` on both sides so that frame ``t``
is centred on sample ``t * hop_length``.  The phase of each frame is relative to the frame's
first sample (SciPy's ``ShortTimeFFT(..., phase_shift=None)``), and there is no scaling: the
transform of a frame is ``sum_n x[n] w[n] exp(-2j pi k n / n_fft)``.

Huang et al. (2014) use a 1024-point STFT with 50 % overlap (hop 512) and the sine window
``w[n] = sin(pi (n + 1/2) / N)``, whose squares sum to one at that hop (Princen-Bradley).
"""
import numpy as np
from numba import njit

from .errors import ScratchnetError

#: Defaults used across the package (Huang et al. 2014), derived in this one place.
N_FFT = 1024
HOP_LENGTH = 512
WINDOW = "sine"
SAMPLE_RATE = 16000


def get_window(window, n_fft):
    """Return an analysis window of length ``n_fft`` as float64.

    Parameters
    ----------
    window : {"hann", "sine", "boxcar"} or array_like
        ``"hann"`` is the periodic Hann window ``0.5 - 0.5 cos(2 pi n / N)`` (the DFT-even
        form used for spectral analysis); ``"sine"`` is ``sin(pi (n + 1/2) / N)``, Huang's
        window; ``"boxcar"`` is all ones.  An array must have length ``n_fft``.
    n_fft : int
        Window length in samples.

    Examples
    --------
    >>> w = get_window("sine", 1024)
    >>> float(np.max(np.abs(w[:512] ** 2 + w[512:] ** 2 - 1)))  # doctest: +SKIP
    0.0
    """
    n = np.arange(n_fft)
    if isinstance(window, str):
        if window == "hann":
            return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / n_fft)
        if window == "sine":
            return np.sin(np.pi * (n + 0.5) / n_fft)
        if window in ("boxcar", "rect", "ones"):
            return np.ones(n_fft)
        raise ScratchnetError(f"unknown window {window!r}: use 'hann', 'sine', 'boxcar' or an array")
    w = np.asarray(window, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] != n_fft:
        raise ScratchnetError(f"window array has shape {w.shape}, expected ({n_fft},) for {n_fft=}")
    return w


def _check_params(n_fft, hop_length):
    if not isinstance(n_fft, (int, np.integer)) or n_fft < 2:
        raise ScratchnetError(f"{n_fft=} must be an integer >= 2")
    if not isinstance(hop_length, (int, np.integer)) or hop_length < 1:
        raise ScratchnetError(f"{hop_length=} must be a positive integer")
    if hop_length > n_fft:
        raise ScratchnetError(f"{hop_length=} must not exceed {n_fft=}: samples would be skipped")


def window_sumsquare(w, hop_length):
    """Per-phase sum of the squared window over all frames overlapping a sample, shape (hop,).

    Sample ``s`` deep inside a long signal receives ``sum_k w[(s mod hop) + k*hop]**2``.
    """
    w2 = w ** 2
    n = w.shape[0]
    return np.array([w2[i::hop_length].sum() for i in range(min(hop_length, n))])


def check_nola(window, *, n_fft, hop_length, tol=1e-10):
    """Raise ``ScratchnetError`` unless the window and hop satisfy NOLA.

    NOLA (nonzero overlap-add): the squared window, overlap-added at ``hop_length``, is nowhere
    zero, so the least-squares inverse can divide by it.  Relative tolerance ``tol`` against
    the largest value.
    """
    _check_params(n_fft, hop_length)
    w = get_window(window, n_fft)
    ss = window_sumsquare(w, hop_length)
    if ss.size < hop_length or ss.min() <= tol * max(ss.max(), np.finfo(float).tiny):
        name = window if isinstance(window, str) else "array"
        raise ScratchnetError(
            f"window={name!r} with {n_fft=} and {hop_length=} violates NOLA: "
            f"the overlap-added squared window is zero at some samples, so the STFT is not invertible")
    return True


def n_frames(n_samples, *, n_fft=N_FFT, hop_length=HOP_LENGTH, center=True):
    """Number of STFT frames for a signal of ``n_samples``.

    Centred: librosa's ``1 + n // hop``, plus the frames needed for the last one to reach the
    final sample when the hop exceeds half the window (librosa would drop those samples).
    Uncentred: the frames that fit, ``1 + (n - n_fft) // hop``.
    """
    if center:
        reach = n_fft - n_fft // 2  # samples a centred frame covers from its centre on
        return max(1 + n_samples // hop_length, 1 + -(-(n_samples - reach) // hop_length))
    return 1 + (n_samples - n_fft) // hop_length


def frame(x, *, n_fft, hop_length):
    """View of ``x`` as overlapping frames, shape (T, n_fft); frame t is x[t*hop : t*hop+n_fft]."""
    T = 1 + (x.shape[0] - n_fft) // hop_length
    return np.lib.stride_tricks.as_strided(
        x, shape=(T, n_fft), strides=(x.strides[0] * hop_length, x.strides[0]), writeable=False)


def stft(x, *, n_fft=N_FFT, hop_length=HOP_LENGTH, window=WINDOW, center=True):
    """Short-time Fourier transform of a mono signal.

    Parameters
    ----------
    x : ndarray, shape (n,)
        Real signal; float32 gives complex64, anything else complex128.
    n_fft : int
        Frame length and FFT size.
    hop_length : int
        Samples between the starts of successive frames.
    window : str or ndarray
        See :func:`get_window`.
    center : bool
        Zero-pad ``n_fft // 2`` samples at both ends so that frame t is centred at
        ``t * hop_length``.

    Returns
    -------
    S : ndarray, shape (1 + n_fft // 2, T)
        ``S[k, t] = sum_n x_pad[t*hop + n] w[n] exp(-2j pi k n / n_fft)``.

    Notes
    -----
    ``T = 1 + n // hop_length`` with ``center=True`` (more if the hop exceeds half the
    window, so that every sample is covered; see :func:`n_frames`), and
    ``1 + (n - n_fft) // hop_length`` without.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> x = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    >>> S = stft(x, n_fft=1024, hop_length=512, window="sine")
    >>> fig, ax = plt.subplots()
    >>> _ = ax.imshow(20 * np.log10(np.abs(S) + 1e-8), origin="lower", aspect="auto")
    """
    _check_params(n_fft, hop_length)
    x = np.asarray(x)
    if x.ndim != 1:
        raise ScratchnetError(f"stft expects a mono signal of shape (n,), got shape {x.shape}")
    dtype = np.float32 if x.dtype == np.float32 else np.float64
    x = x.astype(dtype, copy=False)
    w = get_window(window, n_fft).astype(dtype)
    if center:
        pad = n_fft // 2
        T = n_frames(x.shape[0], n_fft=n_fft, hop_length=hop_length)
        x = np.pad(x, (pad, (T - 1) * hop_length + n_fft - pad - x.shape[0]))
    if x.shape[0] < n_fft:
        raise ScratchnetError(
            f"signal of {x.shape[0]} samples is shorter than one frame ({n_fft=}, {center=})")
    frames = frame(np.ascontiguousarray(x), n_fft=n_fft, hop_length=hop_length)  # T,n_fft
    return np.fft.rfft(frames * w, axis=1).T  # F,T


# --------------------------------------------------------------------------- overlap-add
@njit(cache=True)
def _overlap_add(frames, hop_length, out):
    T, n = frames.shape
    for t in range(T):
        start = t * hop_length
        for i in range(n):
            out[start + i] += frames[t, i]
    return out


def overlap_add_numpy(frames, hop_length, length):
    """Twin of :func:`overlap_add`: one ``np.add.at`` over all frame indices."""
    T, n = frames.shape
    out = np.zeros(length, dtype=frames.dtype)
    idx = np.arange(T)[:, None] * hop_length + np.arange(n)[None, :]  # T,n sample index
    np.add.at(out, idx.ravel(), frames.ravel())
    return out


def overlap_add(frames, hop_length, length):
    """Sum ``frames`` (T, n) into a signal of ``length`` samples, frame t starting at ``t * hop_length``.

    ``length`` must be at least ``(T - 1) * hop_length + n``.
    """
    frames = np.ascontiguousarray(frames)
    out = np.zeros(length, dtype=frames.dtype)
    return _overlap_add(frames, int(hop_length), out)


def istft(S, *, n_fft=None, hop_length=HOP_LENGTH, window=WINDOW, center=True, length=None):
    """Windowed least-squares inverse of :func:`stft`.

    Parameters
    ----------
    S : ndarray, shape (1 + n_fft // 2, T)
        Complex spectrogram.
    n_fft : int, optional
        Defaults to ``2 * (F - 1)``; pass it for odd FFT sizes.
    hop_length, window, center
        As given to :func:`stft`.
    length : int, optional
        Trim or zero-pad the output to exactly this many samples.

    Returns
    -------
    y : ndarray, shape (length,) or (n,)

    Notes
    -----
    ``y[s] = sum_t w[s - t*hop] frame_t[s - t*hop] / sum_t w[s - t*hop]**2``, the signal whose
    STFT is closest to ``S`` in the least-squares sense (Griffin & Lim, 1984).  Samples where
    the denominator vanishes (where no frame reaches, or the window is zero at the very edge
    of an uncentred transform) are left at zero.
    """
    S = np.asarray(S)
    if S.ndim != 2:
        raise ScratchnetError(f"istft expects a spectrogram of shape (F, T), got shape {S.shape}")
    F, T = S.shape
    if n_fft is None:
        n_fft = 2 * (F - 1)
    if F != 1 + n_fft // 2:
        raise ScratchnetError(f"spectrogram has {F} bins, expected {1 + n_fft // 2} for {n_fft=}")
    check_nola(window, n_fft=n_fft, hop_length=hop_length)
    dtype = np.float32 if S.dtype == np.complex64 else np.float64
    w = get_window(window, n_fft).astype(dtype)
    frames = np.fft.irfft(S.T, n=n_fft, axis=1).astype(dtype, copy=False) * w  # T,n_fft
    n_total = n_fft + hop_length * (T - 1)
    y = overlap_add(frames, hop_length, n_total)
    wss = overlap_add(np.broadcast_to(w * w, (T, n_fft)), hop_length, n_total)
    nonzero = wss > np.finfo(dtype).tiny * 1e3
    y[nonzero] /= wss[nonzero]
    if center:
        y = y[n_fft // 2:]
    if length is not None:
        y = y[:length] if y.shape[0] >= length else np.pad(y, (0, length - y.shape[0]))
    elif center:
        y = y[: y.shape[0] - n_fft // 2]
    return y


# --------------------------------------------------------------------------- resampling
def resample_filter(up, down):
    """The low-pass FIR filter of :func:`resample_poly`: a Kaiser-windowed sinc (beta 5),
    ``2 * 10 * max(up, down) + 1`` taps, cut off at the lower of the two Nyquist rates and
    scaled to a gain of ``up`` (the zeros inserted by upsampling take the rest).  It is
    SciPy's design (``firwin`` in ``resample_poly``), so the two agree to rounding."""
    half = 10 * max(up, down)
    cutoff = 1.0 / max(up, down)  # of the upsampled signal's Nyquist rate
    m = np.arange(2 * half + 1) - half
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(2 * half + 1, 5.0)
    return h * (up / h.sum()), half


def _check_ratio(up, down):
    if not (isinstance(up, (int, np.integer)) and isinstance(down, (int, np.integer)) and up > 0 and down > 0):
        raise ScratchnetError(f"resampling factors {up=} and {down=} must be positive integers")


def resample_poly_numpy(x, up, down):
    """Twin of :func:`resample_poly`: upsample with zeros, filter, keep every ``down``-th
    sample, in three plain NumPy steps (slow and memory-hungry: for tests)."""
    _check_ratio(up, down)
    x = np.asarray(x, dtype=np.float64)
    h, half = resample_filter(up, down)
    n_out = -(-x.shape[0] * up // down)  # ceil
    xu = np.zeros((x.shape[0] * up,) + x.shape[1:])
    xu[::up] = x
    cols = xu.reshape(xu.shape[0], -1).T  # C, n*up
    full = np.stack([np.convolve(c, h) for c in cols], axis=1)  # n*up + 2 half, C
    # output m sits at upsampled time m * down; the filter delays by half
    idx = np.arange(n_out) * down + half
    out = np.zeros((n_out, full.shape[1]))
    ok = idx < full.shape[0]
    out[ok] = full[idx[ok]]
    return out.reshape((n_out,) + x.shape[1:])


def _polyphase(h, up):
    """The filter as ``up`` phases, each reversed: ``R[p, K - 1 - k] = h[p + k up]`` (zero
    past its end), so that an output reads one row and the input forwards."""
    K = -(-h.shape[0] // up)
    H = np.zeros(K * up)
    H[: h.shape[0]] = h
    return np.ascontiguousarray(H.reshape(K, up).T[:, ::-1])  # up,K


# fastmath lets LLVM run the sum of one output several products at a time (its order, so
# its rounding, changes: ~1e-15).  The output's input index and phase are stepped, not divided
# out (a 64-bit division per output, per channel, beside only 20 products for 16 -> 44.1 kHz),
# and every channel is summed under one phase: 180 s of stereo, one core, 16 -> 44.1 kHz
# 0.28 -> 0.15-0.17 s, 44.1 -> 16 kHz 0.13 -> 0.10 s.
@njit(cache=True, nogil=True, fastmath=True)
def _resample_poly(xT, R, up, down, half, m0, m1, out):
    """Outputs m0..m1-1 of :func:`resample_poly` for the channels xT (C, n), into out (n_out, C):
    ``out[m, c] = sum_k xT[c, i - k] h[p + k up]`` with ``i, p = divmod(m down + half, up)``,
    read from the reversed phase R[p] (:func:`_polyphase`) as ``sum_j xT[c, j] R[p, K-1-i+j]``."""
    C, n = xT.shape
    K = R.shape[1]
    step_i, step_p = down // up, down % up  # from output m to m + 1: t grows by down
    t = m0 * down + half  # upsampled time of output m0, plus the filter's delay
    i = t // up
    p = t - i * up  # its phase
    for m in range(m0, m1):
        lo = i - (K - 1)  # the first input sample under the filter
        r = R[p]
        for c in range(C):  # every channel under one phase: its taps are read once
            x = xT[c]
            acc = 0.0
            if lo >= 0 and i < n:
                xs = x[lo:i + 1]  # a slice: its loop vectorises (no index wraparound)
                for k in range(K):
                    acc += xs[k] * r[k]
            else:  # taps outside the signal read zeros
                for j in range(max(0, lo), min(n - 1, i) + 1):
                    acc += x[j] * r[j - lo]
            out[m, c] = acc  # time first, as every signal here
        i += step_i
        p += step_p
        if p >= up:
            p -= up
            i += 1
    return out


def resample_poly(x, up, down):
    """Resample ``x`` (n,) or (n, C) along time by ``up / down`` with a polyphase filter.

    Returns ``ceil(n * up / down)`` samples: output m is the upsampled-by-``up`` signal,
    low-passed by :func:`resample_filter`, at upsampled time ``m * down``, zero beyond the
    signal's ends, as ``scipy.signal.resample_poly(x, up, down, axis=0)`` computes it.  Each
    output costs ``len(h) / up`` multiply-adds (about 55 for 44.1 -> 16 kHz); the outputs
    are split in stretches over the kernels' threads (nn/threads.py).
    """
    from .nn.threads import over_slices
    _check_ratio(up, down)
    x = np.asarray(x, dtype=np.float64)
    xT = np.ascontiguousarray(x.reshape(x.shape[0], -1).T)  # C,n
    h, half = resample_filter(up, down)
    R = _polyphase(h, up)
    n_out = -(-x.shape[0] * up // down)
    out = np.empty((n_out, xT.shape[0]))
    over_slices(lambda m0, m1: _resample_poly(xT, R, up, down, half, m0, m1, out), n_out, grain=1 << 14)
    return out.reshape((n_out,) + x.shape[1:])


def unit_norm(x):
    """``x / ||x||_2``, or ``x`` unchanged if it is all zeros."""
    n = np.linalg.norm(x)
    return x / n if n > 0 else x


def magphase(S):
    """Split a complex spectrogram into magnitude and unit phase, ``S = mag * phase``."""
    mag = np.abs(S)
    phase = np.exp(1j * np.angle(S)).astype(S.dtype)
    return mag, phase
