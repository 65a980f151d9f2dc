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
        v, a = separation.separate_array(x, sr, tiny_model_separator, mono=True)  # the old behaviour
        assert v.shape == a.shape == (sr * 2,)
        if sr > 16000:  # above the model's rate the accompaniment is the residual
            np.testing.assert_allclose(v + a, x.mean(1), atol=1e-12)
        v, a = separation.separate_array(x, sr, tiny_model_separator)  # channels kept
        assert v.shape == a.shape == (sr * 2, 2)


@pytest.mark.parametrize("sr", [16000, 44100])
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_stems_keep_the_channels_and_sum_back_to_the_input(tiny_model_separator, sr, channels):
    song, _, _ = synth_song(3.0, sr=sr, seed=5)
    gains = np.array([1.0, 0.6, -0.3][:channels])
    x = 0.3 * song[:, None] * gains + 0.01 * np.random.default_rng(0).standard_normal((song.size, channels))
    v, a = separation.separate_array(x, sr, tiny_model_separator, chunk_seconds=1.0)  # 3 chunks
    assert v.shape == a.shape == x.shape
    np.testing.assert_allclose(v + a, x, atol=1e-12)  # exactly: accompaniment = mixture - vocals
    assert np.abs(v).max() > 1e-4  # the vocals are not trivially empty


def test_the_band_above_8khz_goes_to_the_accompaniment(tiny_model_separator):
    """At 44.1 kHz the network sees the 16 kHz version; a 12 kHz tone stays whole in the
    accompaniment of every channel."""
    sr, n = 44100, 2 * 44100
    song, _, _ = synth_song(2.0, sr=sr, seed=6)
    tone = 0.2 * np.sin(2 * np.pi * 12000 * np.arange(n) / sr)
    x = np.stack([0.3 * song + tone, 0.2 * song + tone], axis=1)
    v, a = separation.separate_array(x, sr, tiny_model_separator)
    f = np.fft.rfftfreq(n, 1 / sr)
    high = f > 9000
    for c in range(2):
        V, A, X = (np.abs(np.fft.rfft(s[:, c])) for s in (v, a, x))
        assert np.sum(V[high] ** 2) < 1e-6 * np.sum(X[high] ** 2)  # nothing above 8 kHz in the vocals
        k = int(np.argmin(np.abs(f - 12000)))
        np.testing.assert_allclose(A[k], X[k], rtol=1e-5)  # the tone whole in the accompaniment


def test_one_mask_from_the_channels_mean_is_applied_to_each(tiny_model_separator):
    song, _, _ = synth_song(2.0, seed=7)
    mono_v, _ = tiny_model_separator.separate(song)
    v, a = separation.separate_array(np.stack([song, song], 1), 16000, tiny_model_separator)
    np.testing.assert_allclose(v[:, 0], mono_v, atol=1e-9)  # both channels as the mono song
    np.testing.assert_allclose(v[:, 1], mono_v, atol=1e-9)
    v, a = separation.separate_array(np.stack([song, 0.5 * song], 1), 16000, tiny_model_separator)
    np.testing.assert_allclose(v[:, 1], 0.5 * v[:, 0], atol=1e-9)  # one mask, so linear per channel
    v, a = separation.separate_array(np.stack([song, -song], 1), 16000, tiny_model_separator)
    assert np.all(v == 0)  # the channels cancel in the mean: |X| = 0, all to the accompaniment
    np.testing.assert_allclose(a, np.stack([song, -song], 1), atol=1e-12)


def test_a_separator_without_a_mask_runs_on_each_channel():
    x = np.random.default_rng(1).standard_normal((16000, 2))
    v, a = separation.separate_array(x, 16000, HalfAndHalf())
    np.testing.assert_allclose(v, 0.5 * x, atol=1e-12)


def test_the_rpca_baseline_separates_channels_with_one_mask():
    from scratchnet.baselines import RPCA
    song, _, _ = synth_song(2.0, seed=8)
    v, a = separation.separate_array(np.stack([song, 0.5 * song], 1), 16000, RPCA(max_iter=5))
    np.testing.assert_allclose(v[:, 1], 0.5 * v[:, 0], atol=1e-9)
    np.testing.assert_allclose(v + a, np.stack([song, 0.5 * song], 1), atol=1e-12)


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
                                             overlap_seconds=4, mono=True))
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
        assert sf.info(p).channels == 2  # the song's channels kept
    stereo = list(separation.stream_separate(str(src), tiny_model_separator, chunk_seconds=8,
                                             overlap_seconds=4))
    sv = np.concatenate([b[0] for b in stereo])
    assert sv.shape == (30 * sr, 2)
    np.testing.assert_allclose(sv[:, 0], v, atol=1e-9)  # equal channels: each as the mono song


def test_streaming_reads_one_chunk_at_a_time(tiny_model_separator, tmp_path, monkeypatch):
    sr = 16000
    src = tmp_path / "long.wav"
    sf.write(src, np.random.default_rng(0).standard_normal(60 * sr) * 0.1, sr)
    sizes = []
    real = separation.audio.read_block
    monkeypatch.setattr(separation.audio, "read_block",
                        lambda p, a, b, **kw: sizes.append(b - a) or real(p, a, b, **kw))
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


def test_the_package_keeps_the_shape_and_refuses_channels_first(tmp_path):
    import scratchnet
    path = Model(make_config(arch="drnn-2", hidden=8, seed=0)).save(str(tmp_path / "m.npz"))
    song, _, _ = synth_song(1.0, sr=22050, seed=9)
    for x in (song, song[:, None], np.stack([song, 0.5 * song], 1)):
        v, a = scratchnet.separate(x, 22050, model=path)
        assert v.shape == a.shape == x.shape
    v, a = scratchnet.separate(np.stack([song, song], 1), 22050, model=path, mono=True)
    assert v.shape == (song.size,)
    with pytest.raises(ScratchnetError, match=r"shape \(2, 22050\) looks like channels first.*transpose"):
        scratchnet.separate(np.stack([song, song]), 22050, model=path)
    with pytest.raises(ScratchnetError, match=r"shape \(100, 200\) reads as 200 channels of 100 samples"):
        scratchnet.separate(np.zeros((100, 200)), 22050, model=path)
    # the API's own mistakes, each in the project's one-line error
    with pytest.raises(ScratchnetError, match=r"signal is empty \(shape \(0, 2\)\)"):
        scratchnet.separate(np.zeros((0, 2)), 22050, model=path)
    with pytest.raises(ScratchnetError, match="expected an array of real numbers"):
        scratchnet.separate(np.array(["a", "b"], dtype=object), 22050, model=path)


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
