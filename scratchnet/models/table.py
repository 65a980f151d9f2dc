"""The one table of layer kinds: for each, its tensors, forward, backward and kink margin.

A model is a list of specs (:func:`scratchnet.models.config.layer_specs`); a spec's ``kind``
is a key of :data:`LAYERS`, whose :class:`LayerKind` says

- ``tensors(spec)``: the trainable tensors, ``{short name: (shape, initialiser)}``; the model
  stores them as ``"<spec name>/<short name>"`` (``hidden2/U``);
- ``forward(h, p, spec) -> (out, cache)`` with ``p`` the layer's tensors by short name;
- ``backward(dout, cache, p, spec, input_grad) -> (dh, grads)``, ``grads`` by short name,
  ``dh = None`` when ``input_grad`` is False (a first layer: nothing below has weights);
- ``margin(h, out, p, spec)``: how far the layer's input is from a kink (None: smooth).

Forward and backward call the functions of :mod:`scratchnet.nn` through
:func:`scratchnet.nn.backend.pick`, looked up at every call: the backend in force decides
between the fast and the readable pair, and a function a learner puts in its place is used.
Adding a layer kind is adding a row here.
"""
import dataclasses
from typing import Callable, Optional

import numpy as np

from ..nn import activations, affine, context, conv1d, gru, init, lstm, maxpool1d, rnn
from ..nn.backend import pick
from ..nn.backend import pick_backward as _backward  # the fast backward takes input_grad
from . import unet


@dataclasses.dataclass(frozen=True)
class LayerKind:
    tensors: Callable
    forward: Callable
    backward: Callable
    margin: Optional[Callable] = None


def _zeros(shape, rng, dtype):
    return np.zeros(shape, dtype)


# --------------------------------------------------------------------------- the rows
def _dense_backward(dout, cache, p, spec, input_grad):
    dx, dW, db = _backward(affine, "affine_backward", dout, cache, input_grad=input_grad)
    return dx, {"W": dW, "b": db}


# --------------------------------------------------------------------------- recurrent layers
# A recurrent layer is a cell (the ReLU RNN of Huang et al., or a gated cell) run forwards in
# time, and with ``bidirectional`` also backwards: a second cell with its own tensors (names
# ending in ``_rev``) reads the sequence reversed, and the two outputs are concatenated, so
# the layer gives 2H features per frame.  The backward direction's BPTT runs forwards in time.
def _glorot(sh, r, dt):
    return init.glorot_uniform(*sh, r, dt)


def _gated(k):
    """Tensors of a gated cell with k gate blocks: Wx (D, kH) Glorot per block, Wh (H, kH)
    uniform in +-1/sqrt(H) (PyTorch's default), biases zero but the LSTM's forget gate at 1
    (Jozefowicz et al. 2015: the cell remembers by default at the start of training)."""
    def wx(sh, r, dt):
        D, kH = sh
        return init.uniform(np.sqrt(6.0 / (D + kH // k)), sh, r, dt)

    def forget_one(sh, r, dt):
        b = np.zeros(sh, dt)
        if k == 4:
            H = sh[0] // 4
            b[H:2 * H] = 1  # blocks i, f, g, o
        return b

    shapes = {"Wx": (lambda D, H: (D, k * H), wx),
              "Wh": (lambda D, H: (H, k * H), lambda sh, r, dt: init.uniform_fan(sh, sh[0], r, dt))}
    if k == 3:  # GRU: the candidate's recurrent bias sits inside r * (h Wh_n + bh_n)
        shapes.update({"bx": (lambda D, H: (3 * H,), lambda sh, r, dt: np.zeros(sh, dt)),
                       "bh": (lambda D, H: (3 * H,), lambda sh, r, dt: np.zeros(sh, dt))})
    else:
        shapes["b"] = (lambda D, H: (4 * H,), forget_one)
    return shapes


CELLS = {  # cell: (module, function prefix, initial states, {tensor: (shape(D, H), initialiser)})
    "relu": (rnn, "rnn", 1, {"W": (lambda D, H: (D, H), _glorot),
                             "U": (lambda D, H: (H, H), lambda sh, r, dt: init.recurrent_uniform(sh[0], r, dt)),
                             "b": (lambda D, H: (H,), lambda sh, r, dt: np.zeros(sh, dt))}),
    "gru": (gru, "gru", 1, _gated(3)),
    "lstm": (lstm, "lstm", 2, _gated(4)),
}


def _cell(spec):
    return CELLS[spec.get("cell", "relu")]


def _directions(spec):
    return ("", "_rev") if spec.get("bidirectional") else ("",)


def _recurrent_tensors(spec):
    _, _, _, tensors = _cell(spec)
    return {t + d: (shape(spec["in"], spec["out"]), make)
            for d in _directions(spec) for t, (shape, make) in tensors.items()}


def _one_direction_forward(h, p, spec, d):
    module, prefix, states, tensors = _cell(spec)
    return pick(module, prefix + "_forward")(h, *[None] * states, *(p[t + d] for t in tensors))


def _recurrent_forward(h, p, spec):
    out, cache = _one_direction_forward(h, p, spec, "")
    if not spec.get("bidirectional"):
        return out, cache
    out_rev, cache_rev = _one_direction_forward(h[:, ::-1], p, spec, "_rev")  # reads the sequence backwards
    return np.concatenate([out, out_rev[:, ::-1]], axis=-1), (cache, cache_rev)  # N,T,2H


def _one_direction_backward(dout, cache, spec, input_grad, d):
    module, prefix, states, tensors = _cell(spec)
    grads = _backward(module, prefix + "_backward", dout, cache, spec.get("clip"), input_grad=input_grad)
    return grads[0], {t + d: g for t, g in zip(tensors, grads[1 + states:])}  # skip the initial states' grads


def _recurrent_backward(dout, cache, p, spec, input_grad):
    if not spec.get("bidirectional"):
        return _one_direction_backward(dout, cache, spec, input_grad, "")
    H = spec["out"]
    dx, grads = _one_direction_backward(dout[..., :H], cache[0], spec, input_grad, "")
    dx_rev, grads_rev = _one_direction_backward(dout[:, ::-1, H:], cache[1], spec, input_grad, "_rev")
    grads.update(grads_rev)
    return (dx + dx_rev[:, ::-1] if input_grad else None), grads


def _conv_backward(dout, cache, p, spec, input_grad):
    dx, dW, db = _backward(conv1d, "conv1d_backward", dout, cache, input_grad=input_grad)
    return dx, {"W": dW, "b": db}


def _rnn_margin(h, out, p, spec):
    """Smallest |z_t| with z_t = x_t W + h_{t-1} U + b, from the layer's own output h_t.

    Gated cells are smooth (no kink): None.  A bidirectional layer's reversed half is checked
    on the reversed sequence.
    """
    if spec.get("cell", "relu") != "relu":
        return None
    H, margins = spec["out"], []
    for d, x, o in (("", h, out[..., :H]), ("_rev", h[:, ::-1], out[:, ::-1, H:]))[:len(_directions(spec))]:
        prev = np.concatenate([np.zeros_like(o[:, :1]), o[:, :-1]], axis=1)  # N,T,H: h_{t-1}, h_{-1} = 0
        margins.append(np.abs(x @ p["W" + d] + prev @ p["U" + d] + p["b" + d]).min())
    return float(min(margins))


def _pool_margin(h, out, p, spec):
    """Smallest gap between a window's winner and runner-up (windows won by a ReLU's zero excluded)."""
    size = spec["size"]
    pad = np.pad(h, ((0, 0), ((size - 1) // 2, size // 2), (0, 0)), constant_values=-np.inf)
    win = np.sort(np.lib.stride_tricks.sliding_window_view(pad, size, axis=1), -1)
    live = win[..., -1] > 0  # a zero winner is guarded by the ReLU before it
    return float((win[..., -1] - win[..., -2])[live].min()) if live.any() else None


LAYERS = {
    "dense": LayerKind(
        tensors=lambda s: {"W": ((s["in"], s["out"]), lambda sh, r, dt: init.glorot_uniform(*sh, r, dt)),
                           "b": ((s["out"],), _zeros)},
        forward=lambda h, p, s: pick(affine, "affine_forward")(h, p["W"], p["b"]),
        backward=_dense_backward),
    "relu": LayerKind(
        tensors=lambda s: {},
        forward=lambda h, p, s: pick(activations, "relu_forward")(h),
        backward=lambda dout, c, p, s, ig: (pick(activations, "relu_backward")(dout, c), {}),
        margin=lambda h, out, p, s: float(np.abs(h).min())),
    "context": LayerKind(
        tensors=lambda s: {},
        forward=lambda h, p, s: pick(context, "context_forward")(h, s["k"]),
        backward=lambda dout, c, p, s, ig: (pick(context, "context_backward")(dout, c), {})),
    "rnn": LayerKind(
        tensors=_recurrent_tensors,
        forward=_recurrent_forward,
        backward=_recurrent_backward,
        margin=_rnn_margin),
    "conv": LayerKind(
        tensors=lambda s: {"W": ((s["k"], s["in"], s["out"]), lambda sh, r, dt: init.conv_glorot(*sh, r, dt)),
                           "b": ((s["out"],), _zeros)},
        forward=lambda h, p, s: pick(conv1d, "conv1d_forward")(h, p["W"], p["b"]),
        backward=_conv_backward),
    "unet": LayerKind(  # a whole encoder-decoder: its skips are not a chain (models/unet.py)
        tensors=unet.unet_tensors,
        forward=unet.unet_forward,
        backward=unet.unet_backward),
    "pool": LayerKind(
        tensors=lambda s: {},
        forward=lambda h, p, s: pick(maxpool1d, "maxpool1d_forward")(h, s["size"], s["stride"], "same"),
        backward=lambda dout, c, p, s, ig: (pick(maxpool1d, "maxpool1d_backward")(dout, c), {}),
        margin=_pool_margin),
}
