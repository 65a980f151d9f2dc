"""Each fast kernel or fast pair against its plain NumPy twin at the sizes training uses: one table.

    python bench/kernel_agreement.py

Prints the relative difference ``||fast - twin|| / ||twin||`` of every output, in float64
and float32 (the tests assert the same agreement at small sizes, with and without the JIT).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from scratchnet import losses, optimizers, signal  # noqa: E402
from scratchnet.nn import context, conv1d, mask, maxpool1d, rnn  # noqa: E402


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def rows(dtype):
    rng = np.random.default_rng(0)
    r = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    N, T, H, F = 10, 100, 500, 513
    out = []
    frames = r(300, 1024)
    out.append(("overlap_add", "y", rel(signal.overlap_add(frames, 512, 300 * 512 + 512),
                                        signal.overlap_add_numpy(frames, 512, 300 * 512 + 512))))
    xw, h0, Wh = r(N, T, H), np.zeros((N, H), dtype), (0.03 * r(H, H)).astype(dtype)
    h, h_twin = rnn.recurrence_forward(xw, h0, Wh), rnn.recurrence_forward_numpy(xw, h0, Wh)
    out.append(("rnn recurrence_forward", "h", rel(h, h_twin)))
    dh = r(N, T, H)
    for clip in (0.0, 1.0):
        (dz, dh0), (dz2, dh02) = (rnn.recurrence_backward(dh, h, h0, Wh, clip),
                                  rnn.recurrence_backward_numpy(dh, h, h0, Wh, clip))
        out += [(f"rnn recurrence_backward (clip {clip:g})", "dz", rel(dz, dz2)),
                (f"rnn recurrence_backward (clip {clip:g})", "dh0", rel(dh0, dh02))]
    x, w, b = r(N, T, 64), r(3, 64, 32), r(32)
    (o, c), (o2, c2) = conv1d.conv1d_forward_fast(x, w, b), conv1d.conv1d_forward(x, w, b)
    out.append(("conv1d_forward_fast", "out", rel(o, o2)))
    dout = r(N, T, 32)
    g, g2 = conv1d.conv1d_backward_fast(dout, c), conv1d.conv1d_backward(dout, c2)
    out += [("conv1d_backward_fast", name, rel(u, v)) for name, u, v in zip(("dx", "dw", "db"), g, g2)]
    xp = r(N, T, 64)
    (o, c), (o2, c2) = maxpool1d.maxpool1d_forward_fast(xp, 3, 1), maxpool1d.maxpool1d_forward(xp, 3, 1)
    out += [("maxpool1d_forward_fast", "out", rel(o, o2)),
            ("maxpool1d_forward_fast", "argmax", float(np.mean(c[0] != c2[0])))]
    dpo = r(*o.shape)
    out.append(("maxpool1d_backward_fast", "dx", rel(maxpool1d.maxpool1d_backward_fast(dpo, c),
                                                    maxpool1d.maxpool1d_backward(dpo, c2))))
    x = r(N, T, F)
    (o, c), (o2, c2) = context.context_forward_fast(x, 1), context.context_forward(x, 1)
    out.append(("context_forward_fast", "out", rel(o, o2)))
    dc = r(N, T, 3 * F)
    out.append(("context_backward_fast", "dx", rel(context.context_backward_fast(dc, c),
                                                   context.context_backward(dc, c2))))
    a, X = r(N, T, 2 * F), np.abs(r(N, T, F))
    ((y1, y2), c), ((z1, z2), c2) = mask.mask_forward_fast(a, X, 1e-8), mask.mask_forward(a, X, 1e-8)
    out += [("mask_forward_fast", "y1", rel(y1, z1)), ("mask_forward_fast", "y2", rel(y2, z2))]
    d1, d2 = r(N, T, F), r(N, T, F)
    (da, dX), (da2, dX2) = mask.mask_backward_fast(d1, d2, c), mask.mask_backward(d1, d2, c2)
    out += [("mask_backward_fast", "da", rel(da, da2)), ("mask_backward_fast", "dX", rel(dX, dX2))]
    t1, t2 = np.abs(r(N, T, F)), np.abs(r(N, T, F))
    res, res2 = (losses.discriminative_squared_error(y1, y2, t1, t2, 0.05, 1e-3),
                 losses.discriminative_squared_error_numpy(y1, y2, t1, t2, 0.05, 1e-3))
    out += [("discriminative_squared_error", name, rel(u, v)) for name, u, v in zip(("loss", "dy1", "dy2"), res, res2)]
    p, g, m, v = r(H, H), r(H, H), r(H, H), np.abs(r(H, H))
    pa, ma, va = p.copy(), m.copy(), v.copy()
    optimizers.adam_update(pa, g, ma, va, 1e-3, 0.9, 0.999, 1e-8)
    pb, mb, vb = p.copy(), m.copy(), v.copy()
    optimizers.adam_update_numpy(pb, g, mb, vb, 1e-3, 0.9, 0.999, 1e-8)
    out += [("adam_update", "p", rel(pa, pb)), ("adam_update", "m", rel(ma, mb)), ("adam_update", "v", rel(va, vb))]
    out.append(("sum_of_squares", "s", rel(optimizers.sum_of_squares(g), optimizers.sum_of_squares_numpy(g))))
    return out


def main():
    r64, r32 = rows(np.float64), rows(np.float32)
    w = max(len(f"{a} {b}") for a, b, _ in r64)
    print(f"{'kernel / output':<{w}}  {'float64':>9}  {'float32':>9}   (||fast - twin|| / ||twin||)")
    for (a, b, e64), (_, _, e32) in zip(r64, r32):
        print(f"{a + ' ' + b:<{w}}  {e64:9.1e}  {e32:9.1e}")


if __name__ == "__main__":
    main()
