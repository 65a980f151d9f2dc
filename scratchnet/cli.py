"""The ``scratchnet`` command: evaluate, separate, figure, train, sweep.

A user's mistake (a missing file, an unknown method, a folder with no clips) ends with one
line on standard error and exit status 2, never a traceback; see :mod:`scratchnet.errors`.
"""
import argparse
import json
import os
import sys
import warnings

from .errors import ScratchnetError

EXIT_USAGE = 2


def write_json(path, obj):
    """Write ``obj`` as JSON to ``path`` atomically (temporary name, then rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ScratchnetError(f"cannot write {path!r}: folder {folder!r} does not exist")
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, allow_nan=True)
        os.replace(tmp, path)
    except OSError as e:
        raise ScratchnetError(f"cannot write {path!r}: {e.strerror}") from None


def _clips_for(args):
    from . import data
    parts = data.split(data.find_clips(args.data), args.split, seed=args.split_seed)
    if args.part not in parts:
        raise ScratchnetError(f"split {args.split!r} has no part {args.part!r}")
    clips = parts[args.part]
    print(f"split {args.split}: {data.describe_split(parts)}", file=sys.stderr)
    if not clips:
        raise ScratchnetError(f"part {args.part!r} of split {args.split!r} has no clips in {args.data!r}")
    if args.limit:
        clips = clips[: args.limit]
    return clips


def cmd_evaluate(args):
    from . import metrics, report
    from .separation import get_separator
    separator = get_separator(args.method, model=args.model)
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
    from .separation import get_separator, separate_file
    if args.method in ("irm", "ibm"):
        raise ScratchnetError(f"method {args.method!r} needs the true sources: use it with evaluate")
    separator = get_separator(args.method, model=args.model)
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
    clips = {c.name: c for c in data.find_clips(args.data)}
    if args.clip not in clips:
        raise ScratchnetError(f"clip {args.clip!r} is not in {args.data!r}")
    separator = get_separator(args.method, model=args.model)
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
    os.makedirs(args.outdir, exist_ok=True)
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


def cmd_curves(args):
    """Training curves of one run, or of several runs that continue each other, end to end."""
    import numpy as np
    from . import report
    logs = []
    for run in args.runs:
        log_path = os.path.join(run, "log.csv")
        if not os.path.isfile(log_path):
            raise ScratchnetError(f"{run!r} holds no training log (expected {log_path})")
        log = report.read_log(log_path)
        if not log:
            raise ScratchnetError(f"{log_path} has no epochs yet")
        if logs and not args.compare:  # number a continuation's epochs after those before it
            log["epoch"] = log["epoch"] + logs[-1]["epoch"][-1]
        logs.append(log)
    if args.compare:
        labels = args.labels or [os.path.basename(os.path.normpath(r)) for r in args.runs]
        if len(labels) != len(logs):
            raise ScratchnetError(f"--labels names {len(labels)} runs, but {len(logs)} were given")
        objectives = set()
        for run in args.runs:  # losses of different objectives are drawn relative to their start
            try:
                with open(os.path.join(run, "config.json")) as f:
                    objectives.add(json.load(f).get("objective"))
            except (OSError, ValueError):
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


def cmd_train(args):
    from .training import train_from_args
    return train_from_args(args)


def cmd_sweep(args):
    from .sweep import sweep_from_args
    return sweep_from_args(args)


def _add_data_args(p, part=True):
    p.add_argument("--data", required=True, help="folder of MIR-1K clips (.wav or .flac)")
    p.add_argument("--split", default="huang", help="huang, amer or course (default huang)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the random splits")
    if part:
        p.add_argument("--part", default="test", help="train, valid or test (default test)")
        p.add_argument("--limit", type=int, default=None, help="score only the first N clips")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="scratchnet", description="Singing-voice separation with hand-written backprop.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("evaluate", help="score a separator on MIR-1K with BSS-EVAL")
    p.add_argument("--method", default="drnn", help="drnn (shipped model), irm, ibm or rpca")
    p.add_argument("--model", default=None, help="path of a trained model (.npz)")
    _add_data_args(p)
    p.add_argument("--json", default=None, help="write the scores to this JSON file")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("separate", help="separate audio files into vocals and accompaniment")
    p.add_argument("files", nargs="+", help="audio files (WAV, FLAC, OGG, ...)")
    p.add_argument("-o", "--outdir", default="separated", help="output folder (default ./separated)")
    p.add_argument("--method", default="drnn", help="drnn (default) or rpca")
    p.add_argument("--model", default=None, help="path of a trained model (.npz)")
    p.add_argument("--format", choices=("wav", "flac"), default=None,
                   help="output format (default: flac for FLAC input, else wav)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_separate)

    p = sub.add_parser("demo", help="separate a synthetic song (or FILE) with the shipped model")
    p.add_argument("file", nargs="?", default=None, help="an audio file (default: make a song)")
    p.add_argument("-o", "--outdir", default="demo", help="output folder (default ./demo)")
    p.add_argument("--seconds", type=float, default=12.0, help="length of the synthetic song")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("figure", help="five-panel spectrogram figure of one clip")
    p.add_argument("--data", required=True, help="folder of MIR-1K clips")
    p.add_argument("--clip", required=True, help="clip name, e.g. Ani_1_01")
    p.add_argument("--method", default="drnn", help="drnn, irm, ibm or rpca")
    p.add_argument("--model", default=None, help="path of a trained model (.npz)")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--title", default=None, help="figure title (default: clip and method)")
    p.set_defaults(func=cmd_figure)

    p = sub.add_parser("curves", help="training loss and validation GNSDR of a run, or runs compared")
    p.add_argument("runs", nargs="+", help="run folder(s) holding log.csv; later ones continue earlier")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--title", default=None)
    p.add_argument("--compare", action="store_true",
                   help="draw the runs as separate lines against frames seen (equal-budget comparisons)")
    p.add_argument("--labels", nargs="+", default=None, help="with --compare: one legend label per run")
    p.set_defaults(func=cmd_curves)

    from .sweep import add_sweep_arguments
    from .training import add_train_arguments
    p = sub.add_parser("train", help="train a separation network")
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("sweep", help="run a grid of trainings from a config file")
    add_sweep_arguments(p)
    p.set_defaults(func=cmd_sweep)
    return parser


def limit_blas_threads():
    """One BLAS thread per process unless the user chose otherwise (``SCRATCHNET_THREADS``).

    The recurrence makes one small GEMM per time step, through NumPy's OpenBLAS and, inside
    Numba kernels, SciPy's: two thread pools that spin against each other (and against the
    evaluation's worker processes) on a small machine: DRNN-2 training ran 5 to 15 times
    slower with two threads than with one on 2 busy cores (bench/RESULTS.md).  Must run
    before NumPy is imported.
    """
    n = os.environ.get("SCRATCHNET_THREADS", "1")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, n)


def main(argv=None):
    limit_blas_threads()
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="mir_eval")
    try:
        return args.func(args) or 0
    except ScratchnetError as e:
        print(f"scratchnet {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"scratchnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
