"""Elementwise activations: ReLU, tanh and the logistic sigmoid.

Equations (any shape; ``dout`` is the upstream gradient)::

    relu:     out = max(x, 0)               dx = dout * [x > 0]        (subgradient 0 at 0)
    tanh:     out = tanh(x)                 dx = dout * (1 - out^2)
    sigmoid:  out = 1 / (1 + exp(-x))       dx = dout * out * (1 - out)

tanh and sigmoid cache their output, from which their derivative follows; ReLU caches its
input.  One pair each serves both backends: NumPy already runs these at memory speed.
"""
import numpy as np


def relu_forward(x):
    """``out = max(x, 0)``, any shape."""
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    """``dx = dout * [x > 0]`` (the subgradient 0 at x = 0)."""
    x = cache
    return dout * (x > 0)


def tanh_forward(x):
    """``out = tanh(x)``, any shape."""
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """``dx = dout * (1 - tanh(x)^2)``, from the cached output."""
    out = cache
    return dout * (1 - out * out)


def sigmoid_forward(x):
    """``out = 1 / (1 + exp(-x))``, computed without overflow for large ``|x|``."""
    z = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    out = np.where(x >= 0, 1 / (1 + z), z / (1 + z))
    return out, out


def sigmoid_backward(dout, cache):
    """``dx = dout * s (1 - s)`` with ``s = sigmoid(x)`` from the cache."""
    out = cache
    return dout * out * (1 - out)
