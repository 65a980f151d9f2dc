"""The ``scratchnet`` command: outputs, and one clear line with exit status 2 for bad input."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from scratchnet.cli import main
from scratchnet.models import Model, load_model, make_config


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.npz"
    return Model(make_config(arch="drnn-2", hidden=8, seed=0)).save(str(path))


def run_cli(*args):
    """Run the real command in a subprocess: what a user sees, tracebacks included."""
    return subprocess.run([sys.executable, "-m", "scratchnet", *args], capture_output=True,
                          text=True, timeout=300)


def assert_one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert len(lines) == 1, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_evaluate_writes_table_and_json(fake_mir1k, tmp_path, capsys):
    out = tmp_path / "irm.json"
    assert main(["evaluate", "--method", "irm", "--data", fake_mir1k, "--limit", "2",
                 "--workers", "1", "-q", "--json", str(out)]) == 0
    printed = capsys.readouterr()
    assert "GNSDR" in printed.out and "clips scored: 2" in printed.out
    assert "train 4, valid 0, test 4" in printed.err
    result = json.loads(out.read_text())
    assert result["method"] == "irm" and result["split"] == "huang" and result["clips"] == 2
    assert set(result["vocals"]) >= {"GNSDR", "GSIR", "GSAR"}
    assert len(result["per_clip"]) == 2 and result["vocals"]["GNSDR"] > 5


def test_evaluate_a_trained_model(fake_mir1k, tiny_model, capsys):
    assert main(["evaluate", "--model", tiny_model, "--data", fake_mir1k, "--limit", "1",
                 "--workers", "1", "-q"]) == 0
    assert "tiny.npz" in capsys.readouterr().out


def test_separate_and_figure(fake_mir1k, tiny_model, tmp_path, capsys):
    song = tmp_path / "song.wav"
    sf.write(song, np.random.default_rng(0).standard_normal((30000, 2)) * 0.1, 44100)
    assert main(["separate", str(song), "-o", str(tmp_path / "sep"), "--model", tiny_model]) == 0
    for name in ("vocals.wav", "accompaniment.wav"):
        info = sf.info(tmp_path / "sep" / "song" / name)
        assert info.samplerate == 44100 and info.frames == 30000
    assert "averaged to mono" in capsys.readouterr().err  # a notice, silenced by -q
    fig = tmp_path / "fig.png"
    assert main(["figure", "--data", fake_mir1k, "--clip", "Ani_1_01", "--method", "irm",
                 "-o", str(fig)]) == 0
    assert fig.read_bytes()[:4] == b"\x89PNG"
    titled = tmp_path / "titled.png"
    assert main(["figure", "--data", fake_mir1k, "--clip", "Ani_1_01", "--model", tiny_model,
                 "--title", "a tiny DRNN", "-o", str(titled)]) == 0
    assert titled.read_bytes()[:4] == b"\x89PNG"


def test_bad_inputs_get_one_line_and_status_2(fake_mir1k, tiny_model, tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1)), 16000)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    nan = tmp_path / "nan.wav"
    x = np.zeros(16000, np.float32)
    x[100] = np.nan
    sf.write(nan, x, 16000, subtype="FLOAT")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    good = tmp_path / "good.wav"
    sf.write(good, np.random.default_rng(1).standard_normal(16000) * 0.1, 16000)
    m = ["--model", tiny_model]
    cases = [
        (["separate", str(tmp_path / "missing.wav"), *m], "missing.wav"),
        (["separate", str(text), *m], "notes.wav"),
        (["separate", str(empty), *m], "empty.wav"),
        (["separate", str(nan), *m], "NaN"),
        (["separate", str(good), "-o", str(blocker), *m], "a_file"),
        (["evaluate", "--method", "irm", "--data", str(tmp_path / "nodata")], "nodata"),
        (["evaluate", "--method", "irm", "--data", str(tmp_path)], "no MIR-1K clips"),
        (["evaluate", "--method", "irm", "--data", fake_mir1k, "--split", "bogus"], "bogus"),
        (["evaluate", "--method", "nmf", "--data", fake_mir1k], "nmf"),
        (["evaluate", "--model", str(text), "--data", fake_mir1k], "notes.wav"),
        (["figure", "--data", fake_mir1k, "--clip", "nobody_1_01", "--method", "irm", "-o",
          str(tmp_path / "f.png")], "nobody_1_01"),
    ]
    for args, word in cases:
        assert_one_line_error(run_cli(*args), word)


def test_outputs_never_overwrite_the_input(tiny_model, tmp_path):
    # OUT/<stem>/vocals.wav is the input itself when the input is OUT/vocals/vocals.wav
    folder = tmp_path / "vocals"
    folder.mkdir()
    song = folder / "vocals.wav"
    sf.write(song, np.random.default_rng(2).standard_normal(16000) * 0.1, 16000)
    before = song.read_bytes()
    assert_one_line_error(run_cli("separate", str(song), "-o", str(tmp_path), "--model", tiny_model),
                          "overwrite")
    assert song.read_bytes() == before


def test_demo_makes_a_song_and_separates_it(tmp_path):
    proc = run_cli("demo", "-o", str(tmp_path / "demo"), "--seconds", "3")
    assert proc.returncode == 0, proc.stderr
    for name in ("demo_mixture.wav", "demo.png", "demo_mixture/vocals.wav", "demo_mixture/accompaniment.wav"):
        assert (tmp_path / "demo" / name).is_file(), name
    assert sf.info(tmp_path / "demo" / "demo_mixture" / "vocals.wav").frames == 3 * 16000


def test_curves_compare_runs_of_a_curriculum(fake_mir1k, tmp_path, capsys):
    from scratchnet import training
    runs = []
    for name, stages in (("cur", [[5, 1, 4], [20, 1, 1]]), ("flat", [[20, 2, 1]])):
        cfg = training.TrainConfig(data=fake_mir1k, model=make_config(arch="drnn-2", hidden=8),
                                   stages=stages, batch_size=3, valid_clips=1, workers=1)
        training.train(cfg, str(tmp_path / name), progress=False, log=lambda *_: None)
        runs.append(str(tmp_path / name))
    out = tmp_path / "cmp.png"
    assert main(["curves", *runs, "--compare", "--labels", "curriculum", "400 only", "-o", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert_one_line_error(run_cli("curves", *runs, "--compare", "--labels", "one", "-o", str(out)),
                          "--labels")


def test_fixed_choices_are_those_of_the_modules():
    """cli.py keeps them literal (parsing imports nothing heavy): here they meet their source."""
    from scratchnet import audio, cli, data, losses, nn, optimizers, separation
    from scratchnet.models import ARCHS
    from scratchnet.signal import get_window
    assert cli.ARCHS == ARCHS
    assert cli.METHODS == separation.METHODS
    assert cli.SPLITS == data.SPLITS
    assert cli.TARGETS == data.TARGETS
    assert all(tuple(data.split([], s)) == cli.PARTS for s in data.SPLITS)
    assert cli.OBJECTIVES == tuple(losses.LOSSES)
    assert cli.OPTIMIZERS == (*optimizers.OPTIMIZERS, "lbfgs")
    assert cli.BACKENDS == nn.BACKENDS
    assert cli.AUDIO_FORMATS == tuple(ext[1:] for ext in audio.FORMATS)
    for window in cli.WINDOWS:
        assert get_window(window, 16).shape == (16,)
    for features in cli.FEATURES:
        make_config(features=features)
    from scratchnet import models
    assert cli.FEATURES == models.FEATURES
    assert cli.CELLS == models.config.CELLS
    assert cli.FEATURE_NORMS == models.config.FEATURE_NORMS
    with pytest.raises(Exception, match="bogus"):
        get_window("bogus", 16)
    with pytest.raises(Exception, match="bogus"):
        make_config(features="bogus")


def test_help_and_version_answer_without_numba():
    code = ("import sys\n"
            "from scratchnet.cli import main\n"
            "for argv in (['--help'], ['train', '--help'], ['--version']):\n"
            "    try:\n"
            "        main(argv)\n"
            "    except SystemExit as e:\n"
            "        assert e.code == 0, e.code\n"
            "print(sorted(m for m in ('numpy', 'numba', 'scipy', 'matplotlib') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"
    assert "{dnn,drnn-1,drnn-2,drnn-3,srnn,hybrid,unet}" in proc.stdout  # train --help lists them
    assert "--backend {fast,reference}" in proc.stdout
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("scratchnet 0.")


def test_train_with_its_own_stft_then_separate_and_evaluate(fake_mir1k, tmp_path):
    """--n-fft/--hop-length/--window reach the model; separate and evaluate then use them."""
    run = tmp_path / "run"
    proc = run_cli("train", "--data", fake_mir1k, "--out", str(run), "--model", "drnn-2",
                   "--hidden", "8", "--n-fft", "512", "--hop-length", "256", "--window", "hann",
                   "--seq-len", "10", "--epochs", "1", "--max-batches", "2", "--batch-size", "2",
                   "--valid-clips", "1", "--workers", "1", "--backend", "reference", "-q")
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((run / "config.json").read_text())
    assert saved["backend"] == "reference"
    assert {k: saved["model"][k] for k in ("n_fft", "hop_length", "window", "n_bins")} == {
        "n_fft": 512, "hop_length": 256, "window": "hann", "n_bins": 257}
    best = str(run / "best.npz")
    song = tmp_path / "song.wav"
    sf.write(song, np.random.default_rng(3).standard_normal(20000) * 0.1, 16000)
    proc = run_cli("separate", str(song), "-o", str(tmp_path / "sep"), "--model", best, "-q")
    assert proc.returncode == 0, proc.stderr
    assert sf.info(tmp_path / "sep" / "song" / "vocals.wav").frames == 20000
    proc = run_cli("evaluate", "--model", best, "--data", fake_mir1k, "--limit", "1",
                   "--workers", "1", "-q", "--json", str(tmp_path / "s.json"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "s.json").read_text())["clips"] == 1


def test_gated_bidirectional_training_with_augmentation_then_shipped_names(fake_mir1k, tmp_path):
    """--cell/--bidirectional/--augment reach the run's config; models are chosen by name."""
    run = tmp_path / "run"
    proc = run_cli("train", "--data", fake_mir1k, "--out", str(run), "--model", "srnn", "--layers", "2",
                   "--hidden", "6", "--cell", "gru", "--bidirectional", "--augment", "remix=1,pitch=1",
                   "--feature-norm", "global", "--seq-len", "10", "--epochs", "1", "--max-batches", "2", "--batch-size", "2",
                   "--valid-clips", "1", "--workers", "1", "-q")
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"]["cell"] == "gru" and saved["model"]["bidirectional"] is True
    assert saved["model"]["feature_norm"] == "global"
    assert not load_model(str(run / "best.npz")).buffers["mean"].any()  # one scale, no means
    assert saved["augment"] == {"remix": 1.0, "pitch": 1.0}
    proc = run_cli("evaluate", "--model", str(run / "best.npz"), "--data", fake_mir1k, "--limit", "1",
                   "--workers", "1", "-q", "--mask-power", "2")
    assert proc.returncode == 0, proc.stderr
    listing = run_cli("models")
    assert listing.returncode == 0 and listing.stdout.startswith("drnn2: ")
    from scratchnet import pretrained
    assert f"{pretrained.DEFAULT} (default)" in listing.stdout
    proc = run_cli("evaluate", "--model", "drnn2", "--data", fake_mir1k, "--limit", "1", "--workers", "1", "-q")
    assert proc.returncode == 0, proc.stderr
    assert_one_line_error(run_cli("evaluate", "--model", "drnn9", "--data", fake_mir1k, "-q"),
                          "unknown model 'drnn9'", "scratchnet models")
    assert_one_line_error(run_cli("train", "--data", fake_mir1k, "--out", str(tmp_path / "r2"),
                                  "--augment", "remix=2"), "remix=2.0")


def _stereo_song(path, seconds=3.0, sr=44100, seed=0):
    from scratchnet.synthetic import synth_song
    x, _, _ = synth_song(seconds, sr=sr, seed=seed)
    sf.write(path, 0.4 * np.stack([x, 0.6 * x + 0.05 * np.roll(x, 99)], 1) / np.abs(x).max(), sr)
    return path


def test_stereo_stems_sum_back_and_mono_on_request(tiny_model, tmp_path):
    song = _stereo_song(tmp_path / "song.wav")
    x, _ = sf.read(song)
    assert main(["separate", str(song), "-o", str(tmp_path / "st"), "--model", tiny_model, "-q"]) == 0
    v, sr = sf.read(tmp_path / "st" / "song" / "vocals.wav")
    a, _ = sf.read(tmp_path / "st" / "song" / "accompaniment.wav")
    assert sr == 44100 and v.shape == a.shape == x.shape
    assert np.max(np.abs(v + a - x)) <= 3 / 32768  # exact but for the files' 16-bit rounding
    assert main(["separate", str(song), "-o", str(tmp_path / "mo"), "--model", tiny_model, "-q", "--mono"]) == 0
    assert sf.info(tmp_path / "mo" / "song" / "vocals.wav").channels == 1


def test_existing_outputs_are_replaced_only_with_force(tiny_model, tmp_path):
    song = _stereo_song(tmp_path / "song.wav")
    args = ["separate", str(song), "-o", str(tmp_path / "o"), "--model", tiny_model, "-q"]
    assert run_cli(*args).returncode == 0
    vocals = tmp_path / "o" / "song" / "vocals.wav"
    vocals.write_bytes(b"mine")
    proc = run_cli(*args)
    assert_one_line_error(proc, str(vocals), "already exists", "--force")
    assert vocals.read_bytes() == b"mine"
    assert run_cli(*args, "--force").returncode == 0
    assert sf.info(vocals).channels == 2


def test_inputs_that_would_share_a_folder_are_refused_before_any_work(tiny_model, tmp_path):
    for sub, ext in (("a", ".wav"), ("b", ".flac")):
        (tmp_path / sub).mkdir()
        _stereo_song(tmp_path / sub / f"song{ext}", seconds=1.0)
    proc = run_cli("separate", str(tmp_path / "a" / "song.wav"), str(tmp_path / "b" / "song.flac"),
                   "-o", str(tmp_path / "out"), "--model", tiny_model, "-q")
    assert_one_line_error(proc, "a/song.wav and ", "b/song.flac", "would both write", str(tmp_path / "out" / "song"))
    assert not (tmp_path / "out").exists()


class _Terminal(__import__("io").StringIO):
    def isatty(self):
        return True


def test_the_bar_counts_seconds_and_notices_go_above_it(tiny_model, tmp_path, monkeypatch):
    song = _stereo_song(tmp_path / "song.wav", seconds=3.0)
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["separate", str(song), "-o", str(tmp_path / "o"), "--model", tiny_model]) == 0
    pieces = [p.strip() for p in err.getvalue().replace("\r", "\n").split("\n") if p.strip()]
    assert any(p.startswith("song.wav: 100%") and "| 3/3 s of audio [" in p for p in pieces), pieces
    notice = "multi-channel input: one mask from the channels averaged to mono is applied to each channel"
    assert any(p.startswith(notice) for p in pieces), pieces  # a line of its own ...
    assert not any(notice in p and "of audio" in p for p in pieces)  # ... never inside the bar's


def test_demo_prints_the_scores_of_its_stems(tmp_path):
    proc = run_cli("demo", "-o", str(tmp_path / "d"), "--seconds", "4", "-q")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr  # -q: no bar
    rows = {ln.split()[0]: [float(v) for v in ln.split()[1:]] for ln in proc.stdout.splitlines()
            if ln.startswith(("vocals ", "accompaniment "))}
    assert set(rows) == {"vocals", "accompaniment"} and all(len(r) == 4 for r in rows.values())
    assert rows["vocals"][0] > 3 and rows["accompaniment"][0] > 3  # NSDR of the shipped model, dB
    assert "NSDR" in proc.stdout and "SIR" in proc.stdout
    again = run_cli("demo", "-o", str(tmp_path / "d"), "--seconds", "4", "-q")
    assert_one_line_error(again, "demo_mixture.wav already exists", "--force")
    assert run_cli("demo", "-o", str(tmp_path / "d"), "--seconds", "4", "-q", "--force").returncode == 0


def test_the_layouts_are_those_of_data():
    from scratchnet import cli, data
    assert cli.LAYOUTS == data.LAYOUTS


def test_keep_freed_memory_is_harmless():
    from scratchnet.cli import keep_freed_memory
    keep_freed_memory()  # glibc's M_TOP_PAD, or nothing elsewhere: never an error
    keep_freed_memory(0)
