"""Grids of training runs: ``scratchnet sweep CONFIG``, a CSV of scores and the bar charts.

A sweep config is a JSON file::

    {
      "name": "optimizers",
      "base": {"model": {"arch": "hybrid"}, "stages": [[100, 2]], "max_batches_per_epoch": 200},
      "grid": {"optimizer": ["adam", "adagrad", "adadelta"], "lr": [0.01, 0.001]},
      "evaluate": {"split": "huang", "part": "test", "limit": 40}
    }

``base`` holds :class:`scratchnet.training.TrainConfig` options shared by every run; ``grid``
maps an option (``model.<key>`` for a model option) to the values to try, and the sweep runs
every combination.  Each run is an independent ``scratchnet train`` process followed by
``scratchnet evaluate`` on its best model, so ``--jobs 2`` keeps both cores busy, and a sweep
that is stopped resumes where it was: finished runs are skipped, interrupted ones resume from
their checkpoint.  The results land in ``OUT/results.csv`` and ``OUT/<name>.png``: grouped bars
of GNSDR, GSIR and GSAR per setting, vocals and accompaniment, as the hybrid paper's Figures
3 to 6.
"""
import csv
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time

from ..errors import ScratchnetError
from ..files import make_folder, read_json, write_json, write_text

SCORES = ("GNSDR", "GSIR", "GSAR")


def load_sweep(path):
    """Read and check a sweep config; returns the dict."""
    try:
        cfg = read_json(path, "sweep config")
    except ScratchnetError as e:
        raise ScratchnetError(f"cannot read sweep config: {e}") from None
    if not isinstance(cfg, dict):
        raise ScratchnetError(f"{path}: a sweep config must be a JSON object")
    if not isinstance(cfg.get("grid"), dict) or not cfg["grid"]:
        raise ScratchnetError(f"{path}: a sweep needs a non-empty \"grid\" of option -> values")
    for key, values in cfg["grid"].items():
        if not isinstance(values, list) or not values:
            raise ScratchnetError(f"{path}: grid option {key!r} needs a non-empty list of values")
    cfg.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    cfg.setdefault("base", {})
    cfg.setdefault("evaluate", {"split": "huang", "part": "test"})
    return cfg


def _slug(value):
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return "".join(ch if ch.isalnum() or ch in ".-" else "_" for ch in text).strip("_")


def expand(cfg):
    """Every grid point as ``(name, settings, train_config_dict)``, in a fixed order."""
    keys = list(cfg["grid"])
    points = []
    for values in itertools.product(*(cfg["grid"][k] for k in keys)):
        settings = dict(zip(keys, values))
        train_cfg = json.loads(json.dumps(cfg["base"]))  # deep copy
        for key, value in settings.items():
            if key.startswith("model."):
                train_cfg.setdefault("model", {})[key[6:]] = value
            else:
                train_cfg[key] = value
        name = "__".join(f"{k.split('.')[-1]}-{_slug(v)}" for k, v in settings.items())
        points.append((name, settings, train_cfg))
    return points


def _commands(cfg, name, train_cfg, data_dir, out):
    """The train and evaluate commands of one grid point (train resumes if it can)."""
    folder = make_folder(os.path.join(out, name), "sweep run folder")
    run = os.path.join(folder, "run")
    cfg_path = write_json(os.path.join(folder, "train.json"), train_cfg)
    py = [sys.executable, "-m", "scratchnet"]
    train = py + ["train", "--config", cfg_path, "--data", data_dir, "--out", run, "-q"]
    if os.path.isfile(os.path.join(run, "checkpoint.npz")):
        train = py + ["train", "--out", run, "--resume", "-q"]
    ev = cfg["evaluate"]
    evaluate = py + ["evaluate", "--model", os.path.join(run, "best.npz"), "--data", data_dir,
                     "--split", ev.get("split", "huang"), "--part", ev.get("part", "test"),
                     "--workers", "1", "-q", "--json", os.path.join(folder, "result.json")]
    if ev.get("limit"):
        evaluate += ["--limit", str(ev["limit"])]
    return train, evaluate, folder


class _Job:
    """One grid point running: its commands in turn (train, then evaluate), output to log.txt.

    Each command runs in its own process group, so that a Ctrl-C at the terminal reaches
    only the sweep, which then stops every job with SIGTERM: each ``scratchnet train`` exits
    cleanly, its last checkpoint kept for the next ``scratchnet sweep`` to resume.
    """

    def __init__(self, name, commands, folder):
        self.name, self.commands, self.t0 = name, list(commands), time.time()
        self.logf = open(os.path.join(folder, "log.txt"), "a")  # a stream from the child: appended
        self.proc = None
        self.next()

    def next(self):
        self.proc = subprocess.Popen(self.commands.pop(0), stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def poll(self):
        """None while running (starting the next command when one ends well), else the status."""
        code = self.proc.poll()
        if code == 0 and self.commands:
            self.next()
            return None
        if code is not None:
            self.logf.close()
        return code

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.logf.close()


def run_sweep(cfg, data_dir, out, *, jobs=2, scheduler=None, log=print):
    """Run every grid point not yet finished, ``jobs`` at a time (or as tasks of the Dask
    scheduler at ``scheduler``); then write CSV and figure."""
    make_folder(out, "sweep folder")
    pending = [p for p in expand(cfg) if not os.path.isfile(os.path.join(out, p[0], "result.json"))]
    if scheduler is not None:
        _run_on_cluster(cfg, pending, data_dir, out, scheduler, log)
    else:
        _run_locally(cfg, pending, data_dir, out, jobs, log)
    rows = collect(cfg, out)
    csv_path = write_csv(rows, os.path.join(out, "results.csv"))
    fig_path = bar_chart(rows, title=cfg["name"], path=os.path.join(out, f"{cfg['name']}.png"))
    return csv_path, fig_path


def _run_locally(cfg, pending, data_dir, out, jobs, log):
    log(f"sweep {cfg['name']}: {len(expand(cfg))} runs, {len(pending)} to do, {jobs} at a time")
    running = []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                name, _, train_cfg = pending.pop(0)
                train, evaluate, folder = _commands(cfg, name, train_cfg, data_dir, out)
                running.append(_Job(name, (train, evaluate), folder))
                log(f"started {name}")
            time.sleep(1.0)
            for job in list(running):
                code = job.poll()
                if code is None:
                    continue
                running.remove(job)
                status = "done" if code == 0 else f"FAILED (exit {code}, see log.txt)"
                log(f"{job.name}: {status} in {time.time() - job.t0:.0f} s")
    finally:  # interrupted (Ctrl-C, SIGTERM) or failed: stop the runs; they resume next time
        for job in running:
            job.stop()


def run_point(cfg, name, train_cfg, data_dir, out):
    """One grid point, start to end, in this process's machine: train (or resume), then
    evaluate, their output appended to the point's log.txt; returns ``(exit status, seconds)``.

    The task that :func:`run_sweep` submits to a Dask worker.  It decides between a fresh
    training and ``--resume`` when it starts, so a task retried after its worker died resumes
    the run from the last checkpoint the dead worker's training saved.
    """
    from ..cluster import die_with_parent
    t0 = time.time()
    train, evaluate, folder = _commands(cfg, name, train_cfg, data_dir, out)
    with open(os.path.join(folder, "log.txt"), "a") as logf:
        for command in (train, evaluate):
            code = subprocess.call(command, stdout=logf, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
            if code != 0:
                break
    return code, time.time() - t0


def _run_on_cluster(cfg, pending, data_dir, out, address, log):
    """Submit every pending grid point to the scheduler as one task; log each as it ends."""
    from distributed import as_completed

    from ..cluster import connect, describe
    with connect(address) as client:  # leaving it drops the runs not started; a started one runs to its end
        log(f"sweep {cfg['name']}: {len(expand(cfg))} runs, {len(pending)} to do, "
            f"on {address} ({describe(client)})")
        data_dir, out = os.path.abspath(data_dir), os.path.abspath(out)  # the workers' paths too
        futures = {client.submit(run_point, cfg, name, train_cfg, data_dir, out, key=f"sweep-{name}",
                                 pure=False): name for name, _, train_cfg in pending}
        for future in as_completed(futures):
            name = futures[future]
            try:
                code, seconds = future.result()
            except Exception as e:  # noqa: BLE001 -- a worker died too often, or the task broke
                log(f"{name}: FAILED on the cluster ({type(e).__name__}: {e}); it resumes next time")
                continue
            status = "done" if code == 0 else f"FAILED (exit {code}, see log.txt)"
            log(f"{name}: {status} in {seconds:.0f} s")


def _failure(log_path):
    """The error line of a grid point whose run stopped (e.g. a loss that diverged), or None."""
    if not os.path.isfile(log_path):
        return None
    with open(log_path, errors="replace") as f:
        errors = [ln.split("error:", 1)[1].strip() for ln in f if "error:" in ln]
    return errors[-1].split(":")[0] if errors else None


def collect(cfg, out):
    """One row per grid point that has run: settings, scores (NaN if it failed), status, time.

    A setting that fails (a learning rate at which the loss diverges) is a result too, so it
    keeps its row, with the reason in ``status``; points not run yet are left out.
    """
    rows = []
    for name, settings, _ in expand(cfg):
        path = os.path.join(out, name, "result.json")
        row = {"run": name, **{k.split(".")[-1]: v for k, v in settings.items()}}
        if os.path.isfile(path):
            res = read_json(path, "sweep result")
            row.update(status="ok", clips=res["clips"])
        else:
            reason = _failure(os.path.join(out, name, "log.txt"))
            if reason is None:
                continue
            res = {src: {s: float("nan") for s in SCORES} for src in ("vocals", "accompaniment")}
            row.update(status=f"failed: {reason}", clips=0)
        for src in ("vocals", "accompaniment"):
            for s in SCORES:
                row[f"{src}_{s}"] = round(res[src][s], 3)
        log_path = os.path.join(out, name, "run", "log.csv")
        if os.path.isfile(log_path):
            with open(log_path) as f:
                epochs = list(csv.DictReader(f))
            if epochs:  # a run that failed in its first epoch has only the header
                row["train_seconds"] = float(epochs[-1]["seconds"])
        rows.append(row)
    return rows


def write_csv(rows, path):
    if not rows:
        raise ScratchnetError("no finished runs to write")
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    return write_text(path, buf.getvalue())


def _label(row):
    """A bar group's label: one line per grid option, ``lr 0.001`` or ``conv 512-256``."""
    lines = []
    for key, value in row.items():
        if key in ("run", "status", "clips", "train_seconds") or key.split("_")[0] in (
                "vocals", "accompaniment"):
            continue
        if isinstance(value, list) and not any(isinstance(v, list) for v in value):
            value = "-".join(map(str, value))  # layer sizes
        elif isinstance(value, list):
            value = json.dumps(value, separators=(",", ":"))  # e.g. curriculum stages
        lines.append(f"{key.split('_')[0]} {value}")  # conv_filters -> conv
    return "\n".join(lines) or row["run"]


def bar_chart(rows, *, title=None, path=None):
    """Grouped bars: GNSDR, GSIR, GSAR per setting; one panel for vocals, one for accompaniment."""
    import numpy as np
    from ..report import _plt, save_figure
    plt = _plt()
    labels = [_label(r) for r in rows]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(2, 1, figsize=(max(8.0, 1.6 * len(rows)), 7.5), constrained_layout=True)
    for ax, src in zip(axes, ("vocals", "accompaniment")):
        for i, s in enumerate(SCORES):
            vals = np.array([r[f"{src}_{s}"] for r in rows], float)
            bars = ax.bar(x + (i - 1) * 0.27, np.nan_to_num(vals), 0.27, label=s)
            ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:.1f}" for v in vals], fontsize=7)
        for j, r in enumerate(rows):
            if r.get("status", "ok") != "ok":  # a failed setting: say so where its bars would be
                ax.text(j, 0, "failed\n(" + r["status"][8:] + ")", ha="center", va="bottom",
                        fontsize=7, color="C3", rotation=90)
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_ylabel("dB")
        ax.set_title(src)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    if path:
        save_figure(fig, path)
    return path or fig
