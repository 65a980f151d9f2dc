"""A network that runs below 16 kHz (the model option ``sample_rate``): separation resamples to
its rate and back, the stems still sum to the input, and training feeds it its own rate."""
import numpy as np
import pytest

from scratchnet import data, separation, training
from scratchnet.errors import ScratchnetError
from scratchnet.models import Model, load_model, make_config
from scratchnet.signal import stft
from scratchnet.synthetic import synth_song


@pytest.fixture(scope="module")
def at_8k():
    model = Model(make_config(arch="drnn-2", hidden=16, seed=0, sample_rate=8000, n_fft=512, hop_length=256))
    return separation.ModelSeparator(model)


def test_stems_sum_to_the_mixture_and_keep_its_shape(at_8k):
    mixture, _, _ = synth_song(3.0, seed=1)
    for x in (mixture, np.stack([mixture, 0.5 * mixture[::-1]], axis=1)):
        v, a = separation.separate_chunked(at_8k, x, chunk=None)
        assert v.shape == a.shape == x.shape
        np.testing.assert_allclose(v + a, x, atol=1e-12)  # the accompaniment is the rest


def test_the_band_above_the_models_nyquist_rate_goes_to_the_accompaniment(at_8k):
    t = np.arange(32000) / 16000
    tone = np.sin(2 * np.pi * 6000 * t)  # above 4 kHz: the 8 kHz network never hears it
    v, a = at_8k.separate(tone)
    assert np.sqrt(np.mean(v[2000:-2000] ** 2)) < 1e-3 * np.sqrt(np.mean(tone ** 2))


def test_one_mask_from_the_channels_mean(at_8k):
    """Two equal channels separate as the mono signal does, channel by channel."""
    mixture, _, _ = synth_song(2.0, seed=3)
    v1, _ = at_8k.separate(mixture)
    v2, _ = separation.separate_channels(at_8k, np.stack([mixture, mixture], axis=1))
    np.testing.assert_allclose(v2, np.stack([v1, v1], axis=1), atol=1e-12)


def test_chunks_join_without_a_seam(at_8k):
    mixture, _, _ = synth_song(13.0, seed=2)
    whole, _ = at_8k.separate(mixture)
    v, _ = separation.separate_chunked(at_8k, mixture, chunk=4 * 16000, overlap=16000)
    err = v - whole
    assert 10 * np.log10(np.sum(whole ** 2) / np.sum(err ** 2)) > 30


def test_the_training_spectra_are_at_the_models_rate():
    _, vocals, accompaniment = synth_song(2.0, seed=4)
    X, V, A = data.magnitudes(vocals, accompaniment, n_fft=512, hop_length=256, rate=8000)
    half = data.audio.resample(vocals + accompaniment, 16000, 8000)
    np.testing.assert_allclose(X, np.abs(stft(half, n_fft=512, hop_length=256)).T, rtol=1e-5, atol=1e-6)
    stream = data.SequenceStream([(vocals, accompaniment)] * 3, seq_len=20, batch_size=2, shift_step=8000,
                                 n_fft=512, hop_length=256, rate=8000)
    assert stream.frames_per_epoch() == len(stream.pairs) * X.shape[0]
    assert sum(1 for _ in stream.epoch(0)) == stream.batches_per_epoch()


def test_a_model_at_8khz_trains_saves_and_separates(fake_mir1k, tmp_path):
    cfg = training.TrainConfig(data=fake_mir1k, stages=[[10, 1]], batch_size=3, shift_step=8000,
                               valid_clips=1, max_batches_per_epoch=3, workers=1, seed=1,
                               model=make_config(arch="drnn-2", hidden=8, sample_rate=8000,
                                                 n_fft=512, hop_length=256))
    path = training.train(cfg, str(tmp_path / "run"), progress=False, log=lambda *_: None)
    sep = separation.ModelSeparator(load_model(path))
    assert sep.rate == 8000 and sep.multichannel
    mixture, _, _ = synth_song(2.0, seed=5)
    v, a = separation.separate_array(mixture, 44100, sep)
    assert v.shape == mixture.shape


def test_bad_rates_are_refused():
    for sr in (16001, 500, 8000.0, True):
        with pytest.raises(ScratchnetError, match="sample_rate"):
            make_config(sample_rate=sr)
