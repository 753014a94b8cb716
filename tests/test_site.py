"""The built site in a real browser (headless Chromium): math typeset, assets present, links whole.

Run after `make book` (so `_build/html` exists): `pytest -m site tests`. `make test` does both.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import struct
import subprocess
import tempfile
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import yaml
from bs4 import BeautifulSoup
from conftest import ROOT

pytestmark = pytest.mark.site
HTML = ROOT / "_build" / "html"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# What a static page must never show in a cell's output: a frozen progress bar, a traceback, or the
# text a widget prints where no kernel draws it.
FROZEN = [
    (re.compile(r"\d+%\|[^|\n]*\|\s*\d+/\d+|\d+/\d+ \[\d\d:\d\d[<,]|it/s\]|s/it\]"), "a frozen progress bar"),
    (re.compile(r"Traceback \(most recent call last\)|\w+Error: .*\n?.*File \"|KeyboardInterrupt"),
     "a traceback"),
    (re.compile(r"(HBox|VBox|FloatProgress|IntProgress|HTML|Output|Label)\(children=|"
                r"(FloatProgress|IntProgress)\(value=|application/vnd\.jupyter\.widget-view\+json|"
                r"\"model_id\"\s*:"), "raw widget text"),
]


def output_problems(html: str) -> list[str]:
    """What a page's cell outputs show that a reader must never see (see FROZEN)."""
    soup = BeautifulSoup(html, "html.parser")
    problems = []
    for out in soup.select(".cell_output, .output"):
        text = out.get_text("\n")
        for pattern, what in FROZEN:
            if (hit := pattern.search(text)) is not None:
                problems.append(f"{what}: {hit.group(0)[:60]!r}")
    return problems


RAW_TEX = re.compile(r"\\\(|\\\[|\$\$|\\(frac|mathcal|bar|alpha|beta|sqrt|varepsilon|mid)\b")


def _toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return [f + ".html" for f in files]


PAGES = _toc_pages()


@pytest.fixture(scope="module")
def site():
    if not (HTML / "index.html").is_file():
        pytest.fail("No built site in _build/html: run `make book` first.")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("Chromium is needed for the browser check: apt-get install chromium.")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield chromium, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


# Injected into every page the test server sends (never into the site itself): once MathJax has
# typeset and the images loaded, it writes onto <body> what overflows the text column and how much
# each output image was scaled down, for the check below.
MEASURE = """<script>(async () => {
  try { if (window.MathJax && MathJax.startup) { await MathJax.startup.promise; } } catch (e) {}
  await Promise.all([...document.images].map(i => i.complete ? 0 :
      new Promise(r => { i.onload = r; i.onerror = r; })));
  const main = document.querySelector('main') || document.body;
  const para = main.querySelector('p') || document.body;
  const out = {body: parseFloat(getComputedStyle(para).fontSize), pre: [], math: [], img: []};
  const longest = t => t.split('\\n').reduce((a, b) => b.length > a.length ? b : a, '');
  main.querySelectorAll('div.cell_input pre, div.cell_output pre').forEach(p => {
    if (p.scrollWidth > p.clientWidth + 1) out.pre.push(longest(p.textContent).slice(0, 70)); });
  main.querySelectorAll('mjx-container[display="true"]').forEach(m => {
    const box = m.parentElement.getBoundingClientRect().width;
    if (m.scrollWidth > m.clientWidth + 1 || m.getBoundingClientRect().width > box + 1)
      out.math.push((m.parentElement.textContent || '').slice(0, 70)); });
  main.querySelectorAll('div.cell_output img').forEach(i => out.img.push(
      [i.getAttribute('src'), i.naturalWidth, i.getBoundingClientRect().width]));
  document.body.setAttribute('data-measure', JSON.stringify(out));
})();</script>"""
WINDOW = "--window-size=1280,900"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        path = Path(self.translate_path(self.path))
        if path.suffix != ".html" or not path.is_file():
            return super().do_GET()
        body = path.read_bytes().replace(b"</body>", MEASURE.encode() + b"</body>", 1)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def png_dpi(path: Path) -> float | None:
    """The resolution a PNG records (its pHYs chunk), in dots per inch; None if it records none."""
    data = path.read_bytes()
    i = data.find(b"pHYs")
    if data[:8] != b"\x89PNG\r\n\x1a\n" or i < 0:
        return None
    x, _, unit = struct.unpack(">IIB", data[i + 4:i + 13])
    return x * 0.0254 if unit == 1 else None


def layout_problems(measure: dict, html_dir: Path, page: str, font_pt: float) -> list[str]:
    """What runs past the column, and figures whose labels come out smaller than the body text.

    A figure drawn at `font_pt` points and `dpi` dots per inch, shown `shown` pixels wide for
    `natural` pixels, prints its labels font_pt/72·dpi·shown/natural pixels tall.
    """
    problems = [f"code wider than the column: {t!r}" for t in measure["pre"]]
    problems += [f"display math wider than the column: {t!r}" for t in measure["math"]]
    for src, natural, shown in measure["img"]:
        if not src:  # an animation's frame holder before its first frame is drawn
            continue
        file = html_dir / unquote(urlsplit(urljoin("http://x/" + page, src)).path.lstrip("/"))
        local = not src.startswith("data:") and file.suffix == ".png" and file.is_file()
        dpi = png_dpi(file) if local else None
        if dpi is None or not natural:
            continue
        label = font_pt / 72 * dpi * shown / natural
        if label < 0.95 * measure["body"]:
            problems.append(f"figure {Path(src).name}: labels {label:.1f} px for {measure['body']:.0f} px "
                            f"text ({natural} px wide at {dpi:.0f} dpi, shown {shown:.0f} px: draw it "
                            "narrower)")
    return problems


def _dom(chromium: str, url: str) -> BeautifulSoup:
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}",
                              WINDOW, "--virtual-time-budget=15000", "--dump-dom", url],
                             capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "<html" in out.stdout, f"Chromium could not render {url}"
    return BeautifulSoup(out.stdout, "html.parser")


@functools.cache
def _ids(path: Path) -> frozenset[str]:
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    return frozenset(el["id"] for el in soup.find_all(id=True))


def _local_target(page: str, ref: str) -> tuple[Path, str] | None:
    """The file (and fragment) a local reference points at, or None for an external one."""
    if ref.startswith(("http://", "https://", "//", "data:", "mailto:", "javascript:", "about:")):
        return None
    parts = urlsplit(urljoin("http://x/" + page, ref))
    return HTML / unquote(parts.path.lstrip("/")), parts.fragment


def test_every_toc_page_was_built_and_index_leads_to_the_root():
    missing = [p for p in PAGES if not (HTML / p).is_file()]
    assert not missing, f"pages in _toc.yml without HTML: {missing}"
    assert PAGES[0] in (HTML / "index.html").read_text(), "index.html must redirect to the intro"


@pytest.mark.parametrize("page", PAGES)
def test_page_in_a_real_browser(site, page):
    chromium, base = site
    soup = _dom(chromium, base + page)
    body = BeautifulSoup(str(soup.body), "html.parser")
    # 1. MathJax typeset every math element, and no raw TeX is left in the prose.
    maths = body.select(".math")
    for el in maths:
        assert el.find("mjx-container") is not None, f"{page}: math not typeset: {el.get_text()[:80]!r}"
    if page.startswith("notebooks/"):
        assert len(body.find_all("mjx-container")) >= 20, f"{page}: a chapter without typeset math"
    for el in body(["script", "style", "pre", "code", "mjx-container", "textarea"]):
        el.decompose()
    raw = RAW_TEX.search(body.get_text(" "))
    assert raw is None, f"{page}: raw TeX visible: {raw.group(0)!r}"

    # 2. No frozen progress bar, traceback or raw widget text in any output.
    problems = output_problems(str(soup))
    assert not problems, f"{page}: " + "; ".join(problems)

    # 3. Nothing runs past the text column at 1280 px, and figure labels read as large as the text.
    import ddpm_nb.plot

    measured = soup.body.get("data-measure")
    assert measured, f"{page}: the layout measurement did not run"
    problems = layout_problems(json.loads(measured), HTML, page, ddpm_nb.plot.FONT_PT)
    assert not problems, f"{page}: " + "; ".join(problems)

    # 4. Local images, scripts, stylesheets exist; the page loads no script from the network.
    for tag, attr in (("img", "src"), ("script", "src"), ("link", "href"), ("source", "src")):
        for el in soup.find_all(tag, attrs={attr: True}):
            ref = el[attr]
            if tag == "script":
                assert _local_target(page, ref) is not None, f"{page}: script from the network: {ref}"
            target = _local_target(page, ref)
            if target is not None:
                assert target[0].is_file(), f"{page}: missing {tag} {ref}"

    # 5. No broken local link (file and, where given, the anchor).
    for a in soup.find_all("a", href=True):
        target = _local_target(page, a["href"])
        if target is None:
            continue
        path, fragment = target
        if path.is_dir():
            path = path / "index.html"
        assert path.is_file(), f"{page}: broken link {a['href']}"
        if fragment and path.suffix == ".html":
            assert fragment in _ids(path), f"{page}: link to a missing anchor {a['href']}"
