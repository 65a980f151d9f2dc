"""Remix, pitch/tempo and gain augmentation of training pairs."""
import numpy as np
import pytest

from scratchnet.augment import Augment, fit_length, random_eq, speed_change
from scratchnet.errors import ScratchnetError


def _sources(n=3, length=4000):
    rng = np.random.default_rng(0)
    return [(rng.standard_normal(length + 100 * i), rng.standard_normal(length + 50 * i)) for i in range(n)]


def test_speed_change_moves_a_tone_by_the_factor():
    sr, f0 = 16000, 440.0
    t = np.arange(sr) / sr
    y = np.sin(2 * np.pi * f0 * t)
    up = speed_change(y, 2 ** (2 / 12))  # two semitones up
    assert abs(up.shape[0] - sr / 2 ** (2 / 12)) <= 2
    spectrum = np.abs(np.fft.rfft(up * np.hanning(up.shape[0])))
    f_peak = np.argmax(spectrum) * sr / up.shape[0]
    assert abs(f_peak - f0 * 2 ** (2 / 12)) < 3.0


def test_fit_length_tiles_and_cuts():
    y = np.arange(5.0)
    np.testing.assert_array_equal(fit_length(y, 12), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])
    np.testing.assert_array_equal(fit_length(y, 3, offset=1), [4, 0, 1])


def test_no_augmentation_is_the_circular_shift_of_unit_norm_sources():
    sources = _sources()
    v, a = Augment(remix=0, pitch=0, gain_db=0)(np.random.default_rng(1), sources, 0, 700)
    np.testing.assert_allclose(v, sources[0][0] / np.linalg.norm(sources[0][0]))
    a_ref = np.roll(sources[0][1], 700)
    np.testing.assert_allclose(a, a_ref / np.linalg.norm(a_ref))


def test_full_augmentation_is_seeded_and_keeps_lengths_equal():
    sources = _sources()
    aug = Augment(remix=1, pitch=1, semitones=2, gain_db=3)
    a1 = aug(np.random.default_rng(5), sources, 0, 0)
    a2 = aug(np.random.default_rng(5), sources, 0, 0)
    np.testing.assert_array_equal(a1[0], a2[0])
    np.testing.assert_array_equal(a1[1], a2[1])
    v, a = a1
    assert v.shape == a.shape
    assert abs(np.linalg.norm(a) - 1) < 1e-9
    assert 10 ** (-3 / 20) - 1e-9 <= np.linalg.norm(v) <= 10 ** (3 / 20) + 1e-9
    # the accompaniment came from another clip: it is none of clip 0's rotations
    own = sources[0][1]
    assert not any(np.allclose(a[:50] * np.linalg.norm(fit_length(own, a.shape[0], s)),
                               fit_length(own, a.shape[0], s)[:50]) for s in range(0, own.shape[0], 1))


def test_random_eq_is_a_smooth_gain_within_its_bound():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(16000)
    out = random_eq(y, np.random.default_rng(4), 6.0)
    assert out.shape == y.shape and out.dtype == y.dtype
    ratio_db = 20 * np.log10(np.abs(np.fft.rfft(out)) / np.abs(np.fft.rfft(y)))
    assert ratio_db.max() <= 6.0 + 1e-6 and ratio_db.min() >= -6.0 - 1e-6
    assert ratio_db.max() - ratio_db.min() > 1.0           # it did filter
    assert np.abs(np.diff(ratio_db)).max() < 0.3           # smoothly: at most 12 dB per knot spacing
    # zero phase: a filter of 0 dB everywhere gives back the signal
    np.testing.assert_allclose(random_eq(y, rng, 0.0), y, atol=1e-12)


def test_eq_off_leaves_the_other_draws_unchanged_and_on_changes_both_sources():
    sources = _sources()
    base = Augment(remix=1, pitch=1, semitones=2, gain_db=3)
    off = Augment(remix=1, pitch=1, semitones=2, gain_db=3, eq=0.0)
    on = Augment(remix=1, pitch=1, semitones=2, gain_db=3, eq=1.0, eq_db=6.0)
    b, o, e = (aug(np.random.default_rng(5), sources, 0, 0) for aug in (base, off, on))
    np.testing.assert_array_equal(b[0], o[0])
    np.testing.assert_array_equal(b[1], o[1])
    assert e[0].shape == b[0].shape and not np.allclose(e[0], b[0]) and not np.allclose(e[1], b[1])
    assert abs(np.linalg.norm(e[1]) - 1) < 1e-9  # each source still at its level: unit norm, gain


def test_bad_options_are_refused():
    with pytest.raises(ScratchnetError, match="remix=1.5"):
        Augment(remix=1.5)
    with pytest.raises(ScratchnetError, match="semitones=30"):
        Augment(semitones=30)
    with pytest.raises(ScratchnetError, match="eq=2"):
        Augment(eq=2)
    with pytest.raises(ScratchnetError, match="eq_db=40"):
        Augment(eq_db=40)


def test_the_stream_with_augmentation_is_seeded_and_keeps_its_order():
    from scratchnet.data import SequenceStream
    sources = [tuple(s.astype(np.float32) for s in pair) for pair in _sources(3, 16000)]
    kw = dict(seq_len=8, batch_size=2, shift_step=8000, seed=3)
    plain = list(SequenceStream(sources, **kw).epoch(0))
    aug = Augment(remix=1, pitch=1)
    one, two = list(SequenceStream(sources, augment=aug, **kw).epoch(0)), list(SequenceStream(sources, augment=aug, **kw).epoch(0))
    assert len(one) > 0 and len(plain) > 0
    for (x1, v1, a1), (x2, v2, a2) in zip(one, two):
        np.testing.assert_array_equal(x1, x2)
    assert not np.allclose(one[0][0], plain[0][0])  # the mixtures did change
    X, V, A = one[0]
    assert X.shape == V.shape == A.shape == (2, 8, 513) and X.dtype == np.float32
