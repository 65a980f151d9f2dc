"""What each ``scratchnet`` command does, given its parsed arguments (an argparse Namespace).

The command line itself (the parser, the options' fixed choices, the one error boundary)
is :mod:`scratchnet.cli`.  Like it, this module imports only the standard library at load
time: each command imports what it needs when it runs, after checking every output path it
will write, so that a mistake is reported before any computing.
"""
import os
import sys

from .errors import ScratchnetError
from .files import check_writable, make_folder, read_json


def _clips_for(args):
    from . import data
    parts = data.split(data.find_clips(args.data), args.split, seed=args.split_seed)
    clips = parts[args.part]
    print(f"split {args.split}: {data.describe_split(parts)}", file=sys.stderr)
    if not clips:
        raise ScratchnetError(f"part {args.part!r} of split {args.split!r} has no clips in {args.data!r}")
    if args.limit:
        clips = clips[: args.limit]
    return clips


def cmd_evaluate(args):
    if args.json:
        check_writable(args.json, "scores file")  # refused now, not after the scoring
    from . import metrics, report
    from .files import write_json
    from .separation import get_separator
    separator = get_separator(args.method, model=args.model, mask_power=args.mask_power)
    clips = _clips_for(args)
    results = metrics.evaluate(separator, clips, workers=args.workers, progress=not args.quiet)
    summary = metrics.aggregate(results)
    print(f"method {separator.name} on {len(clips)} clips ({args.split}/{args.part})")
    print(report.summary_table(summary))
    for r in results:
        if r.get("error"):
            print(f"clip {r['clip']}: not scored: {r['error']}", file=sys.stderr)
    if args.json:
        write_json(args.json, {"method": separator.name, "split": args.split, "part": args.part,
                               "clips": summary["clips"], "failed": summary["failed"],
                               "vocals": summary["vocals"],
                               "accompaniment": summary["accompaniment"], "per_clip": results})
    return 0


def cmd_separate(args):
    from tqdm import tqdm
    from . import audio
    from .separation import get_separator, separate_file
    if args.method in ("irm", "ibm"):
        raise ScratchnetError(f"method {args.method!r} needs the true sources: use it with evaluate")
    for path in args.files:
        audio.info(path)  # every input readable before any work
    separator = get_separator(args.method, model=args.model, mask_power=args.mask_power)
    told = []

    def on_downmix():
        if not told:
            print("multi-channel input is averaged to mono before separation", file=sys.stderr)
            told.append(True)

    for path in args.files:
        with tqdm(total=None, unit="sample", unit_scale=True, desc=os.path.basename(path),
                  disable=args.quiet, file=sys.stderr) as bar:
            outs = separate_file(path, args.outdir, separator, fmt=args.format, bar=bar,
                                 on_downmix=on_downmix)
        print("\n".join(outs))
    return 0


def cmd_figure(args):
    from . import data, report
    from .separation import get_separator
    report.check_figure_path(args.output)  # before any computing
    clips = {c.name: c for c in data.find_clips(args.data)}
    if args.clip not in clips:
        raise ScratchnetError(f"clip {args.clip!r} is not in {args.data!r}")
    separator = get_separator(args.method, model=args.model, mask_power=args.mask_power)
    mixture, vocals, accompaniment = data.load_clip(clips[args.clip])
    refs = (vocals, accompaniment) if separator.needs_references else None
    est_v, est_a = separator.separate(mixture, references=refs)
    report.five_panel(mixture, vocals, est_v, accompaniment, est_a,
                      title=args.title or f"{args.clip}: {separator.name}", path=args.output)
    print(args.output)
    return 0


def cmd_demo(args):
    """Separate a user's file, or a synthetic song made on the spot, with the shipped model."""
    import numpy as np
    from . import audio, report
    from .separation import DEFAULT_MODEL, get_separator, separate_file
    from .synthetic import synth_song
    if args.file:
        audio.info(args.file)
    make_folder(args.outdir, "output folder")
    method = "drnn" if os.path.isfile(DEFAULT_MODEL) else "rpca"
    if method != "drnn":
        print("no shipped model found: using the rpca baseline", file=sys.stderr)
    separator = get_separator(method)
    if args.file:
        path = args.file
    else:
        mixture, vocals, accompaniment = synth_song(args.seconds, seed=args.seed)
        path = os.path.join(args.outdir, "demo_mixture.wav")
        audio.save(path, 0.5 * mixture / np.max(np.abs(mixture)), 16000)
        print(f"made a {args.seconds:g} s synthetic song: {path}")
    outs = separate_file(path, args.outdir, separator)
    print("\n".join(outs))
    mix, _ = audio.load(path)
    est_v, _ = audio.load(outs[0])
    est_a, _ = audio.load(outs[1])
    if args.file:
        vocals = accompaniment = None  # a user's song has no references: three panels
    else:
        gain = 0.5 / np.max(np.abs(mixture))  # the level the song was written at
        vocals, accompaniment = vocals * gain, accompaniment * gain
    fig_path = os.path.join(args.outdir, "demo.png")
    report.five_panel(mix, vocals, est_v, accompaniment, est_a, path=fig_path,
                      title=f"{os.path.basename(path)}: {separator.name}")
    print(fig_path)
    return 0


def _read_logs(runs, compare):
    from . import report
    logs = []
    for run in runs:
        log_path = os.path.join(run, "log.csv")
        if not os.path.isfile(log_path):
            raise ScratchnetError(f"{run!r} holds no training log (expected {log_path})")
        log = report.read_log(log_path)
        if not log:
            raise ScratchnetError(f"{log_path} has no epochs yet")
        if logs and not compare:  # number a continuation's epochs after those before it
            log["epoch"] = log["epoch"] + logs[-1]["epoch"][-1]
        logs.append(log)
    return logs


def cmd_curves(args):
    """Training curves of one run, or of several runs that continue each other, end to end."""
    import numpy as np
    from . import report
    report.check_figure_path(args.output)
    logs = _read_logs(args.runs, args.compare)
    if args.compare:
        labels = args.labels or [os.path.basename(os.path.normpath(r)) for r in args.runs]
        if len(labels) != len(logs):
            raise ScratchnetError(f"--labels names {len(labels)} runs, but {len(logs)} were given")
        objectives = set()
        for run in args.runs:  # losses of different objectives are drawn relative to their start
            try:
                objectives.add(read_json(os.path.join(run, "config.json")).get("objective"))
            except (ScratchnetError, AttributeError):
                objectives.add(None)
        report.compare_curves(logs, labels, title=args.title, path=args.output,
                              relative_loss=len(objectives) > 1)
        print(args.output)
        return 0
    joined = {k: np.concatenate([lg[k] for lg in logs]) for k in logs[0]}
    title = args.title or " + ".join(os.path.basename(os.path.normpath(r)) for r in args.runs)
    report.training_curves(joined, title=title, path=args.output,
                           boundaries=[lg["epoch"][-1] for lg in logs[:-1]])
    print(args.output)
    return 0


#: train's flags that set a model option, and those that set a training option.
_MODEL_FLAGS = ("arch", "hidden", "layers", "context", "features", "cell", "bidirectional", "n_fft",
                "hop_length", "window")
_TRAIN_FLAGS = {"data": "data", "split": "split", "objective": "objective", "gamma": "gamma",
                "floor": "floor", "optimizer": "optimizer", "lr": "lr", "lr_decay": "lr_decay",
                "batch_size": "batch_size", "shift_step": "shift_step",
                "max_batches": "max_batches_per_epoch", "train_clips": "train_clips",
                "valid_clips": "valid_clips", "seed": "seed", "workers": "workers",
                "backend": "backend"}


def train_config(args):
    """A :class:`~scratchnet.training.TrainConfig` from an optional ``--config`` file
    overridden by flags, checked."""
    from .models import make_config
    from .training import TrainConfig, parse_augment, parse_stages
    d = read_json(args.config, "training config") if args.config else {}
    if not isinstance(d, dict):
        raise ScratchnetError(f"training config {args.config!r} must be a JSON object")
    model = dict(d.pop("model", {}))
    for key in _MODEL_FLAGS:
        if getattr(args, key) is not None:
            model[key] = getattr(args, key)
    if args.n_fft is not None:
        model.pop("n_bins", None)  # derived from the new n_fft
    for flag, key in _TRAIN_FLAGS.items():
        if getattr(args, flag) is not None:
            d[key] = getattr(args, flag)
    for flag, value in (("--seq-len", args.seq_len), ("--epochs", args.epochs)):
        if value is not None and value < 1:
            raise ScratchnetError(f"{flag} {value} must be a positive number")
    if args.augment is not None:
        d["augment"] = parse_augment(args.augment)
    if args.curriculum:
        d["stages"] = parse_stages(args.curriculum)
    elif args.seq_len is not None or args.epochs is not None:
        old = d.get("stages", [[100, 10]])[0]
        d["stages"] = [[old[0] if args.seq_len is None else args.seq_len,
                        old[1] if args.epochs is None else args.epochs]]
    cfg = TrainConfig.from_dict(dict(d, model=make_config(**model))).check()
    if not cfg.data:
        raise ScratchnetError("--data is required (the folder of MIR-1K clips)")
    return cfg


def cmd_train(args):
    from .training import train
    cfg = None if args.resume else train_config(args)
    print(train(cfg, args.out, resume=args.resume, progress=not args.quiet))
    return 0


def cmd_models(args):
    """One line per shipped model."""
    from . import pretrained
    print("\n".join(pretrained.describe()))
    return 0


def cmd_sweep(args):
    from .training.sweep import load_sweep, run_sweep
    cfg = load_sweep(args.config)
    if args.jobs < 1:
        raise ScratchnetError(f"--jobs {args.jobs} must be at least 1")
    if not os.path.isdir(args.data):
        raise ScratchnetError(f"data folder {args.data!r} does not exist or is not a folder")
    out = make_folder(args.out or os.path.join("sweeps", cfg["name"]), "sweep folder")
    csv_path, fig_path = run_sweep(cfg, os.path.abspath(args.data), out, jobs=args.jobs)
    print(csv_path)
    print(fig_path)
    return 0
