"""The ``scratchnet`` command: outputs, and one clear line with exit status 2 for bad input."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from scratchnet.cli import main
from scratchnet.models import Model, make_config


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
    assert main(["separate", str(song), "-o", str(tmp_path / "sep"), "--model", tiny_model, "-q"]) == 0
    for name in ("vocals.wav", "accompaniment.wav"):
        info = sf.info(tmp_path / "sep" / "song" / name)
        assert info.samplerate == 44100 and info.frames == 30000
    assert "averaged to mono" in capsys.readouterr().err
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
