"""Grading a class (`ddpm-nb grade`): a synthetic class built from chapter 1's student edition.

Each submission is the student edition with its answer cells filled in one way: all right, all wrong,
untouched stubs, the package's own functions, one cell that loops forever, one that raises, one that
deletes its working folder, one that writes outside it; plus a file that is not a notebook and the
book's own chapter (its solutions in place). The gradebook is checked exercise by exercise.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

import pytest

from ddpm_nb import grading, student
from ddpm_nb.cli import main
from ddpm_nb.exercises.catalog import CHAPTERS, exercises_of

ROOT = Path(__file__).resolve().parents[1]
CH01 = ROOT / "notebooks" / "01_markov.ipynb"
# The looping submission costs this much; chapter 1's slowest cell takes about 2 s in quick mode.
CELL_LIMIT = 12

RIGHT = {
    "1.1": "import math\n\ndef forward_step(x_prev, beta_t, eps):\n"
           "    return math.sqrt(1 - beta_t) * x_prev + math.sqrt(beta_t) * eps\n",
    "1.2": "def alpha_bar_from_beta(beta):\n    return torch.cumprod(1 - beta, dim=0)\n",
    "1.3": "def stationary(P):\n    w, v = torch.linalg.eig(P.T)\n"
           "    p = v[:, torch.argmin((w - 1).abs())].real\n    return p / p.sum()\n",
    "1.5": "def forward_chain(x0, beta, eps):\n    path = [x0]\n    for t in range(1, len(beta)):\n"
           "        b = beta[t]\n        path.append((1 - b).sqrt() * path[-1] + b.sqrt() * eps[t])\n"
           "    return torch.stack(path)\n\n"
           "def jump(x0, t, alpha_bar, eps_bar):\n"
           "    return alpha_bar[t].sqrt() * x0 + (1 - alpha_bar[t]).sqrt() * eps_bar\n\n"
           "def combined_noise(eps, beta):\n"
           "    ab = torch.cumprod(1 - beta, 0)\n"
           "    path = forward_chain(torch.zeros_like(eps[0]), beta, eps)\n"
           "    return path / (1 - ab).sqrt().clamp(min=1e-300).reshape(-1, 1, 1)\n",
}
WRONG = {
    "1.1": "def forward_step(x_prev, beta_t, eps):\n    return (1 - beta_t) * x_prev + beta_t * eps\n",
    "1.2": "def alpha_bar_from_beta(beta):\n    return 1 - torch.cumsum(beta, 0)\n",
    "1.3": "def stationary(P):\n    return torch.full((P.shape[0],), 1.0 / P.shape[0], dtype=P.dtype)\n",
    "1.5": "def forward_chain(x0, beta, eps):\n    path = [x0]\n    for t in range(1, len(beta)):\n"
           "        path.append((1 - beta[t]).sqrt() * path[-1] + beta[t] * eps[t])\n"
           "    return torch.stack(path)\n\njump = combined_noise = forward_chain\n",
}
PACKAGE = {
    "1.1": "forward_step = nb.q_step\n",
    "1.2": "def alpha_bar_from_beta(beta):\n    return nb.alpha_bar(beta)\n",
    "1.3": "from ddpm_nb.markov import stationary_distribution as stationary\n",
    "1.5": "def forward_chain(x0, beta, eps):\n    return nb.simulate_forward(x0, beta)\n\n"
           "jump, combined_noise = nb.q_sample, forward_chain\n",
}


def _edition(tmp: Path) -> dict:
    return student.student_notebook(json.loads(CH01.read_text()), CH01.name)


def _fill(nb: dict, answers: dict[str, str]) -> dict:
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
        if gid.startswith("answer-") and gid[7:] in answers:
            cell["source"] = answers[gid[7:]]
    return nb


def _write(path: Path, nb: dict) -> Path:
    path.write_text(json.dumps(nb), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("class")
    with pytest.MonkeyPatch.context() as mp:  # the grader's temporary folders go here, nobody else's
        (tmp / "tmp").mkdir()
        mp.setattr(tempfile, "tempdir", str(tmp / "tmp"))
        return _graded(tmp)


def _graded(tmp: Path) -> dict:
    outside = tmp / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("the teacher's file")
    edition = _edition(tmp)
    subs = tmp / "submissions"
    subs.mkdir()
    bad_write = f"open({str(outside / 'escape.txt')!r}, 'w').write('x')\n"
    classes = {
        "right": RIGHT,
        "wrong": WRONG,
        "stubs": {},
        "package": PACKAGE,
        "loops": {**RIGHT, "1.2": "while True:\n    pass\n" + RIGHT["1.2"]},
        "raises": {**RIGHT, "1.3": "raise ValueError('my own bug')\n" + RIGHT["1.3"]},
        "deletes": {**RIGHT, "1.1": "import os, shutil\nshutil.rmtree(os.getcwd())\n" + RIGHT["1.1"]},
        "writes": {**RIGHT, "1.2": bad_write + RIGHT["1.2"]},
    }
    for name, answers in classes.items():
        _write(subs / f"{name}_01_markov.ipynb", _fill(edition, answers))
    # the renamed file still says which chapter it is (the edition's metadata)
    (subs / "junk_01_markov.ipynb").write_text("this is not a notebook\n")
    _write(subs / "book_01_markov.ipynb", json.loads(CH01.read_text()))
    out = tmp / "gradebook.json"
    rc = main(["grade", str(subs), "--json", str(out), "--csv", str(tmp / "gradebook.csv"),
               "--cell-timeout", str(CELL_LIMIT), "--timeout", "240", "--workers", "2"])
    assert rc == 0
    book = json.loads(out.read_text())
    assert [Path(s["file"]).name for s in book["submissions"]] == sorted(p.name for p in subs.iterdir())
    return {"book": book, "rows": {s["student"]: s for s in book["submissions"]}, "outside": outside,
            "tmp": tmp, "csv": tmp / "gradebook.csv", "subs": subs}


def _points(row) -> dict:
    return {e["exercise"]: e["points"] for e in row["exercises"]}


def _message(row, exercise) -> str:
    return next(e["message"] for e in row["exercises"] if e["exercise"] == exercise)


def test_the_gradebook_scores_every_submission_exactly(graded):
    rows = graded["rows"]
    assert sorted(rows) == ["book", "deletes", "junk", "loops", "package", "raises", "right", "stubs",
                            "writes", "wrong"]
    want = {
        "right": (2, 2, 2, 5), "book": (2, 2, 2, 5), "wrong": (0, 0, 0, 0), "stubs": (0, 0, 0, 0),
        "package": (0, 0, 0, 0), "loops": (2, 0, 2, 5), "raises": (2, 2, 0, 5), "deletes": (0, 2, 2, 5),
        "writes": (2, 0, 2, 5), "junk": (0, 0, 0, 0),
    }
    for name, (a, b, c, d) in want.items():
        assert _points(rows[name]) == {"1.1": a, "1.2": b, "1.3": c, "1.4": None, "1.5": d}, name
        assert rows[name]["points"] == a + b + c + d and rows[name]["max_points"] == 11, name
        assert rows[name]["manual_points"] == 3 and rows[name]["chapter"] == "01_markov", name


def test_messages_say_what_went_wrong(graded):
    rows = graded["rows"]
    assert _message(rows["right"], "1.1").startswith("✓ Exercise 1.1 passed")
    assert "σ" not in _message(rows["wrong"], "1.1") and "sqrt(β_t)" in _message(rows["wrong"], "1.1")
    assert "a product" in _message(rows["wrong"], "1.2")
    assert "right eigenvector" in _message(rows["wrong"], "1.3")
    assert "NotImplementedError" in _message(rows["stubs"], "1.2")
    assert "the noise is scaled by β_t" in _message(rows["wrong"], "1.5")
    assert _message(rows["right"], "1.5").startswith("✓ Exercise 1.5 passed")
    for ex, fn in (("1.1", "q_step"), ("1.2", "alpha_bar"), ("1.3", "stationary_distribution"),
                   ("1.5", "simulate_forward")):
        message = _message(rows["package"], ex)
        assert "the package's own answer" in message and fn in message
    assert "interrupted" in _message(rows["loops"], "1.2")
    assert any(f"ran past the {CELL_LIMIT} s cell limit" in p for p in rows["loops"]["problems"])
    assert "ValueError: my own bug" in _message(rows["raises"], "1.3")
    assert "working folder" in _message(rows["deletes"], "1.1")
    assert any("may not remove their working folder" in p for p in rows["deletes"]["problems"])
    assert any("only change files in their working folder" in p for p in rows["writes"]["problems"])
    assert "not a Jupyter notebook" in rows["junk"]["problems"][0]
    assert all(e["message"].startswith("graded by hand") for n, r in rows.items() for e in r["exercises"]
               if e["exercise"] == "1.4" and n != "junk")
    junk = rows["junk"]["exercises"]
    assert all(e["message"].startswith("not graded: not a Jupyter notebook") for e in junk)


def test_nothing_outside_the_working_folder_changed(graded):
    outside = graded["outside"]
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert (outside / "keep.txt").read_text() == "the teacher's file"
    assert len(list(graded["subs"].iterdir())) == 10  # the submissions themselves are untouched
    assert not list((graded["tmp"] / "tmp").glob("ddpm-nb-grade-*"))  # every working folder was removed


def test_the_csv_holds_the_same_rows(graded):
    with graded["csv"].open() as f:
        rows = list(csv.DictReader(f))
    right = {r["exercise"]: r["points"] for r in rows if r["student"] == "right"}
    assert right == {"1.1": "2", "1.2": "2", "1.3": "2", "1.4": "", "1.5": "5", "total": "11"}
    assert len(rows) == 10 * (len(exercises_of(1)) + 1)


def test_the_student_edition_carries_nbgrader_metadata():
    nb = _edition(Path("."))
    meta = [c["metadata"]["nbgrader"] for c in nb["cells"] if "nbgrader" in c.get("metadata", {})]
    checks = [m for m in meta if m["grade"]]
    assert [m["grade_id"] for m in checks] == ["check-1.1", "check-1.2", "check-1.3", "check-1.5"]
    assert [m["points"] for m in checks] == [2, 2, 2, 5]
    assert all(m["locked"] and m["schema_version"] == 3 for m in checks)
    assert [m["grade_id"] for m in meta if m["solution"]] == ["answer-1.1", "answer-1.2", "answer-1.3",
                                                               "answer-1.5"]
    assert nb["metadata"]["ddpm_nb"]["chapter"] == 1


def test_bad_arguments_are_one_sentence(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "none.ipynb"), "--json", str(tmp_path / "g.json")]) == 2
    assert "No submission at" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["grade", str(empty), "--json", str(tmp_path / "g.json")]) == 2
    assert "No submissions to grade" in capsys.readouterr().err
    assert not (tmp_path / "g.json").exists()


@pytest.mark.skipif(os.environ.get("DDPM_NB_GRADE_BOOK") != "1",
                    reason="grades all six chapters (minutes): set DDPM_NB_GRADE_BOOK=1")
def test_every_chapter_of_the_book_earns_full_marks(tmp_path):
    files = [ROOT / "notebooks" / f"{stem}.ipynb" for stem in CHAPTERS.values()]
    book = grading.grade(files, cell_timeout=600, timeout=1800, progress=False)
    for row in book["submissions"]:
        assert row["points"] == row["max_points"] > 0, (row["file"], row["exercises"], row["problems"])
        assert not row["problems"], row["problems"]
