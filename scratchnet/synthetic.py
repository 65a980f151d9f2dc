"""Synthetic songs: a sung melody over an accompaniment, for demos, tests and notebooks.

Nothing of MIR-1K may be committed, so wherever the project needs audio without the data
folder it makes its own.  The "voice" is a glottal-like harmonic source whose pitch follows a melody
with vibrato and glides, shaped by three vowel formants and cut into syllables with breathy
consonant onsets; the accompaniment is a sustained chord pad, plucked chord tones, a bass
line and a hi-hat.  It is not
music, but it has what separation needs: a harmonic, pitch-varying, intermittent source over
a steadier harmonic-plus-noise background.
"""
import numpy as np

from .signal import SAMPLE_RATE

_VOWELS = ((700, 1220, 2600), (300, 2300, 3000), (500, 900, 2400), (400, 2000, 2550))


def _formant_gain(freqs, formants, bandwidth=(90.0, 110.0, 160.0)):
    g = np.zeros_like(freqs)
    for k, f in enumerate(formants):
        g += (0.5 ** k) / (1.0 + ((freqs - f) / bandwidth[k]) ** 2)
    return g + 0.01


def _lowpass_noise(n, rng, lo, hi, sr):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec[(f < lo) | (f > hi)] = 0
    return np.fft.irfft(spec, n)


def synth_voice(n, sr, rng):
    """A sung line: a glottal source (harmonics falling ~12 dB per octave) through vowel
    formants, a melody with vibrato and portamento, syllables with breathy consonant onsets."""
    t = np.arange(n) / sr
    n_notes = max(2, int(n / sr * 1.6))
    notes = 196.0 * 2 ** (rng.choice([0, 2, 4, 5, 7, 9, 12], n_notes) / 12)
    edges = np.linspace(0, n, n_notes + 1).astype(int)
    f0 = np.concatenate([np.full(edges[i + 1] - edges[i], notes[i]) for i in range(n_notes)])
    glide = int(0.06 * sr)
    f0 = np.convolve(np.pad(f0, glide, mode="edge"), np.ones(glide) / glide, mode="same")[glide:-glide]
    f0 *= 1 + 0.015 * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 2 * np.pi))  # vibrato
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = np.zeros(n)
    for i in range(n_notes):  # each note one syllable: its own vowel, a gap after it
        a, b = edges[i], edges[i + 1] - int(0.1 * sr)
        if b - a < int(0.1 * sr):
            continue
        vowel = _VOWELS[rng.integers(len(_VOWELS))]
        seg = np.zeros(b - a)
        for h in range(1, 40):
            fh = h * f0[a:b]
            amp = _formant_gain(fh, vowel) * h ** -1.0 * (fh < sr / 2 - 200)
            seg += amp * np.sin(h * phase[a:b])
        ramp = int(0.03 * sr)
        env = np.ones(b - a)
        env[:ramp], env[-ramp:] = np.linspace(0, 1, ramp), np.linspace(1, 0, ramp)
        voice[a:b] = seg * env
        c = int(0.05 * sr)  # a consonant: a burst of high-band noise before the vowel
        s0 = max(0, a - c // 2)
        burst = _lowpass_noise(c, rng, 3000, 7500, sr) * np.hanning(c)
        voice[s0:s0 + c] += 0.5 * burst[: n - s0] * np.max(np.abs(seg))
    return voice


def synth_accompaniment(n, sr, rng):
    """A sustained pad of chords, plucked chord tones, a bass line and a hi-hat."""
    out = np.zeros(n)
    t = np.arange(n) / sr
    bar = int(2.0 * sr)
    roots = 110.0 * 2 ** (np.array([0, 5, 7, 3]) / 12)
    for k, start in enumerate(range(0, n, bar)):
        root = roots[k % len(roots)]
        seg = t[start:start + bar] - t[start]
        env = np.minimum(1, seg / 0.2) * np.exp(-seg * 0.4)
        for ratio in (1, 2 ** (4 / 12), 2 ** (7 / 12), 2):  # pad: a major chord, soft saw
            for h in range(1, 12):
                out[start:start + bar] += 0.25 * env / h ** 1.5 * np.sin(2 * np.pi * 2 * root * ratio * h * seg)
        out[start:start + bar] += 0.9 * np.exp(-seg * 1.5) * np.sin(2 * np.pi * root / 2 * seg)  # bass
        for beat in range(4):  # a plucked chord tone and a hi-hat on every beat
            b0 = start + beat * bar // 4
            if b0 >= n:
                break
            m = min(bar // 4, n - b0)
            seg = np.arange(m) / sr
            tone = root * 2 * 2 ** (rng.choice([0, 4, 7, 12]) / 12)
            out[b0:b0 + m] += 0.5 * np.exp(-seg * 6) * sum(0.5 ** h * np.sin(2 * np.pi * tone * h * seg)
                                                             for h in range(1, 6))
            hat = min(int(0.04 * sr), m)
            out[b0:b0 + hat] += 0.25 * _lowpass_noise(hat, rng, 5000, 8000, sr) * np.exp(-np.arange(hat) / (0.008 * sr))
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
