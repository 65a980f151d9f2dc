"""Reading, resampling and writing audio files.

Files are read and written with :mod:`soundfile` (libsndfile: WAV, FLAC, OGG and the rest of
its formats) and resampled with SciPy's polyphase filter, :func:`scipy.signal.resample_poly`.
Every problem a user can cause (a missing file, a file that is not audio, an empty or
non-finite signal, an output folder that cannot be written) raises
:class:`~scratchnet.errors.ScratchnetError` with one line that names the path.

Signals are float64 in ``[-1, 1]`` as libsndfile scales them: shape ``(n,)`` for mono and
``(n, C)`` for ``C`` channels, time first, as soundfile returns them.
"""
import os
import secrets
from fractions import Fraction

import numpy as np
import scipy.signal
import soundfile as sf

from .errors import ScratchnetError
from .signal import SAMPLE_RATE

#: Output formats chosen by file extension, and the sample format written by default.
FORMATS = {".wav": "WAV", ".flac": "FLAC"}
DEFAULT_SUBTYPE = "PCM_16"


def check_signal(y, name):
    """Raise ``ScratchnetError`` unless ``y`` is a non-empty array of finite numbers.

    Parameters
    ----------
    y : ndarray, shape (n,) or (n, C)
    name : str
        What the array is (a path, ``"vocals"``), for the message.
    """
    y = np.asarray(y)
    if y.size == 0:
        raise ScratchnetError(f"{name}: signal is empty (shape {y.shape})")
    bad = ~np.isfinite(y)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise ScratchnetError(
            f"{name}: signal has {int(bad.sum())} NaN or infinite samples (first at sample {first})")


def _read(path):
    """Read ``path`` as float64, shape (n, C), with its sample rate; errors name the path."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ScratchnetError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ScratchnetError(f"{path}: is a directory, expected an audio file")
    try:
        y, sr = sf.read(path, dtype="float64", always_2d=True)  # n,C
    except (sf.LibsndfileError, RuntimeError) as err:
        # libsndfile's own words ("Format not recognised.") after the path
        raise ScratchnetError(f"{path}: not a readable audio file ({err})") from None
    check_signal(y, path)
    return y, sr


def _check_rate(sr, name="sr"):
    if not isinstance(sr, (int, np.integer)) or isinstance(sr, bool) or sr <= 0:
        raise ScratchnetError(f"{name}={sr!r} must be a positive integer (samples per second)")


def load(path, *, sr=SAMPLE_RATE, mono=True):
    """Read an audio file, average it to mono and resample it.

    Parameters
    ----------
    path : str or os.PathLike
        Any file libsndfile reads (WAV, FLAC, OGG, ...), at any rate, with any number of
        channels.
    sr : int or None
        Sample rate to return; ``None`` keeps the file's own rate.
    mono : bool
        Average the channels into one.

    Returns
    -------
    y : ndarray of float64, shape (n,) if ``mono`` else (n, C)
        The signal at rate ``sr``; ``n = ceil(n_file * sr / sr_in)`` (see :func:`resample`).
    sr_in : int
        The file's native sample rate.

    Examples
    --------
    >>> y, sr_in = load("song.wav")            # doctest: +SKIP
    >>> y.shape, sr_in                         # doctest: +SKIP
    ((160000,), 44100)
    """
    if sr is not None:
        _check_rate(sr)
    y, sr_in = _read(path)                                    # n,C
    if mono:
        y = y.mean(axis=1)                                    # n
    if sr is not None and sr != sr_in:
        y = resample(y, sr_in, sr)
    return y, sr_in


def load_channels(path):
    """Read every channel of an audio file at its native rate.

    Used for MIR-1K, whose stereo files hold the accompaniment in column 0 and the voice in
    column 1.

    Returns
    -------
    y : ndarray of float64, shape (n, C)
    sr : int
    """
    return _read(path)


def resample(y, sr_in, sr_out):
    """Resample ``y`` from ``sr_in`` to ``sr_out`` with a polyphase anti-aliasing filter.

    Parameters
    ----------
    y : ndarray, shape (n,) or (n, C)
        Resampled along the first (time) axis.
    sr_in, sr_out : int
        Sample rates in Hz.

    Returns
    -------
    y_out : ndarray of float64, shape (ceil(n * sr_out / sr_in),) or (that, C)

    Notes
    -----
    ``scipy.signal.resample_poly(y, up, down)`` with ``up / down = sr_out / sr_in`` in lowest
    terms (44100 -> 16000 is up 160, down 441): upsample by ``up``, low-pass with a Kaiser
    FIR filter, keep every ``down``-th sample.  It returns ``ceil(n * up / down)`` samples,
    so a round trip 44.1k -> 16k -> 44.1k can come back a few samples longer than it began.
    """
    _check_rate(sr_in, "sr_in")
    _check_rate(sr_out, "sr_out")
    y = np.asarray(y, dtype=np.float64)
    if sr_in == sr_out:
        return y.copy()
    ratio = Fraction(int(sr_out), int(sr_in))
    return scipy.signal.resample_poly(y, ratio.numerator, ratio.denominator, axis=0)


def check_not_input(out_path, inputs):
    """Raise ``ScratchnetError`` if ``out_path`` is one of ``inputs`` (after resolving links).

    Parameters
    ----------
    out_path : str or os.PathLike
    inputs : iterable of str or os.PathLike
    """
    out = os.path.realpath(out_path)
    for path in inputs:
        if os.path.realpath(path) == out or (
                os.path.exists(out) and os.path.exists(path) and os.path.samefile(out, path)):
            raise ScratchnetError(
                f"{os.fspath(out_path)}: output would overwrite the input {os.fspath(path)}; "
                "choose another output path")


def save(path, y, sr, *, subtype=None):
    """Write a WAV or FLAC file atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Ends in ``.wav`` or ``.flac`` (any case); the extension picks the format.
    y : ndarray, shape (n,) or (n, C)
        Samples, nominally in ``[-1, 1]``.
    sr : int
        Sample rate in Hz.
    subtype : str, optional
        libsndfile sample format (``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``, ...).  Defaults to
        16-bit PCM for both formats (MIR-1K's own format, and the one every player reads).

    Notes
    -----
    Integer formats clip ``y`` to ``[-1, 1]`` first: libsndfile would otherwise wrap samples
    that overflow.  The file is written under a temporary name in the same folder,
    ``.<name>.tmp-<hex><ext>`` (the real extension kept, so that libsndfile writes the right
    format), then moved over ``path`` with :func:`os.replace`: a reader never sees half a
    file, and a failed write leaves nothing behind.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    ext = os.path.splitext(name)[1].lower()
    if ext not in FORMATS:
        raise ScratchnetError(f"{path}: cannot write {ext or 'files without an extension'!r}; "
                              f"use one of {', '.join(FORMATS)}")
    _check_rate(sr)
    y = np.asarray(y, dtype=np.float64)
    if y.ndim not in (1, 2):
        raise ScratchnetError(f"{path}: expected a signal of shape (n,) or (n, C), got shape {y.shape}")
    check_signal(y, path)
    subtype = DEFAULT_SUBTYPE if subtype is None else subtype
    if not sf.check_format(FORMATS[ext], subtype):
        raise ScratchnetError(f"{path}: {subtype=} cannot be written as {FORMATS[ext]}")
    if not subtype.startswith(("FLOAT", "DOUBLE")):
        y = np.clip(y, -1.0, 1.0)                   # PCM would wrap around, not saturate
    if not os.path.isdir(folder):
        raise ScratchnetError(f"{folder}: output folder does not exist")

    tmp = os.path.join(folder, f".{name}.tmp-{secrets.token_hex(4)}{ext}")
    try:
        # O_EXCL: never clobber a stranger's file; mode 0o666 lets the umask decide, as open() does
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError as err:
        raise ScratchnetError(f"{folder}: cannot write to the output folder ({err.strerror})") from None
    try:
        sf.write(tmp, y, int(sr), subtype=subtype, format=FORMATS[ext])
        os.replace(tmp, path)
    except BaseException as err:
        os.unlink(tmp)
        if isinstance(err, (OSError, RuntimeError)):
            raise ScratchnetError(f"{path}: could not write the file ({err})") from None
        raise
