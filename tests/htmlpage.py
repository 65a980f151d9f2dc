"""Reading a listening page back: with the standard library's HTML parser everywhere, and in a
headless Chromium where one is installed (``apt-get install chromium``)."""
import base64
import html.parser
import io
import json
import os
import pathlib
import shutil
import subprocess

import soundfile as sf

VOID = {"meta", "img", "br", "hr", "link", "input", "source"}
TEXT = {"title", "code", "h1", "h2", "td", "th", "figcaption"}  # elements whose text is kept


class Page(html.parser.HTMLParser):
    """Every element of interest, and a check that each element is closed in order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors = [], []
        self.audio, self.images, self.links, self.headings, self.rows = [], [], [], [], []
        self.title = self.code = ""
        self.audio_labels = []
        self._text, self._row = None, None
        self.tags = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "audio":
            self.audio.append(attrs)
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "a":
            self.links.append(attrs)
        elif tag == "tr":
            self._row = []
        if tag in TEXT:
            self._text = ""

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag in TEXT:
            text, self._text = self._text or "", None
        if tag == "title":
            self.title = text
        elif tag == "code":
            self.code = text
        elif tag in ("h1", "h2"):
            self.headings.append(text)
        elif tag in ("td", "th") and self._row is not None:
            self._row.append(text)
        elif tag == "tr":
            self.rows.append(self._row)
            self._row = None
        elif tag == "figcaption":
            self.audio_labels.append(text.strip())

    def handle_data(self, data):
        if self._text is not None:
            self._text += data


def parse(path):
    """The page at ``path``, parsed; fails on any element closed out of order or left open."""
    page = Page()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert text.startswith("<!DOCTYPE html>"), text[:40]
    page.feed(text)
    page.close()
    assert not page.errors, page.errors
    assert page.stack == [], f"left open: {page.stack}"
    page.text = text
    return page


def data_uri(uri, mime):
    prefix = f"data:{mime};base64,"
    assert uri.startswith(prefix), uri[:40]
    return base64.b64decode(uri[len(prefix):], validate=True)


def audio_of(attrs):
    """``(signal, rate)`` decoded from a player's MP3 data URI."""
    return sf.read(io.BytesIO(data_uri(attrs["src"], "audio/mpeg")), always_2d=True)


def check_images(page):
    for img in page.images:
        assert data_uri(img["src"], "image/png")[:8] == b"\x89PNG\r\n\x1a\n"
        assert img.get("alt")


# --------------------------------------------------------------------------- Chromium
def chromium():
    """The path of a Chromium (or Chrome) binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


PROBE = """<script>
Promise.all([...document.querySelectorAll('audio')].map(a => new Promise(done => {
  if (a.readyState >= 1) { done(a.duration); return; }
  a.addEventListener('loadedmetadata', () => done(a.duration));
  a.addEventListener('error', () => done(-1));
  a.load(); })))
.then(d => { const p = document.createElement('pre'); p.id = 'probe';
  p.textContent = JSON.stringify({durations: d, images: [...document.images].map(i => i.naturalWidth),
                                  title: document.title});
  document.body.appendChild(p); });
</script>"""

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio"]


def in_chromium(path, browser):
    """What Chromium made of the page: the duration of every player's audio (-1 where it
    could not decode it), the width of every image as decoded, and the title."""
    probe = os.path.join(os.path.dirname(os.path.abspath(path)), ".probe.html")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with open(probe, "w", encoding="utf-8") as f:
        f.write(text.replace("</body>", PROBE + "</body>"))
    try:
        proc = subprocess.run([browser, *FLAGS, "--virtual-time-budget=30000", "--dump-dom",
                               pathlib.Path(probe).resolve().as_uri()],
                              capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(probe)
    start = proc.stdout.find('<pre id="probe">')
    assert start >= 0, proc.stderr[-2000:]
    end = proc.stdout.find("</pre>", start)
    return json.loads(html.unescape(proc.stdout[start + len('<pre id="probe">'):end]))


def screenshot(path, png, browser, size=(1100, 1500)):
    """A PNG of the page as Chromium draws it."""
    proc = subprocess.run([browser, *FLAGS, f"--window-size={size[0]},{size[1]}",
                           f"--screenshot={png}", pathlib.Path(path).resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert os.path.isfile(png), proc.stderr[-2000:]
    return png
