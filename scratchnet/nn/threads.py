"""The batch's sequences on several threads: how the kernels use a second core.

BLAS spreads every large product (``x W`` over all frames of a batch) over its threads by
itself.  The kernels written here do not: a recurrence is a loop over time that cannot be
split, and one step is far too small to share (a barrier per step cost more than the step,
bench/RESULTS.md).  But the N sequences of a batch never meet inside a layer: sequence n's
states depend on sequence n's inputs only.  So a kernel runs on a *slice* of the batch,
``[n0, n1)``, and :func:`over_slices` hands one slice to each thread:

    threads = 2, N = 10:   thread 0 runs sequences 0-4,  thread 1 runs sequences 5-9

Every sequence is computed by the same code, in the same order, whatever the number of
threads, so the kernels give the same numbers, to the bit, on 1 or 2 threads (sums *over*
the batch, the loss and the gradient norm, are taken in fixed chunks for the same reason).
BLAS's own products are another matter: OpenBLAS on 2 threads rounds differently from
OpenBLAS on 1.  The kernels are compiled with
``nogil=True``: while one runs, Python's lock is free and the other thread runs too.

The number of threads is :func:`get_threads`: ``SCRATCHNET_THREADS`` if set, else the BLAS
thread count (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``), else 1 -- the same count as
BLAS, so the two take turns on the same cores instead of fighting over them.
"""
import os
from concurrent.futures import ThreadPoolExecutor

from ..errors import ScratchnetError

_state = {"threads": None, "pool": None}

# Elements per chunk of a sum over a whole array (the loss, the gradient norm): such sums are
# taken chunk by chunk in float64, a stretch of chunks per thread, then the chunks' sums in
# order -- the same numbers whatever the thread count.  Also the shortest stretch of an
# element-wise kernel (Adam's update) worth a second thread.
CHUNK = 1 << 16


def _from_environment():
    for var in ("SCRATCHNET_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.strip().isdigit() and int(value) > 0:
            return int(value)
    return 1


def get_threads():
    """The number of threads the kernels split a batch over (read from the environment once)."""
    if _state["threads"] is None:
        _state["threads"] = _from_environment()
    return _state["threads"]


def set_threads(n):
    """Split batches over ``n`` threads from now on (BLAS's own count is not changed); returns the old count."""
    if not (isinstance(n, int) and n >= 1):
        raise ScratchnetError(f"threads must be a positive integer, got {n!r}")
    previous, _state["threads"] = get_threads(), n
    return previous


def _pool(workers):
    pool = _state["pool"]
    if pool is None or pool._max_workers < workers:
        if pool is not None:
            pool.shutdown(wait=True)
        pool = _state["pool"] = ThreadPoolExecutor(workers, thread_name_prefix="scratchnet")
    return pool


def _forget_pool():  # a forked child (evaluation workers) inherits the pool but not its threads
    _state["pool"] = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def slices(N, k):
    """``k`` contiguous ranges ``(n0, n1)`` that cover ``range(N)`` as evenly as possible."""
    bounds = [N * i // k for i in range(k + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(k) if bounds[i] < bounds[i + 1]]


def over_slices(work, n, grain=1):
    """Run ``work(i0, i1)`` on contiguous slices of ``range(n)``, one per thread; wait for all.

    For a recurrence the slices are sequences of the batch; for an element-wise kernel
    (Adam's update) they are stretches of a flat array, at least ``grain`` long (a short
    array is not worth a second thread).  ``work`` writes its results into arrays allocated
    beforehand, each slice into its own part.  The calling thread runs the first slice; an
    exception in any slice is raised here once every slice has finished.
    """
    parts = slices(n, max(1, min(get_threads(), n // max(grain, 1))))
    if len(parts) <= 1:
        work(0, n)
        return
    futures = [_pool(len(parts) - 1).submit(work, i0, i1) for i0, i1 in parts[1:]]
    error = None
    try:
        work(*parts[0])
    except BaseException as e:  # noqa: B036 -- re-raised below, once every slice is done
        error = e
    for f in futures:
        try:
            f.result()
        except BaseException as e:  # noqa: B036
            error = error or e
    if error is not None:
        raise error
