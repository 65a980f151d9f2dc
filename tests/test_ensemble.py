"""Ensembles: the mean soft mask of trained models, saved and loaded as one file."""
import os
import subprocess
import sys

import numpy as np
import pytest

from scratchnet.errors import ScratchnetError
from scratchnet.models import Ensemble, Model, load_model, make_config
from scratchnet.separation import ModelSeparator, load_model_separator
from scratchnet.training import TrainConfig, train


def member(seed, **kw):
    return Model(make_config(**dict(dict(arch="drnn-2", n_bins=33, n_fft=64, hop_length=32, hidden=8,
                                         seed=seed), **kw)))


def mixture_magnitudes(T=12, F=33, seed=0):
    return np.abs(np.random.default_rng(seed).standard_normal((T, F))).astype(np.float32) + 0.01


def test_the_mask_is_the_mean_of_the_members_masks():
    members = [member(0), member(1, cell="gru", bidirectional=True), member(2, arch="dnn")]
    X = mixture_magnitudes()
    y1, y2 = Ensemble(members).predict(X)
    masks = [m.predict(X)[0] / X for m in members]  # each member's vocal mask
    np.testing.assert_allclose(y1 / X, np.mean(masks, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y1 + y2, X, rtol=1e-5)  # the estimates still sum to the mixture
    assert not np.allclose(masks[0], masks[1])  # the members do differ


def test_an_ensemble_of_one_is_that_model():
    m = member(3)
    X = mixture_magnitudes(seed=1)
    for got, want in zip(Ensemble([m]).predict(X), m.predict(X)):
        np.testing.assert_array_equal(got, want)


def test_each_member_runs_with_its_own_inference_length():
    plain, chunked = member(4), member(4, inference_seq_len=5)
    X = mixture_magnitudes(T=17, seed=2)
    got = Ensemble([chunked]).predict(X)
    np.testing.assert_array_equal(got[0], chunked.predict(X, seq_len=5)[0])
    assert not np.allclose(got[0], plain.predict(X)[0])  # the recurrence restarted every 5 frames


def test_save_and_load_back_in_one_file(tmp_path):
    ens = Ensemble([member(0), member(1, cell="lstm")])
    X = mixture_magnitudes(seed=3)
    path = ens.save(str(tmp_path / "ens.npz"))
    again = load_model(path)
    assert isinstance(again, Ensemble) and again.n_params() == ens.n_params()
    for got, want in zip(again.predict(X), ens.predict(X)):
        np.testing.assert_array_equal(got, want)
    half = load_model(ens.save(str(tmp_path / "half.npz"), storage_dtype="float16"))
    np.testing.assert_allclose(half.predict(X)[0], ens.predict(X)[0], rtol=0.02, atol=1e-3)
    with np.load(tmp_path / "half.npz") as z:
        assert z["member1/param:hidden2/Wx"].dtype == np.float16
        assert z["member0/buffer:mean"].dtype == np.float32  # the input statistics stay exact


def test_a_separator_of_an_ensemble_keeps_the_mixture(tmp_path):
    path = Ensemble([member(0), member(1)]).save(str(tmp_path / "ens.npz"))
    sep = load_model_separator(path)
    assert isinstance(sep, ModelSeparator) and sep.stft_kw["n_fft"] == 64
    x = np.random.default_rng(0).standard_normal(4000)
    vocals, accompaniment = sep.separate(x)
    np.testing.assert_allclose(vocals + accompaniment, x, atol=1e-6)


def test_members_with_other_stfts_or_nested_ensembles_are_refused():
    with pytest.raises(ScratchnetError, match="n_fft.*share one STFT"):
        Ensemble([member(0), member(1, n_bins=65, n_fft=128)])
    with pytest.raises(ScratchnetError, match="single models"):
        Ensemble([Ensemble([member(0)])])
    with pytest.raises(ScratchnetError, match="at least one"):
        Ensemble([])


def test_a_damaged_ensemble_file_is_named(tmp_path):
    from scratchnet import files
    ens = Ensemble([member(0), member(1)])
    arrays = ens.arrays()
    files.save_npz(str(tmp_path / "short.npz"), {k: v for k, v in arrays.items() if k.startswith("member0/")},
                   meta={"config": ens.config})
    with pytest.raises(ScratchnetError, match="member 1 has no tensors"):
        load_model(str(tmp_path / "short.npz"))
    files.save_npz(str(tmp_path / "stray.npz"), dict(arrays, **{"member7/param:x": np.zeros(1)}),
                   meta={"config": ens.config})
    with pytest.raises(ScratchnetError, match="belong to no ensemble member"):
        load_model(str(tmp_path / "stray.npz"))


def test_training_does_not_start_from_an_ensemble(fake_mir1k, tmp_path):
    path = Ensemble([member(0)]).save(str(tmp_path / "ens.npz"))
    cfg = TrainConfig(data=fake_mir1k, init_from=path, stages=[[8, 1]], batch_size=2)
    with pytest.raises(ScratchnetError, match="is an ensemble"):
        train(cfg, str(tmp_path / "run"), progress=False)


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "scratchnet", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_the_ensemble_command(tmp_path):
    a = member(0).save(str(tmp_path / "a.npz"))
    b = member(1).save(str(tmp_path / "b.npz"))
    out = str(tmp_path / "ab.npz")
    proc = run_cli("ensemble", a, b, "-o", out, "--float16")
    assert proc.returncode == 0, proc.stderr
    assert "ensemble of 2 models" in proc.stdout
    ens = load_model(out)
    assert isinstance(ens, Ensemble) and len(ens.members) == 2
    before = os.path.getmtime(out)
    bad = [("ensemble", a, b, "-o", out),                       # exists: --force replaces
           ("ensemble", a, "-o", a),                            # would overwrite a member
           ("ensemble", a, out, "-o", str(tmp_path / "n.npz")),  # nested
           ("ensemble", a, str(tmp_path / "none.npz"), "-o", str(tmp_path / "m.npz")),
           ("ensemble", a, "-o", str(tmp_path / "no" / "e.npz"))]
    for args in bad:
        proc = run_cli(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert len([ln for ln in proc.stderr.splitlines() if "error:" in ln]) == 1, proc.stderr
    assert os.path.getmtime(out) == before and isinstance(load_model(a), Model)
    assert not os.path.exists(tmp_path / "n.npz") and not os.path.exists(tmp_path / "m.npz")
    assert run_cli("ensemble", a, "-o", out, "--force").returncode == 0
    assert len(load_model(out).members) == 1
