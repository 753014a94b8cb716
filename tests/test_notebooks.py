"""The notebooks as files: no outputs, the Colab bootstrap, exercises with checkers."""

from __future__ import annotations

import os
import subprocess
import sys
import venv

import pytest
import yaml
from conftest import NOTEBOOKS, ROOT, cell_source, code_cells, load_notebook, tags

from ddpm_nb.colab import BOOTSTRAP_FIRST_LINE, bootstrap_source
from ddpm_nb.exercises import ExerciseNotDone
from ddpm_nb.student import EXERCISE_TAG, SOLUTION_TAG

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO_URL = CONFIG["repository"]["url"]


def test_there_are_chapters():
    assert [p.name for p in NOTEBOOKS][:1] == ["01_markov.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    for i, cell in enumerate(code_cells(load_notebook(path))):
        assert cell.get("outputs") == [], f"{path.name}: code cell {i} has stored outputs; clear them"
        assert cell.get("execution_count") is None, f"{path.name}: code cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_listed_in_the_toc(path):
    toc = (ROOT / "_toc.yml").read_text()
    assert f"notebooks/{path.stem}" in toc


def test_repository_url_is_a_marked_placeholder_until_published():
    # The book is not published: the URL says so, loudly, in the one place it is set.
    assert REPO_URL.startswith("https://github.com/")
    assert "PLACEHOLDER" in REPO_URL
    assert "PLACEHOLDER" in (ROOT / "_config.yml").read_text().split("repository:")[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_the_bootstrap_with_the_config_url(path):
    first = cell_source(code_cells(load_notebook(path))[0])
    assert first.startswith(BOOTSTRAP_FIRST_LINE)
    assert first == bootstrap_source(REPO_URL), (
        f"{path.name}: the Colab bootstrap differs from _config.yml's repository.url; "
        "run `python tools/sync_bootstrap.py`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_second_code_cell_is_one_call_to_setup(path):
    second = cell_source(code_cells(load_notebook(path))[1])
    assert "import ddpm_nb as nb" in second and "nb.setup(" in second


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_have_stub_solution_and_checker(path):
    cells = load_notebook(path)["cells"]
    stubs = [i for i, c in enumerate(cells) if EXERCISE_TAG in tags(c)]
    assert len(stubs) >= 3, f"{path.name} needs 3+ exercises with checkers"
    for i in stubs:
        assert "raise NotImplementedError" in cell_source(cells[i])
        sol = cells[i + 1]
        assert SOLUTION_TAG in tags(sol) and "hide-input" in tags(sol), "a collapsed solution follows"
        checker = cell_source(cells[i + 2])
        assert "check_" in checker, "the checker cell follows the solution"


def _exercise_triples(path):
    cells = load_notebook(path)["cells"]
    for i, c in enumerate(cells):
        if EXERCISE_TAG in tags(c):
            yield cell_source(c), cell_source(cells[i + 1]), cell_source(cells[i + 2])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checkers_fail_on_the_stub_and_pass_on_the_solution(path, capsys):
    import torch

    setup_cell = cell_source(code_cells(load_notebook(path))[1])  # the chapter's imports
    dtype = torch.get_default_dtype()
    try:
        ns: dict = {}  # one namespace a chapter: a build exercise uses the earlier exercises' answers
        exec(setup_cell, ns)
        for stub, solution, checker in _exercise_triples(path):
            exec(stub, ns)
            with pytest.raises(ExerciseNotDone, match="NotImplementedError"):
                exec(checker, ns)
            exec(solution, ns)
            exec(checker, ns)
            assert "✓ Exercise" in capsys.readouterr().out
    finally:
        torch.set_default_dtype(dtype)


def test_bootstrap_installs_the_package_from_a_clone(tmp_path):
    """The Colab path, without Colab: the bootstrap clones the book and pip-installs it (not -e)."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "DDPM_NB_BOOTSTRAP": "1",
           "DDPM_NB_BOOTSTRAP_FROM": ROOT.as_uri(), "PIP_NO_DEPS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    src = bootstrap_source(REPO_URL)
    subprocess.run([str(py), "-c", src], env=env, check=True, timeout=300, cwd=tmp_path)
    assert (home / "ddpm-book" / "pyproject.toml").is_file(), "the bootstrap did not clone the book"
    origin = subprocess.run(
        [str(py), "-c", "import importlib.util as u; print(u.find_spec('ddpm_nb').origin)"],
        env=env, check=True, capture_output=True, text=True, cwd=tmp_path).stdout.strip()
    assert origin.startswith(str(env_dir)), f"ddpm_nb should be installed in the venv, found {origin}"
    assert "site-packages" in origin
    # Outside Colab (no DDPM_NB_BOOTSTRAP) the same cell does nothing.
    env.pop("DDPM_NB_BOOTSTRAP")
    env["DDPM_NB_BOOTSTRAP_FROM"] = str(tmp_path / "does-not-exist")
    subprocess.run([sys.executable, "-c", src], env=env, check=True, timeout=60)
