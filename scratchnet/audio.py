"""Reading, resampling and writing audio files.

Files are read and written with :mod:`soundfile` (libsndfile: WAV, FLAC, OGG and the rest of
its formats) and resampled with a polyphase filter (:func:`scratchnet.signal.resample_poly`,
SciPy's design, coded by hand: importing ``scipy.signal`` took a second of every command).
Every problem a user can cause (a missing file, a file that is not audio, an empty or
non-finite signal, an output folder that cannot be written) raises
:class:`~scratchnet.errors.ScratchnetError` with one line that names the path.

Signals are float64 in ``[-1, 1]`` as libsndfile scales them: shape ``(n,)`` for mono and
``(n, C)`` for ``C`` channels, time first, as soundfile returns them.
"""
import contextlib
import os
import sys
from fractions import Fraction

import numpy as np
import soundfile as sf

from .errors import ScratchnetError
from .files import WriteError, atomic_write
from .signal import SAMPLE_RATE, resample_poly

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


def _check_path(path):
    """``path`` as a str, or a ScratchnetError if it is missing or a directory."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ScratchnetError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ScratchnetError(f"{path}: is a directory, expected an audio file")
    return path


def _read(path):
    """Read ``path`` as float64, shape (n, C), with its sample rate; errors name the path."""
    path = _check_path(path)
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
    :func:`scratchnet.signal.resample_poly` (SciPy's ``resample_poly``, coded by hand and
    held to it) with ``up / down = sr_out / sr_in`` in lowest terms (44100 -> 16000 is up
    160, down 441): upsample by ``up``, low-pass with a Kaiser FIR filter, keep every
    ``down``-th sample.  It returns ``ceil(n * up / down)`` samples, so a round trip
    44.1k -> 16k -> 44.1k can come back a few samples longer than it began.
    """
    _check_rate(sr_in, "sr_in")
    _check_rate(sr_out, "sr_out")
    y = np.asarray(y, dtype=np.float64)
    if sr_in == sr_out:
        return y.copy()
    ratio = Fraction(int(sr_out), int(sr_in))
    return resample_poly(y, ratio.numerator, ratio.denominator)


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


class AtomicWriter:
    """Write a WAV or FLAC file block by block; it appears under its name only when complete.

    Parameters
    ----------
    path : str or os.PathLike
        Ends in ``.wav`` or ``.flac`` (any case); the extension picks the format.
    sr : int
        Sample rate in Hz.
    channels : int
        Channels of every block written.
    subtype : str, optional
        libsndfile sample format (``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``, ...).  Defaults to
        16-bit PCM for both formats (MIR-1K's own format, and the one every player reads).

    Notes
    -----
    libsndfile writes into the temporary file that :func:`scratchnet.files.atomic_write`
    opens beside ``path`` (the format passed explicitly, as the temporary name's extension
    means nothing); it is renamed over ``path`` when the ``with`` block ends without error
    and deleted on any error, Ctrl-C and SIGTERM included.  A reader never sees half a file,
    and a failed write leaves nothing behind.  Integer formats clip each block to ``[-1, 1]``
    first: libsndfile would otherwise wrap samples that overflow.

    Examples
    --------
    >>> with AtomicWriter("out.wav", 16000) as w:            # doctest: +SKIP
    ...     for block in blocks:
    ...         w.write(block)
    """

    def __init__(self, path, sr, *, channels=1, subtype=None):
        self.path = os.fspath(path)
        folder, name = os.path.split(os.path.abspath(self.path))
        ext = os.path.splitext(name)[1].lower()
        if ext not in FORMATS:
            raise ScratchnetError(f"{self.path}: cannot write {ext or 'files without an extension'!r}; "
                                  f"use one of {', '.join(FORMATS)}")
        _check_rate(sr)
        self.subtype = DEFAULT_SUBTYPE if subtype is None else subtype
        if not sf.check_format(FORMATS[ext], self.subtype):
            raise ScratchnetError(f"{self.path}: subtype={self.subtype!r} cannot be written as {FORMATS[ext]}")
        if not os.path.isdir(folder):
            raise ScratchnetError(f"{folder}: output folder does not exist")
        if os.path.isdir(self.path):
            raise ScratchnetError(f"{self.path}: could not write the file (it is a folder)")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ScratchnetError(f"{folder}: cannot write to the output folder (Permission denied)")
        self._stack = contextlib.ExitStack()
        try:
            f = self._stack.enter_context(atomic_write(self.path, "wb"))
        except WriteError as err:
            raise ScratchnetError(f"{folder}: cannot write to the output folder ({err.reason})") from None
        try:
            self._file = sf.SoundFile(f, "w", int(sr), channels, self.subtype, format=FORMATS[ext])
        except (OSError, RuntimeError) as err:
            self._stack.__exit__(*sys.exc_info())  # removes the temporary file
            raise ScratchnetError(f"{self.path}: could not write the file ({err})") from None
        self.clip = not self.subtype.startswith(("FLOAT", "DOUBLE"))

    def write(self, y):
        """Append samples, shape (n,) or (n, channels)."""
        y = np.asarray(y, dtype=np.float64)
        check_signal(y, self.path) if y.size else None
        self._file.write(np.clip(y, -1.0, 1.0) if self.clip else y)  # PCM would wrap, not saturate

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        try:
            self._file.close()  # flushes the header; the temporary file is still open
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        try:
            self._stack.__exit__(kind, err, tb)  # rename when complete, else remove
        except ScratchnetError as e:
            raise ScratchnetError(f"{self.path}: could not write the file ({e})") from None
        if isinstance(err, (OSError, RuntimeError)) and not isinstance(err, ScratchnetError):
            raise ScratchnetError(f"{self.path}: could not write the file ({err})") from None
        return False


def save(path, y, sr, *, subtype=None):
    """Write a WAV or FLAC file atomically (see :class:`AtomicWriter` for the format rules).

    Parameters
    ----------
    path : str or os.PathLike
        Ends in ``.wav`` or ``.flac``.
    y : ndarray, shape (n,) or (n, C)
        Samples, nominally in ``[-1, 1]``.
    sr : int
        Sample rate in Hz.
    subtype : str, optional
        libsndfile sample format; 16-bit PCM by default.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim not in (1, 2):
        raise ScratchnetError(f"{os.fspath(path)}: expected a signal of shape (n,) or (n, C), got shape {y.shape}")
    check_signal(y, os.fspath(path))
    with AtomicWriter(path, sr, channels=1 if y.ndim == 1 else y.shape[1], subtype=subtype) as w:
        w.write(y)
    return os.fspath(path)


def info(path):
    """``(frames, samplerate, channels)`` of an audio file, without reading its samples.

    Raises :class:`ScratchnetError` for a missing path, a directory, a file that is not
    audio, and an empty file.
    """
    path = _check_path(path)
    try:
        i = sf.info(path)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise ScratchnetError(f"{path}: not a readable audio file ({err})") from None
    if i.frames <= 0:
        raise ScratchnetError(f"{path}: signal is empty (0 samples)")
    return int(i.frames), int(i.samplerate), int(i.channels)


def read_block(path, start, stop):
    """Samples ``start:stop`` of every channel, float64 of shape (n, C); checked for NaN."""
    try:
        y, _ = sf.read(os.fspath(path), start=int(start), stop=int(stop), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise ScratchnetError(f"{os.fspath(path)}: could not read samples {start}..{stop} ({err})") from None
    check_signal(y, f"{os.fspath(path)} (samples {start}..{stop})")
    return y
