"""BSS-EVAL scores (SDR, SIR, SAR, NSDR) from mir_eval, their length-weighted means, and a
parallel evaluation loop over clips.

Huang et al. (2014) report, for vocals and for accompaniment, the normalised SDR

    NSDR(v_hat, v, x) = SDR(v_hat, v) - SDR(x, v),

the improvement of the estimate ``v_hat`` over the unprocessed mixture ``x``, and its mean over
clips weighted by clip length,

    GNSDR = sum_i l_i NSDR_i / sum_i l_i,

with GSIR and GSAR defined likewise.  The scores themselves come from
``mir_eval.separation.bss_eval_sources`` (the BSS-EVAL v3 decomposition with a 512-tap
distortion filter), with the references in the order ``[vocals, accompaniment]`` and no
permutation search: each estimate is scored against the source it claims to be.
"""
import multiprocessing
import signal
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed

import mir_eval
import numpy as np
from tqdm import tqdm

from .errors import ScratchnetError

SOURCES = ("vocals", "accompaniment")
SCORES = ("SDR", "SIR", "SAR", "NSDR")


def _bss_eval_sources(refs, ests):
    """``mir_eval.separation.bss_eval_sources`` without its deprecation warning."""
    with warnings.catch_warnings():
        # mir_eval 0.8 deprecates bss_eval_sources (FutureWarning); it is still the v3 metric
        warnings.filterwarnings("ignore", category=FutureWarning,
                                message=r"mir_eval\.separation\.bss_eval_sources")
        sdr, sir, sar, _ = mir_eval.separation.bss_eval_sources(refs, ests, compute_permutation=False)
    return sdr, sir, sar


def bss_eval(vocals, accompaniment, est_vocals, est_accompaniment, mixture):
    """Score one clip's two estimates against its references.

    Parameters
    ----------
    vocals, accompaniment : ndarray, shape (n,)
        Reference sources.
    est_vocals, est_accompaniment : ndarray, shape (n,)
        Estimates of the same length.
    mixture : ndarray, shape (n,)
        The unprocessed mixture, the baseline of NSDR.

    Returns
    -------
    dict
        ``{"length": n, "vocals": {"SDR", "SIR", "SAR", "NSDR"}, "accompaniment": {...}}``
        with plain floats in dB.  If mir_eval rejects the clip (a silent estimate or
        reference makes BSS-EVAL's projection singular), every score is NaN and an
        ``"error"`` key holds mir_eval's message.

    Notes
    -----
    ``NSDR_j = SDR(e_j, s_j) - SDR(x, s_j)``: the second term scores the mixture ``x`` itself
    as the estimate of source ``j``.
    """
    signals = dict(vocals=vocals, accompaniment=accompaniment, est_vocals=est_vocals,
                   est_accompaniment=est_accompaniment, mixture=mixture)
    signals = {k: np.asarray(v, dtype=np.float64) for k, v in signals.items()}
    for k, v in signals.items():
        if v.ndim != 1:
            raise ScratchnetError(f"{k} must be a mono signal of shape (n,), got shape {v.shape}")
    n = signals["vocals"].shape[0]
    for k, v in signals.items():
        if v.shape[0] != n:
            raise ScratchnetError(f"{k} has {v.shape[0]} samples but vocals has {n}: lengths must match")

    refs = np.stack([signals["vocals"], signals["accompaniment"]])              # 2,n
    ests = np.stack([signals["est_vocals"], signals["est_accompaniment"]])      # 2,n
    result = {"length": n}
    try:
        sdr, sir, sar = _bss_eval_sources(refs, ests)
        sdr_mix, _, _ = _bss_eval_sources(refs, np.stack([signals["mixture"]] * 2))
    except ValueError as err:
        result["error"] = str(err)
        sdr = sir = sar = sdr_mix = np.full(2, np.nan)
    for j, source in enumerate(SOURCES):
        result[source] = {"SDR": float(sdr[j]), "SIR": float(sir[j]), "SAR": float(sar[j]),
                          "NSDR": float(sdr[j] - sdr_mix[j])}
    return result


def aggregate(results):
    """Length-weighted means of per-clip scores, over the clips that were scored.

    Parameters
    ----------
    results : list of dict
        As returned by :func:`bss_eval` or :func:`evaluate`.

    Returns
    -------
    dict
        ``{"clips": n_scored, "failed": n_failed, "vocals": {"GNSDR", "GSIR", "GSAR", "GSDR",
        "mean_NSDR"}, "accompaniment": {...}}``; NaN where no clip was scored.

    Notes
    -----
    ``G<score> = sum_i l_i <score>_i / sum_i l_i`` over clips ``i`` with no ``"error"``,
    ``l_i`` the clip's length in samples; ``mean_NSDR`` is the unweighted mean.
    """
    ok = [r for r in results if "error" not in r]
    summary = {"clips": len(ok), "failed": len(results) - len(ok)}
    lengths = np.array([r["length"] for r in ok], dtype=np.float64)   # n_scored
    for source in SOURCES:
        table = {s: np.array([r[source][s] for r in ok], dtype=np.float64) for s in SCORES}  # n_scored each
        if ok:
            stats = {f"G{s}": float(lengths @ table[s] / lengths.sum()) for s in ("NSDR", "SIR", "SAR", "SDR")}
            stats["mean_NSDR"] = float(np.mean(table["NSDR"]))
        else:
            stats = dict.fromkeys(("GNSDR", "GSIR", "GSAR", "GSDR", "mean_NSDR"), float("nan"))
        summary[source] = stats
    return summary


# --------------------------------------------------------------------------- BSS-EVAL v4
#: The metrics ``evaluate`` offers: Huang's (BSS-EVAL v3, length-weighted means over clips)
#: and MUSDB18's (BSS-EVAL v4 on one-second windows, medians, as SiSEC reports).
METRICS = ("bss_eval", "museval")
V4_SCORES = ("SDR", "ISR", "SIR", "SAR")


def museval_scores(vocals, accompaniment, est_vocals, est_accompaniment, sr=16000):
    """One clip's framewise BSS-EVAL v4 scores (:mod:`scratchnet.bsseval4`, one-second
    windows, no overlap): ``{"length": n, "vocals": {"SDR": [...], ...}, "accompaniment": ...}``,
    one number per window (None where a source is silent in it)."""
    from .bsseval4 import bss_eval_v4
    refs = np.stack([np.asarray(vocals, np.float64), np.asarray(accompaniment, np.float64)])
    ests = np.stack([np.asarray(est_vocals, np.float64), np.asarray(est_accompaniment, np.float64)])
    frames = bss_eval_v4(refs, ests, window=int(sr))
    result = {"length": int(refs.shape[1])}
    for j, source in enumerate(SOURCES):
        result[source] = {k: [None if np.isnan(x) else float(x) for x in frames[k][j]] for k in V4_SCORES}
    return result


def track_of(name):
    """The track a clip belongs to: a stems excerpt ``<track>@<start>s`` is part of its track;
    a MIR-1K clip is a track of its own."""
    return name.rsplit("@", 1)[0]


def aggregate_museval(results):
    """SiSEC's summary of framewise v4 scores: for each source and score, the median over a
    track's windows (all its excerpts' windows pooled), then the median over tracks.

    Returns ``{"clips", "failed", "tracks", "vocals": {"SDR", "ISR", "SIR", "SAR"}, ...}``
    (NaN where no window was scored).
    """
    ok = [r for r in results if "error" not in r]
    tracks = {}
    for r in ok:
        tracks.setdefault(track_of(r["clip"]), []).append(r)
    summary = {"clips": len(ok), "failed": len(results) - len(ok), "tracks": len(tracks)}
    for source in SOURCES:
        summary[source] = {}
        for k in V4_SCORES:
            medians = []
            for rs in tracks.values():
                xs = [x for r in rs for x in r[source][k] if x is not None and np.isfinite(x)]
                if xs:
                    medians.append(float(np.median(xs)))
            summary[source][k] = float(np.median(medians)) if medians else float("nan")
    return summary


def _score_clip(separator, clip, load, metric="bss_eval"):
    """Load one clip, separate its mixture and score it: the task each worker runs."""
    mixture, vocals, accompaniment = load(clip)
    references = (vocals, accompaniment) if separator.needs_references else None
    est_vocals, est_accompaniment = separator.separate(mixture, references=references)
    result = {"clip": getattr(clip, "name", str(clip))}
    if metric == "museval":
        result.update(museval_scores(vocals, accompaniment, est_vocals, est_accompaniment))
    else:
        result.update(bss_eval(vocals, accompaniment, est_vocals, est_accompaniment, mixture))
    return result


def _worker_signals():
    """In each worker: Ctrl-C is the parent's to handle (the terminal sends it to the whole
    process group, and a worker that raised too would print a traceback of its own); SIGTERM
    ends the worker at once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "SIGHUP"):  # a hang-up ends the parent (cli.py) and its workers with it
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


def evaluate(separator, clips, *, workers=2, progress=True, load=None, scheduler=None,
             metric="bss_eval"):
    """Separate and score every clip, in parallel worker processes or on a Dask cluster.

    Parameters
    ----------
    separator : object
        Has ``needs_references`` (bool) and ``separate(mixture, references=None) ->
        (vocals, accompaniment)``; ``references=(vocals, accompaniment)`` is passed only when
        ``needs_references`` (the oracle masks).  Must be picklable when ``workers > 1``.
    clips : sequence
        Clip objects with a ``.name``, as :mod:`scratchnet.data` lists them.
    workers : int
        Worker processes; ``1`` scores in this process, without a pool.
    progress : bool
        Show a tqdm progress bar.
    load : callable, optional
        ``load(clip) -> (mixture, vocals, accompaniment)``; defaults to
        :func:`scratchnet.data.load_clip`.  Must be picklable (a module-level function) when
        ``workers > 1``.
    metric : {"bss_eval", "museval"}
        BSS-EVAL v3 of the whole clip (:func:`bss_eval`; aggregate with :func:`aggregate`),
        or framewise v4 (:func:`museval_scores`; aggregate with :func:`aggregate_museval`).
    scheduler : str, optional
        The address of a Dask scheduler (``tcp://HOST:8786``): every clip becomes one task
        there, ``workers`` is ignored, and the clips' files must be visible to the workers
        at the same paths (:mod:`scratchnet.cluster`).  The scores are those of a local run.

    Returns
    -------
    list of dict
        One :func:`bss_eval` result per clip, in the order of ``clips``, each with its
        ``"clip"`` name added.

    Notes
    -----
    Workers are forked where the platform allows it (no re-import of the package per worker);
    BSS-EVAL dominates the time: two ``bss_eval_sources`` calls per clip, about half a second
    per MIR-1K clip on one core.
    """
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ScratchnetError(f"{workers=} must be a positive integer")
    if metric not in METRICS:
        raise ScratchnetError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")
    if load is None:
        from . import data                          # lazily: data imports this package's I/O
        load = data.load_clip
    clips = list(clips)
    results = [None] * len(clips)
    bar = tqdm(total=len(clips), desc="bss_eval", unit="clip",
               disable=None if progress else True)  # None: on a terminal only (a log keeps every redraw)
    try:
        if scheduler is not None:
            _evaluate_on_cluster(separator, clips, load, scheduler, results, bar, metric)
        elif workers == 1:
            for i, clip in enumerate(clips):
                results[i] = _score_clip(separator, clip, load, metric)
                bar.update()
        else:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
            pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_signals,
                                       mp_context=multiprocessing.get_context(method))
            try:
                futures = {pool.submit(_score_clip, separator, clip, load, metric): i
                           for i, clip in enumerate(clips)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
            except BaseException:
                _stop_workers(pool)  # a failed clip, Ctrl-C or SIGTERM stops the rest at once
                raise
            finally:
                pool.shutdown(cancel_futures=True)
    finally:
        bar.close()
    return results


def _evaluate_on_cluster(separator, clips, load, address, results, bar, metric):
    """One task per clip on the scheduler at ``address``; the separator is sent once to each worker."""
    from distributed import as_completed as completed

    from .cluster import connect
    with connect(address) as client:  # leaving it (done, failed, Ctrl-C) drops the clips not started
        shared = client.scatter(separator, broadcast=True, hash=False)  # one copy per worker, not per clip
        futures = {client.submit(_score_clip, shared, clip, load, metric, pure=False): i for i, clip in enumerate(clips)}
        for future in completed(futures):
            try:
                results[futures[future]] = future.result()
            except Exception as e:  # noqa: BLE001 -- e.g. KilledWorker: workers died on this clip
                name = getattr(clips[futures[future]], "name", clips[futures[future]])
                raise ScratchnetError(f"clip {name} failed on the cluster: {type(e).__name__}: {e}") from None
            bar.update()


def _stop_workers(pool):
    """Terminate a pool's worker processes now, rather than after their current clip."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
