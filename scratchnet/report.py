"""Figures and tables: the five-panel spectrogram, training curves, results tables.

Figures follow the papers: log-magnitude spectrograms with time in seconds and frequency in Hz
on one shared colour scale, so that a panel that is darker really holds less energy.
Every function returns the matplotlib figure and, given ``path``, also saves it through
:func:`scratchnet.files.atomic_write` (a temporary name, renamed when complete).
"""
import csv
import os

import numpy as np

from .errors import ScratchnetError
from .files import atomic_write, check_writable, make_folder
from .signal import HOP_LENGTH, N_FFT, SAMPLE_RATE, WINDOW, stft

#: Figure formats, chosen by the file's extension (none: PNG).
FIGURE_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg")

PANELS = ("mixture", "clean vocals", "recovered vocals", "clean accompaniment",
          "recovered accompaniment")


def _plt():
    import matplotlib
    if os.environ.get("MPLBACKEND") is None and not os.environ.get("DISPLAY"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def check_figure_path(path):
    """Refuse, before any computing, a figure path that could not be written.

    Its folder is created if needed; the extension must name one of :data:`FIGURE_FORMATS`.
    Returns the format.
    """
    fmt = os.path.splitext(os.fspath(path))[1].lower().lstrip(".") or "png"
    if fmt not in FIGURE_FORMATS:
        raise ScratchnetError(f"cannot write figure {os.fspath(path)!r}: its extension must be one "
                              f"of {', '.join('.' + f for f in FIGURE_FORMATS)}")
    make_folder(os.path.dirname(os.path.abspath(path)), "figure folder")
    check_writable(path, "figure")
    return fmt


def save_figure(fig, path, dpi=120):
    """Save ``fig`` to ``path`` atomically; its folder is created if needed."""
    fmt = check_figure_path(path)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=fmt, dpi=dpi, bbox_inches="tight")
    return path


def log_spectrogram(x, *, n_fft=N_FFT, hop_length=HOP_LENGTH, window=WINDOW, floor_db=-100.0):
    """20 log10 |STFT(x)| in dB, shape (F, T), floored at ``floor_db``."""
    mag = np.abs(stft(np.asarray(x, dtype=np.float64), n_fft=n_fft, hop_length=hop_length,
                      window=window))
    return np.maximum(20 * np.log10(np.maximum(mag, 1e-12)), floor_db)


def five_panel(mixture, vocals, est_vocals, accompaniment, est_accompaniment, *,
               sr=SAMPLE_RATE, title=None, path=None, dynamic_range=80.0, **stft_kw):
    """The course report's figure: mixture, clean and recovered vocals and accompaniment.

    Parameters
    ----------
    mixture, vocals, est_vocals, accompaniment, est_accompaniment : ndarray, shape (n,)
        Waveforms at ``sr``.  ``vocals`` and ``accompaniment`` may be None (a song without
        references): their panels are left out.
    dynamic_range : float
        dB shown below the loudest bin of all five panels (one colour scale for all).

    Examples
    --------
    >>> import numpy as np
    >>> from scratchnet.report import five_panel
    >>> t = np.arange(16000) / 16000
    >>> v, a = np.sin(2 * np.pi * 440 * t), 0.1 * np.random.default_rng(0).standard_normal(16000)
    >>> fig = five_panel(v + a, v, v, a, a, title="perfect separation")
    """
    plt = _plt()
    panels = [(sig, label) for sig, label in zip(
        (mixture, vocals, est_vocals, accompaniment, est_accompaniment), PANELS) if sig is not None]
    specs = [log_spectrogram(sig, **stft_kw) for sig, _ in panels]
    vmax = max(s.max() for s in specs)
    vmin = vmax - dynamic_range
    hop = stft_kw.get("hop_length", HOP_LENGTH)
    duration = specs[0].shape[1] * hop / sr
    extent = (0.0, duration, 0.0, sr / 2)
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.2 * len(panels)), sharex=True,
                             constrained_layout=True)
    for ax, spec, (_, label) in zip(axes, specs, panels):
        im = ax.imshow(spec, origin="lower", aspect="auto", extent=extent, vmin=vmin, vmax=vmax,
                       cmap="magma", interpolation="nearest")
        ax.set_title(label, fontsize=10)
        ax.set_ylabel("frequency (Hz)")
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(im, ax=axes, label="magnitude (dB)", shrink=0.6)
    if title:
        fig.suptitle(title)
    if path:
        save_figure(fig, path)
    return fig


def read_log(path):
    """A training log CSV as a dict of column name -> float array (empty cells are NaN)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows])
            for k in rows[0]}


def training_curves(log, *, title=None, path=None, boundaries=()):
    """Training loss and validation GNSDR against epoch, from :func:`read_log`'s dict.

    ``boundaries``: epochs after which a new run (a fine-tuning stage) took over, drawn as
    dotted lines.
    """
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    x = log.get("epoch", np.arange(len(next(iter(log.values())))))
    ax1.plot(x, log["train_loss"], marker="o")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")  # linear: the discriminative loss goes below zero
    ax1.grid(alpha=0.3)
    if "valid_gnsdr" in log and np.isfinite(log["valid_gnsdr"]).any():
        ax2.plot(x, log["valid_gnsdr"], marker="o", color="C1")
        best = int(np.nanargmax(log["valid_gnsdr"]))
        ax2.axvline(x[best], color="0.6", ls="--", lw=1, label=f"best: epoch {x[best]:g}")
        ax2.legend()
    for ax in (ax1, ax2):
        for b in boundaries:
            ax.axvline(b + 0.5, color="0.3", ls=":", lw=1)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation vocal GNSDR (dB)")
    ax2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    if path:
        save_figure(fig, path)
    return fig


def compare_curves(logs, labels, *, title=None, path=None, relative_loss=False):
    """Several runs side by side against the number of training frames seen.

    For comparisons at an equal budget (curriculum against plain training): the x axis is
    frames, not epochs, because the runs' epochs differ in size.  Where a run changes its
    sequence length (a new curriculum stage) its line carries a square marker.  Runs trained
    on different objectives have losses on different scales: ``relative_loss`` draws each
    loss divided by its first epoch's value.
    """
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    for i, (log, label) in enumerate(zip(logs, labels)):
        x = np.cumsum(log["frames"]) / 1e6
        if relative_loss:
            log = dict(log, train_loss=log["train_loss"] / log["train_loss"][0])
        ax1.plot(x, log["train_loss"], marker="o", color=f"C{i}", label=label)
        ax2.plot(x, log["valid_gnsdr"], marker="o", color=f"C{i}", label=label)
        change = np.flatnonzero(np.diff(log["seq_len"])) + 1  # first epoch of each new stage
        for ax, key in ((ax1, "train_loss"), (ax2, "valid_gnsdr")):
            ax.plot(x[change], log[key][change], "s", ms=9, mfc="none", color=f"C{i}")
    ax1.set_ylabel("training loss / first epoch's" if relative_loss else "training loss")
    ax2.set_ylabel("validation vocal GNSDR (dB)")
    for ax in (ax1, ax2):
        ax.set_xlabel("training frames (millions)")
        ax.grid(alpha=0.3)
    ax2.legend()
    if title:
        fig.suptitle(title)
    if path:
        save_figure(fig, path)
    return fig


def _score_table(summary, columns, note, counted):
    """Rows of ``summary[source][column]`` for vocals and accompaniment, then the count line."""
    lines = [f"{'source':<15}" + "".join(f"{c:>8}" for c in columns) + f"   ({note})"]
    for src in ("vocals", "accompaniment"):
        lines.append(f"{src:<15}" + "".join(f"{summary[src][c]:>8.2f}" for c in columns))
    lines.append(f"clips scored: {counted}" +
                 (f", failed: {summary['failed']}" if summary.get("failed") else ""))
    return "\n".join(lines)


def museval_table(summary):
    """The table of ``scratchnet evaluate --metric museval``: SiSEC's medians, as text."""
    return _score_table(summary, ("SDR", "ISR", "SIR", "SAR"),
                        "dB, BSS-EVAL v4: median over 1 s windows, then over tracks",
                        f"{summary['clips']} of {summary['tracks']} track(s)")


def summary_table(summary):
    """The evaluation table printed by ``scratchnet evaluate``, as text."""
    return _score_table(summary, ("GNSDR", "GSIR", "GSAR"), "dB, length-weighted", summary["clips"])
