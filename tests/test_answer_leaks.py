"""No output of the student edition shows the code of a function that answers one of its exercises.

`ddpm_nb.student.answer_leaks` compares every output (markup and whitespace stripped) with the bodies of
the chapter's solution cells and of the package's own answers (`ANSWERS` of each checker module). Here:
the cells that `nb.show` an answer (chapter 1's `q_step`, chapter 2's `diffusion_term`, chapter 3's
`l_simple` and `sample_ddpm`, chapter 4's `sample_dpm_solver`, chapter 5's `window_index` and `MinMax`)
leak when their `shows-answer` tag is taken away, and not with it; the site test checks the executed
chapters of the book's own build.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ddpm_nb.student import SHOWS_ANSWER_TAG, answer_leaks

ROOT = Path(__file__).resolve().parents[1]


def _shown(obj) -> list[dict]:
    """The outputs `nb.show(obj)` gives in a kernel (as nbformat outputs)."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    import ddpm_nb as nb

    InteractiveShell.instance()
    with capture_output() as captured:
        nb.show(obj)
    return [{"output_type": "display_data", "data": dict(o.data), "metadata": {}} for o in captured.outputs]


def _with_show_outputs(stem: str) -> dict:
    """The chapter with the real output of each `nb.show(...)` cell that is tagged shows-answer."""
    import ddpm_nb as nb
    from ddpm_nb import elbo
    from ddpm_nb.policy.windows import MinMax, window_index

    names = {"nb.q_step": nb.q_step, "window_index": window_index, "MinMax": MinMax,
             "elbo.diffusion_term": elbo.diffusion_term,
             "nb.elbo.l_simple": nb.elbo.l_simple, "nb.sample_ddpm": nb.sample_ddpm,
             "nb.samplers.sample_dpm_solver": nb.samplers.sample_dpm_solver}
    chapter = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())
    for cell in chapter["cells"]:
        if SHOWS_ANSWER_TAG in cell.get("metadata", {}).get("tags", []):
            src = "".join(cell["source"]).strip()
            assert src.startswith("nb.show(") and src.endswith(")"), src
            cell["outputs"] = _shown(names[src[len("nb.show("):-1]])
    return chapter


@pytest.mark.parametrize("stem, shown", [("01_markov", ["ddpm_nb.diffusion.q_step (answers exercise 1.1)"]),
                                         ("02_elbo", ["ddpm_nb.elbo.diffusion_term (answers exercise 2.5)"]),
                                         ("03_ddpm", ["ddpm_nb.elbo.l_simple (answers exercise 3.4)",
                                                      "ddpm_nb.samplers.discrete.sample_ddpm (answers "
                                                      "exercise 3.4)"]),
                                         ("04_sde_ode", ["ddpm_nb.samplers.continuous.sample_dpm_solver "
                                                         "(answers exercise 4.4)"]),
                                         ("05_diffusion_policy", ["window_index (answers exercise 5.1)",
                                                                  "MinMax.encode (answers exercise 5.2)"])])
def test_a_cell_that_shows_an_answer_leaks_unless_the_edition_hides_it(stem, shown):
    chapter = _with_show_outputs(stem)
    assert answer_leaks(chapter, f"{stem}.ipynb") == []
    for cell in chapter["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if SHOWS_ANSWER_TAG in tags:
            tags.remove(SHOWS_ANSWER_TAG)
    leaks = "\n".join(answer_leaks(chapter, f"{stem}.ipynb"))
    for what in shown:
        assert what in leaks, leaks


def test_a_printed_solution_is_a_leak_too():
    chapter = json.loads((ROOT / "notebooks" / "02_elbo.ipynb").read_text())
    solution = next(c for c in chapter["cells"] if "solution" in c.get("metadata", {}).get("tags", []))
    code = "".join(solution["source"])
    # a reader's cell that prints the solution's code, re-indented and wrapped in HTML
    chapter["cells"].insert(3, {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": "x",
                                "outputs": [{"output_type": "display_data", "metadata": {},
                                             "data": {"text/html": "<pre>" + code.replace("\n", "\n  ")
                                                      .replace("<", "&lt;") + "</pre>"}}]})
    assert any("the solution cell of exercise 2.1" in leak
               for leak in answer_leaks(chapter, "02_elbo.ipynb"))
