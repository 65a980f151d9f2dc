"""MIR-1K: finding the clips, the named splits, Huang's mixtures, augmentation and training batches.

A data folder may also hold one's own multitracks in the "stems" layout of MUSDB18
(:mod:`scratchnet.stems`); :func:`find_parts` tells the two apart and lists the clips of
either, and :func:`load_sources` reads a clip of either.

A MIR-1K clip is a stereo file ``<singer>_<song>_<clip>.wav|.flac`` whose left channel is the
accompaniment and right channel the singing voice.  Huang et al. (2014) scale each source to
unit L2 norm and sum them, a 0 dB mixture; they train on the 175 clips of singers abjones and
amy and test on the rest.  Training mixtures are multiplied by circular shifts: the
accompaniment rotated against the vocals in steps of 10,000 samples, each shift a new mixture.

Nothing here holds the augmented set in memory: :class:`SequenceStream` makes each batch from
the clips' waveforms on the fly, a small pool of (clip, shift) pairs at a time.
"""
import collections
import dataclasses
import os
import re

import numpy as np

from . import audio
from .errors import ScratchnetError
from .signal import HOP_LENGTH, N_FFT, SAMPLE_RATE, WINDOW, stft, unit_norm

AUDIO_EXTENSIONS = (".wav", ".flac")
HUANG_TRAIN_SINGERS = ("abjones", "amy")
SPLITS = ("huang", "amer", "course", "singer")
LAYOUTS = ("mir1k", "stems")
_NAME = re.compile(r"^(?P<singer>[A-Za-z0-9]+)_(?P<song>\d+)_(?P<clip>\d+)$")


@dataclasses.dataclass(frozen=True)
class Clip:
    """One MIR-1K clip on disk: ``name`` is the file stem, e.g. ``"abjones_1_01"``."""
    name: str
    path: str
    singer: str


def find_clips(data_dir):
    """All MIR-1K clips (``.wav`` or ``.flac``) in ``data_dir``, sorted by name.

    When both a ``.wav`` and a ``.flac`` of one clip exist, the ``.wav`` is used.
    Raises :class:`ScratchnetError` if the folder is missing or holds no MIR-1K clip.
    """
    if not os.path.isdir(data_dir):
        raise ScratchnetError(f"data folder {data_dir!r} does not exist or is not a folder")
    clips = {}
    for entry in sorted(os.listdir(data_dir)):
        stem, ext = os.path.splitext(entry)
        m = _NAME.match(stem)
        if ext.lower() not in AUDIO_EXTENSIONS or m is None:
            continue
        if stem in clips and ext.lower() != ".wav":
            continue
        clips[stem] = Clip(stem, os.path.join(data_dir, entry), m.group("singer"))
    if not clips:
        raise ScratchnetError(
            f"no MIR-1K clips (<singer>_<song>_<clip>.wav or .flac) found in {data_dir!r}")
    return [clips[k] for k in sorted(clips)]


def split(clips, name="huang", *, seed=0):
    """Split clips into named parts; returns ``{"train": [...], "valid": [...], "test": [...]}``.

    Parameters
    ----------
    clips : list of Clip
    name : {"huang", "amer", "course", "singer"}
        ``huang``: train = singers abjones and amy, test = every other clip present, no valid.
        ``amer``: a seeded random 70/30 train/test split of all clips present (Amer & Al Tmeme
        used 700/300 of the 1000).  ``course``: Huang's training clips split 150 train / 25
        valid (seeded), test as ``huang``.  When fewer than 175 training clips are present the
        validation part keeps the same 1/7 share.  ``singer``: a new singer as validation --
        train = singer amy, valid = singer abjones, test as ``huang``; for choosing what helps
        a model generalise to voices it never heard (validation on the training singers
        cannot see that).
    seed : int
        Seed for the random parts.
    """
    if name not in SPLITS:
        raise ScratchnetError(f"unknown split {name!r}: choose one of {', '.join(SPLITS)}")
    clips = sorted(clips, key=lambda c: c.name)
    rng = np.random.default_rng(seed)
    if name == "amer":
        order = rng.permutation(len(clips))
        n_train = int(round(0.7 * len(clips)))
        return {"train": [clips[i] for i in sorted(order[:n_train])], "valid": [],
                "test": [clips[i] for i in sorted(order[n_train:])]}
    train = [c for c in clips if c.singer in HUANG_TRAIN_SINGERS]
    test = [c for c in clips if c.singer not in HUANG_TRAIN_SINGERS]
    if name == "huang":
        return {"train": train, "valid": [], "test": test}
    if name == "singer":
        held_out = HUANG_TRAIN_SINGERS[0]  # abjones, 43 clips; amy has 132
        return {"train": [c for c in train if c.singer != held_out],
                "valid": [c for c in train if c.singer == held_out], "test": test}
    order = rng.permutation(len(train))
    n_valid = int(round(len(train) * 25 / 175))
    valid_idx = set(order[:n_valid].tolist())
    return {"train": [c for i, c in enumerate(train) if i not in valid_idx],
            "valid": [c for i, c in enumerate(train) if i in valid_idx], "test": test}


def describe_split(parts):
    """One line saying how many clips each part holds, e.g. ``train 175, valid 0, test 417``."""
    return ", ".join(f"{k} {len(v)}" for k, v in parts.items())


#: What :func:`find_parts` found: the layout, the split's name, its parts and one line saying so.
Found = collections.namedtuple("Found", "layout split parts description")


def detect_layout(data_dir):
    """``"mir1k"`` for a folder of MIR-1K clips, ``"stems"`` for a folder of track folders."""
    if not os.path.isdir(data_dir):
        raise ScratchnetError(f"data folder {data_dir!r} does not exist or is not a folder")
    if any(_NAME.match(os.path.splitext(e)[0]) and os.path.splitext(e)[1].lower() in AUDIO_EXTENSIONS
           for e in os.listdir(data_dir)):
        return "mir1k"
    from . import stems
    if stems.is_stems_folder(data_dir):
        return "stems"
    raise ScratchnetError(
        f"no MIR-1K clips (<singer>_<song>_<clip>.wav or .flac) and no tracks of stems "
        f"(<track>/vocals.wav with accompaniment.wav or drums/bass/other) found in {data_dir!r}")


def find_parts(data_dir, *, layout=None, split_name=None, seed=0):
    """The clips of each part of a data folder of either layout, as a :data:`Found`.

    ``layout`` None detects it.  MIR-1K folders are split by ``split_name`` (default
    ``huang``; see :func:`split`); stems folders by track (:func:`scratchnet.stems.find_parts`),
    and refuse a ``split_name``.
    """
    layout = layout or detect_layout(data_dir)
    if layout not in LAYOUTS:
        raise ScratchnetError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    if layout == "stems":
        from . import stems
        if split_name is not None:
            raise ScratchnetError(f"--split {split_name} is for MIR-1K folders: a stems folder is split "
                                  "by track (its train/ and test/ folders, or a seeded 80/20 split)")
        if not os.path.isdir(data_dir):
            raise ScratchnetError(f"data folder {data_dir!r} does not exist or is not a folder")
        parts, description = stems.find_parts(data_dir, seed=seed)
        return Found("stems", "tracks", parts, description)
    split_name = split_name or "huang"
    parts = split(find_clips(data_dir), split_name, seed=seed)
    return Found("mir1k", split_name, parts, f"split {split_name}: {describe_split(parts)}")


def find_clip(data_dir, name, *, layout=None):
    """The clip called ``name`` in a data folder of either layout (any part)."""
    found = find_parts(data_dir, layout=layout)
    clips = {c.name: c for part in found.parts.values() for c in part}
    if name not in clips:
        hint = (f" (a stems clip is named <track>@<start>s, e.g. {next(iter(clips))!r})"
                if found.layout == "stems" and clips else "")
        raise ScratchnetError(f"clip {name!r} is not in {data_dir!r}{hint}")
    return clips[name]


#: How a clip's two sources make its mixture (``scratchnet evaluate --mixing``):
#: "0db", Huang et al.'s: each source scaled to unit L2 norm, then summed (a 0 dB
#: vocal-to-accompaniment ratio); "raw", SH-4stack's and E-MRP-CNN's (Park et al. 2018, Yuan
#: et al. 2020): the mean of the two channels as recorded, the references being the halves
#: that sum to it.  MIR-1K's channels are energy-matched, so the two differ by a level.
MIXINGS = ("0db", "raw")


def _check_mixing(mixing):
    if mixing not in MIXINGS:
        raise ScratchnetError(f"mixing {mixing!r} is not one of {', '.join(MIXINGS)}")


def load_sources(clip, *, sr=SAMPLE_RATE, mixing="0db"):
    """The clip's (vocals, accompaniment) as float64 at ``sr``, each scaled to unit L2 norm
    (``mixing="0db"``), or as half of each channel as recorded (``"raw"``: see :data:`MIXINGS`).

    A silent channel stays all zeros (there is no norm to divide by).  A clip of another
    layout (a :class:`scratchnet.stems.Excerpt`) reads itself.
    """
    _check_mixing(mixing)
    if hasattr(clip, "load_sources"):
        return clip.load_sources(sr=sr, mixing=mixing)
    y, sr_in = audio.load_channels(clip.path)
    if y.ndim != 2 or y.shape[1] < 2:
        raise ScratchnetError(f"{clip.path}: a MIR-1K clip must be stereo (accompaniment, vocals)")
    accompaniment, vocals = y[:, 0], y[:, 1]
    if sr is not None and sr_in != sr:
        accompaniment = audio.resample(accompaniment, sr_in, sr)
        vocals = audio.resample(vocals, sr_in, sr)
    if mixing == "raw":
        return 0.5 * vocals, 0.5 * accompaniment
    return unit_norm(vocals), unit_norm(accompaniment)


def load_clip(clip, *, sr=SAMPLE_RATE, mixing="0db"):
    """A clip's ``(mixture, vocals, accompaniment)``, float64 1-D arrays: Huang's 0 dB mixture,
    or with ``mixing="raw"`` the mean of its channels as recorded (:data:`MIXINGS`)."""
    vocals, accompaniment = load_sources(clip, sr=sr, mixing=mixing)
    return vocals + accompaniment, vocals, accompaniment


class LevelledClips:
    """``load(clip) -> (mixture, vocals, accompaniment)`` at another level than Huang's 0 dB mixture.

    ``mixing`` is "0db" (Huang's) or "raw" (:data:`MIXINGS`); then
    ``gain_db`` scales the mixture and both references by ``10 ** (gain_db / 20)``; ``peak``
    scales each clip so that its mixture peaks at ``peak`` (a mastered song's level: MIR-1K's
    mixtures peak near -33 dBFS).  Scores of a separator that does not depend on the input's
    level are the same at every level.  A module-level class, so that worker processes can
    pickle it (:func:`scratchnet.metrics.evaluate`).
    """

    def __init__(self, *, gain_db=None, peak=None, mixing="0db"):
        _check_mixing(mixing)
        self.mixing = mixing
        if gain_db is not None and peak is not None:
            raise ScratchnetError("give a gain or a peak level, not both")
        if gain_db is not None and not (np.isfinite(gain_db) and abs(gain_db) <= 200):
            raise ScratchnetError(f"gain {gain_db} dB must be a finite number of dB within +-200")
        if peak is not None and not (np.isfinite(peak) and peak > 0):
            raise ScratchnetError(f"peak {peak} must be a positive number")
        self.gain_db, self.peak = gain_db, peak

    def describe(self):
        """The level in words, for tables: "MIR-1K level", "-40 dB", "peak 0.99", and "raw
        mix, ..." for the raw mixing."""
        raw = "raw mix, " if self.mixing == "raw" else ""
        if self.peak is not None:
            return f"{raw}peak {self.peak:g}"
        if not self.gain_db:
            return "raw mix" if raw else "MIR-1K level"
        return f"{raw}{self.gain_db:+g} dB"

    def __call__(self, clip):
        mixture, vocals, accompaniment = load_clip(clip, mixing=self.mixing)
        if self.peak is not None:
            top = np.max(np.abs(mixture))
            g = self.peak / top if top > 0 else 1.0
        else:
            g = 10.0 ** ((self.gain_db or 0.0) / 20)
        return mixture * g, vocals * g, accompaniment * g


def circular_shifts(n_samples, step=10000):
    """Shifts ``0, step, 2*step, ...`` below ``n_samples``: each rotates the accompaniment.

    ``step=0`` (or None) means no augmentation: the single shift 0.
    """
    if not step:
        return [0]
    if step < 0:
        raise ScratchnetError(f"circular-shift step={step} must be a positive number of samples")
    return list(range(0, n_samples, int(step)))


TARGETS = ("magnitude", "phase_sensitive")


def check_target(target):
    """Refuse, in one line, a training target that is none of :data:`TARGETS`."""
    if target not in TARGETS:
        raise ScratchnetError(f"target={target!r} must be one of {', '.join(TARGETS)}")


def magnitudes(vocals, accompaniment, shift=0, *, n_fft=N_FFT, hop_length=HOP_LENGTH,
               window=WINDOW, target="magnitude", dtype=np.float32, rate=SAMPLE_RATE):
    """Spectra (T, F) of one circular shift: the mixture's magnitude and the two sources' targets.

    The sources are at :data:`~scratchnet.signal.SAMPLE_RATE` (16 kHz) and ``shift`` counts
    their samples; a model that runs at a lower ``rate`` (its ``sample_rate``) gets both
    resampled to it after the shift, before the STFT.

    ``target="magnitude"`` (Huang's) gives the sources' magnitudes |S|.  ``"phase_sensitive"``
    gives the part of each source that lies along the mixture's phase, which is all a mask on
    the mixture can rebuild once the mixture's phase is kept (Erdogan et al., ICASSP 2015)::

        t_S = clip(|S| cos(angle S - angle X), 0, |X|) = clip(Re(S conj(X)) / |X|, 0, |X|)

    The two unclipped targets sum to |X| exactly (the mask's two parts sum to one); where a
    source cancels part of the mixture its target shrinks, and the network is not asked for
    energy that resynthesis with the mixture's phase would turn into interference.
    """
    check_target(target)
    acc = np.roll(accompaniment, shift) if shift else accompaniment
    if rate != SAMPLE_RATE:
        vocals, acc = (audio.resample(y, SAMPLE_RATE, rate) for y in (vocals, acc))
    kw = dict(n_fft=n_fft, hop_length=hop_length, window=window)
    V = stft(vocals, **kw)
    A = stft(acc, **kw)
    # STFT is linear: the mixture's spectrum is the sum, no third transform needed.
    X = V + A
    absX = np.abs(X)
    if target == "magnitude":
        tV, tA = np.abs(V), np.abs(A)
    else:
        safe = np.maximum(absX, np.finfo(absX.dtype).tiny)
        tV, tA = ((S * X.conj()).real / safe for S in (V, A))
        tV, tA = np.clip(tV, 0.0, absX), np.clip(tA, 0.0, absX)
    return (absX.T.astype(dtype), tV.T.astype(dtype), tA.T.astype(dtype))


def _resampled_length(n, rate):
    """Samples of a 16 kHz signal of n samples resampled to ``rate`` (:func:`audio.resample`)."""
    return n if rate == SAMPLE_RATE else -(-n * rate // SAMPLE_RATE)


class SequenceStream:
    """Training batches of magnitude sequences, made on the fly from the clips' waveforms.

    Each epoch visits every (clip, circular shift) pair once in a seeded random order.  Pairs
    are taken ``pool`` at a time: their spectra are concatenated along time, cut into
    sequences of ``seq_len`` frames (the recurrent state restarts at each sequence), the
    sequences shuffled and grouped into batches.  Frames left over at the end of a pool are
    carried into the next, and the epoch's last incomplete batch is dropped.  Memory holds one
    pool of spectra, never the augmented set.  With ``augment`` (a
    :class:`scratchnet.augment.Augment`), each pair's sources pass through it first, drawing
    from a random stream of its own, so the order of pairs and sequences stays the same.

    Yields
    ------
    X, V, A : ndarray, shape (N, T, F), float32
        Mixture magnitudes and the vocal and accompaniment targets (magnitudes, or with
        ``target="phase_sensitive"`` their parts along the mixture's phase: :func:`magnitudes`);
        N = ``batch_size``, T = ``seq_len``.
    """

    def __init__(self, sources, *, seq_len=100, batch_size=10, shift_step=10000, pool=32, augment=None,
                 seed=0, n_fft=N_FFT, hop_length=HOP_LENGTH, window=WINDOW, target="magnitude",
                 rate=SAMPLE_RATE):
        if seq_len < 1 or batch_size < 1:
            raise ScratchnetError(f"{seq_len=} and {batch_size=} must be positive")
        self.sources = sources  # list of (vocals, accompaniment) waveforms
        # ... or a sequence that reads them when asked (scratchnet.stems.ExcerptSources),
        # whose lengths plan the epoch without reading anything
        self.lengths = list(getattr(sources, "lengths", None) or [v.shape[0] for v, _ in sources])
        self.seq_len, self.batch_size, self.pool = seq_len, batch_size, pool
        self.stft_kw = dict(n_fft=n_fft, hop_length=hop_length, window=window)
        self.target = target  # the sources' training targets: see magnitudes()
        self.rate = rate  # the model's: the 16 kHz sources are resampled to it (magnitudes())
        self.pairs = [(i, s) for i, n in enumerate(self.lengths)
                      for s in circular_shifts(n, shift_step)]
        self.seed = seed
        self.augment = augment  # augment(rng, sources, i, shift) -> (v, a): see scratchnet.augment

    def _example(self, rng, i, shift):
        """Magnitudes (X, V, A) of training pair (clip i, shift), augmented if asked."""
        if self.augment is None:
            return magnitudes(*self.sources[i], shift, target=self.target, rate=self.rate, **self.stft_kw)
        return magnitudes(*self.augment(rng, self.sources, i, shift), 0, target=self.target,
                          rate=self.rate, **self.stft_kw)

    def frames_per_epoch(self):
        hop = self.stft_kw["hop_length"]
        return sum(1 + _resampled_length(self.lengths[i], self.rate) // hop for i, _ in self.pairs)

    def batches_per_epoch(self):
        return self.frames_per_epoch() // (self.seq_len * self.batch_size)

    def epoch(self, epoch=0):
        """Iterate over one epoch's batches; ``epoch`` seeds the order (same seed, same batches)."""
        rng = np.random.default_rng([self.seed, epoch])
        aug_rng = np.random.default_rng([self.seed, epoch, 1])  # its own stream: the order is unchanged
        order = rng.permutation(len(self.pairs))
        carry = None
        for start in range(0, len(order), self.pool):
            specs = [self._example(aug_rng, *self.pairs[k]) for k in order[start:start + self.pool]]
            X, V, A = (np.concatenate([s[j] for s in specs]) for j in range(3))  # T_pool,F
            if carry is not None:
                X, V, A = (np.concatenate([c, x]) for c, x in zip(carry, (X, V, A)))
            n_seq = X.shape[0] // self.seq_len
            used = n_seq * self.seq_len
            seqs = [x[:used].reshape(n_seq, self.seq_len, -1) for x in (X, V, A)]  # S,T,F
            idx = rng.permutation(n_seq)
            n_batch = n_seq // self.batch_size
            for b in range(n_batch):
                sel = idx[b * self.batch_size:(b + 1) * self.batch_size]
                yield tuple(s[sel] for s in seqs)
            # sequences that did not fill a batch go back to the carry, with the spare frames
            rest = idx[n_batch * self.batch_size:]
            carry = tuple(np.concatenate([s[rest].reshape(-1, s.shape[2]), x[used:]])
                          for s, x in zip(seqs, (X, V, A)))
