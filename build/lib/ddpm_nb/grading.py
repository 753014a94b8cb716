"""Grading a class: `ddpm-nb grade SUBMISSION... --json PATH`.

Each submission (a student-edition chapter with the student's cells filled in) runs in a fresh kernel,
in a temporary folder that holds a copy of it and nothing else, with a time limit per cell and one per
notebook. Every checker cell of the chapter (nbgrader metadata `grade_id: check-N.M`, or its line in
the exercise catalog) is replaced by the catalog's own line before the run, so a student's edit of a
checker changes nothing; an exercise scores its points when that cell runs without an error, the rule
nbgrader's autograder uses. Think exercises are listed with the points a teacher gives by hand.

What a submission may do: read anything, write and delete inside its working folder. A Python audit
hook (PEP 578), installed before the first cell, refuses writing, deleting, renaming or chmod-ing
anything else (the working folder itself included) and starting processes. It guards against
accidents and plain mischief in the notebook's own Python code; it is not a security boundary against
a student who sets out to escape it (native code could), which a course server should add by running
the grader in a container.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError
from .exercises.catalog import CHAPTERS, Exercise, exercises_of
from .progress import progress_bar
from .student import checker_cells

__all__ = ["grade", "grade_notebook", "gradebook_csv", "SANDBOX_SOURCE", "DEFAULT_CELL_TIMEOUT",
           "DEFAULT_TIMEOUT"]

DEFAULT_CELL_TIMEOUT, DEFAULT_TIMEOUT = 120.0, 900.0
MANUAL = "graded by hand: the teacher's edition gives a model answer and a rubric"

# Run in the submission's kernel before its first cell. Written against the standard library only and
# with every name it needs bound at install time, so later cells cannot rebind them.
SANDBOX_SOURCE = r'''
def _ddpm_nb_sandbox(root, work):
    import os, sys
    realpath, join, getcwd, fspath = os.path.realpath, os.path.join, os.getcwd, os.fspath
    root, work = realpath(root), realpath(work)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    Denied = PermissionError

    def where(path):
        if isinstance(path, int):
            return None  # an open file descriptor: checked when it was opened
        path = fspath(path)
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        return realpath(join(getcwd(), path))

    def inside(p):
        return p == root or p.startswith(root + os.sep)

    def may_change(path, what):
        p = where(path)
        if p is None:
            return
        if not inside(p):
            raise Denied(f"graded notebooks may only change files in their working folder: {what} {p} "
                         "was refused")

    def may_remove(path, what):
        p = where(path)
        if p is None:
            return
        may_change(p, what)
        if p in (root, work) or work.startswith(p + os.sep):
            raise Denied(f"graded notebooks may not remove their working folder ({what} {p} was refused)")

    processes = {"os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
                 "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill"}

    def hook(event, args):
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None))[:3]
            writes = (any(c in mode for c in "wax+") if isinstance(mode, str)
                      else bool((flags or 0) & write_flags))
            if writes and path is not None:
                may_change(path, "writing")
        elif event in ("os.remove", "os.rmdir", "shutil.rmtree"):
            may_remove(args[0], "removing")
        elif event == "os.rename":
            may_remove(args[0], "renaming")
            may_change(args[1], "renaming onto")
        elif event in ("os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.utime", "os.chflags",
                       "os.setxattr", "os.removexattr"):
            may_change(args[0], event.split(".")[1])
        elif event in ("os.symlink", "os.link", "shutil.copyfile", "shutil.copymode", "shutil.copystat"):
            may_change(args[1], event.split(".")[1])
        elif event in processes:
            raise Denied(f"graded notebooks may not start or signal processes ({event} was refused)")

    sys.addaudithook(hook)

_ddpm_nb_sandbox({root!r}, {work!r})
del _ddpm_nb_sandbox
'''


@dataclass
class CellRun:
    """What happened to one cell: its time, whether it was cut off, its error (ename, evalue)."""
    seconds: float = 0.0
    timed_out: bool = False
    error: tuple[str, str] | None = None
    ran: bool = False


@dataclass
class Submission:
    file: str
    student: str
    chapter: int | None
    problems: list[str] = field(default_factory=list)
    exercises: list[dict] = field(default_factory=list)

    def row(self) -> dict:
        auto = [e for e in self.exercises if e["points"] is not None]
        return {"file": self.file, "student": self.student,
                "chapter": CHAPTERS.get(self.chapter) if self.chapter else None,
                "points": sum(e["points"] for e in auto), "max_points": sum(e["max_points"] for e in auto),
                "manual_points": sum(e["max_points"] for e in self.exercises if e["points"] is None),
                "problems": self.problems, "exercises": self.exercises}


# ---------------------------------------------------------------------------------------------- reading


def _chapter_from_name(path: Path) -> int | None:
    for n, stem in CHAPTERS.items():
        if stem in path.name:
            return n
    return None


def _student_name(path: Path, chapter: int | None) -> str:
    """The student a file belongs to: "alice_01_markov.ipynb" -> alice; "alice/01_markov.ipynb" -> alice."""
    stem = path.stem
    if chapter:
        stem = stem.replace(CHAPTERS[chapter], "")
    stem = re.sub(r"^[\W_]+|[\W_]+$", "", stem)
    return stem or path.parent.name or path.stem


def _read(path: Path) -> tuple[dict | None, str | None]:
    """(notebook, None) or (None, why it is not one)."""
    try:
        nb = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"not a Jupyter notebook ({type(e).__name__}: {e})"
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        return None, "not a Jupyter notebook in nbformat 4"
    kinds = ("code", "markdown", "raw")
    if not all(isinstance(c, dict) and c.get("cell_type") in kinds for c in nb["cells"]):
        return None, "not a Jupyter notebook: a cell has no valid cell_type"
    return nb, None


def _grade_id(cell: dict) -> str | None:
    meta = cell.get("metadata")
    return (meta.get("nbgrader") or {}).get("grade_id") if isinstance(meta, dict) else None


def _find_cells(cells: list[dict], exercise: Exercise) -> tuple[int | None, int | None]:
    """(index of the checker cell, index of the answer cell) of `exercise` in the submission."""
    checker = next((i for i, c in enumerate(cells) if _grade_id(c) == f"check-{exercise.id}"), None)
    if checker is None:  # no nbgrader metadata (e.g. the book's own chapter): find the checker's line
        checker = next(iter(checker_cells(cells, exercise)), None)
    answer = next((i for i, c in enumerate(cells) if _grade_id(c) == f"answer-{exercise.id}"), None)
    return checker, answer


# ---------------------------------------------------------------------------------------------- running


def _kernel_env(root: Path) -> dict:
    """The kernel's environment: this one, with home, caches and temporary files inside `root`, the
    book's checkpoints and data where this package finds them, and no progress bars."""
    from .checkpoints import checkpoint_dir

    home = root / "home"
    for sub in ("tmp", "mpl", "ipython"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    try:  # matplotlib's font cache, so the kernel does not rebuild it
        import matplotlib

        for f in Path(matplotlib.get_cachedir()).glob("fontlist-*.json"):
            shutil.copy2(f, home / "mpl" / f.name)
    except Exception:
        pass
    env = dict(os.environ)
    env.update(HOME=str(home), TMPDIR=str(home / "tmp"), MPLCONFIGDIR=str(home / "mpl"),
               IPYTHONDIR=str(home / "ipython"), XDG_CACHE_HOME=str(home / "cache"),
               PYTHONDONTWRITEBYTECODE="1", TQDM_DISABLE="1", DDPM_NB_CHECKPOINTS=str(checkpoint_dir()))
    env.pop("MPLBACKEND", None)
    return env


def _execute(nb: dict, root: Path, work: Path, cell_timeout: float,
             timeout: float) -> tuple[dict, list[CellRun], str | None]:
    """Run `nb` (the sandbox cell first) in a fresh kernel in `work`; returns the executed notebook, one
    CellRun per cell, and why the run stopped early (None if every cell ran)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    node = nbformat.reads(json.dumps(nb), as_version=4)  # list sources joined, as nbclient expects
    runs = [CellRun() for _ in node.cells]
    started: dict[int, float] = {}

    def on_start(cell, cell_index):
        started[cell_index] = time.monotonic()

    def on_executed(cell, cell_index, execute_reply):
        run = runs[cell_index]
        run.ran, run.seconds = True, time.monotonic() - started.get(cell_index, time.monotonic())
        content = (execute_reply or {}).get("content", {})
        if content.get("status") == "error":
            run.error = (content.get("ename", "Error"), content.get("evalue", ""))
        run.timed_out = run.seconds >= cell_timeout and (run.error or ("",))[0] == "KeyboardInterrupt"

    client = NotebookClient(node, timeout=max(1, int(round(cell_timeout))), allow_errors=True,
                            interrupt_on_timeout=True, kernel_name="python3", startup_timeout=120,
                            record_timing=False, on_cell_start=on_start, on_cell_executed=on_executed,
                            resources={"metadata": {"path": str(work)}})
    stopped = None

    async def run():
        # the kernel's own log (e.g. its TCP warning) would clutter the grader's output: outputs come by ZMQ
        execution = client.async_execute(env=_kernel_env(root), stderr=subprocess.DEVNULL)
        await asyncio.wait_for(execution, timeout)

    try:
        asyncio.run(run())
    except asyncio.TimeoutError:
        stopped = f"the notebook ran past its {timeout:g} s limit and was stopped"
    except DeadKernelError:
        stopped = "the kernel died (out of memory, or the notebook ended its own process)"
    except Exception as e:  # the run must go on with the next submission
        stopped = f"the run stopped: {type(e).__name__}: {e}"
    finally:
        try:
            if client.km is not None:
                client.km.shutdown_kernel(now=True)
        except Exception:
            pass
    return node, runs, stopped


# ---------------------------------------------------------------------------------------------- scoring


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def _clean(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text).strip()


def _score(exercise: Exercise, cells: list, runs: list[CellRun], checker: int | None, answer: int | None,
           stopped: str | None, offset: int) -> dict:
    row = {"exercise": exercise.id, "points": 0, "max_points": exercise.points, "message": ""}
    if checker is None:
        row["message"] = (f"the checker cell of exercise {exercise.id} is missing from the submission "
                          f"(it reads {exercise.checker_source})")
        return row
    run = runs[checker + offset]
    notes = []
    if answer is not None and runs[answer + offset].timed_out:
        notes.append("the answer cell ran past the cell limit and was interrupted")
    elif answer is not None and runs[answer + offset].error:
        ename, evalue = runs[answer + offset].error
        if ename != "NotImplementedError":
            notes.append(f"the answer cell raised {ename}: {_clean(evalue)}")
    if not run.ran:
        row["message"] = f"not run: {stopped or 'the notebook stopped before this cell'}"
    elif run.timed_out:
        row["message"] = "the checker ran past the cell limit and was interrupted"
    elif run.error:
        ename, evalue = run.error
        row["message"] = _clean(evalue) if ename in ("ExerciseNotDone", "ExerciseWrong") \
            else f"{ename}: {_clean(evalue)}"
    else:
        row["points"] = exercise.points
        passed = [ln for ln in _stdout(cells[checker + offset]).splitlines() if ln.startswith("✓")]
        row["message"] = passed[-1] if passed else "passed"
    if notes and row["points"] == 0:
        row["message"] = f"{row['message']} ({'; '.join(notes)})"
    return row


def grade_notebook(path: Path, *, cell_timeout: float = DEFAULT_CELL_TIMEOUT,
                   timeout: float = DEFAULT_TIMEOUT) -> dict:
    """Grade one submission; never raises for what the submission does (that costs it points)."""
    path = Path(path)
    nb, why = _read(path)
    meta_chapter = ((nb or {}).get("metadata", {}).get("ddpm_nb") or {}).get("chapter") if nb else None
    chapter = meta_chapter if meta_chapter in CHAPTERS else _chapter_from_name(path)
    sub = Submission(str(path), _student_name(path, chapter), chapter)
    exercises = exercises_of(chapter) if chapter else []
    if nb is None or chapter is None:
        sub.problems.append(why or "not one of the book's chapters (its metadata and its name say neither "
                                   "which)")
        sub.exercises = [{"exercise": e.id, "points": 0 if e.checked else None, "max_points": e.points,
                          "message": "not graded: " + sub.problems[0]} for e in exercises]
        return sub.row()
    cells = list(nb["cells"])
    located = {e.id: _find_cells(cells, e) for e in exercises if e.checked}
    run_cells = []
    for i, c in enumerate(cells):
        c = json.loads(json.dumps(c))
        c.setdefault("metadata", {})
        if c["cell_type"] == "code":
            c["outputs"], c["execution_count"] = [], None
        for e in exercises:
            if e.checked and located[e.id][0] == i:
                c["source"] = e.grading_source
        run_cells.append(c)
    root = Path(tempfile.mkdtemp(prefix="ddpm-nb-grade-"))
    try:
        work = root / "work"
        work.mkdir()
        shutil.copyfile(path, work / path.name)
        sandbox = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                   "source": SANDBOX_SOURCE.replace("{root!r}", repr(str(root))).replace("{work!r}",
                                                                                     repr(str(work)))}
        run_nb = {**nb, "nbformat_minor": max(int(nb.get("nbformat_minor", 0)), 5),
                  "cells": [sandbox, *run_cells]}
        for k, c in enumerate(run_nb["cells"]):
            c["id"] = f"graded-{k}"
        executed, runs, stopped = _execute(run_nb, root, work, cell_timeout, timeout)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if runs[0].error:
        sub.problems.append(f"the grader's set-up cell failed ({runs[0].error[0]}): nothing was graded")
    if stopped:
        sub.problems.append(stopped)
    for i, run in enumerate(runs[1:]):
        if run.timed_out:
            sub.problems.append(f"cell {i + 1} ran past the {cell_timeout:g} s cell limit and was "
                                "interrupted")
        elif run.error and "graded notebooks may" in run.error[1]:
            sub.problems.append(f"cell {i + 1}: {_clean(run.error[1])}")
    for e in exercises:
        if e.checked:
            checker, answer = located[e.id]
            sub.exercises.append(_score(e, executed.cells, runs, checker, answer, stopped, 1))
        else:
            sub.exercises.append({"exercise": e.id, "points": None, "max_points": e.points,
                                  "message": MANUAL})
    return sub.row()


def _submissions(paths: list[str | Path]) -> list[Path]:
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"No submission at {p}: give notebook files or folders that hold them.")
    if not files:
        raise UserError("No submissions to grade: give notebook files, or folders that hold .ipynb files.")
    return files


def grade(paths: list[str | Path], *, cell_timeout: float = DEFAULT_CELL_TIMEOUT,
          timeout: float = DEFAULT_TIMEOUT, workers: int = 1, progress: bool = True) -> dict:
    """The gradebook of the submissions in `paths` (files, or folders searched for .ipynb files), in
    their order; `workers` kernels run at once (each submission still in its own kernel and folder)."""
    from concurrent.futures import ThreadPoolExecutor

    files = _submissions(paths)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UserError(f"workers must be a whole number >= 1, got {workers!r}.")
    bar = progress_bar(total=len(files), desc="grading", unit="notebook", disable=not progress)

    def one(f: Path) -> dict:
        row = grade_notebook(f, cell_timeout=cell_timeout, timeout=timeout)
        bar.update(1)
        return row

    with ThreadPoolExecutor(max_workers=workers) as pool:
        rows = list(pool.map(one, files))
    bar.close()
    return {"cell_timeout_s": cell_timeout, "timeout_s": timeout, "workers": workers, "submissions": rows}


def gradebook_csv(book: dict) -> str:
    """One row per (submission, exercise): file, student, chapter, exercise, points, max_points, message;
    each submission also gets a total row (exercise "total")."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["file", "student", "chapter", "exercise", "points", "max_points", "message"])
    for s in book["submissions"]:
        for e in s["exercises"]:
            w.writerow([s["file"], s["student"], s["chapter"], e["exercise"],
                        "" if e["points"] is None else e["points"], e["max_points"], e["message"]])
        w.writerow([s["file"], s["student"], s["chapter"], "total", s["points"], s["max_points"],
                    "; ".join(s["problems"])])
    return out.getvalue()
