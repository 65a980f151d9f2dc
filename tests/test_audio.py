"""Audio I/O: round trips through files written in tmp_path, resampling lengths, and every
error a user can cause, each checked by its message."""
import os
import re

import numpy as np
import pytest
import soundfile as sf

from scratchnet import audio
from scratchnet.errors import ScratchnetError

PCM16 = 1.0 / 32768                                 # one 16-bit quantisation step


def at(path):
    """Regex for a message that begins with ``path``."""
    return "^" + re.escape(str(path))


def tone(n, sr, freq=440.0, amp=0.5):
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)


@pytest.mark.parametrize("ext", [".wav", ".flac"])
def test_save_load_round_trip_pcm16(tmp_path, ext):
    y = tone(1600, 16000)
    path = tmp_path / f"x{ext}"
    audio.save(path, y, 16000)
    info = sf.info(path)
    assert (info.format, info.subtype, info.samplerate) == (ext[1:].upper(), "PCM_16", 16000)
    z, sr_in = audio.load(path)
    assert sr_in == 16000 and z.dtype == np.float64 and z.shape == y.shape
    assert np.max(np.abs(z - y)) <= PCM16               # within one quantisation step


def test_save_float_subtype_is_exact(tmp_path):
    y = np.random.default_rng(0).uniform(-1, 1, 500)
    audio.save(tmp_path / "x.wav", y, 8000, subtype="DOUBLE")
    z, sr_in = audio.load(tmp_path / "x.wav", sr=None)
    assert sr_in == 8000 and np.array_equal(z, y)


def test_save_clips_pcm_instead_of_wrapping(tmp_path):
    y = np.array([0.0, 1.5, -2.0, 0.25])
    audio.save(tmp_path / "x.flac", y, 16000)
    z, _ = audio.load(tmp_path / "x.flac")
    np.testing.assert_allclose(z, [0.0, 1.0, -1.0, 0.25], atol=PCM16)


def test_stereo_to_mono_and_channels(tmp_path):
    left, right = tone(800, 16000, 300), tone(800, 16000, 500, amp=0.25)
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="DOUBLE")
    y, _ = audio.load(path)
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-15)
    both, sr = audio.load_channels(path)
    assert sr == 16000 and both.shape == (800, 2)
    np.testing.assert_array_equal(both[:, 0], left)
    np.testing.assert_array_equal(both[:, 1], right)
    y2, _ = audio.load(path, mono=False)
    assert y2.shape == (800, 2)


def test_load_resamples_from_file_rate(tmp_path):
    path = tmp_path / "cd.wav"
    sf.write(path, tone(4410, 44100), 44100, subtype="DOUBLE")
    y, sr_in = audio.load(path, sr=16000)
    assert sr_in == 44100 and y.shape == (1600,)
    # a 440 Hz tone stays a 440 Hz tone: compare away from the filter's edge transients
    np.testing.assert_allclose(y[200:-200], tone(1600, 16000)[200:-200], atol=1e-3)
    stereo, _ = audio.load(path, sr=8000, mono=False)
    assert stereo.shape == (800, 1)


def test_load_reads_ogg(tmp_path):
    path = tmp_path / "x.ogg"
    sf.write(path, tone(8000, 16000), 16000, format="OGG", subtype="VORBIS")
    y, sr_in = audio.load(path)
    assert sr_in == 16000 and abs(len(y) - 8000) < 100


@pytest.mark.parametrize("n", [1, 2, 441, 1000, 44101, 12345])
def test_resample_lengths(n):
    x = np.random.default_rng(n).standard_normal(n)
    y = audio.resample(x, 44100, 16000)
    assert y.shape == (int(np.ceil(n * 16000 / 44100)),)
    z = audio.resample(y, 16000, 44100)
    assert z.shape == (int(np.ceil(len(y) * 44100 / 16000)),)
    assert n <= len(z) <= n + 3                     # ceil twice: a few samples longer at most
    assert audio.resample(x, 16000, 16000) is not x


def test_resample_round_trip_keeps_a_band_limited_signal():
    x = tone(44100, 44100, 1000)
    z = audio.resample(audio.resample(x, 44100, 16000), 16000, 44100)[:len(x)]
    assert np.max(np.abs(z - x)[1000:-1000]) < 3e-3   # the filter's passband ripple


def test_check_signal():
    audio.check_signal(np.zeros(3), "ok")
    with pytest.raises(ScratchnetError, match=r"^vocals: signal is empty \(shape \(0,\)\)$"):
        audio.check_signal(np.zeros(0), "vocals")
    with pytest.raises(ScratchnetError, match=r"^mix: signal has 2 NaN or infinite samples \(first at sample 1\)$"):
        audio.check_signal(np.array([0.0, np.nan, 1.0, np.inf]), "mix")


def test_load_errors_name_the_path(tmp_path):
    missing = tmp_path / "nothere.wav"
    with pytest.raises(ScratchnetError, match=at(missing) + r": no such file$"):
        audio.load(missing)
    with pytest.raises(ScratchnetError, match=at(tmp_path) + r": is a directory"):
        audio.load(tmp_path)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n")
    with pytest.raises(ScratchnetError, match=at(text) + r": not a readable audio file \("):
        audio.load(text)
    zero_bytes = tmp_path / "zero.flac"
    zero_bytes.write_bytes(b"")
    with pytest.raises(ScratchnetError, match=at(zero_bytes) + r": not a readable audio file"):
        audio.load_channels(zero_bytes)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 16000)             # a valid header with no samples
    with pytest.raises(ScratchnetError, match=at(empty) + r": signal is empty"):
        audio.load(empty)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.array([0.0, np.nan, np.inf, 0.5]), 16000, subtype="FLOAT")
    with pytest.raises(ScratchnetError, match=at(nan) + r": signal has 2 NaN or infinite samples"):
        audio.load(nan)
    with pytest.raises(ScratchnetError, match=r"sr=0 must be a positive integer"):
        audio.load(nan, sr=0)
    with pytest.raises(ScratchnetError, match=r"sr_out=16000.0 must be a positive integer"):
        audio.resample(np.zeros(4), 8000, 16000.0)


def test_save_errors(tmp_path):
    y = np.zeros(10)
    with pytest.raises(ScratchnetError, match=r"x\.mp3: cannot write '\.mp3'; use one of \.wav, \.flac"):
        audio.save(tmp_path / "x.mp3", y, 16000)
    with pytest.raises(ScratchnetError, match=r"x: cannot write 'files without an extension'"):
        audio.save(tmp_path / "x", y, 16000)
    with pytest.raises(ScratchnetError, match=r"subtype='FLOAT' cannot be written as FLAC"):
        audio.save(tmp_path / "x.flac", y, 16000, subtype="FLOAT")
    with pytest.raises(ScratchnetError, match=r"signal has 1 NaN"):
        audio.save(tmp_path / "x.wav", np.array([0.0, np.nan]), 16000)
    with pytest.raises(ScratchnetError, match=r"shape \(n,\) or \(n, C\), got shape \(1, 2, 3\)"):
        audio.save(tmp_path / "x.wav", np.zeros((1, 2, 3)), 16000)
    with pytest.raises(ScratchnetError, match=at(tmp_path / 'no' / 'such') + r": output folder does not exist$"):
        audio.save(tmp_path / "no" / "such" / "x.wav", y, 16000)
    (tmp_path / "d.wav").mkdir()                    # the target is a folder: os.replace fails
    with pytest.raises(ScratchnetError, match=r"d\.wav: could not write the file"):
        audio.save(tmp_path / "d.wav", y, 16000)
    assert sorted(os.listdir(tmp_path)) == ["d.wav"]   # and the temporary file is gone


def test_save_unwritable_folder_is_named(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(audio.os, "open", refuse)   # root ignores chmod, so fake the refusal
    with pytest.raises(ScratchnetError, match=at(tmp_path) + r": cannot write to the output folder \(Permission denied\)$"):
        audio.save(tmp_path / "x.wav", np.zeros(10), 16000)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes to read-only folders")
def test_save_read_only_folder_is_named(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ScratchnetError, match=at(ro) + r": cannot write to the output folder"):
            audio.save(ro / "x.wav", np.zeros(10), 16000)
    finally:
        ro.chmod(0o755)


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "out.wav"
    audio.save(path, np.full(100, 0.5), 16000)
    audio.save(path, np.full(50, -0.5), 16000)      # replaces the old file whole
    assert os.listdir(tmp_path) == ["out.wav"]
    y, _ = audio.load(path)
    np.testing.assert_allclose(y, -0.5)


def test_check_not_input(tmp_path):
    src = tmp_path / "in.wav"
    audio.save(src, np.zeros(10), 16000)
    audio.check_not_input(tmp_path / "out.wav", [src])
    with pytest.raises(ScratchnetError, match=r"output would overwrite the input .*in\.wav"):
        audio.check_not_input(tmp_path / "sub" / ".." / "in.wav", [src])
    link = tmp_path / "link.wav"
    link.symlink_to(src)
    with pytest.raises(ScratchnetError, match=r"link\.wav: output would overwrite the input"):
        audio.check_not_input(link, [str(src)])


@pytest.mark.parametrize("shape", [(1,), (7,), (1000, 2), (33, 3)])
def test_to_pcm16_kernel_matches_numpy_twin(shape):
    rng = np.random.default_rng(len(shape))
    y = rng.standard_normal(shape) * 0.7  # some samples beyond full scale: they saturate
    y.flat[0] = 1.0
    q, peak = audio.to_pcm16(y)
    q2, peak2 = audio.to_pcm16_numpy(y)
    assert q.dtype == np.int16 and q.shape == y.shape
    assert np.array_equal(q, q2) and peak == peak2
    assert q.flat[0] == 32767  # +1.0 saturates; -1.0 is -32768
    assert audio.to_pcm16(np.array([-1.0, 0.5 / 32768]))[0].tolist() == [-32768, 0]


def test_pcm16_round_trip_is_exact(tmp_path):
    """A 16-bit file read (libsndfile's 1/32768 scale) and written back is byte-identical."""
    src = tmp_path / "in.wav"
    q = np.random.default_rng(0).integers(-32768, 32768, size=(5000, 2), dtype=np.int16)
    sf.write(src, q, 44100, subtype="PCM_16")
    x, sr = sf.read(src)
    with audio.AtomicWriter(tmp_path / "out.wav", sr, channels=2) as w:
        w.write(x[:2000])
        w.write(x[2000:])
    assert (tmp_path / "out.wav").read_bytes() == src.read_bytes()


def test_to_pcm16_names_a_non_finite_sample():
    y = np.zeros(10)
    y[3] = np.inf
    with pytest.raises(ScratchnetError, match=r"vocals.wav: signal has 1 NaN or infinite samples \(first at sample 3\)"):
        audio.to_pcm16(y, "vocals.wav")
