"""A run folder on disk: its config, its log and its checkpoint.

Every file is written through :mod:`scratchnet.files` (a temporary name, renamed when
complete), so a run stopped at any moment (a crash, Ctrl-C, SIGTERM) leaves the last
complete checkpoint and log, never half of one.  The checkpoint is the ``.npz`` format of
saved models: the model's arrays (``param:<name>``, ``buffer:<name>``), the optimizer's
(``opt:<name>``) and the loop's position as ``meta["state"]``.  Checkpoints written before
that format (the position in a ``state_json`` array) are read the same way.
"""
import csv
import io
import os

import numpy as np

from ..errors import ScratchnetError
from ..files import load_npz, save_npz, write_text
from .config import load_config, save_config

LOG_COLUMNS = ["epoch", "stage", "seq_len", "batches", "frames", "train_loss",
               "valid_gnsdr", "valid_gsir", "valid_gsar", "seconds"]


class RunFolder:
    """The paths of one run: ``config.json``, ``log.csv``, ``checkpoint.npz``, best and last."""

    def __init__(self, out):
        self.out = os.fspath(out)
        self.config = os.path.join(self.out, "config.json")
        self.log = os.path.join(self.out, "log.csv")
        self.checkpoint = os.path.join(self.out, "checkpoint.npz")
        self.best = os.path.join(self.out, "best.npz")
        self.last = os.path.join(self.out, "last.npz")

    def has_run(self):
        return os.path.isfile(self.checkpoint)

    def check_new(self):
        """Refuse to start a run over another one."""
        if self.has_run():
            raise ScratchnetError(f"{self.out!r} already holds a run: use --resume, or another --out")

    def start(self, cfg):
        """Write a new run's config and the log's header."""
        self.check_new()
        save_config(cfg, self.config)
        write_text(self.log, _csv_line(LOG_COLUMNS))

    def load_config(self):
        if not self.has_run():
            raise ScratchnetError(f"nothing to resume: {self.checkpoint!r} does not exist")
        return load_config(self.config)

    def append_log(self, row):
        """Add one epoch's row to ``log.csv`` (the file is rewritten whole, atomically)."""
        with open(self.log, newline="") as f:
            text = f.read()
        write_text(self.log, text + _csv_line(row))

    def save_checkpoint(self, model, opt, state):
        arrays = dict(model.arrays())  # param:<name>, buffer:<name>
        arrays.update({f"opt:{k}": np.asarray(v) for k, v in opt.state_dict().items()})
        save_npz(self.checkpoint, arrays, meta={"state": state})

    def read_checkpoint(self):
        """``(arrays, state)`` of the checkpoint; a truncated file is refused in one line."""
        arrays, meta = load_npz(self.checkpoint, "checkpoint")
        if "state" not in meta:
            raise ScratchnetError(f"checkpoint {self.checkpoint!r} holds no training position")
        return arrays, meta["state"]


def restore(arrays, model, opt):
    """Copy a checkpoint's arrays into ``model`` and ``opt`` (names are checked by the model)."""
    model.load_arrays({k: v for k, v in arrays.items() if k.startswith(("param:", "buffer:"))})
    opt.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt:")})


def _csv_line(row):
    buf = io.StringIO()
    csv.writer(buf).writerow(row)
    return buf.getvalue()
