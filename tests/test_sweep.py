import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from scratchnet.training import sweep
from scratchnet.errors import ScratchnetError


def _config(tmp_path):
    cfg = {
        "name": "tiny",
        "base": {"model": {"arch": "drnn-2", "hidden": 8}, "stages": [[10, 1]], "batch_size": 2,
                 "max_batches_per_epoch": 3, "valid_clips": 1, "workers": 1, "shift_step": 0},
        "grid": {"model.arch": ["dnn", "drnn-1"], "lr": [0.001]},
        "evaluate": {"split": "huang", "part": "test", "limit": 1},
    }
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def test_expand_makes_every_combination(tmp_path):
    cfg = sweep.load_sweep(_config(tmp_path))
    cfg["grid"]["lr"] = [0.1, 0.01]
    points = sweep.expand(cfg)
    assert [p[0] for p in points] == ["arch-dnn__lr-0.1", "arch-dnn__lr-0.01",
                                      "arch-drnn-1__lr-0.1", "arch-drnn-1__lr-0.01"]
    assert points[0][2]["model"] == {"arch": "dnn", "hidden": 8} and points[0][2]["lr"] == 0.1


def test_sweep_runs_in_parallel_writes_csv_and_figure_and_resumes(fake_mir1k, tmp_path):
    cfg = sweep.load_sweep(_config(tmp_path))
    out = str(tmp_path / "out")
    csv_path, fig_path = sweep.run_sweep(cfg, fake_mir1k, out, jobs=2, log=lambda *_: None)
    lines = open(csv_path).read().strip().splitlines()
    assert len(lines) == 3 and "vocals_GNSDR" in lines[0]
    assert open(fig_path, "rb").read(4) == b"\x89PNG"
    messages = []
    sweep.run_sweep(cfg, fake_mir1k, out, jobs=2, log=messages.append)
    assert "0 to do" in messages[0]


def test_bad_sweep_config(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"grid": {"lr": []}}))
    with pytest.raises(ScratchnetError, match="grid option 'lr' needs a non-empty list"):
        sweep.load_sweep(str(bad))
    with pytest.raises(ScratchnetError, match="cannot read sweep config"):
        sweep.load_sweep(str(tmp_path / "missing.json"))


def test_a_failed_setting_keeps_its_row_and_bars(fake_mir1k, tmp_path):
    cfg = sweep.load_sweep(_config(tmp_path))
    out = tmp_path / "out"
    ok, failed = [p[0] for p in sweep.expand(cfg)]
    (out / failed).mkdir(parents=True)
    (out / failed / "log.txt").write_text(
        "model dnn\nscratchnet train: error: loss became nan at epoch 1, batch 5: stopped; ...\n")
    (out / failed / "run").mkdir()
    (out / failed / "run" / "log.csv").write_text("epoch,stage,seq_len,batches,frames,seconds\n")
    assert [r["run"] for r in sweep.collect(cfg, str(out))] == [failed]  # `ok` has not run yet
    (out / ok).mkdir()
    scores = {s: 1.0 for s in sweep.SCORES}
    (out / ok / "result.json").write_text(json.dumps({"clips": 1, "vocals": scores, "accompaniment": scores}))
    rows = sweep.collect(cfg, str(out))
    assert [r["status"] for r in rows] == ["ok", "failed: loss became nan at epoch 1, batch 5"]
    assert rows[1]["clips"] == 0 and rows[1]["vocals_GNSDR"] != rows[1]["vocals_GNSDR"]  # NaN
    assert open(sweep.bar_chart(rows, path=str(tmp_path / "b.png")), "rb").read(4) == b"\x89PNG"


def test_ctrl_c_stops_the_runs_and_the_sweep_resumes(fake_mir1k, tmp_path):
    """The runs are in their own process groups: the sweep stops them with SIGTERM."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "scratchnet", "sweep", _config(tmp_path), "--data", fake_mir1k,
           "--out", str(out), "--jobs", "1"]
    err = open(tmp_path / "stderr.txt", "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    first = out / "arch-dnn__lr-0.001"
    t0 = time.time()
    while not (first / "run" / "config.json").exists():  # the first run is training
        assert time.time() - t0 < 60 and proc.poll() is None
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C at the terminal: the sweep's group only
    proc.wait(timeout=60)
    err.close()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode in (130, -signal.SIGINT), stderr
    assert stderr.splitlines() == ["scratchnet sweep: interrupted"], stderr
    assert glob.glob(str(out / "**" / "*.tmp*"), recursive=True) == []
    log = (first / "log.txt").read_text()
    assert "Traceback" not in log
    assert "scratchnet train: terminated" in log or "scratchnet evaluate: terminated" in log, log
    csv_path, _ = sweep.run_sweep(sweep.load_sweep(_config(tmp_path)), fake_mir1k, str(out), jobs=2,
                                  log=lambda *_: None)  # resumes, finishes
    assert len(open(csv_path).read().strip().splitlines()) == 3
