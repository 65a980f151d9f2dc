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

from ..nn import activations, affine, context, conv1d, init, maxpool1d, rnn
from ..nn.backend import pick


@dataclasses.dataclass(frozen=True)
class LayerKind:
    tensors: Callable
    forward: Callable
    backward: Callable
    margin: Optional[Callable] = None


def _backward(module, name, *args, input_grad):
    """Call backward ``name``: the fast one takes ``input_grad``; the readable one always gives dx."""
    fn = pick(module, name)
    if fn is getattr(module, name + "_fast", None):
        return fn(*args, input_grad=input_grad)
    return fn(*args)


def _zeros(shape, rng, dtype):
    return np.zeros(shape, dtype)


# --------------------------------------------------------------------------- the rows
def _dense_backward(dout, cache, p, spec, input_grad):
    dx, dW, db = _backward(affine, "affine_backward", dout, cache, input_grad=input_grad)
    return dx, {"W": dW, "b": db}


def _rnn_backward(dout, cache, p, spec, input_grad):
    dx, _, dW, dU, db = _backward(rnn, "rnn_backward", dout, cache, spec.get("clip"),
                                  input_grad=input_grad)
    return dx, {"W": dW, "U": dU, "b": db}


def _conv_backward(dout, cache, p, spec, input_grad):
    dx, dW, db = _backward(conv1d, "conv1d_backward", dout, cache, input_grad=input_grad)
    return dx, {"W": dW, "b": db}


def _rnn_margin(h, out, p, spec):
    """Smallest |z_t| with z_t = x_t W + h_{t-1} U + b, from the layer's own output h_t."""
    prev = np.concatenate([np.zeros_like(out[:, :1]), out[:, :-1]], axis=1)  # N,T,H: h_{t-1}, h_{-1} = 0
    return float(np.abs(h @ p["W"] + prev @ p["U"] + p["b"]).min())


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
        tensors=lambda s: {"W": ((s["in"], s["out"]), lambda sh, r, dt: init.glorot_uniform(*sh, r, dt)),
                           "U": ((s["out"], s["out"]), lambda sh, r, dt: init.recurrent_uniform(sh[0], r, dt)),
                           "b": ((s["out"],), _zeros)},
        forward=lambda h, p, s: pick(rnn, "rnn_forward")(h, None, p["W"], p["U"], p["b"]),
        backward=_rnn_backward,
        margin=_rnn_margin),
    "conv": LayerKind(
        tensors=lambda s: {"W": ((s["k"], s["in"], s["out"]), lambda sh, r, dt: init.conv_glorot(*sh, r, dt)),
                           "b": ((s["out"],), _zeros)},
        forward=lambda h, p, s: pick(conv1d, "conv1d_forward")(h, p["W"], p["b"]),
        backward=_conv_backward),
    "pool": LayerKind(
        tensors=lambda s: {},
        forward=lambda h, p, s: pick(maxpool1d, "maxpool1d_forward")(h, s["size"], s["stride"], "same"),
        backward=lambda dout, c, p, s, ig: (pick(maxpool1d, "maxpool1d_backward")(dout, c), {}),
        margin=_pool_margin),
}
