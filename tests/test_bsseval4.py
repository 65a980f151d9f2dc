"""BSS-EVAL v4 (bsseval4.py) held to museval and to pinned scores; SiSEC's medians; the
``evaluate --metric museval`` command."""
import json

import numpy as np
import pytest

from scratchnet import metrics
from scratchnet.bsseval4 import bss_eval_v4
from scratchnet.cli import main
from scratchnet.synthetic import synth_song


def _clip(seconds=3.5, seed=4):
    x, v, a = synth_song(seconds, seed=seed)
    rng = np.random.default_rng(1)
    ev = v + 0.3 * a + 0.05 * v.std() * rng.standard_normal(v.shape)
    return np.stack([v, a]), np.stack([ev, x - ev])


#: museval 0.4.1's ``metrics.bss_eval(refs, ests, window=16000, hop=16000)`` on :func:`_clip`
PINNED = {
    "SDR": [[6.531783808863736, 16.07205626070648, 6.6679985450694845],
            [10.375636278770825, 10.141677951925349, 10.391865902313315]],
    "ISR": [[14.644504839137117, 18.59565481683845, -5.3671473472083715],
            [10.459735052591583, 10.454739616401731, 10.469403699420091]],
    "SIR": [[6.777733784576057, 14.473559717731803, 0.8250474903084998],
            [41.18133196252479, 35.33212787908629, 31.422543515076875]],
    "SAR": [[25.12028033446284, 27.665059094658734, 23.955030048094645],
            [24.70870291149557, 18.539551638455315, 23.76657009897087]],
}


def test_v4_scores_are_those_of_museval():
    refs, ests = _clip()
    ours = bss_eval_v4(refs, ests, window=16000)
    for k, want in PINNED.items():
        np.testing.assert_allclose(ours[k], want, rtol=0, atol=1e-6, err_msg=k)


def test_v4_matches_an_installed_museval_in_stereo_too():
    museval_metrics = pytest.importorskip("museval.metrics")
    refs, ests = _clip(2.5, seed=6)
    refs = np.stack([np.stack([refs[0], 0.5 * refs[0]], 1), np.stack([refs[1], refs[1][::-1]], 1)])
    ests = refs + 0.01 * np.random.default_rng(2).standard_normal(refs.shape)
    ours = bss_eval_v4(refs, ests, window=16000)
    theirs = museval_metrics.bss_eval(refs, ests, window=16000, hop=16000)
    for i, k in enumerate(("SDR", "ISR", "SIR", "SAR")):
        np.testing.assert_allclose(ours[k], theirs[i], atol=1e-5, err_msg=k)


def test_a_silent_window_has_no_score_and_the_others_are_unchanged():
    refs, ests = _clip()
    ests[1, 16000:32000] = 0.0  # the accompaniment's estimate is silent in the second window
    got = bss_eval_v4(refs, ests, window=16000)
    assert np.isnan(got["SDR"][:, 1]).all()
    assert np.isfinite(got["SDR"][:, [0, 2]]).all()


def test_a_perfect_estimate_scores_far_above_any_real_one():
    refs, _ = _clip()
    got = bss_eval_v4(refs, refs.copy(), window=16000)
    assert np.all(got["SDR"] > 100)


def test_sisec_medians_pool_a_tracks_excerpts_then_take_the_median_over_tracks():
    def clip(name, sdr):
        frames = {k: list(sdr) for k in metrics.V4_SCORES}
        return {"clip": name, "length": 1, "vocals": frames, "accompaniment": frames}
    results = [clip("song@0s", [1.0, 2.0]), clip("song@10s", [3.0, None]), clip("other@0s", [10.0])]
    s = metrics.aggregate_museval(results)
    assert s["tracks"] == 2 and s["clips"] == 3
    assert s["vocals"]["SDR"] == np.median([np.median([1.0, 2.0, 3.0]), 10.0])


def test_the_cli_offers_the_metrics_module_has():
    from scratchnet import cli
    assert cli.METRICS == metrics.METRICS


def test_evaluate_with_museval(fake_mir1k, tmp_path, capsys):
    out = tmp_path / "v4.json"
    assert main(["evaluate", "--method", "irm", "--data", fake_mir1k, "--limit", "2", "--workers", "1",
                 "-q", "--metric", "museval", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "BSS-EVAL v4" in printed and "clips scored: 2 of 2 track(s)" in printed
    result = json.loads(out.read_text())
    assert result["metric"] == "museval" and result["vocals"]["SDR"] > 5
    assert len(result["per_clip"][0]["vocals"]["SDR"]) >= 1  # one score per second
