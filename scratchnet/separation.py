"""One interface for every separator, and separation of whole songs of any length.

A separator is any object with

- ``name`` (str) and ``needs_references`` (bool: the oracle masks need the true sources), and
- ``separate(mixture, references=None) -> (vocals, accompaniment)``, waveforms at 16 kHz.

The baselines (:mod:`scratchnet.baselines`) and the networks (:class:`ModelSeparator`) all
follow it, so ``scratchnet evaluate``, ``scratchnet separate`` and ``scratchnet figure`` treat
them alike.

Long inputs are cut into overlapping chunks that are separated independently and joined with
a raised-cosine cross-fade, so the recurrent state never runs for minutes; files are read,
separated and written one chunk at a time (:func:`stream_separate`), so memory does not grow
with the length of the song.
"""
import os

import numpy as np

from . import audio, pretrained
from .data import stft_options
from .errors import ScratchnetError
from .files import new_folder
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
    """
    needs_references = False

    def __init__(self, model, *, seq_len=None, name="drnn", mask_power=None):
        self.model, self.seq_len, self.name = model, seq_len, name
        self.stft_kw = stft_options(model.config)  # the STFT the model was trained with
        self.mask_power = float(model.config.get("mask_power", 1.0) if mask_power is None else mask_power)
        if not (np.isfinite(self.mask_power) and self.mask_power > 0):
            raise ScratchnetError(f"mask power {self.mask_power} must be a positive number")

    #: Fallback sequence length when a whole-input run overflows: the training length.
    SAFE_SEQ_LEN = 100

    def separate(self, mixture, references=None):
        S = stft(mixture.astype(np.float64), **self.stft_kw)  # F,T
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
        # The masks are applied to the mixture's complex STFT: y / |X| times S keeps its phase.
        scale = np.where(X > 0, 1.0 / np.maximum(X, 1e-30), 0.0)
        kw = dict(self.stft_kw, length=mixture.shape[0])
        vocals = istft(S * (y1 * scale).T, **kw)
        accompaniment = istft(S * (y2 * scale).T, **kw)
        return vocals, accompaniment


def sharpen(y1, y2, X, power):
    """A power mask from two estimates: ``y_i <- y_i^p / (y1^p + y2^p) X``.

    p = 1 gives the estimates' own ratio mask back; p = 2 is Wiener-like (the ratio of
    powers), sharper: more of each bin goes to the source that dominates it.
    """
    p1, p2 = np.power(y1, power), np.power(y2, power)
    s = p1 + p2
    g1 = np.divide(p1, s, out=np.zeros_like(s), where=s > 0)
    return g1 * X, (1 - g1) * X * (s > 0)


def load_model_separator(path=None, *, seq_len="auto", mask_power=None):
    """A shipped model by name (``path=None``: the default one) or any saved model, as a
    :class:`ModelSeparator`."""
    from .models import load_model
    path = pretrained.path_of(path)
    model = load_model(path)
    if seq_len == "auto":
        seq_len = model.config.get("inference_seq_len")
    name = pretrained.name_of(path)
    return ModelSeparator(model, seq_len=seq_len, mask_power=mask_power,
                          name=("drnn" if name == pretrained.DEFAULT else name) if name else os.path.basename(path))


def get_separator(method, *, model=None, mask_power=None):
    """A separator by name: ``drnn`` (the default shipped model, or ``model`` = a shipped model's
    name or a path), ``irm``, ``ibm``, ``rpca``."""
    from .baselines import SEPARATORS
    if model is not None or method == "drnn":
        return load_model_separator(model, mask_power=mask_power)
    if method not in SEPARATORS:
        raise ScratchnetError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    return SEPARATORS[method]()


def _fade(n):
    """Raised-cosine fade-in of n samples; fade-in + reversed fade-in = 1 (no level dip)."""
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)


def crossfade_chunks(n, n_chunk, n_over, separate_span, *, progress=None, scale=1.0):
    """Separate n samples in overlapping chunks; yield finished (vocals, accompaniment) blocks.

    ``separate_span(start, end) -> (vocals, accompaniment)`` separates samples start:end.
    Chunks of ``n_chunk`` samples start every ``n_chunk - n_over``; each is weighted by a
    raised-cosine fade over its overlaps (the fades sum to one), and yielded up to where the
    next chunk begins, so only one chunk's overlap waits in memory.  The blocks add up to n
    samples.  ``progress(k)`` is told ``scale`` times the samples finished after each chunk.
    """
    if n <= n_chunk:
        yield separate_span(0, n)
        if progress:
            progress(round(n * scale))
        return
    fade_in = _fade(n_over)
    starts = list(range(0, n - n_over, n_chunk - n_over))
    pending = None  # the faded tail of the previous chunk, waiting for this one's head
    for k, start in enumerate(starts):
        end = min(start + n_chunk, n)
        v, a = separate_span(start, end)
        last = k == len(starts) - 1
        w = np.ones(end - start)
        if k > 0:
            w[:n_over] = fade_in
        if not last:
            w[-n_over:] = fade_in[::-1]
        v, a = v * w, a * w
        if pending is not None:
            v[:n_over] += pending[0]
            a[:n_over] += pending[1]
        if last:
            yield v, a
        else:
            yield v[:-n_over], a[:-n_over]
            pending = (v[-n_over:], a[-n_over:])
        if progress:
            progress(round((end - start - (0 if k == 0 else n_over)) * scale))


def separate_chunked(separator, mixture, *, chunk=30 * SAMPLE_RATE, overlap=2 * SAMPLE_RATE,
                     progress=None):
    """Separate a long 16 kHz mixture in overlapping chunks joined by a cross-fade.

    Parameters
    ----------
    separator : a separator (see the module docstring); must not need references.
    mixture : ndarray, shape (n,)
    chunk, overlap : int
        Chunk length and overlap in samples, rounded to whole STFT hops.  Inputs no longer
        than ``chunk`` (any input, if ``chunk`` is None) are separated in one piece.
    progress : callable(int) or None
        Called with the number of samples finished after each chunk.

    Returns
    -------
    vocals, accompaniment : ndarray, shape (n,)
    """
    n = mixture.shape[0]
    if chunk is None or n <= chunk:
        chunk, overlap = n, 0  # one piece: however short, a signal needs no overlap
    else:
        # Chunk starts on the STFT's frame grid: each chunk's frames are then the whole
        # signal's frames (but for n_fft/2 samples at its edges), and only the recurrent
        # state differs.
        hop = getattr(separator, "stft_kw", {}).get("hop_length", HOP_LENGTH)
        chunk, overlap = hop * max(1, round(chunk / hop)), hop * max(1, round(overlap / hop))
        if overlap >= chunk:
            raise ScratchnetError(f"{overlap=} must be shorter than {chunk=}")
    blocks = crossfade_chunks(n, chunk, overlap, lambda a, b: separator.separate(mixture[a:b]),
                              progress=progress)
    vocals, accompaniment = (np.concatenate(parts) for parts in zip(*blocks))
    return vocals, accompaniment


def separate_array(mixture, sr, separator=None, *, chunk_seconds=30.0, progress=None):
    """Separate a waveform at any sample rate; returns (vocals, accompaniment) at ``sr``, same length.

    Multi-channel input (shape (n, channels)) is averaged to mono.  The network works at
    16 kHz, so above that rate the vocals are resampled back and the accompaniment is the
    mixture minus the vocals: the two outputs sum to the input exactly and the
    accompaniment keeps the band above 8 kHz.

    Examples
    --------
    >>> from scratchnet.separation import separate_array
    >>> import numpy as np
    >>> sr = 22050
    >>> song = np.random.default_rng(0).standard_normal(sr * 5) * 0.1
    >>> vocals, accompaniment = separate_array(song, sr)  # doctest: +SKIP
    """
    x = np.asarray(mixture, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    audio.check_signal(x, "mixture")
    separator = separator or load_model_separator()
    x16 = audio.resample(x, sr, SAMPLE_RATE) if sr != SAMPLE_RATE else x
    # chunk_seconds=inf: one piece (stream_separate has already cut the file into chunks)
    chunk = int(chunk_seconds * SAMPLE_RATE) if np.isfinite(chunk_seconds) else None
    overlap = min(2 * SAMPLE_RATE, chunk // 4) if chunk else 0
    v16, a16 = separate_chunked(separator, x16, chunk=chunk, overlap=overlap, progress=progress)
    if sr == SAMPLE_RATE:
        return v16, a16
    vocals = audio.resample(v16, SAMPLE_RATE, sr)[: x.shape[0]]
    vocals = np.pad(vocals, (0, x.shape[0] - vocals.shape[0]))
    if sr < SAMPLE_RATE:
        accompaniment = audio.resample(a16, SAMPLE_RATE, sr)[: x.shape[0]]
        accompaniment = np.pad(accompaniment, (0, x.shape[0] - accompaniment.shape[0]))
        return vocals, accompaniment
    return vocals, x - vocals


#: Chunks of a file start on whole units of 4 s: 64000 samples at 16 kHz (125 hops of 512)
#: and 4 * sr samples at any integer input rate, so every chunk's frames are the whole file's.
UNIT_SECONDS = 4


def stream_separate(path, separator, *, chunk_seconds=32, overlap_seconds=4, progress=None):
    """Separate an audio file chunk by chunk; yields finished (vocals, accompaniment) blocks.

    Only one chunk of the file is ever in memory: each is read, averaged to mono,
    separated with :func:`separate_array` (so resampled to 16 kHz and back), weighted by a
    raised-cosine cross-fade over its overlap with the next, and yielded up to where the
    next chunk begins; the faded tail waits for the next chunk.  Blocks are at the file's rate
    and add up to its length.
    """
    n, sr, _ = audio.info(path)
    unit = UNIT_SECONDS * sr
    n_chunk = max(2, round(chunk_seconds / UNIT_SECONDS)) * unit
    n_over = max(1, round(overlap_seconds / UNIT_SECONDS)) * unit
    if n_over >= n_chunk:
        raise ScratchnetError(f"{overlap_seconds=} must be shorter than {chunk_seconds=}")

    def separate_span(start, end):  # one chunk of the file in memory, at its own rate
        x = audio.read_block(path, start, end).mean(axis=1)
        return separate_array(x, sr, separator, chunk_seconds=np.inf)

    yield from crossfade_chunks(n, n_chunk, n_over, separate_span, progress=progress,
                                scale=SAMPLE_RATE / sr)


def separate_file(path, outdir, separator=None, *, fmt=None, bar=None, on_downmix=None,
                  chunk_seconds=32, overlap_seconds=4):
    """Separate one audio file into ``outdir/<stem>/vocals.<fmt>`` and ``accompaniment.<fmt>``.

    Outputs are written at the input's sample rate and length, block by block (memory holds
    one chunk, whatever the length of the song; see :func:`stream_separate`), each to a
    temporary name that is renamed only when complete.  ``fmt`` is "wav" or "flac"
    (default: "flac" for a FLAC input, else "wav").  ``bar`` is an optional tqdm bar (its
    total is set here, in 16 kHz samples); ``on_downmix()`` is called when a multi-channel
    input is averaged to mono.  Returns the two output paths.
    """
    n, sr, channels = audio.info(path)
    if channels > 1 and on_downmix:
        on_downmix()
    stem, ext = os.path.splitext(os.path.basename(path))
    fmt = fmt or ("flac" if ext.lower() == ".flac" else "wav")
    if fmt not in ("wav", "flac"):
        raise ScratchnetError(f"output format {fmt!r} is not supported: use wav or flac")
    target = os.path.join(outdir, stem)
    outputs = [os.path.join(target, f"{name}.{fmt}") for name in ("vocals", "accompaniment")]
    for out in outputs:
        audio.check_not_input(out, [path])
    separator = separator or load_model_separator()
    if bar is not None:
        bar.total = int(np.ceil(n * SAMPLE_RATE / sr))
        bar.refresh()
    with new_folder(target), audio.AtomicWriter(outputs[0], sr) as wv, \
            audio.AtomicWriter(outputs[1], sr) as wa:
        for v, a in stream_separate(path, separator, chunk_seconds=chunk_seconds,
                                    overlap_seconds=overlap_seconds,
                                    progress=bar.update if bar is not None else None):
            wv.write(v)
            wa.write(a)
    return outputs
