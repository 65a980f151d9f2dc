"""Bad inputs through the real command, each in a subprocess: one line and status 2, or it works.

Besides the message, each test checks what is left on disk: no temporary file, no empty
folder, no lock, and the user's files untouched.
"""
import glob
import json
import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from scratchnet import audio, files, training
from scratchnet.errors import ScratchnetError
from scratchnet.models import Model, load_model, make_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, timeout=120, **kw):
    return subprocess.run([sys.executable, "-m", "scratchnet", *args], capture_output=True,
                          timeout=timeout, text=not isinstance(kw.get("input"), bytes), **kw)


def left(folder):
    """Every file and folder under ``folder``, hidden ones included, relative to it."""
    found = []
    for top, dirs, names in os.walk(folder):
        found += [os.path.relpath(os.path.join(top, n), folder) for n in dirs + names]
    return sorted(found)


def temporaries(folder):
    return [p for p in left(folder) if ".tmp" in os.path.basename(p) or p.endswith(files.LOCK_NAME)]


def stderr_of(proc):
    return proc.stderr.decode() if isinstance(proc.stderr, bytes) else proc.stderr


def assert_one_line(proc, code, *words):
    """Exit ``code``, exactly one line on standard error naming ``words``, no traceback."""
    err = stderr_of(proc)
    assert "Traceback" not in err, err
    assert proc.returncode == code, (proc.returncode, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny model and a few songs, made once."""
    d = tmp_path_factory.mktemp("bad_inputs")
    Model(make_config(arch="drnn-2", hidden=8, seed=0)).save(str(d / "tiny.npz"))
    rng = np.random.default_rng(0)
    sf.write(d / "song.wav", rng.standard_normal(16000) * 0.1, 16000)
    sf.write(d / "stereo.wav", rng.standard_normal((16000, 2)) * 0.1, 16000)
    sf.write(d / "loud.wav", np.clip(rng.standard_normal(16000), -2.5, 2.5), 16000, subtype="FLOAT")
    sf.write(d / "huge.wav", (rng.standard_normal(16000) * 5e29).astype(np.float32), 16000, subtype="FLOAT")
    sf.write(d / "long.wav", rng.standard_normal(16000 * 120) * 0.1, 16000)
    nan = np.zeros(16000, np.float32)
    nan[100] = np.nan
    sf.write(d / "nan.wav", nan, 16000, subtype="FLOAT")
    return d


def tiny(inputs):
    return ["--model", str(inputs / "tiny.npz")]


# --------------------------------------------------------------------------- 1. not a file
def test_a_fifo_or_a_device_is_refused_without_hanging(inputs, tmp_path):
    fifo = tmp_path / "song.wav"
    os.mkfifo(fifo)
    for path in (str(fifo), os.devnull):
        proc = run_cli("separate", path, "-o", str(tmp_path / "out"), "-q", *tiny(inputs), timeout=60)
        assert_one_line(proc, 2, f"{path}: not a regular file (a pipe, device or socket)", "-")
    assert left(tmp_path) == ["song.wav"]


def test_standard_input_is_read_whole_and_its_copy_removed(inputs, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))
    out = tmp_path / "out"
    song = (inputs / "stereo.wav").read_bytes()
    proc = run_cli("separate", "-", "-o", str(out), "-q", *tiny(inputs), input=song, env=env)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    x, _ = sf.read(inputs / "stereo.wav")
    v, _ = sf.read(out / "stdin" / "vocals.wav")
    a, _ = sf.read(out / "stdin" / "accompaniment.wav")
    assert v.shape == x.shape and np.max(np.abs(v + a - x)) <= 3 / 32768
    assert left(out) == ["stdin", "stdin/accompaniment.wav", "stdin/vocals.wav"]
    cases = [(b"", "-: standard input is empty"),
             (b"not audio at all", "standard input: not a readable audio file"),
             ((inputs / "nan.wav").read_bytes(), "standard input: signal has 1 NaN")]
    for data, words in cases:
        proc = run_cli("separate", "-", "-o", str(tmp_path / "o2"), "-q", *tiny(inputs), input=data, env=env)
        assert_one_line(proc, 2, words)
    assert left(tmp) == [] and not (tmp_path / "o2").exists()  # the copies are gone


# --------------------------------------------------------------------------- 2. above full scale
def test_a_float_input_above_full_scale_is_told_and_float32_keeps_it(inputs, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("separate", str(inputs / "loud.wav"), "-o", str(out / "16"), "-q", *tiny(inputs))
    line = assert_one_line(proc, 0, "warning: the stems of loud.wav peak at", "above full scale",
                           "16-bit", "no longer sum to the input", "--float32")
    assert line.startswith("warning:")
    for song in ("loud", "huge"):
        proc = run_cli("separate", str(inputs / f"{song}.wav"), "-o", str(out / "32"), "-q",
                       "--float32", *tiny(inputs))
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        x, _ = sf.read(inputs / f"{song}.wav")
        v, _ = sf.read(out / "32" / song / "vocals.wav")
        a, _ = sf.read(out / "32" / song / "accompaniment.wav")
        assert sf.info(out / "32" / song / "vocals.wav").subtype == "FLOAT"
        assert np.max(np.abs(v + a - x)) <= 1e-5 * np.max(np.abs(x))  # float32's rounding only
    flac = tmp_path / "song.flac"
    sf.write(flac, sf.read(inputs / "song.wav")[0], 16000)
    proc = run_cli("separate", str(flac), "-o", str(out / "f"), "-q", "--float32", *tiny(inputs))
    assert proc.returncode == 0 and sorted(os.listdir(out / "f" / "song")) == ["accompaniment.wav", "vocals.wav"]
    proc = run_cli("separate", str(flac), "-o", str(out / "24"), "-q", "--int24", *tiny(inputs))
    assert proc.returncode == 0 and sf.info(out / "24" / "song" / "vocals.flac").subtype == "PCM_24"
    proc = run_cli("separate", str(flac), "-o", str(out / "no"), "--format", "flac", "--float32", *tiny(inputs))
    assert_one_line(proc, 2, "FLAC cannot hold float samples", "--float32 writes WAV")
    proc = run_cli("separate", str(flac), "-o", str(out / "no"), "--int24", "--float32")
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr
    assert not (out / "no").exists()


def test_demo_writes_float32_stems(inputs, tmp_path):
    proc = run_cli("demo", str(inputs / "loud.wav"), "-o", str(tmp_path / "d"), "-q", "--float32")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert sf.info(tmp_path / "d" / "loud" / "vocals.wav").subtype == "FLOAT"


# --------------------------------------------------------------------------- 3. full disk, signals
def _file_size_limit(n_bytes):
    """For preexec_fn: files may not grow past ``n_bytes`` (a full disk, as a write sees it:
    the write fails, with EFBIG, since SIGXFSZ is ignored)."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, resource.RLIM_INFINITY))
    return limit


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_a_full_disk_while_separating_leaves_nothing(inputs, tmp_path, fmt):
    out = tmp_path / "out"
    proc = run_cli("separate", str(inputs / "song.wav"), "-o", str(out), "-q", "--format", fmt,
                   *tiny(inputs), preexec_fn=_file_size_limit(5000))
    assert_one_line(proc, 2, f"{out}/song/vocals.{fmt}: could not write the file (File too large)")
    assert not out.exists()


@pytest.mark.parametrize("limit, where", [(100, "demo_mixture.wav"), (100_000, "vocals.wav"),
                                          (140_000, "demo.png")])
def test_a_full_disk_during_the_demo_leaves_nothing(tmp_path, limit, where):
    """The song (64 kB) or the float stems (128 kB) or the figure cannot be written: all
    that was written before is removed too, and the folder."""
    proc = run_cli("demo", "-o", str(tmp_path / "demo"), "--seconds", "2", "-q", "--float32",
                   preexec_fn=_file_size_limit(limit))
    assert_one_line(proc, 2, where, "File too large")
    assert left(tmp_path) == []


def _start(args, cwd, **kw):
    err = open(os.path.join(cwd, "stderr.txt"), "w")
    proc = subprocess.Popen([sys.executable, "-m", "scratchnet", *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=err, **kw)
    return proc, err


def _finish(proc, err, cwd):
    proc.wait(timeout=120)
    err.close()
    text = open(os.path.join(cwd, "stderr.txt")).read()
    os.unlink(os.path.join(cwd, "stderr.txt"))
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", text)


def _wait_for_temporaries(folder, timeout=60):
    """Until both stems are open, being written."""
    t0 = time.time()
    while len(glob.glob(os.path.join(folder, ".*.tmp*"))) < 2:
        assert time.time() - t0 < timeout, f"no temporary file in {folder}"
        time.sleep(0.01)


def test_sighup_during_separate_is_sigterm_with_129(inputs, tmp_path):
    def terminal():  # as from a terminal, even when these tests run under nohup
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    proc, err = _start(["separate", str(inputs / "long.wav"), "-o", "out", "-q"], str(tmp_path),
                       preexec_fn=terminal)
    _wait_for_temporaries(tmp_path / "out" / "long")
    proc.send_signal(signal.SIGHUP)
    assert_one_line(_finish(proc, err, str(tmp_path)), 129, "scratchnet separate: hung up")
    assert left(tmp_path) == []


def test_sighup_stays_ignored_under_nohup(inputs, tmp_path):
    def nohup():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    proc, err = _start(["separate", str(inputs / "long.wav"), "-o", "out", "-q"], str(tmp_path),
                       preexec_fn=nohup)
    _wait_for_temporaries(tmp_path / "out" / "long")
    proc.send_signal(signal.SIGHUP)
    done = _finish(proc, err, str(tmp_path))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert left(tmp_path) == ["out", "out/long", "out/long/accompaniment.wav", "out/long/vocals.wav"]


def test_the_temporaries_of_a_killed_run_are_removed_by_the_next(inputs, tmp_path):
    proc, err = _start(["separate", str(inputs / "long.wav"), "-o", "out", "-q"], str(tmp_path))
    song = tmp_path / "out" / "long"
    _wait_for_temporaries(song)
    proc.kill()  # SIGKILL: no clean-up at all
    _finish(proc, err, str(tmp_path))
    stale = temporaries(song)
    assert len(stale) == 3 and files.LOCK_NAME in stale, stale  # two stems and the lock
    kept = [f".vocals.wav.{files._host()}-{os.getpid()}.abcd1234.tmp.wav",  # a live writer's
            ".vocals.wav.another_host-1.abcd1234.tmp.wav",                  # another machine's
            ".vocals.wav.abcd1234.tmp.wav"]                                  # not our pattern
    for name in kept:
        (song / name).write_bytes(b"")
    again = run_cli("separate", str(inputs / "long.wav"), "-o", str(tmp_path / "out"), "-q", *tiny(inputs))
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert sorted(os.listdir(song)) == sorted(kept + ["accompaniment.wav", "vocals.wav"])


# --------------------------------------------------------------------------- 4. train
TRAIN = ["--model", "drnn-2", "--hidden", "8", "--seq-len", "10", "--batch-size", "2",
         "--max-batches", "2", "--workers", "1", "--valid-clips", "1", "-q"]


def _weights(path):
    return {k: v for k, v in load_model(path).params.items()}


def test_resume_trains_on_with_more_epochs_and_refuses_contradictions(fake_mir1k, tmp_path):
    run, straight = str(tmp_path / "run"), str(tmp_path / "straight")
    assert run_cli("train", "--data", fake_mir1k, "--out", run, "--epochs", "2", *TRAIN).returncode == 0
    config = open(os.path.join(run, "config.json")).read()
    proc = run_cli("train", "--out", run, "--resume", "-q")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.splitlines()[0] == (f"{run}: the run has finished its 2 epochs, nothing to "
                                           "train (--resume --epochs 3 trains on)")
    for flags, words in ((["--hidden", "16"], "hidden=16 contradicts the run's hidden=8"),
                         (["--lr", "0.1"], "lr=0.1 contradicts the run's lr=0.001"),
                         (["--epochs", "1"], "stages [[10, 1]] do not continue the run's stages [[10, 2]]")):
        assert_one_line(run_cli("train", "--out", run, "--resume", "-q", *flags), 2, words)
    assert open(os.path.join(run, "config.json")).read() == config
    # the same options again, and those that win (where the data is, how many workers), are fine
    proc = run_cli("train", "--out", run, "--resume", "--epochs", "3", "--data", fake_mir1k, *TRAIN)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "epoch 3: loss" in proc.stdout
    assert json.load(open(os.path.join(run, "config.json")))["stages"] == [[10, 3]]
    assert run_cli("train", "--data", fake_mir1k, "--out", straight, "--epochs", "3", *TRAIN).returncode == 0
    for k, v in _weights(os.path.join(straight, "last.npz")).items():  # as if it had been 3 all along
        np.testing.assert_array_equal(v, _weights(os.path.join(run, "last.npz"))[k], err_msg=k)


@pytest.mark.parametrize("flags, words", [
    (["--hidden", "0"], "hidden=0 must be a whole number of at least 1"),
    (["--context", "-1"], "context=-1 must be a whole number of at least 0"),
    (["--gamma", "-1"], "gamma=-1.0 must lie in [0, 1)"),
    (["--lr-decay", "-1"], "lr_decay=-1.0 must be a positive number"),
    (["--lr-decay", "0"], "lr_decay=0.0 must be a positive number"),
    (["--seed", "-1"], "seed=-1 must not be negative")])
def test_train_options_that_cannot_work_are_refused_before_any_file(fake_mir1k, tmp_path, flags, words):
    proc = run_cli("train", "--data", fake_mir1k, "--out", str(tmp_path / "run"), *TRAIN, *flags)
    assert_one_line(proc, 2, words)
    assert left(tmp_path) == []


def test_no_validation_clips_is_said_not_scored_nan(fake_mir1k, tmp_path):
    proc = run_cli("train", "--data", fake_mir1k, "--out", str(tmp_path / "run"), "--epochs", "1",
                   *TRAIN, "--valid-clips", "0")
    assert proc.returncode == 0, proc.stderr
    assert "epoch 1: loss" in proc.stdout and "no validation clips (best.npz is the latest model)" in proc.stdout
    assert "nan" not in proc.stdout.lower()


# --------------------------------------------------------------------------- 5. demo
@pytest.mark.parametrize("seconds", ["0", "-5", "1e9", "nan"])
def test_demo_seconds_out_of_range(tmp_path, seconds):
    proc = run_cli("demo", "-o", str(tmp_path / "demo"), "--seconds", seconds, "-q")
    assert_one_line(proc, 2, f"--seconds {float(seconds):g} must be between 1 and 600")
    assert left(tmp_path) == []


def test_demo_of_a_file_with_nan_samples(inputs, tmp_path):
    proc = run_cli("demo", str(inputs / "nan.wav"), "-o", str(tmp_path / "demo"), "-q")
    assert_one_line(proc, 2, "nan.wav: signal has 1 NaN or infinite samples (first at sample 100)")
    assert left(tmp_path) == []


# --------------------------------------------------------------------------- 6. one writer per folder
def test_a_second_run_into_a_folder_being_written_is_refused(inputs, tmp_path):
    args = ["separate", str(inputs / "long.wav"), "-o", "out", "-q", "--force"]
    proc, err = _start(args, str(tmp_path))
    lock = tmp_path / "out" / "long" / files.LOCK_NAME
    t0 = time.time()
    while not lock.exists() or not lock.read_text():
        assert time.time() - t0 < 60
        time.sleep(0.01)
    second = run_cli(*args, "--report", cwd=str(tmp_path))
    assert_one_line(second, 2, "output folder 'out/long' is being written by another scratchnet "
                               f"command (pid {proc.pid} on ", "wait for it to end")
    done = _finish(proc, err, str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path / "out" / "long")) == ["accompaniment.wav", "vocals.wav"]


def test_a_lock_left_by_a_dead_process_is_taken_over(inputs, tmp_path):
    song = tmp_path / "out" / "song"
    song.mkdir(parents=True)
    (song / files.LOCK_NAME).write_text("pid 999999 on elsewhere\n")  # no one holds it
    proc = run_cli("separate", str(inputs / "song.wav"), "-o", str(tmp_path / "out"), "-q", *tiny(inputs))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert sorted(os.listdir(song)) == ["accompaniment.wav", "vocals.wav"]


# --------------------------------------------------------------------------- 7. -q
def test_quiet_silences_the_multichannel_notice(inputs, tmp_path):
    proc = run_cli("separate", str(inputs / "stereo.wav"), "-o", str(tmp_path / "o"), "-q", *tiny(inputs))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    loud = run_cli("separate", str(inputs / "stereo.wav"), "-o", str(tmp_path / "p"), *tiny(inputs))
    assert loud.stderr.startswith("multi-channel input:") and len(loud.stderr.splitlines()) == 1


# --------------------------------------------------------------------------- 8. progress bars
class _Terminal(__import__("io").StringIO):
    def isatty(self):
        return True


def test_train_draws_its_bar_on_a_terminal_only(fake_mir1k, tmp_path, monkeypatch):
    proc = run_cli("train", "--data", fake_mir1k, "--out", str(tmp_path / "log"), "--epochs", "2",
                   *[a for a in TRAIN if a != "-q"])  # no -q; standard error is a pipe, a log
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert [ln.split(":")[0] for ln in proc.stdout.splitlines() if ln.startswith("epoch")] == ["epoch 1", "epoch 2"]
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    cfg = training.TrainConfig(data=fake_mir1k, model=make_config(arch="drnn-2", hidden=8),
                               stages=[[10, 1]], batch_size=2, valid_clips=1, workers=1,
                               max_batches_per_epoch=2)
    training.train(cfg, str(tmp_path / "tty"), progress=True, log=lambda *_: None)
    assert "epoch 1 (T=10)" in terminal.getvalue()


# --------------------------------------------------------------------------- 9. formats
def test_mp3_and_opus_are_read_and_m4a_is_told_how_to_convert(inputs, tmp_path):
    x = sf.read(inputs / "stereo.wav")[0]
    sf.write(tmp_path / "a.mp3", x, 16000, format="MP3")
    sf.write(tmp_path / "b.opus", x, 48000, format="OGG", subtype="OPUS")
    proc = run_cli("separate", str(tmp_path / "a.mp3"), str(tmp_path / "b.opus"), "-o",
                   str(tmp_path / "out"), "-q", *tiny(inputs))
    assert proc.returncode == 0, proc.stderr
    assert sf.info(tmp_path / "out" / "b" / "vocals.wav").samplerate == 48000
    for ext in (".m4a", ".aac", ".mp4", ".wma"):
        song = tmp_path / f"song{ext}"
        song.write_bytes(b"\0\0\0\x20ftypM4A " + bytes(200))
        proc = run_cli("separate", str(song), "-o", str(tmp_path / "no"), "-q")
        assert_one_line(proc, 2, f"{song}: not a readable audio file", f"ffmpeg -i {song} {tmp_path}/song.wav")
    assert not (tmp_path / "no").exists()
    commands = open(os.path.join(ROOT, "README.md")).read().split("## Commands")[1].split("\n## ")[0]
    for word in ("MP3", "Opus", "ffmpeg -i song.m4a song.wav", "--float32"):
        assert word in commands, word


# --------------------------------------------------------------------------- 10. as_signal
@pytest.mark.parametrize("x, words", [
    (np.zeros((0, 2)), "mixture: signal is empty (shape (0, 2))"),
    (np.array(["a", "b"], dtype=object), "expected an array of real numbers, got ndarray of dtype object"),
    ([[1.0, 2.0], [3.0]], "got list: setting an array element with a sequence"),
    (None, "got NoneType"), ("song.wav", "got str"), (np.ones(4, complex), "dtype complex128"),
    (np.zeros((2, 16000)), "looks like channels first"), (np.zeros((2, 2, 2)), "got shape (2, 2, 2)"),
    ([0.0, np.inf], "1 NaN or infinite samples")])
def test_as_signal_refuses_in_one_line(x, words):
    with pytest.raises(ScratchnetError) as e:
        audio.as_signal(x, "mixture")
    assert words in str(e.value) and "\n" not in str(e.value)


def test_as_signal_gives_float64():
    y = audio.as_signal(np.arange(6, dtype=np.int16).reshape(3, 2), "mixture")
    assert y.dtype == np.float64 and y.shape == (3, 2)


# --------------------------------------------------------------------------- a damaged model
@pytest.mark.parametrize("damage, words", [
    ("inf", "tensor 'hidden1/W' holds 1 NaN or infinite value(s): the training diverged or the file is damaged"),
    ("nan", "tensor 'hidden1/W' holds 1 NaN or infinite value(s)"),
    ("mean", "buffer 'mean' has shape (7,), the config's 513 bins need (513,)"),
    ("complex", "dtype='complex64' must be float32 or float64")])
def test_a_damaged_model_is_refused_in_one_line(inputs, tmp_path, damage, words):
    import json

    from scratchnet import files
    from scratchnet.models import Model, make_config
    model = Model(make_config(arch="drnn-2", hidden=8, seed=0))
    arrays, config = model.arrays(), dict(model.config)
    if damage in ("inf", "nan"):
        arrays["param:hidden1/W"][0, 0] = np.inf if damage == "inf" else np.nan
    elif damage == "mean":
        arrays["buffer:mean"] = np.zeros(7, np.float32)
    else:
        config["dtype"] = "complex64"
    files.save_npz(str(tmp_path / "m.npz"), arrays, meta={"config": json.loads(json.dumps(config))})
    proc = run_cli("separate", str(inputs / "song.wav"), "-o", str(tmp_path / "out"),
                   "--model", str(tmp_path / "m.npz"), "-q")
    assert_one_line(proc, 2, words)
    assert not (tmp_path / "out").exists() or left(tmp_path / "out") == []


def test_evaluate_starts_at_most_one_worker_per_clip(fake_mir1k):
    proc = run_cli("evaluate", "--method", "irm", "--data", fake_mir1k, "--limit", "2", "--workers", "999", "-q")
    assert proc.returncode == 0, proc.stderr
    assert "2 clip(s): 2 worker process(es), not 999" in proc.stderr


def test_a_huge_mask_power_is_the_binary_mask_not_nan(inputs, tmp_path):
    proc = run_cli("separate", str(inputs / "song.wav"), "-o", str(tmp_path / "out"), "--mask-power", "1e6",
                   "-q", *tiny(inputs))
    assert proc.returncode == 0, proc.stderr
    import soundfile as sf
    v, _ = sf.read(tmp_path / "out" / "song" / "vocals.wav")
    assert np.isfinite(v).all()
