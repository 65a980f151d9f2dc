"""What a run trains on: its clips, their waveforms, the validation clips, the starting model.

The model's STFT (``n_fft``, ``hop_length``, ``window`` in its config) is the one used for
everything here: the feature statistics, the training batches and the validation, so a model
trained with ``--n-fft 512`` is run by ``separate`` and ``evaluate`` with that same STFT.
"""
import numpy as np

from .. import data
from ..errors import ScratchnetError
from ..models import Model, load_model, make_config

#: Huang et al. kept 25 of their 175 training clips for model selection: one in seven.
VALID_SHARE = 25 / 175


def feature_stats(model, sources, max_clips=60):
    """Per-bin mean and std of the model's input features over (up to ``max_clips``) clips.

    Returns
    -------
    mean, std : ndarray, shape (F,), the model's dtype
    """
    stft_kw = data.stft_options(model.config)
    Xs = [data.magnitudes(v, a, 0, **stft_kw)[0] for v, a in sources[:max_clips]]  # T_i,F each
    X = np.concatenate(Xs)  # T_total,F
    if model.config["features"] == "log1p":
        X = np.log1p(X / model.config["feature_ref"])
    return X.mean(0).astype(model.dtype), (X.std(0) + 1e-5).astype(model.dtype)


def validate(model, clips, workers=2):
    """Vocal and accompaniment G-scores of ``model`` on ``clips`` (no progress bar)."""
    from .. import metrics
    from ..separation import ModelSeparator
    sep = ModelSeparator(model, seq_len=model.config.get("inference_seq_len"))
    return metrics.aggregate(metrics.evaluate(sep, clips, workers=workers, progress=False))


def hold_out(train, n_valid, seed, log=print):
    """Split a seeded ``n_valid`` of the training clips off for validation: ``(train, valid)``.

    When ``n_valid`` would take half the clips or more (a small folder: the default 25 of 25
    leaves nothing to train on), about one in seven is held out instead (none from a single
    clip), and ``log`` says so in one line.
    """
    if n_valid and 2 * n_valid >= len(train):
        asked = n_valid
        n_valid = max(1, round(len(train) * VALID_SHARE)) if len(train) > 1 else 0
        log(f"only {len(train)} training clip(s): holding out {n_valid} for validation instead of "
            f"{asked} (choose with --valid-clips)" if n_valid else
            "only 1 training clip: no validation (best.npz is the last epoch's model)")
    rng = np.random.default_rng(seed)
    idx = set(rng.permutation(len(train))[:n_valid].tolist())
    return ([c for i, c in enumerate(train) if i not in idx],
            [c for i, c in enumerate(train) if i in idx])


def split_clips(cfg, log=print):
    """The run's training and validation clips: ``(train, valid)``."""
    parts = data.split(data.find_clips(cfg.data), cfg.split, seed=cfg.split_seed)
    train, valid = parts["train"], parts["valid"]
    if not train:
        raise ScratchnetError(f"split {cfg.split!r} has no training clips in {cfg.data!r}")
    if not valid and cfg.valid_clips:
        train, valid = hold_out(train, cfg.valid_clips, cfg.split_seed, log)
    if cfg.train_clips:
        train = train[: cfg.train_clips]
    return train, valid


def load_training_data(cfg, train):
    """The training clips' waveforms and the starting model.

    Returns
    -------
    sources : list of (vocals, accompaniment) float32 waveforms, one pair per clip
    model : Model, with its feature statistics set from ``sources`` (unless ``init_from``)
    """
    sources = [tuple(s.astype(np.float32) for s in data.load_sources(c)) for c in train]
    if cfg.init_from:
        model = load_model(cfg.init_from)
    else:
        model = Model(make_config(**dict(cfg.model, seed=cfg.seed)))
        model.buffers["mean"], model.buffers["std"] = feature_stats(model, sources)
    return sources, model


def check_stages(cfg, sources, model):
    """Refuse stages whose epoch would hold no batch (clips too short for ``seq_len``)."""
    for seq_len, *_ in cfg.stages:
        stream = data.SequenceStream(sources, seq_len=seq_len, batch_size=cfg.batch_size,
                                     shift_step=cfg.shift_step, **data.stft_options(model.config))
        if stream.batches_per_epoch() == 0:
            raise ScratchnetError(
                f"the training clips give {stream.frames_per_epoch()} frames per epoch, too few for "
                f"one batch of {cfg.batch_size} x {seq_len} frames: use a smaller --seq-len or "
                "--batch-size, or more clips")


def prepare(cfg, log=print):
    """Clips, sources and the model of a run (without touching the run folder):
    ``(train, valid, sources, model)``."""
    train, valid = split_clips(cfg, log)
    return (train, valid, *load_training_data(cfg, train))
