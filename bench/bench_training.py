"""Training throughput of scratchnet against the same network in PyTorch, on the CPU.

For each case (DRNN-2 with hidden 1000 or 150, the hybrid, one GRU or LSTM layer of 256 or
512 units) and each thread count, two worker processes are started, one per implementation,
each with its BLAS/OpenMP thread count set before NumPy or torch loads.  They then take turns (ours, torch, ours, torch, ...): each turn
times ``--steps`` training steps (forward + backward + Adam step) on one batch of 10
sequences x 100 frames x 513 bins.  The table gives the median frames per second of each and
the median of the per-turn ratios ours / torch (> 1: scratchnet is faster), and is appended
to bench/RESULTS.md.

    python bench/bench_training.py                       # all cases, 1 and 2 threads
    python bench/bench_training.py --case drnn2-1000 --threads 1 --repeats 7
    python bench/bench_training.py --case gru-256 gru-512 lstm-256 lstm-512 --threads 1
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

CASES = {  # name: (worker arguments, steps per turn)
    "drnn2-1000": (["--arch", "drnn-2", "--hidden", "1000"], 3),
    "drnn2-150": (["--arch", "drnn-2", "--hidden", "150"], 10),
    "hybrid": (["--arch", "hybrid"], 4),
    # one gated recurrent layer (513 -> H), linear 2F, mask: our GRU/LSTM kernels against
    # torch's nn.GRU / nn.LSTM (oneDNN's fused LSTM on the CPU); --torch-rnn does not apply
    "gru-256": (["--arch", "gru", "--hidden", "256"], 8),
    "gru-512": (["--arch", "gru", "--hidden", "512"], 4),
    "lstm-256": (["--arch", "lstm", "--hidden", "256"], 8),
    "lstm-512": (["--arch", "lstm", "--hidden", "512"], 4),
}
FRAMES = 10 * 100  # frames per step
BLAS_SEEN = set()  # the OpenBLAS kernel family our workers ran


def bench_case(case, threads, repeats, steps, torch_rnn, pause):
    args, default_steps = CASES[case]
    steps = steps or default_steps
    common = args + ["--threads", str(threads), "--torch-rnn", torch_rnn]
    workers = {impl: _common.Worker("_train_worker.py", ["--impl", impl] + common, threads)
               for impl in ("ours", "torch")}
    fps = {"ours": [], "torch": []}
    gflops = []  # NumPy's GEMM rate, measured in our worker before each of its turns
    try:
        for _ in range(repeats):
            for impl in ("ours", "torch"):
                time.sleep(pause)  # let the other process's spinning threads go to sleep
                if impl == "ours":
                    gflops.append(workers[impl].ask(op="gemm")["gflops"])
                r = workers[impl].ask(op="run", steps=steps)
                fps[impl].append(steps * FRAMES / r["seconds"])
        rss = {impl: w.ask(op="rss")["rss_mb"] for impl, w in workers.items()}
    finally:
        for w in workers.values():
            w.close()
    flops = workers["ours"].ready["flops_per_frame"]
    BLAS_SEEN.add(workers["ours"].ready["blas"])
    ratios = [a / b for a, b in zip(fps["ours"], fps["torch"])]
    ceiling = [f * flops / (g * 1e9) for f, g in zip(fps["ours"], gflops)]  # per turn
    return [case, threads, _common.median(fps["ours"]), _common.median(fps["torch"]),
            _common.median(ratios), f"{min(ratios):.2f}-{max(ratios):.2f}",
            flops / 1e6, _common.median(gflops), f"{100 * _common.median(ceiling):.0f}%",
            f"{rss['ours']:.0f} / {rss['torch']:.0f}"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=5, help="turns of each implementation")
    p.add_argument("--steps", type=int, default=0, help="training steps per turn (0: per case)")
    p.add_argument("--torch-rnn", choices=("module", "loop"), default="module",
                   help="torch twin's recurrence: nn.RNN(relu), or a Python loop over time")
    p.add_argument("--pause", type=float, default=0.3, help="seconds between turns")
    p.add_argument("--no-append", action="store_true", help="print only, do not append to RESULTS.md")
    p.add_argument("--native-blas", action="store_true",
                   help="unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE in the workers (see _common.py)")
    args = p.parse_args()
    _common.NATIVE_BLAS[0] = args.native_blas
    rows = []
    for case in args.case:
        for threads in args.threads:
            rows.append(bench_case(case, threads, args.repeats, args.steps, args.torch_rnn, args.pause))
            print(" ".join(map(str, rows[-1])), flush=True)
    text = _common.table(["case", "threads", "ours frames/s", "torch frames/s", "ratio (median)",
                          "ratio range", "MFLOP/frame", "GEMM GFLOP/s", "ours / ceiling",
                          "peak RSS MB ours / torch"], rows)
    text += (f"\n\n{args.repeats} alternating turns of each; torch twin's RNN: {args.torch_rnn}; "
             f"batch 10 x 100 frames x 513 bins, float32, Adam.  MFLOP/frame: the weight products "
             f"of a training step, counted from the model's shapes (_train_worker.flops_per_frame); "
             f"GEMM GFLOP/s: NumPy's float32 1000 x 1000 x 1000 product at the same thread count, "
             f"measured before each of our turns; ours / ceiling: our frames/s times MFLOP/frame "
             f"over that rate (median of the turns), how close a step comes to running nothing "
             f"but full-speed GEMMs.  NumPy's OpenBLAS kernels: {', '.join(sorted(BLAS_SEEN))}"
             f"{' (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset: --native-blas)' if args.native_blas else ''}.")
    _common.report("Training throughput (frames/s), scratchnet vs PyTorch", text,
                   threads=" and ".join(map(str, args.threads)), append=not args.no_append)


if __name__ == "__main__":
    main()
