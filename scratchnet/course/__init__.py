"""Checkers that teach: is a learner's backward pass right, and if not, what is the likely bug?

Each ``check_<function>(fn)`` runs a learner's function on random float64 inputs, compares every
gradient it returns with a centred finite difference *and* with scratchnet's own readable
implementation, prints one line per gradient::

    PASS dWh      rel. error 3e-11 (needs < 1e-7)

and returns a :class:`CheckResult`: true when every line passes, shown as ``True`` or ``False``,
with each gradient's error, tolerance and hint in ``result.tensors`` (``result["dWh"].hint``).
The error printed is the larger of the two comparisons (the finite difference proves the maths; the reference catches a function that
agrees with a wrong forward pass of the learner's own).  The learner's function gets copies of
its inputs; one that changes an input in place is told so in a ``note:`` line, and judged on
what it returns.  A gradient returned in float32 is judged to 1e-5.

When a line fails, the checker explains the learner's numbers: it prints a ``hint:`` only when
an explanation built from the reference's own parts reproduces the learner's array to 1e-6 --
a term of the formula missing, doubled, negated or swapped for its neighbour, a derivative
written otherwise, a constant factor, a transpose, an axis not summed (see :mod:`._check`) --
or when a condition isolates the cause (a sequence of one step, inputs on which every ReLU is
on, a silent frame, gamma = 0, a kernel of one tap, ties in a max-pool window).  No hint is
better than a wrong one.  A function that raises gets one FAIL line with the learner's own
lines of the traceback (and, when two shapes did not fit, a run with square weights).

The learner's backward takes the cache of a forward pass: scratchnet's own forward by default,
or the learner's (``forward=my_rnn_step_forward``) when they wrote both.  Every checker takes
``seed`` and the sizes of its inputs (``check_bptt(fn, seed=3, T=9)``), which the hidden tests
of the course's assignments use, ``tol`` and ``verbose``.

================ ===================================================================
``recurrent``    :func:`check_rnn_step_backward`, :func:`check_bptt`,
                 :func:`check_truncated_bptt` (and :func:`truncated_rnn_backward`)
``gated``        :func:`check_lstm_step_backward`, :func:`check_gru_step_backward`
``mask_and_losses`` :func:`check_mask_backward`, :func:`check_loss`
``conv_and_pool`` :func:`check_conv1d_backward`, :func:`check_conv2d_backward`,
                 :func:`check_maxpool1d_backward`
``_check``       what they share: calls on copies, comparisons, results, the diagnosis
================ ===================================================================

Examples
--------
>>> from scratchnet.nn.rnn import rnn_step_backward
>>> check_rnn_step_backward(rnn_step_backward, verbose=False)
True
"""
from ._check import REFERENCE, TOL, CheckResult, TensorResult
from .conv_and_pool import check_conv1d_backward, check_conv2d_backward, check_maxpool1d_backward
from .gated import check_gru_step_backward, check_lstm_step_backward
from .mask_and_losses import check_loss, check_mask_backward
from .recurrent import check_bptt, check_rnn_step_backward, check_truncated_bptt, truncated_rnn_backward

__all__ = ["REFERENCE", "TOL", "CheckResult", "TensorResult", "check_bptt", "check_conv1d_backward", "check_conv2d_backward",
           "check_gru_step_backward",
           "check_loss", "check_lstm_step_backward", "check_mask_backward",
           "check_maxpool1d_backward", "check_rnn_step_backward", "check_truncated_bptt",
           "truncated_rnn_backward"]
