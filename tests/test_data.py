import numpy as np
import pytest

from scratchnet import data
from scratchnet.errors import ScratchnetError
from scratchnet.signal import stft


def test_find_clips_reads_wav_and_flac_and_ignores_others(fake_mir1k):
    clips = data.find_clips(fake_mir1k)
    assert [c.name for c in clips] == sorted(c.name for c in clips)
    assert len(clips) == 8
    assert {c.path.rsplit(".", 1)[1] for c in clips} == {"wav", "flac"}


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ScratchnetError, match="does not exist"):
        data.find_clips(str(tmp_path / "nope"))
    with pytest.raises(ScratchnetError, match="no MIR-1K clips"):
        data.find_clips(str(tmp_path))


def test_huang_split_by_singer(fake_mir1k):
    parts = data.split(data.find_clips(fake_mir1k), "huang")
    assert {c.singer for c in parts["train"]} == {"abjones", "amy"}
    assert len(parts["train"]) == 4 and len(parts["test"]) == 4 and parts["valid"] == []
    assert data.describe_split(parts) == "train 4, valid 0, test 4"


def test_amer_split_is_seeded_70_30_and_disjoint(fake_mir1k):
    clips = data.find_clips(fake_mir1k)
    a = data.split(clips, "amer", seed=3)
    b = data.split(clips, "amer", seed=3)
    assert a == b
    assert len(a["train"]) == round(0.7 * len(clips))
    assert not set(c.name for c in a["train"]) & set(c.name for c in a["test"])


def test_course_split_holds_out_a_seventh_of_the_training_clips(fake_mir1k):
    parts = data.split(data.find_clips(fake_mir1k), "course")
    assert len(parts["valid"]) == round(4 * 25 / 175)
    assert len(parts["train"]) + len(parts["valid"]) == 4


def test_unknown_split():
    with pytest.raises(ScratchnetError, match="unknown split 'bogus'"):
        data.split([], "bogus")


def test_huang_mixture_has_unit_norm_sources(fake_mir1k):
    clip = data.find_clips(fake_mir1k)[0]
    mixture, vocals, accompaniment = data.load_clip(clip)
    assert np.isclose(np.linalg.norm(vocals), 1) and np.isclose(np.linalg.norm(accompaniment), 1)
    np.testing.assert_allclose(mixture, vocals + accompaniment)


def test_raw_mixing_is_the_mean_of_the_channels_as_recorded(fake_mir1k):
    """SH-4stack's protocol: the mixture is the mean of the two channels, unscaled; the
    references are the halves that sum to it."""
    import soundfile as sf
    clip = data.find_clips(fake_mir1k)[0]
    stereo, _ = sf.read(clip.path)
    mixture, vocals, accompaniment = data.load_clip(clip, mixing="raw")
    np.testing.assert_allclose(mixture, stereo.mean(axis=1))
    np.testing.assert_allclose(vocals, stereo[:, 1] / 2)
    np.testing.assert_allclose(accompaniment, stereo[:, 0] / 2)
    level = data.LevelledClips(gain_db=-20, mixing="raw")
    assert level.describe() == "raw mix, -20 dB"
    assert data.LevelledClips(mixing="raw").describe() == "raw mix"
    np.testing.assert_allclose(level(clip)[0], mixture * 0.1)
    with pytest.raises(ScratchnetError, match="mixing 'loud' is not one of 0db, raw"):
        data.load_clip(clip, mixing="loud")


def test_raw_mixing_of_stems_is_their_sum(fake_stems):
    clip = data.find_parts(fake_stems).parts["test"][0]
    m0, v0, a0 = data.load_clip(clip)
    m, v, a = data.load_clip(clip, mixing="raw")
    np.testing.assert_allclose(m, v + a)
    np.testing.assert_allclose(v / np.linalg.norm(v), v0, atol=1e-12)
    np.testing.assert_allclose(a / np.linalg.norm(a), a0, atol=1e-12)


def test_circular_shifts():
    assert data.circular_shifts(35000, 10000) == [0, 10000, 20000, 30000]
    assert data.circular_shifts(35000, 0) == [0]
    with pytest.raises(ScratchnetError, match="step=-5"):
        data.circular_shifts(100, -5)


def test_shifted_magnitudes_are_those_of_the_rotated_mixture():
    rng = np.random.default_rng(0)
    v, a = rng.standard_normal(8000), rng.standard_normal(8000)
    X, V, A = data.magnitudes(v, a, 3000, dtype=np.float64)
    np.testing.assert_allclose(X, np.abs(stft(v + np.roll(a, 3000))).T, atol=1e-10)
    np.testing.assert_allclose(A, np.abs(stft(np.roll(a, 3000))).T, atol=1e-10)
    np.testing.assert_allclose(V, np.abs(stft(v)).T, atol=1e-10)


def test_phase_sensitive_targets_are_the_sources_parts_along_the_mixture_phase():
    rng = np.random.default_rng(1)
    v, a = rng.standard_normal(8000), rng.standard_normal(8000)
    X, tV, tA = data.magnitudes(v, a, target="phase_sensitive", dtype=np.float64)
    _, V, A = data.magnitudes(v, a, dtype=np.float64)
    Vc, Ac = stft(v).T, stft(a).T
    cos_v = np.cos(np.angle(Vc) - np.angle(Vc + Ac))
    np.testing.assert_allclose(tV, np.clip(V * cos_v, 0, X), atol=1e-10)
    assert np.all(tV >= 0) and np.all(tV <= X + 1e-12) and np.all(tA >= 0) and np.all(tA <= X + 1e-12)
    # where neither target was clipped, they sum to the mixture's magnitude: the mask's two parts
    inside = (tV > 0) & (tA > 0) & (tV < X) & (tA < X)
    assert inside.mean() > 0.3
    np.testing.assert_allclose((tV + tA)[inside], X[inside], rtol=1e-9)
    assert np.all(tV <= V + 1e-12)  # never more than the source itself


def test_phase_sensitive_targets_of_in_phase_sources_are_their_magnitudes():
    v = np.random.default_rng(2).standard_normal(6000)
    X, tV, tA = data.magnitudes(v, 0.5 * v, target="phase_sensitive", dtype=np.float64)
    _, V, A = data.magnitudes(v, 0.5 * v, dtype=np.float64)
    np.testing.assert_allclose(tV, V, atol=1e-10)
    np.testing.assert_allclose(tA, A, atol=1e-10)


def test_unknown_target_is_refused_by_name():
    with pytest.raises(ScratchnetError, match="target='phase'"):
        data.magnitudes(np.ones(4000), np.ones(4000), target="phase")


def test_stream_yields_the_target_it_is_asked_for():
    sources = _toy_sources(3)
    kw = dict(seq_len=10, batch_size=2, shift_step=0, seed=3)
    (X1, V1, A1), = list(data.SequenceStream(sources, **kw).epoch(0))[:1]
    (X2, V2, A2), = list(data.SequenceStream(sources, target="phase_sensitive", **kw).epoch(0))[:1]
    np.testing.assert_array_equal(X1, X2)
    assert np.all(V2 <= V1 + 1e-6) and not np.allclose(V1, V2)


def _toy_sources(n_clips=5, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32))
            for n in rng.integers(20000, 40000, n_clips)]


def test_stream_batches_have_the_right_shape_and_cover_the_epoch():
    stream = data.SequenceStream(_toy_sources(), seq_len=20, batch_size=4, shift_step=10000, pool=3)
    batches = list(stream.epoch(0))
    assert len(batches) >= 1
    for X, V, A in batches:
        assert X.shape == V.shape == A.shape == (4, 20, 513) and X.dtype == np.float32
    # every complete batch of the epoch is yielded: at most one batch's worth of frames is lost
    lost = stream.frames_per_epoch() - len(batches) * 80
    assert 0 <= lost < 80 + 20
    assert len(batches) == stream.batches_per_epoch()


def test_stream_is_deterministic_per_seed_and_epoch():
    s1 = data.SequenceStream(_toy_sources(), seq_len=10, batch_size=3, seed=7)
    s2 = data.SequenceStream(_toy_sources(), seq_len=10, batch_size=3, seed=7)
    for (a, _, _), (b, _, _) in zip(s1.epoch(2), s2.epoch(2)):
        np.testing.assert_array_equal(a, b)
    first = next(iter(s1.epoch(0)))[0]
    assert not np.array_equal(first, next(iter(s1.epoch(1)))[0])


def test_targets_are_consistent_with_the_mixture():
    stream = data.SequenceStream(_toy_sources(2), seq_len=10, batch_size=2)
    X, V, A = next(iter(stream.epoch(0)))
    # |V + A| <= |V| + |A|: the mixture magnitude never exceeds the sum of the sources'
    assert np.all(X <= V + A + 1e-4)


@pytest.mark.data
def test_real_mir1k_split_counts(mir1k_dir):
    parts = data.split(data.find_clips(mir1k_dir), "huang")
    assert len(parts["train"]) == 175
    assert len(parts["test"]) >= 1


def test_singer_split_holds_a_training_singer_out_for_validation(fake_mir1k):
    from scratchnet import data
    parts = data.split(data.find_clips(fake_mir1k), "singer")
    assert {c.singer for c in parts["train"]} == {"amy"}
    assert {c.singer for c in parts["valid"]} == {"abjones"}
    assert parts["test"] == data.split(data.find_clips(fake_mir1k), "huang")["test"]
