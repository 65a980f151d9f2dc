"""Peak memory of training: ``ru_maxrss`` of a subprocess that takes ``--steps`` training steps.

The subprocess is the worker of bench_training.py (scratchnet's model, Adam, one batch of
10 sequences x 100 frames x 513 bins, float32); its peak resident memory includes Python,
NumPy, Numba and the compiled kernels.  The target for DRNN-2 with hidden 1000 is 2 GB.

    python bench/bench_memory.py
    python bench/bench_memory.py --case drnn2-1000 hybrid --steps 20
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
from bench_training import CASES  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", nargs="+", choices=list(CASES), default=["drnn2-1000"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-append", action="store_true")
    args = p.parse_args()
    rows = []
    for case in args.case:
        w = _common.Worker("_train_worker.py", ["--impl", "ours", "--threads", str(args.threads)] + CASES[case][0],
                           args.threads)
        try:
            t0 = time.perf_counter()
            r = w.ask(op="run", steps=args.steps)
            rss = w.ask(op="rss")["rss_mb"]
        finally:
            w.close()
        rows.append([case, w.ready["n_params"], args.steps, f"{r['loss']:.4g}", time.perf_counter() - t0,
                     f"{rss:.0f}", "yes" if rss < 2048 else "NO"])
    text = _common.table(["case", "parameters", "steps", "last loss", "seconds", "peak RSS MB", "< 2 GB"], rows)
    text += "\n\nru_maxrss of the training subprocess (2 warm-up steps + the timed ones), float32, Adam."
    _common.report("Training peak memory", text, threads=args.threads, append=not args.no_append)


if __name__ == "__main__":
    main()
