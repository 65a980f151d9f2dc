"""End-to-end gradient checks of every model, saving/loading, and a DRNN that overfits a clip.

The finite-difference steps are h = 1e-6.  A centred difference is only valid where no ReLU,
max-pool or |a| (in the mask) switches branch within h of the point, so each check first
measures the model's *kink margin* (:meth:`Model.kink_margin`): the smallest |pre-activation|
of every ReLU (dense and recurrent), the smallest |a| entering the mask, and the smallest gap
between the winner of a max-pool window and its runner-up.  Inputs are redrawn (seeded) until
this margin is over a thousand times h, and the test asserts it.
"""
import functools

import numpy as np
import pytest

from scratchnet import losses
from scratchnet.errors import ScratchnetError
from scratchnet.gradcheck import check_gradients, format_table, rel_error
from scratchnet.models import ARCHS, Model, load_model, make_config, param_shapes

H_STEP = 1e-6
SMALL = {
    "dnn": dict(hidden=5, layers=3, context=1),
    "drnn-1": dict(hidden=5, layers=3, context=1),
    "drnn-2": dict(hidden=5, layers=3, context=1),
    "drnn-3": dict(hidden=5, layers=3, context=1),
    "srnn": dict(hidden=5, layers=3, context=1),
    "hybrid": dict(conv_filters=[5, 4, 3], dense=[6, 4, 5, 4], rnn=[4, 3, 4]),
    "unet": dict(unet_channels=[2, 3]),
}


def small_model(arch, seed=0, **kw):
    cfg = make_config(arch=arch, n_bins=6, dtype="float64", seed=seed, **dict(SMALL[arch], **kw))
    return Model(cfg)


def kink_margin(model, X):
    return model.kink_margin(X)


def draw_input(model, rng, N=2, T=4):
    """Positive magnitudes, redrawn (seeded) until every kink is far from the point."""
    for _ in range(200):
        X = rng.uniform(0.2, 1.5, (N, T, model.config["n_bins"]))
        if kink_margin(model, X) > 1e-3:
            return X
    raise AssertionError("no input far enough from the kinks; change the seed")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("objective", ["mse", "kl", "is"])
def test_end_to_end_gradients(arch, objective):
    rng = np.random.default_rng(1)
    model = small_model(arch)
    for name in model.params:  # non-zero biases so that every term is exercised
        if name.endswith("/b"):
            model.params[name][...] = rng.uniform(-0.1, 0.1, model.params[name].shape)
    X = draw_input(model, rng)
    margin = kink_margin(model, X)
    assert margin > 1000 * H_STEP, margin
    t1, t2 = rng.uniform(0.1, 1, X.shape), rng.uniform(0.1, 1, X.shape)
    loss_fn = functools.partial(losses.get_loss(objective), gamma=0.05)

    def loss():
        (y1, y2), _ = model.forward(X)
        return loss_fn(y1, y2, t1, t2)[0]

    (y1, y2), cache = model.forward(X)
    _, dy1, dy2 = loss_fn(y1, y2, t1, t2)
    grads, dX = model.backward(dy1, dy2, cache)
    assert set(grads) == set(model.params)
    errors = check_gradients(loss, dict(model.params, X=X), dict(grads, X=dX), h=H_STEP)
    print("\n" + format_table([(f"{arch}/{objective}", k, v) for k, v in errors.items()]))
    worst = max(errors, key=errors.get)
    assert errors[worst] < 1e-6, f"{arch} {objective}: {worst} rel error {errors[worst]:.2e}"


@pytest.mark.parametrize("arch", ARCHS)
def test_float32_forward_matches_float64(arch):
    m64 = small_model(arch)
    m32 = Model(dict(m64.config, dtype="float32"),
                {k: v.astype(np.float32) for k, v in m64.params.items()})
    X = np.random.default_rng(0).uniform(0, 1, (2, 7, 6))
    (a, b), _ = m64.forward(X)
    (c, d), _ = m32.forward(X.astype(np.float32))
    assert c.dtype == np.float32
    assert rel_error(a, c) < 1e-5 and rel_error(b, d) < 1e-5


def test_masks_split_the_mixture_exactly():
    model = small_model("drnn-2")
    X = np.random.default_rng(0).uniform(0, 1, (3, 5, 6))
    (y1, y2), _ = model.forward(X)
    np.testing.assert_allclose(y1 + y2, X, rtol=1e-6)
    assert (y1 >= 0).all() and (y2 >= 0).all()


def test_silence_gives_silence_not_nan():
    model = small_model("hybrid")
    (y1, y2), _ = model.forward(np.zeros((1, 5, 6)))
    assert np.all(y1 == 0) and np.all(y2 == 0)


def test_param_shapes_of_huang_drnn2():
    shapes = param_shapes(make_config(arch="drnn-2", hidden=1000))
    assert shapes["hidden1/W"] == (3 * 513, 1000)
    assert shapes["hidden2/U"] == (1000, 1000)
    assert "hidden1/U" not in shapes and "hidden3/U" not in shapes
    assert shapes["out/W"] == (1000, 1026)


def test_hybrid_layout():
    shapes = param_shapes(make_config(arch="hybrid"))
    assert shapes["conv1/W"] == (3, 513, 512) and shapes["conv3/W"] == (3, 256, 128)
    assert [shapes[f"dense{i}/W"][1] for i in range(1, 5)] == [1024, 128, 256, 512]
    assert [shapes[f"rnn{i}/U"] for i in range(1, 4)] == [(256, 256)] * 3
    assert shapes["out/W"] == (256, 1026)


def test_initialisation_is_seeded_and_glorot():
    a, b = Model(make_config(arch="drnn-2", hidden=50, seed=3)), Model(make_config(arch="drnn-2", hidden=50, seed=3))
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    W = a.params["hidden1/W"]
    assert np.abs(W).max() <= np.sqrt(6 / (W.shape[0] + W.shape[1]))
    assert np.abs(a.params["hidden2/U"]).max() <= np.sqrt(6 / (3 * 50))


def test_save_and_load_round_trip(tmp_path):
    model = small_model("drnn-2", features="log1p")
    model.buffers["mean"][:] = 0.3
    path = model.save(str(tmp_path / "m.npz"))
    assert (tmp_path / "m.json").exists()
    again = load_model(path)
    assert again.config == model.config
    X = np.random.default_rng(0).uniform(0, 1, (1, 6, 6))
    np.testing.assert_array_equal(again.forward(X)[0][0], model.forward(X)[0][0])


def test_load_names_the_wrong_tensor(tmp_path):
    model = small_model("drnn-2")
    model.params["hidden2/U"] = np.zeros((4, 4))
    path = model.save(str(tmp_path / "bad.npz"))
    with pytest.raises(ScratchnetError, match=r"'hidden2/U' has shape \(4, 4\).*expects \(5, 5\)"):
        load_model(path)
    with pytest.raises(ScratchnetError, match="does not exist"):
        load_model(str(tmp_path / "missing.npz"))
    (tmp_path / "junk.npz").write_text("not a model")
    with pytest.raises(ScratchnetError, match="not a scratchnet model"):
        load_model(str(tmp_path / "junk.npz"))


def test_bad_config_values():
    with pytest.raises(ScratchnetError, match="unknown model 'drnn-9'"):
        make_config(arch="drnn-9")
    with pytest.raises(ScratchnetError, match="unknown model option"):
        make_config(hiden=3)
    with pytest.raises(ScratchnetError, match="drnn-3 needs at least 3 hidden layers"):
        Model(make_config(arch="drnn-3", layers=2))


def test_predict_in_sequences_matches_forward_for_a_dnn():
    model = small_model("dnn", context=0)
    X = np.random.default_rng(0).uniform(0, 1, (23, 6))
    whole = model.predict(X)
    chunked = model.predict(X, seq_len=5)
    np.testing.assert_allclose(whole[0], chunked[0])


def test_the_printed_gradient_table_passes():
    """``python -m scratchnet.gradcheck``: every layer, objective and model below 1e-6."""
    from scratchnet.gradcheck import gradient_table
    rows = gradient_table()
    whats = {r[0] for r in rows}
    assert {"affine", "mask", "rnn BPTT (kernels)", "model hybrid (reference)", "model hybrid (fast)",
            "loss is (gamma 0.05)"} <= whats
    bad = [r for r in rows if not r[2] < 1e-6]
    assert not bad, bad


@pytest.mark.parametrize("arch", ARCHS)
def test_training_backward_skips_only_the_input_gradient(arch):
    rng = np.random.default_rng(3)
    model = small_model(arch)
    X = rng.uniform(0.2, 1.5, (2, 4, model.config["n_bins"]))  # no gradient check: kinks are fine
    (y1, y2), cache = model.forward(X)
    dy1, dy2 = rng.standard_normal(y1.shape), rng.standard_normal(y2.shape)
    grads, dX = model.backward(dy1, dy2, cache)
    grads_train, dX_train = model.backward(dy1, dy2, cache, input_grad=False)
    assert dX is not None and dX_train is None
    assert set(grads_train) == set(grads)
    for name in grads:
        np.testing.assert_array_equal(grads_train[name], grads[name], err_msg=name)
    # the layer whose input gradient is skipped: the first tensors in the model's order
    first = model.first_layer_names()
    assert first and first == list(model.params)[:len(first)]
    assert len({n.split("/")[0] for n in first}) == 1


def test_half_precision_storage_loads_back_in_the_config_dtype(tmp_path):
    model = Model(make_config(arch="drnn-2", hidden=16, seed=0))
    path = model.save(str(tmp_path / "half.npz"), storage_dtype="float16")
    with np.load(path) as z:
        assert z["param:hidden2/U"].dtype == np.float16
    again = load_model(path)
    assert again.params["hidden2/U"].dtype == np.float32
    np.testing.assert_allclose(again.params["hidden2/U"], model.params["hidden2/U"], rtol=1e-3, atol=1e-6)


# --------------------------------------------------------------------------- the two backends
@pytest.mark.parametrize("arch", ARCHS)
def test_the_two_backends_agree_on_loss_and_gradients(arch):
    """Every architecture: readable pairs and fast pairs give one loss and one gradient (float64)."""
    from scratchnet.gradcheck import rel_error
    from scratchnet.losses import mse_loss
    from scratchnet.nn import use_backend
    rng = np.random.default_rng(11)
    model = small_model(arch)
    model.params = {k: v.astype(np.float64) for k, v in model.params.items()}
    model.dtype = np.dtype(np.float64)
    X = rng.uniform(0.2, 1.5, (2, 7, model.config["n_bins"]))
    t1, t2 = rng.uniform(0, 1, X.shape), rng.uniform(0, 1, X.shape)
    results = {}
    for backend in ("reference", "fast"):
        with use_backend(backend):
            (y1, y2), cache = model.forward(X)
            loss, d1, d2 = mse_loss(y1, y2, t1, t2, gamma=0.05)
            results[backend] = loss, model.backward(d1, d2, cache)
    (loss_r, (g_r, dX_r)), (loss_f, (g_f, dX_f)) = results["reference"], results["fast"]
    assert abs(loss_r - loss_f) <= 1e-6 * abs(loss_r)
    for name in g_r:
        assert rel_error(g_r[name], g_f[name]) < 1e-6, name
    assert rel_error(dX_r, dX_f) < 1e-6


def _relu_mask_dropped(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    dz = dnext_h  # BUG: the ReLU's mask [z > 0] is missing
    return dz @ Wx.T, dz @ Wh.T, x.T @ dz, prev_h.T @ dz, dz.sum(axis=0)


def _carry_forgotten(dh, cache, clip=None):
    import scratchnet.nn.rnn as rnn
    step_caches, h0 = cache
    N, T, H = dh.shape
    dx = np.zeros((N, T, step_caches[0][2].shape[0]))
    total = None
    for t in reversed(range(T)):
        dx[:, t], dprev, *g = rnn.rnn_step_backward(dh[:, t], step_caches[t])  # BUG: no + dprev_h
        total = g if total is None else [a + b for a, b in zip(total, g)]
    return (dx, dprev, *total)


@pytest.mark.parametrize("name,bug", [("rnn_step_backward", _relu_mask_dropped),
                                      ("rnn_backward", _carry_forgotten)])
def test_a_planted_bug_in_a_readable_backward_fails_a_model_row(monkeypatch, name, bug):
    import scratchnet.nn.rnn as rnn
    from scratchnet.gradcheck import model_rows
    assert max(e for _, _, e in model_rows(["drnn-2"], backend="reference")) < 1e-6
    monkeypatch.setattr(rnn, name, bug)
    worst = max(e for _, _, e in model_rows(["drnn-2"], backend="reference"))
    assert worst > 1e-3, f"the planted bug in {name} went unnoticed (worst error {worst:.1e})"
    assert max(e for _, _, e in model_rows(["drnn-2"], backend="fast")) < 1e-6  # fast code untouched


def test_a_learners_own_step_backward_trains_the_model(monkeypatch):
    """With the reference backend, replacing one readable function trains the model with it."""
    import scratchnet.nn.rnn as rnn
    from scratchnet.losses import mse_loss
    from scratchnet.nn import use_backend
    calls = []

    def mine(dnext_h, cache):
        calls.append(dnext_h.shape)
        x, prev_h, Wx, Wh, next_h = cache
        dz = dnext_h * (next_h > 0)
        return dz @ Wx.T, dz @ Wh.T, x.T @ dz, prev_h.T @ dz, dz.sum(axis=0)

    monkeypatch.setattr(rnn, "rnn_step_backward", mine)
    model = small_model("drnn-2")
    X = np.random.default_rng(0).uniform(0.2, 1.5, (3, 4, model.config["n_bins"]))
    with use_backend("reference"):
        model.loss_and_grad(X, X / 2, X / 2, mse_loss)
    assert calls == [(3, 5)] * 4  # one call per time step, batch 3, hidden 5
    calls.clear()
    model.loss_and_grad(X, X / 2, X / 2, mse_loss)  # the fast backend does not use it
    assert calls == []


@pytest.mark.parametrize("backend", ["reference", "fast"])
@pytest.mark.parametrize("options", [dict(cell="gru"), dict(cell="lstm"), dict(bidirectional=True),
                                     dict(cell="gru", bidirectional=True), dict(cell="lstm", bidirectional=True)])
def test_gated_and_bidirectional_models_pass_the_gradient_check(backend, options):
    from scratchnet.gradcheck import model_rows
    rows = model_rows(["drnn-2", "srnn"], backend=backend, **options)
    bad = [r for r in rows if not r[2] < 1e-6]
    assert not bad, bad
    names = {r[1] for r in rows}
    if options.get("bidirectional"):
        assert any(n.endswith("_rev") for n in names)  # the backward direction has its own tensors


def test_a_bidirectional_layer_sees_the_future():
    """The forward-only DRNN's first output frames do not depend on later input; the bidirectional one's do."""
    rng = np.random.default_rng(4)
    for bi, depends in ((False, False), (True, True)):
        model = small_model("drnn-2", context=0, bidirectional=bi)
        X = rng.uniform(0.2, 1.5, (1, 6, 6))
        Y = X.copy()
        Y[:, -1] += 1.0  # change only the last frame
        a, b = model.forward(X)[0][0], model.forward(Y)[0][0]
        assert np.allclose(a[:, 0], b[:, 0]) != depends


def test_lstm_forget_gate_starts_open_and_param_names():
    model = small_model("drnn-2", cell="lstm")
    b = model.params["hidden2/b"]
    H = 5
    np.testing.assert_array_equal(b[H:2 * H], 1.0)
    assert b[:H].max() == 0 and b[2 * H:].max() == 0
    assert model.params["hidden2/Wx"].shape == (H, 4 * H)
    gru_model = small_model("drnn-2", cell="gru", bidirectional=True)
    assert gru_model.params["hidden2/Wh_rev"].shape == (H, 3 * H)
    assert gru_model.params["hidden3/W"].shape == (2 * H, H)  # the layer above sees both directions


@pytest.mark.parametrize("cell", ["relu", "gru", "lstm"])
def test_training_step_is_the_same_with_one_or_two_kernel_threads(cell):
    """nn/threads.py splits the batch's sequences over threads: a step's numbers do not change."""
    from scratchnet import losses, optimizers
    from scratchnet.nn import threads

    rng = np.random.default_rng(0)
    X = np.abs(rng.standard_normal((4, 9, 17))).astype(np.float32)
    g = rng.random(X.shape).astype(np.float32)
    results = []
    previous = threads.get_threads()
    try:
        for k in (1, 2):
            threads.set_threads(k)
            model = Model(make_config(arch="drnn-2", n_bins=17, hidden=8, cell=cell, bidirectional=True))
            opt = optimizers.Adam(lr=1e-2, clip_norm=0.5)
            loss, grads = model.loss_and_grad(X, g * X, (1 - g) * X,
                                              lambda *a: losses.mse_loss(*a, gamma=0.05))
            opt.step(model.params, grads)
            results.append((loss, grads, model.params))
    finally:
        threads.set_threads(previous)
    (l1, g1, p1), (l2, g2, p2) = results
    assert l1 == l2
    for name in g1:
        np.testing.assert_array_equal(g1[name], g2[name], err_msg=name)
        np.testing.assert_array_equal(p1[name], p2[name], err_msg=name)
