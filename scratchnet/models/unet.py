"""A U-Net over the spectrogram: two-dimensional context in time and frequency.

The features (N, T, F) are read as one-channel images of T frames by F bins.  With channels
``c_0 .. c_L`` (``unet_channels``) and k x k kernels (``unet_kernel``, "same" padding)::

    e_0 = relu(conv(x, enc0))                                    N, T,     F,     c_0
    d_l = relu(conv(e_{l-1}, down_l, stride 2))                  N, T/2^l, F/2^l, c_l
    e_l = relu(conv(d_l, enc_l))                                 (l = 1 .. L; e_L the bottom)
    u_l = relu(crop(convT(g_l, up_l, stride 2)))                 N, size of e_{l-1}, c_{l-1}
    g_{l-1} = relu(conv([u_l, e_{l-1}], dec_{l-1}))              the skip: e_{l-1} concatenated
    a = conv1x1(g_0, head)                                       N, T, F, 2

starting the way up from ``g_L = e_L``.  Without skips (``unet_skips`` false, an ablation)
``g_{l-1} = relu(conv(u_l, dec_{l-1}))``: the way up sees only what passed the bottom.  The two channels of ``a`` are the two sources'
``a_1, a_2`` of Huang's joint soft mask (:mod:`scratchnet.nn.mask`), laid out as (N, T, 2F).
Feeding a recurrent layer instead (``unet_rnn``), the head has one channel and the layer
gives ``[x, a]`` (N, T, 2F): each frame's features beside what the U-Net made of their
neighbourhood, and the recurrence carries the long context the U-Net's field lacks.
Each downsampling halves both axes, rounding up ("same" padding, stride 2); each
transposed convolution doubles them and is cropped to the skip's size, whose backward
pads the gradient with zeros again.  The concatenation's backward splits the gradient
between the two branches, and the skip's part is added to the gradient arriving at
``e_{l-1}`` from below, as every use of a value adds to its gradient.

The network is fully convolutional: it trains on patches of ``seq_len`` frames and
separates a whole chunk of a song at once, every output frame seeing
``unet_receptive_field`` frames around it.  Every convolution is
:mod:`scratchnet.nn.conv2d` or :mod:`scratchnet.nn.conv2d_transpose`, looked up through the
backend at each call (:func:`scratchnet.nn.backend.pick`), so the readable pair and the fast
pair both train it, and a learner's function put in their place is used.
"""
import numpy as np

from ..nn import activations, conv2d, conv2d_transpose, init
from ..nn.backend import pick, pick_backward


def _names(spec):
    """The convolutions in order: ``(name, (KH, KW, Cin, Cout) or transposed's (.., Cout, Cin), kind)``."""
    c, k = spec["channels"], spec["kernel"]
    L = len(c) - 1
    out = [("enc0", (k, k, 1, c[0]), "conv")]
    for l in range(1, L + 1):
        out += [(f"down{l}", (k, k, c[l - 1], c[l]), "conv"), (f"enc{l}", (k, k, c[l], c[l]), "conv")]
    cat = 2 if spec.get("skips", True) else 1  # the decoder reads [u_l, e_{l-1}], or u_l alone
    for l in range(L, 0, -1):
        # a transposed convolution's weight is that of the convolution it is the adjoint of
        out += [(f"up{l}", (k, k, c[l - 1], c[l]), "transpose"),
                (f"dec{l - 1}", (k, k, cat * c[l - 1], c[l - 1]), "conv")]
    return out + [("head", (1, 1, c[0], spec.get("head", 2)), "conv")]


def _he(shape, rng, dtype, fan_in):
    """He et al.'s uniform initialisation for a ReLU network: variance 2 / fan_in."""
    return init.uniform(np.sqrt(6.0 / fan_in), shape, rng, dtype)


def unet_tensors(spec):
    """``{short name: (shape, initialiser)}`` of every weight and bias (``enc0/W``, ``enc0/b``, ..)."""
    tensors = {}
    for name, shape, kind in _names(spec):
        KH, KW, a, b = shape
        fan_in = KH * KW * (b if kind == "transpose" else a)  # the inputs each output sums
        if name == "head":  # the mask's input starts small and even: both sources alike
            make = (lambda sh, r, dt, f=fan_in: init.uniform(np.sqrt(1.0 / f), sh, r, dt))
        else:
            make = (lambda sh, r, dt, f=fan_in: _he(sh, r, dt, f))
        tensors[f"{name}/W"] = (shape, make)
        n_out = a if kind == "transpose" else b
        tensors[f"{name}/b"] = ((n_out,), lambda sh, r, dt: np.zeros(sh, dt))
    return tensors


def receptive_field(spec):
    """Frames (and bins) of input that one output pixel depends on, from the geometry."""
    k, L = spec["kernel"], len(spec["channels"]) - 1
    field, step = k, 1  # enc0
    for l in range(1, L + 1):  # down (stride 2) then enc, each k wide at its own scale
        field += (k - 1) * step
        step *= 2
        field += (k - 1) * step
    for l in range(L, 0, -1):  # up then dec
        field += (k - 1) * step
        step //= 2
        field += (k - 1) * step
    return field


def _conv(h, p, name, stride=1):
    return pick(conv2d, "conv2d_forward")(h, p[name + "/W"], p[name + "/b"], stride, "same")


def _conv_back(dout, cache, input_grad=True):
    return pick_backward(conv2d, "conv2d_backward", dout, cache, input_grad=input_grad)


def _up(h, p, name, k):
    # stride 2 doubles each axis: padding (k-1)//2 and output padding 1 make it exactly 2x
    pad = (k - 1) // 2
    return pick(conv2d_transpose, "conv2d_transpose_forward")(
        h, p[name + "/W"], p[name + "/b"], 2, pad, 2 * pad + 2 - k)


def _up_back(dout, cache):
    return pick(conv2d_transpose, "conv2d_transpose_backward")(dout, cache)


def unet_forward(h, p, spec):
    """Features (N, T, F) -> ``a`` (N, T, 2F) for the mask, and the cache."""
    relu = pick(activations, "relu_forward")
    k, L = spec["kernel"], len(spec["channels"]) - 1
    N, T, F = h.shape
    caches = {}
    x = h[..., None]  # N,T,F,1
    z, caches["enc0"] = _conv(x, p, "enc0")
    e, caches["enc0/relu"] = relu(z)
    skips = [e]
    for l in range(1, L + 1):
        z, caches[f"down{l}"] = _conv(e, p, f"down{l}", 2)
        d, caches[f"down{l}/relu"] = relu(z)
        z, caches[f"enc{l}"] = _conv(d, p, f"enc{l}")
        e, caches[f"enc{l}/relu"] = relu(z)
        skips.append(e)
    g = skips[L]
    for l in range(L, 0, -1):
        z, caches[f"up{l}"] = _up(g, p, f"up{l}", k)
        H, W = skips[l - 1].shape[1:3]
        caches[f"up{l}/size"] = z.shape[1:3]
        u, caches[f"up{l}/relu"] = relu(z[:, :H, :W])  # cropped to the skip's size
        if spec.get("skips", True):
            u = np.concatenate([u, skips[l - 1]], axis=-1)  # N,H,W,2c
        z, caches[f"dec{l - 1}"] = _conv(u, p, f"dec{l - 1}")
        g, caches[f"dec{l - 1}/relu"] = relu(z)
    a, caches["head"] = _conv(g, p, "head")  # N,T,F,2 (or N,T,F,1 feeding a recurrent layer)
    out = np.ascontiguousarray(a.transpose(0, 1, 3, 2)).reshape(N, T, a.shape[3] * F)
    if spec.get("keep_input"):  # [x, U-Net(x)] per frame, for the recurrent layer above
        out = np.concatenate([h, out.astype(h.dtype, copy=False)], axis=-1)
    return out, caches


def unet_backward(dout, caches, p, spec, input_grad):
    """Backward of :func:`unet_forward`: ``(dh or None, grads by short name)``."""
    relu_back = pick(activations, "relu_backward")
    c, L, heads = spec["channels"], len(spec["channels"]) - 1, spec.get("head", 2)
    N, T, _ = dout.shape
    F = caches["enc0/relu"].shape[2]
    grads = {}

    def keep(name, dW, db):
        grads[name + "/W"], grads[name + "/b"] = dW, db

    d_direct = None
    if spec.get("keep_input"):  # the input's own copy gets its gradient directly
        d_direct, dout = dout[..., :F], dout[..., F:]
    da = np.ascontiguousarray(dout.reshape(N, T, heads, F).transpose(0, 1, 3, 2))  # N,T,F,heads
    dg, *g = _conv_back(da, caches["head"])
    keep("head", *g)
    dskips = [None] * (L + 1)  # the gradient reaching each e_l through its skip
    for l in range(1, L + 1):
        dz = relu_back(dg, caches[f"dec{l - 1}/relu"])
        dcat, *g = _conv_back(dz, caches[f"dec{l - 1}"])
        keep(f"dec{l - 1}", *g)
        if spec.get("skips", True):
            du, dskips[l - 1] = dcat[..., :c[l - 1]], dcat[..., c[l - 1]:]
        else:
            du = dcat
        dz_crop = relu_back(du, caches[f"up{l}/relu"])
        Hf, Wf = caches[f"up{l}/size"]
        dz = np.zeros((N, Hf, Wf, c[l - 1]), dz_crop.dtype)
        dz[:, :dz_crop.shape[1], :dz_crop.shape[2]] = dz_crop  # the crop's backward: zeros outside
        dg, *g = _up_back(dz, caches[f"up{l}"])  # the gradient at g_l
        keep(f"up{l}", *g)
    # dg is now the gradient at g_L = e_L; walk the encoder up, adding each skip's share
    de = dg
    for l in range(L, 0, -1):
        if l < L and dskips[l] is not None:
            de = de + dskips[l]
        dz = relu_back(de, caches[f"enc{l}/relu"])
        dd, *g = _conv_back(dz, caches[f"enc{l}"])
        keep(f"enc{l}", *g)
        dz = relu_back(dd, caches[f"down{l}/relu"])
        de, *g = _conv_back(dz, caches[f"down{l}"])
        keep(f"down{l}", *g)
    if dskips[0] is not None:
        de = de + dskips[0]
    dz = relu_back(de, caches["enc0/relu"])
    dx, *g = _conv_back(dz, caches["enc0"], input_grad)
    keep("enc0", *g)
    if not input_grad:
        return None, grads
    return (dx[..., 0] + d_direct if d_direct is not None else dx[..., 0]), grads
