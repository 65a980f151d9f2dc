import numpy as np
import pytest
import soundfile as sf

from scratchnet import separation
from scratchnet.errors import ScratchnetError
from scratchnet.models import Model, make_config
from scratchnet.synthetic import synth_song


class HalfAndHalf:
    """A trivial separator: half the mixture each (its outputs are easy to predict)."""
    name, needs_references = "half", False

    def separate(self, mixture, references=None):
        return 0.5 * mixture, 0.5 * mixture


@pytest.fixture(scope="module")
def tiny_model_separator():
    model = Model(make_config(arch="drnn-2", hidden=16, seed=0))
    return separation.ModelSeparator(model)


def test_model_outputs_sum_to_the_mixture(tiny_model_separator):
    mixture, _, _ = synth_song(2.0, seed=1)
    v, a = tiny_model_separator.separate(mixture)
    assert v.shape == a.shape == mixture.shape
    np.testing.assert_allclose(v + a, mixture, atol=1e-5)


def test_silence_gives_silence(tiny_model_separator):
    v, a = tiny_model_separator.separate(np.zeros(16000))
    assert np.all(v == 0) and np.all(a == 0)


def test_chunked_separation_has_no_seam(tiny_model_separator):
    """Chunks of 4 s with 1 s cross-fades against one pass over the whole 13 s."""
    mixture, _, _ = synth_song(13.0, seed=2)
    whole_v, _ = tiny_model_separator.separate(mixture)
    v, a = separation.separate_chunked(tiny_model_separator, mixture, chunk=4 * 16000, overlap=16000)
    np.testing.assert_allclose(v + a, mixture, atol=1e-5)
    err = v - whole_v
    snr = 10 * np.log10(np.sum(whole_v ** 2) / np.sum(err ** 2))
    assert snr > 30, snr
    # no click: the largest sample error is small against the signal's level
    assert np.max(np.abs(err)) < 0.05 * np.max(np.abs(whole_v))


def test_cross_fade_keeps_the_level():
    x = np.random.default_rng(0).standard_normal(10 * 16000)
    v, a = separation.separate_chunked(HalfAndHalf(), x, chunk=3 * 16000, overlap=8000)
    np.testing.assert_allclose(v, 0.5 * x, atol=1e-12)


def test_separate_array_any_rate_and_channels(tiny_model_separator):
    for sr in (8000, 22050, 44100):
        x = np.random.default_rng(sr).standard_normal((sr * 2, 2)) * 0.1
        v, a = separation.separate_array(x, sr, tiny_model_separator)
        assert v.shape == a.shape == (sr * 2,)
        if sr > 16000:  # above the model's rate the accompaniment is the residual
            np.testing.assert_allclose(v + a, x.mean(1), atol=1e-12)


def test_separate_array_rejects_nan(tiny_model_separator):
    x = np.ones(16000)
    x[5] = np.nan
    with pytest.raises(ScratchnetError, match="NaN"):
        separation.separate_array(x, 16000, tiny_model_separator)


def test_separate_file_writes_outputs_at_input_rate_and_length(tiny_model_separator, tmp_path):
    sr = 22050
    x = np.random.default_rng(0).standard_normal((sr * 3 + 17, 2)) * 0.1
    src = tmp_path / "song.flac"
    sf.write(src, x, sr)
    told = []
    outs = separation.separate_file(str(src), str(tmp_path / "out"), tiny_model_separator,
                                    on_downmix=lambda: told.append(1))
    assert told == [1]
    assert [p.rsplit("/", 2)[-2:] for p in outs] == [["song", "vocals.flac"], ["song", "accompaniment.flac"]]
    for p in outs:
        info = sf.info(p)
        assert info.samplerate == sr and info.frames == x.shape[0]
    assert sorted(q.name for q in (tmp_path / "out" / "song").iterdir()) == ["accompaniment.flac", "vocals.flac"]


def test_unknown_method():
    with pytest.raises(ScratchnetError, match="unknown method 'nmf'"):
        separation.get_separator("nmf")
