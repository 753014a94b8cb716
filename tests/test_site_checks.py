"""The site test's eye for what a reader must never see, checked on pages made to fail it."""

from __future__ import annotations

import pytest
from test_site import output_problems

CELL = '<div class="cell_output docutils container"><div class="output stderr"><pre>{}</pre></div></div>'


@pytest.mark.parametrize("text, what", [
    ("-ELBO:   0%|          | 0/1998 [00:00<?, ?it/s]", "a frozen progress bar"),
    ("PushT episodes: 100%|██████████| 50/50 [13:20<00:00, 16.01s/it]", "a frozen progress bar"),
    ("Traceback (most recent call last):\n  File \"x.py\", line 1", "a traceback"),
    ("HBox(children=(HTML(value=''), FloatProgress(value=0.0, max=10.0)))", "raw widget text"),
    ('{"model_id": "3f1c", "version_major": 2}', "raw widget text"),
])
def test_a_page_with_it_fails(text, what):
    problems = output_problems(CELL.format(text))
    assert problems and problems[0].startswith(what), problems


@pytest.mark.parametrize("text", [
    "✓ the chain is stationary: max error 1.2e-16 (tolerance 1e-12)",
    "DPM-Solver++ 10 NFE: 0.0266 ± 0.0087; 95% of samples inside [-3, 3]",
    "loaded checkpoints/pusht.pt (sha256 cb7c15ecc656…)",
])
def test_a_good_page_passes(text):
    assert output_problems(CELL.format(text)) == []


# ---------------------------------------------------------------- layout, measured in a real browser
def _png(path, width_px: int, dpi: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(width_px / dpi, 1.0), dpi=dpi)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


PAGE = """<html><head><style>img {{ max-width: 100%; }}</style></head>
<body><main style="width: 700px"><p style="font-size: 16px">Text.</p>
<div class="cell_input"><pre style="overflow-x: auto">{code}</pre></div>
<div class="cell_output"><img src="fig.png"></div></main></body></html>"""


@pytest.mark.site
@pytest.mark.parametrize("code, width_px, want", [
    ("x = 1", 600, []),
    ("x = " + "1 + " * 60 + "1", 600, ["code wider than the column"]),
    ("x = 1", 1400, ["figure fig.png: labels"]),
])
def test_layout_problems_in_a_real_browser(tmp_path, code, width_px, want):
    import functools
    import http.server
    import json
    import shutil
    import threading

    from test_site import _dom, _QuietHandler, layout_problems

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("Chromium is needed for the browser check: apt-get install chromium.")
    (tmp_path / "page.html").write_text(PAGE.format(code=code))
    _png(tmp_path / "fig.png", width_px, 100)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        soup = _dom(chromium, f"http://127.0.0.1:{server.server_address[1]}/page.html")
    finally:
        server.shutdown()
    problems = layout_problems(json.loads(soup.body["data-measure"]), tmp_path, "page.html", 12)
    assert len(problems) == len(want), problems
    assert all(p.startswith(w) for p, w in zip(problems, want, strict=True)), problems


def test_an_image_without_a_source_is_skipped(tmp_path):
    from test_site import layout_problems

    measure = {"body": 16, "pre": [], "math": [], "img": [[None, 0, 0]]}
    assert layout_problems(measure, tmp_path, "page.html", 12) == []
