"""Data augmentation for training: new mixtures from the training clips' own sources.

175 training clips hold 175 voices and 175 accompaniments: remixing the vocals of one clip
with the accompaniment of another gives 175 x 175 songs, each at any relative offset.  Huang
et al. used only circular shifts of a clip's own accompaniment (:mod:`scratchnet.data`); this
module adds, on the fly and seeded,

- **remix**: with probability ``remix`` the accompaniment comes from another training clip, at
  a random circular offset, tiled or cut to the vocals' length;
- **pitch and tempo**: with probability ``pitch`` the vocals are resampled by a factor
  ``2 ** (s / 12)``, s uniform in ``[-semitones, semitones]``: like a tape played faster or
  slower, the pitch moves by s semitones and the tempo with it (linear interpolation: cheap,
  and its slight low-pass is harmless for augmentation);
- **gain**: the vocals' level against the accompaniment, uniform in ``[-gain_db, gain_db]``
  dB around Huang's 0 dB (each source scaled to unit norm first);
- **equalisation**: with probability ``eq`` each source passes through its own random smooth
  filter, a gain curve of up to ``eq_db`` dB drawn at a few points spaced evenly on a
  log-frequency axis (a different microphone, room or voice timbre).

An :class:`Augment` is called as ``augment(rng, sources, i, shift) -> (vocals, accompaniment)``
by :class:`scratchnet.data.SequenceStream` for every (clip, shift) pair of an epoch.
"""
import dataclasses

import numpy as np
import scipy.fft

from .errors import ScratchnetError
from .signal import SAMPLE_RATE, unit_norm


def speed_change(y, factor):
    """Resample ``y`` to play ``factor`` times faster (pitch up by 12 log2(factor) semitones).

    Linear interpolation at the positions ``0, factor, 2 factor, ...``; the result has about
    ``len(y) / factor`` samples.
    """
    if not factor > 0:
        raise ScratchnetError(f"speed factor {factor} must be positive")
    positions = np.arange(0.0, y.shape[0] - 1, factor)
    return np.interp(positions, np.arange(y.shape[0]), y).astype(y.dtype, copy=False)


def fit_length(y, n, offset=0):
    """``y`` rotated by ``offset`` samples, then tiled or cut to exactly ``n`` samples."""
    y = np.roll(y, offset) if offset else y
    reps = -(-n // y.shape[0])  # ceil
    return np.tile(y, reps)[:n] if reps > 1 else y[:n]


EQ_POINTS = 6                # the random gain curve's knots, 50 Hz to Nyquist on a log axis


def random_eq(y, rng, max_db, *, n_points=EQ_POINTS, low_hz=50.0, sr=SAMPLE_RATE):
    """``y`` through a random smooth filter: gains uniform in ``[-max_db, max_db]`` dB at
    ``n_points`` frequencies spaced evenly in log frequency, linear in between (and flat
    outside), applied to the whole signal's spectrum (a zero-phase filter).

    The transform is zero-padded to a length with small prime factors: a clip's own length
    may have a large one, which made this ten times slower than the STFTs of the batch.
    """
    knots_db = rng.uniform(-max_db, max_db, n_points)
    n_fft = scipy.fft.next_fast_len(y.shape[0], real=True)
    Y = np.fft.rfft(y, n=n_fft)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    log_knots = np.linspace(np.log(low_hz), np.log(sr / 2), n_points)
    gain_db = np.interp(np.log(np.maximum(freqs, low_hz)), log_knots, knots_db)
    return np.fft.irfft(Y * 10.0 ** (gain_db / 20), n=n_fft)[:y.shape[0]].astype(y.dtype, copy=False)


@dataclasses.dataclass
class Augment:
    """Remix, pitch/tempo, gain and equalisation augmentation; see the module docstring.

    Parameters
    ----------
    remix : float
        Probability that a pair's accompaniment comes from another clip.
    pitch : float
        Probability that the vocals are resampled.
    semitones : float
        Largest pitch change, up or down.
    gain_db : float
        Largest change of the vocals' level against the accompaniment.
    eq : float
        Probability that each source is equalised (0: off, the default).
    eq_db : float
        Largest gain of the random equaliser, up or down.
    """
    remix: float = 0.5
    pitch: float = 0.5
    semitones: float = 2.0
    gain_db: float = 3.0
    eq: float = 0.0
    eq_db: float = 6.0

    def __post_init__(self):
        for name in ("remix", "pitch", "eq"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ScratchnetError(f"augment {name}={getattr(self, name)} must be a probability in [0, 1]")
        if not (0.0 <= self.semitones <= 12.0 and 0.0 <= self.gain_db <= 20.0
                and 0.0 <= self.eq_db <= 20.0):
            raise ScratchnetError(f"augment semitones={self.semitones} must lie in [0, 12], "
                                  f"gain_db={self.gain_db} and eq_db={self.eq_db} in [0, 20]")

    def __call__(self, rng, sources, i, shift):
        """The (vocals, accompaniment) waveforms of training pair ``(i, shift)``, augmented."""
        vocals, accompaniment = sources[i]
        if self.pitch and rng.random() < self.pitch:
            vocals = speed_change(vocals, 2.0 ** (rng.uniform(-self.semitones, self.semitones) / 12))
        n = vocals.shape[0]
        if self.remix and len(sources) > 1 and rng.random() < self.remix:
            j = int(rng.integers(len(sources) - 1))
            j += j >= i  # any clip but i
            other = sources[j][1]
            accompaniment = fit_length(other, n, int(rng.integers(other.shape[0])))
        else:
            accompaniment = fit_length(accompaniment, n, shift)
        gain = 10.0 ** (rng.uniform(-self.gain_db, self.gain_db) / 20) if self.gain_db else 1.0
        if self.eq:  # drawn last, so that eq=0 leaves the other draws as they were
            if rng.random() < self.eq:
                vocals = random_eq(vocals, rng, self.eq_db)
            if rng.random() < self.eq:
                accompaniment = random_eq(accompaniment, rng, self.eq_db)
        return (gain * unit_norm(vocals)).astype(vocals.dtype, copy=False), unit_norm(accompaniment)
