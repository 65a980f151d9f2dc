"""GRU and LSTM: BPTT against finite differences, the fast pairs against the readable ones, and
both against PyTorch's ``nn.GRU`` / ``nn.LSTM`` when torch is installed.

The gated cells are smooth (sigmoid, tanh, products), so unlike the ReLU RNN no input has to
be drawn away from a kink: every check below takes a plain random draw in float64.
"""
import numpy as np
import pytest

from scratchnet.gradcheck import check_gradients, numerical_gradient, rel_error
from scratchnet.nn import gru as G
from scratchnet.nn import lstm as L

H_STEP = 1e-6  # finite-difference step
TOL = 1e-7  # relative error of a correct backward in float64 (seen: about 1e-10)
GATES = {"gru": 3, "lstm": 4}
PAIRS = {"gru": [(G.gru_forward, G.gru_backward), (G.gru_forward_fast, G.gru_backward_fast)],
         "lstm": [(L.lstm_forward, L.lstm_backward), (L.lstm_forward_fast, L.lstm_backward_fast)]}


def _draw(cell, seed, N, T, D, H, dtype=np.float64):
    """Inputs of a sequence forward, by name, in the order of its arguments."""
    rng = np.random.default_rng(seed)
    k = GATES[cell]
    arrays = {"x": rng.standard_normal((N, T, D)), "h0": rng.standard_normal((N, H))}
    if cell == "lstm":
        arrays["c0"] = rng.standard_normal((N, H))
    arrays["Wx"] = rng.standard_normal((D, k * H)) / np.sqrt(D)
    arrays["Wh"] = rng.standard_normal((H, k * H)) / np.sqrt(H)
    if cell == "gru":
        arrays["bx"], arrays["bh"] = 0.5 * rng.standard_normal(k * H), 0.5 * rng.standard_normal(k * H)
    else:
        arrays["b"] = 0.5 * rng.standard_normal(k * H)
    return {name: a.astype(dtype) for name, a in arrays.items()}


def _step_inputs(cell, arrays):
    """Inputs of a step forward, by name: the first frame and the initial states."""
    step = {"x": np.ascontiguousarray(arrays["x"][:, 0]), "prev_h": arrays["h0"]}
    if cell == "lstm":
        step["prev_c"] = arrays["c0"]
    step.update({k: v for k, v in arrays.items() if k not in ("x", "h0", "c0")})
    return step


# --------------------------------------------------------------------------- one step
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_step_gradients(cell):
    module = G if cell == "gru" else L
    forward, backward = getattr(module, f"{cell}_step_forward"), getattr(module, f"{cell}_step_backward")
    inputs = _step_inputs(cell, _draw(cell, 0, 3, 1, 4, 5))
    outs = forward(*inputs.values())
    rng = np.random.default_rng(1)
    douts = tuple(rng.standard_normal(o.shape) for o in outs[:-1])  # next_h (and next_c)
    grads = dict(zip(inputs, backward(*douts, outs[-1])))

    def f():  # the step's output(s), summed against douts by numerical_gradient
        out = forward(*inputs.values())
        return out[0] if cell == "gru" else out[:2]

    for name, arr in inputs.items():
        num = numerical_gradient(f, arr, douts[0] if cell == "gru" else douts, h=H_STEP)
        assert rel_error(num, grads[name]) < TOL, name


# --------------------------------------------------------------------------- sequence
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("fast", [False, True], ids=["readable", "fast"])
@pytest.mark.parametrize("clip", [None, 1e3], ids=["no-clip", "clip-inactive"])
def test_sequence_gradients_every_tensor(cell, fast, clip):
    # clip=1e3 is far above every carried gradient here: the clipping code runs, and must
    # leave the exact gradient alone (active clipping is held to the readable pair below)
    forward, backward = PAIRS[cell][fast]
    arrays = _draw(cell, 2, 2, 5, 3, 4)
    dh = np.random.default_rng(3).standard_normal((2, 5, 4))
    _, cache = forward(*arrays.values())
    grads = dict(zip(arrays, backward(dh, cache, clip)))

    def loss():
        return float(np.sum(forward(*arrays.values())[0] * dh))

    errors = check_gradients(loss, arrays, grads, h=H_STEP)
    assert max(errors.values()) < TOL, errors


def _backward_dropping_carry(cell, dh, cache, drop):
    """A planted bug: BPTT from the step functions that drops one carried gradient.

    ``drop`` is "h" (dprev_h is not added to the next step's upstream gradient) or "c" (the
    LSTM's dprev_c is not passed on).  Returns the gradients in the pair's order.
    """
    step_caches = cache[0]
    N, T, H = dh.shape
    dprev_h = dprev_c = np.zeros((N, H))
    dx, grads = [], None
    for t in reversed(range(T)):
        dnext_h = dh[:, t] if drop == "h" else dh[:, t] + dprev_h  # the bug: "h" forgets dprev_h
        if cell == "gru":
            dx_t, dprev_h, *g = G.gru_step_backward(dnext_h, step_caches[t])
        else:
            dnext_c = np.zeros_like(dprev_c) if drop == "c" else dprev_c  # "c" forgets dprev_c
            dx_t, dprev_h, dprev_c, *g = L.lstm_step_backward(dnext_h, dnext_c, step_caches[t])
        dx.insert(0, dx_t)
        grads = g if grads is None else [a + b for a, b in zip(grads, g)]
    states = (dprev_h,) if cell == "gru" else (dprev_h, dprev_c)
    return (np.stack(dx, axis=1), *states, *grads)


@pytest.mark.parametrize("cell,drop", [("gru", "h"), ("lstm", "h"), ("lstm", "c")])
def test_planted_bug_shows_only_with_several_steps(cell, drop):
    # the classic BPTT bug, forgetting a carried gradient, is invisible on one step (nothing
    # is carried) and fails the check on five: why every check here runs on T > 1
    forward = PAIRS[cell][0][0]
    worst = {}
    for T in (1, 5):
        arrays = _draw(cell, 4, 2, T, 3, 4)
        dh = np.random.default_rng(5).standard_normal((2, T, 4))
        _, cache = forward(*arrays.values())
        grads = dict(zip(arrays, _backward_dropping_carry(cell, dh, cache, drop)))
        errors = check_gradients(lambda: float(np.sum(forward(*arrays.values())[0] * dh)), arrays, grads,
                                 h=H_STEP)
        worst[T] = max(errors.values())
    assert worst[1] < TOL, worst
    assert worst[5] > 1e-3, worst


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_carried_gradient_reaches_the_first_step(cell):
    # upstream gradient on the LAST step only: every earlier step, and the initial state,
    # get their gradient solely through what BPTT carries back
    for forward, backward in PAIRS[cell]:
        arrays = _draw(cell, 6, 2, 5, 3, 4)
        dh = np.zeros((2, 5, 4))
        dh[:, -1] = 1.0
        _, cache = forward(*arrays.values())
        grads = backward(dh, cache)
        assert np.abs(grads[0][:, 0]).max() > 1e-4 and np.abs(grads[1]).max() > 1e-4


# --------------------------------------------------------------------------- fast == readable
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("clip", [None, 0.05])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("with_state", [True, False])
def test_fast_path_equals_steps(cell, clip, dtype, tol, with_state):
    arrays = _draw(cell, 7, 3, 6, 5, 7, dtype)
    if not with_state:
        arrays["h0"] = None
        if cell == "lstm":
            arrays["c0"] = None
    dh = np.random.default_rng(8).standard_normal((3, 6, 7)).astype(dtype)
    (forward, backward), (forward_fast, backward_fast) = PAIRS[cell]
    h_ref, cache_ref = forward(*arrays.values())
    h, cache = forward_fast(*arrays.values())
    assert h.dtype == dtype
    np.testing.assert_allclose(h, h_ref, rtol=tol, atol=tol)
    ref = backward(dh, cache_ref, clip)
    names = ["dx"] + ["d" + k for k in arrays if k != "x"]
    for name, g, g_ref in zip(names, backward_fast(dh, cache, clip), ref):
        assert g.dtype == dtype, name
        np.testing.assert_allclose(g, g_ref, rtol=tol, atol=tol, err_msg=name)
    part = backward_fast(dh, cache, clip, input_grad=False)
    assert part[0] is None
    for name, g, g_ref in zip(names[1:], part[1:], ref[1:]):
        np.testing.assert_allclose(g, g_ref, rtol=tol, atol=tol, err_msg=f"{name} (input_grad=False)")


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_clip_bounds_the_carried_gradient(cell):
    # recurrent weights large enough that the carried gradient grows backwards in time
    arrays = _draw(cell, 9, 2, 12, 3, 4)
    arrays["Wh"] *= 6.0
    dh = np.zeros((2, 12, 4))
    dh[:, -1] = 1.0
    for forward, backward in PAIRS[cell]:
        _, cache = forward(*arrays.values())
        free = backward(dh, cache)
        clipped = backward(dh, cache, 0.01)
        n_states = 1 if cell == "gru" else 2  # dh0 (and dc0)
        for free_s, clipped_s in zip(free[1:1 + n_states], clipped[1:1 + n_states]):
            assert np.abs(free_s).max() > 0.01  # the clip is active ...
            assert np.abs(clipped_s).max() <= 0.01  # ... and bounds what reaches step 0


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_bad_arguments_name_the_shapes(cell):
    arrays = _draw(cell, 10, 2, 3, 4, 5)
    forward, backward = PAIRS[cell][1]
    bad = dict(arrays, h0=np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"h0 has shape \(3, 5\), expected \(2, 5\)"):
        forward(*bad.values())
    bad = dict(arrays, Wh=np.zeros((5, 5)))
    with pytest.raises(ValueError, match=rf"Wh \(5, 5\).*\(H, {GATES[cell]}H\)"):
        forward(*bad.values())
    bad = dict(arrays, Wx=np.zeros((3, GATES[cell] * 5)))
    with pytest.raises(ValueError, match=rf"x \(2, 3, 4\), Wx \(3, {GATES[cell] * 5}\)"):
        PAIRS[cell][0][0](*bad.values())
    if cell == "lstm":
        with pytest.raises(ValueError, match=r"c0 has shape \(2, 4\)"):
            forward(*dict(arrays, c0=np.zeros((2, 4))).values())
    _, cache = forward(*arrays.values())
    with pytest.raises(ValueError, match="clip=0"):
        backward(np.ones((2, 3, 5)), cache, clip=0)


# --------------------------------------------------------------------------- against PyTorch
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_equals_pytorch(cell):
    torch = pytest.importorskip("torch")
    N, T, D, H = 2, 5, 3, 4
    arrays = _draw(cell, 11, N, T, D, H)
    dh = np.random.default_rng(12).standard_normal((N, T, H))
    module = (torch.nn.GRU if cell == "gru" else torch.nn.LSTM)(D, H, batch_first=True).double()
    with torch.no_grad():  # PyTorch keeps (gates*H, in) weights: ours transposed
        module.weight_ih_l0.copy_(torch.from_numpy(arrays["Wx"].T))
        module.weight_hh_l0.copy_(torch.from_numpy(arrays["Wh"].T))
        if cell == "gru":
            module.bias_ih_l0.copy_(torch.from_numpy(arrays["bx"]))
            module.bias_hh_l0.copy_(torch.from_numpy(arrays["bh"]))
        else:  # one bias of ours is their two, added
            module.bias_ih_l0.copy_(torch.from_numpy(arrays["b"]))
            module.bias_hh_l0.zero_()
    x = torch.from_numpy(arrays["x"]).requires_grad_()
    states = [torch.from_numpy(arrays[k][None]).requires_grad_() for k in ("h0", "c0") if k in arrays]
    out, _ = module(x, states[0] if cell == "gru" else tuple(states))
    out.backward(torch.from_numpy(dh))
    theirs = {"x": x.grad, "h0": states[0].grad[0], "Wx": module.weight_ih_l0.grad.T,
              "Wh": module.weight_hh_l0.grad.T}
    if cell == "gru":
        theirs.update(bx=module.bias_ih_l0.grad, bh=module.bias_hh_l0.grad)
    else:
        theirs.update(c0=states[1].grad[0], b=module.bias_ih_l0.grad)
    for forward, backward in PAIRS[cell]:
        h, cache = forward(*arrays.values())
        np.testing.assert_allclose(h, out.detach().numpy(), rtol=1e-12, atol=1e-12, err_msg="h")
        for name, g in zip(arrays, backward(dh, cache)):
            np.testing.assert_allclose(g, theirs[name].numpy(), rtol=1e-12, atol=1e-12, err_msg="d" + name)
