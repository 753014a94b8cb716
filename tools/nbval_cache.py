"""pytest plugin: the notebooks nbval executes fill the book's execution cache, so each runs once.

`make test` runs nbval over every notebook, then builds the site with `execute_notebooks: cache`.
Loaded as `-p tools.nbval_cache --nbval-book=.`, this plugin records the kernel messages of every
cell nbval runs and replays them through nbclient's own message handler (the one a Jupyter Book
execution uses: clear_output, display updates, widget state), so the outputs are those the book
build would have produced. At the end of the session each notebook whose every code cell ran and
passed is written into the jupyter-cache named by `execute.cache` in the book's `_config.yml`,
under the stamp of tools/cache_guard.py (watched files + quick mode + TQDM_DISABLE). The site
build then finds those notebooks cached and executes none of them.

A notebook with a failing, skipped or raising cell is not stored, and a cached record for its
code is removed: the book build executes it itself and fails where it fails.
"""

from __future__ import annotations

import copy
import importlib.util
import time
from contextlib import suppress
from pathlib import Path
from queue import Empty

import nbformat
import pytest

_spec = importlib.util.spec_from_file_location("cache_guard", Path(__file__).with_name("cache_guard.py"))
cache_guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cache_guard)


def pytest_addoption(parser):
    parser.getgroup("nbval").addoption(
        "--nbval-book", metavar="DIR", default=None,
        help="store each notebook this run executes and passes in the execution cache of the "
             "Jupyter Book in DIR (its _config.yml), so that the book build does not run it again")


def pytest_configure(config):
    book = config.getoption("nbval_book")
    if book and (config.option.nbval or config.option.nbval_lax):
        config.pluginmanager.register(BookCache(Path(book).resolve()), "nbval-book-cache")


def book_cache_path(book: Path) -> Path | None:
    """The jupyter-cache folder of the book in `book`, or None if its notebooks are not cached."""
    import yaml

    execute = (yaml.safe_load((book / "_config.yml").read_text(encoding="utf-8")) or {}).get("execute") or {}
    if execute.get("execute_notebooks") != "cache":
        return None
    path = Path(execute.get("cache") or "_build/.jupyter_cache")
    return path if path.is_absolute() else book / path


class NotebookRun:
    """One notebook as nbval runs it, its outputs built the way nbclient builds them."""

    def __init__(self, path: Path, nb: nbformat.NotebookNode):
        from nbclient import NotebookClient

        self.path = path
        self.nb = copy.deepcopy(nb)
        self.code = [i for i, cell in enumerate(self.nb.cells) if cell.cell_type == "code"]
        for i in self.code:
            self.nb.cells[i].outputs = []
            self.nb.cells[i].execution_count = None
        self.client = NotebookClient(self.nb, record_timing=False)  # as jupyter-cache executes
        self.client.kc = _NoKernel()
        self.passed: set[int] = set()
        self.problems: list[str] = []
        self.language_info = None
        self.seconds = 0.0

    def replay(self, cell_num: int, msg_id: str, messages: list[dict]) -> None:
        """Build code cell `cell_num`'s outputs from the iopub messages of its execution."""
        from nbclient.exceptions import CellExecutionComplete

        index = self.code[cell_num]
        cell = self.nb.cells[index]
        cell.outputs = []
        self.client.clear_before_next_output = False
        for msg in messages:
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            try:
                self.client.process_message(msg, cell, index)
            except CellExecutionComplete:
                break

    def why_not(self) -> str | None:
        """Why this run cannot stand for a book execution, or None if it can."""
        if self.problems:
            return "; ".join(self.problems)
        missing = len(self.code) - len(self.passed)
        if missing:
            return f"{missing} code cell(s) not run"
        for n, i in enumerate(self.code):
            cell = self.nb.cells[i]
            if "skip-execution" in cell.metadata.get("tags", []):
                return f"cell {n} is tagged skip-execution (the book does not run it, nbval does)"
            if any(out.output_type == "error" for out in cell.outputs):
                return f"cell {n} raised (the book would stop there)"
        return None

    def executed_notebook(self) -> nbformat.NotebookNode:
        """The notebook as a book execution leaves it: counts 1, 2, ... (nbval runs without history)."""
        count = 0
        for i in self.code:
            cell = self.nb.cells[i]
            if not cell.source.strip():  # nbclient does not send empty cells
                cell.execution_count, cell.outputs = None, []
                continue
            count += 1
            cell.execution_count = count
            for out in cell.outputs:
                if out.output_type == "execute_result":
                    out.execution_count = count
        self.client.set_widgets_metadata()
        if self.language_info:
            self.nb.metadata["language_info"] = self.language_info
        nbformat.validate(self.nb)
        return self.nb


class _NoKernel:
    """nbclient's kernel client, for the replay: its Output-widget mimic diverts a widget's outputs
    into the widget state and syncs them back to the kernel. The cell ran already: send nothing."""

    class session:  # noqa: N801 - the attribute names of jupyter_client's KernelClient
        @staticmethod
        def msg(*args, **kwargs) -> dict:
            return {}

    class shell_channel:  # noqa: N801
        @staticmethod
        def send(msg) -> None:
            pass


def _language_info(kernel, timeout: float = 10) -> dict | None:
    """The kernel's language_info, as nbclient stores it in the notebook's metadata."""
    try:
        msg_id = kernel.kc.kernel_info()
        while True:
            msg = kernel.kc.get_shell_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg["content"].get("language_info")
    except Empty:
        return None


class BookCache:
    def __init__(self, book: Path):
        self.book = book
        self.cache = book_cache_path(book)
        self.stamp = cache_guard.digest(book)
        self.runs: dict[str, NotebookRun] = {}
        self.stored: list[str] = []
        self.left: list[str] = []

    def _run(self, item) -> NotebookRun:
        nbfile = item.parent
        if nbfile.nodeid not in self.runs:
            self.runs[nbfile.nodeid] = NotebookRun(Path(str(nbfile.fspath)), nbfile.nb)
        return self.runs[nbfile.nodeid]

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        from nbval.plugin import IPyNbCell

        if self.cache is None or not isinstance(item, IPyNbCell) or item.parent.kernel is None:
            yield
            return
        run, nbfile, kernel = self._run(item), item.parent, item.parent.kernel
        if run.language_info is None:
            run.language_info = _language_info(kernel)
        sent, messages = [], []
        execute, get_message = kernel.execute_cell_input, nbfile.get_kernel_message

        def execute_cell_input(*args, **kwargs):
            sent.append(execute(*args, **kwargs))
            return sent[-1]

        def get_kernel_message(*args, **kwargs):
            messages.append(get_message(*args, **kwargs))
            return messages[-1]

        kernel.execute_cell_input, nbfile.get_kernel_message = execute_cell_input, get_kernel_message
        start = time.perf_counter()
        try:
            yield
        finally:
            run.seconds += time.perf_counter() - start
            del kernel.execute_cell_input, nbfile.get_kernel_message
            try:
                if sent:
                    run.replay(item.cell_num, sent[0], messages)
            except Exception as exc:  # never fail nbval's test: only do not store this notebook
                run.problems.append(f"cell {item.cell_num}: no outputs ({type(exc).__name__}: {exc})")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        from nbval.plugin import IPyNbCell

        outcome = yield
        if self.cache is None or not isinstance(item, IPyNbCell):
            return
        report, run = outcome.get_result(), self._run(item)
        if report.failed or report.skipped or hasattr(report, "wasxfail"):
            run.problems.append(f"cell {item.cell_num} {report.when}: {report.outcome}")
        elif report.when == "call":
            run.passed.add(item.cell_num)

    def pytest_sessionfinish(self, session):
        if self.cache is None or not self.runs:
            return
        if cache_guard.digest(self.book) != self.stamp:
            self.left.append("all: ddpm_nb/, checkpoints/ or the environment changed during the run")
            return
        from jupyter_cache import get_cache
        from jupyter_cache.base import CacheBundleIn

        cache_guard.guard(self.cache, self.book)  # wipes a cache filled under another stamp
        cache = get_cache(str(self.cache))
        for run in self.runs.values():
            name = run.path.name
            reason = run.why_not()
            if reason is None:
                try:
                    cache.cache_notebook_bundle(
                        CacheBundleIn(run.executed_notebook(), str(run.path),
                                      data={"execution_seconds": run.seconds, "executed_by": "nbval"}),
                        check_validity=False, overwrite=True)
                    # The book looks the notebook up by the hash of its file's code cells.
                    cache.match_cache_notebook(nbformat.read(run.path, as_version=4))
                except Exception as exc:  # the book then executes it: slower, still correct
                    reason = f"not storable: {type(exc).__name__}: {exc}"
                else:
                    self.stored.append(name)
                    continue
            with suppress(KeyError):
                cache.remove_cache(cache.match_cache_notebook(run.nb).pk)
            self.left.append(f"{name}: {reason}")

    def pytest_terminal_summary(self, terminalreporter):
        if self.cache is None:
            terminalreporter.write_line("nbval-book: the book does not cache executions; nothing stored")
            return
        if not self.runs:
            return
        where = self.cache.relative_to(self.book) if self.cache.is_relative_to(self.book) else self.cache
        terminalreporter.write_line(
            f"nbval-book: {len(self.stored)} notebook(s) stored in {where} for the book build: "
            + (", ".join(sorted(self.stored)) or "none"))
        for line in self.left:
            terminalreporter.write_line(f"nbval-book: not stored (the book build will execute it): {line}")
