"""The training loop, read top down: a run is stages, a stage is epochs, an epoch is steps.

- :func:`train` (the run) starts or resumes a run folder and goes through the stages, on the
  backend the config names (``with use_backend(cfg.backend)``);
- :func:`run_stage` makes the batch stream of one sequence length and runs its epochs;
- :func:`run_epoch` runs the steps of one epoch, checkpointing every ``checkpoint_every``
  batches, then :func:`end_epoch` validates, saves ``best``/``last`` and logs a row;
- :func:`train_step` is one optimizer step on one batch.

Resuming is exact: the batch stream is a function of the seed and the epoch, the learning
rate a function of the epoch, and the checkpoint holds the model, the optimizer's state and
the position (stage, epoch, batch, running loss), so the batches already seen are skipped,
not re-drawn, and the resumed run ends with the same weights as an uninterrupted one.  A loss
that turns NaN or infinite stops the run with a message and leaves the last good checkpoint.
"""
import dataclasses
import sys
import time

import numpy as np

from .. import data
from ..files import new_folder
from ..models.config import model_rate, stft_options
from ..nn import use_backend
from .checkpoint import RunFolder, restore
from .config import (BatchLBFGS, TrainingDiverged, make_augment, make_loss, make_optimizer,
                     resumed_config, save_config)
from .prepare import check_stages, load_training_data, split_clips, validate


@dataclasses.dataclass
class Run:
    """Everything the loop works on; ``state`` is the position saved in each checkpoint."""
    cfg: object
    folder: RunFolder
    model: object
    opt: object
    loss_fn: object
    state: dict
    sources: list
    valid_clips: list
    progress: bool = True
    log: object = print

    def save_checkpoint(self):
        self.folder.save_checkpoint(self.model, self.opt, self.state)


def train(cfg, out, *, resume=False, progress=True, log=print):
    """Run (or resume) a training run in folder ``out``; returns the path of the best model.

    Parameters
    ----------
    cfg : TrainConfig, or with ``resume`` None or a dict
        The run's options.  With ``resume`` they are read from ``out/config.json``, and
        ``cfg`` may hold the options given again (checked by :func:`resumed_config`: a
        contradiction is refused, more epochs train on).
    out : str
        The run folder: created if needed; it must not hold a run unless ``resume``.
    progress : bool
        Show a progress bar per epoch (on standard error, when it is a terminal).
    log : callable(str)
        Where the one-line messages go (a line per epoch).
    """
    run = start(cfg, out, resume=resume, progress=progress, log=log)
    if run is None:  # a finished run, resumed with no more epochs
        return RunFolder(out).best
    with use_backend(run.cfg.backend):
        while run.state["stage"] < len(run.cfg.stages):
            run_stage(run)
            run.state.update(stage=run.state["stage"] + 1, epoch=0)
            run.save_checkpoint()
    return run.folder.best


def start(cfg, out, *, resume, progress, log):
    """Check everything that can be checked cheaply, then load the data and build the model.

    Returns None, having said so, for a finished run resumed with nothing more to train."""
    folder = RunFolder(out)
    state = {"stage": 0, "epoch": 0, "batch": 0, "global_epoch": 0, "best": -np.inf,
             "seconds": 0.0, "loss_sum": 0.0}
    if resume:
        saved = folder.load_config().check()
        arrays, position = folder.read_checkpoint()
        state.update(position)
        cfg = resumed_config(saved, cfg or {}, state).check()
        if state["stage"] >= len(cfg.stages):
            epochs = sum(s[1] for s in cfg.stages)
            log(f"{out}: the run has finished its {epochs} epoch{'s' * (epochs != 1)}, nothing to "
                f"train (--resume --epochs {epochs + 1} trains on)" if len(cfg.stages) == 1 else
                f"{out}: the run has finished its {len(cfg.stages)} stages, nothing to train "
                "(--resume --curriculum with more epochs or stages trains on)")
            return None
    else:
        cfg.check()
        folder.check_new()
    train_clips, valid_clips = split_clips(cfg, log)
    with new_folder(folder.out, "run folder"):  # writable before any work; removed on failure
        sources, model = load_training_data(cfg, train_clips)
        check_stages(cfg, sources, model)
        if not resume:
            folder.start(cfg)
        elif cfg.stages != saved.stages:  # trains on: the run's record says so
            save_config(dataclasses.replace(saved, stages=cfg.stages), folder.config)
    opt = make_optimizer(cfg)
    if resume:
        restore(arrays, model, opt)
        log(f"resuming {out} at stage {state['stage']}, epoch {state['epoch']}, batch {state['batch']}")
    log(f"model {model.config['arch']}: {model.n_params():,} parameters; training clips "
        f"{len(train_clips)}, validation clips {len(valid_clips)}")
    return Run(cfg, folder, model, opt, make_loss(cfg), state, sources, valid_clips, progress, log)


def run_stage(run):
    """The remaining epochs of the current stage: one sequence length, one batch stream."""
    cfg, state = run.cfg, run.state
    seq_len, n_epochs, *cap = cfg.stages[state["stage"]]  # [seq_len, epochs(, max batches)]
    stream = data.SequenceStream(run.sources, seq_len=seq_len, batch_size=cfg.batch_size,
                                 shift_step=cfg.shift_step, seed=cfg.seed, augment=make_augment(cfg),
                                 target=cfg.target, rate=model_rate(run.model.config),
                                 **stft_options(run.model.config))
    n_batches = stream.batches_per_epoch()
    cap = cap[0] if cap else cfg.max_batches_per_epoch
    if cap:
        n_batches = min(n_batches, cap)
    while state["epoch"] < n_epochs:
        run_epoch(run, stream, seq_len, n_batches)
        end_epoch(run, seq_len)


def run_epoch(run, stream, seq_len, n_batches):
    """The steps of one epoch from where the state stands (batch 0, or a resumed position)."""
    from tqdm import tqdm
    cfg, state = run.cfg, run.state
    ep = state["global_epoch"]
    if hasattr(run.opt, "lr"):
        run.opt.lr = cfg.lr * cfg.lr_decay ** ep  # a function of the epoch: resumes exactly
    frames = cfg.batch_size * seq_len
    t0, start_batch = time.time(), state["batch"]
    bar = tqdm(total=n_batches, initial=state["batch"], leave=False,
               disable=None if run.progress else True,  # None: on a terminal only (a log keeps each redraw)
               desc=f"epoch {ep + 1} (T={seq_len})", unit="batch", file=sys.stderr)
    for b, (X, V, A) in enumerate(stream.epoch(ep)):
        if b >= n_batches:
            break
        if b < state["batch"]:
            continue  # seen before the interruption: skip, do not re-train
        state["loss_sum"] += train_step(run, X, V, A, ep, b)
        state["batch"] = b + 1
        elapsed = time.time() - t0
        bar.set_postfix(loss=f"{state['loss_sum'] / state['batch']:.4g}",
                        fps=f"{frames * (b + 1 - start_batch) / max(elapsed, 1e-9):.0f}")
        bar.update(1)
        if cfg.checkpoint_every and state["batch"] % cfg.checkpoint_every == 0:
            state["seconds"] += time.time() - t0
            t0, start_batch = time.time(), state["batch"]  # frames/s since this point
            run.save_checkpoint()
    bar.close()
    state["seconds"] += time.time() - t0


def train_step(run, X, V, A, epoch, batch):
    """One optimizer step on the batch ``X, V, A`` (N,T,F each); returns the batch loss."""
    model, opt = run.model, run.opt
    if isinstance(opt, BatchLBFGS):
        loss = opt.minimize(model, X, V, A, run.loss_fn)  # several steps on this one batch
    else:
        loss, grads = model.loss_and_grad(X, V, A, run.loss_fn)
    if not np.isfinite(loss):
        raise TrainingDiverged(
            f"loss became {loss} at epoch {epoch + 1}, batch {batch + 1}: stopped; the last good "
            f"checkpoint is {run.folder.checkpoint} (try a lower --lr or --clip-norm)")
    if not isinstance(opt, BatchLBFGS):
        opt.step(model.params, grads)
    return float(loss)


def end_epoch(run, seq_len):
    """Validate, keep the best and the last model, log the epoch's row, checkpoint."""
    cfg, state, model, folder = run.cfg, run.state, run.model, run.folder
    ep = state["global_epoch"]
    train_loss = state["loss_sum"] / max(state["batch"], 1)
    scores = {"GNSDR": np.nan, "GSIR": np.nan, "GSAR": np.nan}
    validated = run.valid_clips and (ep + 1) % cfg.valid_every == 0
    if validated:
        scores = validate(model, run.valid_clips, cfg.workers)["vocals"]
        if scores["GNSDR"] > state["best"]:
            state["best"] = scores["GNSDR"]
            model.save(folder.best)
    elif not run.valid_clips:
        model.save(folder.best)  # nothing to select on: the latest is the best we know
    model.save(folder.last)
    folder.append_log([ep + 1, state["stage"], seq_len, state["batch"],
                       state["batch"] * cfg.batch_size * seq_len, f"{train_loss:.6g}",
                       f"{scores['GNSDR']:.4f}", f"{scores['GSIR']:.4f}", f"{scores['GSAR']:.4f}",
                       f"{state['seconds']:.1f}"])
    if validated:
        scored = (f"valid GNSDR {scores['GNSDR']:.2f} dB (GSIR {scores['GSIR']:.2f}, "
                  f"GSAR {scores['GSAR']:.2f})")
    elif run.valid_clips:
        scored = f"not validated this epoch (every {cfg.valid_every})"
    else:  # the log's NaN columns mean no score, not a failed one
        scored = "no validation clips (best.npz is the latest model)"
    run.log(f"epoch {ep + 1}: loss {train_loss:.4g}, {scored}, {state['seconds']:.0f} s")
    state.update(epoch=state["epoch"] + 1, global_epoch=ep + 1, batch=0, loss_sum=0.0)
    run.save_checkpoint()
