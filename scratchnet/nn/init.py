"""Weight initialisers, seeded through a NumPy ``Generator``.

Glorot & Bengio (2010): a weight of a layer with ``fan_in`` inputs and ``fan_out`` outputs is
drawn from U(-limit, limit), ``limit = sqrt(6 / (fan_in + fan_out))``, which keeps the variance
of activations and gradients about equal from layer to layer.
"""
import numpy as np


def uniform(limit, shape, rng, dtype=np.float32):
    """U(-limit, limit) of any shape, in ``dtype``."""
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def glorot_uniform(fan_in, fan_out, rng, dtype=np.float32):
    """Glorot uniform weights, shape (fan_in, fan_out)."""
    return uniform(np.sqrt(6.0 / (fan_in + fan_out)), (fan_in, fan_out), rng, dtype)


def recurrent_uniform(H, rng, dtype=np.float32):
    """Recurrent weights Wh, shape (H, H), from U(-limit, limit), ``limit = sqrt(6 / (3 H))``."""
    # Glorot for an (H, H) matrix, but counted with three fan terms (H + H + H) as in Huang's
    # code, so the recurrent weights start a little smaller than sqrt(6 / 2H).
    return uniform(np.sqrt(6.0 / (3 * H)), (H, H), rng, dtype)


def conv_glorot(K, Cin, Cout, rng, dtype=np.float32):
    """Glorot uniform convolution weights, shape (K, Cin, Cout).

    Each output sees ``K * Cin`` inputs and each input reaches ``K * Cout`` outputs, so
    ``limit = sqrt(6 / (K Cin + K Cout))``.
    """
    return uniform(np.sqrt(6.0 / (K * Cin + K * Cout)), (K, Cin, Cout), rng, dtype)


def uniform_fan(shape, fan, rng, dtype=np.float32):
    """U(-1/sqrt(fan), 1/sqrt(fan)) of any shape: PyTorch's default for the gated cells' weights."""
    return uniform(1.0 / np.sqrt(fan), shape, rng, dtype)
