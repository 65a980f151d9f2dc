"""Training-step worker for bench_training.py: scratchnet or its PyTorch twin, one process each.

Started by :class:`_common.Worker` with the thread-count variables already in its environment.
Commands (one JSON line each): ``{"op": "run", "steps": K}`` times K training steps (forward,
loss, backward, Adam step) and answers the elapsed seconds; ``{"op": "rss"}`` answers the
peak resident memory.  The data are random magnitudes, the same in both implementations.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

import numpy as np  # noqa: E402  (after the environment holds the thread count)

GAMMA = 0.05   # discriminative weight of the loss, as in training
LR = 1e-3
EPS = 1e-8     # the soft mask's eps (make_config's mask_eps)
GATED = {"gru": 3, "lstm": 4}  # the gated cells' --arch, and their number of gate blocks


def make_batch(N, T, F, seed=0):
    """Random mixture magnitudes X (N,T,F) and targets that sum to X, float32."""
    rng = np.random.default_rng(seed)
    X = np.abs(rng.standard_normal((N, T, F))).astype(np.float32)
    g = rng.random((N, T, F)).astype(np.float32)
    return X, g * X, (1 - g) * X


def flops_per_frame(params, no_dx):
    """FLOPs of the weight products of one training step, per frame, counted from the shapes.

    Every weight tensor (2-D, or a convolution's k x in x out) is used once per frame in each
    of three products of its size: the forward ``x W``, and in the backward ``dW += x^T dout``
    and ``dx = dout W^T``, 2 FLOPs (a multiply and an add) each.  Tensors in ``no_dx`` skip
    the third (the first layer's input gradient, which training never needs).  A recurrent
    ``Wh`` counts the same: h_{t-1} Wh forward, the carried gradient and dWh backward.  Biases,
    activations, the mask, the loss and the optimizer are left out: this is the work that a
    GEMM at full speed would take, the ceiling of the step.
    """
    return int(sum((4 if name in no_dx else 6) * w.size for name, w in params.items() if w.ndim >= 2))


def gemm_rate(repeats=8, size=1000):
    """GFLOP/s of float32 ``(size x size) @ (size x size)`` products in this process (NumPy's
    BLAS at this process's thread count): the median of ``repeats`` timed products."""
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal((size, size)).astype(np.float32) for _ in range(2))
    c = a @ b  # warm up
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        rates.append(2 * size ** 3 / (time.perf_counter() - t0) / 1e9)
    return {"gflops": float(np.median(rates))}


# --------------------------------------------------------------------------- scratchnet
def ours(args, X, t1, t2):
    try:  # as the scratchnet command does; in this process only (torch's keeps its own)
        from scratchnet.cli import keep_freed_memory
        keep_freed_memory()
    except ImportError:  # a checkout from before it existed (a "before" run of this bench)
        pass
    if args.arch in GATED:
        return ours_gated(args, X, t1, t2)
    from scratchnet import losses, optimizers
    from scratchnet.models import Model, make_config

    overrides = {"arch": args.arch, "n_bins": X.shape[2]}
    if args.arch != "hybrid":
        overrides["hidden"] = args.hidden
    model = Model(make_config(**overrides))
    opt = optimizers.Adam(lr=LR)

    def loss_fn(y1, y2, a, b):
        return losses.mse_loss(y1, y2, a, b, gamma=GAMMA)

    def step():
        loss, grads = model.loss_and_grad(X, t1, t2, loss_fn)
        opt.step(model.params, grads)
        return loss

    # training skips the input gradient of the first layer with weights (Model.loss_and_grad)
    no_dx = {n for n in model.first_layer_names() if n.endswith(("/W", "/Wx", "/Wx_rev"))}
    return step, model.n_params(), flops_per_frame(model.params, no_dx)


def ours_gated(args, X, t1, t2):
    """One gated recurrent layer (F -> H), linear 2F, the soft mask: built from the fast pairs.

    Self-contained (not a ``Model``): it measures the GRU/LSTM kernels against ``nn.GRU`` /
    ``nn.LSTM`` in the smallest network that trains like ours, weights initialised as
    PyTorch's (U(-1/sqrt(H), 1/sqrt(H))).
    """
    from scratchnet import losses, optimizers
    from scratchnet.nn import affine, init, mask
    from scratchnet.nn import gru, lstm

    N, T, F = X.shape
    H, k = args.hidden, GATED[args.arch]
    rng = np.random.default_rng(0)
    params = {"Wx": init.uniform_fan((F, k * H), H, rng), "Wh": init.uniform_fan((H, k * H), H, rng)}
    params.update({"bx": init.uniform_fan((k * H,), H, rng), "bh": init.uniform_fan((k * H,), H, rng)}
                  if args.arch == "gru" else {"b": init.uniform_fan((k * H,), H, rng)})
    params.update(W=init.uniform_fan((H, 2 * F), H, rng), b_out=init.uniform_fan((2 * F,), H, rng))
    rnn_names = [n for n in params if n not in ("W", "b_out")]
    opt = optimizers.Adam(lr=LR)

    def step():
        p = params
        if args.arch == "gru":
            h, c_rnn = gru.gru_forward_fast(X, None, p["Wx"], p["Wh"], p["bx"], p["bh"])
        else:
            h, c_rnn = lstm.lstm_forward_fast(X, None, None, p["Wx"], p["Wh"], p["b"])
        a, c_out = affine.affine_forward_fast(h, p["W"], p["b_out"])
        (y1, y2), c_mask = mask.mask_forward_fast(a, X, EPS)
        loss, dy1, dy2 = losses.mse_loss(y1, y2, t1, t2, gamma=GAMMA)
        da, _ = mask.mask_backward_fast(dy1, dy2, c_mask)
        dh, dW, db_out = affine.affine_backward_fast(da, c_out)
        if args.arch == "gru":
            _, _, *g = gru.gru_backward_fast(dh, c_rnn, input_grad=False)  # no dx, no dh0
        else:
            _, _, _, *g = lstm.lstm_backward_fast(dh, c_rnn, input_grad=False)
        grads = dict(zip(rnn_names, g), W=dW, b_out=db_out)
        opt.step(params, grads)
        return loss

    return step, sum(v.size for v in params.values()), flops_per_frame(params, {"Wx"})


# --------------------------------------------------------------------------- PyTorch twin
def twin(args, X, t1, t2):
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    N, T, F = X.shape

    class Mask(nn.Module):
        def forward(self, a, X):  # Huang's soft mask |a1| / (|a1| + |a2| + eps) * X
            m1, m2 = a[..., :F].abs(), a[..., F:].abs()
            s = m1 + m2 + EPS
            return m1 / s * X, m2 / s * X

    class LoopRNN(nn.Module):
        """h_t = relu(x_t W + h_{t-1} U + b) as a Python loop over time (the brief's form)."""

        def __init__(self, D, H):
            super().__init__()
            self.W = nn.Linear(D, H)
            self.U = nn.Linear(H, H, bias=False)

        def forward(self, x):
            xw = self.W(x)  # N,T,H: all frames at once
            h = xw.new_zeros(x.shape[0], xw.shape[2])
            hs = []
            for t in range(x.shape[1]):
                h = torch.relu(xw[:, t] + self.U(h))
                hs.append(h)
            return torch.stack(hs, 1)

    def rnn(D, H, layers=1):
        if args.torch_rnn == "loop":
            return nn.Sequential(*[LoopRNN(D if i == 0 else H, H) for i in range(layers)])
        return _First(nn.RNN(D, H, num_layers=layers, nonlinearity="relu", batch_first=True))

    class _First(nn.Module):  # nn.RNN returns (output, h_n): keep the output
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x)[0]

    class DRNN2(nn.Module):
        def __init__(self, H, k=1):
            super().__init__()
            self.k = k
            self.hidden1 = nn.Linear((2 * k + 1) * F, H)
            self.hidden2 = rnn(H, H)
            self.hidden3 = nn.Linear(H, H)
            self.out = nn.Linear(H, 2 * F)
            self.mask = Mask()

        def forward(self, X):
            idx = (torch.arange(T)[:, None] + torch.arange(-self.k, self.k + 1)[None, :]).clamp(0, T - 1)
            z = X[:, idx, :].reshape(N, T, -1)  # context window: N,T,(2k+1)F
            h = torch.relu(self.hidden1(z))
            h = self.hidden2(h)
            h = torch.relu(self.hidden3(h))
            return self.mask(self.out(h), X)

    class Hybrid(nn.Module):
        def __init__(self, filters=(512, 256, 128), dense=(1024, 128, 256, 512), H=256):
            super().__init__()
            conv, c = [], F
            for f in filters:
                conv += [nn.Conv1d(c, f, 3, padding=1), nn.ReLU(), nn.MaxPool1d(3, stride=1, padding=1)]
                c = f
            self.conv = nn.Sequential(*conv)
            dense_layers = []
            for d in dense:
                dense_layers += [nn.Linear(c, d), nn.ReLU()]
                c = d
            self.dense = nn.Sequential(*dense_layers)
            self.rnn = rnn(c, H, 3)
            self.out = nn.Linear(H, 2 * F)
            self.mask = Mask()

        def forward(self, X):
            h = self.conv(X.transpose(1, 2)).transpose(1, 2)  # Conv1d over time, F channels
            h = self.rnn(self.dense(h))
            return self.mask(self.out(h), X)

    class Gated(nn.Module):  # the twin of ours_gated: nn.GRU / nn.LSTM, linear 2F, mask
        def __init__(self, H):
            super().__init__()
            self.rnn = (nn.GRU if args.arch == "gru" else nn.LSTM)(F, H, batch_first=True)
            self.out = nn.Linear(H, 2 * F)
            self.mask = Mask()

        def forward(self, X):
            return self.mask(self.out(self.rnn(X)[0]), X)

    if args.arch in GATED:
        model = Gated(args.hidden)
    else:
        model = Hybrid() if args.arch == "hybrid" else DRNN2(args.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    Xt, a, b = (torch.from_numpy(v) for v in (X, t1, t2))

    def step():
        opt.zero_grad(set_to_none=True)
        y1, y2 = model(Xt)
        d = lambda u, v: ((u - v) ** 2).sum()  # noqa: E731
        loss = (d(y1, a) + d(y2, b) - GAMMA * (d(y1, b) + d(y2, a))) / (N * T)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step, sum(p.numel() for p in model.parameters()), None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--impl", choices=("ours", "torch"), required=True)
    p.add_argument("--arch", default="drnn-2")
    p.add_argument("--hidden", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--torch-rnn", choices=("module", "loop"), default="module")
    p.add_argument("--batch", type=int, nargs=3, default=(10, 100, 513), metavar=("N", "T", "F"))
    args = p.parse_args()
    X, t1, t2 = make_batch(*args.batch)
    step, n_params, flops = (ours if args.impl == "ours" else twin)(args, X, t1, t2)
    step()  # warm up: Numba's cache load, torch's first-call allocations
    step()

    def run(steps):
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = step()
        return {"seconds": time.perf_counter() - t0, "loss": loss}

    _common.serve({"run": run, "rss": lambda: {"rss_mb": _common.peak_rss_mb()}, "gemm": gemm_rate},
                  {"n_params": int(n_params), "flops_per_frame": flops, "blas": _common.blas_core()})


if __name__ == "__main__":
    main()
