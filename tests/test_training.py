import functools
import json
import os

import numpy as np
import pytest

from scratchnet import data, files, losses, optimizers, training
from scratchnet.errors import ScratchnetError
from scratchnet.models import Model, load_model, make_config
from scratchnet.synthetic import synth_song


def test_drnn_overfits_a_short_clip():
    """A small DRNN-2 drives the loss on one 1.5-second clip down tenfold in 60 Adam steps."""
    _, vocals, accompaniment = synth_song(1.5, seed=3)
    X, V, A = (s[None] for s in data.magnitudes(vocals, accompaniment))  # 1,T,F
    model = Model(make_config(arch="drnn-2", hidden=32, seed=0))
    model.buffers["mean"], model.buffers["std"] = training.feature_stats(model, [(vocals, accompaniment)])
    opt = optimizers.Adam(lr=1e-2)
    loss_fn = functools.partial(losses.mse_loss, gamma=0.0)
    first = None
    for _ in range(60):
        loss, grads = model.loss_and_grad(X, V, A, loss_fn)
        first = loss if first is None else first
        opt.step(model.params, grads)
    assert loss < first / 10, (first, loss)


def test_feature_stats_set_the_reference_level_first():
    """With level_window the statistics are those of the clips brought to the training level:
    the reference is the median clip level, and the level-normalised input has it."""
    clips = [synth_song(1.5, seed=s)[1:] for s in (3, 4, 5)]
    clips = [(0.1 * v, 0.1 * a) if i == 0 else (v, a) for i, (v, a) in enumerate(clips)]  # one clip 20 dB down
    model = Model(make_config(arch="dnn", hidden=8, layers=1, feature_norm="global", level_window=100.0))
    model.buffers["mean"], model.buffers["std"] = training.feature_stats(model, clips)
    levels = [np.sqrt(np.mean(data.magnitudes(v, a)[0].astype(np.float64) ** 2)) for v, a in clips]
    np.testing.assert_allclose(model.buffers["level"][0], np.median(levels), rtol=1e-5)
    # every clip, the quiet one too, enters the statistics at the reference level
    np.testing.assert_allclose(model.buffers["std"][0], np.median(levels), rtol=1e-3)


def test_feature_norm_global_keeps_the_spectrum_shape():
    """per_bin: every bin to mean 0, std 1; global: one scale, so the normalised input is X / rms(X)."""
    _, vocals, accompaniment = synth_song(1.5, seed=3)
    X = data.magnitudes(vocals, accompaniment)[0]  # T,F
    per_bin = Model(make_config(arch="dnn", hidden=8, layers=1, level_window=None))
    mean, std = training.feature_stats(per_bin, [(vocals, accompaniment)])
    np.testing.assert_allclose(mean, X.mean(0), rtol=1e-5, atol=1e-7)
    one = Model(make_config(arch="dnn", hidden=8, layers=1, feature_norm="global", level_window=None))
    mean, std = training.feature_stats(one, [(vocals, accompaniment)])
    assert not mean.any() and np.all(std == std[0])
    np.testing.assert_allclose(std[0], np.sqrt(np.mean(X.astype(np.float64) ** 2)), rtol=1e-4)
    one.buffers["mean"], one.buffers["std"] = mean, std
    Z = one._features(X[None])[0][0]  # (features, level cache): the one sequence's features
    np.testing.assert_allclose(Z, X / std[0], rtol=1e-5)  # each bin keeps its share
    np.testing.assert_allclose(np.sqrt(np.mean(Z.astype(np.float64) ** 2)), 1.0, rtol=1e-3)
    with pytest.raises(ScratchnetError, match="feature_norm"):
        make_config(feature_norm="per_song")


def _cfg(data_dir, **kw):
    base = dict(data=data_dir, model=make_config(arch="drnn-2", hidden=16), stages=[[10, 2]],
                batch_size=3, shift_step=8000, valid_clips=1, max_batches_per_epoch=5,
                checkpoint_every=2, workers=1, seed=1)
    base.update(kw)
    return training.TrainConfig(**base)


def _weights(path):
    return load_model(path).params


def test_training_is_deterministic(fake_mir1k, tmp_path):
    a = training.train(_cfg(fake_mir1k), str(tmp_path / "a"), progress=False, log=lambda *_: None)
    b = training.train(_cfg(fake_mir1k), str(tmp_path / "b"), progress=False, log=lambda *_: None)
    for k, v in _weights(a).items():
        np.testing.assert_array_equal(v, _weights(b)[k])
    rows = (tmp_path / "a" / "log.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch,") and len(rows) == 3


def test_resume_reproduces_the_uninterrupted_run(fake_mir1k, tmp_path, monkeypatch):
    straight = training.train(_cfg(fake_mir1k), str(tmp_path / "s"), progress=False, log=lambda *_: None)
    calls = {"n": 0}
    real_step = optimizers.Adam.step

    def dying_step(self, params, grads):
        calls["n"] += 1
        if calls["n"] == 8:  # epoch 2, batch 3: after the checkpoint at batch 2
            raise KeyboardInterrupt
        return real_step(self, params, grads)

    monkeypatch.setattr(optimizers.Adam, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        training.train(_cfg(fake_mir1k), str(tmp_path / "r"), progress=False, log=lambda *_: None)
    monkeypatch.setattr(optimizers.Adam, "step", real_step)
    with pytest.raises(ScratchnetError, match="already holds a run"):
        training.train(_cfg(fake_mir1k), str(tmp_path / "r"), progress=False, log=lambda *_: None)
    resumed = training.train(None, str(tmp_path / "r"), resume=True, progress=False, log=lambda *_: None)
    for k, v in _weights(straight).items():
        np.testing.assert_array_equal(v, _weights(resumed)[k], err_msg=k)
    for name in ("last.npz",):
        w1, w2 = _weights(str(tmp_path / "s" / name)), _weights(str(tmp_path / "r" / name))
        for k in w1:
            np.testing.assert_array_equal(w1[k], w2[k])


def test_nan_loss_stops_with_a_message_and_keeps_the_checkpoint(fake_mir1k, tmp_path, monkeypatch):
    real = losses.LOSSES["mse"]
    calls = {"n": 0}

    def poisoned(*args, **kw):
        calls["n"] += 1
        loss, d1, d2 = real(*args, **kw)
        return (np.nan if calls["n"] == 6 else loss), d1, d2

    monkeypatch.setitem(losses.LOSSES, "mse", poisoned)
    with pytest.raises(training.TrainingDiverged, match="loss became nan at epoch 2, batch 1"):
        training.train(_cfg(fake_mir1k), str(tmp_path / "n"), progress=False, log=lambda *_: None)
    with np.load(tmp_path / "n" / "checkpoint.npz") as z:
        assert all(np.isfinite(z[k]).all() for k in z.files if k.startswith("param:"))


def test_curriculum_runs_both_stages(fake_mir1k, tmp_path):
    training.train(_cfg(fake_mir1k, stages=[[5, 1], [20, 1]]), str(tmp_path / "c"),
                   progress=False, log=lambda *_: None)
    rows = [r.split(",") for r in (tmp_path / "c" / "log.csv").read_text().strip().splitlines()[1:]]
    assert [r[2] for r in rows] == ["5", "20"]


def test_parse_stages():
    assert training.parse_stages("100:2,400:3") == [[100, 2], [400, 3]]
    with pytest.raises(ScratchnetError, match="100:2,400:3"):
        training.parse_stages("100-2")


def test_lbfgs_lowers_the_batch_loss_and_trains(fake_mir1k, tmp_path):
    """Huang's optimiser: L-BFGS iterations on one batch lower that batch's loss."""
    _, vocals, accompaniment = synth_song(1.0, seed=5)
    X, V, A = (s[None] for s in data.magnitudes(vocals, accompaniment))
    model = Model(make_config(arch="drnn-2", hidden=16, seed=0))
    loss_fn = functools.partial(losses.mse_loss, gamma=0.05)
    before = model.loss_and_grad(X, V, A, loss_fn)[0]
    after = training.BatchLBFGS(iters=5).minimize(model, X, V, A, loss_fn)
    assert after < before
    assert np.isclose(after, model.loss_and_grad(X, V, A, loss_fn)[0], rtol=1e-5)
    out = tmp_path / "l"
    training.train(_cfg(fake_mir1k, optimizer="lbfgs", lbfgs_iters=3, stages=[[10, 1]]), str(out),
                   progress=False, log=lambda *_: None)
    assert (out / "best.npz").is_file()


def test_stage_caps_give_equal_frames(fake_mir1k, tmp_path):
    training.train(_cfg(fake_mir1k, stages=[[5, 1, 4], [20, 1, 1]]), str(tmp_path / "e"),
                   progress=False, log=lambda *_: None)
    rows = [r.split(",") for r in (tmp_path / "e" / "log.csv").read_text().strip().splitlines()[1:]]
    assert [int(r[4]) for r in rows] == [4 * 3 * 5, 1 * 3 * 20]  # frames = batches x N x T
    assert training.parse_stages("100:1:400,400:1:100") == [[100, 1, 400], [400, 1, 100]]


def test_floor_reaches_the_loss_and_bad_floors_are_refused(fake_mir1k):
    cfg = _cfg(fake_mir1k, objective="is", floor=1e-2)
    assert training.make_loss(cfg).keywords == {"gamma": cfg.gamma, "floor": 1e-2}
    assert "floor" not in training.make_loss(_cfg(fake_mir1k, objective="is")).keywords
    with pytest.raises(ScratchnetError, match="not mse"):
        training.make_loss(_cfg(fake_mir1k, objective="mse", floor=1e-2))
    with pytest.raises(ScratchnetError, match="floor"):
        training.make_loss(_cfg(fake_mir1k, objective="kl", floor=-1.0))


def test_a_checkpoint_of_the_first_format_resumes_exactly(fake_mir1k, tmp_path, monkeypatch):
    """Runs started before files.save_npz kept their position in a ``state_json`` array."""
    straight = training.train(_cfg(fake_mir1k), str(tmp_path / "s"), progress=False, log=lambda *_: None)
    calls = {"n": 0}
    real_step = optimizers.Adam.step

    def dying_step(self, params, grads):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return real_step(self, params, grads)

    monkeypatch.setattr(optimizers.Adam, "step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        training.train(_cfg(fake_mir1k), str(tmp_path / "r"), progress=False, log=lambda *_: None)
    monkeypatch.undo()
    ckpt = tmp_path / "r" / "checkpoint.npz"
    arrays, meta = files.load_npz(str(ckpt))
    np.savez(str(ckpt), state_json=np.array(json.dumps(meta["state"])), **arrays)  # the old layout
    resumed = training.train(None, str(tmp_path / "r"), resume=True, progress=False, log=lambda *_: None)
    for k, v in _weights(straight).items():
        np.testing.assert_array_equal(v, _weights(resumed)[k], err_msg=k)


def test_reference_backend_trains_to_the_same_loss(fake_mir1k, tmp_path, monkeypatch):
    """The readable NumPy code trains the model: the same losses as the Numba kernels."""
    from scratchnet.nn import get_backend
    seen, real_step = [], training.loop.train_step
    monkeypatch.setattr(training.loop, "train_step", lambda *a: seen.append(get_backend()) or real_step(*a))
    losses_by_backend = {}
    for backend in ("fast", "reference"):
        cfg = _cfg(fake_mir1k, backend=backend, stages=[[10, 1]], max_batches_per_epoch=3)
        training.train(cfg, str(tmp_path / backend), progress=False, log=lambda *_: None)
        assert json.loads((tmp_path / backend / "config.json").read_text())["backend"] == backend
        row = (tmp_path / backend / "log.csv").read_text().splitlines()[1].split(",")
        losses_by_backend[backend] = float(row[5])
    assert seen == ["fast"] * 3 + ["reference"] * 3
    assert np.isclose(losses_by_backend["reference"], losses_by_backend["fast"], rtol=1e-4), losses_by_backend
    with pytest.raises(ScratchnetError, match="backend='numpy' must be one of fast, reference"):
        _cfg(fake_mir1k, backend="numpy").check()


def test_phase_sensitive_targets_train_and_a_bad_target_is_refused(fake_mir1k, tmp_path):
    cfg = _cfg(fake_mir1k, target="phase_sensitive", stages=[[10, 1]], max_batches_per_epoch=3)
    training.train(cfg, str(tmp_path / "psa"), progress=False, log=lambda *_: None)
    saved = json.loads((tmp_path / "psa" / "config.json").read_text())
    assert saved["target"] == "phase_sensitive"
    assert np.isfinite(float((tmp_path / "psa" / "log.csv").read_text().splitlines()[1].split(",")[5]))
    with pytest.raises(ScratchnetError, match="target='psa' must be one of magnitude, phase_sensitive"):
        _cfg(fake_mir1k, target="psa").check()


def test_a_small_folder_holds_out_a_seventh_for_validation(fake_mir1k, tmp_path):
    said = []
    train, valid = training.split_clips(_cfg(fake_mir1k, valid_clips=25), log=said.append)
    assert len(train) == 3 and len(valid) == 1  # 4 training clips: 1 held out, not 25
    assert said == ["only 4 training clip(s): holding out 1 for validation instead of 25 "
                    "(choose with --valid-clips)"]
    train, valid = training.split_clips(_cfg(fake_mir1k, valid_clips=1), log=said.append)
    assert len(train) == 3 and len(valid) == 1 and len(said) == 1  # as asked: nothing said
    one = tmp_path / "one"
    one.mkdir()
    (one / "abjones_1_01.flac").symlink_to(os.path.join(fake_mir1k, "abjones_1_01.flac"))
    train, valid = training.split_clips(_cfg(str(one)), log=said.append)
    assert len(train) == 1 and valid == [] and said[-1].startswith("only 1 training clip: no validation")


def test_the_stft_is_a_training_option(fake_mir1k, tmp_path):
    """A model trained with its own STFT is validated and saved with it."""
    model_cfg = make_config(arch="drnn-2", hidden=8, n_fft=512, hop_length=256, window="hann")
    best = training.train(_cfg(fake_mir1k, model=model_cfg, stages=[[10, 1]]), str(tmp_path / "stft"),
                          progress=False, log=lambda *_: None)
    model = load_model(best)
    assert (model.config["n_fft"], model.config["hop_length"], model.config["window"],
            model.config["n_bins"]) == (512, 256, "hann", 257)
    assert model.buffers["mean"].shape == (257,)
    row = (tmp_path / "stft" / "log.csv").read_text().splitlines()[1].split(",")
    assert np.isfinite(float(row[6]))  # validated with the model's own STFT
