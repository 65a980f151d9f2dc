"""Separation speed as a user meets it: in-process against the whole command, side by side.

One synthetic 3-minute song (:func:`scratchnet.synthetic.synth_song`) is written twice: as a
16 kHz mono WAV (the rate the networks run at) and as a 44.1 kHz stereo 16-bit WAV (a song as
people have it).  For each thread setting, in fresh processes with that many BLAS and kernel
threads, it times, round-robin (so a change in the machine's load touches every row alike):

- ``in-process``: :func:`scratchnet.separation.separate_array` on the decoded array, after
  one warm-up call in the same process (Numba's caches loaded, the model read): the
  separation alone, its resampling and every channel's STFT included;
- ``command``: the whole ``scratchnet separate FILE -o DIR --force -q`` as a new process:
  start-up and imports, reading, resampling, every channel, writing both stems;
- ``command --report``: the same with the listening page (audio encoding and figure);
- ``start-up floor``: a process that does only what any Numba program must: import NumPy,
  soundfile and Numba and call one cached ``@njit`` function (:func:`_floor_kernel`, its
  cache made before the timing).  Numba's first call imports its typing and lowering
  registries, and with them SciPy's BLAS bindings and ``cffi``'s C parser, whatever the
  function does.  What a command costs beyond its in-process time and this floor is the
  project's own start-up (its imports, the model's read, reading and writing the files).

The ratios are the command's median time over the in-process median of the same song and
threads.  Peak memory is the whole process's ``ru_maxrss``.  Every process of a row with n
threads is bound to n CPUs (``sched_setaffinity``): "1 thread" is one core, whatever other
threads Python, libsndfile or the page's encoder start.  The output folder is emptied
before each command (untimed), as for a user's first run: replacing the last run's stems
costs the file system about 60 ms a stem here, which is not separation.

    python bench/bench_separation.py                       # both songs, 1 and 2 threads
    python bench/bench_separation.py --threads 1 --repeats 3 --model bigru
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402


def make_songs(folder, seconds):
    """The two WAV files of one synthetic song: ``{"16k mono": path, "44.1k stereo": path}``."""
    import numpy as np
    import soundfile as sf

    from scratchnet.signal import resample_poly
    from scratchnet.synthetic import synth_song
    mixture, vocals, accompaniment = synth_song(seconds, seed=0)
    mono = 0.9 * mixture / np.abs(mixture).max()
    left, right = 0.7 * vocals + accompaniment, vocals + 0.7 * accompaniment  # a stereo image
    stereo = resample_poly(np.stack([left, right], axis=1), 441, 160)
    stereo *= 0.9 / np.abs(stereo).max()
    paths = {"16k mono": os.path.join(folder, "song16.wav"), "44.1k stereo": os.path.join(folder, "song44.wav")}
    sf.write(paths["16k mono"], mono, 16000, subtype="PCM_16")
    sf.write(paths["44.1k stereo"], stereo, 44100, subtype="PCM_16")
    return paths


def child(path, repeats, name):
    """In-process: time ``separate_array`` on the decoded file, after a warm-up call."""
    import numpy as np
    import soundfile as sf

    from scratchnet.separation import load_model_separator, separate_array
    separator = load_model_separator(name)
    song, sr = sf.read(path)
    separate_array(song, sr, separator)  # warm-up: Numba's caches, the first BLAS calls
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        vocals, _ = separate_array(song, sr, separator)
        times.append(time.perf_counter() - t0)
    assert np.all(np.isfinite(vocals)) and vocals.shape == song.shape
    print(json.dumps({"model": separator.name, "times": times, "rss_mb": _common.peak_rss_mb()}))


def _floor_kernel(a):
    return a.sum()


def floor_child():
    """The start-up floor: the imports of any Numba program and one cached kernel's first call."""
    import numpy as np
    import soundfile  # noqa: F401
    from numba import njit
    njit(cache=True)(_floor_kernel)(np.ones(2))


def _cores(threads):
    """A preexec_fn binding the child to the first ``threads`` CPUs this process may use."""
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    return lambda: os.sched_setaffinity(0, cpus)


def _command(path, out, name, report, env, threads):
    """Time one whole ``scratchnet separate`` process; returns (seconds, peak RSS MB)."""
    cmd = [sys.executable, "-m", "scratchnet.cli", "separate", path, "-o", out, "--force", "-q"]
    cmd += (["--model", name] if name else []) + (["--report"] if report else [])
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_cores(threads))
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak memory
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err.strip()}")
    return seconds, usage.ru_maxrss / 1024


def _floor(env, threads):
    """Time one start-up-floor process (``--floor``); returns (seconds, peak RSS MB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--floor"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_cores(threads))
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the start-up floor failed: {err.strip()}")
    return seconds, usage.ru_maxrss / 1024


def _in_process(path, name, env, threads):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", path, "--repeats", "1"]
                         + (["--model", name] if name else []),
                         env=env, capture_output=True, text=True, check=True, preexec_fn=_cores(threads))
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["times"][0], r["rss_mb"], r["model"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", default=None, help="a shipped model's name or a .npz (default: the default model)")
    p.add_argument("--songs", nargs="+", default=["44.1k stereo", "16k mono"])
    p.add_argument("--no-report", action="store_true", help="leave out the --report rows")
    p.add_argument("--no-append", action="store_true")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.child, args.repeats, args.model)
    if args.floor:
        return floor_child()
    kinds = ["in-process", "command"] + ([] if args.no_report else ["command --report"]) + ["start-up floor"]
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_songs(tmp, args.seconds)
        _floor(_common.thread_env(1), 1)  # untimed: the floor kernel's cache
        times, rss, model = {}, {}, None
        for _ in range(args.repeats):  # round-robin: every row sees the same machine
            for threads in args.threads:
                env = _common.thread_env(threads)
                for song in args.songs:
                    for kind in kinds:
                        if kind == "in-process":
                            t, m, model = _in_process(paths[song], args.model, env, threads)
                        elif kind == "start-up floor":
                            t, m = _floor(env, threads)
                        else:
                            t, m = _command(paths[song], os.path.join(tmp, "out"), args.model,
                                            kind.endswith("--report"), env, threads)
                        key = (song, threads, kind)
                        times.setdefault(key, []).append(t)
                        rss[key] = max(rss.get(key, 0), m)
                        print(key, f"{t:.2f} s", flush=True)
    rows = []
    for (song, threads, kind), ts in times.items():
        t = _common.median(ts)
        base = _common.median(times[(song, threads, "in-process")])
        floor = kind == "start-up floor"  # separates nothing: no real-time factor
        rows.append([model, song, threads, kind, t, "-" if floor else args.seconds / t,
                     "-" if floor else f"{args.seconds / max(ts):.0f}-{args.seconds / min(ts):.0f}",
                     "1" if kind == "in-process" else f"{t / base:.2f}", f"{rss[(song, threads, kind)]:.0f}"])
    text = _common.table(["model", "song", "threads", "what", "seconds (median)", "x real time",
                          "x real time range", "/ in-process", "peak RSS MB"], rows)
    text += (f"\n\nA synthetic {args.seconds:g} s song, median of {args.repeats} runs of each row, the rows "
             "taken round-robin.  in-process: `separate_array` on the decoded array after a warm-up "
             "call (resampling and every channel included); command: the whole `scratchnet separate "
             "FILE -o DIR --force -q` process (start-up, imports, reading, resampling, writing); "
             "--report adds the listening page; start-up floor: a process that imports NumPy, soundfile "
             "and Numba and calls one cached kernel, the least any command here can cost "
             "(its / in-process: the share of the in-process time it is).  Each process bound to as many CPUs as threads; the "
             "output folder emptied (untimed) before each command.  Peak RSS of the whole process.")
    _common.report("Separation: in-process and the whole command", text,
                   threads=" and ".join(map(str, args.threads)), append=not args.no_append)


if __name__ == "__main__":
    main()
