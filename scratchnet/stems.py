"""Your own multitrack recordings: the "stems" layout of MUSDB18 and its kind.

A stems folder holds one folder per track::

    DATA/<track>/vocals.wav            (or .flac)       required
    DATA/<track>/accompaniment.wav                      or the other stems, summed:
    DATA/<track>/drums.wav, bass.wav, other.wav         (any of them)
    DATA/<track>/mixture.wav                            optional: checked to be their sum

or the same under ``DATA/train/`` and ``DATA/test/``, as MUSDB18 ships it.  The stems may be
at any sample rate, mono or stereo (each is averaged to mono, as the network hears it), but
the stems of one track share one rate and one length.  Everything that can be checked from
the files' headers is checked when the folder is listed, before any work: a track without
vocals, without accompaniment, with stems of different rates or lengths.

**Excerpts.**  A track is cut into excerpts of :data:`EXCERPT_SECONDS` (10 s, the length of
MIR-1K's clips; a shorter tail joins the excerpt before it), named ``<track>@<start>s``.  An
excerpt is this layout's clip: it is what training draws sequences from, what validation and
``evaluate`` score, and what ``figure --clip`` draws.  Each excerpt is read on its own (a span
of each file, :func:`scratchnet.audio.read_block`), so a long track is never in memory whole,
and training holds no waveform longer than the few excerpts it is using
(:class:`ExcerptSources`).  As for MIR-1K, an excerpt's two sources are scaled to unit norm
and summed, Huang's 0 dB mixture, so its scores compare with MIR-1K's; ``mixture.*`` is read
only to check that it is the sum of the stems, excerpt by excerpt, when the excerpt is read.

**Split.**  By track, never by excerpt: ``train/`` and ``test/`` where the folder has them,
otherwise a seeded 80/20 split of the tracks; training holds out ``--valid-clips`` training
*tracks* for validation.
"""
import collections.abc
import dataclasses
import math
import os
from fractions import Fraction

import numpy as np

from . import audio
from .errors import ScratchnetError
from .signal import SAMPLE_RATE, unit_norm

STEM_EXTENSIONS = (".wav", ".flac")
ACCOMPANIMENT_PARTS = ("drums", "bass", "other")
EXCERPT_SECONDS = 10
TEST_SHARE = 0.2
#: ``mixture.*`` may differ from the sum of the stems by at most this much (lossy encoding).
MIXTURE_TOLERANCE_DB = -20.0


@dataclasses.dataclass(frozen=True)
class Track:
    """One track folder: its stems' paths (checked), their common rate and length in frames."""
    name: str
    path: str
    vocals: str
    accompaniment: tuple  # accompaniment.* alone, or the paths of drums/bass/other, summed
    mixture: str          # "" when the track has none
    sr: int
    frames: int


@dataclasses.dataclass(frozen=True)
class Excerpt:
    """Frames ``start:stop`` of a track; ``singer`` is the track's name (splits go by it)."""
    name: str
    path: str
    singer: str
    track: Track
    start: int
    stop: int

    def load_sources(self, *, sr=SAMPLE_RATE, mixing="0db"):
        """The excerpt's ``(vocals, accompaniment)`` at ``sr``, mono float64, each at unit norm
        (or as the stems hold them: ``mixing="raw"``)."""
        return load_sources(self, sr=sr, mixing=mixing)


# --------------------------------------------------------------------------- finding tracks
def _stem_file(folder, entries, name):
    """``folder/name.wav`` or ``.flac`` (any case; WAV first), or None."""
    for ext in STEM_EXTENSIONS:
        found = entries.get(name + ext)
        if found:
            return os.path.join(folder, found)
    return None


def read_track(folder):
    """The :class:`Track` in ``folder``, its stems checked from their headers."""
    name = os.path.basename(os.path.normpath(folder))
    entries = {e.lower(): e for e in os.listdir(folder)}
    vocals = _stem_file(folder, entries, "vocals")
    if vocals is None:
        raise ScratchnetError(f"track {name!r} ({folder}) has no vocals.wav or vocals.flac")
    accompaniment = _stem_file(folder, entries, "accompaniment")
    parts = (accompaniment,) if accompaniment else tuple(
        p for p in (_stem_file(folder, entries, s) for s in ACCOMPANIMENT_PARTS) if p)
    if not parts:
        raise ScratchnetError(f"track {name!r} ({folder}) has vocals but no accompaniment: add "
                              "accompaniment.wav, or drums, bass and other stems")
    mixture = _stem_file(folder, entries, "mixture") or ""
    frames, sr, _ = audio.info(vocals)
    for path in parts + ((mixture,) if mixture else ()):
        n, rate, _ = audio.info(path)
        this, first = os.path.basename(path), os.path.basename(vocals)
        if rate != sr:
            raise ScratchnetError(f"track {name!r}: {this} is at {rate} Hz but {first} at {sr} Hz: "
                                  "a track's stems must share one rate")
        if n != frames:
            raise ScratchnetError(f"track {name!r}: {this} has {n} samples but {first} {frames}: "
                                  "a track's stems must have one length")
    return Track(name, folder, vocals, parts, mixture, sr, frames)


def _subfolders(folder):
    return sorted(e for e in os.listdir(folder)
                  if not e.startswith(".") and os.path.isdir(os.path.join(folder, e)))


def _has_vocals(folder):
    return any(os.path.splitext(e)[0].lower() == "vocals" and os.path.splitext(e)[1].lower()
               in STEM_EXTENSIONS for e in os.listdir(folder))


def is_stems_folder(data_dir):
    """Whether ``data_dir`` looks like a stems folder: a track folder holding vocals, at the
    top or under ``train/`` or ``test/``."""
    tops = [os.path.join(data_dir, d) for d in _subfolders(data_dir)]
    nested = [os.path.join(t, d) for t in tops if os.path.basename(t) in ("train", "test")
              for d in _subfolders(t)]
    return any(_has_vocals(f) for f in tops + nested)


def find_tracks(folder):
    """Every track in ``folder`` (each non-hidden subfolder), sorted by name."""
    tracks = [read_track(os.path.join(folder, d)) for d in _subfolders(folder)]
    return tracks


def excerpts(track, seconds=EXCERPT_SECONDS):
    """A track cut into excerpts of ``seconds``; a tail shorter than half that joins the last."""
    size = int(round(seconds * track.sr))
    starts = list(range(0, track.frames, size))
    if len(starts) > 1 and track.frames - starts[-1] < size // 2:
        starts.pop()
    stops = starts[1:] + [track.frames]
    return [Excerpt(f"{track.name}@{start // track.sr}s", track.path, track.name, track, start, stop)
            for start, stop in zip(starts, stops)]


def find_parts(data_dir, *, seed=0):
    """The excerpts of each part, split by track: ``({"train", "valid", "test"}, description)``.

    ``train/`` and ``test/`` subfolders where ``data_dir`` has either; otherwise a seeded
    80/20 split of its tracks (at least one test track when there are two or more).
    """
    if any(d in ("train", "test") for d in _subfolders(data_dir)):
        parts = {p: find_tracks(os.path.join(data_dir, p)) if os.path.isdir(os.path.join(data_dir, p))
                 else [] for p in ("train", "test")}
        how = "train/ and test/ folders"
    else:
        tracks = find_tracks(data_dir)
        order = np.random.default_rng(seed).permutation(len(tracks))
        n_test = max(1, round(TEST_SHARE * len(tracks))) if len(tracks) > 1 else 0
        test = set(order[:n_test].tolist())
        parts = {"train": [t for i, t in enumerate(tracks) if i not in test],
                 "test": [t for i, t in enumerate(tracks) if i in test]}
        how = f"a seeded {100 - 100 * TEST_SHARE:.0f}/{100 * TEST_SHARE:.0f} split of the tracks"
    if not parts["train"] and not parts["test"]:
        raise ScratchnetError(f"no tracks (folders holding vocals.wav and accompaniment.wav or "
                              f"drums/bass/other) found in {data_dir!r}")
    clips = {p: [e for t in parts[p] for e in excerpts(t)] for p in ("train", "test")}
    description = (f"stems by track ({how}): " + ", ".join(
        f"{p} {_count(len(parts[p]), 'track')} ({_count(len(clips[p]), 'clip')})" for p in ("train", "test")))
    return {"train": clips["train"], "valid": [], "test": clips["test"]}, description


def _count(n, noun):
    return f"{n} {noun}" + ("" if n == 1 else "s")


# --------------------------------------------------------------------------- reading excerpts
def _read_mono(path, start, stop):
    return audio.read_block(path, start, stop).mean(axis=1)  # k


def _check_mixture(excerpt, vocals, accompaniment):
    """Refuse a ``mixture.*`` that is not the sum of the stems over this excerpt."""
    t = excerpt.track
    mixture = _read_mono(t.mixture, excerpt.start, excerpt.stop)
    residual = np.sum((mixture - vocals - accompaniment) ** 2)
    energy = np.sum(mixture ** 2)
    if residual > energy * 10 ** (MIXTURE_TOLERANCE_DB / 10):
        level = 10 * np.log10(residual / energy) if energy > 0 else np.inf
        raise ScratchnetError(
            f"track {t.name!r}: {os.path.basename(t.mixture)} is not the sum of its stems over "
            f"samples {excerpt.start}..{excerpt.stop} (the difference is at {level:.1f} dB, at most "
            f"{MIXTURE_TOLERANCE_DB:g} dB allowed): remove it, or fix the stems")


def load_sources(excerpt, *, sr=SAMPLE_RATE, mixing="0db"):
    """``(vocals, accompaniment)`` of an excerpt at ``sr``: mono, float64, each at unit norm,
    or with ``mixing="raw"`` as the stems hold them (their sum is the track's mix)."""
    t = excerpt.track
    vocals = _read_mono(t.vocals, excerpt.start, excerpt.stop)
    accompaniment = sum(_read_mono(p, excerpt.start, excerpt.stop) for p in t.accompaniment)
    if t.mixture:
        _check_mixture(excerpt, vocals, accompaniment)
    if sr is not None and sr != t.sr:
        vocals, accompaniment = (audio.resample(x, t.sr, sr) for x in (vocals, accompaniment))
    if mixing == "raw":
        return vocals, accompaniment
    return unit_norm(vocals), unit_norm(accompaniment)


def excerpt_length(excerpt, sr=SAMPLE_RATE):
    """Samples of the excerpt at ``sr``, without reading it (as :func:`audio.resample` makes them)."""
    n = excerpt.stop - excerpt.start
    return n if sr == excerpt.track.sr else math.ceil(Fraction(n * sr, excerpt.track.sr))


class ExcerptSources(collections.abc.Sequence):
    """Training sources read from disk when asked: ``sources[i]`` is excerpt i's
    ``(vocals, accompaniment)`` at 16 kHz, float32.

    :class:`scratchnet.data.SequenceStream` takes it in place of a list of waveforms; it reads
    the excerpts of one pool of training pairs at a time, and ``lengths`` (samples of each
    excerpt) lets it plan an epoch without reading anything.
    """

    def __init__(self, excerpts, sr=SAMPLE_RATE):
        self.excerpts, self.sr = list(excerpts), sr
        self.lengths = [excerpt_length(e, sr) for e in self.excerpts]

    def __len__(self):
        return len(self.excerpts)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        v, a = load_sources(self.excerpts[i], sr=self.sr)
        return v.astype(np.float32), a.astype(np.float32)
