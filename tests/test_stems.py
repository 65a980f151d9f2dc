"""One's own multitracks in the stems layout: finding the tracks, excerpts, the split by track,
reading excerpt by excerpt, and train, evaluate, figure and separate on a synthetic collection."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import write_stems_track
from scratchnet import audio, data, stems, training
from scratchnet.errors import ScratchnetError


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "scratchnet", *args], capture_output=True,
                          text=True, timeout=300)


def test_the_layout_is_told_by_the_folder(fake_stems, fake_mir1k):
    assert data.detect_layout(fake_stems) == "stems"
    assert data.detect_layout(fake_mir1k) == "mir1k"
    found = data.find_parts(fake_stems)
    assert found.layout == "stems" and found.split == "tracks"
    assert found.description == ("stems by track (a seeded 80/20 split of the tracks): "
                                 "train 5 tracks (8 clips), test 1 track (2 clips)")
    tracks = {c.singer for part in found.parts.values() for c in part}
    assert len(tracks) == 6
    train = {c.singer for c in found.parts["train"]}
    assert not train & {c.singer for c in found.parts["test"]}  # split by track, never by excerpt
    assert data.find_parts(fake_stems, seed=1).parts["test"] != found.parts["test"]  # seeded


def test_excerpts_of_ten_seconds_with_the_tail_joined():
    def cut(seconds, sr=22050):
        t = stems.Track("t", "/t", "/t/vocals.wav", ("/t/accompaniment.wav",), "", sr, int(seconds * sr))
        return [(e.name, (e.stop - e.start) / sr) for e in stems.excerpts(t)]
    assert cut(3) == [("t@0s", 3)]
    assert cut(13) == [("t@0s", 13)]               # a 3 s tail joins the excerpt before it
    assert cut(15) == [("t@0s", 10), ("t@10s", 5)]
    assert cut(31) == [("t@0s", 10), ("t@10s", 10), ("t@20s", 11)]


def test_an_excerpt_is_read_as_its_stems_sum(fake_stems):
    clip = data.find_clip(fake_stems, "track 2 - artist@10s")  # 15 s at 44.1 kHz, mono, drums/bass/other
    track = clip.track
    assert [os.path.basename(p) for p in track.accompaniment] == ["drums.wav", "bass.wav", "other.wav"]
    assert (track.sr, track.frames, clip.start, clip.stop) == (44100, 15 * 44100, 10 * 44100, 15 * 44100)
    vocals, accompaniment = data.load_sources(clip)
    assert vocals.shape == accompaniment.shape == (5 * 16000,)
    raw = sum(sf.read(p)[0][clip.start:clip.stop] for p in track.accompaniment)
    expected = data.unit_norm(audio.resample(raw, 44100, 16000))
    np.testing.assert_allclose(accompaniment, expected, atol=1e-9)
    assert np.linalg.norm(vocals) == pytest.approx(1.0)
    mixture, v, a = data.load_clip(clip)  # Huang's 0 dB mixture of the excerpt
    np.testing.assert_allclose(mixture, v + a)


def test_a_stereo_track_is_averaged_to_mono(fake_stems):
    clip = data.find_clip(fake_stems, "track 1 - artist@0s")  # FLAC, stereo, 22.05 kHz
    vocals, _ = clip.load_sources(sr=None)
    raw, _ = sf.read(clip.track.vocals)
    np.testing.assert_allclose(vocals, data.unit_norm(raw.mean(1)), atol=1e-12)


def test_train_and_test_folders_are_the_split(tmp_path):
    for part, names in (("train", ["a", "b", "c"]), ("test", ["d"])):
        for i, name in enumerate(names):
            write_stems_track(str(tmp_path / part), name, seconds=4.0, sr=16000, seed=i)
    found = data.find_parts(str(tmp_path))
    assert found.description.startswith("stems by track (train/ and test/ folders): train 3 tracks")
    assert [c.name for c in found.parts["test"]] == ["d@0s"]


def test_validation_holds_out_whole_tracks(fake_stems):
    cfg = training.TrainConfig(data=fake_stems, valid_clips=2, split_seed=0)
    said = []
    train, valid = training.split_clips(cfg, log=said.append)
    assert {c.singer for c in valid}.isdisjoint({c.singer for c in train})
    assert len({c.singer for c in valid}) == 2 and said == []
    train, valid = training.split_clips(training.TrainConfig(data=fake_stems), log=said.append)
    assert said == ["only 5 training track(s): holding out 1 for validation instead of 25 "
                    "(choose with --valid-clips)"]
    with pytest.raises(ScratchnetError, match="--split amer is for MIR-1K folders"):
        training.split_clips(training.TrainConfig(data=fake_stems, split="amer"))


def test_training_sources_are_read_when_asked_and_batch_as_in_memory(fake_stems, monkeypatch):
    clips = data.find_parts(fake_stems).parts["train"]
    lazy = stems.ExcerptSources(clips)
    spans = []
    real = audio.read_block
    monkeypatch.setattr(audio, "read_block", lambda p, a, b: spans.append(b - a) or real(p, a, b))
    kw = dict(seq_len=20, batch_size=3, shift_step=16000, pool=3, seed=4)
    assert not spans  # planning an epoch reads nothing
    stream = data.SequenceStream(lazy, **kw)
    assert not spans and stream.lengths == [lazy[i][0].shape[0] for i in range(len(lazy))]
    in_memory = data.SequenceStream([lazy[i] for i in range(len(lazy))], **kw)
    for (x1, v1, a1), (x2, v2, a2) in zip(stream.epoch(0), in_memory.epoch(0)):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(v1, v2)
    assert max(spans) <= 15 * 44100  # never more than one excerpt of a file at a time


def test_a_long_track_is_read_in_segments(tmp_path, monkeypatch):
    write_stems_track(str(tmp_path), "long", seconds=93.0, sr=44100, channels=2, seed=3)
    spans = []
    real = audio.read_block
    monkeypatch.setattr(audio, "read_block", lambda p, a, b: spans.append(b - a) or real(p, a, b))
    clips = data.find_parts(str(tmp_path)).parts["train"]
    assert len(clips) == 9 and [c.name for c in clips][-1] == "long@80s"
    for c in clips:
        data.load_clip(c)
    assert max(spans) == 13 * 44100 and min(spans) == 10 * 44100  # 3 s of tail joined the last


def test_a_mixture_that_is_not_the_sum_is_refused(tmp_path):
    track = write_stems_track(str(tmp_path), "bad", seconds=3.0, sr=16000, seed=1)
    mix, sr = sf.read(os.path.join(track, "mixture.wav"))
    sf.write(os.path.join(track, "mixture.wav"), mix + 0.3 * np.roll(mix, 4000, axis=0), sr, subtype="FLOAT")
    clip = data.find_parts(str(tmp_path)).parts["train"][0]
    with pytest.raises(ScratchnetError, match=r"track 'bad': mixture.wav is not the sum of its stems over "
                                              r"samples 0..48000 \(the difference is at -\d+\.\d dB"):
        data.load_clip(clip)


def test_train_evaluate_figure_and_separate_on_stems(fake_stems, tmp_path):
    run = tmp_path / "run"
    proc = run_cli("train", "--data", fake_stems, "--out", str(run), "--model", "drnn-2", "--hidden", "8",
                   "--seq-len", "10", "--epochs", "2", "--max-batches", "3", "--batch-size", "2",
                   "--valid-clips", "1", "--workers", "1", "-q")
    assert proc.returncode == 0, proc.stderr
    assert "training clips 6, validation clips 2" in proc.stdout  # 4 tracks train, 1 validates
    assert len((run / "log.csv").read_text().splitlines()) == 3
    best = str(run / "best.npz")
    proc = run_cli("evaluate", "--model", best, "--data", fake_stems, "--workers", "1", "-q",
                   "--json", str(tmp_path / "s.json"))
    assert proc.returncode == 0, proc.stderr
    assert "stems by track" in proc.stderr and "(tracks/test)" in proc.stdout
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["split"] == "tracks" and scores["clips"] == 2
    assert [r["clip"] for r in scores["per_clip"]] == ["track 3 - artist@0s", "track 3 - artist@10s"]
    proc = run_cli("figure", "--data", fake_stems, "--layout", "stems", "--clip", "track 3 - artist@10s",
                   "--model", best, "-o", str(tmp_path / "f.png"))
    assert proc.returncode == 0, proc.stderr
    mixture = os.path.join(fake_stems, "track 1 - artist", "mixture.flac")
    proc = run_cli("separate", mixture, "-o", str(tmp_path / "sep"), "--model", best, "-q")
    assert proc.returncode == 0, proc.stderr
    info = sf.info(tmp_path / "sep" / "mixture" / "vocals.flac")
    assert (info.samplerate, info.channels, info.frames) == (22050, 2, 13 * 22050)
