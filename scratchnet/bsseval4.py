r"""BSS-EVAL version 4, as SiSEC 2018 and MUSDB18 report it, coded by hand.

BSS-EVAL (Vincent et al. 2006) splits an estimate ``e_j`` of source ``j`` into the part that a
short filter of the true source explains, the part that filters of the *other* sources
explain (interference) and the rest (artefacts), then reports energy ratios in dB.  Version 3
(:mod:`scratchnet.metrics`, through mir_eval) fits the filters anew in every window.  Version 4
(Liutkus, Stöter & Ito, LVA/ICA 2018) fits them **once over the whole track** and scores
windows of one second with them; SiSEC reports each track's **median over its windows**, and
the median over tracks.  Images version (the ``bss_eval_images`` decomposition, as SiSEC uses).

Equations, for references ``s_i`` (n, C), an estimate ``e`` (n, C), filters of ``L`` taps::

    G = [<s_i,c delayed by a, s_k,d delayed by b>]     Gram matrix of all delayed references
    D = [<s_i,c delayed by a, e_c'>]                    their inner products with the estimate
    P = G^-1 D          (filters onto every reference: the interference projection)
    Pj = G_jj^-1 D_j    (filters onto the true source alone: the spatial projection)

and in each window, with ``*`` the filtering of the window's references by those filters::

    s_true  = s_j                       e_spat   = Pj * s_j - s_true
    e_interf = P * s - s_true - e_spat  e_artif  = e - s_true - e_spat - e_interf
    SDR = 10 log10(|s_true|^2 / |e_spat + e_interf + e_artif|^2)
    ISR = 10 log10(|s_true|^2 / |e_spat|^2)
    SIR = 10 log10(|s_true + e_spat|^2 / |e_interf|^2)
    SAR = 10 log10(|s_true + e_spat + e_interf|^2 / |e_artif|^2)

A window where any reference or estimate is silent gives NaN (SiSEC leaves it out of the
median).  Held to ``museval.metrics.bss_eval`` (``framewise_filters=False``,
``bsseval_sources_version=False``) by the tests where museval is installed.
"""
import numpy as np

from .errors import ScratchnetError

FILTER_TAPS = 512


def _toeplitz(col, row):
    """The Toeplitz matrix with first column ``col`` and first row ``row`` (row[0] ignored)."""
    L = col.shape[0]
    i, k = np.arange(L)[:, None], np.arange(L)[None, :]
    full = np.concatenate([row[:0:-1], col])  # row reversed (without its first), then col
    return full[(L - 1) + i - k]


def projection_filters(references, estimate, L=FILTER_TAPS, sources=None):
    """The least-squares filters (S, C, L, C) that best rebuild ``estimate`` (n, C) from
    delayed copies (0..L-1 samples) of ``references`` (S, n, C), or of those in ``sources``."""
    idx = list(range(references.shape[0])) if sources is None else list(sources)
    refs = references[idx]  # S,n,C
    S, n, C = refs.shape
    n_fft = int(2 ** np.ceil(np.log2(n + L - 1)))
    rf = np.fft.fft(np.moveaxis(refs, 1, 2), n=n_fft, axis=-1)  # S,C,n_fft, zero-padded
    ef = np.fft.fft(estimate.T, n=n_fft, axis=-1)  # C,n_fft
    G = np.zeros((S, C, L, S, C, L))
    for a in range(S * C):
        i, c1 = divmod(a, C)
        for b in range(a, S * C):
            k, c2 = divmod(b, C)
            r = np.real(np.fft.ifft(rf[k, c2] * np.conj(rf[i, c1])))  # correlation of the two
            block = _toeplitz(np.concatenate([r[:1], r[-1:-L:-1]]), r[:L])
            G[k, c2, :, i, c1, :] = block
            G[i, c1, :, k, c2, :] = block.T
    D = np.zeros((S, C, L, C))
    for i in range(S):
        for c1 in range(C):
            for c in range(C):
                r = np.real(np.fft.ifft(rf[i, c1] * np.conj(ef[c])))
                D[i, c1, :, c] = np.concatenate([r[:1], r[-1:-L:-1]])
    G = G.reshape(S * C * L, S * C * L)
    D = D.reshape(S * C * L, C)
    eps = np.finfo(float).eps
    try:
        P = np.linalg.solve(G + eps * np.eye(G.shape[0]), D)
    except np.linalg.LinAlgError:
        P = np.linalg.lstsq(G, D, rcond=None)[0]
    return P.reshape(S, C, L, C)


def _project(refs, P):
    """``sum_i,c' P[i, c', :, c] * refs[i, :, c']`` for every output channel c: (n + L - 1, C)."""
    S, n, C = refs.shape
    L = P.shape[2]
    n_fft = int(2 ** np.ceil(np.log2(n + L - 1)))
    rf = np.fft.rfft(refs, n=n_fft, axis=1)  # S,F,C
    pf = np.fft.rfft(P, n=n_fft, axis=2)  # S,C,F,C
    out_f = np.einsum("sfa,safc->fc", rf, pf)
    return np.fft.irfft(out_f, n=n_fft, axis=0)[: n + L - 1]


def _db(num, den):
    return np.inf if den == 0 else 10 * np.log10(num / den)


def bss_eval_v4(references, estimates, *, window, hop=None, L=FILTER_TAPS):
    """Framewise BSS-EVAL v4 scores of every source.

    Parameters
    ----------
    references, estimates : ndarray, shape (S, n) or (S, n, C)
        True sources and their estimates, in the same order (no permutation search).
    window, hop : int
        Window and hop in samples (SiSEC: one second, no overlap; ``hop`` defaults to
        ``window``).  A signal no longer than ``window`` is one window.
    L : int
        Filter taps (512, as every BSS-EVAL).

    Returns
    -------
    dict of ndarray, shape (S, n_windows) each: ``"SDR"``, ``"ISR"``, ``"SIR"``, ``"SAR"``;
    NaN in a window where a reference or an estimate is silent.
    """
    refs, ests = (np.asarray(a, dtype=np.float64) for a in (references, estimates))
    refs, ests = (a[..., None] if a.ndim == 2 else a for a in (refs, ests))
    if refs.ndim != 3 or refs.shape != ests.shape:
        raise ScratchnetError(f"references {np.shape(references)} and estimates {np.shape(estimates)} "
                              "must both be (sources, samples) or (sources, samples, channels)")
    S, n, C = refs.shape
    hop = window if hop is None else hop
    if not (window >= 1 and hop >= 1):
        raise ScratchnetError(f"{window=} and {hop=} must be positive numbers of samples")
    # the filters, once for the whole track: onto all references, and onto the true one alone
    P = [projection_filters(refs, ests[j], L) for j in range(S)]
    Pj = [projection_filters(refs, ests[j], L, sources=[j]) for j in range(S)]
    n_win = 1 if window >= n else int((n - window + hop) // hop)
    out = {k: np.full((S, n_win), np.nan) for k in ("SDR", "ISR", "SIR", "SAR")}
    for t in range(n_win):
        win = slice(int(t * hop), int(min(t * hop + window, n)))
        r, e = refs[:, win], ests[:, win]
        if not (np.any(r.reshape(S, -1), axis=1).all() and np.any(e.reshape(S, -1), axis=1).all()):
            continue  # a silent source in this window: no score
        m = r.shape[1]
        for j in range(S):
            s_true = np.zeros((m + L - 1, C))
            s_true[:m] = r[j]
            e_spat = _project(r[j:j + 1], Pj[j]) - s_true
            e_interf = _project(r, P[j]) - s_true - e_spat
            e_artif = -s_true - e_spat - e_interf
            e_artif[:m] += e[j]
            energy = np.sum(s_true ** 2)
            out["SDR"][j, t] = _db(energy, np.sum((e_spat + e_interf + e_artif) ** 2))
            out["ISR"][j, t] = _db(energy, np.sum(e_spat ** 2))
            out["SIR"][j, t] = _db(np.sum((s_true + e_spat) ** 2), np.sum(e_interf ** 2))
            out["SAR"][j, t] = _db(np.sum((s_true + e_spat + e_interf) ** 2), np.sum(e_artif ** 2))
    return out
