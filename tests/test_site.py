"""The built site in a real browser (headless Chromium): math typeset, assets present, links whole.

Run after `make book` (so `_build/html` exists): `pytest -m site tests`. `make test` does both.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
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


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _dom(chromium: str, url: str) -> BeautifulSoup:
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}",
                              "--virtual-time-budget=15000", "--dump-dom", url],
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

    # 2. Local images, scripts, stylesheets exist; the page loads no script from the network.
    for tag, attr in (("img", "src"), ("script", "src"), ("link", "href"), ("source", "src")):
        for el in soup.find_all(tag, attrs={attr: True}):
            ref = el[attr]
            if tag == "script":
                assert _local_target(page, ref) is not None, f"{page}: script from the network: {ref}"
            target = _local_target(page, ref)
            if target is not None:
                assert target[0].is_file(), f"{page}: missing {tag} {ref}"

    # 3. No broken local link (file and, where given, the anchor).
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
