"""Checkers of the gated cells' step backward passes: the LSTM and the GRU (as PyTorch's).

Each cell's backward is written here once more with every factor replaceable (``_lstm_grads``,
``_gru_grads``), so that the diagnosis can compute what a bug returns from the reference's own
parts: a gate's derivative written otherwise, another gate's value, the state of the other
time step, a carry left out, the update gate's sign, the blocks of the gate axis permuted.
"""
import itertools

import numpy as np

from ._check import (REFERENCE, TOL, Case, Hypothesis, Terms, call, call_learner, derivative_hypotheses, explain,
                     finish, numeric, run, shape_error, sizes, snapshot, square_rerun)

_LSTM_NAMES = ("dx", "dprev_h", "dprev_c", "dWx", "dWh", "db")
_GRU_NAMES = ("dx", "dprev_h", "dWx", "dWh", "dbx", "dbh")
_AXES = {"dx": ("batch", "input"), "dprev_h": ("batch", "hidden"), "dprev_c": ("batch", "hidden"),
         "db": [("gates",), ("batch", "gates")], "dbx": [("gates",), ("batch", "gates")],
         "dbh": [("gates",), ("batch", "gates")]}


# --------------------------------------------------------------------------- LSTM
def _lstm_grads(dnext_h, dnext_c, cache, deriv=None, direct_c=True, through_h=True, o_in_dc=True, dprev_c_gate="f",
                df_state=None, do_state=None, swap_di_dg=False, order=(0, 1, 2, 3), dx_W=None):
    """The LSTM step backward with every factor replaceable: {tensor: array}."""
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, tc = cache
    D = dict(i=i * (1 - i), f=f * (1 - f), g=1 - g * g, o=o * (1 - o), tc=1 - tc * tc)
    D.update(deriv or {})
    do = dnext_h * (tc if do_state is None else do_state)
    dc = (dnext_c if direct_c else 0) + (dnext_h * (o if o_in_dc else 1) * D["tc"] if through_h else 0)
    di, df, dg = (dc * i, dc * prev_c, dc * g) if swap_di_dg else (dc * g, dc * prev_c, dc * i)
    if df_state is not None:
        df = dc * df_state
    dprev_c = dc * dict(f=f, i=i, g=g, o=o, none=1)[dprev_c_gate]
    blocks = [di * D["i"], df * D["f"], dg * D["g"], do * D["o"]]
    da = np.concatenate([blocks[j] for j in order], axis=1)
    return dict(dx=da @ (Wx.T if dx_W is None else dx_W), dprev_h=da @ Wh.T, dprev_c=dprev_c * np.ones_like(dc),
                dWx=x.T @ da, dWh=prev_h.T @ da, db=da.sum(axis=0))


_GATES = {"i": "the input gate i", "f": "the forget gate f", "g": "the candidate g", "o": "the output gate o"}


def _block_and_transpose_hypotheses(grads, gates, dname, name, Wx):
    """A cell's gate blocks in another order than the forward's, and dx without Wx's transpose
    (where Wx is square and the product fits anyway)."""
    hyps, forward = [], ", ".join(gates)
    for order in itertools.permutations(range(len(gates))):
        if order != tuple(range(len(gates))):
            hyps.append(Hypothesis(f"the gate blocks of {dname} are in the order {', '.join(gates[j] for j in order)}: "
                                   f"the forward's order is {forward}", grads(order=order)))
    if Wx.shape[0] == Wx.shape[1]:
        hyps.append(Hypothesis(f"dx = {dname} Wx: the transpose is missing -- for {name} = x Wx, dx = {dname} Wx^T",
                               {"dx": grads(dx_W=Wx)["dx"]}))
    return hyps


def _lstm_hypotheses(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, g, o, tc = cache
    next_c = f * prev_c + i * g
    H = prev_h.shape[1]
    grads = lambda **kw: _lstm_grads(dnext_h, dnext_c, cache, **kw)  # noqa: E731
    hyps = [
        Hypothesis("dnext_c is left out: the cell's total gradient is dnext_c (from step t+1) plus what comes "
                   "through h_t = o tanh(c_t), dnext_h o (1 - tanh(c_t)^2)", grads(direct_c=False)),
        Hypothesis("the cell also gets gradient through h_t = o tanh(c_t): dc = dnext_c + dnext_h o "
                   "(1 - tanh(c_t)^2)", grads(through_h=False)),
        Hypothesis("the cell's gradient through h_t = o tanh(c_t) lacks o: dc = dnext_c + dnext_h o (1 - tanh(c_t)^2)",
                   grads(o_in_dc=False))]
    hyps += derivative_hypotheses(lambda d: grads(deriv=dict(tc=d)), "tanh(c_t)", "tanh", tc, "tanh(c)",
                                  pre=next_c, pre_symbol="c")
    both = np.concatenate([i, f, o], axis=1)
    hyps += derivative_hypotheses(lambda d: grads(deriv=dict(i=d[:, :H], f=d[:, H:2 * H], o=d[:, 2 * H:])),
                                  "the sigmoid gates i, f, o", "sigmoid", both, "s")
    for gate, kind, value in (("i", "sigmoid", i), ("f", "sigmoid", f), ("o", "sigmoid", o), ("g", "tanh", g)):
        hyps += derivative_hypotheses(lambda d, gate=gate: grads(deriv={gate: d}), _GATES[gate], kind, value, gate)
    for gate in ("i", "g", "o", "none"):
        what = "no gate" if gate == "none" else f"{_GATES[gate]}"
        hyps.append(Hypothesis(f"dprev_c uses {what}: c_t = f c_{{t-1}} + i g, so dprev_c = dc * f (the forget gate)",
                               {"dprev_c": grads(dprev_c_gate=gate)["dprev_c"]}))
    hyps.append(Hypothesis("df uses c_t: c_t = f c_{t-1} + i g, so df = dc * c_{t-1} (prev_c)", grads(df_state=next_c)))
    hyps.append(Hypothesis("do uses c_t: h_t = o tanh(c_t), so do = dnext_h * tanh(c_t)", grads(do_state=next_c)))
    hyps.append(Hypothesis("di and dg are swapped: c_t = f c_{t-1} + i g, so di = dc * g and dg = dc * i",
                           grads(swap_di_dg=True)))
    return hyps + _block_and_transpose_hypotheses(grads, "ifgo", "da", "a", Wx)


def _lstm_case(fn, forward, rng, N, D, H, tol, dc_zero=False):
    x, prev_h, prev_c = rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    Wx, Wh, b = 0.5 * rng.standard_normal((D, 4 * H)), 0.5 * rng.standard_normal((H, 4 * H)), rng.standard_normal(4 * H)
    args = [x, prev_h, prev_c, Wx, Wh, b]
    h, c, cache = call(forward, *snapshot(args), n=3)
    dnext_h = rng.standard_normal(np.shape(h))
    dnext_c = np.zeros(np.shape(c)) if dc_zero else rng.standard_normal(np.shape(c))
    got, notes = call_learner(fn, [dnext_h, dnext_c, cache], ("dnext_h", "dnext_c", "cache"), n=6)
    ref_cache = REFERENCE["lstm_step_forward"](*args)[2]
    ref = REFERENCE["lstm_step_backward"](dnext_h, dnext_c, ref_cache)
    num = numeric(lambda: forward(*snapshot(args))[:2], args, (dnext_h, dnext_c))
    return Case(_LSTM_NAMES, got, ref, [num, ref], tol, notes, dnext_h=dnext_h, dnext_c=dnext_c, cache=ref_cache)


def check_lstm_step_backward(fn, *, forward=None, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(dnext_h, dnext_c, cache) -> dx, dprev_h, dprev_c, dWx, dWh, db``.

    ``forward(x, prev_h, prev_c, Wx, Wh, b) -> next_h, next_c, cache`` (default scratchnet's
    ``lstm_step_forward``, gates i, f, g, o); sizes ``N, D, H``.  Explains: dnext_c left out,
    the cell's gradient through h left out, a gate's derivative written otherwise (sigma' as
    1 - sigma^2, tanh' as 1 - tanh, tanh'(c) taken at c), dprev_c from the wrong gate, c_t where
    c_{t-1} belongs, the gate blocks permuted, a missing transpose (run again with D = 4H when
    the shapes do not fit).
    """
    d = sizes(dict(N=3, D=4, H=5), dims)
    forward = forward or REFERENCE["lstm_step_forward"]
    title = f"check_lstm_step_backward: N={d['N']} D={d['D']} H={d['H']}, seed {seed}"

    def diagnose(case, d):
        found, hints = explain(case, _lstm_hypotheses(case.parts["dnext_h"], case.parts["dnext_c"],
                                                      case.parts["cache"]), dims=d, axes=_AXES)
        if d["D"] != 4 * d["H"]:
            sq = dict(d, D=4 * d["H"])
            found, hints = square_rerun(case, found, hints, lambda: diagnose(
                _lstm_case(fn, forward, np.random.default_rng(seed), tol=tol, **sq), sq), f"D = 4H = {sq['D']}")
        if set(case.failing) - set(found):
            if _lstm_case(fn, forward, np.random.default_rng(seed), tol=tol, dc_zero=True, **d).ok:
                hints.append("passes when dnext_c = 0, fails otherwise: dnext_c is left out or misused -- the "
                             "cell's total gradient is dc = dnext_c + dnext_h o (1 - tanh(c_t)^2)")
        return found, hints

    def body():
        case = _lstm_case(fn, forward, np.random.default_rng(seed), tol=tol, **d)
        found, hints = diagnose(case, d) if not case.ok else ({}, [])
        return finish(title, case, hints, verbose, found)
    return run(title, verbose, body, _square_retry(_lstm_case, diagnose, fn, forward, seed, tol, d, 4))


def _square_retry(make_case, diagnose, fn, forward, seed, tol, d, gates):
    """When the learner's shapes did not fit, run again with D = gates * H, where Wx is square."""
    def retry(failed):
        D = gates * d["H"]
        if not shape_error(failed) or d["D"] == D:
            return []
        sq = dict(d, D=D)
        case = make_case(fn, forward, np.random.default_rng(seed), tol=tol, **sq)
        if case.ok:
            return [f"with D = {gates}H = {D} it runs and passes: an array is made or multiplied with the wrong "
                    f"size where D belongs (a missing .T?)"]
        return [f"with D = {gates}H = {D}, where the shapes fit, {h}" for h in diagnose(case, sq)[1]]
    return retry


# --------------------------------------------------------------------------- GRU
def _gru_grads(dnext_h, cache, deriv=None, direct=True, bias_r=True, dz_sign=1, swap_z=False,
               dr_from_dn=False, dr_state=None, dhw_r=True, order=(0, 1, 2), dx_W=None):
    """The GRU step backward with every factor replaceable: {tensor: array}."""
    x, prev_h, Wx, Wh, r, z, n, hn = cache
    D = dict(r=r * (1 - r), z=z * (1 - z), n=1 - n * n)
    D.update(deriv or {})
    keep = 1 - z if swap_z else z  # the share of h_{t-1} that h_t keeps
    dn = dnext_h * (1 - keep)
    dz = dnext_h * (prev_h - n) * dz_sign * (-1 if swap_z else 1)
    da_n = dn * D["n"]
    da_r = (dn if dr_from_dn else da_n) * (hn if dr_state is None else dr_state) * D["r"]
    da_z = dz * D["z"]
    bx, bh = [da_r, da_z, da_n], [da_r, da_z, da_n * r if dhw_r else da_n]
    dxw = np.concatenate([bx[j] for j in order], axis=1)
    dhw = np.concatenate([bh[j] for j in order], axis=1)
    dbh = dhw.sum(axis=0) if bias_r else np.concatenate([[da_r, da_z, da_n][j] for j in order], axis=1).sum(axis=0)
    return dict(dx=dxw @ (Wx.T if dx_W is None else dx_W), dprev_h=(dnext_h * keep if direct else 0) + dhw @ Wh.T,
                dWx=x.T @ dxw, dWh=prev_h.T @ dhw, dbx=dxw.sum(axis=0), dbh=dbh)


_GRU_GATES = {"r": "the reset gate r", "z": "the update gate z", "n": "the candidate n"}


def _gru_hypotheses(dnext_h, cache):
    x, prev_h, Wx, Wh, r, z, n, hn = cache
    H = prev_h.shape[1]
    grads = lambda **kw: _gru_grads(dnext_h, cache, **kw)  # noqa: E731
    hyps = [
        Hypothesis("h_{t-1} reaches h_t directly too (h_t = (1 - z) n + z h_{t-1}): dprev_h = dnext_h z + dhw Wh^T",
                   grads(direct=False)),
        Hypothesis("the reset gate multiplies hw[n] = h_{t-1} Wh[n] + bh[n], its bias included, so the candidate "
                   "block of dhw (and of dbh) is da_n r, not da_n", grads(dhw_r=False)),
        Hypothesis("the reset gate multiplies hw[n] = h_{t-1} Wh[n] + bh[n], its bias included, so the candidate "
                   "block of dbh is sum_n da_n r, not sum_n da_n", {"dbh": grads(bias_r=False)["dbh"]}),
        Hypothesis("the update gate's sign: h_t = (1 - z) n + z h_{t-1}, so dz = dnext_h (h_{t-1} - n), "
                   "not dnext_h (n - h_{t-1})", grads(dz_sign=-1)),
        Hypothesis("z and 1 - z are swapped: h_t = (1 - z) n + z h_{t-1} keeps the share z of h_{t-1} "
                   "(PyTorch's convention), so dn = dnext_h (1 - z) and the direct path is dnext_h z",
                   grads(swap_z=True)),
        Hypothesis("dr skips the candidate's tanh: n = tanh(xw[n] + r hw[n]), so dr = da_n hw[n] with "
                   "da_n = dn (1 - n^2)", grads(dr_from_dn=True)),
        Hypothesis("dr uses h_{t-1}: the reset gate multiplies hw[n] = h_{t-1} Wh[n] + bh[n], so dr = da_n hw[n]",
                   grads(dr_state=prev_h))]
    both = np.concatenate([r, z], axis=1)
    hyps += derivative_hypotheses(lambda d: grads(deriv=dict(r=d[:, :H], z=d[:, H:])),
                                  "the sigmoid gates r, z", "sigmoid", both, "s")
    for gate, kind, value in (("r", "sigmoid", r), ("z", "sigmoid", z), ("n", "tanh", n)):
        hyps += derivative_hypotheses(lambda d, gate=gate: grads(deriv={gate: d}), _GRU_GATES[gate], kind, value, gate)
    return hyps + _block_and_transpose_hypotheses(grads, "rzn", "dxw", "xw", Wx)


def _gru_terms(dnext_h, cache):
    """dprev_h as its two paths: direct (dnext_h z) and through the gates (dhw Wh^T)."""
    x, prev_h, Wx, Wh, r, z, n, hn = cache
    direct = dnext_h * z
    gates = REFERENCE["gru_step_backward"](dnext_h, cache)[1] - direct
    why = "h_t = (1 - z) n + z h_{t-1}: dprev_h = dnext_h z + dhw Wh^T"
    return {"dprev_h": Terms([("the direct path dnext_h z", direct), ("the path through the gates, dhw Wh^T,", gates)],
                             swaps=[("the direct path dnext_h z", dnext_h * (1 - z),
                                     f"the direct path is dnext_h (1 - z): {why}, the share z of h_{{t-1}} is kept")],
                             why={"the direct path dnext_h z": why, "the path through the gates, dhw Wh^T,": why})}


def _gru_case(fn, forward, rng, N, D, H, tol):
    x, prev_h = rng.standard_normal((N, D)), rng.standard_normal((N, H))
    Wx, Wh = 0.5 * rng.standard_normal((D, 3 * H)), 0.5 * rng.standard_normal((H, 3 * H))
    bx, bh = rng.standard_normal(3 * H), rng.standard_normal(3 * H)
    args = [x, prev_h, Wx, Wh, bx, bh]
    h, cache = call(forward, *snapshot(args), n=2)
    dnext_h = rng.standard_normal(np.shape(h))
    got, notes = call_learner(fn, [dnext_h, cache], ("dnext_h", "cache"), n=6)
    ref_cache = REFERENCE["gru_step_forward"](*args)[1]
    ref = REFERENCE["gru_step_backward"](dnext_h, ref_cache)
    num = numeric(lambda: forward(*snapshot(args))[0], args, dnext_h)
    return Case(_GRU_NAMES, got, ref, [num, ref], tol, notes, dnext_h=dnext_h, cache=ref_cache)


def check_gru_step_backward(fn, *, forward=None, seed=0, tol=TOL, verbose=True, **dims):
    """Check ``fn(dnext_h, cache) -> dx, dprev_h, dWx, dWh, dbx, dbh``, the GRU step backward.

    ``forward(x, prev_h, Wx, Wh, bx, bh) -> next_h, cache`` (default scratchnet's
    ``gru_step_forward``, blocks r, z, n); sizes ``N, D, H``.  Explains: the direct path from
    h_{t-1} left out, the reset gate's r left out of the candidate's recurrent block or bias,
    the update gate's sign or z and 1 - z swapped, dr without the candidate's tanh or with
    h_{t-1}, a gate's derivative written otherwise, the blocks permuted, a missing transpose.
    """
    d = sizes(dict(N=3, D=4, H=5), dims)
    forward = forward or REFERENCE["gru_step_forward"]
    title = f"check_gru_step_backward: N={d['N']} D={d['D']} H={d['H']}, seed {seed}"

    def diagnose(case, d):
        found, hints = explain(case, _gru_hypotheses(case.parts["dnext_h"], case.parts["cache"]),
                               _gru_terms(case.parts["dnext_h"], case.parts["cache"]), dims=d, axes=_AXES)
        if d["D"] != 3 * d["H"]:
            sq = dict(d, D=3 * d["H"])
            found, hints = square_rerun(case, found, hints, lambda: diagnose(
                _gru_case(fn, forward, np.random.default_rng(seed), tol=tol, **sq), sq), f"D = 3H = {sq['D']}")
        return found, hints

    def body():
        case = _gru_case(fn, forward, np.random.default_rng(seed), tol=tol, **d)
        found, hints = diagnose(case, d) if not case.ok else ({}, [])
        return finish(title, case, hints, verbose, found)
    return run(title, verbose, body, _square_retry(_gru_case, diagnose, fn, forward, seed, tol, d, 3))
