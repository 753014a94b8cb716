"""Tests for ddpm_nb.student (the student edition) and the `ddpm-nb student` command."""

import json

import nbformat
import pytest

from ddpm_nb import student
from ddpm_nb.cli import main


def code(src, tags=(), outputs=None, count=None, cell_id=None):
    cell = {"cell_type": "code", "metadata": {"tags": list(tags)} if tags else {}, "source": src,
            "outputs": outputs or [], "execution_count": count}
    if cell_id:
        cell["id"] = cell_id
    return cell


def markdown(src, cell_id=None):
    cell = {"cell_type": "markdown", "metadata": {}, "source": src}
    if cell_id:
        cell["id"] = cell_id
    return cell


STREAM = [{"output_type": "stream", "name": "stdout", "text": "42\n"}]


def chapter(n_solutions=2, minor=5):
    """A small chapter: prose, setup, two exercises each with a solution and a checker."""
    cells = [
        markdown("# Chapter", "c0"),
        code("import ddpm_nb as nb\ncfg = nb.setup()", outputs=STREAM, count=1, cell_id="c1"),
        code("def forward_step(x, b, e):\n    raise NotImplementedError", ["exercise"], cell_id="c2"),
        code("def forward_step(x, b, e):\n    return x", ["solution", "hide-input"], STREAM, 2, "c3"),
        code("ch01.check_forward_step(forward_step)", ["checker"], STREAM, 3, "c4"),
        code("def alpha_bar(beta):\n    raise NotImplementedError", ["exercise"], cell_id="c5"),
        code("def alpha_bar(beta):\n    return beta", ["solution"], STREAM, 4, "c6"),
        markdown("## Summary", "c7"),
    ]
    if n_solutions < 2:
        cells = [c for c in cells if c.get("id") != "c6"]
    if n_solutions > 2:
        cells.append(code("print('extra')", ["solution"], cell_id="c8"))
    kernel = {"name": "python3", "display_name": "Python 3"}
    nb = {"nbformat": 4, "nbformat_minor": minor, "metadata": {"kernelspec": kernel}, "cells": cells}
    if minor < 5:
        for c in nb["cells"]:
            c.pop("id", None)
    return nb


def write(path, nb):
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


# ---------------------------------------------------------------- student_notebook

def test_student_notebook_drops_solutions_keeps_exercises_clears_outputs():
    nb = chapter()
    out = student.student_notebook(nb)
    cells = out["cells"]
    assert cells[0]["id"] == "student-edition-banner"
    assert "Student edition" in cells[0]["source"]
    assert cells[0]["cell_type"] == "markdown"
    assert [c.get("id") for c in cells[1:]] == ["c0", "c1", "c2", "c4", "c5", "c7"]
    assert not any("solution" in c.get("metadata", {}).get("tags", []) for c in cells)
    assert sum("exercise" in c.get("metadata", {}).get("tags", []) for c in cells) == 2
    for c in cells:
        if c["cell_type"] == "code":
            assert c["outputs"] == [] and c["execution_count"] is None
    assert out["metadata"] == nb["metadata"] and out["nbformat_minor"] == 5


def test_student_notebook_leaves_input_untouched():
    nb = chapter()
    before = json.dumps(nb, sort_keys=True)
    student.student_notebook(nb)
    assert json.dumps(nb, sort_keys=True) == before


def test_student_notebook_is_valid_nbformat_45():
    nbformat.validate(nbformat.from_dict(chapter(minor=5)))
    nbformat.validate(nbformat.from_dict(chapter(minor=4)))  # the 4.4 source itself is valid
    nbformat.validate(nbformat.from_dict(student.student_notebook(chapter(minor=5))))


def test_student_notebook_of_nbformat_44_is_valid():
    nbformat.validate(nbformat.from_dict(student.student_notebook(chapter(minor=4))))


def test_notebook_without_exercises_gets_only_the_banner():
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [markdown("hi", "a")]}
    out = student.student_notebook(nb)
    assert [c["id"] for c in out["cells"]] == ["student-edition-banner", "a"]


@pytest.mark.parametrize("n_solutions, counts", [(1, "2 'exercise' cells but 1 'solution'"),
                                                 (3, "2 'exercise' cells but 3 'solution'")])
def test_mismatched_exercise_and_solution_counts(n_solutions, counts):
    with pytest.raises(ValueError, match=f"ch.ipynb has {counts} cells"):
        student.student_notebook(chapter(n_solutions), "ch.ipynb")


@pytest.mark.parametrize("nb", [[], {"nbformat": 3, "cells": []}, {"nbformat": 4}])
def test_not_an_nbformat4_notebook(nb):
    with pytest.raises(ValueError, match="x.ipynb is not a Jupyter notebook in nbformat 4"):
        student.student_notebook(nb, "x.ipynb")


# ---------------------------------------------------------------- make_student_edition

def test_make_student_edition_writes_every_notebook(tmp_path):
    src = tmp_path / "notebooks"
    src.mkdir()
    a, b = write(src / "01_a.ipynb", chapter()), write(src / "02_b.ipynb", chapter())
    out = tmp_path / "student" / "nested"
    written = student.make_student_edition([a, str(b)], out)
    assert written == [out / "01_a.ipynb", out / "02_b.ipynb"]
    assert sorted(p.name for p in out.iterdir()) == ["01_a.ipynb", "02_b.ipynb"]  # no temp files left
    for p in written:
        text = p.read_text(encoding="utf-8")
        assert text.endswith("\n")
        nb = json.loads(text)
        assert nb == student.student_notebook(chapter())
    # the sources still hold their solutions
    assert json.loads(a.read_text(encoding="utf-8")) == chapter()


def test_make_student_edition_keeps_unicode_readable(tmp_path):
    nb = chapter()
    nb["cells"][0]["source"] = "# ᾱ_t = Π (1 - β_s)"
    src = write(tmp_path / "ch.ipynb", nb)
    (p,) = student.make_student_edition([src], tmp_path / "out")
    assert "ᾱ_t = Π (1 - β_s)" in p.read_text(encoding="utf-8")


def test_output_dir_equal_to_source_dir_is_refused(tmp_path):
    src = write(tmp_path / "ch.ipynb", chapter())
    before = src.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="holds the source ch.ipynb: choose another folder"):
        student.make_student_edition([src], tmp_path)
    assert src.read_text(encoding="utf-8") == before
    assert [p.name for p in tmp_path.iterdir()] == ["ch.ipynb"]


def test_output_dir_given_by_another_spelling_is_refused(tmp_path):
    (tmp_path / "nbs").mkdir()
    (tmp_path / "other").mkdir()
    src = write(tmp_path / "nbs" / "ch.ipynb", chapter())
    with pytest.raises(ValueError, match="choose another folder"):
        student.make_student_edition([src], tmp_path / "other" / ".." / "nbs")


def test_invalid_json_writes_nothing(tmp_path):
    good = write(tmp_path / "01_good.ipynb", chapter())
    bad = tmp_path / "02_bad.ipynb"
    bad.write_text('{"nbformat": 4, "cells": [', encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="02_bad.ipynb is not valid notebook JSON"):
        student.make_student_edition([good, bad], out)
    assert not out.exists()


def test_mismatched_counts_writes_nothing(tmp_path):
    good = write(tmp_path / "01_good.ipynb", chapter())
    bad = write(tmp_path / "02_bad.ipynb", chapter(n_solutions=1))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ValueError, match="2 'exercise' cells but 1 'solution' cells"):
        student.make_student_edition([good, bad], out)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("name", ["missing.ipynb", "notes.txt"])
def test_non_notebook_paths_are_refused(tmp_path, name):
    (tmp_path / "notes.txt").write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{name} is not a notebook file \\(.ipynb\\)"):
        student.make_student_edition([tmp_path / name], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_no_notebooks_is_refused(tmp_path):
    with pytest.raises(ValueError, match="Give at least one notebook"):
        student.make_student_edition([], tmp_path / "out")


# ---------------------------------------------------------------- the CLI

def test_cli_student_writes_and_reports(tmp_path, capsys):
    src = write(tmp_path / "ch.ipynb", chapter())
    out = tmp_path / "student"
    assert main(["student", str(src), "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out / 'ch.ipynb'}\n"
    assert json.loads((out / "ch.ipynb").read_text(encoding="utf-8")) == student.student_notebook(chapter())


def test_cli_student_defaults_to_notebooks_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "notebooks").mkdir()
    write(tmp_path / "notebooks" / "02_b.ipynb", chapter())
    write(tmp_path / "notebooks" / "01_a.ipynb", chapter())
    monkeypatch.chdir(tmp_path)
    assert main(["student", "--out", "ed"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.rsplit("/", 1)[-1] for line in lines] == ["01_a.ipynb", "02_b.ipynb"]
    assert (tmp_path / "ed" / "01_a.ipynb").is_file()


def test_cli_student_bad_input_exits_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("not json", encoding="utf-8")
    assert main(["student", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ddpm-nb student: ") and "is not valid notebook JSON" in err
    assert not (tmp_path / "out").exists()


def test_cli_student_without_notebooks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["student"]) == 2
    assert "No notebooks given and none found in ./notebooks" in capsys.readouterr().err


def test_cli_help_lists_student(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "student" in out and "write the student edition" in out


def test_cli_student_help(capsys):
    assert main(["student", "--help"]) == 0
    assert "--out" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [[], ["fly"]])
def test_cli_without_or_with_unknown_command_is_a_usage_error(argv, capsys):
    assert main(argv) == 2
    assert "usage: ddpm-nb" in capsys.readouterr().err


def test_student_files_are_readable_by_everyone(tmp_path):
    import stat

    from conftest import NOTEBOOKS

    written = student.make_student_edition(NOTEBOOKS[:1], tmp_path / "out")
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, oct(path.stat().st_mode)


# ---------------------------------------------------------------- the edition the site offers


def test_the_committed_student_edition_is_current(root):
    """editions/student/ is what `make student` writes from today's chapters (the site and Colab
    links serve it)."""
    chapters = sorted((root / "notebooks").glob("*.ipynb"))
    committed = sorted((root / "editions" / "student").glob("*.ipynb"))
    assert [p.name for p in committed] == [p.name for p in chapters]
    for src, out in zip(chapters, committed, strict=True):
        want = student.student_notebook(json.loads(src.read_text(encoding="utf-8")), src.name)
        assert json.loads(out.read_text(encoding="utf-8")) == want, f"run `make student`: {out} is stale"


def test_the_course_page_links_every_student_edition(root):
    import re

    import yaml

    page = (root / "book" / "how_to_use.md").read_text(encoding="utf-8")
    repo = yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"]
    slug = repo.removeprefix("https://github.com/")
    for nb in sorted((root / "notebooks").glob("*.ipynb")):
        assert f"<../editions/student/{nb.name}>`" in page, nb.name
        assert f"https://colab.research.google.com/github/{slug}/blob/main/editions/student/{nb.name}" in page
    assert re.search(r"^## Running a course$", page, re.M)
    for command in ("ddpm-nb grade submissions/", "ddpm-nb teacher", "ddpm-nb student"):
        assert command in page
