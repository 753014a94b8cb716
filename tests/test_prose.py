"""The chapters' prose as a reader meets it: no hand-typed result, plotting code collapsed, lines that fit.

Numbers a computation or a committed JSON gives reach the markdown through myst-nb's glue
(``{glue:text}`name:.3f` ``, filled from `nb.glue(name, value)`). What may stay typed is short: the
set-up (T = 1000, 28×28 images, 206 demonstrations), dates, section and equation numbers, and
each chapter's allow-list in its notebook metadata (``metadata["ddpm_nb"]["prose_numbers"]``).
"""

from __future__ import annotations

import re

import nbformat
import pytest
from conftest import ROOT

CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
IDS = [c.stem for c in CHAPTERS]

# What is not prose: math, code, roles ({glue:text}`x`, {cite:p}`y`), link targets, HTML comments.
NOT_PROSE = [re.compile(p, re.S) for p in (
    r"\$\$.*?\$\$", r"\\begin\{.*?\\end\{[^}]*\}", r"\$[^$\n]*\$", r"\{[\w:-]+\}`[^`]*`", r"```.*?```",
    r"`[^`\n]*`", r"\]\([^)]*\)", r"<!--.*?-->", r"<[^>]+>")]
# A number: 10,000 / 10 000 as one, decimals, percentages.
NUMBER = re.compile(r"(?<![\w.\-])\d{1,3}(?:[,\u202f ]\d{3})+(?![\d.])|(?<![\w.])\d+(?:\.\d+)?%?(?![\w])")
# Numbers that name a place, not a result: "Exercise 3.2", "section 3.1", "eq. 15", "Table 2", years.
PLACE = re.compile(r"(exercise|exercises|section|sec\.|§|eq\.|eqs\.|equation|equations|table|fig\.|figure|"
                   r"chapter|chapters|app\.|appendix|algorithm|alg\.|part|step|line|theorem|lemma|"
                   r"proposition|v|version)\s*$", re.I)
# Small integers (counts in words, "2-D", "3 steps") and years are set-up, not results.
ALWAYS = re.compile(r"[0-9]|1[0-9]|(19|20)\d\d")
MAX_ALLOWED = 15


def prose(text: str) -> str:
    for pattern in NOT_PROSE:
        text = pattern.sub(" ", text)
    return text


def typed_numbers(text: str, allowed=()) -> list[str]:
    """The numbers in markdown `text` that look like results typed by hand."""
    text = prose(text)
    found = []
    for m in NUMBER.finditer(text):
        n = m.group(0)
        if ALWAYS.fullmatch(n) or n in allowed or n.rstrip("%") in allowed:
            continue
        if PLACE.search(text[max(0, m.start() - 14):m.start()]):
            continue
        found.append(n)
    return found


def _allowed(nb) -> list[str]:
    return list(nb.metadata.get("ddpm_nb", {}).get("prose_numbers", []))


def test_the_grep_finds_typed_results_and_spares_the_rest():
    text = ("Success was 0.46 over 50 episodes, 21 plans/s and 12% of the time, 10,000 points; "
            "see Exercise 3.2, section 3.1 and eq. 15 of Ho et al. (2020); with $T = 1000$ and "
            "`x = 0.5`, {glue:text}`score:.3f`, [a link](https://x.org/1.25).")
    assert typed_numbers(text) == ["0.46", "50", "21", "12%", "10,000"]
    assert typed_numbers(text, allowed=["50", "21", "12", "10,000"]) == ["0.46"]


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_no_result_is_typed_into_the_prose(path):
    nb = nbformat.read(path, as_version=4)
    allowed = _allowed(nb)
    assert len(allowed) <= MAX_ALLOWED, f"{path.name}: the allow-list is long ({len(allowed)}): glue instead"
    hits = [(i, n) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
            for n in typed_numbers(c.source, allowed)]
    assert not hits, (f"{path.name}: numbers typed into the prose (cell, number): {hits}. Glue them from "
                      "the computation (nb.glue) or, for a size of the set-up, add them to "
                      "metadata.ddpm_nb.prose_numbers")


# ---------------------------------------------------------------- the page reads as a book
PLOTTING = re.compile(r"\b(plt|fig|ax|axes|axs)\b[\[.]|\.(imshow|scatter|hist|contourf?|fill_between|"
                      r"legend|set_(title|xlabel|ylabel|xlim|ylim|aspect)|axhline|axvline|annotate)\(|"
                      r"nb\.plot\.")
# Characters of code that fit the column of the site at 1280 px (tests/test_site.py measures it).
CODE_WIDTH = 75


def _code_lines(cell) -> list[str]:
    return [ln for ln in cell.source.splitlines() if ln.strip() and not ln.strip().startswith("#")]


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_plotting_code_is_collapsed(path):
    nb = nbformat.read(path, as_version=4)
    open_ = []
    for i, c in enumerate(nb.cells):
        lines = _code_lines(c) if c.cell_type == "code" else []
        tags = set(c.metadata.get("tags", []))
        if lines and sum(bool(PLOTTING.search(ln)) for ln in lines) >= max(2, 0.3 * len(lines)) \
                and not tags & {"hide-input", "remove-input", "remove-cell", "exercise", "solution"}:
            open_.append(i)
    assert not open_, f"{path.name}: plotting cells shown open (tag them hide-input): {open_}"


@pytest.mark.parametrize("path", CHAPTERS, ids=IDS)
def test_code_lines_fit_the_column(path):
    nb = nbformat.read(path, as_version=4)
    wide = [(i, len(ln)) for i, c in enumerate(nb.cells) if c.cell_type == "code"
            and not set(c.metadata.get("tags", [])) & {"remove-cell", "remove-input"}
            for ln in c.source.splitlines() if len(ln) > CODE_WIDTH]
    assert not wide, f"{path.name}: code lines wider than {CODE_WIDTH} characters (cell, width): {wide}"


FONTSIZE = re.compile(r"(?:fontsize|labelsize|titlesize)\s*=\s*(\d+(?:\.\d+)?|[\"'](?:x{0,2}-?small)[\"'])")


def small_fonts(text: str, font_pt: float) -> list[str]:
    """Font sizes set below the style's (numbers under `font_pt`, or 'small', 'x-small'...)."""
    return [m.group(0) for m in FONTSIZE.finditer(text)
            if not m.group(1)[0].isdigit() or float(m.group(1)) < font_pt]


def test_no_figure_text_is_set_smaller_than_the_body_text():
    from ddpm_nb.plot import FONT_PT

    assert small_fonts("ax.set_title('a', fontsize=8); ax.tick_params(labelsize='small')", 12) == \
        ["fontsize=8", "labelsize='small'"]
    sources = {p.name: "\n".join(c.source for c in nbformat.read(p, as_version=4).cells
                                  if c.cell_type == "code") for p in CHAPTERS}
    sources |= {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8")
                for p in (ROOT / "ddpm_nb").rglob("*.py")}
    small = {name: hits for name, text in sources.items() if (hits := small_fonts(text, FONT_PT))}
    assert not small, f"figure text below {FONT_PT} pt, too small at page width: {small}"
