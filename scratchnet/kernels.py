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
