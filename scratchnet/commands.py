"""What each ``scratchnet`` command does, given its parsed arguments (an argparse Namespace).

The command line itself (the parser, the options' fixed choices, the one error boundary)
is :mod:`scratchnet.cli`.  Like it, this module imports only the standard library at load
time: each command imports what it needs when it runs, after checking every output path it
will write, so that a mistake is reported before any computing.
"""
import contextlib
import os
import sys

from .errors import ScratchnetError
from .files import check_writable, folder_lock, make_folder, new_folder, read_json


def _clips_for(args):
    from . import data
    found = data.find_parts(args.data, layout=args.layout, split_name=args.split, seed=args.split_seed)
    clips = found.parts[args.part]
    print(found.description, file=sys.stderr)
    if not clips:
        raise ScratchnetError(f"part {args.part!r} of split {found.split!r} has no clips in {args.data!r}")
    if args.limit:
        clips = clips[: args.limit]
    return clips, found.split


def _check_report_folder(folder, force):
    """Refuse, before any work, a report folder that cannot be written or holds a report."""
    page = os.path.join(folder, "index.html")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ScratchnetError(f"cannot use report folder {folder!r}: it is a file")
    if os.path.lexists(page) and not force:
        raise ScratchnetError(f"{page} already exists: use --force to replace the report, or another folder")
    parent = os.path.dirname(os.path.abspath(folder))
    if not os.path.isdir(folder) and not os.path.isdir(parent):
        raise ScratchnetError(f"cannot create report folder {folder!r}: folder {parent!r} does not exist")


def cmd_evaluate(args):
    if args.json:
        check_writable(args.json, "scores file")  # refused now, not after the scoring
    if args.report:
        _check_report_folder(args.report, args.force)
    if args.scheduler:
        args.data = os.path.abspath(args.data)  # the clips' paths, as the cluster's workers see them
    from . import data, metrics, report
    from .files import write_json
    from .separation import get_separator
    level = data.LevelledClips(gain_db=args.gain, peak=args.peak, mixing=args.mixing)
    separator = get_separator(args.method, model=args.model, mask_power=args.mask_power)
    clips, split = _clips_for(args)
    workers = min(args.workers, len(clips))
    if workers < args.workers and not args.scheduler:
        print(f"{len(clips)} clip(s): {workers} worker process(es), not {args.workers}", file=sys.stderr)
    results = metrics.evaluate(separator, clips, workers=workers, progress=not args.quiet,
                               scheduler=args.scheduler, load=level, metric=args.metric)
    museval = args.metric == "museval"
    summary = metrics.aggregate_museval(results) if museval else metrics.aggregate(results)
    print(f"method {separator.name} on {len(clips)} clips ({split}/{args.part}), {level.describe()}")
    print(report.museval_table(summary) if museval else report.summary_table(summary))
    for r in results:
        if r.get("error"):
            print(f"clip {r['clip']}: not scored: {r['error']}", file=sys.stderr)
    if args.json:
        write_json(args.json, {"method": separator.name, "split": split, "part": args.part,
                               "level": level.describe(), "mixing": args.mixing, "metric": args.metric,
                               "clips": summary["clips"], "failed": summary["failed"],
                               "vocals": summary["vocals"],
                               "accompaniment": summary["accompaniment"], "per_clip": results})
    if args.report:
        from .webpage import evaluation_report
        print(evaluation_report(args.report, separator, clips, results, summary,
                                title=f"{separator.name} on {len(clips)} clips of {args.data}",
                                command_line=_command_line(args), load=level))
    return 0


#: The input that stands for standard input, and what messages call it.
STDIN, STDIN_NAME = "-", "standard input"


@contextlib.contextmanager
def _standard_input(paths):
    """``paths`` with ``-`` replaced by a temporary copy of standard input named ``stdin`` (so
    its stems go to ``<outdir>/stdin/``), removed at the end.  libsndfile seeks in what it
    reads, and a pipe cannot seek: hence the copy.  Errors that name the copy name
    standard input instead."""
    import shutil
    import tempfile
    if STDIN not in paths:
        yield list(paths)
        return
    if list(paths).count(STDIN) > 1:
        raise ScratchnetError("- (standard input) is given twice")
    if sys.stdin is None or sys.stdin.isatty():
        raise ScratchnetError(f"-: {STDIN_NAME} is a terminal: pipe audio into it "
                              "(scratchnet separate - < song.wav)")
    folder = tempfile.mkdtemp(prefix="scratchnet-stdin-")
    copy = os.path.join(folder, "stdin")
    try:
        try:
            with open(copy, "wb") as f:
                shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
        except OSError as e:
            raise ScratchnetError(f"-: cannot keep {STDIN_NAME} in {folder}: {e.strerror}") from None
        if os.path.getsize(copy) == 0:
            raise ScratchnetError(f"-: {STDIN_NAME} is empty: pipe audio into it (scratchnet separate - < song.wav)")
        yield [copy if p == STDIN else p for p in paths]
    except ScratchnetError as e:
        if copy not in str(e):
            raise
        raise ScratchnetError(str(e).replace(copy, STDIN_NAME)) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _check_outputs_free(outputs, force):
    for out in outputs:
        if os.path.lexists(out) and not force:
            raise ScratchnetError(f"{out} already exists: use --force to replace it, or another -o")


def _separate_plan(args, files):
    """``[(input, stems folder, outputs)]``, refused before any work where it cannot be done.

    Refused: an input that is not readable audio, or holds NaN samples (every sample is
    read); an output that is an input; two inputs whose stems would go to one folder
    (``a/song.wav b/song.flac``); an output that exists, unless ``--force``; an ``-o`` that
    is a file.
    """
    from . import audio
    from .separation import outputs_of
    if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
        raise ScratchnetError(f"cannot use output folder {args.outdir!r}: it is a file")
    plan, seen = [], {}
    for path in files:
        audio.info(path)
        folder, outputs = outputs_of(path, args.outdir, args.format, args.subtype)
        key = os.path.normcase(os.path.abspath(folder))
        if key in seen:
            raise ScratchnetError(f"{seen[key]} and {path} would both write their stems to {folder}: "
                                  "separate them in two calls with different -o folders")
        seen[key] = path
        if args.report:
            outputs = outputs + [os.path.join(folder, "index.html")]
        for out in outputs:
            audio.check_not_input(out, files)
        _check_outputs_free(outputs, args.force)
        plan.append((path, folder, outputs))
    for path, _, _ in plan:  # the headers first (quick), then every sample
        audio.check_samples(path)
    return plan


def _bar(path, quiet):
    """A progress bar counting the seconds of the input's audio separated so far; shown on a
    terminal only (a log file would keep every redraw), and not with ``-q``."""
    from tqdm import tqdm

    from . import audio
    n, sr, _ = audio.info(path)
    return tqdm(total=n / sr, desc=os.path.basename(path), disable=True if quiet else None,
                file=sys.stderr,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s of audio "
                           "[{elapsed}<{remaining}]")


def _notice(message):
    """A line on standard error, written above any progress bar, not into it."""
    from tqdm import tqdm
    tqdm.write(message, file=sys.stderr)


def _clip_warning(path, subtype):
    """``on_clip`` of :func:`separate_file`: one line saying the stems were clipped, and how not."""
    from . import audio
    bits = audio.SUBTYPE_NAMES.get(subtype or audio.DEFAULT_SUBTYPE, subtype)

    def warn(peak):
        _notice(f"warning: the stems of {os.path.basename(path)} peak at {peak:.3g}, above full scale: "
                f"clipped in the {bits} files, they no longer sum to the input (--float32 keeps them whole)")
    return warn


def _holding(stack, folder):
    """Create ``folder`` (removed again if the command fails while it is empty) and hold its
    lock in ``stack``: a second command writing into it at the same time is refused."""
    stack.enter_context(new_folder(folder))
    stack.enter_context(folder_lock(folder))


def cmd_separate(args):
    from .separation import get_separator, separate_file
    if args.method in ("irm", "ibm"):
        raise ScratchnetError(f"method {args.method!r} needs the true sources: use it with evaluate")
    with _standard_input(args.files) as files, contextlib.ExitStack() as held:
        plan = _separate_plan(args, files)  # every input readable, every output free, before any work
        for _, folder, outputs in plan:
            _holding(held, folder)
            _check_outputs_free(outputs, args.force)  # again, now that no one else writes there
        separator = get_separator(args.method, model=args.model, mask_power=args.mask_power)
        told = [] if not args.quiet else [True]

        def on_downmix():
            if not told:
                _notice("multi-channel input is averaged to mono before separation" if args.mono else
                        "multi-channel input: one mask from the channels averaged to mono is applied "
                        "to each channel (--mono writes mono stems)")
                told.append(True)

        for path, folder, _ in plan:
            with _bar(path, args.quiet) as bar:
                outs = separate_file(path, args.outdir, separator, fmt=args.format, subtype=args.subtype,
                                     mono=args.mono, bar=bar, on_downmix=on_downmix,
                                     on_clip=_clip_warning(path, args.subtype))
            if args.report:
                outs.append(_song_page(args, path, folder, outs, separator.name))
            print("\n".join(outs))
    return 0


#: The page's figure shows at most this many seconds of a song: those with the loudest vocals
FIGURE_SECONDS = 30.0


def _song_figure(path, stems, method):
    """The five-panel figure of a song and its stems, as the network heard them (16 kHz mono),
    over the :data:`FIGURE_SECONDS` of loudest vocals: memory and time stay bounded."""
    from . import audio, report
    from .signal import SAMPLE_RATE
    n, sr, _ = audio.info(path)
    start, stop = audio.loudest_span(stems[0], FIGURE_SECONDS)

    def heard(p):
        return audio.resample(audio.read_block(p, start, stop).mean(axis=1), sr, SAMPLE_RATE)

    def clock(k):
        return f"{k // sr // 60}:{k // sr % 60:02d}"

    span = "" if stop - start == n else f", {clock(start)}-{clock(stop)}"
    return report.five_panel(heard(path), None, heard(stems[0]), None, heard(stems[1]),
                             title=f"{os.path.basename(path)}: {method}{span}")


def _song_page(args, path, folder, stems, method, *, references=None, scores=None, figure=None):
    """The listening page beside the stems of one song; returns its path."""
    from . import audio, webpage
    n, sr, channels = audio.info(path)
    figure = _song_figure(path, stems, method) if figure is None else figure
    shape = {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")
    return webpage.song_page(
        folder, path, stems, title=f"{os.path.basename(path)}: vocals and accompaniment",
        subtitle=f"{n / sr:.1f} s at {sr} Hz, {shape}; separated by {method}",
        figure_uri=webpage.png_uri(figure), command_line=_command_line(args),
        references=references, scores=scores,
        mixture_kept=path in getattr(args, "files", [path]))  # a copy of standard input is not


def _command_line(args):
    return getattr(args, "command_line", None) or "scratchnet " + " ".join(sys.argv[1:])


def cmd_figure(args):
    from . import data, report
    from .separation import get_separator
    report.check_figure_path(args.output)  # before any computing
    clip = data.find_clip(args.data, args.clip, layout=args.layout)
    separator = get_separator(args.method, model=args.model, mask_power=args.mask_power)
    mixture, vocals, accompaniment = data.load_clip(clip)
    refs = (vocals, accompaniment) if separator.needs_references else None
    est_v, est_a = separator.separate(mixture, references=refs)
    report.five_panel(mixture, vocals, est_v, accompaniment, est_a,
                      title=args.title or f"{args.clip}: {separator.name}", path=args.output)
    print(args.output)
    return 0


def _demo_outputs(args, path):
    """The demo's outputs, refused now if one exists (without --force) or is the input."""
    from . import audio
    from .separation import outputs_of
    folder, stems = outputs_of(path, args.outdir, None, args.subtype)
    outputs = ([] if args.file else [path]) + stems + [os.path.join(args.outdir, "demo.png")]
    outputs += [os.path.join(folder, "index.html")] if args.report else []
    for out in outputs:
        if args.file:
            audio.check_not_input(out, [args.file])
    _check_outputs_free(outputs, args.force)
    return folder


#: The demo song's length in seconds: its voice needs one, and it is held and scored whole.
DEMO_SECONDS = (1.0, 600.0)


@contextlib.contextmanager
def _removed_on_failure():
    """A list for the ``with`` block to name the files it writes: removed if the block fails."""
    written = []
    try:
        yield written
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise


def _score_lines(scores):
    """The demo's score table, as text."""
    lines = [f"{'source':<15}{'NSDR':>8}{'SDR':>8}{'SIR':>8}{'SAR':>8}   (dB, against the true sources)"]
    lines += [f"{row[0]:<15}" + "".join(f"{v:>8.2f}" for v in row[1:]) for row in scores]
    return "\n".join(lines)


def cmd_demo(args):
    """Separate a user's file, or a synthetic song made on the spot, with the shipped model;
    score the stems when the true sources are known (the synthetic song).  A demo that
    fails leaves nothing: what it wrote, and the folders it made, are removed."""
    lo, hi = DEMO_SECONDS
    if args.file is None and not lo <= args.seconds <= hi:  # NaN too
        raise ScratchnetError(f"--seconds {args.seconds:g} must be between {lo:g} and {hi:g}")
    if args.seed < 0:
        raise ScratchnetError(f"--seed {args.seed} must not be negative")
    with _standard_input([args.file] if args.file else []) as files:
        args.file = files[0] if files else None
        _demo(args)
    return 0


def _demo(args):
    import numpy as np

    from . import audio, metrics, report
    from .separation import DEFAULT_MODEL, get_separator, separate_file
    from .synthetic import synth_song
    if args.file:
        audio.check_samples(args.file)  # readable, and no NaN in it, before any work
    path = args.file or os.path.join(args.outdir, "demo_mixture.wav")
    with contextlib.ExitStack() as held:
        _holding(held, args.outdir)
        folder = _demo_outputs(args, path)  # checked once no one else writes there
        held.enter_context(new_folder(folder))
        written = held.enter_context(_removed_on_failure())
        method = "drnn" if os.path.isfile(DEFAULT_MODEL) else "rpca"
        if method != "drnn":
            _notice("no shipped model found: using the rpca baseline")
        separator = get_separator(method)
        if not args.file:
            mixture, vocals, accompaniment = synth_song(args.seconds, seed=args.seed)
            gain = 0.5 / np.max(np.abs(mixture))  # the level the song is written at
            vocals, accompaniment = vocals * gain, accompaniment * gain
            written.append(audio.save(path, gain * mixture, 16000))
            print(f"made a {args.seconds:g} s synthetic song: {path}")
        on_downmix = None if args.quiet else (lambda: _notice(
            "multi-channel input: one mask from the channels averaged to mono, applied to each"))
        with _bar(path, args.quiet) as bar:
            outs = separate_file(path, args.outdir, separator, subtype=args.subtype, bar=bar,
                                 on_downmix=on_downmix, on_clip=_clip_warning(path, args.subtype))
        written += outs
        print("\n".join(outs))
        mix, est_v, est_a = (audio.load(p)[0] for p in (path, *outs))
        scores = references = None
        if not args.file:  # the true sources are known: score the stems
            result = metrics.bss_eval(vocals, accompaniment, est_v, est_a, mix)
            scores = [[src, *(result[src][k] for k in ("NSDR", "SDR", "SIR", "SAR"))] for src in metrics.SOURCES]
            print(_score_lines(scores))
            references = [("vocals (true)", vocals, 16000), ("accompaniment (true)", accompaniment, 16000)]
        else:  # a user's song has no references: three panels
            vocals = accompaniment = None
        fig_path = os.path.join(args.outdir, "demo.png")
        fig = report.five_panel(mix, vocals, est_v, accompaniment, est_a, path=fig_path,
                                title=f"{os.path.basename(path)}: {separator.name}")
        written.append(fig_path)
        print(fig_path)
        if args.report:
            written.append(_song_page(args, path, folder, outs, separator.name,
                                      references=references, scores=scores, figure=fig))
            print(written[-1])


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
_MODEL_FLAGS = ("arch", "hidden", "layers", "context", "features", "feature_norm", "cell", "bidirectional",
                "n_fft", "hop_length", "window", "sample_rate")
_TRAIN_FLAGS = {"data": "data", "layout": "layout", "split": "split", "objective": "objective",
                "gamma": "gamma",
                "floor": "floor", "optimizer": "optimizer", "lr": "lr", "lr_decay": "lr_decay",
                "batch_size": "batch_size", "shift_step": "shift_step",
                "max_batches": "max_batches_per_epoch", "train_clips": "train_clips",
                "valid_clips": "valid_clips", "seed": "seed", "workers": "workers",
                "backend": "backend", "target": "target"}


def given_options(args, stages=None):
    """The training options the command line gives, a ``--config`` file's then the flags': a
    dict of :class:`~scratchnet.training.TrainConfig` fields, ``model`` holding the model
    options given.  ``--seq-len`` and ``--epochs`` make the first of the stages (the config
    file's, else ``stages``, else ``[[100, 10]]``) the one stage, its cap on batches kept."""
    from .training import parse_augment, parse_stages
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
        old = d.get("stages", stages or [[100, 10]])[0]
        d["stages"] = [[old[0] if args.seq_len is None else args.seq_len,
                        old[1] if args.epochs is None else args.epochs, *old[2:]]]
    return dict(d, model=model) if model else d


def train_config(args):
    """A :class:`~scratchnet.training.TrainConfig` from an optional ``--config`` file
    overridden by flags, checked."""
    from .models import make_config
    from .training import TrainConfig
    d = given_options(args)
    cfg = TrainConfig.from_dict(dict(d, model=make_config(**d.get("model", {})))).check()
    if not cfg.data:
        raise ScratchnetError("--data is required (the folder of MIR-1K clips or of tracks of stems)")
    return cfg


def cmd_train(args):
    """Train a new run, or resume one with the options given again (checked against its own)."""
    from .training import RunFolder, train
    if args.resume:
        given = given_options(args, RunFolder(args.out).load_config().stages)
    else:
        given = train_config(args)
    print(train(given, args.out, resume=args.resume, progress=not args.quiet))
    return 0


def cmd_models(args):
    """One line per shipped model."""
    from . import pretrained
    print("\n".join(pretrained.describe()))
    return 0


def cmd_ensemble(args):
    """Join trained models into one file that separates with their mean soft mask."""
    from . import pretrained
    from .models import Ensemble, load_model
    out = check_writable(args.out if args.out.endswith(".npz") else args.out + ".npz", "ensemble")
    paths = [pretrained.path_of(m) for m in args.models]
    for path in paths:
        if os.path.abspath(path) == os.path.abspath(out):
            raise ScratchnetError(f"{out} is one of the models: choose another --out")
    for existing in (out, out[:-4] + ".json"):
        if os.path.lexists(existing) and not args.force:
            raise ScratchnetError(f"{existing} already exists: use --force to replace it, or another --out")
    ensemble = Ensemble([load_model(p) for p in paths])
    ensemble.save(out, storage_dtype="float16" if args.float16 else None)
    print(f"{out}: ensemble of {len(paths)} models, {ensemble.n_params():,} parameters, "
          f"{os.path.getsize(out) / 1e6:.1f} MB")
    return 0


def cmd_sweep(args):
    from .training.sweep import load_sweep, run_sweep
    cfg = load_sweep(args.config)
    if args.jobs < 1:
        raise ScratchnetError(f"--jobs {args.jobs} must be at least 1")
    if not os.path.isdir(args.data):
        raise ScratchnetError(f"data folder {args.data!r} does not exist or is not a folder")
    out = make_folder(args.out or os.path.join("sweeps", cfg["name"]), "sweep folder")
    csv_path, fig_path = run_sweep(cfg, os.path.abspath(args.data), out, jobs=args.jobs,
                                   scheduler=args.scheduler)
    print(csv_path)
    print(fig_path)
    return 0
