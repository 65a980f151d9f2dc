"""Evaluation throughput: clips scored per second by :func:`scratchnet.metrics.evaluate`.

The clips are synthetic songs of ``--seconds`` each (:func:`scratchnet.synthetic.synth_song`,
made inside the workers from a seed, so nothing is read from disk) separated by the ideal
ratio mask (the IRM oracle, which needs the references) and scored with BSS-EVAL, as
``scratchnet evaluate`` does.  Each worker count runs in a fresh subprocess with one BLAS
thread per process (the pool's workers are forked from it).

    python bench/bench_evaluation.py
    python bench/bench_evaluation.py --clips 8 --workers 2
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

SynthClip = collections.namedtuple("SynthClip", "name seed seconds")


def load_synth(clip):
    """``load`` for :func:`scratchnet.metrics.evaluate`: (mixture, vocals, accompaniment)."""
    from scratchnet.synthetic import synth_song
    return synth_song(clip.seconds, seed=clip.seed)


def child(n_clips, seconds, workers):
    from scratchnet.baselines import SEPARATORS
    from scratchnet.metrics import evaluate

    clips = [SynthClip(f"synth_{i:02d}", i, seconds) for i in range(n_clips)]
    separator = SEPARATORS["irm"]()
    t0 = time.perf_counter()
    results = evaluate(separator, clips, workers=workers, progress=False, load=load_synth)
    elapsed = time.perf_counter() - t0
    assert len(results) == n_clips
    print(json.dumps({"seconds": elapsed}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--seconds", type=float, default=8.0, help="length of each clip")
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-append", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.clips, args.seconds, args.workers[0])
    times = {w: [] for w in args.workers}
    for _ in range(args.repeats):  # alternate the worker counts
        for w in args.workers:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--clips", str(args.clips),
                                  "--seconds", str(args.seconds), "--workers", str(w)],
                                 env=_common.thread_env(1), capture_output=True, text=True, check=True)
            times[w].append(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])
    rows = [[w, args.clips, f"{args.seconds:g}", _common.median(times[w]), args.clips / _common.median(times[w])]
            for w in args.workers]
    text = _common.table(["workers", "clips", "clip s", "wall s (median)", "clips/s"], rows)
    text += (f"\n\nIRM oracle separation + BSS-EVAL (two `bss_eval_sources` calls per clip) of synthetic "
             f"clips; {args.repeats} runs of each, alternating; one BLAS thread per process.")
    _common.report("Evaluation throughput", text, threads=1, append=not args.no_append)


if __name__ == "__main__":
    main()
