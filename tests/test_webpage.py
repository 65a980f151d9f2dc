"""The listening pages of ``separate --report``, ``demo --report`` and ``evaluate --report``:
read back with an HTML parser everywhere, and opened in a headless Chromium where installed."""
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import htmlpage
from scratchnet import webpage
from scratchnet.cli import main
from scratchnet.models import Model, make_config
from scratchnet.synthetic import synth_song

BROWSER = htmlpage.chromium()
needs_chromium = pytest.mark.skipif(BROWSER is None,
                                    reason="no Chromium installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.npz"
    return Model(make_config(arch="drnn-2", hidden=8, seed=0)).save(str(path))


@pytest.fixture(scope="module")
def separated(tiny_model, tmp_path_factory):
    """A 3 s stereo song at 44.1 kHz with an awkward name, separated with --report."""
    d = tmp_path_factory.mktemp("sep")
    song = d / 'a <b> & "c" #1.wav'
    x, _, _ = synth_song(3.0, sr=44100, seed=2)
    sf.write(song, 0.4 * np.stack([x, 0.7 * x], 1) / np.abs(x).max(), 44100)
    assert main(["separate", str(song), "-o", str(d / "out"), "--model", tiny_model, "--report", "-q"]) == 0
    return d / "out" / song.stem


def test_the_separation_page_holds_players_figure_and_command(separated):
    page = htmlpage.parse(separated / "index.html")
    assert page.title == 'a <b> & "c" #1.wav: vocals and accompaniment'
    assert "b" not in page.tags  # the file's name is text, not markup
    assert page.audio_labels[0] == "mixture"
    assert [label.split(" file")[0] for label in page.audio_labels[1:]] == ["vocals (separated)",
                                                                            "accompaniment (separated)"]
    for attrs in page.audio:
        y, sr = htmlpage.audio_of(attrs)
        assert sr == 44100 and y.shape[1] == 2  # the song's rate and channels
        assert abs(y.shape[0] - 3 * 44100) < 44100 // 10
        assert "controls" in attrs
    mixture, _ = htmlpage.audio_of(page.audio[0])
    original, _ = sf.read(separated.parent.parent / 'a <b> & "c" #1.wav')
    n = min(len(mixture), len(original))
    err = np.sum((mixture[:n] - original[:n]) ** 2) / np.sum(original[:n] ** 2)
    assert err < 0.05, err  # MP3 at ~120 kbit/s keeps the waveform (no delay, no level change)
    assert len(page.images) == 1
    htmlpage.check_images(page)
    assert page.code.startswith("scratchnet separate ") and "--report" in page.code
    hrefs = [a["href"] for a in page.links]
    assert hrefs == ["vocals.wav", "accompaniment.wav"]
    for h in hrefs:
        assert (separated / h).is_file()


def test_a_long_songs_page_plays_the_files_and_stays_small(tiny_model, tmp_path, monkeypatch):
    """Past webpage.EMBED_SECONDS the players play the stems beside the page and the input
    where it lies (nothing encoded: the page holds only its figure), and the figure shows the
    FIGURE_SECONDS of loudest vocals, so time and size do not grow with the song."""
    from scratchnet import commands
    monkeypatch.setattr(webpage, "EMBED_SECONDS", 2.0)
    monkeypatch.setattr(commands, "FIGURE_SECONDS", 2.0)
    song = tmp_path / "in" / "long song.wav"
    song.parent.mkdir()
    x, _, _ = synth_song(6.0, sr=22050, seed=3)
    sf.write(song, 0.4 * x / np.abs(x).max(), 22050)
    assert main(["separate", str(song), "-o", str(tmp_path / "out"), "--model", tiny_model, "--report", "-q"]) == 0
    folder = tmp_path / "out" / "long song"
    page = htmlpage.parse(folder / "index.html")
    srcs = [attrs["src"] for attrs in page.audio]
    assert srcs == ["../../in/long%20song.wav", "vocals.wav", "accompaniment.wav"]
    for src in srcs:
        assert (folder / src.replace("%20", " ")).is_file()
    text = (folder / "index.html").read_text()
    assert "data:audio" not in text and len(text) < 400_000  # the figure alone
    htmlpage.check_images(page)


def test_the_demo_page_scores_and_plays_the_true_sources(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "scratchnet", "demo", "-o", str(tmp_path / "d"),
                           "--seconds", "3", "--report", "-q"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == str(tmp_path / "d" / "demo_mixture" / "index.html")
    page = htmlpage.parse(tmp_path / "d" / "demo_mixture" / "index.html")
    assert [label.split(" file")[0] for label in page.audio_labels] == [
        "mixture", "vocals (separated)", "accompaniment (separated)", "vocals (true)", "accompaniment (true)"]
    assert [r[0] for r in page.rows] == ["source", "vocals", "accompaniment"]
    printed = {ln.split()[0]: ln.split()[1:] for ln in lines if ln.startswith(("vocals ", "accompaniment "))}
    for row in page.rows[1:]:  # the page's scores are the ones printed
        assert row[1:] == printed[row[0]]
    htmlpage.check_images(page)
    assert page.code == f"scratchnet demo -o {tmp_path / 'd'} --seconds 3 --report -q"


@pytest.fixture(scope="module")
def evaluated(fake_mir1k, tmp_path_factory):
    out = tmp_path_factory.mktemp("ev") / "report"
    assert main(["evaluate", "--method", "irm", "--data", fake_mir1k, "--part", "train",
                 "--workers", "1", "-q", "--report", str(out), "--json", str(out.parent / "s.json")]) == 0
    return out


def test_the_evaluation_page_ranks_the_clips_and_plays_the_best_and_worst(evaluated):
    import json
    page = htmlpage.parse(evaluated / "index.html")
    scores = json.loads((evaluated.parent / "s.json").read_text())["per_clip"]
    table = [r for r in page.rows if r and r[0].isdigit()]
    assert [r[1] for r in table] == [r["clip"] for r in sorted(scores, key=lambda r: -r["vocals"]["SDR"])]
    sdr = [float(r[3]) for r in table]
    assert sdr == sorted(sdr, reverse=True)
    featured = [h for h in page.headings if h.startswith("#")]
    assert len(featured) == 4  # 4 clips: the 3 best and the one worst left
    assert len(page.audio) == 5 * 4 and len(page.images) == 4
    htmlpage.check_images(page)
    for clip in (r[1] for r in table):
        for name in ("vocals.wav", "accompaniment.wav"):
            assert sf.info(evaluated / clip / name).samplerate == 16000
    assert {a["href"] for a in page.links} == {f"{c}/{n}" for c in (r[1] for r in table)
                                               for n in ("vocals.wav", "accompaniment.wav")}
    y, sr = htmlpage.audio_of(page.audio[0])
    assert sr == 16000 and y.shape[1] == 1


def test_an_existing_report_is_replaced_only_with_force(evaluated, fake_mir1k):
    before = (evaluated / "index.html").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "scratchnet", "evaluate", "--method", "irm", "--data",
                           fake_mir1k, "--workers", "1", "-q", "--report", str(evaluated)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        f"scratchnet evaluate: error: {evaluated / 'index.html'} already exists: use --force to replace "
        "the report, or another folder"]
    assert (evaluated / "index.html").read_bytes() == before


def test_players_of_any_rate_and_channel_count():
    for sr, channels in ((96000, 2), (11025, 1), (44100, 6)):
        x = 0.1 * np.random.default_rng(0).standard_normal((sr // 2, channels))
        y, rate = htmlpage.audio_of({"src": webpage.audio_uri(x, sr)})
        assert rate == (48000 if sr == 96000 else sr)
        assert y.shape[1] == (2 if channels == 2 else 1)


def test_text_is_escaped_and_links_quoted():
    assert webpage.href("a b/c#d?.wav") == "a%20b/c%23d%3F.wav"
    assert webpage.esc('<i>"&') == "&lt;i&gt;&quot;&amp;"
    assert "&lt;script&gt;" in webpage.table(["x"], [["<script>"]])


@needs_chromium
def test_the_pages_in_a_real_browser(separated, evaluated):
    """Chromium decodes every player's MP3 (its duration) and every figure (its width)."""
    seen = htmlpage.in_chromium(separated / "index.html", BROWSER)
    assert seen["title"] == 'a <b> & "c" #1.wav: vocals and accompaniment'
    assert len(seen["durations"]) == 3 and all(abs(d - 3.0) < 0.1 for d in seen["durations"]), seen
    assert seen["images"] and all(w > 500 for w in seen["images"]), seen
    seen = htmlpage.in_chromium(evaluated / "index.html", BROWSER)
    assert len(seen["durations"]) == 20 and all(d > 1.0 for d in seen["durations"]), seen
    assert len(seen["images"]) == 4 and all(w > 500 for w in seen["images"]), seen


@needs_chromium
def test_a_screenshot_of_the_page(separated, tmp_path):
    png = htmlpage.screenshot(separated / "index.html", str(tmp_path / "page.png"), BROWSER)
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(png) > 50_000  # the figure drawn, not a blank page
