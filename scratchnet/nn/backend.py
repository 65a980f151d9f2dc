"""The backend switch: run every model on the fast pairs or on the readable NumPy pairs.

Each concept in :mod:`scratchnet.nn` offers two forward/backward pairs with one signature:
the readable pair (``affine_forward`` / ``affine_backward``: plain NumPy, the maths line by
line) and the fast pair (``affine_forward_fast`` / ``affine_backward_fast``: Numba kernels,
fused loops, BLAS-friendly layouts).  A model looks its layers' functions up by name each time
it runs, in the module of the concept, so

>>> import scratchnet.nn.rnn as rnn                               # doctest: +SKIP
>>> rnn.rnn_step_backward = my_rnn_step_backward                  # doctest: +SKIP
>>> with use_backend("reference"):                                # doctest: +SKIP
...     train(...)          # every DRNN now backpropagates through my_rnn_step_backward

trains the whole model with a learner's own function.  The losses' and Adam's fused kernels
follow the same switch.  ``scratchnet train --backend reference`` sets it for a run.
"""
import contextlib

from ..errors import ScratchnetError

BACKENDS = ("fast", "reference")
_current = ["fast"]


def get_backend():
    """The backend in force: ``"fast"`` (the default) or ``"reference"``."""
    return _current[0]


def set_backend(name):
    """Make ``name`` the backend of every model from now on; returns the previous one."""
    if name not in BACKENDS:
        raise ScratchnetError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    previous, _current[0] = _current[0], name
    return previous


@contextlib.contextmanager
def use_backend(name):
    """Run the ``with`` block on backend ``name``, then restore the previous one."""
    previous = set_backend(name)
    try:
        yield
    finally:
        _current[0] = previous


def pick(module, name):
    """The function ``name`` of ``module`` for the backend in force, looked up now.

    The fast backend takes ``name + "_fast"`` where the module has one (a concept without a
    kernel has one pair only, used by both backends); the reference backend always takes
    ``name`` itself.
    """
    if _current[0] == "fast":
        fast = getattr(module, name + "_fast", None)
        if fast is not None:
            return fast
    return getattr(module, name)


def pick_backward(module, name, *args, input_grad):
    """Call backward ``name`` of ``module`` for the backend in force: the fast one takes
    ``input_grad`` (False skips dx's work and returns None for it); the readable one always
    gives dx."""
    fn = pick(module, name)
    if fn is getattr(module, name + "_fast", None):
        return fn(*args, input_grad=input_grad)
    return fn(*args)
