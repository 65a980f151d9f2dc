"""Numba kernels for the hot loops, each beside the plain NumPy twin that a test holds it to.

Every kernel here is private (``_name``) and compiled with ``@njit(cache=True)``; its twin
``name_numpy`` states the same computation in vectorised NumPy, readable against the maths.
The public entry point ``name`` calls the kernel (the convolution, which is one GEMM once
unfolded, calls NumPy's BLAS instead, and is held to its twin all the same).  No kernel
calls BLAS itself: inside Numba that would be SciPy's OpenBLAS, a second thread pool beside
NumPy's (see the recurrence below); ``bench/RESULTS.md`` measures what each choice bought.
``tests/test_kernels.py`` asserts that each kernel and its twin agree, and the suite also runs
with ``NUMBA_DISABLE_JIT=1`` so that the kernels' Python bodies are checked too.
"""
import numpy as np
from numba import njit


# --------------------------------------------------------------------------- overlap-add
@njit(cache=True)
def _overlap_add(frames, hop_length, out):
    T, n = frames.shape
    for t in range(T):
        start = t * hop_length
        for i in range(n):
            out[start + i] += frames[t, i]
    return out


def overlap_add_numpy(frames, hop_length, length):
    """Sum ``frames`` (T, n) into a signal, frame t starting at sample ``t * hop_length``.

    Vectorised twin of :func:`overlap_add`: one ``np.add.at`` over all frame indices.
    """
    T, n = frames.shape
    out = np.zeros(length, dtype=frames.dtype)
    idx = np.arange(T)[:, None] * hop_length + np.arange(n)[None, :]  # T,n sample index
    np.add.at(out, idx.ravel(), frames.ravel())
    return out


def overlap_add(frames, hop_length, length):
    """Overlap-add frames (T, n) at ``hop_length`` into a signal of ``length`` samples.

    ``length`` must be at least ``(T - 1) * hop_length + n``.
    """
    frames = np.ascontiguousarray(frames)
    out = np.zeros(length, dtype=frames.dtype)
    return _overlap_add(frames, int(hop_length), out)


# --------------------------------------------------------------------------- RNN recurrence
# The recurrence h_t = relu(xw_t + h_{t-1} Wh) is the only part of a ReLU RNN that cannot be
# batched over time; scratchnet.recurrent computes xw = x Wx + b for all frames in one GEMM
# and hands the loop over t to these kernels.  Each step is an (N,H) x (H,H) product with N
# rows only (10 in training, 1 in separation), and the rows are ReLU outputs, about half of
# them zeros.  BLAS is a poor fit there: it packs all of Wh for every step, cannot skip the
# zeros, and, called from Numba, uses SciPy's OpenBLAS -- a second thread pool beside
# NumPy's, and a barrier per step when threaded (a hundred times slower under load; see
# bench/RESULTS.md).  So the product is written out below: single-threaded, no BLAS.
@njit(cache=True)
def _accumulate_matmul(src, s, W, dst, d, idx):
    """``dst[n, d] += src[n, s] @ W`` for every n, skipping the zero entries of ``src[n, s]``.

    src (N,*,K), W (K,M), dst (N,*,M); idx is scratch space of K ints.  Each row of W is
    added in whole to the output row (a vectorised AXPY), four rows per sweep to cut the
    loads and stores of the output, and W is visited in chunks of rows that stay in cache
    while every n uses them.
    """
    N, K = src.shape[0], src.shape[2]
    M = W.shape[1]
    zero = src.dtype.type(0)
    chunk = max(16, 65536 // M)  # 65536 floats of W: 256 KB in float32, within L2
    for k0 in range(0, K, chunk):
        k1 = min(k0 + chunk, K)
        for n in range(N):
            m = 0  # the nonzero inputs of this row and chunk
            for k in range(k0, k1):
                if src[n, s, k] != zero:
                    idx[m] = k
                    m += 1
            o = dst[n, d]  # M
            i = 0
            while i + 4 <= m:
                ka, kb, kc, kd = idx[i], idx[i + 1], idx[i + 2], idx[i + 3]
                pa, pb, pc, pd = src[n, s, ka], src[n, s, kb], src[n, s, kc], src[n, s, kd]
                wa, wb, wc, wd = W[ka], W[kb], W[kc], W[kd]
                for j in range(M):
                    o[j] += pa * wa[j] + pb * wb[j] + pc * wc[j] + pd * wd[j]
                i += 4
            while i < m:
                p, w = src[n, s, idx[i]], W[idx[i]]
                for j in range(M):
                    o[j] += p * w[j]
                i += 1


@njit(cache=True)
def _rnn_recurrence_forward(xw, h0, Wh):
    N, T, H = xw.shape
    zero = xw.dtype.type(0)  # typed zero: keeps float32 in float32
    idx = np.empty(H, np.int64)
    h = xw.copy()  # N,T,H: each step adds h_{t-1} Wh to its xw_t, then applies the ReLU
    h0_3 = h0.reshape(N, 1, H)
    for t in range(T):
        if t == 0:
            _accumulate_matmul(h0_3, 0, Wh, h, 0, idx)
        else:
            _accumulate_matmul(h, t - 1, Wh, h, t, idx)
        for n in range(N):
            for j in range(H):
                if not h[n, t, j] > zero:  # ReLU (NaN -> 0, as max(z, 0) would not)
                    h[n, t, j] = zero
    return h


def rnn_recurrence_forward_numpy(xw, h0, Wh):
    """Twin of :func:`rnn_recurrence_forward`: the same loop, time-major, with ``@``."""
    xw_tm = np.moveaxis(xw, 1, 0)  # T,N,H
    hs = []
    prev = h0
    for xw_t in xw_tm:
        prev = np.maximum(xw_t + prev @ Wh, 0)
        hs.append(prev)
    return np.stack(hs, axis=1)  # N,T,H


def rnn_recurrence_forward(xw, h0, Wh):
    """Run ``h_t = relu(xw_t + h_{t-1} Wh)`` over t; xw (N,T,H), h0 (N,H) or None, Wh (H,H).

    Returns h (N,T,H) in the common float dtype of the inputs.
    """
    dtype = np.result_type(xw, Wh, np.float32)
    xw = np.ascontiguousarray(xw, dtype=dtype)
    N, T, H = xw.shape
    h0 = np.zeros((N, H), dtype) if h0 is None else np.ascontiguousarray(h0, dtype=dtype)
    return _rnn_recurrence_forward(xw, h0, np.ascontiguousarray(Wh, dtype=dtype))


@njit(cache=True)
def _rnn_recurrence_backward(dh, h, WhT, clip):
    N, T, H = dh.shape
    zero = dh.dtype.type(0)
    c = dh.dtype.type(clip)
    clipping = c > zero and c < np.inf  # convention: clip <= 0 or inf means no clipping
    idx = np.empty(H, np.int64)
    dz = np.empty_like(dh)
    carry = np.zeros((N, 1, H), dh.dtype)  # dL/dh_t arriving from step t+1: none after T-1
    for t in range(T - 1, -1, -1):
        for n in range(N):
            for j in range(H):
                # total gradient on h_t, through the ReLU (h > 0 exactly where z > 0)
                dz[n, t, j] = dh[n, t, j] + carry[n, 0, j] if h[n, t, j] > zero else zero
                carry[n, 0, j] = zero
        _accumulate_matmul(dz, t, WhT, carry, 0, idx)  # N,H gradient on h_{t-1}: dz_t Wh^T
        if clipping:
            for n in range(N):
                for j in range(H):
                    carry[n, 0, j] = min(max(carry[n, 0, j], -c), c)
    return dz, carry.reshape(N, H)


def rnn_recurrence_backward_numpy(dh, h, h0, Wh, clip):
    """Twin of :func:`rnn_recurrence_backward`, with ``np.clip`` and the ReLU mask as a product."""
    N, T, H = dh.shape
    dz = np.zeros_like(dh)
    carry = np.zeros((N, H), dh.dtype)
    for t in reversed(range(T)):
        dz[:, t] = (dh[:, t] + carry) * (h[:, t] > 0)
        carry = dz[:, t] @ Wh.T
        if clip is not None and 0 < clip < np.inf:
            carry = np.clip(carry, -clip, clip)
    return dz, carry


def rnn_recurrence_backward(dh, h, h0, Wh, clip=0.0):
    """Backward of :func:`rnn_recurrence_forward`: gradients on the pre-activations and h0.

    dh (N,T,H) holds the upstream gradient of every h_t; the kernel adds the gradient carried
    back from step t+1 itself.  ``h0`` (N,H) or None is not read (dh0 comes out of the
    recurrence); it is taken so that the call mirrors the forward.  ``clip`` > 0 clips the
    carried gradient to [-clip, clip] after every step; None, 0, a negative value or inf
    means no clipping.  Returns dz (N,T,H) and dh0 (N,H).
    """
    dtype = np.result_type(dh, h, Wh, np.float32)
    dh = np.ascontiguousarray(dh, dtype=dtype)
    clip = 0.0 if clip is None else float(clip)
    WhT = np.ascontiguousarray(np.asarray(Wh, dtype=dtype).T)  # rows of Wh^T: AXPYs, as forward
    return _rnn_recurrence_backward(dh, np.ascontiguousarray(h, dtype=dtype), WhT, clip)


# --------------------------------------------------------------------------- conv1d
# A 1-D convolution over time is one GEMM once every output frame's K input frames are laid
# side by side ("im2col"): x_unf[n, t] = [x_pad[n, t], ..., x_pad[n, t+K-1]], a row of K*Cin,
# and out = x_unf @ w.reshape(K*Cin, Cout).  The unfolding is K slice copies; the GEMM runs in
# NumPy's BLAS (the one thread pool of the package) with the largest inner dimension the
# layer offers, which is what BLAS is fastest at.  The backward folds the unfolded gradient
# back with K shifted slice additions.  No Numba: there is no loop left that NumPy does not
# already run at full speed.
def _unfold(x_pad, K):
    """Rows (N*T, K*Cin): row n*T + t holds frames t .. t+K-1 of x_pad[n], side by side."""
    N, T_pad, Cin = x_pad.shape
    T = T_pad - K + 1
    x_unf = np.empty((N, T, K, Cin), x_pad.dtype)
    for k in range(K):
        x_unf[:, :, k] = x_pad[:, k:k + T]  # N,T,Cin: tap k of every output frame
    return x_unf.reshape(N * T, K * Cin)


def conv1d_forward_numpy(x_pad, w):
    """Twin of :func:`conv1d_forward`: ``einsum`` over a sliding window of K frames."""
    K = w.shape[0]
    win = np.lib.stride_tricks.sliding_window_view(x_pad, K, axis=1)  # N,T,Cin,K
    return np.einsum("ntck,kco->nto", win, w)


def conv1d_backward_numpy(dout, x_pad, w):
    """Twin of :func:`conv1d_backward`: dx_pad is a full correlation of dout with the flipped w."""
    K = w.shape[0]
    win = np.lib.stride_tricks.sliding_window_view(x_pad, K, axis=1)  # N,T,Cin,K
    dw = np.einsum("ntck,nto->kco", win, dout)
    dout_pad = np.pad(dout, ((0, 0), (K - 1, K - 1), (0, 0)))
    dwin = np.lib.stride_tricks.sliding_window_view(dout_pad, K, axis=1)  # N,T_pad,Cout,K
    # dx_pad[s] = sum_k dout[s - k] w[k]; window position j holds dout[s - (K-1) + j]
    dx_pad = np.einsum("nsoj,jco->nsc", dwin, w[::-1])
    return dx_pad, dw


def _common_float(*arrays):
    dtype = np.result_type(*arrays, np.float32)
    return [np.ascontiguousarray(a, dtype=dtype) for a in arrays]


def conv1d_forward(x_pad, w):
    """Valid 1-D correlation over time: x_pad (N,T+K-1,Cin), w (K,Cin,Cout) -> (N,T,Cout).

    ``out[n, t, o] = sum_k sum_c x_pad[n, t + k, c] w[k, c, o]``.
    """
    x_pad, w = _common_float(x_pad, w)
    K, Cin, Cout = w.shape
    N, T_pad, _ = x_pad.shape
    out = _unfold(x_pad, K) @ w.reshape(K * Cin, Cout)  # N*T,Cout: the whole layer in one GEMM
    return out.reshape(N, T_pad - K + 1, Cout)


def conv1d_backward(dout, x_pad, w, *, input_grad=True):
    """Backward of :func:`conv1d_forward`: dout (N,T,Cout) -> dx_pad (N,T_pad,Cin), dw (K,Cin,Cout).

    ``input_grad=False`` skips dx_pad (returned as None), a GEMM as large as the forward's,
    for a first layer whose input gradient nobody uses.
    """
    dout, x_pad, w = _common_float(dout, x_pad, w)
    K, Cin, Cout = w.shape
    N, T_pad, _ = x_pad.shape
    T = T_pad - K + 1
    dout_rows = dout.reshape(N * T, Cout)
    dw = (_unfold(x_pad, K).T @ dout_rows).reshape(K, Cin, Cout)  # sum over all N*T frames
    if not input_grad:
        return None, dw
    dx_unf = (dout_rows @ w.reshape(K * Cin, Cout).T).reshape(N, T, K, Cin)
    dx_pad = np.zeros((N, T_pad, Cin), dout.dtype)
    for k in range(K):
        dx_pad[:, k:k + T] += dx_unf[:, :, k]  # fold: frame t+k received tap k of frame t
    return dx_pad, dw


# --------------------------------------------------------------------------- maxpool1d
@njit(cache=True)
def _maxpool1d_forward(x_pad, pool, stride, out, argmax):
    N, T_out, C = out.shape
    for n in range(N):
        for t in range(T_out):
            s = t * stride
            for c in range(C):
                out[n, t, c] = x_pad[n, s, c]
                argmax[n, t, c] = s
            for i in range(s + 1, s + pool):
                for c in range(C):
                    if x_pad[n, i, c] > out[n, t, c]:  # strict: ties keep the first frame
                        out[n, t, c] = x_pad[n, i, c]
                        argmax[n, t, c] = i
    return out, argmax


@njit(cache=True)
def _maxpool1d_backward(dout, argmax, dx_pad):
    N, T_out, C = dout.shape
    for n in range(N):
        for t in range(T_out):
            for c in range(C):
                dx_pad[n, argmax[n, t, c], c] += dout[n, t, c]  # += : windows overlap
    return dx_pad


def maxpool1d_forward_numpy(x_pad, pool, stride):
    """Twin of :func:`maxpool1d_forward`: max and argmax over a sliding window view."""
    win = np.lib.stride_tricks.sliding_window_view(x_pad, pool, axis=1)[:, ::stride]  # N,T_out,C,pool
    start = (np.arange(win.shape[1]) * stride)[None, :, None]
    return win.max(axis=-1), win.argmax(axis=-1) + start  # argmax: first of ties


def maxpool1d_backward_numpy(dout, argmax, T_pad):
    """Twin of :func:`maxpool1d_backward`: one ``np.add.at`` scatter."""
    N, T_out, C = dout.shape
    dx_pad = np.zeros((N, T_pad, C), dout.dtype)
    n = np.arange(N)[:, None, None]
    c = np.arange(C)[None, None, :]
    np.add.at(dx_pad, (n, argmax, c), dout)
    return dx_pad


def maxpool1d_forward(x_pad, pool, stride):
    """Max over windows of ``pool`` frames every ``stride`` frames: x_pad (N,T_pad,C).

    Returns out (N,T_out,C) with ``T_out = 1 + (T_pad - pool) // stride`` and argmax
    (N,T_out,C), the padded-frame index of each maximum (the first one on ties).
    """
    x_pad = np.ascontiguousarray(x_pad)
    N, T_pad, C = x_pad.shape
    T_out = 1 + (T_pad - pool) // stride
    out = np.empty((N, T_out, C), x_pad.dtype)
    argmax = np.empty((N, T_out, C), np.int64)
    return _maxpool1d_forward(x_pad, int(pool), int(stride), out, argmax)


def maxpool1d_backward(dout, argmax, T_pad):
    """Route dout (N,T_out,C) to the argmax frames: returns dx_pad (N,T_pad,C)."""
    dout = np.ascontiguousarray(dout)
    dx_pad = np.zeros((dout.shape[0], int(T_pad), dout.shape[2]), dout.dtype)
    return _maxpool1d_backward(dout, np.ascontiguousarray(argmax, dtype=np.int64), dx_pad)


# --------------------------------------------------------------------------- context window
# Huang's context window copies each frame's neighbours beside it; the backward adds each
# copy's gradient back to its frame.  NumPy's fancy indexing and np.add.at (the twins) make
# index arrays and, for add.at, run an unbuffered scatter ten times slower than these loops.
@njit(cache=True)
def _context_forward(x, idx, out):
    N, T, F = x.shape
    J = idx.shape[1]
    for n in range(N):
        for t in range(T):
            for j in range(J):
                s = idx[t, j]
                for f in range(F):
                    out[n, t, j * F + f] = x[n, s, f]
    return out


@njit(cache=True)
def _context_backward(dout, idx, dx):
    N, T, F = dx.shape
    J = idx.shape[1]
    for n in range(N):
        for t in range(T):
            for j in range(J):
                s = idx[t, j]
                for f in range(F):
                    dx[n, s, f] += dout[n, t, j * F + f]  # += : edge frames are copied repeatedly
    return dx


def context_forward_numpy(x, idx):
    """Twin of :func:`context_forward`: one fancy index, ``x[:, idx]``."""
    N, T, F = x.shape
    return x[:, idx, :].reshape(N, T, idx.shape[1] * F)


def context_backward_numpy(dout, idx, F):
    """Twin of :func:`context_backward`: one ``np.add.at`` scatter."""
    N, T = dout.shape[:2]
    dx = np.zeros((N, T, F), dout.dtype)
    np.add.at(dx, (slice(None), idx), dout.reshape(N, T, idx.shape[1], F))
    return dx


def context_forward(x, idx):
    """Gather frames: x (N,T,F), idx (T,J) frame indices -> out (N,T,J*F), block j = x[:, idx[:, j]]."""
    x = np.ascontiguousarray(x)
    N, T, F = x.shape
    out = np.empty((N, T, idx.shape[1] * F), x.dtype)
    return _context_forward(x, np.ascontiguousarray(idx, dtype=np.int64), out)


def context_backward(dout, idx, F):
    """Backward of :func:`context_forward`: dout (N,T,J*F) -> dx (N,T,F)."""
    dout = np.ascontiguousarray(dout)
    dx = np.zeros((dout.shape[0], dout.shape[1], int(F)), dout.dtype)
    return _context_backward(dout, np.ascontiguousarray(idx, dtype=np.int64), dx)


# --------------------------------------------------------------------------- soft mask
# Huang's soft mask in one pass over the bins each way, instead of a dozen NumPy temporaries;
# the backward recomputes the gains from a and X rather than caching five arrays.
@njit(cache=True)
def _mask_forward(a, X, eps, y1, y2):
    N, T, F = X.shape
    e = X.dtype.type(eps)
    for n in range(N):
        for t in range(T):
            for f in range(F):
                m1, m2 = abs(a[n, t, f]), abs(a[n, t, F + f])
                s = m1 + m2 + e
                y1[n, t, f] = m1 / s * X[n, t, f]
                y2[n, t, f] = m2 / s * X[n, t, f]
    return y1, y2


@njit(cache=True)
def _mask_backward(dy1, dy2, a, X, eps, da, dX):
    N, T, F = X.shape
    e = X.dtype.type(eps)
    for n in range(N):
        for t in range(T):
            for f in range(F):
                a1, a2 = a[n, t, f], a[n, t, F + f]
                m1, m2 = abs(a1), abs(a2)
                s = m1 + m2 + e
                g1, g2 = m1 / s, m2 / s
                d1, d2 = dy1[n, t, f], dy2[n, t, f]
                dx = d1 * g1 + d2 * g2
                xs = X[n, t, f] / s
                da[n, t, f] = xs * (d1 - dx) * np.sign(a1)
                da[n, t, F + f] = xs * (d2 - dx) * np.sign(a2)
                dX[n, t, f] = dx
    return da, dX


def mask_forward_numpy(a, X, eps):
    """Twin of :func:`mask_forward`, elementwise NumPy."""
    F = X.shape[-1]
    m1, m2 = np.abs(a[..., :F]), np.abs(a[..., F:])
    s = m1 + m2 + eps
    return m1 / s * X, m2 / s * X


def mask_backward_numpy(dy1, dy2, a, X, eps):
    """Twin of :func:`mask_backward`, elementwise NumPy."""
    F = X.shape[-1]
    a1, a2 = a[..., :F], a[..., F:]
    m1, m2 = np.abs(a1), np.abs(a2)
    s = m1 + m2 + eps
    g1, g2 = m1 / s, m2 / s
    dX = dy1 * g1 + dy2 * g2
    Xs = X / s
    da = np.concatenate([Xs * (dy1 - dX) * np.sign(a1), Xs * (dy2 - dX) * np.sign(a2)], axis=-1)
    return da, dX


def mask_forward(a, X, eps):
    """Soft mask: a (...,2F), X (...,F) -> y1, y2 (...,F), ``y_i = |a_i| / (|a1| + |a2| + eps) X``."""
    a, X = _common_float(a, X)
    F = X.shape[-1]
    X3 = X.reshape(-1, 1, F)  # any leading axes, as rows
    y1, y2 = _mask_forward(a.reshape(-1, 1, 2 * F), X3, float(eps), np.empty_like(X3), np.empty_like(X3))
    return y1.reshape(X.shape), y2.reshape(X.shape)


def mask_backward(dy1, dy2, a, X, eps):
    """Backward of :func:`mask_forward`: dy1, dy2 (...,F) -> da (...,2F), dX (...,F)."""
    dy1, dy2, a, X = _common_float(dy1, dy2, a, X)
    F = X.shape[-1]
    a3, X3 = a.reshape(-1, 1, 2 * F), X.reshape(-1, 1, F)
    da, dX = _mask_backward(dy1.reshape(X3.shape), dy2.reshape(X3.shape), a3, X3, float(eps),
                            np.empty_like(a3), np.empty_like(X3))
    return da.reshape(a.shape), dX.reshape(X.shape)


# --------------------------------------------------------------------------- loss and optimizer
# The end of a training step in one pass each: Huang's discriminative squared error with its
# gradients, Adam's update, and the sum of squares behind the global gradient norm.  In NumPy
# each is a dozen whole-array temporaries (and float64 copies for the sums), which costs as
# much as the GEMMs of a small network.  Each kernel repeats its twin's float operations in
# the same order, in the arrays' dtype, so the two agree to the last bit but for the order
# of the float64 sums.
@njit(cache=True)
def _discriminative_squared_error(y1, y2, t1, t2, gamma, scale, dy1, dy2):
    g, sc, two = y1.dtype.type(gamma), y1.dtype.type(scale), y1.dtype.type(2)
    own, other = 0.0, 0.0  # float64 sums of the own-source and other-source terms
    for i in range(y1.size):
        e11, e22 = y1[i] - t1[i], y2[i] - t2[i]
        own += np.float64(e11 * e11) + np.float64(e22 * e22)
        if gamma > 0:
            e21, e12 = y1[i] - t2[i], y2[i] - t1[i]
            other += np.float64(e21 * e21) + np.float64(e12 * e12)
            dy1[i] = (two * e11 - g * (two * e21)) * sc
            dy2[i] = (two * e22 - g * (two * e12)) * sc
        else:
            dy1[i] = two * e11 * sc
            dy2[i] = two * e22 * sc
    return (own - gamma * other) * scale


def discriminative_squared_error_numpy(y1, y2, t1, t2, gamma, scale):
    """Twin of :func:`discriminative_squared_error`, whole-array NumPy."""
    e11, e22, e21, e12 = y1 - t1, y2 - t2, y1 - t2, y2 - t1
    loss = np.sum(e11 * e11, dtype=np.float64) + np.sum(e22 * e22, dtype=np.float64)
    dy1, dy2 = 2 * e11, 2 * e22
    if gamma > 0:
        loss -= gamma * (np.sum(e21 * e21, dtype=np.float64) + np.sum(e12 * e12, dtype=np.float64))
        dy1, dy2 = dy1 - gamma * (2 * e21), dy2 - gamma * (2 * e12)
    return float(loss * scale), dy1 * scale, dy2 * scale


def discriminative_squared_error(y1, y2, t1, t2, gamma, scale):
    """Huang's discriminative squared error and its gradients, in one pass.

    ``loss = scale (|y1-t1|^2 + |y2-t2|^2 - gamma (|y1-t2|^2 + |y2-t1|^2))`` summed in
    float64; ``dy1 = scale (2 (y1-t1) - gamma 2 (y1-t2))``, ``dy2`` likewise, computed in the
    common float dtype of the four same-shape arrays and returned in the dtype of ``y1``.
    Returns ``(loss, dy1, dy2)``.
    """
    out_dtype = np.asarray(y1).dtype
    y1, y2, t1, t2 = _common_float(y1, y2, t1, t2)
    dy1, dy2 = np.empty_like(y1), np.empty_like(y2)
    flat = [a.reshape(-1) for a in (y1, y2, t1, t2, dy1, dy2)]
    loss = _discriminative_squared_error(*flat[:4], float(gamma), float(scale), *flat[4:])
    return float(loss), dy1.astype(out_dtype, copy=False), dy2.astype(out_dtype, copy=False)


@njit(cache=True)
def _adam_update(p, g, m, v, lr_t, beta1, beta2, eps):
    dt = p.dtype.type
    b1, b2, c1, c2 = dt(beta1), dt(beta2), dt(1 - beta1), dt(1 - beta2)
    lr, e = dt(lr_t), dt(eps)
    for i in range(p.size):
        m[i] = m[i] * b1 + c1 * g[i]
        v[i] = v[i] * b2 + c2 * g[i] * g[i]
        p[i] -= lr * m[i] / (np.sqrt(v[i]) + e)


def adam_update_numpy(p, g, m, v, lr_t, beta1, beta2, eps):
    """Twin of :func:`adam_update`: the same update with in-place NumPy operations."""
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    p -= float(lr_t) * m / (np.sqrt(v) + eps)


def adam_update(p, g, m, v, lr_t, beta1, beta2, eps):
    """One Adam step in place: ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g^2``,
    ``p -= lr_t m / (sqrt(v) + eps)``, with the bias corrections folded into ``lr_t``.

    ``p``, ``m`` and ``v`` must be contiguous arrays of one float dtype (they are updated in
    place); ``g`` is converted to it.
    """
    if not all(a.flags.c_contiguous and a.dtype == p.dtype for a in (p, m, v)):
        raise ValueError("adam_update: p, m and v must be C-contiguous arrays of one dtype")
    g = np.ascontiguousarray(g, dtype=p.dtype)
    _adam_update(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1),
                 float(lr_t), float(beta1), float(beta2), float(eps))


@njit(cache=True)
def _sum_of_squares(a):
    total = 0.0
    for i in range(a.size):
        total += np.float64(a[i]) * np.float64(a[i])
    return total


def sum_of_squares_numpy(a):
    """Twin of :func:`sum_of_squares`."""
    return float(np.sum(np.square(a, dtype=np.float64)))


def sum_of_squares(a):
    """``sum(a**2)`` accumulated in float64, without a float64 copy of ``a``."""
    return float(_sum_of_squares(np.ascontiguousarray(a).reshape(-1)))
