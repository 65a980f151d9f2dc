"""Synthetic songs: a sung melody over an accompaniment, for demos, tests and notebooks.

Nothing of MIR-1K may be committed, so wherever the project needs audio without the data
folder it makes its own.  The "voice" is a harmonic source whose pitch follows a melody with
vibrato and glides, shaped by three vowel formants and cut into syllables; the accompaniment
is plucked chord tones with a decaying envelope, a bass line and a noisy hi-hat.  It is not
music, but it has what separation needs: a harmonic, pitch-varying, intermittent source over
a steadier harmonic-plus-noise background.
"""
import numpy as np

from .signal import SAMPLE_RATE

_VOWELS = ((700, 1220, 2600), (300, 2300, 3000), (500, 900, 2400), (400, 2000, 2550))


def _formant_gain(freqs, formants, bandwidth=120.0):
    g = np.zeros_like(freqs)
    for k, f in enumerate(formants):
        g += (0.6 ** k) / (1.0 + ((freqs - f) / bandwidth) ** 2)
    return g + 0.02


def synth_voice(n, sr, rng):
    """A sung line: melody with vibrato, vowel formants, syllable on/off envelope."""
    t = np.arange(n) / sr
    n_notes = max(2, int(n / sr * 2))
    notes = 220.0 * 2 ** (rng.choice([0, 2, 3, 5, 7, 8, 10, 12], n_notes) / 12)
    edges = np.linspace(0, n, n_notes + 1).astype(int)
    f0 = np.concatenate([np.full(edges[i + 1] - edges[i], notes[i]) for i in range(n_notes)])
    glide = int(0.05 * sr)
    f0 = np.convolve(f0, np.ones(glide) / glide, mode="same")  # portamento between notes
    f0[: glide] = f0[glide]
    f0[-glide:] = f0[-glide - 1]
    f0 *= 1 + 0.012 * np.sin(2 * np.pi * 5.5 * t)  # vibrato
    phase = 2 * np.pi * np.cumsum(f0) / sr
    vowel = _VOWELS[rng.integers(len(_VOWELS))]
    voice = np.zeros(n)
    for h in range(1, 25):
        fh = h * f0
        amp = _formant_gain(fh, vowel) * (fh < sr / 2 - 200)
        voice += amp * np.sin(h * phase)
    env = np.zeros(n)
    for i in range(n_notes):  # each note one syllable, with a short gap after it
        a, b = edges[i], edges[i + 1] - int(0.08 * sr)
        if b > a:
            ramp = min(int(0.02 * sr), (b - a) // 2)
            seg = np.ones(b - a)
            seg[:ramp] = np.linspace(0, 1, ramp)
            seg[-ramp:] = np.linspace(1, 0, ramp)
            env[a:b] = seg
    return voice * env + 0.002 * rng.standard_normal(n) * env  # a little breath


def synth_accompaniment(n, sr, rng):
    """Plucked chords every half second, a bass note per bar and a hi-hat."""
    out = np.zeros(n)
    beat = int(0.5 * sr)
    roots = 110.0 * 2 ** (np.array([0, 5, 7, 3]) / 12)
    for k, start in enumerate(range(0, n, beat)):
        root = roots[(k // 4) % len(roots)]
        seg = np.arange(n - start) / sr
        decay = np.exp(-seg * 5.0)
        for ratio in (2, 2 * 2 ** (4 / 12), 2 * 2 ** (7 / 12)):  # major triad an octave up
            for h in range(1, 8):
                out[start:] += decay * 0.5 ** h * np.sin(2 * np.pi * root * ratio * h * seg)
        if k % 4 == 0:
            out[start:] += 0.8 * np.exp(-seg * 2.0) * np.sin(2 * np.pi * root / 2 * seg)
        hat = int(0.03 * sr)
        out[start:start + hat] += 0.3 * rng.standard_normal(min(hat, n - start)) * \
            np.exp(-np.arange(min(hat, n - start)) / (0.005 * sr))
    return out


def synth_song(seconds=8.0, *, sr=SAMPLE_RATE, seed=0):
    """A synthetic 0 dB mixture: ``(mixture, vocals, accompaniment)``, sources at unit L2 norm.

    Examples
    --------
    >>> from scratchnet.synthetic import synth_song
    >>> mixture, vocals, accompaniment = synth_song(4.0, seed=1)
    >>> mixture.shape
    (64000,)
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sr))
    vocals = synth_voice(n, sr, rng)
    accompaniment = synth_accompaniment(n, sr, rng)
    vocals /= np.linalg.norm(vocals)
    accompaniment /= np.linalg.norm(accompaniment)
    return vocals + accompaniment, vocals, accompaniment
