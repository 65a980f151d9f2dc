"""A training run's options (:class:`TrainConfig`) and what is built from them: the loss and
the optimizer.

Everything a run needs to be repeated is one :class:`TrainConfig`, saved as the run folder's
``config.json``; ``--resume`` reads it back, so a resumed run trains with the same options
(objective, optimizer, STFT, backend): a flag that contradicts them is refused
(:func:`resumed_config`), but for the data folder and the workers, which win, and the epochs,
which may grow.
"""
import dataclasses
import functools

import numpy as np

from .. import data, losses, optimizers
from ..errors import ScratchnetError
from ..files import read_json, write_json
from ..nn import BACKENDS


@dataclasses.dataclass
class TrainConfig:
    """Every option of a training run; saved as ``config.json`` in the run folder.

    ``model`` is a model config (:func:`scratchnet.models.make_config`): the architecture and
    the STFT (``n_fft``, ``hop_length``, ``window``) the model is trained, validated and later
    run with.  ``stages`` is a list of ``[seq_len, epochs]`` or ``[seq_len, epochs,
    max_batches]``: one stage is plain training, several are a curriculum over segment
    lengths.  ``backend`` chooses the code every layer runs on: ``"fast"`` (Numba kernels) or
    ``"reference"`` (the readable NumPy forward/backward pairs of :mod:`scratchnet.nn`).
    """
    data: str = ""
    layout: str = ""               # "mir1k" or "stems" ("" = told by the data folder)
    split: str = "huang"
    split_seed: int = 0
    model: dict = dataclasses.field(default_factory=dict)
    objective: str = "mse"
    gamma: float = 0.05
    floor: float = 0.0             # kl/is: floor added to target and estimate (0 = the loss's default)
    optimizer: str = "adam"
    lr: float = 1e-3
    lr_decay: float = 1.0          # the learning rate is multiplied by this after every epoch
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    batch_size: int = 10
    stages: list = dataclasses.field(default_factory=lambda: [[100, 10]])
    shift_step: int = 10000
    train_clips: int = 0           # 0 = all clips of the training part
    valid_clips: int = 25          # held out from the training part when the split has none
    valid_every: int = 1           # epochs between validations
    checkpoint_every: int = 200    # batches between checkpoints
    max_batches_per_epoch: int = 0  # 0 = the whole epoch
    workers: int = 2
    seed: int = 0
    init_from: str = ""
    lbfgs_iters: int = 10          # with optimizer "lbfgs": iterations on each batch
    backend: str = "fast"          # "fast" (Numba kernels) or "reference" (readable NumPy)
    augment: dict = dataclasses.field(default_factory=dict)  # scratchnet.augment.Augment options; {} = off
    target: str = "magnitude"      # the sources' targets: "magnitude" or "phase_sensitive" (data.magnitudes)

    @classmethod
    def from_dict(cls, d):
        """A config from a dict (a ``config.json``); unknown keys are refused by name."""
        if not isinstance(d, dict):
            raise ScratchnetError(f"a training config must be a JSON object, got {type(d).__name__}")
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ScratchnetError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    def check(self):
        """Refuse, before any work, options that would fail later (names, floor, stages)."""
        if self.layout not in ("", "mir1k", "stems"):
            raise ScratchnetError(f"layout={self.layout!r} must be mir1k or stems (or empty: detected)")
        if self.backend not in BACKENDS:
            raise ScratchnetError(f"backend={self.backend!r} must be one of {', '.join(BACKENDS)}")
        if self.optimizer != "lbfgs" and self.optimizer not in optimizers.OPTIMIZERS:
            raise ScratchnetError(f"unknown optimizer {self.optimizer!r}: choose one of "
                                  f"{', '.join([*optimizers.OPTIMIZERS, 'lbfgs'])}")
        if not self.stages or not all(isinstance(s, (list, tuple)) and len(s) in (2, 3) and min(s) > 0
                                      for s in self.stages):
            raise ScratchnetError(f"stages={self.stages!r} must be a list of [seq_len, epochs"
                                  "(, max_batches)] with positive numbers")
        for name in ("batch_size", "workers", "valid_every"):
            if getattr(self, name) < 1:
                raise ScratchnetError(f"{name}={getattr(self, name)} must be at least 1")
        for name in ("train_clips", "valid_clips", "checkpoint_every", "max_batches_per_epoch",
                     "shift_step", "seed", "split_seed"):
            if getattr(self, name) < 0:
                raise ScratchnetError(f"{name}={getattr(self, name)} must not be negative")
        for name, least in (("hidden", 1), ("layers", 1), ("context", 0)):  # the network's init
            value = self.model.get(name)                                    # would fail on them
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise ScratchnetError(f"{name}={value!r} must be a whole number of at least {least}")
        if not (np.isfinite(self.lr_decay) and self.lr_decay > 0):
            raise ScratchnetError(f"lr_decay={self.lr_decay} must be a positive number (the lr's factor per epoch)")
        data.check_target(self.target)
        make_loss(self)
        make_optimizer(self)  # a bad learning rate or optimizer option
        make_augment(self)
        return self


#: Options a resumed run takes from the command line even where they differ from its own:
#: where its clips are now and how many processes validate; neither changes what it learns.
RESUME_WINS = ("data", "workers")


def resumed_config(saved, given, state):
    """The config a resumed run goes on with: ``saved`` (its ``config.json``) and the options
    ``given`` again (a dict of :class:`TrainConfig` fields, ``model`` holding only the model
    options given).

    An option that contradicts the saved one is refused in one line, but for
    :data:`RESUME_WINS`, which win, and ``stages``, which may grow: the last stage's epochs
    raised, stages added after it.  ``state`` (the checkpoint's position) is moved back into
    the last stage when a finished run's last stage grew, so ``--epochs 3`` trains a finished
    2-epoch run on to epoch 3, as a 3-epoch run would have.
    """
    given = dict(given)
    for key, value in given.pop("model", {}).items():
        if saved.model.get(key) != value:
            raise _contradiction(key, value, saved.model.get(key))
    stages = given.pop("stages", None)
    cfg = dataclasses.replace(saved, **{k: v for k, v in given.items() if k in RESUME_WINS})
    for key, value in given.items():
        if key not in RESUME_WINS and getattr(saved, key, None) != value:
            raise _contradiction(key, value, getattr(saved, key, None))
    if stages is not None and [list(s) for s in stages] != [list(s) for s in saved.stages]:
        cfg.stages = _grown_stages(saved.stages, stages, state)
    return cfg


def _contradiction(key, value, saved):
    return ScratchnetError(f"{key}={value!r} contradicts the run's {key}={saved!r}: --resume goes on "
                           "with the run's own options (leave it out, or start a new run in another --out)")


def _grown_stages(old, new, state):
    """``new`` stages if they continue ``old`` (see :func:`resumed_config`), ``state`` moved."""
    old, new = [list(s) for s in old], [list(s) for s in new]
    last = len(old) - 1
    kept = len(new) >= len(old) and new[:last] == old[:last] and len(new[last]) == len(old[last])
    kept = kept and new[last][0] == old[last][0] and new[last][2:] == old[last][2:]  # seq_len, cap
    if not (kept and new[last][1] >= old[last][1]):
        raise ScratchnetError(
            f"stages {new} do not continue the run's stages {old}: with --resume, --epochs and "
            "--curriculum can raise the epochs of its last stage or add stages after it, no more")
    if state["stage"] > last and new[last][1] > old[last][1]:  # a finished run: back into its last stage
        state.update(stage=last, epoch=old[last][1])
    return new


class TrainingDiverged(ScratchnetError):
    """The loss became NaN or infinite."""


def save_config(cfg, path):
    """Write ``cfg`` to ``path`` as JSON (atomically)."""
    return write_json(path, dataclasses.asdict(cfg))


def load_config(path):
    """Read a config saved by :func:`save_config`; a truncated file is refused in one line.

    A run saved before a model option existed keeps what its absence meant (a run started
    before ``level_window`` resumes without level normalisation)."""
    from ..models.config import ABSENT
    d = read_json(path, "training config")
    if isinstance(d, dict) and isinstance(d.get("model"), dict):
        d["model"] = {**ABSENT, **d["model"]}
    return TrainConfig.from_dict(d)


def parse_stages(text):
    """``"100:2,400:3"`` -> ``[[100, 2], [400, 3]]`` (seq_len:epochs[:max batches per epoch])."""
    try:
        stages = [[int(a) for a in part.split(":")] for part in text.split(",")]
        assert all(len(s) in (2, 3) and min(s) > 0 for s in stages)
    except (ValueError, AssertionError):
        raise ScratchnetError(
            f"--curriculum {text!r} must look like 100:2,400:3 (seq_len:epochs[:max_batches])") from None
    return stages


def make_loss(cfg):
    """The objective a config names, its options bound: ``loss_fn(y1, y2, t1, t2)``."""
    kwargs = {"gamma": cfg.gamma}
    if not (np.isfinite(cfg.gamma) and 0 <= cfg.gamma < 1):  # the losses' own rule, told before any work
        raise ScratchnetError(f"gamma={cfg.gamma} must lie in [0, 1)")
    if not (np.isfinite(cfg.floor) and cfg.floor >= 0):
        raise ScratchnetError(f"floor={cfg.floor} must be positive (or 0 for the loss's default)")
    if cfg.floor:
        if cfg.objective == "mse":
            raise ScratchnetError("floor applies to the kl and is objectives, not mse")
        kwargs["floor"] = cfg.floor
    return functools.partial(losses.get_loss(cfg.objective), **kwargs)


class BatchLBFGS:
    """Huang et al.'s optimiser: a few L-BFGS iterations on each mini-batch.

    The curvature memory lives only within one batch (a new batch is a new function), so
    there is no state to checkpoint.
    """

    def __init__(self, iters=10, m=10):
        self.iters, self.lbfgs = iters, optimizers.LBFGS(m=m)

    def minimize(self, model, X, V, A, loss_fn):
        info = self.lbfgs.minimize(lambda p: model.loss_and_grad(X, V, A, loss_fn), model.params,
                                   max_iter=self.iters)
        return info["f"]

    def state_dict(self):
        return {}

    def load_state_dict(self, d):
        pass


def make_augment(cfg):
    """The :class:`scratchnet.augment.Augment` a config asks for, or None (``augment: {}``)."""
    from ..augment import Augment
    if not cfg.augment:
        return None
    if not isinstance(cfg.augment, dict):
        raise ScratchnetError(f"augment={cfg.augment!r} must be a dict of options (remix, pitch, ...)")
    try:
        return Augment(**cfg.augment)
    except TypeError as e:
        raise ScratchnetError(f"bad augment option: {e}") from None


def parse_augment(text):
    """``"remix=0.5,pitch=0.5,semitones=2,gain_db=3"`` -> dict; ``"on"`` -> the defaults; ``"off"`` -> {}."""
    import dataclasses as dc

    from ..augment import Augment
    if text in ("off", "none", ""):
        return {}
    if text in ("on", "default"):
        return {f.name: f.default for f in dc.fields(Augment)}
    try:
        return {k.strip(): float(v) for k, v in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise ScratchnetError(f"--augment {text!r} must look like remix=0.5,pitch=0.5,semitones=2,gain_db=3 "
                              "(or on / off)") from None


def make_optimizer(cfg):
    """The optimizer a config names (``lbfgs`` gives :class:`BatchLBFGS`)."""
    if cfg.optimizer == "lbfgs":
        return BatchLBFGS(cfg.lbfgs_iters)
    return optimizers.get_optimizer(cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    clip_norm=cfg.clip_norm or None)
