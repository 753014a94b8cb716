"""The nbval run stores what a book execution would store, and only notebooks that passed.

Two tiny notebooks in a tmp book: one passes (streams, a cleared output, an updated display, an
empty cell, a result), one raises. After nbval with tools/nbval_cache.py, the book's lookup (the
one myst-nb's `execution_mode: cache` does) finds the first with nbclient's outputs, not the second.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import subprocess
import sys

import nbformat
from conftest import ROOT
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from nbclient import NotebookClient

spec = importlib.util.spec_from_file_location("cache_guard", ROOT / "tools" / "cache_guard.py")
cache_guard = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cache_guard)

GOOD = [
    "import sys\nprint('one', end='\\r')\nprint('two')\nprint('to stderr', file=sys.stderr)",
    "from IPython.display import clear_output, display\ndisplay('frame 1')\nclear_output(wait=True)\n"
    "display('frame 2')",
    "h = display('first', display_id=True)\nh.update('updated')",
    "",
    "import ipywidgets as w\nout = w.Output()\nwith out:\n    print('inside the widget')\nout",
    "6 * 7",
]
BAD = ["x = 1", "raise ValueError('a broken claim')", "print('after')"]


def _notebook(sources: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter")]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in sources]
    return nb


def _merged(outputs) -> list[dict]:
    """Outputs with consecutive same-name streams joined (how they are split depends on timing)
    and without widget model ids (random)."""
    merged = []
    for out in map(copy.deepcopy, outputs):
        out.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)
        last = merged[-1] if merged else None
        if last and out["output_type"] == "stream" == last["output_type"] and out["name"] == last["name"]:
            last["text"] += out["text"]
        else:
            merged.append(out)
    return merged


def test_nbval_run_fills_the_book_cache_with_what_the_book_would_execute(tmp_path):
    (tmp_path / "_config.yml").write_text("execute:\n  execute_notebooks: cache\n  cache: _build/.jc\n")
    for folder in ("ddpm_nb", "checkpoints"):
        (tmp_path / folder).mkdir()
    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    nbformat.write(_notebook(GOOD), good)
    nbformat.write(_notebook(BAD), bad)
    cache_guard.guard(tmp_path / "_build" / ".jc", tmp_path)  # stamped as the run will be: kept
    cache = get_cache(str(tmp_path / "_build" / ".jc"))
    # A stale "good" record for the broken notebook's code must not survive the failing run.
    cache.cache_notebook_bundle(CacheBundleIn(_notebook(BAD), str(bad)), check_validity=False)

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tools.nbval_cache",
         "--nbval-lax", "--nbval-current-env", f"--nbval-book={tmp_path}", str(good), str(bad)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr  # the raising cell fails nbval
    assert "1 notebook(s) stored" in out.stdout and "bad.ipynb: cell 1 call: failed" in out.stdout

    source = nbformat.read(good, as_version=4)
    record = cache.match_cache_notebook(source)
    assert record.data["executed_by"] == "nbval"
    _, cached = cache.merge_match_into_notebook(source)
    try:
        cache.match_cache_notebook(nbformat.read(bad, as_version=4))
        raise AssertionError("a notebook that failed under nbval is cached")
    except KeyError:
        pass

    executed = nbformat.read(good, as_version=4)
    NotebookClient(executed, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    cells = [(c.execution_count, _merged(c.outputs)) for c in cached.cells if c.cell_type == "code"]
    assert cells == [(c.execution_count, _merged(c.outputs)) for c in executed.cells if c.cell_type == "code"]
    assert cells[1][1][0]["data"]["text/plain"] == "'frame 2'"
    assert cells[2][1][0]["data"]["text/plain"] == "'updated'"
    assert cells[3] == (None, [])
    widgets = cached.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert any("inside the widget" in str(model["state"].get("outputs")) for model in widgets.values())
    assert cached.metadata["language_info"]["name"] == "python"

