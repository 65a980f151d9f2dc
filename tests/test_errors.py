"""A new user's mistakes, each through the real command in a subprocess.

Each must end with exit status 2 and exactly one line on standard error (or just work), no
traceback, and nothing half-written: no temporary file, no empty output folder.  Ctrl-C at
any moment ends with status 130, SIGTERM with 143, one line each, and no temporary file.
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from scratchnet import training
from scratchnet.models import Model, make_config


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "scratchnet", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def temporary_files(folder):
    return glob.glob(os.path.join(folder, "**", "*.tmp*"), recursive=True) + glob.glob(
        os.path.join(folder, "**", ".*.tmp*"), recursive=True)


def assert_one_line(proc, code, *words):
    """Exit ``code``, one line on standard error naming ``words``, no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory, fake_mir1k):
    """Good and bad inputs, made once: a tiny model, broken models, a run, a song."""
    d = tmp_path_factory.mktemp("inputs")
    model = Model(make_config(arch="drnn-2", hidden=8, seed=0)).save(str(d / "tiny.npz"))
    whole = open(model, "rb").read()
    (d / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    (d / "empty.npz").write_bytes(b"")
    (d / "text.npz").write_text("not a model\n")
    (d / "folder.npz").mkdir()
    (d / "a_file").write_text("")
    sf.write(d / "song.wav", np.random.default_rng(0).standard_normal(16000) * 0.1, 16000)
    sf.write(d / "long.wav", np.random.default_rng(1).standard_normal(16000 * 20) * 0.1, 16000)
    for name in ("run_ckpt", "run_cfg"):  # two finished runs to break
        cfg = training.TrainConfig(data=fake_mir1k, model=make_config(arch="drnn-2", hidden=8),
                                   stages=[[10, 1]], batch_size=2, valid_clips=1, workers=1,
                                   max_batches_per_epoch=2)
        training.train(cfg, str(d / name), progress=False, log=lambda *_: None)
    ckpt = d / "run_ckpt" / "checkpoint.npz"
    ckpt.write_bytes(ckpt.read_bytes()[:300])
    config = d / "run_cfg" / "config.json"
    config.write_text(config.read_text()[:40])
    return d


@pytest.mark.parametrize("bad, word, other", [
    ("truncated.npz", "truncated", "evaluate"), ("empty.npz", "empty", "figure"),
    ("text.npz", "text.npz", "evaluate"), ("folder.npz", "folder", "figure")])
def test_a_broken_model_file(files, fake_mir1k, tmp_path, bad, word, other):
    m = ["--model", str(files / bad)]
    assert_one_line(run_cli("separate", str(files / "song.wav"), "-o", str(tmp_path / "o"), "-q", *m),
                    2, bad, word)
    if other == "evaluate":
        assert_one_line(run_cli("evaluate", "--data", fake_mir1k, "-q", *m), 2, bad, word)
    else:
        assert_one_line(run_cli("figure", "--data", fake_mir1k, "--clip", "Ani_1_01", "-o",
                                str(tmp_path / "f.png"), *m), 2, bad, word)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("run, word", [("run_ckpt", "checkpoint.npz"), ("run_cfg", "config.json")])
def test_resume_of_a_truncated_run(files, run, word):
    line = assert_one_line(run_cli("train", "--out", str(files / run), "--resume", "-q"), 2, word)
    assert "truncated" in line


def test_outputs_that_cannot_be_written_are_refused_before_any_work(files, fake_mir1k, tmp_path):
    blocked = str(files / "a_file")  # a file where a folder should be
    nodata = str(tmp_path / "nodata")  # the output is checked first: this is never looked at
    cases = [
        ("figure", "--data", nodata, "--clip", "x", "--method", "irm", "-o", f"{blocked}/f.png"),
        ("figure", "--data", nodata, "--clip", "x", "--method", "irm", "-o", str(tmp_path)),
        ("curves", str(tmp_path / "norun"), "-o", f"{blocked}/c.png"),
        ("demo", "-o", f"{blocked}/demo"),
        ("train", "--data", fake_mir1k, "--out", f"{blocked}/run", "--model", "dnn", "-q"),
        ("evaluate", "--method", "irm", "--data", nodata, "--json", f"{blocked}/s.json", "-q"),
        ("evaluate", "--method", "irm", "--data", nodata, "--json", str(tmp_path), "-q"),
    ]
    for args in cases:
        line = assert_one_line(run_cli(*args), 2)
        assert "a_file" in line or f"{tmp_path}'" in line, (args, line)
    sweep = tmp_path / "s.json"
    sweep.write_text(json.dumps({"grid": {"lr": [0.1]}}))
    assert_one_line(run_cli("sweep", str(sweep), "--data", fake_mir1k, "--out", f"{blocked}/sw"),
                    2, "a_file")
    assert sorted(os.listdir(tmp_path)) == ["s.json"]


@pytest.mark.parametrize("sr, n", [(16000, 1), (16000, 100), (16000, 700), (44100, 1), (44100, 100)])
def test_inputs_shorter_than_the_overlap_separate(files, tmp_path, sr, n):
    song = tmp_path / "short.wav"
    sf.write(song, np.random.default_rng(n).standard_normal(n) * 0.1, sr)
    proc = run_cli("separate", str(song), "-o", str(tmp_path / "o"), "-q",
                   "--model", str(files / "tiny.npz"))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    for name in ("vocals.wav", "accompaniment.wav"):
        info = sf.info(tmp_path / "o" / "short" / name)
        assert (info.frames, info.samplerate) == (n, sr)


def test_train_on_a_small_folder_holds_out_what_it_can(fake_mir1k, tmp_path):
    proc = run_cli("train", "--data", fake_mir1k, "--out", str(tmp_path / "r"), "--model", "drnn-2",
                   "--hidden", "8", "--seq-len", "10", "--epochs", "1", "--max-batches", "2",
                   "--batch-size", "2", "--workers", "1", "-q")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "only 4 training clip(s): holding out 1 for validation instead of 25" in proc.stdout
    assert "training clips 3, validation clips 1" in proc.stdout


def test_a_failed_separation_leaves_nothing(files, tmp_path):
    nan = tmp_path / "nan.wav"
    x = np.zeros(16000, np.float32)
    x[8000] = np.nan  # found only when the samples are read, after the outputs were opened
    sf.write(nan, x, 16000, subtype="FLOAT")
    out = tmp_path / "out"
    assert_one_line(run_cli("separate", str(nan), "-o", str(out), "-q", "--model",
                            str(files / "tiny.npz")), 2, "NaN")
    assert not out.exists()


def _start(args, cwd):
    """Start the command in its own process group, as a terminal would, stderr to a file."""
    err = open(os.path.join(cwd, "stderr.txt"), "w")
    proc = subprocess.Popen([sys.executable, "-m", "scratchnet", *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    return proc, err


def _finish(proc, err, cwd):
    proc.wait(timeout=120)
    err.close()
    return subprocess.CompletedProcess(proc.args, proc.returncode, "",
                                       open(os.path.join(cwd, "stderr.txt")).read())


def assert_interrupted(done, code, word):
    """One line, no traceback, and status ``code``.

    After Ctrl-C the process may also end *by* SIGINT once its line is printed: CPython
    does so when the interrupt first went through ``exec`` of a string (NumPy's import
    does), the convention for interrupted programs; a shell reports 130 either way.
    """
    if code == 130 and done.returncode == -signal.SIGINT:
        done = subprocess.CompletedProcess(done.args, 130, done.stdout, done.stderr)
    return assert_one_line(done, code, word)


def _wait_for_numpy(pid, timeout=60):
    """Wait until the process has loaded NumPy's C core: scratchnet's main() is importing."""
    t0 = time.time()
    while "_multiarray_umath" not in open(f"/proc/{pid}/maps").read():
        assert time.time() - t0 < timeout, "NumPy never loaded"
        time.sleep(0.005)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc to see the imports")
@pytest.mark.parametrize("delay", [0.0, 0.15, 0.3])
def test_ctrl_c_during_start_up_imports(files, tmp_path, delay):
    """Ctrl-C while NumPy, SciPy and Numba load (the first second of every command)."""
    proc, err = _start(["separate", str(files / "long.wav"), "-o", "out", "-q"], str(tmp_path))
    _wait_for_numpy(proc.pid)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)
    assert_interrupted(_finish(proc, err, str(tmp_path)), 130, "scratchnet separate: interrupted")
    assert temporary_files(str(tmp_path)) == [] and not (tmp_path / "out").exists()


def _wait_for(path, timeout=60):
    t0 = time.time()
    while not os.path.exists(path):
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "terminated")])
def test_a_signal_during_the_demo_leaves_no_temporary_file(tmp_path, sig, code, word):
    proc, err = _start(["demo", "-o", "demo", "--seconds", "40"], str(tmp_path))
    _wait_for(tmp_path / "demo" / "demo_mixture.wav")  # now separating, outputs open
    time.sleep(0.1)
    os.killpg(proc.pid, sig)
    assert_interrupted(_finish(proc, err, str(tmp_path)), code, f"scratchnet demo: {word}")
    assert temporary_files(str(tmp_path)) == []
    outputs = tmp_path / "demo" / "demo_mixture"  # both outputs whole, or none at all
    if outputs.exists():
        assert sorted(os.listdir(outputs)) == ["accompaniment.wav", "vocals.wav"]
        assert sf.info(outputs / "vocals.wav").frames == 40 * 16000


def test_sigterm_during_separate_leaves_nothing(files, tmp_path):
    song = tmp_path / "long.wav"
    sf.write(song, np.random.default_rng(0).standard_normal(16000 * 120) * 0.1, 16000)
    proc, err = _start(["separate", str(song), "-o", "out", "-q"], str(tmp_path))
    _wait_for(tmp_path / "out" / "long")
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)  # to the process alone, as `kill` does
    assert_one_line(_finish(proc, err, str(tmp_path)), 143, "scratchnet separate: terminated")
    assert temporary_files(str(tmp_path)) == [] and not (tmp_path / "out").exists()


def test_ctrl_c_during_a_parallel_evaluation(fake_mir1k, tmp_path):
    """The workers ignore Ctrl-C (the parent stops them): one line, no worker traceback."""
    proc, err = _start(["evaluate", "--method", "rpca", "--data", fake_mir1k, "--workers", "2",
                        "-q"], str(tmp_path))
    t0 = time.time()
    while "split huang" not in open(tmp_path / "stderr.txt").read():
        assert time.time() - t0 < 60
        time.sleep(0.02)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # the whole group, as the terminal does
    done = _finish(proc, err, str(tmp_path))
    lines = [ln for ln in done.stderr.splitlines() if not ln.startswith("split huang")]
    assert "Traceback" not in done.stderr and done.returncode in (130, -signal.SIGINT), done.stderr
    assert lines == ["scratchnet evaluate: interrupted"], done.stderr


@pytest.mark.parametrize("flags, words", [
    (["--seq-len", "5000"], ["too few for one batch of 2 x 5000 frames"]),
    (["--lr", "-1"], ["lr=-1.0"]),
    (["--epochs", "0"], ["--epochs 0"])])
def test_train_options_that_cannot_work_leave_no_run_folder(fake_mir1k, tmp_path, flags, words):
    proc = run_cli("train", "--data", fake_mir1k, "--out", str(tmp_path / "runs" / "r"), "--model",
                   "dnn", "--hidden", "8", "--batch-size", "2", "--valid-clips", "1", "-q", *flags)
    assert_one_line(proc, 2, *words)
    assert os.listdir(tmp_path) == []


def _stems_case(folder, case):
    """A stems folder with one mistake in it (besides a good track)."""
    from conftest import write_stems_track
    good = write_stems_track(str(folder), "good", seconds=3.0, sr=16000, seed=1)
    bad = write_stems_track(str(folder), "bad", seconds=3.0, sr=16000, seed=2, split_accompaniment=True)
    if case == "no vocals":
        os.unlink(os.path.join(bad, "vocals.wav"))
    elif case == "no accompaniment":
        for stem in ("drums", "bass", "other"):
            os.unlink(os.path.join(bad, f"{stem}.wav"))
    elif case == "lengths":
        y, sr = sf.read(os.path.join(bad, "bass.wav"))
        sf.write(os.path.join(bad, "bass.wav"), y[:-100], sr)
    elif case == "rates":
        y, _ = sf.read(os.path.join(bad, "drums.wav"))
        sf.write(os.path.join(bad, "drums.wav"), y, 22050)
    elif case == "not audio":
        with open(os.path.join(bad, "other.wav"), "w") as f:
            f.write("not audio")
    elif case == "mixture":  # seen when the track is read: the only track, so training reads it
        y, sr = sf.read(os.path.join(bad, "mixture.wav"))
        sf.write(os.path.join(bad, "mixture.wav"), np.roll(y, 5000), sr)
        shutil.rmtree(good)
    return str(folder), good


@pytest.mark.parametrize("case, words", [
    ("no vocals", ["track 'bad'", "has no vocals.wav or vocals.flac"]),
    ("no accompaniment", ["track 'bad'", "has vocals but no accompaniment", "drums, bass and other"]),
    ("lengths", ["track 'bad': bass.wav has 47900 samples but vocals.wav 48000", "one length"]),
    ("rates", ["track 'bad': drums.wav is at 22050 Hz but vocals.wav at 16000 Hz", "one rate"]),
    ("not audio", ["other.wav: not a readable audio file"]),
    ("mixture", ["track 'bad': mixture.wav is not the sum of its stems", "dB"])])
def test_a_stems_folder_with_a_mistake(tmp_path, case, words):
    data_dir, _ = _stems_case(tmp_path / "stems", case)
    out = tmp_path / "runs" / "r"
    assert_one_line(run_cli("train", "--data", data_dir, "--out", str(out), "--model", "dnn", "--hidden", "8",
                            "--seq-len", "5", "--batch-size", "2", "--workers", "1", "-q"), 2, *words)
    assert not (tmp_path / "runs").exists()  # refused before the run folder was made
    if case != "mixture":  # found from the headers, before any work: evaluate says it as its first line
        assert_one_line(run_cli("evaluate", "--method", "irm", "--data", data_dir, "-q"), 2, *words)


def test_an_empty_folder_for_either_layout(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line(run_cli("evaluate", "--method", "irm", "--data", str(empty), "-q"), 2,
                    "no MIR-1K clips", "no tracks of stems", "empty")
    assert_one_line(run_cli("evaluate", "--method", "irm", "--data", str(empty), "--layout", "stems", "-q"),
                    2, "no tracks", "found in", "empty")
    (empty / "train").mkdir()
    assert_one_line(run_cli("train", "--data", str(empty), "--layout", "stems", "--out", str(tmp_path / "r"),
                            "-q"), 2, "no tracks", "empty")
    assert_one_line(run_cli("figure", "--data", str(empty), "--clip", "x@0s", "-o", str(tmp_path / "f.png")),
                    2, "no MIR-1K clips")


def test_a_split_for_mir1k_on_a_stems_folder(tmp_path):
    data_dir, _ = _stems_case(tmp_path / "stems", "none")
    assert_one_line(run_cli("evaluate", "--method", "irm", "--data", data_dir, "--split", "amer", "-q"),
                    2, "--split amer is for MIR-1K folders", "split by track")


def test_a_signal_that_c_code_turned_into_another_error_still_reads_as_the_signal(monkeypatch, capsys):
    """NumPy's C import once turned a Ctrl-C into an ImportError that no longer held it."""
    from scratchnet import cli, commands

    def interrupted_inside_c(args):
        try:
            cli._on_signal(signal.SIGINT, None)  # what the handler does when Ctrl-C lands
        except KeyboardInterrupt:
            pass  # ... swallowed by the C code, which then fails in its own way:
        raise ImportError("PyCapsule_Import could not import module 'datetime'")

    monkeypatch.setattr(commands, "cmd_models", interrupted_inside_c)
    assert cli.main(["models"]) == 130
    assert capsys.readouterr().err.strip() == "scratchnet models: interrupted"
    monkeypatch.setattr(commands, "cmd_models", lambda args: (_ for _ in ()).throw(ImportError("a bug")))
    with pytest.raises(ImportError, match="a bug"):  # with no signal, a bug keeps its traceback
        cli.main(["models"])


def test_a_signal_inside_numbas_callback_is_sent_again_not_lost(monkeypatch):
    """A signal that lands in llvmlite's ctypes callback (Numba loading a cached kernel) is not
    raised there, where ctypes would print it and drop it, but sent again a moment later."""
    import os
    import signal
    import sys

    import llvmlite

    from scratchnet import cli
    monkeypatch.setattr(cli, "_CALLBACK_DIRS", cli._CALLBACK_DIRS + (os.path.dirname(llvmlite.__file__),))
    ns = {}
    exec(compile("import sys\nframe = sys._getframe()", os.path.join(os.path.dirname(llvmlite.__file__), "x.py"),
                 "exec"), ns)
    assert cli._inside_callback(ns["frame"]) and not cli._inside_callback(sys._getframe())
    sent = []
    monkeypatch.setattr(cli.os, "kill", lambda pid, signum: sent.append((pid, signum)))
    cli._on_signal(signal.SIGTERM, ns["frame"])  # no exception raised
    import time
    for _ in range(100):
        if sent:
            break
        time.sleep(0.01)
    assert sent == [(os.getpid(), signal.SIGTERM)]
    with pytest.raises(cli.Terminated):
        cli._on_signal(signal.SIGTERM, sys._getframe())
    cli._received.clear()
