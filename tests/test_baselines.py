"""Non-learned separators: robust PCA recovers a planted split, the oracle masks keep the
mixture whole, silence stays silence, and every separator pickles."""
import pickle

import numpy as np
import pytest

from scratchnet.baselines import RPCA, SEPARATORS, IdealBinaryMask, IdealRatioMask, rpca
from scratchnet.errors import ScratchnetError
from scratchnet.signal import stft

SMALL = dict(n_fft=64, hop_length=16)               # keep the STFTs (and the SVDs) small


def planted(F=60, T=50, rank=2, density=0.05, seed=0):
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((F, rank)) @ rng.standard_normal((rank, T))     # F,T low rank
    S0 = np.where(rng.random((F, T)) < density, rng.uniform(-10, 10, (F, T)), 0.0)  # F,T sparse
    return L0, S0


@pytest.mark.parametrize("seed", [0, 1])
def test_rpca_recovers_planted_low_rank_plus_sparse(seed):
    L0, S0 = planted(seed=seed)
    L, S = rpca(L0 + S0)
    err_L = np.linalg.norm(L - L0) / np.linalg.norm(L0)
    err_S = np.linalg.norm(S - S0) / np.linalg.norm(S0)
    assert err_L < 1e-5 and err_S < 1e-5, f"{err_L=:.2e} {err_S=:.2e}"
    sigma = np.linalg.svd(L, compute_uv=False)
    assert np.sum(sigma > 1e-6 * sigma[0]) == 2     # the rank comes back too
    assert np.linalg.norm(L0 + S0 - L - S) / np.linalg.norm(L0 + S0) < 1e-7


def test_rpca_keeps_dtype_and_handles_zero():
    L0, S0 = planted(F=30, T=20)
    L, S = rpca((L0 + S0).astype(np.float32), max_iter=5)
    assert L.dtype == S.dtype == np.float32
    L, S = rpca(np.zeros((5, 4)))
    assert not L.any() and not S.any()
    with pytest.raises(ScratchnetError, match=r"shape \(F, T\), got shape \(3,\)"):
        rpca(np.zeros(3))


def sources(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    vocals = np.sin(2 * np.pi * 440 * t) * (t > 0.05)   # starts after a silence
    accompaniment = 0.5 * rng.standard_normal(n)
    return vocals + accompaniment, vocals, accompaniment


@pytest.mark.parametrize("cls", [IdealRatioMask, IdealBinaryMask])
def test_oracle_masks_sum_to_the_mixture(cls):
    x, v, a = sources()
    sep = cls(**SMALL)
    ev, ea = sep.separate(x, references=(v, a))
    assert ev.shape == ea.shape == x.shape
    np.testing.assert_allclose(ev + ea, x, rtol=0, atol=1e-10)
    m = sep.mask(stft(x, **SMALL), (v, a))
    assert m.min() >= 0 and m.max() <= 1
    if cls is IdealBinaryMask:
        assert set(np.unique(m)) <= {0.0, 1.0}
    # the oracle is closer to the truth than the mixture is
    assert np.linalg.norm(ev - v) < 0.5 * np.linalg.norm(x - v)


def test_irm_is_exact_for_a_single_source():
    x, v, a = sources()
    ev, ea = IdealRatioMask(**SMALL).separate(v, references=(v, np.zeros_like(v)))
    np.testing.assert_allclose(ev, v, atol=1e-10)
    np.testing.assert_allclose(ea, 0.0, atol=1e-10)


@pytest.mark.parametrize("sep", [IdealRatioMask(**SMALL), IdealBinaryMask(**SMALL),
                                 RPCA(**SMALL), RPCA(mask="soft", **SMALL)], ids=repr)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_silence_in_silence_out(sep, dtype):
    x = np.zeros(1000, dtype=dtype)
    ev, ea = sep.separate(x, references=(x, x))
    assert ev.dtype == ea.dtype == dtype
    assert np.all(ev == 0) and np.all(ea == 0)


@pytest.mark.parametrize("mask", ["binary", "soft"])
def test_rpca_separator_splits_the_mixture(mask):
    x, v, a = sources(n=2000)
    sep = RPCA(mask=mask, **SMALL)
    ev, ea = sep.separate(x, references=None)       # blind: references are ignored
    np.testing.assert_allclose(ev + ea, x, atol=1e-10)
    m = sep.mask(stft(x, **SMALL), None)
    assert 0 <= m.min() and m.max() <= 1 and 0 < m.mean() < 1


def test_oracles_require_references():
    x, v, a = sources(n=500)
    with pytest.raises(ScratchnetError, match=r"irm is an oracle: pass references=\(vocals, accompaniment\)"):
        IdealRatioMask(**SMALL).separate(x)
    with pytest.raises(ScratchnetError, match=r"ibm: reference of shape \(499,\) does not match the mixture's shape \(500,\)"):
        IdealBinaryMask(**SMALL).separate(x, references=(v[:-1], a))
    with pytest.raises(ScratchnetError, match=r"rpca: expected a mono mixture of shape \(n,\), got shape \(2, 250\)"):
        RPCA(**SMALL).separate(x.reshape(2, 250))
    with pytest.raises(ScratchnetError, match=r"mask='hard' must be 'binary' or 'soft'"):
        RPCA(mask="hard")


def test_registry_and_pickling():
    assert set(SEPARATORS) == {"irm", "ibm", "rpca"}
    x, v, a = sources(n=800)
    for name, cls in SEPARATORS.items():
        sep = cls(**SMALL)
        assert sep.name == name and sep.needs_references == (name != "rpca")
        clone = pickle.loads(pickle.dumps(sep))
        refs = (v, a) if sep.needs_references else None
        for got, want in zip(clone.separate(x, refs), sep.separate(x, refs)):
            np.testing.assert_array_equal(got, want)
