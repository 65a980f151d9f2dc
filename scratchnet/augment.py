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
  dB around Huang's 0 dB (each source scaled to unit norm first).

An :class:`Augment` is called as ``augment(rng, sources, i, shift) -> (vocals, accompaniment)``
by :class:`scratchnet.data.SequenceStream` for every (clip, shift) pair of an epoch.
"""
import dataclasses

import numpy as np

from .data import unit_norm
from .errors import ScratchnetError


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


@dataclasses.dataclass
class Augment:
    """Remix, pitch/tempo and gain augmentation; see the module docstring.

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
    """
    remix: float = 0.5
    pitch: float = 0.5
    semitones: float = 2.0
    gain_db: float = 3.0

    def __post_init__(self):
        for name in ("remix", "pitch"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ScratchnetError(f"augment {name}={getattr(self, name)} must be a probability in [0, 1]")
        if not (0.0 <= self.semitones <= 12.0 and 0.0 <= self.gain_db <= 20.0):
            raise ScratchnetError(f"augment semitones={self.semitones} must lie in [0, 12] and "
                                  f"gain_db={self.gain_db} in [0, 20]")

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
        return (gain * unit_norm(vocals)).astype(vocals.dtype, copy=False), unit_norm(accompaniment)
