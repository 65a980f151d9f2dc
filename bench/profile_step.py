"""Where the time of one training step goes, layer function by layer function.

Wraps the fast forward/backward pairs of :mod:`scratchnet.nn` (the models look them up at
every call, so the wrappers are the ones that run), the recurrence kernels, the loss and the optimizer step with
timers, runs ``--steps`` training steps of the chosen model (after two warm-up steps) and
prints the milliseconds per step spent in each (nested timers overlap: ``rnn_forward``
includes ``recurrence_forward``).  For a sampling view of the same run:
``py-spy record -o step.svg -- python bench/profile_step.py``.

    python bench/profile_step.py --arch drnn-2 --hidden 1000
    python bench/profile_step.py --arch hybrid --threads 2
    python bench/profile_step.py --config configs/unet_bigru_eq.json    # a training config's model
"""
import argparse
import collections
import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402


def timed(module, name, totals):
    """Replace ``module.name`` by a wrapper that adds its run time to ``totals[label]``."""
    f = getattr(module, name, None)
    if f is None:
        return
    label = f"{module.__name__.split('.')[-1]}.{name}"

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return f(*args, **kwargs)
        finally:
            totals[label] += time.perf_counter() - t0
    setattr(module, name, wrapper)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="drnn-2")
    p.add_argument("--hidden", type=int, default=1000)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--config", default=None, help="take the model options of this training config "
                   "(--arch and --hidden are then ignored)")
    p.add_argument("--append", action="store_true", help="also append the table to RESULTS.md")
    args = p.parse_args()
    _common.set_threads(args.threads)

    from _train_worker import GAMMA, LR, make_batch
    from scratchnet import losses, optimizers
    from scratchnet.models import Model, make_config
    from scratchnet.nn import activations, affine, context, conv1d, conv2d, conv2d_transpose, gru, lstm, mask, maxpool1d, rnn

    totals = collections.defaultdict(float)
    for module in (affine, activations, context, conv1d, conv2d, conv2d_transpose, gru, lstm, maxpool1d, mask, rnn):
        name = module.__name__.split(".")[-1]
        name = "relu" if name == "activations" else name
        for suffix in ("_forward", "_backward", "_forward_fast", "_backward_fast"):
            timed(module, name + suffix, totals)
    for module in (rnn, gru, lstm):
        for name in ("recurrence_forward", "recurrence_backward"):
            timed(module, name, totals)
    timed(losses, "mse_loss", totals)

    if args.config:
        import json
        with open(args.config) as f:
            overrides = json.load(f)["model"]
    else:
        overrides = {"arch": args.arch} if args.arch == "hybrid" else {"arch": args.arch, "hidden": args.hidden}
    model = Model(make_config(**overrides))
    opt = optimizers.Adam(lr=LR)
    X, t1, t2 = make_batch(10, 100, 513)

    def loss_fn(y1, y2, a, b):
        return losses.mse_loss(y1, y2, a, b, gamma=GAMMA)

    def step():
        t0 = time.perf_counter()
        _, grads = model.loss_and_grad(X, t1, t2, loss_fn)
        t1_ = time.perf_counter()
        opt.step(model.params, grads)
        totals["optimizer step (Adam)"] += time.perf_counter() - t1_
        totals["model.loss_and_grad"] += t1_ - t0

    step(), step()
    totals.clear()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    per_step = (time.perf_counter() - t0) / args.steps
    rows = [["whole step", per_step * 1e3, 100.0]]
    rows += [[k, v / args.steps * 1e3, 100 * v / args.steps / per_step]
             for k, v in sorted(totals.items(), key=lambda kv: -kv[1])]
    what = (args.config if args.config else args.arch if args.arch == "hybrid"
            else f"{args.arch}, hidden {args.hidden}")
    text = _common.table(["function", "ms per step", "% of step"], rows)
    text += f"\n\n{what}; batch 10 x 100 x 513, float32; {args.steps} steps after 2 warm-up steps."
    _common.report(f"Time per training step by function: {what}", text, threads=args.threads,
                   append=args.append)


if __name__ == "__main__":
    main()
