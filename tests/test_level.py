"""Level normalisation (nn/level.py): its gradient, its invariance to the input's gain, and
separation that does not depend on how loud a song is (issue 24)."""
import os

import numpy as np
import pytest

from scratchnet import data, metrics
from scratchnet.gradcheck import numerical_gradient, rel_error
from scratchnet.models import Model, make_config
from scratchnet.nn import level
from scratchnet.separation import ModelSeparator, load_model_separator, separate_array
from scratchnet.synthetic import synth_song

GAINS_DB = (-40.0, -20.0, 0.0, 20.0)


@pytest.mark.parametrize("K", [0, 1, 3, None])
def test_level_backward_matches_finite_differences(K):
    rng = np.random.default_rng(0)
    X = rng.uniform(0.0, 1.0, (2, 7, 5))
    dZ = rng.standard_normal(X.shape)
    _, cache = level.level_forward(X, 0.2, K, max_gain=30.0)
    num = numerical_gradient(lambda: level.level_forward(X, 0.2, K, max_gain=30.0)[0], X, dZ, h=1e-6)
    assert rel_error(num, level.level_backward(dZ, cache)) < 1e-7


def test_window_sum_matches_a_loop():
    rng = np.random.default_rng(1)
    e = rng.uniform(size=(3, 11))
    for K in (0, 2, 20):
        loop = np.array([[e[n, max(0, t - K):t + K + 1].sum() for t in range(11)] for n in range(3)])
        assert np.allclose(level._window_sum(e, K), loop)


@pytest.mark.parametrize("K", [0, 4, None])
def test_normalised_magnitudes_do_not_depend_on_the_gain(K):
    X = np.random.default_rng(2).uniform(0.0, 1.0, (1, 40, 9))
    Z, _ = level.level_forward(X, 0.1, K)
    for g in (1e-2, 0.3, 30.0):
        Zg, _ = level.level_forward(g * X, 0.1, K)
        assert rel_error(Zg, Z) < 1e-6


def test_a_whole_window_brings_the_input_to_the_reference_level():
    X = np.random.default_rng(3).uniform(0.0, 5.0, (2, 30, 9))
    Z, _ = level.level_forward(X, 0.25, None)
    rms = np.sqrt(np.mean(Z ** 2, axis=(1, 2)))
    assert np.allclose(rms, 0.25, rtol=1e-6)


def test_digital_silence_is_not_raised_without_bound():
    Z, _ = level.level_forward(np.zeros((1, 5, 4)), 0.1, 2, max_gain=1e4)
    assert np.all(Z == 0)
    g = level.level_gains(np.full((1, 5, 4), 1e-12), 0.1, 2, max_gain=1e4)
    assert np.all(g <= 1e4)


def _tiny(**kw):
    return Model(make_config(arch="drnn-2", n_bins=9, hidden=6, seed=0, **kw))


def test_a_level_normalised_model_scales_its_estimates_with_the_input():
    model = _tiny()
    X = np.random.default_rng(4).uniform(0.0, 1.0, (30, 9)).astype(np.float32)
    y1, y2 = model.predict(X)
    for g in (1e-2, 1e2):
        a1, a2 = model.predict(g * X)
        assert rel_error(a1 / g, y1) < 1e-4 and rel_error(a2 / g, y2) < 1e-4


def test_without_a_level_window_the_model_is_as_before():
    model = _tiny(level_window=None)
    assert "level" not in model.buffers
    for k in model.params:  # biases: a ReLU network without them would be scale-free
        if k.endswith("/b"):
            model.params[k][...] = 0.5
    X = np.random.default_rng(5).uniform(0.0, 1.0, (30, 9)).astype(np.float32)
    y1, _ = model.predict(X)
    a1, _ = model.predict(100 * X)
    assert rel_error(a1 / 100, y1) > 1e-3  # a plain network hears the gain


def test_predict_in_sequences_uses_the_whole_inputs_gains():
    model = _tiny(level_window=0.1)  # a window of a few frames: the gains vary along X
    X = np.random.default_rng(6).uniform(0.0, 1.0, (50, 9)).astype(np.float32)
    X[25:] *= 10  # a louder second half
    g = model.level_gains(X[None])[0]
    assert g[:20].min() > 5 * g[30:].max()
    y1, _ = model.predict(X, seq_len=7)
    (r1, _), _ = model.forward(X[None, :7], gains=g[None, :7])
    assert rel_error(y1[:7], r1[0]) < 1e-6


def test_models_saved_before_the_level_existed_load_without_it(tmp_path):
    from scratchnet import files
    from scratchnet.models import load_model
    model = _tiny(level_window=None)
    config = dict(model.config)
    del config["level_window"]  # as a file written before the option existed
    files.save_npz(str(tmp_path / "old.npz"), model.arrays(), meta={"config": config})
    assert load_model(tmp_path / "old.npz").config["level_window"] is None


@pytest.mark.parametrize("name", ["drnn2", "bigru", "ensemble"])
def test_every_shipped_model_separates_alike_at_any_gain(name):
    """The shipped models on a synthetic song at -40 to +20 dB and at a peak of 0.99."""
    sep = load_model_separator(name)
    x, _, _ = synth_song(seconds=4.0, seed=1)
    v0, _ = separate_array(x, 16000, sep)
    for g in [10 ** (d / 20) for d in GAINS_DB] + [0.99 / np.abs(x).max()]:
        v, a = separate_array(g * x, 16000, sep)
        assert rel_error(v / g, v0) < 1e-3, (name, g)
        assert np.allclose(v + a, g * x, atol=1e-6 * g)


def test_a_quiet_intro_is_separated_as_if_alone():
    """A song whose quiet intro (26 dB below) is followed by a loud chorus: away from the
    chorus, the intro's stems are those of the intro separated alone (the gain follows the
    song's level within 10 s); a single gain per song would leave it 26 dB too quiet."""
    sep = load_model_separator("bigru")
    intro, chorus = 0.02 * synth_song(seconds=12.0, seed=2)[0], 0.4 * synth_song(seconds=12.0, seed=3)[0]
    song = np.concatenate([intro, chorus])
    v_song, _ = separate_array(song, 16000, sep)
    v_alone, _ = separate_array(intro, 16000, sep)
    head = slice(0, 5 * 16000)  # more than 5 s from the chorus: its own level
    assert rel_error(v_song[head], v_alone[head]) < 0.05


DATA = os.environ.get("SCRATCHNET_DATA")


@pytest.mark.data
@pytest.mark.skipif(not DATA or not os.path.isdir(DATA or ""), reason="SCRATCHNET_DATA not set")
def test_mir1k_scores_are_the_same_at_any_gain():
    """Real clips: the default's vocal GNSDR at -40 dB, -20 dB and a peak of 0.99 is within
    0.2 dB of its score at MIR-1K's level."""
    clips = data.find_parts(DATA, split_name="huang").parts["test"][:3]
    sep = load_model_separator()
    base = metrics.aggregate(metrics.evaluate(sep, clips, workers=1, progress=False))
    for load in (data.LevelledClips(gain_db=-40), data.LevelledClips(gain_db=-20),
                 data.LevelledClips(peak=0.99)):
        got = metrics.aggregate(metrics.evaluate(sep, clips, workers=1, progress=False, load=load))
        assert abs(got["vocals"]["GNSDR"] - base["vocals"]["GNSDR"]) < 0.2, load.describe()
