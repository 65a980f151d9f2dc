"""Finite-difference gradient checks: the proof that a hand-written backward pass is right.

The check itself is :mod:`scratchnet.gradcheck.check`; :mod:`scratchnet.gradcheck.table` checks every layer,
objective and model of scratchnet with it (:func:`gradient_table`, :func:`model_rows`, both
importable from here), and ``python -m scratchnet.gradcheck`` prints that table with a
PASS/FAIL column (:mod:`scratchnet.gradcheck.__main__`).

Every backward pass in scratchnet is compared, in float64, with the centred difference

    df/dx[i] ~ (f(x + h e_i) - f(x - h e_i)) / 2h,

whose error is O(h^2) for a smooth f.  A layer with an array output ``out`` is checked
against an upstream gradient ``dout`` by differencing the scalar ``sum(out * dout)``, the
quantity whose gradient the backward pass computes.  The result is a single relative error
that a learner can read: about 1e-10 or smaller for a correct pass in float64, 1e-2 or more
for a wrong one.
"""
from .check import check_gradients, format_table, numerical_gradient, rel_error, verdict
from .table import GROUPS, THRESHOLD, gradient_table, model_rows, rnn_inputs

__all__ = ["GROUPS", "THRESHOLD", "check_gradients", "format_table", "gradient_table", "model_rows",
           "numerical_gradient", "rel_error", "rnn_inputs", "verdict"]
