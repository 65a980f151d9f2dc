"""Sweeps and evaluations on a Dask cluster: ``--scheduler tcp://HOST:8786``.

Without ``--scheduler`` a sweep runs its grid points as local processes and an evaluation
scores its clips in a local process pool.  With it, the same work is submitted as tasks to
Dask's distributed scheduler (an existing engine: its workers, retries and failure handling,
nothing home-made), one task per grid point or per clip:

    scheduler machine:  dask scheduler                               # listens on :8786
    each worker:        OPENBLAS_NUM_THREADS=1 dask worker tcp://HOST:8786 --nworkers 2 --nthreads 1
    anywhere:           scratchnet sweep CONFIG --data DIR --scheduler tcp://HOST:8786

A task runs on whichever worker is free, so every path it is given -- the data folder, the
sweep folder, a model file -- must be visible at the same path on every worker (a shared
file system); the commands make them absolute before submitting.  A worker that dies in the
middle of a task costs that task only: the scheduler gives it to another worker (a sweep's
training resumes there from its last checkpoint), and after three workers have died on it,
the task is reported as failed.

Dask is an optional extra (``pip install -e ".[cluster]"``); this module imports it only
when a scheduler is asked for.
"""
import os
import signal

from .errors import ScratchnetError

def connect(address, timeout=20):
    """A ``distributed.Client`` on the scheduler at ``address``; a clear error if there is none.

    Use it as ``with connect(address) as client:``: leaving the block closes the client, and
    the scheduler then drops every task of it not yet started (one already running on a
    worker runs to its end).
    """
    try:
        from distributed import Client
    except ImportError:
        raise ScratchnetError("--scheduler needs Dask's distributed scheduler: "
                              "pip install -e \".[cluster]\" (or pip install distributed)") from None
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as e:
        raise ScratchnetError(f"cannot reach the Dask scheduler at {address!r}: {e}") from None


def describe(client):
    """``"3 workers, 6 threads"``: what a client's scheduler has now."""
    workers = client.scheduler_info().get("workers", {})
    threads = sum(w.get("nthreads", 0) for w in workers.values())
    return f"{len(workers)} workers, {threads} threads"


def die_with_parent():
    """In a child process: be sent SIGTERM when the process that started it dies (Linux).

    A sweep task starts ``scratchnet train`` as a child of the Dask worker; if the worker is
    killed, the child must stop too (it saves its checkpoint on SIGTERM), or it would go on
    writing the run folder while the retried task resumes the same run elsewhere.  Where the
    system has no such call, nothing is done.
    """
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:  # the parent died before the call took effect
        os.kill(os.getpid(), signal.SIGTERM)
