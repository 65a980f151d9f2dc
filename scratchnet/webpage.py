"""The listening page: an ``index.html`` to hear and see a separation.

``scratchnet separate --report`` and ``scratchnet demo --report`` write one beside the stems,
``scratchnet evaluate --report DIR`` one for a whole scored run.  A page of clips and songs up
to a minute (:data:`EMBED_SECONDS`: the demo, MIR-1K's clips) holds everything it shows, so
it can be moved, mailed or put on a course site as one file:

- each audio player's sound as a ``data:`` URI of MP3 (libsndfile's encoder, about
  120 kbit/s in stereo; every browser plays it), encoded block by block from the file;
- the spectrogram figure as a PNG ``data:`` URI;
- the command that made the page, to run it again.

A longer song's players play the files themselves (the stems beside the page, the input
where it lies): encoding took three times as long as the separation, and the page grew
with the song.  Move its folder whole.

The page is plain HTML5 with a little CSS and no script.  Every text that comes from outside
(file names, clip names, the command) is escaped; every path a link points at is
URL-quoted and relative to the page.
"""
import base64
import html
import io
import os
import urllib.parse

import numpy as np
import soundfile as sf

from .files import write_text

#: Sample rates MP3 can hold; audio at any other rate is resampled to 48 kHz for the player.
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
PLAYER_RATE = 48000
COMPRESSION = 0.5  # libsndfile's MP3 compression level, 0 (best) to 1 (smallest): ~120 kbit/s

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem;
       color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem; }
.players { display: grid; grid-template-columns: repeat(auto-fill, minmax(18rem, 1fr)); gap: 0.8rem; }
figure { margin: 0; padding: 0.6rem; background: #f3f3f6; border-radius: 0.5rem; }
figcaption { font-weight: 600; margin-bottom: 0.3rem; }
audio { width: 100%; }
img { max-width: 100%; }
table { border-collapse: collapse; margin: 0.5rem 0; font-variant-numeric: tabular-nums; }
th, td { padding: 0.2rem 0.7rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child, .clips td:nth-child(2), .clips th:nth-child(2) { text-align: left; }
tr.featured td { background: #fff7d6; }
pre { background: #f3f3f6; padding: 0.7rem; overflow-x: auto; border-radius: 0.4rem; }
.meta { color: #555; }
"""


# --------------------------------------------------------------------------- data URIs
def _mp3_rate(sr):
    return sr if sr in MP3_RATES else PLAYER_RATE


def _for_player(block, sr):
    """A block (k, C) as the player gets it: one or two channels, at an MP3 rate."""
    from .audio import resample
    if block.shape[1] > 2:  # MP3 holds one or two channels: more are averaged
        block = block.mean(axis=1, keepdims=True)
    return resample(block, sr, PLAYER_RATE) if _mp3_rate(sr) != sr else block


def _encode(blocks, sr, channels):
    """MP3 bytes of the (k, C) blocks at rate ``sr``."""
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", _mp3_rate(sr), 2 if channels == 2 else 1, format="MP3",
                      subtype="MPEG_LAYER_III", compression_level=COMPRESSION) as f:
        for block in blocks:
            f.write(np.clip(_for_player(block, sr), -1.0, 1.0))
    return buf.getvalue()


def audio_uri(y, sr):
    """A ``data:audio/mpeg`` URI of the signal ``y`` (n,) or (n, C) at rate ``sr``."""
    y = np.asarray(y, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    return "data:audio/mpeg;base64," + base64.b64encode(_encode([y], sr, y.shape[1])).decode("ascii")


def audio_file_uri(path, block_seconds=30):
    """A ``data:audio/mpeg`` URI of an audio file, read and encoded one block at a time.

    A file at a rate MP3 cannot hold (above 48 kHz, say) is read whole and resampled in one
    piece for the player: resampling block by block would leave the filter's edges at
    every join.
    """
    info = sf.info(os.fspath(path))
    whole = _mp3_rate(info.samplerate) != info.samplerate
    blocksize = info.frames if whole else int(block_seconds * info.samplerate)
    blocks = sf.blocks(os.fspath(path), blocksize=blocksize, dtype="float64", always_2d=True)
    data = _encode(blocks, info.samplerate, info.channels)
    return "data:audio/mpeg;base64," + base64.b64encode(data).decode("ascii")


def _relative(path, folder):
    """``path`` relative to ``folder`` where it can be (another drive: the absolute path)."""
    try:
        return os.path.relpath(path, folder)
    except ValueError:
        return os.path.abspath(path)


def png_uri(fig, dpi=100):
    """A ``data:image/png`` URI of a matplotlib figure; the figure is closed."""
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- HTML blocks
def esc(text):
    return html.escape(str(text), quote=True)


def href(relative_path):
    """A relative path as a URL: each part quoted (spaces, '#', '?', ...), '/' between."""
    return "/".join(urllib.parse.quote(part) for part in relative_path.replace(os.sep, "/").split("/"))


def players(items):
    """A grid of audio players; ``items`` is a list of ``(label, uri)`` or ``(label, uri, link)``
    where ``link`` is a relative path to the file, offered for download."""
    cells = []
    for label, uri, *link in items:
        extra = f' <a href="{esc(href(link[0]))}" download>file</a>' if link and link[0] else ""
        cells.append(f'<figure><figcaption>{esc(label)}{extra}</figcaption>'
                     f'<audio controls preload="metadata" src="{uri}"></audio></figure>')
    return '<div class="players">\n' + "\n".join(cells) + "\n</div>"


def image(uri, alt):
    return f'<img src="{uri}" alt="{esc(alt)}">'


def table(header, rows, *, row_class=None, cls=None):
    """An HTML table; cells are escaped (floats shown with 2 decimals, NaN as a dash)."""
    def cell(v):
        if isinstance(v, float):
            return "&ndash;" if not np.isfinite(v) else f"{v:.2f}"
        return esc(v)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = row_class(i) if row_class else None
        attrs = (f' class="{esc(cls)}"' if cls else "")
        body.append(f"<tr{attrs}>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>")
    opening = f'<table class="{esc(cls)}">' if cls else "<table>"
    return f"{opening}\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def command(text):
    return f"<h2>Made by</h2>\n<pre><code>{esc(text)}</code></pre>"


def write_page(path, title, blocks, *, subtitle=None):
    """Write the page (title, an optional line under it, then the blocks) atomically."""
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{esc(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
             f"<h1>{esc(title)}</h1>"]
    if subtitle:
        parts.append(f'<p class="meta">{esc(subtitle)}</p>')
    parts += list(blocks) + ["</body>", "</html>", ""]
    return write_text(path, "\n".join(parts))


def heading(text, anchor=None):
    return f'<h2 id="{esc(anchor)}">{esc(text)}</h2>' if anchor else f"<h2>{esc(text)}</h2>"


def paragraph(text):
    return f"<p>{esc(text)}</p>"


# --------------------------------------------------------------------------- the pages
#: Songs up to this long get their sound inside the page (MP3); longer ones are played from
#: the files beside it: encoding a 3-minute stereo song three times took 30 s, three times
#: the separation, and a 21-minute one made a page of 51 MB.
EMBED_SECONDS = 60.0


def song_page(folder, mixture_path, stem_paths, *, title, subtitle, figure_uri, command_line,
              references=None, scores=None, mixture_kept=True):
    """``folder/index.html``: players for the mixture and each stem, the figure, the command.

    A song of up to :data:`EMBED_SECONDS` is embedded: the page can be moved or mailed alone.
    A longer one is played from the files: the stems beside the page, the mixture by its
    path relative to the page (none with ``mixture_kept=False``: standard input, not kept),
    so the page stays small and is written in a moment whatever the length of the song.

    Parameters
    ----------
    folder : str
        The stems' folder; the page links to them by name.
    mixture_path, stem_paths : str
        The input file and the written stems (vocals, accompaniment).
    references : list of (label, y, sr), optional
        The true sources, when known (the demo's synthetic song): a player each.
    scores : list of rows (source, NSDR, SDR, SIR, SAR), optional
    """
    info = sf.info(os.fspath(mixture_path))
    embed = info.frames <= EMBED_SECONDS * info.samplerate

    def player(label, path, download):
        rel = _relative(path, folder)
        if embed:
            return (label, audio_file_uri(path), rel if download else None)
        return (label, href(rel), rel)  # the file itself, played where it lies

    items = [player("mixture", mixture_path, False)] if embed or mixture_kept else []
    for stem in stem_paths:
        name = os.path.splitext(os.path.basename(stem))[0]
        items.append(player(f"{name} (separated)", stem, True))
    for label, y, sr in references or []:
        items.append((label, audio_uri(y, sr)))
    blocks = [heading("Listen"), players(items)]
    if scores:
        blocks += [heading("Scores against the true sources (BSS-EVAL, dB)"),
                   table(["source", "NSDR", "SDR", "SIR", "SAR"], scores)]
    blocks += [heading("Spectrograms"), image(figure_uri, f"spectrograms of {title}"),
               command(command_line)]
    return write_page(os.path.join(folder, "index.html"), title, blocks, subtitle=subtitle)


CLIP_COLUMNS = ["rank", "clip", "seconds", "vocal SDR", "vocal NSDR", "vocal SIR", "vocal SAR",
                "accomp. SDR", "accomp. NSDR"]


def clip_row(rank, r, sr=16000):
    """One row of the evaluation table from a per-clip result of :func:`metrics.evaluate`."""
    v, a = r["vocals"], r["accompaniment"]
    return [rank, r["clip"], f"{r['length'] / sr:.1f}", v["SDR"], v["NSDR"], v["SIR"], v["SAR"],
            a["SDR"], a["NSDR"]]


def evaluation_page(folder, *, title, subtitle, summary_rows, ranked, featured, command_line):
    """``folder/index.html`` of a scored run.

    Parameters
    ----------
    summary_rows : list of (source, GNSDR, GSIR, GSAR)
    ranked : list of per-clip results, best vocal SDR first (unscored clips last)
    featured : list of (result, items, figure_uri): the clips to listen to, each with its
        players (see :func:`players`) and five-panel figure.
    """
    names = {r["clip"] for r, _, _ in featured}
    blocks = [heading("Length-weighted means (dB)"),
              table(["source", "GNSDR", "GSIR", "GSAR"], summary_rows),
              paragraph("The clips below are sorted by the SDR of their separated vocals; the "
                        "highlighted ones can be heard further down, best first, then worst."),
              table(CLIP_COLUMNS, [clip_row(i + 1, r) for i, r in enumerate(ranked)], cls="clips",
                    row_class=lambda i: "featured" if ranked[i]["clip"] in names else None)]
    for r, items, figure_uri in featured:
        rank = next(i for i, x in enumerate(ranked) if x is r) + 1
        blocks += [heading(f"#{rank} {r['clip']}: vocal SDR {r['vocals']['SDR']:.2f} dB, "
                           f"NSDR {r['vocals']['NSDR']:.2f} dB", anchor=f"clip-{r['clip']}"),
                   players(items), image(figure_uri, f"spectrograms of {r['clip']}")]
    blocks.append(command(command_line))
    return write_page(os.path.join(folder, "index.html"), title, blocks, subtitle=subtitle)


#: Clips heard on an evaluation page: this many of the best and of the worst.
FEATURED = 3


def rank_by_vocal_sdr(results):
    """Per-clip results sorted by the vocals' SDR, best first; unscored clips last."""
    def key(r):
        sdr = r["vocals"]["SDR"]
        return (0, -sdr) if np.isfinite(sdr) else (1, 0.0)
    return sorted(results, key=key)


def evaluation_report(folder, separator, clips, results, summary, *, title, command_line, load=None):
    """Write ``folder/index.html`` for a scored run and the featured clips' stems beside it.

    The featured clips are the :data:`FEATURED` best and worst by vocal SDR; each is
    separated again here (the scoring workers keep no audio), its separated stems written to
    ``folder/<clip>/vocals.wav`` and ``accompaniment.wav``, and given players for the
    mixture, the true and the separated sources, and its five-panel figure.  ``load(clip)``
    makes a clip's (mixture, vocals, accompaniment) as the scoring did (default
    :func:`scratchnet.data.load_clip`).  Returns the page's path.
    """
    from . import audio, data, report
    load = load or data.load_clip
    from .files import new_folder
    ranked = rank_by_vocal_sdr(results)
    scored = [r for r in ranked if np.isfinite(r["vocals"]["SDR"])]
    featured_results = scored[:FEATURED] + [r for r in scored[-FEATURED:] if r not in scored[:FEATURED]]
    by_name = {getattr(c, "name", str(c)): c for c in clips}
    featured = []
    with new_folder(folder, "report folder"):
        for r in featured_results:
            mixture, vocals, accompaniment = load(by_name[r["clip"]])
            refs = (vocals, accompaniment) if separator.needs_references else None
            est_v, est_a = separator.separate(mixture, references=refs)
            stems_dir = os.path.join(folder, r["clip"])
            with new_folder(stems_dir):
                links = [audio.save(os.path.join(stems_dir, f"{name}.wav"), y, 16000)
                         for name, y in (("vocals", est_v), ("accompaniment", est_a))]
            rel = [os.path.relpath(p, folder) for p in links]
            items = [("mixture", audio_uri(mixture, 16000)),
                     ("vocals (true)", audio_uri(vocals, 16000)),
                     ("vocals (separated)", audio_uri(est_v, 16000), rel[0]),
                     ("accompaniment (true)", audio_uri(accompaniment, 16000)),
                     ("accompaniment (separated)", audio_uri(est_a, 16000), rel[1])]
            fig = report.five_panel(mixture, vocals, est_v, accompaniment, est_a,
                                    title=f"{r['clip']}: {separator.name}")
            featured.append((r, items, png_uri(fig)))
        summary_rows = [[src, *(summary[src][k] for k in ("GNSDR", "GSIR", "GSAR"))]
                        for src in ("vocals", "accompaniment")]
        subtitle = (f"{summary['clips']} clips scored" + (f", {summary['failed']} not scored"
                                                           if summary.get("failed") else "") +
                    f"; the {len(featured)} highlighted clips can be heard below")
        return evaluation_page(folder, title=title, subtitle=subtitle, summary_rows=summary_rows,
                               ranked=ranked, featured=featured, command_line=command_line)
