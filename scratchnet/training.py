"""Training a separation network on MIR-1K: the loop, the log, checkpoints and resuming.

One run lives in one folder (``--out runs/NAME``):

- ``config.json``: everything needed to re-run it (model, objective, optimizer, data);
- ``log.csv``: one row per epoch, training loss and validation GNSDR/GSIR/GSAR;
- ``checkpoint.npz``: model, optimizer state and position, written atomically every
  ``checkpoint_every`` batches and at each epoch's end; ``--resume`` continues from it and
  reproduces the uninterrupted run exactly (the batch stream is a function of seed and
  epoch, so the batches already seen are skipped, not re-drawn);
- ``best.npz`` (+ ``.json``): the model of the epoch with the best validation vocal GNSDR
  (Huang et al. chose the iteration with the best development GNSDR); ``last.npz`` the
  latest.

Training follows a list of *stages*, each a sequence length, a number of epochs and
optionally a cap on batches per epoch: ``[(100, 5)]`` is plain training, ``[(100, 2), (400,
3)]`` curriculum learning over segment lengths, and ``[(100, 1, 400), (400, 1, 100)]`` gives
both stages the same number of frames (400 batches of 10 x 100, then 100 of 10 x 400).  A loss that turns NaN or infinite stops the run with a message and leaves the last
good checkpoint in place.
"""
import csv
import dataclasses
import functools
import json
import os
import sys
import time

import numpy as np

from . import data, losses, optimizers
from .errors import ScratchnetError
from .models import ARCHS, Model, load_model, make_config


@dataclasses.dataclass
class TrainConfig:
    """Every option of a training run; saved as ``config.json`` in the run folder."""
    data: str = ""
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


    @classmethod
    def from_dict(cls, d):
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ScratchnetError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        return cls(**d)


class TrainingDiverged(ScratchnetError):
    """The loss became NaN or infinite."""


def _atomic_savez(path, **arrays):
    tmp = path[:-4] + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


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


def make_optimizer(cfg):
    """The optimizer a config names (``lbfgs`` gives :class:`BatchLBFGS`)."""
    if cfg.optimizer == "lbfgs":
        return BatchLBFGS(cfg.lbfgs_iters)
    return optimizers.get_optimizer(cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    clip_norm=cfg.clip_norm or None)


def _loss_fn(cfg):
    kwargs = {"gamma": cfg.gamma}
    if not (np.isfinite(cfg.floor) and cfg.floor >= 0):
        raise ScratchnetError(f"floor={cfg.floor} must be positive (or 0 for the loss's default)")
    if cfg.floor:
        if cfg.objective == "mse":
            raise ScratchnetError("floor applies to the kl and is objectives, not mse")
        kwargs["floor"] = cfg.floor
    return functools.partial(losses.get_loss(cfg.objective), **kwargs)


def feature_stats(model, sources, max_clips=60):
    """Per-bin mean and std of the model's input features over (up to ``max_clips``) clips."""
    Xs = [data.magnitudes(v, a, 0)[0] for v, a in sources[:max_clips]]
    X = np.concatenate(Xs)  # T_total,F
    if model.config["features"] == "log1p":
        X = np.log1p(X / model.config["feature_ref"])
    return X.mean(0).astype(model.dtype), (X.std(0) + 1e-5).astype(model.dtype)


def validate(model, clips, workers=2):
    """Vocal and accompaniment G-scores of ``model`` on ``clips`` (no progress bar)."""
    from . import metrics
    from .separation import ModelSeparator
    sep = ModelSeparator(model, seq_len=model.config.get("inference_seq_len"))
    summary = metrics.aggregate(metrics.evaluate(sep, clips, workers=workers, progress=False))
    return summary


def prepare(cfg):
    """Clips, sources and the model for a run (without touching the run folder)."""
    parts = data.split(data.find_clips(cfg.data), cfg.split, seed=cfg.split_seed)
    train, valid = parts["train"], parts["valid"]
    if not train:
        raise ScratchnetError(f"split {cfg.split!r} has no training clips in {cfg.data!r}")
    if not valid and cfg.valid_clips:
        # hold out a seeded part of the training clips for model selection
        rng = np.random.default_rng(cfg.split_seed)
        idx = set(rng.permutation(len(train))[: cfg.valid_clips].tolist())
        valid = [c for i, c in enumerate(train) if i in idx]
        train = [c for i, c in enumerate(train) if i not in idx]
    if cfg.train_clips:
        train = train[: cfg.train_clips]
    sources = [tuple(s.astype(np.float32) for s in data.load_sources(c)) for c in train]
    if cfg.init_from:
        model = load_model(cfg.init_from)
    else:
        model = Model(make_config(**dict(cfg.model, seed=cfg.seed)))
        model.buffers["mean"], model.buffers["std"] = feature_stats(model, sources)
    return train, valid, sources, model


def train(cfg, out, *, resume=False, progress=True, log=print):
    """Run (or resume) a training run in folder ``out``; returns the path of the best model."""
    from tqdm import tqdm
    os.makedirs(out, exist_ok=True)
    cfg_path = os.path.join(out, "config.json")
    ckpt_path = os.path.join(out, "checkpoint.npz")
    log_path = os.path.join(out, "log.csv")
    if resume:
        if not os.path.isfile(ckpt_path):
            raise ScratchnetError(f"nothing to resume: {ckpt_path!r} does not exist")
        with open(cfg_path) as f:
            cfg = TrainConfig.from_dict(json.load(f))
    elif os.path.isfile(ckpt_path):
        raise ScratchnetError(f"{out!r} already holds a run: use --resume, or another --out")
    train_clips, valid_clips, sources, model = prepare(cfg)
    opt = make_optimizer(cfg)
    loss_fn = _loss_fn(cfg)
    state = {"stage": 0, "epoch": 0, "batch": 0, "global_epoch": 0, "best": -np.inf, "seconds": 0.0}
    if resume:
        with np.load(ckpt_path) as z:
            for k in list(model.params):
                model.params[k][...] = z[f"param:{k}"]
            for k in list(model.buffers):
                model.buffers[k] = z[f"buffer:{k}"]
            opt.load_state_dict({k[4:]: z[k] for k in z.files if k.startswith("opt:")})
            state.update(json.loads(str(z["state_json"])))
        log(f"resuming {out} at stage {state['stage']}, epoch {state['epoch']}, batch {state['batch']}")
    else:
        with open(cfg_path + ".tmp", "w") as f:
            json.dump(dataclasses.asdict(cfg), f, indent=2)
        os.replace(cfg_path + ".tmp", cfg_path)
        with open(log_path, "w", newline="") as f:
            csv.writer(f).writerow(["epoch", "stage", "seq_len", "batches", "frames", "train_loss",
                                    "valid_gnsdr", "valid_gsir", "valid_gsar", "seconds"])
    log(f"model {model.config['arch']}: {model.n_params():,} parameters; training clips "
        f"{len(train_clips)}, validation clips {len(valid_clips)}")

    def save_checkpoint():
        arrays = {f"param:{k}": v for k, v in model.params.items()}
        arrays.update({f"buffer:{k}": v for k, v in model.buffers.items()})
        arrays.update({f"opt:{k}": np.asarray(v) for k, v in opt.state_dict().items()})
        arrays["state_json"] = np.array(json.dumps(state))
        _atomic_savez(ckpt_path, **arrays)

    while state["stage"] < len(cfg.stages):
        seq_len, n_epochs, *cap = cfg.stages[state["stage"]]  # [seq_len, epochs(, max batches)]
        stream = data.SequenceStream(sources, seq_len=seq_len, batch_size=cfg.batch_size,
                                     shift_step=cfg.shift_step, seed=cfg.seed)
        n_batches = stream.batches_per_epoch()
        cap = cap[0] if cap else cfg.max_batches_per_epoch
        if cap:
            n_batches = min(n_batches, cap)
        while state["epoch"] < n_epochs:
            ep = state["global_epoch"]
            if hasattr(opt, "lr"):
                opt.lr = cfg.lr * cfg.lr_decay ** ep  # a function of the epoch: resumes exactly
            running = state.get("loss_sum", 0.0)
            t0 = time.time()
            start_batch = state["batch"]
            bar = tqdm(total=n_batches, initial=state["batch"], disable=not progress, leave=False,
                       desc=f"epoch {ep + 1} (T={seq_len})", unit="batch", file=sys.stderr)
            frames = cfg.batch_size * seq_len
            for b, (X, V, A) in enumerate(stream.epoch(ep)):
                if b >= n_batches:
                    break
                if b < state["batch"]:
                    continue  # seen before the interruption: skip, do not re-train
                if isinstance(opt, BatchLBFGS):
                    loss = opt.minimize(model, X, V, A, loss_fn)
                else:
                    loss, grads = model.loss_and_grad(X, V, A, loss_fn)
                if not np.isfinite(loss):
                    raise TrainingDiverged(
                        f"loss became {loss} at epoch {ep + 1}, batch {b + 1}: stopped; the last good "
                        f"checkpoint is {ckpt_path} (try a lower --lr or --clip-norm)")
                if not isinstance(opt, BatchLBFGS):
                    opt.step(model.params, grads)
                running += loss
                state["batch"] = b + 1
                state["loss_sum"] = running
                elapsed = time.time() - t0
                bar.set_postfix(loss=f"{running / state['batch']:.4g}",
                                fps=f"{frames * (b + 1 - start_batch) / max(elapsed, 1e-9):.0f}")
                bar.update(1)
                if cfg.checkpoint_every and state["batch"] % cfg.checkpoint_every == 0:
                    state["seconds"] += time.time() - t0
                    t0, start_batch = time.time(), state["batch"]  # frames/s since this point
                    save_checkpoint()
            bar.close()
            state["seconds"] += time.time() - t0
            train_loss = running / max(state["batch"], 1)
            scores = {"GNSDR": np.nan, "GSIR": np.nan, "GSAR": np.nan}
            if valid_clips and (ep + 1) % cfg.valid_every == 0:
                scores = validate(model, valid_clips, cfg.workers)["vocals"]
                if scores["GNSDR"] > state["best"]:
                    state["best"] = scores["GNSDR"]
                    model.save(os.path.join(out, "best.npz"))
            elif not valid_clips:
                model.save(os.path.join(out, "best.npz"))
            model.save(os.path.join(out, "last.npz"))
            with open(log_path, "a", newline="") as f:
                csv.writer(f).writerow([ep + 1, state["stage"], seq_len, state["batch"],
                                        state["batch"] * frames, f"{train_loss:.6g}",
                                        f"{scores['GNSDR']:.4f}", f"{scores['GSIR']:.4f}",
                                        f"{scores['GSAR']:.4f}", f"{state['seconds']:.1f}"])
            log(f"epoch {ep + 1}: loss {train_loss:.4g}, valid GNSDR {scores['GNSDR']:.2f} dB "
                f"(GSIR {scores['GSIR']:.2f}, GSAR {scores['GSAR']:.2f}), {state['seconds']:.0f} s")
            state.update(epoch=state["epoch"] + 1, global_epoch=ep + 1, batch=0, loss_sum=0.0)
            save_checkpoint()
        state.update(stage=state["stage"] + 1, epoch=0)
        save_checkpoint()
    return os.path.join(out, "best.npz")


# ---------------------------------------------------------------------- command line
def parse_stages(text):
    """``"100:2,400:3"`` -> ``[[100, 2], [400, 3]]`` (seq_len:epochs[:max batches per epoch])."""
    try:
        stages = [[int(a) for a in part.split(":")] for part in text.split(",")]
        assert all(len(s) in (2, 3) and min(s) > 0 for s in stages)
    except (ValueError, AssertionError):
        raise ScratchnetError(
            f"--curriculum {text!r} must look like 100:2,400:3 (seq_len:epochs[:max_batches])") from None
    return stages


def add_train_arguments(p):
    p.add_argument("--config", default=None, help="JSON file of options (command-line flags win)")
    p.add_argument("--data", default=None, help="folder of MIR-1K clips")
    p.add_argument("--out", required=True, help="run folder (runs/NAME)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--model", dest="arch", default=None, help=f"architecture: {', '.join(ARCHS)}")
    p.add_argument("--hidden", type=int, default=None, help="hidden units (Huang: 1000)")
    p.add_argument("--context", type=int, default=None, help="context frames each side (1 = 3 frames)")
    p.add_argument("--features", default=None, help="magnitude or log1p")
    p.add_argument("--split", default=None)
    p.add_argument("--objective", default=None, help="mse, kl or is")
    p.add_argument("--gamma", type=float, default=None, help="discriminative weight (0 = off)")
    p.add_argument("--floor", type=float, default=None,
                   help="kl/is floor on target and estimate (default: the loss's own)")
    p.add_argument("--optimizer", default=None, help="adam, adagrad, adadelta, sgd or lbfgs")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--lr-decay", type=float, default=None, help="lr factor per epoch (default 1)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seq-len", type=int, default=None, help="frames per training sequence")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--curriculum", default=None, help="stages seq_len:epochs, e.g. 100:2,400:3")
    p.add_argument("--shift-step", type=int, default=None, help="circular-shift step in samples (0 = off)")
    p.add_argument("--max-batches", type=int, default=None, help="cap batches per epoch")
    p.add_argument("--train-clips", type=int, default=None, help="use only the first N training clips")
    p.add_argument("--valid-clips", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("-q", "--quiet", action="store_true")


def config_from_args(args):
    """A :class:`TrainConfig` from an optional ``--config`` file overridden by flags."""
    d = {}
    if args.config:
        try:
            with open(args.config) as f:
                d = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ScratchnetError(f"cannot read config {args.config!r}: {e}") from None
    model = dict(d.pop("model", {}))
    for flag, key in (("arch", "arch"), ("hidden", "hidden"), ("context", "context"),
                      ("features", "features")):
        if getattr(args, flag) is not None:
            model[key] = getattr(args, flag)
    flags = {"data": "data", "split": "split", "objective": "objective", "gamma": "gamma", "floor": "floor",
             "optimizer": "optimizer", "lr": "lr", "lr_decay": "lr_decay", "batch_size": "batch_size",
             "shift_step": "shift_step", "max_batches": "max_batches_per_epoch",
             "train_clips": "train_clips", "valid_clips": "valid_clips", "seed": "seed",
             "workers": "workers"}
    for flag, key in flags.items():
        if getattr(args, flag) is not None:
            d[key] = getattr(args, flag)
    if args.curriculum:
        d["stages"] = parse_stages(args.curriculum)
    elif args.seq_len is not None or args.epochs is not None:
        old = d.get("stages", [[100, 10]])[0]
        d["stages"] = [[args.seq_len or old[0], args.epochs or old[1]]]
    cfg = TrainConfig.from_dict(dict(d, model=make_config(**model)))
    _loss_fn(cfg)  # fail early on a bad objective name or floor
    return cfg


def train_from_args(args):
    if args.resume:
        cfg = None
    else:
        cfg = config_from_args(args)
        if not cfg.data:
            raise ScratchnetError("--data is required (the folder of MIR-1K clips)")
    best = train(cfg, args.out, resume=args.resume, progress=not args.quiet)
    print(best)
    return 0
