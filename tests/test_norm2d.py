"""nn/norm2d.py: batch and instance normalisation of channel-last maps (issue 26).

Both pairs against a centred finite difference in float64 (gamma and beta too, several
shapes, one channel and several, N = 1), against PyTorch's ``batch_norm`` (training mode) and
``instance_norm`` forward and gradients, the statistics the cache hands a model, the errors.
The fast pair against the readable one is in tests/test_kernels.py.
"""
import numpy as np
import pytest

from scratchnet.gradcheck import numerical_gradient, rel_error
from scratchnet.nn import norm2d as Nm

PAIRS = {"reference": (Nm.norm2d_forward, Nm.norm2d_backward),
         "fast": (Nm.norm2d_forward_fast, Nm.norm2d_backward_fast)}
SHAPES = [(2, 3, 4, 1), (3, 2, 5, 4), (1, 4, 3, 2)]


@pytest.mark.parametrize("backend", ["reference", "fast"])
@pytest.mark.parametrize("over", ["batch", "instance"])
@pytest.mark.parametrize("shape", SHAPES)
def test_norm2d_gradients(backend, over, shape):
    forward, backward = PAIRS[backend]
    rng = np.random.default_rng(0)
    x = 2 * rng.standard_normal(shape) + 1
    gamma, beta = rng.standard_normal(shape[3]), rng.standard_normal(shape[3])
    out, cache = forward(x, gamma, beta, over)
    dout = rng.standard_normal(out.shape)
    grads = dict(zip(("x", "gamma", "beta"), backward(dout, cache)))
    for name, a in {"x": x, "gamma": gamma, "beta": beta}.items():
        num = numerical_gradient(lambda: forward(x, gamma, beta, over)[0], a, dout, h=1e-6)
        err = rel_error(num, grads[name])
        assert err < 1e-6, f"d{name}: rel error {err:.2e}"


@pytest.mark.parametrize("backend", ["reference", "fast"])
@pytest.mark.parametrize("over", ["batch", "instance"])
def test_norm2d_normalises_and_hands_over_the_statistics(backend, over):
    forward, _ = PAIRS[backend]
    x = np.random.default_rng(1).standard_normal((3, 4, 5, 2)) * [1.0, 3.0] + [0.0, 5.0]
    out, cache = forward(x, np.ones(2), np.zeros(2), over, 1e-12)
    axes = (0, 1, 2) if over == "batch" else (1, 2)
    np.testing.assert_allclose(out.mean(axis=axes), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=axes), 1, rtol=1e-9)
    mean, var = cache[2], cache[3]
    assert mean.shape == var.shape == ((1, 2) if over == "batch" else (3, 2))
    np.testing.assert_allclose(mean, x.mean(axis=axes).reshape(mean.shape), rtol=1e-12)
    np.testing.assert_allclose(var, x.var(axis=axes).reshape(var.shape), rtol=1e-12)


@pytest.mark.parametrize("backend", ["reference", "fast"])
def test_norm2d_float32_in_float32_out(backend):
    forward, backward = PAIRS[backend]
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5)).astype(np.float32)
    out, cache = forward(x, np.ones(5, np.float32), np.zeros(5, np.float32))
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in backward(np.ones_like(out), cache))


@pytest.mark.parametrize("kwargs,words", [
    (dict(over="layer"), "over='layer' must be 'batch' or 'instance'"),
    (dict(eps=0.0), "eps=0.0 must be a positive number"),
    (dict(gamma=np.ones(2)), r"gamma \(2,\)"),
    (dict(x=np.ones((1, 1, 1, 3))), "needs two pixels a group at least"),
])
def test_norm2d_rejects_bad_arguments(kwargs, words):
    args = dict(x=np.ones((2, 3, 4, 3)), gamma=np.ones(3), beta=np.zeros(3), over="batch", eps=1e-5)
    args.update(kwargs)
    for forward, _ in PAIRS.values():
        with pytest.raises(ValueError, match=words):
            forward(**args)


@pytest.mark.parametrize("backend", ["reference", "fast"])
@pytest.mark.parametrize("over", ["batch", "instance"])
@pytest.mark.parametrize("shape", SHAPES)
def test_norm2d_against_torch(backend, over, shape):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    forward, backward = PAIRS[backend]
    rng = np.random.default_rng(3)
    x = 2 * rng.standard_normal(shape) + 1
    gamma, beta = rng.standard_normal(shape[3]), rng.standard_normal(shape[3])
    xt = torch.tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), requires_grad=True)
    gt, bt = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
    if over == "batch":
        out_t = F.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)
    else:
        out_t = F.instance_norm(xt, weight=gt, bias=bt, eps=1e-5)
    out, cache = forward(x, gamma, beta, over, 1e-5)
    np.testing.assert_allclose(out, out_t.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-10)
    dout = rng.standard_normal(out.shape)
    out_t.backward(torch.tensor(np.ascontiguousarray(dout.transpose(0, 3, 1, 2))))
    dx, dgamma, dbeta = backward(dout, cache)
    np.testing.assert_allclose(dx, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dgamma, gt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dbeta, bt.grad.numpy(), rtol=1e-10, atol=1e-10)
