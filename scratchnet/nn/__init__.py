"""Layers as forward/backward pairs, one concept per file, each readable top to bottom.

====================== ========================================================
``affine``             ``out = x w + b``
``activations``        ReLU, tanh, sigmoid
``context``            Huang's context window of neighbouring frames
``conv1d``             1-D convolution over time (the hybrid's front end)
``maxpool1d``          max-pooling over time
``conv2d``             2-D convolution over (time, frequency), channels last
``conv2d_transpose``   the transposed 2-D convolution (upsampling), conv2d's adjoint
``maxpool2d``          max-pooling over (time, frequency)
``norm2d``             batch and instance normalisation of channel-last maps
``mask``               the joint soft time-frequency mask
``rnn``                the ReLU RNN step, BPTT written from it, the recurrence kernels
``gru``                the GRU, as ``rnn`` (``_gated`` holds what it shares with the LSTM)
``lstm``               the LSTM, as ``rnn``
``init``               Glorot initialisers
``backend``            the switch between the fast pairs and the readable ones
``threads``            how the kernels split a batch over two threads
====================== ========================================================

Every file gives the equations (its docstring), the readable NumPy pair ``x_forward`` /
``x_backward`` with an explicit cache, the private Numba kernels where a loop needs one, and
the fast pair ``x_forward_fast`` / ``x_backward_fast`` with the same signature, which the
models use by default.  :func:`use_backend` switches every model to the readable pairs.
Arrays are batch-first (N, T, ...); ``d<name>`` is the gradient of the loss with respect to
``<name>`` and ``dout`` the upstream gradient.
"""
from .backend import BACKENDS, get_backend, set_backend, use_backend

__all__ = ["BACKENDS", "get_backend", "set_backend", "use_backend"]
