"""The hand-written STFT held to SciPy, its inverse held to the identity, and the overlap-add
kernel held to its NumPy twin."""
import numpy as np
import pytest
import scipy.signal

from scratchnet import signal as kernels  # the overlap-add kernel sits beside istft
from scratchnet.errors import ScratchnetError
from scratchnet.signal import check_nola, get_window, istft, stft

DTYPES = [np.float32, np.float64]
# (n_fft, hop_length): even and odd frame lengths, hops that divide n_fft and hops that do not
SIZES = [(16, 4), (16, 5), (15, 5), (17, 3), (64, 16), (33, 11)]


def rel_err(a, b):
    """Relative error of ``a`` against the reference ``b`` in the Frobenius norm."""
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), np.finfo(float).tiny)


def tolerance(dtype, n_fft):
    """Roundoff bound for one length-``n_fft`` FFT in ``dtype``: a few eps per log2 stage."""
    return 1e-10 if dtype == np.float64 else 2 * np.finfo(dtype).eps * np.log2(n_fft)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("window", ["hann", "sine"])
@pytest.mark.parametrize("n_fft,hop", SIZES)
def test_stft_centered_matches_scipy_shorttimefft(n_fft, hop, window, dtype):
    rng = np.random.default_rng(n_fft * 100 + hop)
    x = rng.standard_normal(257).astype(dtype)
    S = stft(x, n_fft=n_fft, hop_length=hop, window=window, center=True)
    assert S.dtype == (np.complex64 if dtype == np.float32 else np.complex128)
    w = get_window(window, n_fft)
    T = S.shape[1]
    ref = scipy.signal.ShortTimeFFT(w, hop, fs=1, mfft=n_fft, phase_shift=None).stft(
        x.astype(np.float64), p0=0, p1=T)
    assert S.shape == ref.shape == (1 + n_fft // 2, 1 + len(x) // hop)
    err = rel_err(S.astype(np.complex128), ref)
    assert err < tolerance(dtype, n_fft), f"{err=:.3e} for {n_fft=} {hop=} {window=} {dtype=}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("window", ["hann", "sine"])
@pytest.mark.parametrize("n_fft,hop", SIZES)
def test_stft_uncentered_matches_legacy_scipy_stft(n_fft, hop, window, dtype):
    rng = np.random.default_rng(n_fft * 100 + hop + 1)
    x = rng.standard_normal(200).astype(dtype)
    S = stft(x, n_fft=n_fft, hop_length=hop, window=window, center=False)
    w = get_window(window, n_fft)
    _, _, ref = scipy.signal.stft(
        x.astype(np.float64), window=w, nperseg=n_fft, noverlap=n_fft - hop, boundary=None,
        padded=False, detrend=False, return_onesided=True)
    # scipy's default scaling="spectrum" divides every frame by sum(w); ours does not scale
    ref = ref * w.sum()
    assert S.shape == ref.shape == (1 + n_fft // 2, 1 + (len(x) - n_fft) // hop)
    err = rel_err(S.astype(np.complex128), ref)
    assert err < tolerance(dtype, n_fft), f"{err=:.3e} for {n_fft=} {hop=} {window=} {dtype=}"


# Round trips: COLA pairs (sine 16/8, hann 16/4) and NOLA-only ones (hann 16/5, sine 15/4,
# hann 17/6: the overlap-added squared window is not constant, yet nowhere zero).
ROUND_TRIP = [(16, 8, "sine"), (16, 4, "hann"), (16, 5, "hann"), (15, 4, "sine"), (17, 6, "hann"),
              (16, 3, "boxcar"), (32, 16, "sine")]


@pytest.mark.parametrize("n_fft,hop,window", ROUND_TRIP)
def test_istft_inverts_stft(n_fft, hop, window):
    rng = np.random.default_rng(n_fft + 7 * hop)
    # awkward lengths: a single sample, fewer samples than a hop, 1, 2 and 3 frames' worth,
    # primes, and lengths just either side of a multiple of the hop
    lengths = [1, 2, hop - 1, hop, 2 * hop + 1, 3 * hop - 1, n_fft, 97, 101, 10 * hop + 1]
    for n in lengths:
        x = rng.standard_normal(n)
        S = stft(x, n_fft=n_fft, hop_length=hop, window=window)
        y = istft(S, n_fft=n_fft, hop_length=hop, window=window, length=n)
        assert y.shape == x.shape
        err = np.max(np.abs(y - x))
        assert err < 1e-10, f"{err=:.3e} for {n=} {n_fft=} {hop=} {window=}"


def test_istft_inverts_stft_with_array_window():
    rng = np.random.default_rng(3)
    w = 0.2 + rng.random(24)                    # an arbitrary positive window: NOLA at any hop
    for n, hop in [(50, 7), (131, 10), (24, 12)]:
        x = rng.standard_normal(n)
        S = stft(x, n_fft=24, hop_length=hop, window=w)
        y = istft(S, n_fft=24, hop_length=hop, window=w, length=n)
        assert np.max(np.abs(y - x)) < 1e-10


@pytest.mark.parametrize("n_fft,hop,window", [(16, 12, "hann"), (16, 11, "sine")])
def test_istft_long_hop_recovers_every_covered_sample(n_fft, hop, window):
    # hann at hop = 3/4 n_fft is NOLA (w[0] = 0 is covered by w[12] of the frame before), so
    # every sample that some frame covers comes back. With center=True and hop > n_fft // 2
    # the last frame can stop short of the end: a signal with n % hop <= n_fft - n_fft // 2
    # is fully covered.
    check_nola(window, n_fft=n_fft, hop_length=hop)
    rng = np.random.default_rng(11)
    for n in [5 * hop, 5 * hop + 1, 7 * hop + n_fft - n_fft // 2, 97 - 97 % hop]:
        x = rng.standard_normal(n)
        S = stft(x, n_fft=n_fft, hop_length=hop, window=window)
        y = istft(S, n_fft=n_fft, hop_length=hop, window=window, length=n)
        assert np.max(np.abs(y - x)) < 1e-10, f"{n=}"


def test_istft_float32_round_trip():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(1000).astype(np.float32)
    S = stft(x, n_fft=64, hop_length=16, window="hann")
    y = istft(S, n_fft=64, hop_length=16, window="hann", length=len(x))
    assert y.dtype == np.float32
    assert np.max(np.abs(y - x)) < 50 * np.finfo(np.float32).eps * np.max(np.abs(x))


def test_nola_violation_is_named():
    # the periodic Hann window has w[0] = 0: at hop = n_fft nothing covers every frame's first sample
    x = np.random.default_rng(0).standard_normal(64)
    S = stft(x, n_fft=16, hop_length=16, window="hann")
    with pytest.raises(ScratchnetError, match=r"window='hann' with n_fft=16 and hop_length=16 violates NOLA"):
        istft(S, n_fft=16, hop_length=16, window="hann")
    w = np.ones(8)
    w[::2] = 0.0                                # zero at every even sample: hop 2 never fills them
    with pytest.raises(ScratchnetError, match=r"window='array' with n_fft=8 and hop_length=2 violates NOLA"):
        check_nola(w, n_fft=8, hop_length=2)


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(n_fft=1, hop_length=1), r"n_fft=1 must be an integer >= 2"),
    (dict(n_fft=16.0, hop_length=4), r"n_fft=16.0 must be an integer >= 2"),
    (dict(n_fft=16, hop_length=0), r"hop_length=0 must be a positive integer"),
    (dict(n_fft=16, hop_length=2.5), r"hop_length=2.5 must be a positive integer"),
    (dict(n_fft=8, hop_length=9), r"hop_length=9 must not exceed n_fft=8"),
    (dict(n_fft=16, hop_length=4, window="hamming"), r"unknown window 'hamming'"),
    (dict(n_fft=16, hop_length=4, window=np.ones(15)), r"window array has shape \(15,\), expected \(16,\)"),
])
def test_bad_parameters_are_named(kwargs, pattern):
    with pytest.raises(ScratchnetError, match=pattern):
        stft(np.zeros(100), **kwargs)


def test_bad_inputs_are_named():
    with pytest.raises(ScratchnetError, match=r"signal of 10 samples is shorter than one frame \(n_fft=16, center=False\)"):
        stft(np.zeros(10), n_fft=16, hop_length=4, center=False)
    with pytest.raises(ScratchnetError, match=r"mono signal of shape \(n,\), got shape \(2, 50\)"):
        stft(np.zeros((2, 50)), n_fft=16, hop_length=4)
    with pytest.raises(ScratchnetError, match=r"spectrogram has 5 bins, expected 9 for n_fft=16"):
        istft(np.zeros((5, 3), complex), n_fft=16, hop_length=4)
    with pytest.raises(ScratchnetError, match=r"spectrogram of shape \(F, T\), got shape \(9,\)"):
        istft(np.zeros(9, complex), n_fft=16, hop_length=4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T,n,hop", [(1, 8, 3), (5, 8, 3), (7, 16, 16), (10, 15, 4), (4, 6, 1)])
def test_overlap_add_kernel_matches_numpy_twin(T, n, hop, dtype):
    frames = np.random.default_rng(T * n + hop).standard_normal((T, n)).astype(dtype)
    length = (T - 1) * hop + n + 2              # two spare samples must stay zero
    got = kernels.overlap_add(frames, hop, length)
    want = kernels.overlap_add_numpy(frames, hop, length)
    assert got.dtype == want.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps, atol=4 * np.finfo(dtype).eps)
    assert np.all(got[-2:] == 0)


def test_sine_window_is_princen_bradley_at_half_overlap():
    # w[n]^2 + w[n + N/2]^2 = sin^2 + cos^2 = 1: the squared sine window overlap-adds to one
    w = get_window("sine", 1024)
    T = 6
    wss = kernels.overlap_add(np.broadcast_to(w * w, (T, 1024)), 512, 1024 + 512 * (T - 1))
    np.testing.assert_allclose(wss[512:-512], 1.0, rtol=0, atol=1e-15)


@pytest.mark.parametrize("n_fft,hop", [(16, 12), (16, 15), (17, 13), (64, 48)])
@pytest.mark.parametrize("n", [131, 200, 257])
def test_long_hops_still_cover_the_end_of_the_signal(n_fft, hop, n):
    """A centred frame reaches n_fft - n_fft//2 samples past its centre; with hop > n_fft/2
    the librosa frame count would leave the last samples uncovered, so stft adds frames."""
    from scratchnet.signal import n_frames
    x = np.random.default_rng(n).standard_normal(n)
    S = stft(x, n_fft=n_fft, hop_length=hop, window="hann")
    assert S.shape[1] == n_frames(n, n_fft=n_fft, hop_length=hop)
    assert (S.shape[1] - 1) * hop + (n_fft - n_fft // 2) >= n
    y = istft(S, n_fft=n_fft, hop_length=hop, window="hann", length=n)
    np.testing.assert_allclose(y, x, atol=1e-10)


@pytest.mark.parametrize("n,C,up,down", [(1, 1, 1, 2), (2, 1, 441, 160), (1000, 2, 160, 441), (999, 1, 3, 2),
                                         (500, 2, 147, 160), (64, 1, 1, 1)])
def test_resample_poly_matches_scipy(n, C, up, down):
    """The hand-coded polyphase resampler against ``scipy.signal.resample_poly``: same filter,
    same output length and alignment, to float64 rounding, odd and even lengths."""
    x = np.random.default_rng(3).standard_normal((n, C) if C > 1 else n)
    ours = kernels.resample_poly(x, up, down)
    theirs = scipy.signal.resample_poly(x, up, down, axis=0)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-13)


def test_resample_poly_names_bad_factors():
    with pytest.raises(ScratchnetError, match="up=0"):
        kernels.resample_poly(np.zeros(4), 0, 2)
