"""Each fast kernel against its plain NumPy twin at the sizes training uses: one table.

    python bench/kernel_agreement.py

Prints the relative difference ``||fast - twin|| / ||twin||`` of every output, in float64
and float32 (the tests assert the same agreement at small sizes, with and without the JIT).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from scratchnet import kernels as k  # noqa: E402


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def rows(dtype):
    rng = np.random.default_rng(0)
    r = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    N, T, H, F = 10, 100, 500, 513
    out = []
    frames = r(300, 1024)
    out.append(("overlap_add", "y", rel(k.overlap_add(frames, 512, 300 * 512 + 512),
                                        k.overlap_add_numpy(frames, 512, 300 * 512 + 512))))
    xw, h0, Wh = r(N, T, H), np.zeros((N, H), dtype), (0.03 * r(H, H)).astype(dtype)
    h, h_twin = k.rnn_recurrence_forward(xw, h0, Wh), k.rnn_recurrence_forward_numpy(xw, h0, Wh)
    out.append(("rnn_recurrence_forward", "h", rel(h, h_twin)))
    dh = r(N, T, H)
    for clip in (0.0, 1.0):
        (dz, dh0), (dz2, dh02) = (k.rnn_recurrence_backward(dh, h, h0, Wh, clip),
                                  k.rnn_recurrence_backward_numpy(dh, h, h0, Wh, clip))
        out += [(f"rnn_recurrence_backward (clip {clip:g})", "dz", rel(dz, dz2)),
                (f"rnn_recurrence_backward (clip {clip:g})", "dh0", rel(dh0, dh02))]
    x_pad, w = r(N, T + 2, 64), r(3, 64, 32)
    out.append(("conv1d_forward", "out", rel(k.conv1d_forward(x_pad, w), k.conv1d_forward_numpy(x_pad, w))))
    dout = r(N, T, 32)
    (dx, dw), (dx2, dw2) = k.conv1d_backward(dout, x_pad, w), k.conv1d_backward_numpy(dout, x_pad, w)
    out += [("conv1d_backward", "dx_pad", rel(dx, dx2)), ("conv1d_backward", "dw", rel(dw, dw2))]
    xp = r(N, T + 2, 64)
    (o, am), (o2, am2) = k.maxpool1d_forward(xp, 3, 1), k.maxpool1d_forward_numpy(xp, 3, 1)
    out += [("maxpool1d_forward", "out", rel(o, o2)), ("maxpool1d_forward", "argmax", float(np.mean(am != am2)))]
    dpo = r(*o.shape)
    out.append(("maxpool1d_backward", "dx_pad", rel(k.maxpool1d_backward(dpo, am, T + 2),
                                                    k.maxpool1d_backward_numpy(dpo, am, T + 2))))
    x = r(N, T, F)
    idx = np.clip(np.arange(T)[:, None] + np.arange(-1, 2)[None, :], 0, T - 1)
    out.append(("context_forward", "out", rel(k.context_forward(x, idx), k.context_forward_numpy(x, idx))))
    dc = r(N, T, 3 * F)
    out.append(("context_backward", "dx", rel(k.context_backward(dc, idx, F), k.context_backward_numpy(dc, idx, F))))
    a, X = r(N, T, 2 * F), np.abs(r(N, T, F))
    (y1, y2), (z1, z2) = k.mask_forward(a, X, 1e-8), k.mask_forward_numpy(a, X, 1e-8)
    out += [("mask_forward", "y1", rel(y1, z1)), ("mask_forward", "y2", rel(y2, z2))]
    d1, d2 = r(N, T, F), r(N, T, F)
    (da, dX), (da2, dX2) = k.mask_backward(d1, d2, a, X, 1e-8), k.mask_backward_numpy(d1, d2, a, X, 1e-8)
    out += [("mask_backward", "da", rel(da, da2)), ("mask_backward", "dX", rel(dX, dX2))]
    t1, t2 = np.abs(r(N, T, F)), np.abs(r(N, T, F))
    res, res2 = (k.discriminative_squared_error(y1, y2, t1, t2, 0.05, 1e-3),
                 k.discriminative_squared_error_numpy(y1, y2, t1, t2, 0.05, 1e-3))
    out += [("discriminative_squared_error", name, rel(u, v)) for name, u, v in zip(("loss", "dy1", "dy2"), res, res2)]
    p, g, m, v = r(H, H), r(H, H), r(H, H), np.abs(r(H, H))
    pa, ma, va = p.copy(), m.copy(), v.copy()
    k.adam_update(pa, g, ma, va, 1e-3, 0.9, 0.999, 1e-8)
    pb, mb, vb = p.copy(), m.copy(), v.copy()
    k.adam_update_numpy(pb, g, mb, vb, 1e-3, 0.9, 0.999, 1e-8)
    out += [("adam_update", "p", rel(pa, pb)), ("adam_update", "m", rel(ma, mb)), ("adam_update", "v", rel(va, vb))]
    out.append(("sum_of_squares", "s", rel(k.sum_of_squares(g), k.sum_of_squares_numpy(g))))
    return out


def main():
    r64, r32 = rows(np.float64), rows(np.float32)
    w = max(len(f"{a} {b}") for a, b, _ in r64)
    print(f"{'kernel / output':<{w}}  {'float64':>9}  {'float32':>9}   (||fast - twin|| / ||twin||)")
    for (a, b, e64), (_, _, e32) in zip(r64, r32):
        print(f"{a + ' ' + b:<{w}}  {e64:9.1e}  {e32:9.1e}")


if __name__ == "__main__":
    main()
