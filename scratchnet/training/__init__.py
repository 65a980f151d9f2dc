"""Training a separation network on MIR-1K: options, the loop, checkpoints, resuming, sweeps.

One run lives in one folder (``scratchnet train --out runs/NAME``):

- ``config.json``: everything needed to re-run it (model and its STFT, objective, optimizer,
  data, backend);
- ``log.csv``: one row per epoch, training loss and validation GNSDR/GSIR/GSAR;
- ``checkpoint.npz``: model, optimizer state and position, written atomically every
  ``checkpoint_every`` batches and at each epoch's end; ``--resume`` continues from it and
  reproduces the uninterrupted run exactly;
- ``best.npz`` (+ ``.json``): the model of the epoch with the best validation vocal GNSDR
  (Huang et al. chose the iteration with the best development GNSDR); ``last.npz`` the
  latest.

Training follows a list of *stages*, each a sequence length, a number of epochs and
optionally a cap on batches per epoch: ``[(100, 5)]`` is plain training, ``[(100, 2), (400,
3)]`` curriculum learning over segment lengths, and ``[(100, 1, 400), (400, 1, 100)]`` gives
both stages the same number of frames (400 batches of 10 x 100, then 100 of 10 x 400).

The modules, in the order a reader meets them:

========== =================================================================================
config     :class:`TrainConfig`, the objective and the optimizer it names, ``parse_stages``
prepare    the clips (validation held out), their waveforms, feature statistics, the model
checkpoint the run folder: config, log and checkpoint files, read and written
loop       run -> stage -> epoch -> step
sweep      grids of runs, each a ``scratchnet train`` + ``scratchnet evaluate`` process
========== =================================================================================
"""
from .checkpoint import RunFolder
from .config import (BACKENDS, BatchLBFGS, TrainConfig, TrainingDiverged, load_config,
                     make_augment, make_loss, make_optimizer, parse_augment, parse_stages,
                     resumed_config, save_config)
from .loop import train
from .prepare import feature_stats, prepare, split_clips, validate

__all__ = ["BACKENDS", "BatchLBFGS", "RunFolder", "TrainConfig", "TrainingDiverged", "feature_stats",
           "load_config", "make_augment", "make_loss", "make_optimizer", "parse_augment", "parse_stages", "prepare",
           "resumed_config", "save_config", "split_clips", "train", "validate"]
