"""Optimizers on small least-squares problems; L-BFGS against SciPy's L-BFGS-B."""
import numpy as np
import pytest
from scipy.optimize import minimize, rosen, rosen_der

from scratchnet.errors import ScratchnetError
from scratchnet.optimizers import (LBFGS, OPTIMIZERS, SGD, Adadelta, Adagrad, Adam, flatten,
                                   get_optimizer, global_norm, lbfgs, unflatten)

# Per-optimizer settings that converge on the problem below within a few hundred steps.
SETTINGS = {
    "sgd": dict(lr=0.05, momentum=0.9),
    "sgd_nesterov": dict(lr=0.05, momentum=0.9, nesterov=True),
    "sgd_plain": dict(lr=0.1, momentum=0.0),
    "adagrad": dict(lr=0.5),
    "adadelta": dict(lr=1.0, rho=0.9, eps=1e-3),
    "adam": dict(lr=0.05),
}


def make(key, **kw):
    name = key.split("_")[0]
    return get_optimizer(name, **{**SETTINGS[key], **kw})


class LeastSquares:
    """loss = ||X W + b - Y||^2 / (2 n): a convex problem with a known minimiser."""

    def __init__(self, seed=0, dtype=np.float64, n=40, d=4, k=3):
        rng = np.random.default_rng(seed)
        self.X = rng.standard_normal((n, d)).astype(dtype)
        W_true = rng.standard_normal((d, k))
        self.Y = (self.X @ W_true + 0.5 + 0.01 * rng.standard_normal((n, k))).astype(dtype)
        self.params = {"W": np.zeros((d, k), dtype), "b": np.zeros(k, dtype)}
        X1 = np.hstack([self.X, np.ones((n, 1))]).astype(np.float64)
        self.best = np.linalg.lstsq(X1, self.Y.astype(np.float64), rcond=None)[0]  # d+1,k

    def __call__(self, params):
        n = self.X.shape[0]
        r = self.X @ params["W"] + params["b"] - self.Y     # n,k residual
        loss = float(np.sum(r.astype(np.float64) ** 2)) / (2 * n)
        return loss, {"W": self.X.T @ r / n, "b": r.sum(axis=0) / n}

    def distance_to_best(self, params):
        got = np.vstack([params["W"], params["b"][None]]).astype(np.float64)
        return np.max(np.abs(got - self.best))


@pytest.mark.parametrize("key", sorted(SETTINGS))
def test_one_step_decreases_loss_and_many_converge(key):
    prob = LeastSquares()
    opt = make(key)
    params = prob.params
    ids = {name: id(a) for name, a in params.items()}
    loss0, grads = prob(params)
    opt.step(params, grads)
    assert prob(params)[0] < loss0
    for _ in range(400):
        opt.step(params, prob(params)[1])
    assert {name: id(a) for name, a in params.items()} == ids     # updated in place
    assert prob.distance_to_best(params) < 1e-3, key


@pytest.mark.parametrize("key", sorted(SETTINGS))
def test_state_dict_round_trip_resumes_exactly(key, tmp_path):
    prob = LeastSquares(seed=1)
    opt = make(key, weight_decay=1e-3, clip_norm=10.0)
    for _ in range(5):
        opt.step(prob.params, prob(prob.params)[1])
    np.savez(tmp_path / "opt.npz", **opt.state_dict())
    clone_params = {name: a.copy() for name, a in prob.params.items()}
    clone = make(key, weight_decay=1e-3, clip_norm=10.0)
    with np.load(tmp_path / "opt.npz") as f:
        clone.load_state_dict(dict(f))
    for _ in range(5):
        opt.step(prob.params, prob(prob.params)[1])
        clone.step(clone_params, prob(clone_params)[1])
    for name in prob.params:
        np.testing.assert_array_equal(clone_params[name], prob.params[name])


def test_state_dict_is_flat_and_named():
    prob = LeastSquares()
    opt = Adam()
    opt.step(prob.params, prob(prob.params)[1])
    assert sorted(opt.state_dict()) == ["m/W", "m/b", "step", "v/W", "v/b"]
    assert opt.state_dict()["step"] == 1
    with pytest.raises(ScratchnetError, match="'G/W'.*Adam"):
        opt.load_state_dict({"step": 1, "G/W": np.zeros((4, 3))})


def test_clip_norm_bounds_the_sgd_update():
    params = {"a": np.zeros(3), "b": np.zeros((2, 2))}
    grads = {"a": np.array([30.0, -40.0, 0.0]), "b": np.full((2, 2), 60.0)}   # norm 130
    opt = SGD(lr=0.1, momentum=0.0, clip_norm=1.0)
    norm = opt.step(params, grads)
    assert norm == pytest.approx(130.0)
    assert global_norm(params) == pytest.approx(0.1 * 1.0)           # lr * clip_norm
    # direction kept: the update is opposite to the gradient
    np.testing.assert_allclose(flatten(params) / 0.1, -flatten(grads) / 130.0)
    small = {"a": np.array([0.3, 0.4, 0.0]), "b": np.zeros((2, 2))}  # norm 0.5 < clip
    params = {"a": np.zeros(3), "b": np.zeros((2, 2))}
    opt.step(params, small)
    np.testing.assert_allclose(params["a"], -0.1 * small["a"])


@pytest.mark.parametrize("key", sorted(SETTINGS))
def test_weight_decay_shrinks_weights_with_zero_gradient(key):
    params = {"W": np.full((3, 2), 2.0), "b": np.full(2, -1.0)}
    opt = make(key, weight_decay=0.1)
    for _ in range(3):
        opt.step(params, {name: np.zeros_like(a) for name, a in params.items()})
    assert np.all(np.abs(params["W"]) < 2.0) and np.all(np.abs(params["b"]) < 1.0)
    assert np.all(params["W"] > 0) and np.all(params["b"] < 0)       # shrunk, not flipped


@pytest.mark.parametrize("key", sorted(SETTINGS))
def test_float32_stays_float32(key):
    prob = LeastSquares(dtype=np.float32)
    opt = make(key, weight_decay=1e-4, clip_norm=5.0)
    for _ in range(3):
        opt.step(prob.params, prob(prob.params)[1])
    assert all(a.dtype == np.float32 for a in prob.params.values())
    state = opt.state_dict()
    assert all(v.dtype == np.float32 for k, v in state.items() if k != "step")


def test_get_optimizer_errors():
    assert isinstance(get_optimizer("adagrad", lr=0.1), Adagrad)
    assert isinstance(get_optimizer("adadelta"), Adadelta)
    assert set(OPTIMIZERS) == {"sgd", "adagrad", "adadelta", "adam"}
    with pytest.raises(ScratchnetError, match=r"unknown optimizer 'rmsprop'.*'sgd'.*'adam'"):
        get_optimizer("rmsprop", lr=0.1)
    with pytest.raises(ScratchnetError, match="bad options for optimizer 'adam'"):
        get_optimizer("adam", learning_rate=0.1)
    with pytest.raises(ScratchnetError, match="lr=-1"):
        SGD(lr=-1)
    with pytest.raises(ScratchnetError, match="only in grads: \\['c'\\]"):
        SGD(lr=0.1).step({"a": np.zeros(2)}, {"a": np.zeros(2), "c": np.zeros(1)})


# --------------------------------------------------------------------------- L-BFGS
def test_flatten_unflatten_round_trip():
    params = {"W": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([7.0, 8.0])}
    v = flatten(params)
    assert v.dtype == np.float64 and v.shape == (8,)
    back = unflatten(v, params)
    assert list(back) == ["W", "b"] and back["W"].dtype == np.float32
    for name in params:
        np.testing.assert_array_equal(back[name], params[name])
    with pytest.raises(ScratchnetError, match=r"\(7,\).*\(8,\)"):
        unflatten(v[:7], params)


@pytest.mark.parametrize("x0", [[-1.2, 1.0], [-1.2, 1.0, -1.2, 1.0, 0.5]])
def test_lbfgs_finds_the_rosenbrock_minimum_like_scipy(x0):
    x0 = np.array(x0)
    x, info = lbfgs(lambda x: (rosen(x), rosen_der(x)), x0, max_iter=500)
    ref = minimize(rosen, x0, jac=rosen_der, method="L-BFGS-B")
    assert info["converged"], info
    np.testing.assert_allclose(x, ref.x, atol=1e-4)
    np.testing.assert_allclose(x, np.ones_like(x0), atol=1e-4)
    assert info["f"] < 1e-8


def test_lbfgs_solves_least_squares_like_scipy():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((30, 8))
    b = rng.standard_normal(30)

    def fun(x):
        r = A @ x - b
        return 0.5 * r @ r, A.T @ r
    x, info = lbfgs(fun, np.zeros(8), max_iter=200)
    ref = minimize(fun, np.zeros(8), jac=True, method="L-BFGS-B")
    exact = np.linalg.lstsq(A, b, rcond=None)[0]
    np.testing.assert_allclose(x, exact, atol=1e-5)
    np.testing.assert_allclose(ref.x, exact, atol=1e-4)
    x_tight, _ = lbfgs(fun, np.zeros(8), max_iter=200, tol=1e-14)
    np.testing.assert_allclose(x_tight, exact, atol=1e-8)
    assert info["f"] <= ref.fun + 1e-12


def test_lbfgs_callback_and_stops_at_tol():
    seen = []
    x, info = lbfgs(lambda x: (float(x @ x), 2 * x), np.array([3.0, -4.0]),
                    callback=lambda x, f: seen.append(f))
    assert info["converged"] and np.max(np.abs(x)) < 1e-6
    assert len(seen) == info["nit"] and all(a >= b for a, b in zip(seen, seen[1:]))


def test_lbfgs_wrapper_updates_params_in_place():
    prob = LeastSquares(seed=2)
    params = prob.params
    W = params["W"]
    losses = []
    info = LBFGS(callback=lambda p, f: losses.append(f)).minimize(prob, params, max_iter=100)
    assert params["W"] is W and info["converged"]
    assert prob.distance_to_best(params) < 1e-5
    assert losses and losses[-1] == pytest.approx(info["f"])


def test_lbfgs_wrapper_float32():
    prob = LeastSquares(seed=3, dtype=np.float32)
    info = LBFGS().minimize(prob, prob.params, max_iter=100)
    assert prob.params["W"].dtype == np.float32
    assert prob.distance_to_best(prob.params) < 1e-3, info
