"""2-D convolution over (time, frequency), with zero padding and a stride, channels last.

Equations, a correlation as in every deep-learning library.  ``x_pad`` is x with ``ph`` zero
frames above and below and ``pw`` zero bins on either side; the stride is ``(sh, sw)``::

    out[n, h, w, o] = b[o] + sum_{i,j,c} x_pad[n, h*sh+i, w*sw+j, c] W[i, j, c, o]   (N, H', W', Cout)
    dW[i, j]        = sum_{n,h,w} x_pad[n, h*sh+i, w*sw+j]^T dout[n, h, w]             (KH, KW, Cin, Cout)
    db              = sum_{n,h,w} dout[n, h, w]                                        (Cout,)
    dx_pad[n, s, r] = sum_{i,j} dil[n, s-i, r-j] W[i, j]^T                            (N, H+2ph, W+2pw, Cin)

with ``H' = (H + 2 ph - KH) // sh + 1`` (W' alike) and ``dil`` the stride-dilated dout: dout[n, h, w]
at (h*sh, w*sw), zeros between.  The last line is a *full* correlation of ``dil`` with the kernel
flipped in both axes (``W[::-1, ::-1]``): each input pixel collects the gradient of every output
whose window covered it, through the same tap.  dx is dx_pad without its padding.  Rows of
x_pad that no window reached (when ``sh`` does not divide ``H + 2 ph - KH``) get no gradient.

``padding="same"`` (odd kernels) pads ``(KH-1)//2`` and ``(KW-1)//2``: with stride 1 the output
keeps the input's size, with stride s it has ``ceil(H / s)`` frames.

The readable pair writes the sums as ``einsum`` over sliding windows.  The fast pair works on
blocks of output rows small enough to stay in cache and never pads a copy of x (the kernels
write the zeros).  Output row h's kernel row i reads input row h*sh + i - ph, and every
output row of a block reads a few of the same input rows: so a block unfolds each of its
input rows once, along frequency only (:func:`_unfold_rows`: row = one pixel, columns = its
KW*Cin neighbours), and takes KH GEMMs, kernel row i times the unfolded rows it reads, summed
by BLAS itself (beta = 1).  With a stride in time the input rows are unfolded phase by phase
(every sh-th row together), so that kernel row i still reads consecutive rows (:class:`_Rows`).
That writes KW*Cin values a pixel and input row where the classic "im2col" writes KH*KW*Cin a
pixel and output row.  Each unfolded row ends with a 1, whose weight is b: the bias costs no
pass of its own, and in backward the GEMM that sums dW gives db.  Backward unfolds each
block again (cheaper than keeping the forward's: a block stays in cache).  dx takes one of
two routes, whichever writes less:

* stride 1 and Cout <= Cin: dx is a stride-1 convolution of dout with the flipped kernel, and
  that one unfolding of dout gives dW as well (``x_block^T dout_unfolded``, the flipped taps);
* otherwise: each block's ``dout W_i^T`` is summed onto the unfolded rows kernel row i read,
  and those are added back onto their pixels by :func:`_fold_rows`, the unfolding's adjoint.

With several kernel threads (:mod:`threads`) each takes a stretch of output rows (of whole
images when folding, whose windows overlap) and its own dW sum; their GEMMs then run on one
BLAS thread each.
"""
import numpy as np
from numba import njit

from .threads import get_threads, over_slices, slices


def _pair(value, name, low):
    """(a, b) from an int or a pair of ints, each >= low; a message naming ``name`` otherwise."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= low for v in pair)):
        kind = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"{name}={value!r} must be {kind} or a pair of them")
    return int(pair[0]), int(pair[1])


def conv2d_geometry(w_shape, stride, padding):
    """``(sh, sw), (ph, pw)`` from the arguments, checked; ``padding`` may be "same" or "valid".

    "same" needs odd kernel sides (it pads (K-1)//2 on both sides of each axis).
    """
    KH, KW = w_shape[:2]
    stride = _pair(stride, "stride", 1)
    if isinstance(padding, str):
        if padding == "valid":
            return stride, (0, 0)
        if padding != "same":
            raise ValueError(f"{padding=} must be 'same', 'valid', an integer >= 0 or a pair of them")
        if KH % 2 == 0 or KW % 2 == 0:
            raise ValueError(f"padding='same' needs an odd kernel, got {KH}x{KW}: give the padding as numbers")
        return stride, ((KH - 1) // 2, (KW - 1) // 2)
    return stride, _pair(padding, "padding", 0)


def _check(x, w, b, stride, padding):
    """The geometry ``(sh, sw), (ph, pw), (H', W')`` after checking every shape."""
    if x.ndim != 4 or w.ndim != 4 or x.shape[3] != w.shape[2] or b.shape != (w.shape[3],):
        raise ValueError(f"conv2d: x {x.shape}, w {w.shape}, b {b.shape} do not fit "
                         f"(N, H, W, Cin) (KH, KW, Cin, Cout) (Cout,)")
    (sh, sw), (ph, pw) = conv2d_geometry(w.shape, stride, padding)
    H, W = x.shape[1:3]
    KH, KW = w.shape[:2]
    if H + 2 * ph < KH or W + 2 * pw < KW:
        raise ValueError(f"conv2d: a {KH}x{KW} kernel does not fit an input of {H}x{W} padded by {(ph, pw)}")
    return (sh, sw), (ph, pw), ((H + 2 * ph - KH) // sh + 1, (W + 2 * pw - KW) // sw + 1)


# --------------------------------------------------------------------------- readable pair
def conv2d_forward(x, w, b, stride=(1, 1), padding=(0, 0)):
    """2-D convolution (a correlation) of channel-last maps.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, Cin)
        Batch, time frames, frequency bins, channels.
    w : ndarray, shape (KH, KW, Cin, Cout)
    b : ndarray, shape (Cout,)
    stride : int or (int, int)
        ``(sh, sw)``: output pixels are taken every sh frames and sw bins.
    padding : int, (int, int), "same" or "valid"
        ``(ph, pw)`` zeros on both sides of each axis; "same" is ``((KH-1)//2, (KW-1)//2)``
        (odd kernels), "valid" is 0.

    Returns
    -------
    out : ndarray, shape (N, H', W', Cout)
        ``H' = (H + 2 ph - KH) // sh + 1``, W' alike.
    cache : tuple

    Examples
    --------
    >>> x, w, b = np.ones((1, 4, 6, 1)), np.ones((3, 3, 1, 2)), np.zeros(2)
    >>> out, _ = conv2d_forward(x, w, b, stride=2, padding="same")
    >>> out.shape, out[0, :, :, 0].tolist()
    ((1, 2, 3, 2), [[4.0, 6.0, 6.0], [6.0, 9.0, 9.0]])
    """
    (sh, sw), (ph, pw), _ = _check(x, w, b, stride, padding)
    KH, KW = w.shape[:2]
    x_pad = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))  # N,H+2ph,W+2pw,Cin
    win = np.lib.stride_tricks.sliding_window_view(x_pad, (KH, KW), axis=(1, 2))[:, ::sh, ::sw]  # N,H',W',Cin,KH,KW
    # optimize: one tensordot instead of einsum's six nested loops (the same sum)
    out = np.einsum("nhwcij,ijco->nhwo", win, w, optimize=True) + b  # N,H',W',Cout
    return out, (x_pad, w, (sh, sw), (ph, pw), x.shape[1:3])


def conv2d_input_grad(dout, w, size, stride, padding):
    """dx of a convolution: the full correlation of the dilated ``dout`` with the flipped kernel.

    Parameters
    ----------
    dout : ndarray, shape (N, H', W', Cout)
    w : ndarray, shape (KH, KW, Cin, Cout)
    size : (int, int)
        ``(H, W)`` of the convolution's input (several sizes give the same H' when sh > 1).
    stride, padding : (int, int)
        ``(sh, sw)`` and ``(ph, pw)``, as numbers.

    Returns
    -------
    dx : ndarray, shape (N, H, W, Cin)
    """
    (sh, sw), (ph, pw) = stride, padding
    KH, KW, Cin, Cout = w.shape
    N, Ho, Wo, _ = dout.shape
    H_pad, W_pad = size[0] + 2 * ph, size[1] + 2 * pw
    dil = np.zeros((N, (Ho - 1) * sh + 1, (Wo - 1) * sw + 1, Cout), dout.dtype)
    dil[:, ::sh, ::sw] = dout  # dout[h, w] at (h*sh, w*sw), zeros between
    extra_h, extra_w = H_pad - (Ho - 1) * sh - KH, W_pad - (Wo - 1) * sw - KW  # rows no window reached
    dil_pad = np.pad(dil, ((0, 0), (KH - 1, KH - 1 + extra_h), (KW - 1, KW - 1 + extra_w), (0, 0)))
    dwin = np.lib.stride_tricks.sliding_window_view(dil_pad, (KH, KW), axis=(1, 2))  # N,H_pad,W_pad,Cout,KH,KW
    # window (k, l) of dil_pad at s holds dil[s - (KH-1) + k]: it meets the flipped tap W[KH-1-k]
    dx_pad = np.einsum("nsrokl,klco->nsrc", dwin, w[::-1, ::-1], optimize=True)  # N,H_pad,W_pad,Cin
    return dx_pad[:, ph:ph + size[0], pw:pw + size[1]]


def conv2d_backward(dout, cache):
    """Backward of :func:`conv2d_forward`: dout (N, H', W', Cout) -> dx (N, H, W, Cin), dw, db."""
    x_pad, w, (sh, sw), (ph, pw), size = cache
    KH, KW = w.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(x_pad, (KH, KW), axis=(1, 2))[:, ::sh, ::sw]  # N,H',W',Cin,KH,KW
    dw = np.einsum("nhwcij,nhwo->ijco", win, dout, optimize=True)  # KH,KW,Cin,Cout
    db = dout.sum(axis=(0, 1, 2))  # Cout
    dx = conv2d_input_grad(dout, w, size, (sh, sw), (ph, pw))  # N,H,W,Cin
    return dx, dw, db


# --------------------------------------------------------------------------- kernels
@njit(cache=True, nogil=True)
def _unfold_rows(x, n, r0, step, count, KW, sw, pw, Wo, U):
    """Rows r = r0 + t*step (t < count) of image n unfolded along frequency only: for u = t*Wo + w,

    ``U[u, j*C + c] = x[n, r, w*sw+j-pw, c]``, 0 where that falls outside x (rows too); and
    ``U[u, KW*C] = 1`` where U has that one column more (the bias's constant input).
    """
    H, W, C = x.shape[1], x.shape[2], x.shape[3]
    K = KW * C
    if U.shape[1] > K:
        for u in range(count * Wo):
            U[u, K] = 1.0
    for t in range(count):
        r = r0 + t * step
        u0 = t * Wo
        for j in range(KW):
            base = j * C
            for wo in range(Wo):
                wj = wo * sw + j - pw
                if 0 <= r < H and 0 <= wj < W:
                    for c in range(C):
                        U[u0 + wo, base + c] = x[n, r, wj, c]
                else:
                    for c in range(C):
                        U[u0 + wo, base + c] = 0.0  # the zero padding
    return U


@njit(cache=True, nogil=True)
def _fold_rows(dU, n, r0, step, count, KW, sw, pw, Wo, dx):
    """The adjoint of :func:`_unfold_rows`: each column of ``dU`` added back onto its pixel."""
    H, W, C = dx.shape[1], dx.shape[2], dx.shape[3]
    for t in range(count):
        r = r0 + t * step
        if r < 0 or r >= H:
            continue  # a padding row: its gradient is dropped
        u0 = t * Wo
        for j in range(KW):
            base = j * C
            for wo in range(Wo):
                wj = wo * sw + j - pw
                if 0 <= wj < W:
                    for c in range(C):
                        dx[n, r, wj, c] += dU[u0 + wo, base + c]  # += : windows overlap
    return dx


# --------------------------------------------------------------------------- fast pair
_ROWS_BYTES = 1 << 21  # a block's unfolded rows: its GEMMs read them KH times, from L2 or L3


def _openblas_local_threads():
    """``openblas_set_num_threads_local`` (OpenBLAS 0.3.27+) of every OpenBLAS loaded (NumPy's and
    SciPy's each bring one), as a list; empty elsewhere than OpenBLAS.

    It sets the number of threads BLAS uses for calls *from the calling thread* only.
    """
    import ctypes
    import scipy.linalg.blas  # noqa: F401 -- loads SciPy's OpenBLAS, which _gemm calls
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and ".so" in ln})
    except OSError:
        return []
    setters = []
    for path in paths:
        fn = getattr(ctypes.CDLL(path), "openblas_set_num_threads_local", None)
        if fn is not None:
            fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
            setters.append(fn)
    return setters


_LOCAL_THREADS = []  # [the setters], looked up on first use


def _one_blas_thread(work):
    """``work`` with BLAS on one thread for this thread's calls, where OpenBLAS allows it.

    When the kernels' threads run the blocks, each block's GEMM is small: BLAS threads of its
    own only wait for each other and for ours (a 16-core Xeon, the batch split over two threads,
    16 -> 16 channels on 4x64x512: 38 ms a step with two BLAS threads, 27 ms with one;
    bench/RESULTS.md).  Elsewhere than OpenBLAS, BLAS is left as it is.
    """
    if not _LOCAL_THREADS:
        _LOCAL_THREADS.append(_openblas_local_threads())
    setters = _LOCAL_THREADS[0]

    def run(*args):
        previous = [set_threads(1) for set_threads in setters]
        try:
            return work(*args)
        finally:
            for set_threads, k in zip(setters, previous):
                set_threads(k)
    return run


def _in_blocks(N, Ho, rows, work, *, whole_images=False):
    """Run ``work(blocks)`` over every output row, one stretch of rows a thread.

    ``blocks`` are ranges (q0, q1) of at most ``rows`` output rows (q = n*Ho + h) of one image
    each.  The threads write disjoint rows of every result; sums over the batch (dW) are taken
    per thread and added in order by the caller.  ``whole_images`` keeps each image on one
    thread (folding adds into input rows that neighbouring output rows share; images share
    none).  Returns the list of what each thread's ``work`` returned, in order.
    """
    unit = Ho if whole_images else 1  # output rows per unit of the split
    results = {}

    def stretch(u0, u1):
        blocks, q, q_end = [], u0 * unit, u1 * unit
        while q < q_end:
            q1 = min(q + rows, q_end, (q // Ho + 1) * Ho)  # a block ends with its image
            blocks.append((q, q1))
            q = q1
        results[u0] = work(blocks)
    units = N if whole_images else N * Ho
    grain = 1 if whole_images else rows  # a thread gets a whole block at least
    if len(slices(units, max(1, min(get_threads(), units // grain)))) > 1:
        over_slices(_one_blas_thread(stretch), units, grain)
    else:
        stretch(0, units)
    return [results[u] for u in sorted(results)]


def _gemm(a, w, c, beta):
    """``c = a @ w + beta * c`` in place (c C-contiguous): BLAS's own accumulation, which NumPy's
    matmul does not offer (``c += a @ w`` would write and read the product once more)."""
    from scipy.linalg import blas
    gemm = blas.sgemm if c.dtype == np.float32 else blas.dgemm
    # Fortran's order sees c.T = w.T a.T; each operand is handed over as it lies in memory (a
    # transposed view by the trans flag), as BLAS reads it, never copied
    w_arg, trans_w = (w.T, 0) if w.flags.c_contiguous else (w, 1)
    a_arg, trans_a = (a.T, 0) if a.flags.c_contiguous else (a, 1)
    gemm(1.0, w_arg, a_arg, beta=beta, c=c.T, trans_a=trans_w, trans_b=trans_a, overwrite_c=1)


def _kernel_rows(w, ones):
    """w (KH, KW, C, Cout) as KH matrices (KW*C [+1], Cout), one per kernel row, C-contiguous.

    With ``ones`` each has one row more, for the constant column of :func:`_unfold_rows`: zero
    (the bias row is set by the caller on one of them).
    """
    KH, KW, C, Cout = w.shape
    w_rows = np.zeros((KH, KW * C + ones, Cout), w.dtype)
    w_rows[:, :KW * C] = w.reshape(KH, KW * C, Cout)
    return w_rows


class _Rows:
    """How a block of output rows [h0, h0+R) of one image meets its input rows (stride sh in time).

    Output row h's kernel row i = a*sh + p reads input row (h+a)*sh + p - ph.  So the input rows
    of phase p (the p-th of every sh) are unfolded together, R + A_p - 1 of them (A_p kernel
    rows have phase p), and kernel row i reads R consecutive unfolded rows of its phase from a:
    one matrix for one GEMM, whatever the stride.
    """

    def __init__(self, KH, sh, ph, Wo, K, itemsize):
        self.KH, self.sh, self.ph, self.Wo = KH, sh, ph, Wo
        self.A = [len(range(p, KH, sh)) for p in range(min(sh, KH))]  # kernel rows of each phase
        self.rows = max(1, _ROWS_BYTES // (sh * Wo * K * itemsize) - (self.A[0] - 1))  # R at most
        self.shape = (len(self.A), (self.rows + self.A[0] - 1) * Wo, K)  # a buffer for any block

    def unfold(self, x, n, h0, R, KW, sw, pw, U):
        """Each phase's input rows of the block, unfolded into U[p]."""
        for p, A in enumerate(self.A):
            _unfold_rows(x, n, h0 * self.sh + p - self.ph, self.sh, R + A - 1, KW, sw, pw, self.Wo,
                         U[p, :(R + A - 1) * self.Wo])

    def fold(self, dU, n, h0, R, KW, sw, pw, dx):
        for p, A in enumerate(self.A):
            _fold_rows(dU[p, :(R + A - 1) * self.Wo], n, h0 * self.sh + p - self.ph, self.sh, R + A - 1,
                       KW, sw, pw, self.Wo, dx)

    def reads(self, U, R):
        """(i, the unfolded rows kernel row i multiplies) for every kernel row."""
        Wo, sh = self.Wo, self.sh
        return [(i, U[i % sh, (i // sh) * Wo:(i // sh + R) * Wo]) for i in range(self.KH)]


def _conv_fast(x, w, b, stride, padding, out_size):
    """The convolution of ``x`` (N, H, W, C) by ``w`` (KH, KW, C, Cout) (+ ``b`` unless None).

    Each block of output rows unfolds its input rows once, along frequency (:class:`_Rows`),
    and takes KH GEMMs, kernel row i times the unfolded rows it reads, summed by BLAS.
    """
    (sh, sw), (ph, pw), (Ho, Wo) = stride, padding, out_size
    KH, KW, C, Cout = w.shape
    N = x.shape[0]
    out = np.empty((N * Ho * Wo, Cout), x.dtype)  # rows in (n, h, w) order: (N, H', W', Cout) flattened
    w_rows = _kernel_rows(w, b is not None)
    if b is not None:
        w_rows[0, -1] = b  # the weight of the constant input 1 that ends each unfolded row
    rows = _Rows(KH, sh, ph, Wo, w_rows.shape[1], x.dtype.itemsize)

    def work(blocks):
        U = np.empty(rows.shape, x.dtype)
        for q0, q1 in blocks:
            n, h0, R = q0 // Ho, q0 % Ho, q1 - q0
            rows.unfold(x, n, h0, R, KW, sw, pw, U)
            o = out[q0 * Wo:q1 * Wo]
            for i, Ui in rows.reads(U, R):
                _gemm(Ui, w_rows[i], o, beta=float(i > 0))  # o (+)= the block's rows times kernel row i
    _in_blocks(N, Ho, rows.rows, work)
    return out.reshape(N, Ho, Wo, Cout)


def conv2d_forward_fast(x, w, b, stride=(1, 1), padding=(0, 0)):
    """:func:`conv2d_forward` as cache-sized blocks of unfolded rows, KH GEMMs each."""
    (sh, sw), (ph, pw), (Ho, Wo) = _check(x, w, b, stride, padding)
    dtype = np.result_type(x.dtype, w.dtype, b.dtype)
    x = np.ascontiguousarray(x, dtype)  # N,H,W,Cin: no padded copy, the kernel writes the zeros
    w = np.ascontiguousarray(w, dtype)
    out = _conv_fast(x, w, b.astype(dtype, copy=False), (sh, sw), (ph, pw), (Ho, Wo))
    return out, (x, w, (sh, sw), (ph, pw))


def _flipped(w):
    """The kernel of dx as a convolution of dout: flipped in both axes, channels swapped (KH, KW, Cout, Cin)."""
    return w[::-1, ::-1].transpose(0, 1, 3, 2)


def _dx_is_a_conv(stride, Cin, Cout):
    """Whether dx is best taken as the convolution of dout with :func:`_flipped` (stride 1 only).

    That route unfolds dout (KW*Cout values a pixel and row); the other one writes each pixel's
    ``dout W_i^T`` (KW*Cin values) and folds it back: the first writes less when Cout <= Cin.
    """
    return tuple(stride) == (1, 1) and Cout <= Cin


def conv2d_input_grad_fast(dout, w, size, stride, padding):
    """:func:`conv2d_input_grad`, by whichever of two routes writes less (:func:`_dx_is_a_conv`)."""
    (sh, sw), (ph, pw) = stride, padding
    KH, KW, Cin, Cout = w.shape
    N, Ho, Wo, _ = dout.shape
    dout = np.ascontiguousarray(dout)
    if _dx_is_a_conv(stride, Cin, Cout):
        # dx[s] = sum_i dout[s + ph - i] W[i]^T = sum_k dout[s - (KH-1-ph) + k] W[KH-1-k]^T: a plain
        # convolution of dout, padded by K-1-p, with the kernel flipped and its channels swapped
        return _conv_fast(dout, _flipped(w), None, (1, 1), (KH - 1 - ph, KW - 1 - pw), size)
    dx = np.zeros((N,) + tuple(size) + (Cin,), dout.dtype)
    dout_rows = dout.reshape(N * Ho * Wo, Cout)
    w_rows_t = np.ascontiguousarray(_kernel_rows(w, False).transpose(0, 2, 1))  # KH,Cout,KW*Cin
    rows = _Rows(KH, sh, ph, Wo, KW * Cin, dout.dtype.itemsize)

    def work(blocks):
        dU = np.empty(rows.shape, dout.dtype)
        for q0, q1 in blocks:
            n, h0, R = q0 // Ho, q0 % Ho, q1 - q0
            dU[:] = 0.0
            for i, dUi in rows.reads(dU, R):  # the block's gradient reaches the rows kernel row i read
                _gemm(dout_rows[q0 * Wo:q1 * Wo], w_rows_t[i], dUi, beta=1.0)
            rows.fold(dU, n, h0, R, KW, sw, pw, dx)
    _in_blocks(N, Ho, rows.rows, work, whole_images=True)
    return dx


def _backward_through_dout(x, dout, w, padding):
    """dx, dW and db of a stride-1 convolution from one unfolding of dout's rows, block by block.

    dx is the convolution of dout with the flipped kernel: unfolded row s+k of dout (padded by
    KH-1-ph) holds ``dout[s + ph - i, w + pw - j + l]`` with i = KH-1-k, j = KW-1-l, and
    ``dW[i, j, c, o] = sum x[s, r, c] dout[s + ph - i, r + pw - j, o]``: so the block that
    multiplies the flipped kernel into dx gives dW too, multiplied by the block's own pixels.
    """
    (ph, pw) = padding
    KH, KW, Cin, Cout = w.shape
    N, H, W, _ = x.shape
    Kr = KW * Cout
    wf_rows = _kernel_rows(np.ascontiguousarray(_flipped(w)), False)  # KH,KW*Cout,Cin
    x_rows = x.reshape(N * H * W, Cin)
    dx = np.empty((N * H * W, Cin), x.dtype)
    rows = _Rows(KH, 1, KH - 1 - ph, W, Kr, x.dtype.itemsize)  # dout's padding above: KH-1-ph

    def work(blocks):
        U = np.empty(rows.shape, x.dtype)
        dwf, part = np.zeros((KH, Cin, Kr), x.dtype), np.empty((Cin, Kr), x.dtype)  # dW flipped: [k][c, (l, o)]
        for q0, q1 in blocks:
            n, s0, R = q0 // H, q0 % H, q1 - q0
            rows.unfold(dout, n, s0, R, KW, 1, KW - 1 - pw, U)
            o, xb = dx[q0 * W:q1 * W], x_rows[q0 * W:q1 * W]
            for k, Uk in rows.reads(U, R):
                _gemm(Uk, wf_rows[k], o, beta=float(k > 0))  # dx of the block's pixels
                dwf[k] += np.matmul(xb.T, Uk, out=part)  # += : summed over the blocks (NumPy's BLAS: faster here)
        return dwf
    dwf = sum(_in_blocks(N, H, rows.rows, work))  # the threads' sums, in order
    # dwf[k][c, (l, o)] = dW[KH-1-k, KW-1-l, c, o]
    dw = dwf.reshape(KH, Cin, KW, Cout)[::-1, :, ::-1].transpose(0, 2, 1, 3)  # KH,KW,Cin,Cout
    dout_rows = dout.reshape(-1, Cout)
    db = np.ones(len(dout_rows), x.dtype) @ dout_rows  # a GEMV: sum(axis=0) over 16 columns is slow
    return dx.reshape(x.shape), np.ascontiguousarray(dw), db


def _weight_grad(x, dout, w, stride, padding):
    """dW and db: each kernel row's unfolded input rows, transposed, times the block's dout."""
    (sh, sw), (ph, pw) = stride, padding
    KH, KW, Cin, Cout = w.shape
    N, Ho, Wo, _ = dout.shape
    dout_rows = dout.reshape(N * Ho * Wo, Cout)
    Kr = KW * Cin + 1  # the last column: 1, whose weight is b (its sum is db)
    rows = _Rows(KH, sh, ph, Wo, Kr, x.dtype.itemsize)

    def work(blocks):
        U = np.empty(rows.shape, x.dtype)
        dw_rows, part = np.zeros((KH, Kr, Cout), x.dtype), np.empty((Kr, Cout), x.dtype)
        for q0, q1 in blocks:  # unfold again rather than keep the forward's: a block stays in cache
            n, h0, R = q0 // Ho, q0 % Ho, q1 - q0
            rows.unfold(x, n, h0, R, KW, sw, pw, U)
            d = dout_rows[q0 * Wo:q1 * Wo]
            for i, Ui in rows.reads(U, R):
                dw_rows[i] += np.matmul(Ui.T, d, out=part)  # += : summed over the blocks
        return dw_rows
    dw_rows = sum(_in_blocks(N, Ho, rows.rows, work))  # the threads' sums, in order
    return dw_rows[:, :-1].reshape(KH, KW, Cin, Cout), dw_rows[0, -1]


def conv2d_backward_fast(dout, cache, *, input_grad=True):
    """:func:`conv2d_backward`; ``input_grad=False`` returns ``dx = None`` and skips its work."""
    x, w, (sh, sw), (ph, pw) = cache
    Cin, Cout = w.shape[2:]
    dout = np.ascontiguousarray(dout, x.dtype)
    if input_grad and _dx_is_a_conv((sh, sw), Cin, Cout):
        return _backward_through_dout(x, dout, w, (ph, pw))
    dw, db = _weight_grad(x, dout, w, (sh, sw), (ph, pw))
    if not input_grad:
        return None, dw, db
    return conv2d_input_grad_fast(dout, w, x.shape[1:3], (sh, sw), (ph, pw)), dw, db
