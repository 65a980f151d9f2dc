"""Separation speed (real-time factor) and peak memory of a shipped model on a 3-minute song.

The song is a synthetic mixture (:func:`scratchnet.synthetic.synth_song`) at 16 kHz; the
model is the default shipped model, or ``--model NAME`` (a shipped name or a path), or a
freshly initialised DRNN-2 of hidden size 500 when the file is missing (the table says which:
the speed does not depend on the weights).
Each thread setting runs in its own subprocess, which times ``--repeats`` calls of
:func:`scratchnet.separation.separate_array` (after one warm-up call) and reports the peak
resident memory of the whole process (``ru_maxrss``).

    python bench/bench_separation.py
    python bench/bench_separation.py --threads 1 --seconds 60 --model drnn2
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402


def child(seconds, repeats, name):
    import numpy as np

    from scratchnet import pretrained
    from scratchnet.models import Model, load_model, make_config
    from scratchnet.separation import ModelSeparator, separate_array
    from scratchnet.synthetic import synth_song

    path = pretrained.path_of(name)
    if os.path.exists(path):
        model, which = load_model(path), pretrained.name_of(path) or os.path.basename(path)
    else:
        model, which = Model(make_config(arch="drnn-2", hidden=500)), "fresh DRNN-2, hidden 500"
    separator = ModelSeparator(model, seq_len=model.config.get("inference_seq_len"))
    mixture, _, _ = synth_song(seconds, seed=0)
    rss_before = _common.peak_rss_mb()
    separate_array(mixture, 16000, separator)  # warm-up: Numba's cache load
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        vocals, accompaniment = separate_array(mixture, 16000, separator)
        times.append(time.perf_counter() - t0)
    assert np.all(np.isfinite(vocals)) and vocals.shape == mixture.shape
    print(json.dumps({"model": which, "params": model.n_params(), "times": times,
                      "rss_mb": _common.peak_rss_mb(), "rss_before_mb": rss_before}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--model", default=None, help="a shipped model's name or a .npz (default: the default model)")
    p.add_argument("--no-append", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.seconds, args.repeats, args.model)
    rows = []
    for threads in args.threads:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--seconds", str(args.seconds),
                              "--repeats", str(args.repeats)] + (["--model", args.model] if args.model else []),
                             env=_common.thread_env(threads),
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        t = _common.median(r["times"])
        rows.append([r["model"], threads, f"{args.seconds:g}", t, args.seconds / t,
                     f"{args.seconds / max(r['times']):.0f}-{args.seconds / min(r['times']):.0f}",
                     f"{r['rss_mb']:.0f}"])
        print(rows[-1], flush=True)
    text = _common.table(["model", "threads", "song s", "separation s (median)", "x real time",
                          "x real time range", "peak RSS MB"], rows)
    text += (f"\n\n`separate_array` on a synthetic song at 16 kHz (30 s chunks, 2 s cross-fade), "
             f"{args.repeats} runs after a warm-up; peak RSS of the whole process, Python and "
             f"imports included.")
    _common.report("Separation real-time factor and memory", text,
                   threads=" and ".join(map(str, args.threads)), append=not args.no_append)


if __name__ == "__main__":
    main()
