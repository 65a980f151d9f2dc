"""The U-Net separator (models/unet.py): its hand-written backward against finite
differences on both backends, odd sizes (the crops), its receptive field, a file round trip."""
import numpy as np
import pytest

from scratchnet.models import load_model, make_config
from scratchnet.models.model import Model
from scratchnet.models.unet import receptive_field
from scratchnet.nn.backend import use_backend


def _model(T_bins=9, channels=(2, 3, 4), dtype="float64", seed=0, **options):
    cfg = make_config(arch="unet", n_bins=T_bins, n_fft=16, hop_length=8, unet_channels=list(channels),
                      dtype=dtype, level_window=None, seed=seed, **options)
    m = Model(cfg)
    rng = np.random.default_rng(seed + 1)
    for name, v in m.params.items():  # biases off zero: no pre-activation sits exactly on a kink
        if name.endswith("/b"):
            v[:] = rng.standard_normal(v.shape) * 0.1
    return m


def _centred_difference(loss, P, idx, h=1e-6):
    old = P[idx]
    P[idx] = old + h
    up = loss()
    P[idx] = old - h
    down = loss()
    P[idx] = old
    return (up - down) / (2 * h)


@pytest.mark.parametrize("backend", ["reference", "fast"])
@pytest.mark.parametrize("N,T,F,channels,options", [
    (2, 7, 9, (2, 3, 4), {}), (1, 8, 6, (3, 2), {}), (1, 5, 11, (2, 2, 2, 3), {}),
    (2, 6, 7, (2, 3), dict(unet_rnn=3, cell="gru", bidirectional=True)),  # the U-Net feeding a BiGRU
    (1, 5, 6, (2, 2), dict(unet_rnn=4)),
    (1, 7, 9, (2, 3, 2), dict(unet_skips=False)),  # the ablation: a decoder without skips
    (1, 5, 6, (2, 3), dict(unet_skips=False, unet_rnn=3, cell="gru"))])
def test_unet_backward_matches_finite_differences(backend, N, T, F, channels, options):
    with use_backend(backend):
        m = _model(F, channels, **options)
        rng = np.random.default_rng(2)
        X = rng.random((N, T, F)) + 0.1
        r1, r2 = rng.standard_normal((2, N, T, F))

        def loss():
            (y1, y2), _ = m.forward(X)
            return float((y1 * r1 + y2 * r2).sum())

        (_, _), cache = m.forward(X)
        grads, dX = m.backward(r1, r2, cache, input_grad=True)
        for name, P in dict(m.params, X=X).items():  # a sample of every tensor's entries, and X's
            want = dX if name == "X" else grads[name]
            for idx in list(np.ndindex(P.shape))[::max(1, P.size // 12)]:
                num = _centred_difference(loss, P, idx)
                assert abs(num - want[idx]) <= 1e-6 * max(1.0, abs(num)), (name, idx, num, want[idx])
        assert m.backward(r1, r2, cache, input_grad=False)[1] is None


def test_fast_and_reference_backends_agree_in_float32():
    m = _model(33, (4, 8, 8), dtype="float32")
    X = np.random.default_rng(3).random((2, 20, 33)).astype(np.float32)
    outs = {}
    for backend in ("reference", "fast"):
        with use_backend(backend):
            (y1, y2), cache = m.forward(X)
            grads, _ = m.backward(np.ones_like(y1), -np.ones_like(y2), cache, input_grad=False)
            outs[backend] = (y1, grads)
    np.testing.assert_allclose(outs["fast"][0], outs["reference"][0], rtol=1e-4, atol=1e-6)
    for name, g in outs["reference"][1].items():
        np.testing.assert_allclose(outs["fast"][1][name], g, rtol=1e-3, atol=1e-4 * np.abs(g).max())


def test_an_output_frame_sees_only_its_receptive_field():
    """Fully convolutional: changing one input frame changes outputs within the field only."""
    m = _model(9, (2, 3, 4))
    spec = m.specs[0]
    field = receptive_field(spec)
    T = 3 * field
    X = np.random.default_rng(4).random((1, T, 9)) + 0.1
    (a, _), _ = m.forward(X)
    X2 = X.copy()
    X2[0, T // 2] += 1.0
    (b, _), _ = m.forward(X2)
    changed = np.flatnonzero(np.abs(a - b)[0].max(axis=1) > 1e-12)
    assert changed.size and changed.min() >= T // 2 - field // 2 and changed.max() <= T // 2 + field // 2


def test_a_unet_saves_and_loads(tmp_path):
    m = _model(9, (2, 3), dtype="float32")
    path = tmp_path / "unet.npz"
    m.save(path)
    back = load_model(path)
    X = np.random.default_rng(5).random((30, 9)).astype(np.float32)
    np.testing.assert_allclose(back.predict(X)[0], m.predict(X)[0], rtol=1e-6)


def test_bad_unet_options_are_refused():
    from scratchnet.errors import ScratchnetError
    with pytest.raises(ScratchnetError, match="unet_channels"):
        make_config(arch="unet", unet_channels=[8, 0])
    with pytest.raises(ScratchnetError, match="unet_kernel=4 must be an odd"):
        make_config(arch="unet", unet_kernel=4)
    with pytest.raises(ScratchnetError, match="unet_skips='no' must be true or false"):
        make_config(arch="unet", unet_skips="no")
