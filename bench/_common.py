"""Shared helpers of the benchmark scripts: thread settings, machine description, result tables.

Nothing here imports NumPy at module level, so that a script can set the BLAS thread count
(which OpenBLAS reads once, when NumPy or SciPy is first imported) before anything else.
"""
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:  # benchmark the checkout this bench/ folder is in, not an installed copy
    sys.path.insert(1, ROOT)
RESULTS = os.path.join(HERE, "RESULTS.md")
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "SCRATCHNET_THREADS")


def set_threads(n):
    """Set every BLAS/OpenMP thread-count variable to ``n``; call before importing NumPy."""
    if "numpy" in sys.modules:
        raise RuntimeError("set_threads must run before NumPy is imported")
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # as the CLI sets it (cli.limit_blas_threads)


# This workplace sets these on some processors (older OpenBLAS builds misbehave there); they
# hold a current NumPy's GEMMs to OpenBLAS's AVX2 kernels.  ``--native-blas`` removes both in
# the workers, and the tables say which kernel ran (blas_core).
BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
NATIVE_BLAS = [False]


def blas_core():
    """The kernel family of the OpenBLAS that NumPy loaded ("Haswell", "SkylakeX", ...), or "?"."""
    import ctypes
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and ".so" in ln})
    except OSError:
        return "?"
    for path in paths:
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                     "openblas_get_corename64_", "openblas_get_corename"):
            f = getattr(lib, name, None)
            if f is not None:
                f.restype = ctypes.c_char_p
                return f().decode()
    return "?"


def thread_env(n):
    """A copy of this process's environment with every thread-count variable set to ``n``."""
    env = dict(os.environ)
    if NATIVE_BLAS[0]:
        for var in BLAS_OVERRIDES:
            env.pop(var, None)
    for var in THREAD_VARS:
        env[var] = str(n)
    env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # as the CLI sets it (cli.limit_blas_threads)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions():
    out = {}
    for name in ("numpy", "numba", "scipy", "torch"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = "not installed"
    return out


def load_average():
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


START = (datetime.datetime.now(), os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3)


def machine(threads):
    """One-line description of the machine, the software, the thread setting and the load."""
    v = _versions()
    (t0, la0), la1 = START, load_average()
    return (f"{cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
            f"numpy {v['numpy']}, numba {v['numba']}, scipy {v['scipy']}, torch {v['torch']}; "
            f"threads: {threads}; load average (1 min) {la0[0]:.2f} at the start, {la1[0]:.2f} "
            f"at the end; started {t0.isoformat(timespec='minutes')}")


def median(xs):
    return statistics.median(xs)


def table(header, rows):
    """A Markdown table: ``header`` a list of column names, ``rows`` lists of cells."""
    def cell(x):
        if isinstance(x, float):
            return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"
        return str(x)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report(title, text, *, threads, command=None, append=True):
    """Print ``text`` under ``title`` and append it to bench/RESULTS.md with the machine line."""
    command = command or "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    block = f"\n### {title}\n\n`{command}`\n\n{machine(threads)}\n\n{text}\n"
    print(block)
    if append:
        with open(RESULTS, "a") as f:
            f.write(block)


class Worker:
    """A benchmark subprocess that takes one JSON command a line and answers one JSON line.

    Keeping the process alive lets two implementations run alternately, each warmed up, each
    with its own thread setting (set in its environment before NumPy or torch load).
    """

    def __init__(self, script, args, threads):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, script)] + list(args),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=thread_env(threads), cwd=ROOT)
        self.ready = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker {self.proc.args} died (exit {self.proc.wait()})")
        return json.loads(line)

    def ask(self, **command):
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait()


def serve(handlers, ready):
    """Worker side of :class:`Worker`: answer ``ready``, then one command a line until EOF."""
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        print(json.dumps(handlers[op](**command)), flush=True)


def peak_rss_mb():
    """This process's peak resident memory (ru_maxrss) in MiB."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
