"""Forward + backward of nn/conv2d.py's fast pair against PyTorch's conv2d, on the CPU (issue 26).

The layers of a spectrogram U-Net: batch 4, 64 frames x 512 bins (32 x 256 after a stride-2
layer), float32, each timed as one step ``out = conv(x, w, b)``, then ``dx, dw, db`` from a
fixed random upstream gradient (the first layer's row without dx, as a network's input needs
none, and once more with it).  Ours takes channel-last arrays (N, H, W, C); torch runs
twice, in its default NCHW layout and in ``channels_last`` (the same memory order as ours),
and the ratio is torch's faster layout over ours (> 1: scratchnet is faster).

Each implementation runs in its own worker process with every BLAS/OpenMP thread variable
set to the thread count before NumPy or torch loads (and ``torch.set_num_threads``); ours
sets its process up as the ``scratchnet`` command does (``cli.keep_freed_memory``).  Each
is warmed up, then they take turns, ours, torch NCHW, torch channels_last, ``--repeats``
times, each turn timing ``--steps`` steps; the table gives the median milliseconds per step
and the median and range of the per-turn ratios, by the wall clock and by CPU time (on a
machine shared with other work the second is the steadier measure of a single thread).

    python bench/bench_conv2d.py                     # every case, 1 and 2 threads
    python bench/bench_conv2d.py --case 16-16 --threads 1 --repeats 9 --no-append
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

#: name: (layer, Cin, Cout, kernel, stride, padding, output_padding, H, W) with H x W the input's size;
#: "1-16" is the network's first layer, whose input (the spectrogram) needs no gradient: no dx on
#: either side (a second row with dx, "1-16-dx", for completeness)
CASES = {
    "1-16": ("conv2d", 1, 16, 3, 1, 1, 0, 64, 512),
    "1-16-dx": ("conv2d", 1, 16, 3, 1, 1, 0, 64, 512),
    "16-16": ("conv2d", 16, 16, 3, 1, 1, 0, 64, 512),
    "16-16-k5": ("conv2d", 16, 16, 5, 1, 2, 0, 64, 512),
    "16-32-s2": ("conv2d", 16, 32, 3, 2, 1, 0, 64, 512),
    "32-64": ("conv2d", 32, 64, 3, 1, 1, 0, 32, 256),
    "up-32-16": ("conv2d_transpose", 32, 16, 3, 2, 1, 1, 32, 256),
}
N = 4
IMPLS = ("ours", "torch", "torch-cl")


def describe(case):
    layer, Cin, Cout, k, s, p, op, H, W = CASES[case]
    what = f"{Cin}->{Cout}, {k}x{k}" + (f", stride {s}" if s > 1 else "")
    what += "" if _input_grad(case) else " (no dx)"
    return ("transposed " if layer == "conv2d_transpose" else "") + what, f"{N}x{H}x{W}"


def _input_grad(case):
    return case != "1-16"


# --------------------------------------------------------------------------- workers
def _arrays(case):
    import numpy as np
    layer, Cin, Cout, k, s, p, op, H, W = CASES[case]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, H, W, Cin)).astype(np.float32)
    w_shape = (k, k, Cin, Cout) if layer == "conv2d" else (k, k, Cout, Cin)
    w = (rng.standard_normal(w_shape) / np.sqrt(k * k * Cin)).astype(np.float32)
    b = rng.standard_normal(Cout).astype(np.float32)
    Ho, Wo = ((H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1) if layer == "conv2d" else \
        ((H - 1) * s - 2 * p + k + op, (W - 1) * s - 2 * p + k + op)
    dout = rng.standard_normal((N, Ho, Wo, Cout)).astype(np.float32)
    return x, w, b, dout


def ours_step(case):
    from scratchnet.nn import conv2d, conv2d_transpose
    layer, Cin, Cout, k, s, p, op, H, W = CASES[case]
    x, w, b, dout = _arrays(case)
    input_grad = _input_grad(case)
    if layer == "conv2d":
        def step():
            out, cache = conv2d.conv2d_forward_fast(x, w, b, s, p)
            return conv2d.conv2d_backward_fast(dout, cache, input_grad=input_grad)
    else:
        def step():
            out, cache = conv2d_transpose.conv2d_transpose_forward_fast(x, w, b, s, p, op)
            return conv2d_transpose.conv2d_transpose_backward_fast(dout, cache)
    return step


def torch_step(case, channels_last):
    import numpy as np
    import torch
    F = torch.nn.functional
    layer, Cin, Cout, k, s, p, op, H, W = CASES[case]
    x, w, b, dout = _arrays(case)
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def leaf(a, perm):  # NHWC numpy -> NCHW torch (weights: PyTorch's layout), then the memory order
        return torch.from_numpy(np.ascontiguousarray(a.transpose(perm))).contiguous(memory_format=fmt)
    xt = leaf(x, (0, 3, 1, 2)).requires_grad_(_input_grad(case))
    wt = leaf(w, (3, 2, 0, 1)).requires_grad_()  # conv2d (Cout, Cin, k, k); transposed (Cin, Cout, k, k)
    bt = torch.from_numpy(b).requires_grad_()
    dt = leaf(dout, (0, 3, 1, 2))
    if layer == "conv2d":
        def forward():
            return F.conv2d(xt, wt, bt, stride=s, padding=p)
    else:
        def forward():
            return F.conv_transpose2d(xt, wt, bt, stride=s, padding=p, output_padding=op)

    def step():
        xt.grad = wt.grad = bt.grad = None  # fresh gradients, as ours are
        forward().backward(dt)
    return step


def worker(impl, cases, threads):
    if impl == "ours":
        from scratchnet.cli import keep_freed_memory
        keep_freed_memory()  # as the scratchnet command does, in this process only
        steps = {c: ours_step(c) for c in cases}
    else:
        import torch
        torch.set_num_threads(threads)
        steps = {c: torch_step(c, impl == "torch-cl") for c in cases}
    for step in steps.values():  # warm up: Numba's cached kernels load, torch allocates
        step()
        step()

    def run(case, n):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            steps[case]()
        return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}
    ready = {"blas": _common.blas_core()} if impl == "ours" else {}
    _common.serve({"run": run}, ready)


# --------------------------------------------------------------------------- driver
def bench(cases, threads, repeats, steps, pause):
    workers = {impl: _common.Worker("bench_conv2d.py", ["--worker", impl, "--threads", str(threads),
                                                         "--case", *cases], threads) for impl in IMPLS}
    rows = []
    try:
        for case in cases:
            ms = {impl: [] for impl in IMPLS}
            cpu = {impl: [] for impl in IMPLS}
            for _ in range(repeats):
                for impl in IMPLS:
                    time.sleep(pause)  # let the other processes' spinning threads go to sleep
                    r = workers[impl].ask(op="run", case=case, n=steps)
                    ms[impl].append(1e3 * r["seconds"] / steps)
                    cpu[impl].append(1e3 * r["cpu_seconds"] / steps)
            ratios = [min(a, b) / o for o, a, b in zip(ms["ours"], ms["torch"], ms["torch-cl"])]
            cpu_ratios = [min(a, b) / o for o, a, b in zip(cpu["ours"], cpu["torch"], cpu["torch-cl"])]
            rows.append([*describe(case), threads, _common.median(ms["ours"]), _common.median(ms["torch"]),
                         _common.median(ms["torch-cl"]), _common.median(ratios),
                         f"{min(ratios):.2f}-{max(ratios):.2f}", _common.median(cpu["ours"]),
                         _common.median(cpu_ratios)])
    finally:
        for w in workers.values():
            w.close()
    return rows, workers["ours"].ready["blas"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=5, help="turns of each implementation")
    p.add_argument("--steps", type=int, default=5, help="forward + backward steps per turn")
    p.add_argument("--pause", type=float, default=0.2, help="seconds between turns")
    p.add_argument("--no-append", action="store_true", help="print only, do not append to RESULTS.md")
    p.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker, args.case, args.threads[0])
    rows, blas = [], "?"
    for n in args.threads:
        r, blas = bench(args.case, n, args.repeats, args.steps, args.pause)
        rows += r
    text = _common.table(["layer", "input N x H x W", "threads", "ours ms", "torch NCHW ms",
                          "torch channels_last ms", "ratio torch / ours (median)", "ratio range",
                          "ours CPU ms", "CPU-time ratio torch / ours"], rows)
    text += (f"\n\nOne step: forward, then dx (except where the row says no dx), dW and db from a "
             f"fixed upstream gradient, float32; the ratio takes torch's faster layout in each turn; "
             f"{args.repeats} alternating turns of "
             f"{args.steps} steps each.  ms: wall-clock time a step; CPU ms: the process's CPU "
             f"time a step (all its threads), and the CPU-time ratio likewise, which a busy machine "
             f"disturbs less than the wall clock.  NumPy's OpenBLAS kernels: {blas}.")
    _common.report("conv2d against PyTorch (issue 26)", text,
                   threads=" and ".join(map(str, args.threads)), append=not args.no_append)


if __name__ == "__main__":
    main()
