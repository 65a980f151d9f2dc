"""Transposed 2-D convolution (the decoder's upsampling): the adjoint of :mod:`conv2d`.

A convolution with weight ``W`` (KH, KW, C, F), stride s and padding p is a linear map
``A_W``: (N, H, W, C) -> (N, H', W', F).  The transposed convolution is its adjoint plus a
bias, ``out = A_W^T x + b``: (N, H', W', F) -> (N, H, W, C), each input pixel spreading its
channels over a KH x KW patch of the output, s pixels further per input pixel.  Nothing
new needs writing, because the adjoint of a linear map swaps its two passes::

    out = A_W^T x + b    conv2d's dx, of "upstream gradient" x             (N, H, W, Cout)
    dx  = A_W dout       conv2d's forward of dout, without bias            (N, H', W', Cin)
    dW  = d<x, A_W dout>/dW   conv2d's dW, with input dout and upstream x  (KH, KW, Cout, Cin)
    db  = sum_{n,h,w} dout[n, h, w]                                        (Cout,)

(the second line because ``<A^T x, dout> = <x, A dout>`` for every x and dout, which the tests
check).  So the weight has conv2d's layout for the convolution it is the adjoint of:
``(KH, KW, Cout, Cin)``, mapping this layer's Cout channels to its Cin ones.  PyTorch's
``conv_transpose2d`` weight (Cin, Cout, KH, KW) is ``w.transpose(3, 2, 0, 1)``.

The output has ``H_out = (H - 1) sh - 2 ph + KH + oph`` frames (W_out alike): the largest input
that conv2d maps to H frames, less the ``sh - 1 - oph`` rows no window reaches.  The output
padding ``oph < sh`` picks which one; "same"-padded stride-2 convolutions of an even size are
undone by ``padding=1, output_padding=1`` for a 3 x 3 kernel, or ``padding=1`` for a 4 x 4 one.

The readable pair calls conv2d's readable functions, the fast pair conv2d's fast ones; this
file holds no kernel of its own.
"""
import numpy as np

from .conv2d import (_pair, conv2d_backward, conv2d_backward_fast, conv2d_forward, conv2d_forward_fast,
                     conv2d_geometry, conv2d_input_grad, conv2d_input_grad_fast)


def _check(x, w, b, stride, padding, output_padding):
    """``(sh, sw), (ph, pw), (H_out, W_out)`` after checking every argument."""
    if x.ndim != 4 or w.ndim != 4 or x.shape[3] != w.shape[3] or b.shape != (w.shape[2],):
        raise ValueError(f"conv2d_transpose: x {x.shape}, w {w.shape}, b {b.shape} do not fit "
                         f"(N, H, W, Cin) (KH, KW, Cout, Cin) (Cout,)")
    if isinstance(padding, str):
        raise ValueError(f"{padding=} must be an integer >= 0 or a pair of them (a transposed "
                         f"convolution's size is set by padding and output_padding)")
    (sh, sw), (ph, pw) = conv2d_geometry(w.shape, stride, padding)
    oph, opw = _pair(output_padding, "output_padding", 0)
    if oph >= sh or opw >= sw:
        raise ValueError(f"{output_padding=} must be smaller than the stride {(sh, sw)} in each axis")
    (H, W), (KH, KW) = x.shape[1:3], w.shape[:2]
    size = ((H - 1) * sh - 2 * ph + KH + oph, (W - 1) * sw - 2 * pw + KW + opw)
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"conv2d_transpose: {padding=} leaves no output for an input of {H}x{W} "
                         f"and a {KH}x{KW} kernel")
    return (sh, sw), (ph, pw), size


# --------------------------------------------------------------------------- readable pair
def conv2d_transpose_forward(x, w, b, stride=(1, 1), padding=(0, 0), output_padding=(0, 0)):
    """Transposed convolution: the adjoint of :func:`conv2d_forward`, plus a bias.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, Cin)
    w : ndarray, shape (KH, KW, Cout, Cin)
        The weight of the convolution (Cout -> Cin channels) this layer is the adjoint of.
    b : ndarray, shape (Cout,)
    stride : int or (int, int)
        ``(sh, sw)``: the output grows by sh frames and sw bins per input pixel.
    padding : int or (int, int)
        ``(ph, pw)`` removed from each side of the output (conv2d's padding).
    output_padding : int or (int, int)
        ``(oph, opw)``, each smaller than the stride: rows and columns added at the end.

    Returns
    -------
    out : ndarray, shape (N, H_out, W_out, Cout)
        ``H_out = (H - 1) sh - 2 ph + KH + oph``, W_out alike.
    cache : tuple

    Examples
    --------
    >>> x, w, b = np.ones((1, 2, 2, 1)), np.ones((2, 2, 1, 1)), np.zeros(1)
    >>> out, _ = conv2d_transpose_forward(x, w, b, stride=2)  # each pixel becomes a 2 x 2 patch
    >>> out.shape
    (1, 4, 4, 1)
    """
    stride, padding, size = _check(x, w, b, stride, padding, output_padding)
    out = conv2d_input_grad(x, w, size, stride, padding) + b  # A_W^T x + b: N,H_out,W_out,Cout
    return out, (x, w, stride, padding)


def conv2d_transpose_backward(dout, cache):
    """Backward of :func:`conv2d_transpose_forward`: dout (N, H_out, W_out, Cout) -> dx, dw, db."""
    x, w, stride, padding = cache
    zero = np.zeros(w.shape[3], dout.dtype)
    dx, conv_cache = conv2d_forward(dout, w, zero, stride, padding)  # A_W dout: N,H,W,Cin
    _, dw, _ = conv2d_backward(x, conv_cache)  # conv2d's dW with x as its upstream gradient
    db = dout.sum(axis=(0, 1, 2))  # Cout
    return dx, dw, db


# --------------------------------------------------------------------------- fast pair
def conv2d_transpose_forward_fast(x, w, b, stride=(1, 1), padding=(0, 0), output_padding=(0, 0)):
    """:func:`conv2d_transpose_forward` through conv2d's fast input gradient."""
    stride, padding, size = _check(x, w, b, stride, padding, output_padding)
    dtype = np.result_type(x.dtype, w.dtype, b.dtype)
    x, w = np.ascontiguousarray(x, dtype), np.ascontiguousarray(w, dtype)
    out = conv2d_input_grad_fast(x, w, size, stride, padding)  # N,H_out,W_out,Cout, a new array
    out += b.astype(dtype, copy=False)
    return out, (x, w, stride, padding)


def conv2d_transpose_backward_fast(dout, cache, *, input_grad=True):
    """:func:`conv2d_transpose_backward`; ``input_grad=False`` returns ``dx = None`` and skips its GEMMs."""
    x, w, stride, padding = cache
    dout = np.ascontiguousarray(dout, x.dtype)
    db = dout.sum(axis=(0, 1, 2))
    zero = np.zeros(w.shape[3], x.dtype)
    if input_grad:
        dx, conv_cache = conv2d_forward_fast(dout, w, zero, stride, padding)  # A_W dout
    else:  # the cache only: conv2d's fast cache is its input, not a result
        dx, conv_cache = None, (dout, w, stride, padding)
    _, dw, _ = conv2d_backward_fast(x, conv_cache, input_grad=False)
    return dx, dw, db
