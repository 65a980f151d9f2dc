"""The ``scratchnet`` command line: its parser and its one error boundary.

The commands (evaluate, separate, demo, figure, curves, train, sweep, models, ensemble) are carried out by
:mod:`scratchnet.commands`.

:func:`main` is the one error boundary.  A user's mistake (a missing or truncated file, an
unknown method, a folder with no clips, an output that cannot be written) ends with one line
on standard error and exit status 2, never a traceback; see :mod:`scratchnet.errors`.  A bug
keeps its traceback.  Ctrl-C ends with one line and status 130, SIGTERM with one line and
status 143, SIGHUP (the terminal closed) with one line and 129; each unwinds through
:func:`scratchnet.files.atomic_write`, which removes the file it was writing, so nothing is
left half-written.

This module imports only the standard library at load time, so ``scratchnet --help`` answers
at once; each command imports what it needs (NumPy, Numba, ...) when it runs.
"""
import argparse
import os
import shlex
import signal
import sys
import warnings

from . import __version__
from . import commands
from .errors import ScratchnetError

EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_BROKEN_PIPE = 2, 130, 143, 141
EXIT_HANGUP = 129  # 128 + SIGHUP, as for every signal

# The fixed sets of values of the options, literal here so that parsing the command line
# imports nothing heavy; tests/test_cli.py holds each equal to the tuple it copies.
METHODS = ("drnn", "irm", "ibm", "rpca")                 # separation.METHODS
SPLITS = ("huang", "amer", "course", "singer")                   # data.SPLITS
PARTS = ("train", "valid", "test")                       # the keys of data.split(...)
ARCHS = ("dnn", "drnn-1", "drnn-2", "drnn-3", "srnn", "hybrid", "unet")  # models.ARCHS
OBJECTIVES = ("mse", "kl", "is")                         # losses.LOSSES
OPTIMIZERS = ("sgd", "adagrad", "adadelta", "adam", "lbfgs")  # optimizers.OPTIMIZERS + lbfgs
BACKENDS = ("fast", "reference")                         # nn.BACKENDS
WINDOWS = ("hann", "sine", "boxcar")                     # signal.get_window's names
FEATURES = ("magnitude", "log1p")                        # models.FEATURES
FEATURE_NORMS = ("per_bin", "global")                    # models.config.FEATURE_NORMS
CELLS = ("relu", "gru", "lstm")                          # models.CELLS
AUDIO_FORMATS = ("wav", "flac")                          # audio.FORMATS
LAYOUTS = ("mir1k", "stems")                             # data.LAYOUTS
TARGETS = ("magnitude", "phase_sensitive")               # data.TARGETS
METRICS = ("bss_eval", "museval")                        # metrics.METRICS


# --------------------------------------------------------------------------- the parser
class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors in one line, as every other error."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


DATA_HELP = ("folder of MIR-1K clips (.wav or .flac), or of tracks of stems "
             "(<track>/vocals.wav + accompaniment.wav or drums/bass/other, as MUSDB18)")
LAYOUT_HELP = "the data folder's layout (default: told by its files)"


def _add_data_args(p, part=True):
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--layout", default=None, choices=LAYOUTS, help=LAYOUT_HELP)
    p.add_argument("--split", default=None, choices=SPLITS,
                   help="MIR-1K clip split (default huang); a stems folder is split by track")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the random splits")
    if part:
        p.add_argument("--part", default="test", choices=PARTS, help="part to score (default test)")
        p.add_argument("--limit", type=int, default=None, help="score only the first N clips")


def _add_sample_format(p):
    """--int24 / --float32: the stems' samples (16-bit by default)."""
    bits = p.add_mutually_exclusive_group()
    bits.add_argument("--int24", dest="subtype", action="store_const", const="PCM_24", default=None,
                      help="write 24-bit stems (default 16-bit)")
    bits.add_argument("--float32", dest="subtype", action="store_const", const="FLOAT",
                      help="write 32-bit float WAV stems: samples above full scale are kept, not "
                           "clipped, so the stems sum to a loud float input")


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="score a separator on MIR-1K with BSS-EVAL")
    p.add_argument("--method", default="drnn", choices=METHODS,
                   help="drnn (shipped model), irm, ibm (oracle masks) or rpca")
    p.add_argument("--model", default=None, help="a shipped model's name (scratchnet models) or a trained model's .npz")
    p.add_argument("--mask-power", type=float, default=None,
                   help="sharpen the model's mask at separation: |y_i|^p / sum_j |y_j|^p (default: the model's own)")
    _add_data_args(p)
    p.add_argument("--metric", default="bss_eval", choices=METRICS,
                   help="bss_eval: BSS-EVAL v3, length-weighted means (Huang's MIR-1K convention, "
                        "the default); museval: BSS-EVAL v4, medians of 1 s windows (MUSDB18's, SiSEC)")
    p.add_argument("--mixing", default="0db", choices=("0db", "raw"),
                   help="how a clip's two channels make the mixture: 0db, Huang et al.'s (each scaled "
                        "to unit norm, then summed; the default), or raw, SH-4stack's and "
                        "E-MRP-CNN's (the mean of the channels as recorded)")
    level = p.add_mutually_exclusive_group()
    level.add_argument("--gain", type=float, default=None, metavar="DB",
                       help="score the clips at this gain in dB from the mixtures (e.g. -40)")
    level.add_argument("--peak", type=float, default=None,
                       help="score each clip scaled so its mixture peaks at this level (e.g. 0.99)")
    p.add_argument("--json", default=None, help="write the scores to this JSON file")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="write a listening page DIR/index.html: every clip ranked by vocal SDR, "
                        "players for the best and the worst (their stems written into DIR)")
    p.add_argument("--force", action="store_true", help="replace an existing report")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="score the clips as tasks of a Dask scheduler (tcp://HOST:8786) instead of "
                        "local processes; the data folder must be visible to its workers (README)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=commands.cmd_evaluate)


def _add_separate(sub):
    p = sub.add_parser("separate", help="separate audio files into vocals and accompaniment")
    p.add_argument("files", nargs="+",
                   help="audio files (WAV, FLAC, OGG, Opus, MP3, AIFF, ...), or - for standard input")
    p.add_argument("-o", "--outdir", default="separated", help="output folder (default ./separated)")
    p.add_argument("--method", default="drnn", choices=METHODS,
                   help="drnn (default) or rpca; irm and ibm need the true sources (evaluate)")
    p.add_argument("--model", default=None, help="a shipped model's name (scratchnet models) or a trained model's .npz")
    p.add_argument("--mask-power", type=float, default=None,
                   help="sharpen the model's mask at separation: |y_i|^p / sum_j |y_j|^p (default: the model's own)")
    p.add_argument("--format", choices=AUDIO_FORMATS, default=None,
                   help="output format (default: flac for FLAC input, else wav)")
    _add_sample_format(p)
    p.add_argument("--mono", action="store_true",
                   help="average the channels and write mono stems (default: the input's channels)")
    p.add_argument("--force", action="store_true", help="replace existing outputs")
    p.add_argument("--report", action="store_true",
                   help="write a listening page, index.html, beside each song's stems")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no notices")
    p.set_defaults(func=commands.cmd_separate)


def _add_demo_figure_curves(sub):
    p = sub.add_parser("demo", help="separate a synthetic song (or FILE) with the shipped model")
    p.add_argument("file", nargs="?", default=None,
                   help="an audio file, or - for standard input (default: make a song)")
    p.add_argument("-o", "--outdir", default="demo", help="output folder (default ./demo)")
    p.add_argument("--seconds", type=float, default=12.0,
                   help="length of the synthetic song (1 to 600, default 12)")
    p.add_argument("--seed", type=int, default=0)
    _add_sample_format(p)
    p.add_argument("--force", action="store_true", help="replace existing outputs")
    p.add_argument("--report", action="store_true",
                   help="write a listening page, index.html, beside the stems")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no notices")
    p.set_defaults(func=commands.cmd_demo)

    p = sub.add_parser("figure", help="five-panel spectrogram figure of one clip")
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--layout", default=None, choices=LAYOUTS, help=LAYOUT_HELP)
    p.add_argument("--clip", required=True, help="clip name, e.g. Ani_1_01 (stems: <track>@<start>s)")
    p.add_argument("--method", default="drnn", choices=METHODS, help="separator (default drnn)")
    p.add_argument("--model", default=None, help="a shipped model's name (scratchnet models) or a trained model's .npz")
    p.add_argument("--mask-power", type=float, default=None,
                   help="sharpen the model's mask at separation: |y_i|^p / sum_j |y_j|^p (default: the model's own)")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--title", default=None, help="figure title (default: clip and method)")
    p.set_defaults(func=commands.cmd_figure)

    p = sub.add_parser("curves", help="training loss and validation GNSDR of a run, or runs compared")
    p.add_argument("runs", nargs="+", help="run folder(s) holding log.csv; later ones continue earlier")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--title", default=None)
    p.add_argument("--compare", action="store_true",
                   help="draw the runs as separate lines against frames seen (equal-budget comparisons)")
    p.add_argument("--labels", nargs="+", default=None, help="with --compare: one legend label per run")
    p.set_defaults(func=commands.cmd_curves)


def _add_train(sub):
    p = sub.add_parser("train", help="train a separation network")
    p.add_argument("--config", default=None, help="JSON file of options (command-line flags win)")
    p.add_argument("--data", default=None, help=DATA_HELP)
    p.add_argument("--layout", default=None, choices=LAYOUTS, help=LAYOUT_HELP)
    p.add_argument("--out", required=True, help="run folder (runs/NAME)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (its options)")
    p.add_argument("--model", dest="arch", default=None, choices=ARCHS, help="architecture")
    p.add_argument("--hidden", type=int, default=None, help="hidden units (Huang: 1000)")
    p.add_argument("--context", type=int, default=None, help="context frames each side (1 = 3 frames)")
    p.add_argument("--features", default=None, choices=FEATURES, help="network input")
    p.add_argument("--feature-norm", default=None, choices=FEATURE_NORMS,
                   help="input normalisation: each bin to zero mean and unit deviation (per_bin, "
                        "the default) or one scale for all bins (global, Huang's raw magnitudes)")
    p.add_argument("--layers", type=int, default=None, help="hidden layers (Huang: 3)")
    p.add_argument("--cell", default=None, choices=CELLS, help="recurrent cell (default relu, Huang's)")
    p.add_argument("--bidirectional", action="store_true", default=None,
                   help="a second cell reads each sequence backwards (doubles the layer's output)")
    p.add_argument("--n-fft", type=int, default=None, help="STFT frame length (default 1024)")
    p.add_argument("--hop-length", type=int, default=None, help="STFT hop (default 512)")
    p.add_argument("--window", default=None, choices=WINDOWS, help="STFT window (default sine)")
    p.add_argument("--sample-rate", type=int, default=None,
                   help="the rate the network runs at, at most 16000 (default 16000; SH-4stack: 8000)")
    p.add_argument("--split", default=None, choices=SPLITS)
    p.add_argument("--objective", default=None, choices=OBJECTIVES)
    p.add_argument("--gamma", type=float, default=None, help="discriminative weight (0 = off)")
    p.add_argument("--floor", type=float, default=None,
                   help="kl/is floor on target and estimate (default: the loss's own)")
    p.add_argument("--optimizer", default=None, choices=OPTIMIZERS)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--lr-decay", type=float, default=None, help="lr factor per epoch (default 1)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seq-len", type=int, default=None, help="frames per training sequence")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--curriculum", default=None, help="stages seq_len:epochs, e.g. 100:2,400:3")
    p.add_argument("--shift-step", type=int, default=None, help="circular-shift step in samples (0 = off)")
    p.add_argument("--max-batches", type=int, default=None, help="cap batches per epoch")
    p.add_argument("--train-clips", type=int, default=None, help="use only the first N training clips")
    p.add_argument("--valid-clips", type=int, default=None,
                   help="clips (stems: tracks) held out for validation when the split has none (default 25)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--augment", default=None,
                   help="remix/pitch/gain/eq augmentation: on, off, or remix=0.5,pitch=0.5,semitones=2,gain_db=3,eq=0,eq_db=6")
    p.add_argument("--target", default=None, choices=TARGETS,
                   help="the sources' training targets: magnitude (default, Huang's) or phase_sensitive "
                        "(each source's part along the mixture's phase)")
    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help="fast (Numba kernels, default) or reference (the readable NumPy code)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=commands.cmd_train)

    p = sub.add_parser("sweep", help="run a grid of trainings from a config file")
    p.add_argument("config", help="sweep config (JSON): base options, grid, evaluation")
    p.add_argument("--data", required=True, help="folder of MIR-1K clips")
    p.add_argument("--out", default=None, help="sweep folder (default sweeps/<name>)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the grid points as tasks of a Dask scheduler (tcp://HOST:8786) instead "
                        "of --jobs local processes; data and sweep folders must be visible to its workers")
    p.set_defaults(func=commands.cmd_sweep)


def build_parser():
    parser = Parser(prog="scratchnet",
                    description="Singing-voice separation with hand-written backprop.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_evaluate(sub)
    _add_separate(sub)
    _add_demo_figure_curves(sub)
    _add_train(sub)
    p = sub.add_parser("models", help="list the shipped models")
    p.set_defaults(func=commands.cmd_models)
    p = sub.add_parser("ensemble", help="join trained models into one that separates with their mean mask")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="shipped model names or .npz files (scratchnet train's best.npz), same STFT")
    p.add_argument("-o", "--out", required=True, help="the ensemble's .npz file")
    p.add_argument("--float16", action="store_true", help="store the weights as float16 (half the size)")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=commands.cmd_ensemble)
    return parser


# --------------------------------------------------------------------------- the boundary
def limit_blas_threads():
    """One BLAS thread per process unless the user chose otherwise (``SCRATCHNET_THREADS``).

    Evaluation runs one worker process per core, and a training job often shares a small
    machine with another: threads of several pools (NumPy's OpenBLAS, SciPy's, other
    processes') then spin against each other -- DRNN-2 training once ran 5 to 15 times slower
    with two threads than with one on 2 busy cores (bench/RESULTS.md).  With
    ``SCRATCHNET_THREADS=2`` BLAS and the kernels (nn/threads.py) both use two threads, in
    turns.  Must run before NumPy is imported.
    """
    n = os.environ.get("SCRATCHNET_THREADS", "1")
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, n)
    # OpenBLAS's threads spin for about 2^28 cycles after each product, waiting for the next
    # one; the kernels' threads (nn/threads.py) would then share the cores with spinning
    # threads: a recurrence ran no faster on 2 threads than on 1.  2^4 cycles: they sleep at once.
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


def keep_freed_memory(pad=256 << 20, *, no_mmap=False):
    """Let glibc's malloc keep ``pad`` bytes of freed memory at the top of its heap (M_TOP_PAD).

    A training step frees and then allocates again the same hundred-odd MB of arrays (each
    layer's outputs, caches and gradients).  Given back to the system after each step, every
    page was faulted in and zeroed again on the next: 10-15 % of a DRNN-2 step on 2 threads
    (bench/RESULTS.md).  Process-wide, so set here at the command's start (and by the bench's
    worker), not by the library.  Elsewhere than glibc, nothing.

    ``no_mmap`` (M_MMAP_MAX = 0, M_TRIM_THRESHOLD at its largest) serves even the blocks above
    32 MB from the heap and never gives freed memory back: for a short command that makes
    and drops the same arrays chunk after chunk (``separate`` of a song at 44.1 kHz: 156 000
    page faults fell to 64 000, 0.3 s of 5), not for a long-lived process, whose memory it
    would keep at its peak.
    """
    try:
        import ctypes
        mallopt = ctypes.CDLL("libc.so.6").mallopt
        mallopt(-2, int(pad))  # M_TOP_PAD
        if no_mmap:
            mallopt(-4, 0)  # M_MMAP_MAX
            mallopt(-1, 2 ** 31 - 1)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised as an exception so that every ``finally`` (atomic writes) runs."""

    def __init__(self, signum=signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum


#: the signals :func:`_on_signal` has raised during the present :func:`main` call
_received = []

#: each handled signal's word and exit status
_ENDINGS = {signal.SIGINT: ("interrupted", EXIT_INTERRUPTED),
            signal.SIGTERM: ("terminated", EXIT_TERMINATED)}
if hasattr(signal, "SIGHUP"):  # not on Windows
    _ENDINGS[signal.SIGHUP] = ("hung up", EXIT_HANGUP)


def _inside_callback(frame):
    """True while Python code runs as a C library's callback (llvmlite's object cache, when
    Numba loads a kernel): an exception raised there is printed and dropped by ctypes."""
    while frame is not None:
        if frame.f_code.co_filename.startswith(_CALLBACK_DIRS):
            return True
        frame = frame.f_back
    return False


#: where the C callbacks that swallow exceptions live (llvmlite's bindings)
_CALLBACK_DIRS = tuple(os.path.join(p, "llvmlite") for p in sys.path if p)


def _on_signal(signum, frame):
    if _inside_callback(frame):
        # raising here would print a traceback and lose the signal: send it again shortly,
        # when the callback has returned
        import threading
        threading.Timer(0.02, os.kill, (os.getpid(), signum)).start()
        return
    _received.append(signum)
    raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)


def _install(handlers):
    """Set the handlers of the signals of :data:`_ENDINGS` (one for all, or a dict); returns
    the old ones.  A SIGHUP that is ignored (``nohup``) stays ignored.

    Outside the main thread (main() called from a thread) signals cannot be handled: nothing.
    """
    if not isinstance(handlers, dict):
        handlers = {s: handlers for s in _ENDINGS if s in (signal.SIGINT, signal.SIGTERM)
                    or signal.getsignal(s) is not signal.SIG_IGN}
    try:
        return {s: signal.signal(s, h) for s, h in handlers.items()}
    except ValueError:
        return {}


def _signal_behind(error):
    """The signal (SIGINT, SIGTERM, SIGHUP) behind ``error``: if it is a KeyboardInterrupt or
    Terminated, was raised while handling one, or ended the command after :func:`_on_signal`
    raised one; else None.

    A signal that lands inside C code calling back into Python comes out as another
    exception: a ``SystemError`` whose context is the KeyboardInterrupt (Numba's dispatcher
    loading a cached kernel), or an ``ImportError`` that has lost it (NumPy's C extension
    importing ``datetime``), hence the record of the signals raised.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return signal.SIGINT
        if isinstance(error, Terminated):
            return error.signum
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return _received[-1] if _received else None


def _command_name(argv):
    """The subcommand named in ``argv``, for messages printed before parsing is done."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv=None):
    """Run one command; returns the exit status (0, 2 for a user's mistake, 129, 130, 143)."""
    # the program itself (not a caller's process) separating one song keeps its freed memory
    no_mmap = argv is None and _command_name(sys.argv[1:]) in ("separate", "demo")
    argv = sys.argv[1:] if argv is None else list(argv)
    _received.clear()
    old = _install(_on_signal)
    name = " ".join(filter(None, ["scratchnet", _command_name(argv)]))
    try:
        limit_blas_threads()
        keep_freed_memory(no_mmap=no_mmap)
        args = build_parser().parse_args(argv)
        args.command_line = shlex.join(["scratchnet", *argv])  # for the pages that say what made them
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="mir_eval")
        return args.func(args) or 0
    except BaseException as e:
        signalled = _signal_behind(e)
        if signalled is None and isinstance(e, ScratchnetError):
            message = " ".join(str(e).splitlines())  # one line, whatever the message holds
            print(f"{name}: error: {message}", file=sys.stderr)
            return EXIT_USAGE
        if signalled is None and isinstance(e, BrokenPipeError):  # `scratchnet ... | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
            return EXIT_BROKEN_PIPE
        if signalled is None:
            raise  # a bug (or argparse's exit): its traceback is the report
        _install(signal.SIG_IGN)  # the clean-up has run; a second signal must not cut the line
        word, status = _ENDINGS[signalled]
        try:
            print(f"{name}: {word}", file=sys.stderr)
        except OSError:  # the terminal that hung up is gone
            pass
        return status
    finally:
        _install(old)


if __name__ == "__main__":
    sys.exit(main())
