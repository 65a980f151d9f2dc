"""The course's checkers (:mod:`scratchnet.course`): right functions pass, planted bugs get their hint.

Each planted bug is a classic learner's mistake written out; the test asserts that the checker
fails it and prints the hint that names it (the exact words a learner reads).
"""
import numpy as np
import pytest

from scratchnet import course
from scratchnet import losses
from scratchnet.nn import conv1d, gru, lstm, mask, maxpool1d, rnn


def run_check(capsys, checker, fn, *args, **kw):
    ok = checker(fn, *args, **kw)
    return ok, capsys.readouterr().out


# --------------------------------------------------------------------------- right functions pass
RIGHT = [
    (course.check_rnn_step_backward, rnn.rnn_step_backward, {}),
    (course.check_bptt, rnn.rnn_backward, {}),
    (course.check_bptt, rnn.rnn_backward_fast, dict(forward=rnn.rnn_forward_fast, seed=3, T=9, H=7)),
    (course.check_truncated_bptt, course.truncated_rnn_backward, {}),
    (course.check_truncated_bptt, course.truncated_rnn_backward, dict(seed=2, T=10, k=4)),
    (course.check_mask_backward, mask.mask_backward, {}),
    (course.check_mask_backward, mask.mask_backward_fast, dict(forward=mask.mask_forward_fast, seed=5, F=7)),
    (course.check_conv1d_backward, conv1d.conv1d_backward, {}),
    (course.check_conv1d_backward, conv1d.conv1d_backward_fast, dict(forward=conv1d.conv1d_forward_fast, K=4)),
    (course.check_maxpool1d_backward, maxpool1d.maxpool1d_backward, {}),
    (course.check_maxpool1d_backward, maxpool1d.maxpool1d_backward_fast,
     dict(forward=maxpool1d.maxpool1d_forward_fast, pool=2, stride=2, padding="valid")),
    (course.check_lstm_step_backward, lstm.lstm_step_backward, {}),
    (course.check_gru_step_backward, gru.gru_step_backward, dict(seed=4, H=3)),
]


@pytest.mark.parametrize("checker,fn,kw", RIGHT, ids=[f"{c.__name__}-{f.__name__}" for c, f, _ in RIGHT])
def test_a_right_function_passes_with_one_line_per_gradient(capsys, checker, fn, kw):
    ok, out = run_check(capsys, checker, fn, **kw)
    assert ok, out
    lines = [ln for ln in out.splitlines() if ln.startswith(("PASS", "FAIL"))]
    assert lines and all(ln.startswith("PASS") and ln.endswith("(needs < 1e-7)") for ln in lines), out
    assert "hint" not in out


@pytest.mark.parametrize("kind", ["mse", "kl", "is"])
def test_scratchnets_losses_pass_their_checker(capsys, kind):
    ok, out = run_check(capsys, course.check_loss, losses.get_loss(kind), kind)
    assert ok and out.count("PASS") == 3, out


def test_the_printed_line_reads_as_the_issue_asks(capsys):
    _, out = run_check(capsys, course.check_rnn_step_backward, rnn.rnn_step_backward)
    line = next(ln for ln in out.splitlines() if " dWh " in ln)
    assert line.split()[:3] == ["PASS", "dWh", "rel."] and "(needs < 1e-7)" in line


# --------------------------------------------------------------------------- planted bugs
def step_no_relu(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h  # BUG: the ReLU's mask is missing
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, prev_h.T @ dz, dz.sum(axis=0)


def step_dWh_transposed(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (next_h > 0)
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, dz.T @ prev_h, dz.sum(axis=0)  # BUG: dz^T prev_h


def step_db_not_summed(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h * (next_h > 0)
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, prev_h.T @ dz, dz  # BUG: db keeps the batch axis


def _bptt(dh, cache, *, step=None, carry=True, accumulate=True, forwards=False, cut=None):
    """A BPTT loop with switches for the classic bugs (the right one with the defaults)."""
    step = step or rnn.rnn_step_backward
    step_caches, h0 = cache
    N, T, H = dh.shape
    dx = np.zeros((N, T, step_caches[0][0].shape[1]))
    dW = [0, 0, 0]
    dprev = np.zeros((N, H))
    for t in (range(T) if forwards else reversed(range(T))):
        dx[:, t], dprev, *g = step(dh[:, t] + (dprev if carry else 0), step_caches[t])
        dW = [a + b for a, b in zip(dW, g)] if accumulate else g
        if cut is not None and cut(t):
            dprev = np.zeros((N, H))
    return (dx, dprev, *dW)


def stub(*args):
    raise NotImplementedError()


def mask_parts(dy1, dy2, cache):
    a, X, eps = cache
    F = X.shape[-1]
    a1, a2 = a[..., :F], a[..., F:]
    m1, m2 = np.abs(a1), np.abs(a2)
    s = m1 + m2 + eps
    g1, g2 = m1 / s, m2 / s
    dX = dy1 * g1 + dy2 * g2
    return a1, a2, m1, m2, s, dX


def mask_sign_as_ratio(dy1, dy2, cache):
    a1, a2, m1, m2, s, dX = mask_parts(dy1, dy2, cache)
    X = cache[1]
    with np.errstate(invalid="ignore", divide="ignore"):  # BUG: a / |a| is 0/0 on a silent frame
        return np.concatenate([X / s * (dy1 - dX) * a1 / m1, X / s * (dy2 - dX) * a2 / m2], -1), dX


def mask_no_sign(dy1, dy2, cache):
    a1, a2, m1, m2, s, dX = mask_parts(dy1, dy2, cache)
    X = cache[1]
    return np.concatenate([X / s * (dy1 - dX), X / s * (dy2 - dX)], -1), dX  # BUG: no sign(a)


def mask_s_constant(dy1, dy2, cache):
    a1, a2, m1, m2, s, dX = mask_parts(dy1, dy2, cache)
    X = cache[1]
    return np.concatenate([X / s * dy1 * np.sign(a1), X / s * dy2 * np.sign(a2)], -1), dX  # BUG


def mask_dX_without_gains(dy1, dy2, cache):
    da, _ = mask.mask_backward(dy1, dy2, cache)
    return da, dy1 + dy2  # BUG


def mse_without_discriminative_gradient(y1, y2, t1, t2, gamma=0.0):
    loss, _, _ = losses.mse_loss(y1, y2, t1, t2, gamma=gamma)
    n = y1.size // y1.shape[-1]
    return loss, 2 * (y1 - t1) / n, 2 * (y2 - t2) / n  # BUG: the -gamma terms are missing


def mse_not_normalised(y1, y2, t1, t2, gamma=0.0):
    loss, d1, d2 = losses.mse_loss(y1, y2, t1, t2, gamma=gamma)
    n = y1.size // y1.shape[-1]
    return loss * n, d1 * n, d2 * n  # BUG: summed, not divided by the N*T frames


def _divergence_loss(div):
    def loss(y1, y2, t1, t2, gamma=0.0):
        n = y1.size // y1.shape[-1]
        with np.errstate(all="ignore"):
            (a, ga), (b, gb), (c, gc), (d, gd) = div(t1, y1), div(t2, y2), div(t2, y1), div(t1, y2)
            return ((a.sum() + b.sum() - gamma * (c.sum() + d.sum())) / n,
                    (ga - gamma * gc) / n, (gb - gamma * gd) / n)
    return loss


kl_floor_only_in_log = _divergence_loss(
    lambda t, y: (t * np.log((t + 1e-2) / (y + 1e-2)) - t + y, 1 - t / (y + 1e-2)))  # BUG
is_without_floor = _divergence_loss(lambda t, y: (t / y - np.log(t / y) - 1, (1 - t / y) / y))  # BUG


def conv_kernel_not_flipped(dout, cache):
    x_pad, w, left, T = cache
    K = w.shape[0]
    _, dw, db = conv1d.conv1d_backward(dout, cache)
    dout_pad = np.pad(dout, ((0, 0), (K - 1, K - 1), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(dout_pad, K, axis=1)
    return np.einsum("nsoj,jco->nsc", win, w)[:, left:left + T], dw, db  # BUG: w, not w[::-1]


# the bug that sends a tie's gradient to every maximum is in the mutation bank (tests/test_mutations.py)


def pool_fancy_add(dout, cache):
    argmax, T_pad, left, T = cache
    N, _, C = dout.shape
    dx = np.zeros((N, T_pad, C))
    dx[np.arange(N)[:, None, None], argmax, np.arange(C)[None, None, :]] += dout  # BUG: keeps one
    return dx[:, left:left + T]


def lstm_without_dnext_c(dnext_h, dnext_c, cache):
    return lstm.lstm_step_backward(dnext_h, 0 * dnext_c, cache)  # BUG: dnext_c dropped


def gru_without_direct_path(dnext_h, cache):
    x, prev_h, Wx, Wh, r, z, n, hn = cache
    dx, dprev_h, *rest = gru.gru_step_backward(dnext_h, cache)
    return (dx, dprev_h - dnext_h * z, *rest)  # BUG: h_{t-1}'s direct path to h_t


PLANTED = {  # id: (checker, bug, kwargs, the hint's words)
    "step: ReLU mask missing": (course.check_rnn_step_backward, step_no_relu, {},
                                "the ReLU mask is missing"),
    "step: dWh transposed": (course.check_rnn_step_backward, step_dWh_transposed, {}, "dWh: it is transposed"),
    "step: db not summed": (course.check_rnn_step_backward, step_db_not_summed, {},
                            "it is dz itself, not summed; db sums dz over axis 0 (batch)"),
    "step: stub": (course.check_rnn_step_backward, stub, {},
                   "the stub is still in place"),
    "bptt: no carry": (course.check_bptt, lambda dh, c: _bptt(dh, c, carry=False), {},
                       "passes at T=1 but fails at T>1: the gradient carried from step t+1 is missing"),
    "bptt: no +=": (course.check_bptt, lambda dh, c: _bptt(dh, c, accumulate=False), {},
                    "their gradients add up over the steps (+=)"),
    "bptt: forwards": (course.check_bptt, lambda dh, c: _bptt(dh, c, forwards=True), {},
                       "the loop runs forwards in time"),
    "bptt: step without ReLU": (course.check_bptt, lambda dh, c: _bptt(dh, c, step=step_no_relu), {},
                                "the ReLU mask is missing"),
    "truncated: never cut": (course.check_truncated_bptt, lambda dh, c, k: _bptt(dh, c), {},
                             "the carried gradient is never cut"),
    "truncated: cut one step off": (course.check_truncated_bptt,
                                    lambda dh, c, k: _bptt(dh, c, cut=lambda t: t % k == 1 % k), {},
                                    "the cut is one step off"),
    "truncated: dh0 cut": (course.check_truncated_bptt,
                           lambda dh, c, k: _bptt(dh, c, cut=lambda t: t % k == 0), {}, "dh0 is zero"),
    "mask: a/|a| on a silent frame": (course.check_mask_backward, mask_sign_as_ratio, {},
                                      "fails only on a silent frame (a = 0)"),
    "mask: no sign": (course.check_mask_backward, mask_no_sign, {},
                      "passes when every a > 0, fails where a < 0"),
    "mask: s constant": (course.check_mask_backward, mask_s_constant, {}, "quotient rule"),
    "mask: dX without gains": (course.check_mask_backward, mask_dX_without_gains, {},
                               "dX = dy1 g1 + dy2 g2"),
    "mse: discriminative gradient": (course.check_loss, mse_without_discriminative_gradient, dict(kind="mse"),
                                     "the discriminative term is missing"),
    "mse: not normalised": (course.check_loss, mse_not_normalised, dict(kind="mse"), "off by a factor N*T"),
    "kl: floor only in the log": (course.check_loss, kl_floor_only_in_log, dict(kind="kl"),
                                  "the floor is only inside the log"),
    "is: no floor": (course.check_loss, is_without_floor, dict(kind="is"), "the floor is missing"),
    "conv: kernel not flipped": (course.check_conv1d_backward, conv_kernel_not_flipped, {},
                                 "dx is the correlation with the kernel as it is: flip it in time"),
    "maxpool: overlap": (course.check_maxpool1d_backward, pool_fancy_add, {}, "overlapping windows"),
    "lstm: dnext_c dropped": (course.check_lstm_step_backward, lstm_without_dnext_c, {}, "dnext_c is left out"),
    "gru: no direct path": (course.check_gru_step_backward, gru_without_direct_path, {},
                            "h_{t-1} reaches h_t directly too"),
}


@pytest.mark.parametrize("bug", list(PLANTED))
def test_a_planted_bug_fails_with_its_hint(capsys, bug):
    checker, fn, kw, hint = PLANTED[bug]
    ok, out = run_check(capsys, checker, fn, **kw)
    print(out)
    assert not ok
    assert "FAIL" in out
    assert any(ln.startswith("hint: ") and hint in ln for ln in out.splitlines()), out


def test_the_no_carry_bug_passes_at_one_step(capsys):
    """The premise of the hint: a BPTT without the carry is right for T = 1."""
    ok, _ = run_check(capsys, course.check_bptt, lambda dh, c: _bptt(dh, c, carry=False), T=1)
    assert ok


def test_the_references_are_taken_at_import(monkeypatch, capsys):
    """A learner who installs a wrong function in scratchnet.nn is still checked against the original."""
    monkeypatch.setattr(rnn, "rnn_step_backward", step_no_relu)
    ok, out = run_check(capsys, course.check_rnn_step_backward, step_no_relu)
    assert not ok and "ReLU mask is missing" in out


def test_unknown_sizes_are_refused():
    with pytest.raises(TypeError, match="unknown size"):
        course.check_bptt(rnn.rnn_backward, L=3)
    with pytest.raises(ValueError, match="kind="):
        course.check_loss(losses.mse_loss, "l1")


def test_truncation_with_k_at_least_T_is_full_bptt():
    rng = np.random.default_rng(0)
    x, h0 = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 4))
    Wx, Wh, b = rng.standard_normal((3, 4)), 0.4 * rng.standard_normal((4, 4)), rng.standard_normal(4)
    h, cache = rnn.rnn_forward(x, h0, Wx, Wh, b)
    dh = rng.standard_normal(h.shape)
    for a, b_ in zip(course.truncated_rnn_backward(dh, cache, 5), rnn.rnn_backward(dh, cache)):
        np.testing.assert_allclose(a, b_, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="k=0"):
        course.truncated_rnn_backward(dh, cache, 0)


# --------------------------------------------------------------------------- results, copies, the engine
def test_a_check_returns_a_result_that_reads_as_before(capsys):
    result = course.check_rnn_step_backward(step_dWh_transposed, verbose=False)
    assert not result and result == False and repr(result) == "False" and str(result) == "False"  # noqa: E712
    assert result["dWh"].hint.startswith("it is transposed") and not result["dWh"].passed
    assert result["dx"].passed and result["dx"].hint is None and result["dx"].error < 1e-7
    assert result.hints == ["dWh: " + result["dWh"].hint] and result.report().startswith("check_rnn_step_backward")
    assert capsys.readouterr().out == ""
    assert course.check_rnn_step_backward(rnn.rnn_step_backward, verbose=False) == True  # noqa: E712


def test_a_function_that_changes_its_cache_in_place_is_told_and_judged_on_what_it_returns(capsys):
    def step_scaling_x_in_place(dnext_h, cache):
        x, prev_h, Wx, Wh, next_h = cache
        x *= 2.0  # changes the forward's record
        dx, dprev_h, dWx, dWh, db = rnn.rnn_step_backward(dnext_h, cache)
        return dx, dprev_h, dWx / 2.0, dWh, db
    ok, out = run_check(capsys, course.check_rnn_step_backward, step_scaling_x_in_place)
    assert ok, out
    assert "note: step_scaling_x_in_place changed its cache in place (cache[0])" in out and "hint" not in out


def test_a_float32_gradient_is_judged_to_float32s_precision(capsys):
    def step32(dnext_h, cache):
        return tuple(np.asarray(g, np.float32) for g in rnn.rnn_step_backward(dnext_h, cache))
    ok, out = run_check(capsys, course.check_rnn_step_backward, step32)
    assert ok and "(needs < 1e-5: float32)" in out, out


def test_the_diagnosis_knows_nothing_of_the_layer():
    """A new checker (a dense layer here; a 2-D convolution later) gets the generic forms and the fit."""
    from scratchnet.course._check import Case, Terms, explain
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    ref = [x.T @ dout, dout.sum(axis=0)]
    rows = Terms([(f"row {i}", np.outer(x[i], dout[i])) for i in range(4)], formula="x_i^T dout_i over the rows")
    cases = {"transposed": [dout.T @ x, ref[1]], "mean": [x.T @ dout / 4, ref[1]],
             "rows": [x[:3].T @ dout[:3], ref[1]], "not summed": [ref[0], dout]}
    hints = {}
    for what, got in cases.items():
        case = Case(("dW", "db"), got, ref, [ref], 1e-7)
        found, _ = explain(case, terms={"dW": rows}, dims=dict(N=4), axes={"db": [("out",), ("batch", "out")]})
        hints[what] = found
    assert hints["transposed"]["dW"].startswith("it has shape (2, 3), expected (3, 2): it is the transpose")
    assert hints["mean"]["dW"].startswith("it is 1/4 times the right value (1/N = 1/4)")
    assert hints["rows"]["dW"] == "row 3 is missing (dW = sum of x_i^T dout_i over the rows)"
    assert "its sum over axis 0 (batch) is right" in hints["not summed"]["db"]


def test_no_hint_when_nothing_reproduces_the_learners_numbers(capsys):
    def step_noise(dnext_h, cache):
        out = list(rnn.rnn_step_backward(dnext_h, cache))
        out[3] = out[3] + np.random.default_rng(1).standard_normal(out[3].shape)
        return tuple(out)
    ok, out = run_check(capsys, course.check_rnn_step_backward, step_noise)
    assert not ok and "FAIL dWh" in out and "hint" not in out, out


def test_the_speed_line_reports_the_measured_ratio_against_its_threshold(capsys):
    """check_conv_speed's verdict is a speed, not an error: the line gives the ratio and the 5x."""
    from scratchnet.course._guard import check_conv_speed, conv1d_backward_loops
    ok, out = run_check(capsys, check_conv_speed, conv1d.conv1d_backward_fast)
    line = next(ln for ln in out.splitlines() if ln.split()[1:2] == ["speed"])
    assert ok and line.startswith("PASS speed") and line.endswith("x the loops (needs >= 5x)"), out
    assert float(line.split()[2].rstrip("x")) >= 5 and "rel. error" not in line
    ok, out = run_check(capsys, check_conv_speed, conv1d_backward_loops)
    line = next(ln for ln in out.splitlines() if ln.split()[1:2] == ["speed"])
    assert not ok and line.startswith("FAIL speed") and "(needs >= 5x)" in line and "hint: a Python loop" in out, out
