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


def test_streamed_file_matches_one_pass_and_has_no_seam(tiny_model_separator, tmp_path):
    """A 30 s file at 22.05 kHz in 8 s chunks with 4 s cross-fades against one pass.

    The blocks are compared before writing: the files hold 16-bit PCM, whose quantisation
    would dominate the tiny outputs of this untrained model.
    """
    sr = 22050
    song, _, _ = synth_song(30.0, sr=sr, seed=4)
    song *= 0.4
    src = tmp_path / "long.wav"
    sf.write(src, np.stack([song, song], 1), sr, subtype="FLOAT")
    blocks = list(separation.stream_separate(str(src), tiny_model_separator, chunk_seconds=8,
                                             overlap_seconds=4))
    v, a = (np.concatenate([b[i] for b in blocks]) for i in (0, 1))
    whole_v, _ = separation.separate_array(song, sr, tiny_model_separator, chunk_seconds=np.inf)
    assert v.shape == whole_v.shape == (30 * sr,)
    per_second = ((v - whole_v) ** 2).reshape(30, sr).sum(1) / (whole_v ** 2).reshape(30, sr).sum(1)
    assert 10 * np.log10(1 / per_second.max()) > 40  # not even one second with an audible seam
    np.testing.assert_allclose(v + a, song, atol=1e-10)  # above 16 kHz: accompaniment = rest
    outs = separation.separate_file(str(src), str(tmp_path / "o"), tiny_model_separator,
                                    chunk_seconds=8, overlap_seconds=4)
    for p in outs:
        assert sf.info(p).samplerate == sr and sf.info(p).frames == 30 * sr


def test_streaming_reads_one_chunk_at_a_time(tiny_model_separator, tmp_path, monkeypatch):
    sr = 16000
    src = tmp_path / "long.wav"
    sf.write(src, np.random.default_rng(0).standard_normal(60 * sr) * 0.1, sr)
    sizes = []
    real = separation.audio.read_block
    monkeypatch.setattr(separation.audio, "read_block",
                        lambda p, a, b: sizes.append(b - a) or real(p, a, b))
    list(separation.stream_separate(str(src), tiny_model_separator, chunk_seconds=8, overlap_seconds=4))
    assert max(sizes) == 8 * sr and len(sizes) == 14


def test_an_exploding_recurrence_falls_back_to_training_length_sequences():
    """A recurrent matrix that amplifies overflows on long inputs; the separator restarts
    the state every 100 frames instead of returning NaN."""
    model = Model(make_config(arch="drnn-2", hidden=16, seed=0))
    model.params["hidden2/U"][...] = 1.5 * np.eye(16, dtype=np.float32)  # h grows 1.5x a frame
    model.params["hidden2/b"][...] = 1.0
    sep = separation.ModelSeparator(model)
    mixture, _, _ = synth_song(10.0, seed=3)  # 313 frames: 1.5^313 overflows float32, 1.5^100 does not
    v, a = sep.separate(mixture)
    assert np.isfinite(v).all() and np.isfinite(a).all()
    np.testing.assert_allclose(v + a, mixture, atol=1e-5)


@pytest.mark.parametrize("sr", [16000, 44100])
@pytest.mark.parametrize("n", [1, 100, 700])
def test_inputs_shorter_than_a_frame_or_the_overlap(tiny_model_separator, sr, n):
    """Any input shorter than one chunk is separated in one piece, whatever its length."""
    x = np.random.default_rng(n).standard_normal(n) * 0.1
    v, a = separation.separate_array(x, sr, tiny_model_separator)
    assert v.shape == a.shape == (n,) and np.isfinite(v).all() and np.isfinite(a).all()
    if n <= 512:  # one piece: an overlap as long as the chunk does not matter
        v, a = separation.separate_chunked(tiny_model_separator, x, chunk=512, overlap=512)
        assert v.shape == (n,)


def test_the_package_separates_a_single_sample():
    import scratchnet
    for sr in (16000, 44100):
        v, a = scratchnet.separate(np.zeros(1), sr)
        assert v.shape == a.shape == (1,)


def test_power_mask_keeps_the_sum_and_sharpens():
    from scratchnet.separation import sharpen
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (20, 7))
    g = rng.uniform(0, 1, X.shape)
    y1, y2 = g * X, (1 - g) * X
    same = sharpen(y1, y2, X, 1.0)
    np.testing.assert_allclose(same[0], y1, atol=1e-12)
    s1, s2 = sharpen(y1, y2, X, 2.0)
    np.testing.assert_allclose(s1 + s2, X, atol=1e-12)
    dominant = g > 0.5
    assert np.all(s1[dominant] >= y1[dominant] - 1e-12) and np.all(s1[~dominant] <= y1[~dominant] + 1e-12)
    z1, z2 = sharpen(np.zeros((2, 3)), np.zeros((2, 3)), np.ones((2, 3)), 2.0)  # silence stays silent
    assert not z1.any() and not z2.any()
