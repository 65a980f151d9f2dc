"""What a run trains on: its clips, their waveforms, the validation clips, the starting model.

The model's STFT (``n_fft``, ``hop_length``, ``window`` in its config) is the one used for
everything here: the feature statistics, the training batches and the validation, so a model
trained with ``--n-fft 512`` is run by ``separate`` and ``evaluate`` with that same STFT.

A MIR-1K folder's training clips are read into memory (175 clips: tens of MB); a stems
folder's excerpts are read when a batch needs them (:class:`scratchnet.stems.ExcerptSources`),
so a collection of any size trains in bounded memory.
"""
import numpy as np

from .. import data
from ..errors import ScratchnetError
from ..models import Model, load_model, make_config
from ..models.config import model_rate, stft_options

#: Huang et al. kept 25 of their 175 training clips for model selection: one in seven.
VALID_SHARE = 25 / 175


def reference_level(Xs):
    """The training level: the median over clips of each clip's root mean square magnitude
    (Xs: the clips' mixture magnitudes, (T_i, F) each).  A MIR-1K clip's sources have unit
    norm, so its level falls with its length; the median is a level the network saw often."""
    return float(np.median([np.sqrt(np.mean(np.square(X, dtype=np.float64))) for X in Xs]))


def feature_stats(model, sources, max_clips=60):
    """Mean and std of the model's input features over (up to ``max_clips``) clips.

    With ``level_window`` the model's reference level ``buffers["level"]`` is set first
    (:func:`reference_level`: the features depend on it), and each clip is brought to it as
    the model will bring its inputs.

    Per bin for ``feature_norm="per_bin"``; for ``"global"`` the mean is zero and the std is
    one number, the root mean square over all bins and frames, repeated F times.

    Returns
    -------
    mean, std : ndarray, shape (F,), the model's dtype
    """
    stft_kw = dict(stft_options(model.config), rate=model_rate(model.config))
    Xs = [data.magnitudes(v, a, 0, **stft_kw)[0] for v, a in sources[:max_clips]]  # T_i,F each
    if model.config["level_window"] is not None:
        model.buffers["level"] = np.array([reference_level(Xs)], model.dtype)
        Xs = [(model.level_gains(x[None])[0][:, None] * x).astype(x.dtype) for x in Xs]
    X = np.concatenate(Xs)  # T_total,F
    if model.config["features"] == "log1p":
        X = np.log1p(X / model.config["feature_ref"])
    if model.config["feature_norm"] == "global":  # one scale: the spectrum keeps its shape
        rms = np.sqrt(np.mean(np.square(X, dtype=np.float64))) + 1e-5
        return np.zeros(X.shape[1], model.dtype), np.full(X.shape[1], rms, model.dtype)
    return X.mean(0).astype(model.dtype), (X.std(0) + 1e-5).astype(model.dtype)


def with_level(model, sources, window):
    """A trained model (or ensemble) that hears every input at its training clips' level.

    The trained weights are kept; the config gains ``level_window`` (seconds) and each
    network the buffer ``level``, the :func:`reference_level` of ``sources`` (the clips it
    was trained on) through its own STFT.  Its masks no longer depend on the input's gain.
    This is how the shipped models were made independent of level (their model cards).
    """
    from ..models import Ensemble
    # an ensemble's members share one STFT (and rate): one reference
    stft_kw = dict(stft_options(model.config), rate=model_rate(model.config))
    ref = reference_level([data.magnitudes(v, a, 0, **stft_kw)[0] for v, a in sources])

    def leveled(m):
        return Model(dict(m.config, level_window=window), params=m.params,
                     buffers=dict(m.buffers, level=np.array([ref], m.dtype)))

    return Ensemble([leveled(m) for m in model.members]) if isinstance(model, Ensemble) else leveled(model)


def validate(model, clips, workers=2):
    """Vocal and accompaniment G-scores of ``model`` on ``clips`` (no progress bar)."""
    from .. import metrics
    from ..separation import ModelSeparator
    sep = ModelSeparator(model, seq_len=model.config.get("inference_seq_len"))
    return metrics.aggregate(metrics.evaluate(sep, clips, workers=workers, progress=False))


def hold_out(train, n_valid, seed, log=print, *, group=None, what="clip"):
    """Split a seeded ``n_valid`` of the training clips off for validation: ``(train, valid)``.

    With ``group(clip) -> key`` whole groups are held out (a stems folder's excerpts by
    track, ``what="track"``): ``n_valid`` counts groups.  When ``n_valid`` would take half of
    them or more (a small folder: the default 25 of 25 leaves nothing to train on), about one
    in seven is held out instead (none from a single one), and ``log`` says so in one line.
    """
    keys = [group(c) for c in train] if group else list(range(len(train)))  # each clip's unit
    units = list(dict.fromkeys(keys))
    n = len(units)
    if n_valid and 2 * n_valid >= n:
        asked = n_valid
        n_valid = max(1, round(n * VALID_SHARE)) if n > 1 else 0
        log(f"only {n} training {what}(s): holding out {n_valid} for validation instead of "
            f"{asked} (choose with --valid-clips)" if n_valid else
            f"only 1 training {what}: no validation (best.npz is the last epoch's model)")
    rng = np.random.default_rng(seed)
    held = {units[i] for i in rng.permutation(n)[:n_valid].tolist()}
    return ([c for c, k in zip(train, keys) if k not in held], [c for c, k in zip(train, keys) if k in held])


def split_clips(cfg, log=print):
    """The run's training and validation clips: ``(train, valid)``.

    A stems folder (``cfg.layout``, or detected) is split by track, and its validation
    tracks are held out whole; ``cfg.split`` names MIR-1K's splits only.
    """
    layout = cfg.layout or data.detect_layout(cfg.data)
    stems = layout == "stems"
    found = data.find_parts(cfg.data, layout=layout, seed=cfg.split_seed,
                            split_name=None if stems and cfg.split == "huang" else cfg.split)
    train, valid = found.parts["train"], found.parts["valid"]
    if not train:
        raise ScratchnetError(f"split {found.split!r} has no training clips in {cfg.data!r}")
    if not valid and cfg.valid_clips:
        train, valid = hold_out(train, cfg.valid_clips, cfg.split_seed, log,
                                group=(lambda c: c.singer) if stems else None,
                                what="track" if stems else "clip")
    if cfg.train_clips:
        train = train[: cfg.train_clips]
    return train, valid


def load_waveforms(clips):
    """The clips' (vocals, accompaniment) float32 waveforms: a list, or for a stems folder's
    excerpts a sequence that reads each when asked (memory bounded by what is in use)."""
    if clips and hasattr(clips[0], "load_sources"):
        from ..stems import ExcerptSources
        return ExcerptSources(clips)
    return [tuple(s.astype(np.float32) for s in data.load_sources(c)) for c in clips]


def load_training_data(cfg, train):
    """The training clips' waveforms and the starting model.

    Returns
    -------
    sources : list of (vocals, accompaniment) float32 waveforms, one pair per clip (see
        :func:`load_waveforms`)
    model : Model, with its feature statistics set from ``sources`` (unless ``init_from``)
    """
    sources = load_waveforms(train)
    if cfg.init_from:
        model = load_model(cfg.init_from)
        if not isinstance(model, Model):
            raise ScratchnetError(f"init_from {cfg.init_from!r} is an ensemble: training starts "
                                  "from one model (an ensemble's members are trained alone)")
    else:
        model = Model(make_config(**dict(cfg.model, seed=cfg.seed)))
        model.buffers["mean"], model.buffers["std"] = feature_stats(model, sources)
    return sources, model


def check_stages(cfg, sources, model):
    """Refuse stages whose epoch would hold no batch (clips too short for ``seq_len``)."""
    for seq_len, *_ in cfg.stages:
        stream = data.SequenceStream(sources, seq_len=seq_len, batch_size=cfg.batch_size,
                                     shift_step=cfg.shift_step, rate=model_rate(model.config),
                                     **stft_options(model.config))
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
