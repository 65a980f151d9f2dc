"""Numba kernels for the hot loops, each beside the plain NumPy twin that a test holds it to.

Every kernel here is private (``_name``) and compiled with ``@njit(cache=True)``; its twin
``name_numpy`` states the same computation in vectorised NumPy, readable against the maths.
The public entry point ``name`` calls the kernel.  ``tests/test_kernels.py`` asserts that the
two agree, and the suite also runs with ``NUMBA_DISABLE_JIT=1`` so that the kernels' Python
bodies are checked too.
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
# and hands the loop over t to these kernels (one (N,H)x(H,H) GEMM per step).
@njit(cache=True)
def _rnn_recurrence_forward(xw, h0, Wh):
    N, T, H = xw.shape
    zero = xw.dtype.type(0)  # typed zero: keeps float32 in float32
    h = np.empty_like(xw)
    prev = h0.copy()  # N,H: h_{t-1}, contiguous for the GEMM
    for t in range(T):
        hw = np.dot(prev, Wh)  # N,H
        for n in range(N):
            for j in range(H):
                z = xw[n, t, j] + hw[n, j]  # pre-activation
                prev[n, j] = z if z > zero else zero  # ReLU
                h[n, t, j] = prev[n, j]
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
def _rnn_recurrence_backward(dh, h, Wh, clip):
    N, T, H = dh.shape
    zero = dh.dtype.type(0)
    c = dh.dtype.type(clip)
    clipping = c > zero and c < np.inf  # convention: clip <= 0 or inf means no clipping
    dz = np.empty_like(dh)
    dz_t = np.empty((N, H), dh.dtype)  # contiguous for the GEMM
    carry = np.zeros((N, H), dh.dtype)  # dL/dh_t arriving from step t+1: none after T-1
    for t in range(T - 1, -1, -1):
        for n in range(N):
            for j in range(H):
                g = dh[n, t, j] + carry[n, j]  # total gradient on h_t
                dz_t[n, j] = g if h[n, t, j] > zero else zero  # through the ReLU
                dz[n, t, j] = dz_t[n, j]
        carry = np.dot(dz_t, Wh.T)  # N,H gradient on h_{t-1}
        if clipping:
            for n in range(N):
                for j in range(H):
                    carry[n, j] = min(max(carry[n, j], -c), c)
    return dz, carry


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
    return _rnn_recurrence_backward(dh, np.ascontiguousarray(h, dtype=dtype),
                                    np.ascontiguousarray(Wh, dtype=dtype), clip)


# --------------------------------------------------------------------------- conv1d
# One GEMM per tap k: out[n, t] += x_pad[n, t + k] @ w[k].  The batch is flattened to rows
# r = n * T_pad + t of a (N*T_pad, Cin) matrix, so that tap k is the contiguous row block
# x_flat[k : k + R] and the GEMM runs over the whole batch at once.  Rows with t >= T straddle
# two sequences; they are computed and thrown away ((K-1)/T_pad of the work).
@njit(cache=True)
def _conv1d_forward(x_pad, w):
    N, T_pad, Cin = x_pad.shape
    K, _, Cout = w.shape
    T = T_pad - K + 1
    R = N * T_pad - K + 1  # rows of the flat output; row n*T_pad + t is out[n, t]
    x_flat = x_pad.reshape(N * T_pad, Cin)
    out_flat = np.zeros((R, Cout), x_pad.dtype)
    for k in range(K):
        tap = np.dot(x_flat[k:k + R], w[k])  # R,Cout: tap k for the whole batch
        for r in range(R):
            for o in range(Cout):
                out_flat[r, o] += tap[r, o]
    out = np.empty((N, T, Cout), x_pad.dtype)
    for n in range(N):
        for t in range(T):
            for o in range(Cout):
                out[n, t, o] = out_flat[n * T_pad + t, o]
    return out


@njit(cache=True)
def _conv1d_backward(dout, x_pad, w):
    N, T_pad, Cin = x_pad.shape
    K, _, Cout = w.shape
    T = T_pad - K + 1
    R = N * T_pad - K + 1
    x_flat = x_pad.reshape(N * T_pad, Cin)
    dout_flat = np.zeros((R, Cout), x_pad.dtype)  # rows that straddle sequences stay zero
    for n in range(N):
        for t in range(T):
            for o in range(Cout):
                dout_flat[n * T_pad + t, o] = dout[n, t, o]
    dw = np.empty_like(w)
    dx_flat = np.zeros((N * T_pad, Cin), x_pad.dtype)
    for k in range(K):
        dwk = np.dot(x_flat[k:k + R].T, dout_flat)  # Cin,Cout
        for c in range(Cin):  # element loops, not dw[k] = ...: the slice store compiles slowly
            for o in range(Cout):
                dw[k, c, o] = dwk[c, o]
        dtap = np.dot(dout_flat, w[k].T)  # R,Cin
        for r in range(R):
            for c in range(Cin):
                dx_flat[k + r, c] += dtap[r, c]
    return dx_flat.reshape(N, T_pad, Cin), dw


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
    return _conv1d_forward(x_pad, w)


def conv1d_backward(dout, x_pad, w):
    """Backward of :func:`conv1d_forward`: dout (N,T,Cout) -> dx_pad (N,T_pad,Cin), dw (K,Cin,Cout)."""
    dout, x_pad, w = _common_float(dout, x_pad, w)
    return _conv1d_backward(dout, x_pad, w)


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
