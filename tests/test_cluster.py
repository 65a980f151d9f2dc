"""Sweeps and evaluations on a real Dask cluster: a ``distributed.LocalCluster`` of two worker
processes, against the same work run locally.  Skipped where Dask's distributed is not
installed (the ``cluster`` extra)."""
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from scratchnet import data, metrics  # noqa: E402
from scratchnet.errors import ScratchnetError  # noqa: E402
from scratchnet.separation import get_separator  # noqa: E402
from scratchnet.training import sweep  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """A scheduler and two single-threaded worker processes on this machine."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=40) as c:
        yield c


def _sweep_config(tmp_path, epochs=1, batches=3):
    cfg = {
        "name": "tiny",
        "base": {"model": {"arch": "drnn-2", "hidden": 8}, "stages": [[10, epochs]], "batch_size": 2,
                 "max_batches_per_epoch": batches, "valid_clips": 1, "workers": 1, "shift_step": 0},
        "grid": {"model.arch": ["dnn", "drnn-1"], "lr": [0.001]},
        "evaluate": {"split": "huang", "part": "test", "limit": 2},
    }
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(cfg))
    return sweep.load_sweep(str(path))


def _scores(csv_path):
    """The rows of a sweep's results.csv without the training time (the only column that varies)."""
    with open(csv_path) as f:
        return [{k: v for k, v in row.items() if k != "train_seconds"} for row in csv.DictReader(f)]


def test_evaluation_through_the_cluster_gives_the_local_scores(fake_mir1k, cluster):
    clips = data.find_parts(fake_mir1k).parts["test"]
    separator = get_separator("irm")
    local = metrics.evaluate(separator, clips, workers=1, progress=False)
    remote = metrics.evaluate(separator, clips, progress=False, scheduler=cluster.scheduler_address)
    assert remote == local  # every clip, every score, in the same order, to the bit


def test_cli_evaluate_with_a_scheduler(fake_mir1k, cluster, tmp_path):
    out = tmp_path / "scores.json"
    cmd = [sys.executable, "-m", "scratchnet", "evaluate", "--method", "irm", "--data", fake_mir1k,
           "--limit", "2", "-q", "--json", str(out), "--scheduler", cluster.scheduler_address]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    local = subprocess.run(cmd[:-2] + ["--workers", "1", "--json", str(tmp_path / "local.json")],
                           capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr
    assert json.loads(out.read_text()) == json.loads((tmp_path / "local.json").read_text())


def test_sweep_through_the_cluster_gives_the_local_results(fake_mir1k, cluster, tmp_path):
    cfg = _sweep_config(tmp_path)
    local_csv, _ = sweep.run_sweep(cfg, fake_mir1k, str(tmp_path / "local"), jobs=2, log=lambda *_: None)
    messages = []
    remote_csv, fig = sweep.run_sweep(cfg, fake_mir1k, str(tmp_path / "remote"),
                                      scheduler=cluster.scheduler_address, log=messages.append)
    assert "2 to do, on tcp://" in messages[0] and "2 workers" in messages[0]
    assert sum("done in" in m for m in messages) == 2
    assert _scores(remote_csv) == _scores(local_csv)
    assert len(_scores(local_csv)) == 2 and os.path.isfile(fig)


def test_a_worker_killed_mid_sweep_costs_only_its_run(fake_mir1k, tmp_path):
    """SIGKILL the worker running one grid point: the scheduler gives the point to the other
    worker, where the training resumes from its checkpoint; both points finish."""
    cfg = _sweep_config(tmp_path, epochs=4, batches=20)
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=50) as c, \
            distributed.Client(c) as client:
        killed = []

        def kill_one_worker_once_training():
            deadline = time.time() + 120
            while time.time() < deadline and not killed:
                time.sleep(0.2)
                saved = {p.parent.parent.name for p in out.glob("*/run/checkpoint.npz")}
                # the worker whose task (key "sweep-<run>") has saved a checkpoint
                busy = [w for w, keys in client.processing().items()
                        if any(str(k).removeprefix("sweep-") in saved for k in keys)]
                if busy:
                    address = busy[0]
                    pid = client.run(os.getpid, workers=[address])[address]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(address)
        killer = threading.Thread(target=kill_one_worker_once_training)
        killer.start()
        messages = []
        try:
            csv_path, _ = sweep.run_sweep(cfg, fake_mir1k, str(out), scheduler=c.scheduler_address,
                                          log=messages.append)
        finally:
            killer.join()
    assert killed, "no worker was killed: the test did not test anything"
    logs = "".join(p.read_text() for p in out.glob("*/log.txt"))
    assert "scratchnet train: terminated" in logs  # the dead worker's training stopped with it
    assert "resuming" in logs  # and the retried task took it up from its checkpoint
    assert sum("done in" in m for m in messages) == 2, messages
    rows = _scores(csv_path)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(np.isfinite(float(r["vocals_GNSDR"])) for r in rows)


def test_an_unreachable_scheduler_is_one_clear_error(fake_mir1k, tmp_path):
    cmd = [sys.executable, "-m", "scratchnet", "evaluate", "--method", "irm", "--data", fake_mir1k,
           "--limit", "1", "-q", "--scheduler", "tcp://127.0.0.1:9"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("scratchnet evaluate: error: cannot reach the Dask scheduler")
    assert "Traceback" not in r.stderr
    with pytest.raises(ScratchnetError, match="cannot reach"):
        from scratchnet.cluster import connect
        connect("tcp://127.0.0.1:9", timeout=2)
