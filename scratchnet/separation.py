"""One interface for every separator, and separation of whole songs of any length.

A separator is any object with

- ``name`` (str) and ``needs_references`` (bool: the oracle masks need the true sources),
- ``separate(mixture, references=None) -> (vocals, accompaniment)``, waveforms at 16 kHz, and
  optionally
- ``vocal_mask(mixture) -> mask`` (F, T) in [0, 1] with ``stft_kw``, the STFT it belongs to:
  a separator that has it separates a song of any number of channels with one mask
  (:func:`separate_channels`; with ``vocal_mask_of(S)`` too, from the channels' STFTs
  already made); any other is run on each channel alone, but one with ``multichannel``
  true, whose ``separate`` takes (n, C) itself (a network that runs at a rate below 16 kHz).

The baselines (:mod:`scratchnet.baselines`) and the networks (:class:`ModelSeparator`) all
follow it, so ``scratchnet evaluate``, ``scratchnet separate`` and ``scratchnet figure`` treat
them alike.

A song of several channels keeps them: the mask is computed once, from the channels'
mean, and applied to each channel's STFT, so the stems have the song's stereo image and each
channel's stems sum back to that channel.

Long inputs are cut into overlapping chunks that are separated independently and joined with
a raised-cosine cross-fade, so the recurrent state never runs for minutes; files are read,
separated and written one chunk at a time (:func:`stream_separate`), so memory does not grow
with the length of the song.
"""
import os

import numpy as np

from . import audio, pretrained
from .errors import ScratchnetError
from .files import new_folder
from .models.config import model_rate, stft_options
from .signal import HOP_LENGTH, SAMPLE_RATE, istft, stft

DEFAULT_MODEL = pretrained.path_of(None)  # the file of the default shipped model
METHODS = ("drnn", "irm", "ibm", "rpca")


class ModelSeparator:
    """A trained network as a separator: magnitude STFT in, masked magnitudes out, mixture phase.

    Parameters
    ----------
    model : scratchnet.models.Model
    seq_len : int or None
        Run the recurrence over sequences of this many frames (restarting the state, as in
        training); None runs the whole input as one sequence.

    Notes
    -----
    A model whose network runs below 16 kHz (its ``sample_rate``) is given every mixture
    resampled to that rate, and its vocals resampled back to 16 kHz; the accompaniment is the
    mixture minus them, so the two sum to the mixture exactly and the band above the model's
    Nyquist rate goes to the accompaniment.  Such a separator takes several channels in
    ``separate`` itself (``multichannel``): one mask from the channels' mean, as
    :func:`separate_channels` does at 16 kHz.  Its :attr:`stft_kw` and masks are at its rate.
    """
    needs_references = False

    def __init__(self, model, *, seq_len=None, name="drnn", mask_power=None):
        self.model, self.seq_len, self.name = model, seq_len, name
        self.stft_kw = stft_options(model.config)  # the STFT the model was trained with
        self.rate = model_rate(model.config)  # and the rate it runs at
        self.multichannel = self.rate != SAMPLE_RATE
        self.mask_power = float(model.config.get("mask_power", 1.0) if mask_power is None else mask_power)
        if not (np.isfinite(self.mask_power) and self.mask_power > 0):
            raise ScratchnetError(f"mask power {self.mask_power} must be a positive number")

    #: Fallback sequence length when a whole-input run overflows: the training length.
    SAFE_SEQ_LEN = 100

    def separate(self, mixture, references=None):
        if self.rate != SAMPLE_RATE:
            vocals = self._vocals_resampled(np.asarray(mixture, dtype=np.float64))
            return vocals, mixture - vocals
        S = stft(mixture.astype(np.float64), **self.stft_kw)  # F,T
        y1, y2, scale = self._estimates(S)
        # The masks are applied to the mixture's complex STFT: y / |X| times S keeps its phase.
        kw = dict(self.stft_kw, length=mixture.shape[0])
        vocals = istft(S * (y1 * scale).T, **kw)
        accompaniment = istft(S * (y2 * scale).T, **kw)
        return vocals, accompaniment

    def _vocals_resampled(self, x):
        """The vocals (x's shape, 16 kHz) of a 16 kHz mixture x (n,) or (n, C) through a
        network at ``rate``: one mask from the channels' mean, applied to each channel."""
        xr = audio.resample(x, SAMPLE_RATE, self.rate)
        chans = xr.reshape(xr.shape[0], -1)  # m,C
        specs = [stft(chans[:, c], **self.stft_kw) for c in range(chans.shape[1])]
        mask = self.vocal_mask_of(sum(specs) / len(specs)).astype(np.float64)
        kw = dict(self.stft_kw, length=xr.shape[0])
        vocals = np.stack([istft(S * mask, **kw) for S in specs], axis=1)  # m,C at the model's rate
        return _fit(audio.resample(vocals, self.rate, SAMPLE_RATE), x.shape[0]).reshape(x.shape)

    def vocal_mask(self, mixture):
        """The vocal mask ``y1 / |X|`` (F, T) of ``mixture`` (n,), in [0, 1]; 0 where |X| = 0.
        ``mixture`` is at 16 kHz; the mask is in the grid of :attr:`stft_kw` at :attr:`rate`."""
        x = mixture.astype(np.float64)
        if self.rate != SAMPLE_RATE:
            x = audio.resample(x, SAMPLE_RATE, self.rate)
        return self.vocal_mask_of(stft(x, **self.stft_kw))

    def vocal_mask_of(self, S):
        """The vocal mask (F, T) of a mixture's STFT ``S`` (F, T), made with :attr:`stft_kw`."""
        y1, _, scale = self._estimates(S)
        return (y1 * scale).T  # F,T

    def _estimates(self, S):
        """The network's two magnitude estimates (T, F each) for the STFT ``S`` (F, T), and
        ``1 / |X|`` (T, F; 0 where |X| = 0) that turns them into masks."""
        X = np.abs(S).T.astype(np.float32)  # T,F
        with np.errstate(over="ignore", invalid="ignore"):
            y1, y2 = self.model.predict(X, seq_len=self.seq_len)  # T,F each
        if not (np.isfinite(y1).all() and np.isfinite(y2).all()):
            # A ReLU recurrence whose weights amplify can overflow on sequences much longer
            # than it was trained on; restarting the state as in training keeps it finite.
            y1, y2 = self.model.predict(X, seq_len=self.SAFE_SEQ_LEN)
            if not (np.isfinite(y1).all() and np.isfinite(y2).all()):
                raise ScratchnetError(f"model {self.name!r} gives non-finite output even on "
                                      f"{self.SAFE_SEQ_LEN}-frame sequences: it diverged in training")
        if self.mask_power != 1.0:
            y1, y2 = sharpen(y1, y2, X, self.mask_power)
        return y1, y2, np.where(X > 0, 1.0 / np.maximum(X, 1e-30), 0.0)


def sharpen(y1, y2, X, power):
    """A power mask from two estimates: ``y_i <- y_i^p / (y1^p + y2^p) X``.

    p = 1 gives the estimates' own ratio mask back; p = 2 is Wiener-like (the ratio of
    powers), sharper: more of each bin goes to the source that dominates it; a large p is
    the binary mask.  Computed as ``g1 = 1 / (1 + exp(-p (log y1 - log y2)))``, so no power
    overflows (``--mask-power 1e6``); a bin where both estimates are 0 gives 0 to both.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        d = power * (np.log(y1.astype(np.float64)) - np.log(y2.astype(np.float64)))
        g1 = np.exp(-np.logaddexp(0.0, -d))  # the logistic of d, without overflow
    both = (y1 <= 0) & (y2 <= 0)
    g1 = np.where(both, 0.0, np.where(np.isnan(d), (y1 > 0).astype(np.float64), g1)).astype(X.dtype)
    return g1 * X, (1 - g1) * X * ~both


def load_model_separator(path=None, *, seq_len="auto", mask_power=None):
    """A shipped model by name (``path=None``: the default one) or any saved model, as a
    :class:`ModelSeparator`."""
    from .models import load_model
    path = pretrained.path_of(path)
    model = load_model(path)
    if seq_len == "auto":
        seq_len = model.config.get("inference_seq_len")
    # the model that runs names the separator: the shipped name, or the file's
    name = pretrained.name_of(path) or os.path.basename(path)
    return ModelSeparator(model, seq_len=seq_len, mask_power=mask_power, name=name)


def get_separator(method, *, model=None, mask_power=None):
    """A separator by name: ``drnn`` (the default shipped model, or ``model`` = a shipped model's
    name or a path), ``irm``, ``ibm``, ``rpca``."""
    from .baselines import SEPARATORS
    if model is not None or method == "drnn":
        return load_model_separator(model, mask_power=mask_power)
    if method not in SEPARATORS:
        raise ScratchnetError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    return SEPARATORS[method]()


def separate_channels(separator, x):
    """Separate a 16 kHz signal of one or several channels: ``(vocals, accompaniment)``, x's shape.

    Parameters
    ----------
    separator : a separator (see the module docstring); must not need references.
    x : ndarray, shape (n,) or (n, C)

    Notes
    -----
    One channel is the separator's own ``separate``.  Several: the vocal mask ``m`` (F, T)
    is computed once from the channels' mean, and each channel ``c`` gets

        vocals_c = istft(m * STFT(x_c)),    accompaniment_c = x_c - vocals_c,

    the second being ``istft((1 - m) * STFT(x_c))`` by linearity, so each channel's stems sum
    back to it exactly, even where the channels cancel in the mean (|X| = 0 there: m = 0,
    all to the accompaniment).  A separator without ``vocal_mask`` is run on each channel.
    """
    if x.ndim == 1 or getattr(separator, "multichannel", False):
        return separator.separate(x)
    if not hasattr(separator, "vocal_mask"):  # a separator of one's own: channel by channel
        pairs = [separator.separate(x[:, c]) for c in range(x.shape[1])]
        return tuple(np.stack([p[i] for p in pairs], axis=1) for i in (0, 1))  # n,C each
    specs = [stft(x[:, c], **separator.stft_kw) for c in range(x.shape[1])]  # C of F,T
    if hasattr(separator, "vocal_mask_of"):  # the STFT is linear: the mean's is the mean of theirs
        mask = separator.vocal_mask_of(sum(specs) / len(specs))
    else:
        mask = separator.vocal_mask(x.mean(axis=1))
    kw, mask = dict(separator.stft_kw, length=x.shape[0]), mask.astype(np.float64)
    vocals = np.stack([istft(S * mask, **kw) for S in specs], axis=1)  # n,C
    return vocals, x - vocals


def _fade(n):
    """Raised-cosine fade-in of n samples; fade-in + reversed fade-in = 1 (no level dip)."""
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)


def crossfade_chunks(n, n_chunk, n_over, separate_span, *, progress=None, inplace=False):
    """Separate n samples in overlapping chunks; yield finished blocks, a tuple per chunk.

    ``separate_span(start, end)`` separates samples start:end into a tuple of outputs
    (vocals, accompaniment; or the vocals alone), each of shape (end - start,) or
    (end - start, C).  Chunks of ``n_chunk`` samples start every ``n_chunk - n_over``; each
    is weighted by a raised-cosine fade over its overlaps (the fades sum to one), and
    yielded up to where the next chunk begins, so only one chunk's overlap waits in memory.
    The blocks add up to n samples.  ``progress(k)`` is told the number of samples finished
    after each chunk.  ``inplace``: the outputs ``separate_span`` returns are its own (read
    from a file), so their overlaps may be weighed in place.
    """
    if n <= n_chunk:
        yield tuple(separate_span(0, n))
        if progress:
            progress(n)
        return
    fade_in = _fade(n_over)
    starts = list(range(0, n - n_over, n_chunk - n_over))
    pending = None  # the faded tails of the previous chunk, waiting for this one's heads
    for k, start in enumerate(starts):
        end = min(start + n_chunk, n)
        outs = list(separate_span(start, end))
        last = k == len(starts) - 1
        w = np.ones(end - start)
        if k > 0:
            w[:n_over] = fade_in
        if not last:
            w[-n_over:] = fade_in[::-1]
        w = w.reshape(-1, *[1] * (outs[0].ndim - 1))  # n or n,1: one weight for every channel
        parts = ([slice(0, n_over)] if k > 0 else []) + ([slice(len(w) - n_over, len(w))] if not last else [])
        owned = inplace and len(w) >= 2 * n_over and all(
            y.dtype == np.float64 and y.flags.writeable for y in outs) and not any(
            np.shares_memory(outs[i], outs[j]) for i in range(len(outs)) for j in range(i))
        for i, y in enumerate(outs):
            if owned:  # w is 1 but for the overlaps: weigh them in place, not a copy of the chunk
                for part in parts:
                    y[part] *= w[part]
            else:
                outs[i] = y = y * w
            if pending is not None:
                y[:n_over] += pending[i]
        if last:
            yield tuple(outs)
        else:
            yield tuple(y[:-n_over] for y in outs)
            pending = [y[-n_over:] for y in outs]
        if progress:
            progress(end - start - (0 if k == 0 else n_over))


def separate_chunked(separator, mixture, *, chunk=30 * SAMPLE_RATE, overlap=2 * SAMPLE_RATE,
                     progress=None, vocals_only=False):
    """Separate a long 16 kHz mixture in overlapping chunks joined by a cross-fade.

    Parameters
    ----------
    separator : a separator (see the module docstring); must not need references.
    mixture : ndarray, shape (n,) or (n, C)
        Several channels are separated with one mask (:func:`separate_channels`).
    chunk, overlap : int
        Chunk length and overlap in samples, rounded to whole STFT hops.  Inputs no longer
        than ``chunk`` (any input, if ``chunk`` is None) are separated in one piece.
    progress : callable(int) or None
        Called with the number of samples finished after each chunk.
    vocals_only : bool
        Return ``(vocals,)`` alone (a caller that makes the accompaniment itself).

    Returns
    -------
    vocals, accompaniment : ndarray, the shape of ``mixture``
    """
    n = mixture.shape[0]
    if chunk is None or n <= chunk:
        chunk, overlap = n, 0  # one piece: however short, a signal needs no overlap
    else:
        # Chunk starts on the STFT's frame grid: each chunk's frames are then the whole
        # signal's frames (but for n_fft/2 samples at its edges), and only the recurrent
        # state differs.
        hop = getattr(separator, "stft_kw", {}).get("hop_length", HOP_LENGTH)
        rate = getattr(separator, "rate", SAMPLE_RATE)  # a hop at the network's rate, in 16 kHz samples
        if (hop * SAMPLE_RATE) % rate == 0:
            hop = hop * SAMPLE_RATE // rate
        chunk, overlap = hop * max(1, round(chunk / hop)), hop * max(1, round(overlap / hop))
        if overlap >= chunk:
            raise ScratchnetError(f"{overlap=} must be shorter than {chunk=}")
    keep = 1 if vocals_only else 2
    blocks = crossfade_chunks(n, chunk, overlap,
                              lambda a, b: separate_channels(separator, mixture[a:b])[:keep],
                              progress=progress)
    return tuple(np.concatenate(parts) for parts in zip(*blocks))


def _fit(y, n):
    """``y`` cut or zero-padded to n samples along its first (time) axis."""
    if y.shape[0] >= n:
        return y[:n]  # a view: no copy of a whole song
    return np.pad(y, [(0, n - y.shape[0])] + [(0, 0)] * (y.ndim - 1))


def separate_array(mixture, sr, separator=None, *, mono=False, chunk_seconds=30.0, progress=None):
    """Separate a waveform at any sample rate; returns (vocals, accompaniment) at ``sr``.

    Parameters
    ----------
    mixture : ndarray, shape (n,) or (n, C)
        Time first, as soundfile returns it.
    sr : int
    separator : a separator, default the shipped model.
    mono : bool
        Average the channels first: both outputs are then of shape (n,).  Otherwise the
        outputs have the input's shape, each channel separated with one mask computed from
        the channels' mean (:func:`separate_channels`).

    Notes
    -----
    The network works at 16 kHz, so above that rate the vocals are resampled back and the
    accompaniment is the mixture minus the vocals: the two outputs sum to the input exactly
    and the accompaniment keeps the band above 8 kHz.  At 16 kHz and below they sum to it
    to within the STFT's (and the resampling's) precision.

    Examples
    --------
    >>> from scratchnet.separation import separate_array
    >>> import numpy as np
    >>> sr = 22050
    >>> song = np.random.default_rng(0).standard_normal((sr * 5, 2)) * 0.1
    >>> vocals, accompaniment = separate_array(song, sr)  # doctest: +SKIP
    >>> vocals.shape                                        # doctest: +SKIP
    (110250, 2)
    """
    x = audio.as_signal(mixture, "mixture")  # float64, (n,) or (n, C), finite, or one line
    if mono and x.ndim == 2:
        x = x.mean(axis=1)
    separator = separator or load_model_separator()
    x16 = audio.resample(x, sr, SAMPLE_RATE) if sr != SAMPLE_RATE else x
    # chunk_seconds=inf: one piece (stream_separate has already cut the file into chunks)
    chunk = int(chunk_seconds * SAMPLE_RATE) if np.isfinite(chunk_seconds) else None
    overlap = min(2 * SAMPLE_RATE, chunk // 4) if chunk else 0
    # above 16 kHz the accompaniment is made here, at the input's rate: its 16 kHz one is not needed
    out16 = separate_chunked(separator, x16, chunk=chunk, overlap=overlap, progress=progress,
                             vocals_only=sr > SAMPLE_RATE)
    if sr == SAMPLE_RATE:
        return out16
    n = x.shape[0]
    vocals = _fit(audio.resample(out16[0], SAMPLE_RATE, sr), n)
    if sr < SAMPLE_RATE:
        return vocals, _fit(audio.resample(out16[1], SAMPLE_RATE, sr), n)
    return vocals, np.subtract(x, vocals, out=x if x is not mixture else None)


#: Chunks of a file start on whole units of 4 s: 64000 samples at 16 kHz (125 hops of 512)
#: and 4 * sr samples at any integer input rate, so every chunk's frames are the whole file's.
UNIT_SECONDS = 4


#: A file is separated in chunks of this many seconds, each overlapping the next by
#: ``OVERLAP_SECONDS``: 32 s chunks had cost 14 % more network time than the song (a 4 s
#: overlap in every 28 s), 64 s ones cost 7 %, as the in-process 30 s chunks with 2 s overlap;
#: memory holds one chunk (about 20 MB a channel at 44.1 kHz).
CHUNK_SECONDS, OVERLAP_SECONDS = 64, 4


def stream_separate(path, separator, *, mono=False, chunk_seconds=CHUNK_SECONDS,
                    overlap_seconds=OVERLAP_SECONDS, progress=None):
    """Separate an audio file chunk by chunk; yields finished (vocals, accompaniment) blocks.

    Only one chunk of the file is ever in memory: each is read, separated with
    :func:`separate_array` (so resampled to 16 kHz and back, its channels kept unless
    ``mono``), weighted by a raised-cosine cross-fade over its overlap with the next, and
    yielded up to where the next chunk begins; the faded tail waits for the next chunk.
    Blocks are at the file's rate, shape (k,) for a mono file or with ``mono``, else (k, C),
    and add up to its length.  ``progress(seconds)`` is told the seconds of the file's audio
    finished after each chunk.
    """
    n, sr, channels = audio.info(path)
    unit = UNIT_SECONDS * sr
    n_chunk = max(2, round(chunk_seconds / UNIT_SECONDS)) * unit
    n_over = max(1, round(overlap_seconds / UNIT_SECONDS)) * unit
    if n_over >= n_chunk:
        raise ScratchnetError(f"{overlap_seconds=} must be shorter than {chunk_seconds=}")

    integers = audio.plain_integers(path)  # finite by construction: no check of each block

    def separate_span(start, end):  # one chunk of the file in memory, at its own rate
        x = audio.read_block(path, start, end, integers=integers)  # k,C
        x = x.mean(axis=1) if mono or channels == 1 else x
        return separate_array(x, sr, separator, chunk_seconds=np.inf)

    yield from crossfade_chunks(n, n_chunk, n_over, separate_span, inplace=True,
                                progress=(lambda k: progress(k / sr)) if progress else None)


STEMS = ("vocals", "accompaniment")


def outputs_of(path, outdir, fmt=None, subtype=None):
    """Where :func:`separate_file` writes the stems of ``path``: ``(folder, [vocals, accompaniment])``.

    The folder is ``outdir/<file name without extension>``; ``fmt`` is "wav" or "flac"
    (default: "flac" for a FLAC input, else "wav"; "wav" for float samples, ``subtype``
    "FLOAT", which FLAC cannot hold).
    """
    stem, ext = os.path.splitext(os.path.basename(os.fspath(path)))
    floats = subtype in ("FLOAT", "DOUBLE")
    if fmt == "flac" and floats:
        raise ScratchnetError("FLAC cannot hold float samples: --float32 writes WAV (drop --format flac)")
    fmt = fmt or ("flac" if ext.lower() == ".flac" and not floats else "wav")
    if fmt not in ("wav", "flac"):
        raise ScratchnetError(f"output format {fmt!r} is not supported: use wav or flac")
    target = os.path.join(outdir, stem)
    return target, [os.path.join(target, f"{name}.{fmt}") for name in STEMS]


def separate_file(path, outdir, separator=None, *, fmt=None, subtype=None, mono=False, bar=None,
                  on_downmix=None, on_clip=None, chunk_seconds=CHUNK_SECONDS,
                  overlap_seconds=OVERLAP_SECONDS):
    """Separate one audio file into ``outdir/<stem>/vocals.<fmt>`` and ``accompaniment.<fmt>``.

    Outputs are written at the input's sample rate, length and number of channels (one
    with ``mono``), block by block (memory holds one chunk, whatever the length of the
    song; see :func:`stream_separate`), each to a temporary name that is renamed only when
    complete; existing files of those names are replaced.  ``fmt`` is "wav" or "flac"
    (default: "flac" for a FLAC input, else "wav"); ``subtype`` the sample format (16-bit
    by default, "PCM_24", "FLOAT": see :class:`scratchnet.audio.AtomicWriter`).  ``bar`` is
    an optional tqdm bar (its total is set here, in seconds of the input's audio);
    ``on_downmix()`` is called when the input has several channels (averaged to mono for the
    mask, or whole with ``mono``), ``on_clip(peak)`` when integer samples clipped the stems
    (their peak was above full scale: they no longer sum to the input).
    Returns the two output paths.
    """
    n, sr, channels = audio.info(path)
    if channels > 1 and on_downmix:
        on_downmix()
    target, outputs = outputs_of(path, outdir, fmt, subtype)
    for out in outputs:
        audio.check_not_input(out, [path])
    separator = separator or load_model_separator()
    if bar is not None:
        bar.total = n / sr
        bar.refresh()
    out_channels = 1 if mono else channels
    kw = dict(channels=out_channels, subtype=subtype)
    with new_folder(target), audio.AtomicWriter(outputs[0], sr, **kw) as wv, \
            audio.AtomicWriter(outputs[1], sr, **kw) as wa:
        for v, a in stream_separate(path, separator, mono=mono, chunk_seconds=chunk_seconds,
                                    overlap_seconds=overlap_seconds,
                                    progress=bar.update if bar is not None else None):
            wv.write(v)
            wa.write(a)
    if on_clip and (wv.clipped or wa.clipped):
        on_clip(max(wv.peak, wa.peak))
    return outputs
