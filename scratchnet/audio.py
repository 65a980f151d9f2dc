"""Reading, resampling and writing audio files.

Files are read and written with :mod:`soundfile` (libsndfile: WAV, FLAC, OGG Vorbis and Opus,
MP3, AIFF and the rest of its formats; not AAC/M4A or WMA) and resampled with a polyphase filter (:func:`scratchnet.signal.resample_poly`,
SciPy's design, coded by hand: importing ``scipy.signal`` took a second of every command).
Every problem a user can cause (a missing file, a file that is not audio, an empty or
non-finite signal, an output folder that cannot be written) raises
:class:`~scratchnet.errors.ScratchnetError` with one line that names the path.

Signals are float64 in ``[-1, 1]`` as libsndfile scales them: shape ``(n,)`` for mono and
``(n, C)`` for ``C`` channels, time first, as soundfile returns them.
"""
import contextlib
import os
import stat
import sys
from fractions import Fraction

import numpy as np
import soundfile as sf
from numba import njit

from .errors import ScratchnetError
from .files import WriteError, atomic_write
from .signal import SAMPLE_RATE, resample_poly

#: Output formats chosen by file extension, and the sample format written by default.
FORMATS = {".wav": "WAV", ".flac": "FLAC"}
DEFAULT_SUBTYPE = "PCM_16"
#: How each sample format is named in messages.
SUBTYPE_NAMES = {"PCM_16": "16-bit", "PCM_24": "24-bit", "FLOAT": "32-bit float"}
#: Containers libsndfile cannot read: their error says how to convert them.
UNREADABLE = (".m4a", ".aac", ".mp4", ".m4b", ".alac", ".wma", ".webm")


def as_signal(x, name="signal"):
    """``x`` (any array-like) as a float64 signal of shape (n,) or (n, C), checked.

    Raises :class:`ScratchnetError`, in one line that names ``name``, for what is not an
    array of numbers, an array of another number of dimensions, an empty one, one that
    looks like channels first (``(2, n)``: pass its transpose) and one that holds NaN or
    infinite samples.

    Examples
    --------
    >>> as_signal([0.0, 0.5, -0.5], "mixture").dtype
    dtype('float64')
    """
    kind = type(x).__name__ + (f" of dtype {x.dtype}" if hasattr(x, "dtype") else "")
    try:
        if x is None or isinstance(x, (str, bytes)) or np.iscomplexobj(x):
            raise TypeError("not real numbers")  # NumPy would make NaN, parse text, drop imaginary parts
        y = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:  # strings in an array, ragged lists
        reason = str(err).split(". ")[0]
        raise ScratchnetError(f"{name}: expected an array of real numbers, got {kind}: {reason}") from None
    if y.ndim not in (1, 2):
        raise ScratchnetError(f"{name}: expected a signal of shape (n,) or (n, channels), got shape {y.shape}")
    if y.size == 0:  # before the shape's hint: (0, 2) is empty, not transposed
        raise ScratchnetError(f"{name}: signal is empty (shape {y.shape})")
    if y.ndim == 2 and y.shape[0] <= 8 < y.shape[1]:
        raise ScratchnetError(f"{name}: shape {y.shape} looks like channels first: signals are time "
                              f"first, (n, channels); pass its transpose, shape {y.shape[::-1]}")
    check_signal(y, name)
    return y


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
    """``path`` as a str, or a ScratchnetError if it is missing, a directory or not a regular
    file (a FIFO would block the reader until something writes to it; a device never ends)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ScratchnetError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ScratchnetError(f"{path}: is a directory, expected an audio file")
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise ScratchnetError(f"{path}: not a regular file (a pipe, device or socket): give an "
                              "audio file, or - to read standard input (separate, demo)")
    return path


def _unreadable(path, err):
    """The one-line error for a file libsndfile cannot read: its own words after the path,
    and for AAC/M4A and WMA, which it never reads, the command that converts them."""
    message = f"{path}: not a readable audio file ({err})"
    base, ext = os.path.splitext(path)
    if ext.lower() in UNREADABLE:
        message += (f"; {ext} cannot be read (WAV, FLAC, OGG, Opus, MP3 and AIFF can): convert it "
                    f"first, e.g. ffmpeg -i {path} {base}.wav")
    return ScratchnetError(message)


def _read(path):
    """Read ``path`` as float64, shape (n, C), with its sample rate; errors name the path."""
    path = _check_path(path)
    try:
        y, sr = sf.read(path, dtype="float64", always_2d=True)  # n,C
    except (sf.LibsndfileError, RuntimeError) as err:
        raise _unreadable(path, err) from None  # libsndfile's own words ("Format not recognised.")
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


def to_pcm16_numpy(y):
    """Twin of :func:`to_pcm16`: ``(int16 samples, peak)``, in plain NumPy passes."""
    return np.clip(np.rint(y * 32768.0), -32768, 32767).astype(np.int16), float(np.max(np.abs(y)))


@njit(cache=True, nogil=True)
def _to_pcm16(y, out):
    """out[i] = y[i] * 32768 rounded, saturated to int16; returns the peak |y|, NaN if any
    sample is not finite (one pass in place of four NumPy ones and libsndfile's own)."""
    peak = 0.0
    for i in range(y.size):
        v = y[i]
        a = abs(v)
        if not a <= 1e300:  # NaN or infinite
            return np.nan
        peak = max(peak, a)
        q = np.rint(v * 32768.0)
        out[i] = np.int16(min(max(q, -32768.0), 32767.0))
    return peak


def to_pcm16(y, name="samples"):
    """16-bit samples of the float signal ``y`` (any shape): ``(int16 array, peak |y|)``.

    The scale is libsndfile's reading one, 32768: a 16-bit file read and written back is
    unchanged.  Samples beyond full scale saturate (libsndfile would wrap them); a NaN or
    infinite sample is a :class:`ScratchnetError` naming it (:func:`check_signal`).
    """
    y = np.ascontiguousarray(y, dtype=np.float64)
    out = np.empty(y.shape, np.int16)
    peak = _to_pcm16(y.reshape(-1), out.reshape(-1))
    if not np.isfinite(peak):
        check_signal(y, name)
    return out, float(peak)


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
    and a failed write leaves nothing behind: a full disk is one :class:`ScratchnetError`
    naming the file and the system's reason.  Integer formats clip each block to ``[-1, 1]``
    first: libsndfile would otherwise wrap samples that overflow.  ``peak`` is the largest
    absolute sample written so far, and ``clipped`` tells whether any was clipped.

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
        self._sink = _KeptErrors(f.raw)  # unbuffered: each failed write is seen as it happens
        self._file = None
        try:
            self._file = sf.SoundFile(self._sink, "w", int(sr), channels, self.subtype,
                                      format=FORMATS[ext])
            self._check_sink()  # the header could not be written
        except BaseException as err:
            if self._file is not None:
                with contextlib.suppress(Exception):
                    self._file.close()
            self._stack.__exit__(*sys.exc_info())  # removes the temporary file
            if isinstance(err, (OSError, RuntimeError)):
                raise ScratchnetError(f"{self.path}: could not write the file "
                                      f"({_reason(self._sink.error or err)})") from None
            raise
        self.clip = not self.subtype.startswith(("FLOAT", "DOUBLE"))
        self.peak = 0.0

    @property
    def clipped(self):
        return self.clip and self.peak > 1.0

    def _check_sink(self):
        if self._sink.error is not None:
            raise ScratchnetError(f"{self.path}: could not write the file ({_reason(self._sink.error)})")

    def write(self, y):
        """Append samples, shape (n,) or (n, channels)."""
        y = np.asarray(y, dtype=np.float64)
        if self.subtype == "PCM_16" and y.size:  # converted here: libsndfile would wrap overflows
            y, peak = to_pcm16(y, self.path)      # and convert 8 kB at a time through our file
        else:
            if y.size:
                check_signal(y, self.path)
            peak = float(np.max(np.abs(y))) if y.size else 0.0
            y = np.clip(y, -1.0, 1.0) if self.clip else y  # PCM would wrap, not saturate
        self.peak = max(self.peak, peak)
        try:
            self._file.write(y)
        except (AssertionError, RuntimeError) as e:  # soundfile's check that every frame was
            if self._sink.error is None:              # written, or libsndfile's own error
                if isinstance(e, AssertionError):
                    raise
                raise ScratchnetError(f"{self.path}: could not write the file ({e})") from None
        self._check_sink()

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        try:
            try:
                self._file.close()  # writes the header; the temporary file is still open
            except (OSError, RuntimeError) as e:
                if kind is None:  # else the block's own error is the one to tell
                    raise ScratchnetError(f"{self.path}: could not write the file ({_reason(e)})") from None
            if kind is None:
                self._check_sink()
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        try:
            self._stack.__exit__(kind, err, tb)  # rename when complete, else remove
        except WriteError as e:
            raise ScratchnetError(f"{self.path}: could not write the file ({e.reason})") from None
        if isinstance(err, (OSError, RuntimeError)) and not isinstance(err, ScratchnetError):
            raise ScratchnetError(f"{self.path}: could not write the file ({err})") from None
        return False


class _KeptErrors:
    """The temporary file as libsndfile's write callbacks see it: a failed write (a full disk)
    is kept here and reported to libsndfile as nothing written.  Raised inside the C callback,
    it would be printed as "Exception ignored" and lost."""

    def __init__(self, raw):
        self.raw, self.error = raw, None

    def write(self, data):
        view, done = memoryview(data), 0
        while self.error is None and done < len(view):  # a short write is retried: the
            try:                                        # second one says why (ENOSPC, EFBIG)
                done += self.raw.write(view[done:]) or 0
            except OSError as e:
                self.error = e
        return done

    def seek(self, offset, whence=0):
        try:
            return self.raw.seek(offset, whence)
        except (OSError, ValueError) as e:
            self.error = self.error or e
            return -1

    def tell(self):
        try:
            return self.raw.tell()
        except (OSError, ValueError) as e:
            self.error = self.error or e
            return -1


def _reason(err):
    """The system's word for why a write failed ("No space left on device"), else the error."""
    return getattr(err, "strerror", None) or str(err)


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
        raise _unreadable(path, err) from None
    if i.frames <= 0:
        raise ScratchnetError(f"{path}: signal is empty (0 samples)")
    return int(i.frames), int(i.samplerate), int(i.channels)


def loudest_span(path, seconds, *, block_seconds=1.0):
    """``(start, stop)`` in samples of the ``seconds`` of ``path`` with the most energy, read one
    block at a time (memory does not grow with the file); the whole file if it is shorter."""
    n, sr, _ = info(path)
    span, step = int(round(seconds * sr)), max(1, int(round(block_seconds * sr)))
    if n <= span:
        return 0, n
    energy = [float(np.sum(np.square(b))) for b in sf.blocks(os.fspath(path), blocksize=step, dtype="float64")]
    k = max(1, span // step)  # whole blocks in a span
    sums = np.convolve(energy, np.ones(k), mode="valid")  # energy of each run of k blocks
    start = int(np.argmax(sums)) * step
    return start, min(start + span, n)


def read_block(path, start, stop, *, integers=None):
    """Samples ``start:stop`` of every channel, float64 of shape (n, C); checked for NaN
    unless ``integers`` (:func:`plain_integers` of the file, which needs no check)."""
    try:
        y, _ = sf.read(os.fspath(path), start=int(start), stop=int(stop), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise ScratchnetError(f"{os.fspath(path)}: could not read samples {start}..{stop} ({err})") from None
    if not integers:
        check_signal(y, f"{os.fspath(path)} (samples {start}..{stop})")
    return y


def plain_integers(path):
    """True for integer PCM in an uncompressed container (WAV, AIFF, ...): every sample is
    finite and the header's length is the data's, so reading it through finds nothing."""
    i = sf.info(os.fspath(path))
    return i.format in ("WAV", "WAVEX", "RF64", "AIFF", "W64", "CAF") and i.subtype.startswith("PCM")


def check_samples(path, block=1 << 18):
    """Read every sample of an audio file, a block at a time; returns its peak (the largest
    absolute sample; None for integer PCM in a plain container, which needs no reading).
    NaN or infinite samples are refused in one line, before any work.

    Raises :class:`ScratchnetError` as :func:`info` does, and for a file that cannot be read
    to its end.
    """
    path = os.fspath(path)
    n = info(path)[0]
    if plain_integers(path):
        return None  # integer samples in a plain container: no NaN to find, nothing to decode
    peak, bad, first = 0.0, 0, None
    try:
        for k, y in enumerate(sf.blocks(path, blocksize=block, dtype="float64", always_2d=True)):
            finite = np.isfinite(y)
            if not finite.all():
                bad += int((~finite).sum())
                first = k * block + int(np.argwhere(~finite)[0][0]) if first is None else first
            elif y.size:
                peak = max(peak, float(np.max(np.abs(y))))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise ScratchnetError(f"{path}: could not read its {n} samples ({err})") from None
    if bad:
        raise ScratchnetError(f"{path}: signal has {bad} NaN or infinite samples (first at sample {first})")
    return peak
