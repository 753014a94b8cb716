"""Every chapter and command runs on a GPU: checked on a simulated one, so no GPU is needed.

On Colab with a GPU, `nb.setup()` picks CUDA and `recipes.load` puts every model there; a cell that feeds
such a model a tensor made on the CPU stops with "Expected all tensors to be on the same device". Here
each chapter runs with the simulated accelerator of `fake_device.py` (the models on torch's meta
device, computing on the CPU), every cell must run to its end, and a tensor on the wrong device fails
the test, naming the cell and the line. To stay cheap (about 80 s for the six chapters, two kernels at
a time, on 2 cores), what a chapter asks `cfg.size(...)` for is cut further (sizes by 10, to no fewer
than 30; solver tolerances 10 times looser) and claims print without raising: this test checks where
tensors are, nbval checks the numbers. The commands run in this process, on the same simulation."""

from __future__ import annotations

import copy
import os
import re
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest
import torch
from conftest import NOTEBOOKS, ROOT
from fake_device import DEVICE, PATCH, DeviceError, OnDevice, simulated_accelerator
from nbclient import NotebookClient

SHARED_DATA = ROOT.parent / "shared" / "data"

# Run in each chapter's kernel after PATCH: smaller sizes, and claims that report instead of raising.
SMALL = """\
import ddpm_nb.checks as _checks, ddpm_nb.config as _config
_size = _config.Setup.size
def _small(self, quick, full):
    n = _size(self, quick, full)
    if isinstance(n, float) and 0 < n < 1e-2:  # a solver's tolerance: 10 times looser
        return 10 * n
    return n if isinstance(n, bool) or not isinstance(n, int) or n < 50 else max(30, n // 10)
_config.Setup.size = _small
def _soft(check):
    def soft(*args, **kwargs):
        try:
            check(*args, **kwargs)
        except _checks.ClaimFailed as e:
            print(f"(not checked at the device test's sizes) {e}")
    return soft
for _name in ("check_close", "check_true", "check_estimate"):
    fake_device.replace_everywhere(_checks, _name, _soft(getattr(_checks, _name)))
"""
# The last cell: how many device errors were raised, so that one a cell caught still fails the chapter.
COUNT = "print(len(fake_device.ERRORS))"


def _use_data(monkeypatch) -> None:
    if "DDPM_NB_DATA" not in os.environ:
        if not SHARED_DATA.is_dir():
            pytest.skip(f"the book reads its data sets from DDPM_NB_DATA (unset, and no {SHARED_DATA})")
        monkeypatch.setenv("DDPM_NB_DATA", str(SHARED_DATA))


def _setup_index(nb) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "nb.setup(" in c.source)


def run_simulated(path, nb=None) -> list[str]:
    """Execute the chapter at `path` (or the notebook `nb` in its place) on the simulated accelerator;
    return one line per cell that raised: its index in the chapter, the error, and where it came from."""
    nb = copy.deepcopy(nb) if nb is not None else nbformat.read(path, as_version=4)
    first = _setup_index(nb)
    nb.cells[first:first] = [nbformat.v4.new_code_cell(PATCH + SMALL)]
    nb.cells.append(nbformat.v4.new_code_cell(COUNT))
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    failures = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                where = f"cell {i - (i > first)}"
                failures.append(f"{path.name} {where}: {out.ename}: {out.evalue[:400]}\n" + _where(out))
    count = nb.cells[-1].get("outputs", [])
    raised = int(count[0]["text"]) if count and count[0]["output_type"] == "stream" else None
    shown = sum(f.split(": ")[1] == "DeviceError" for f in failures)
    if raised is None:
        failures.append(f"{path.name}: the last cell, which counts the device errors, did not run")
    elif raised > shown:
        failures.append(f"{path.name}: {raised - shown} device error(s) raised and caught inside a cell")
    return failures


def _where(error) -> str:
    """Where a cell's error came from: the cell's line, and the package's (each frame's header and
    its ---> line)."""
    lines = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error.traceback)).splitlines()
    frames, keep = [], False
    for line in lines:
        if line.startswith(("Cell In", "File ")):
            keep = line.startswith("Cell In") or "/ddpm_nb/" in line
            if keep:
                frames.append([line])
        elif keep and line.lstrip().startswith("--->"):
            frames[-1].append(line.strip())
    frames = frames[:1] + frames[1:][-3:]  # the cell's line, and the last three in the package
    return "\n".join("    " + " | ".join(frame) for frame in frames)


BROKEN = "03_ddpm: x_T on the CPU"
FIXED = "x_T = torch.randn(n2d, 2, generator=gen).to(model2d.device)"  # chapter 3, cell 9


def _broken_chapter_3():
    """Chapter 3 up to its DDPM cell, with x_T made on the CPU again, as it was before it was fixed."""
    nb = nbformat.read(ROOT / "notebooks" / "03_ddpm.ipynb", as_version=4)
    index = next((i for i, c in enumerate(nb.cells) if FIXED in c.source), None)
    assert index is not None, f"chapter 3 no longer has the line {FIXED!r}: choose another one here"
    nb.cells[index].source = nb.cells[index].source.replace(FIXED, FIXED.split(".to(")[0])
    nb.cells = nb.cells[:index + 1]
    return nb, index


@pytest.fixture(scope="module")
def runs(request):
    """The chapters of the selected tests, and the broken chapter 3, on the simulated accelerator:
    {name: failures}. Two kernels at a time, one torch thread each (this process only waits)."""
    selected = {item.originalname for item in request.session.items}
    wanted = {item.callspec.id for item in request.session.items
              if item.originalname == "test_the_chapter_runs_on_an_accelerator"}
    if "test_an_input_made_on_the_cpu_fails_the_chapter" in selected:
        wanted.add(BROKEN)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DDPM_NB_QUICK", "1")
        mp.setenv("TQDM_DISABLE", "1")
        mp.setenv("OMP_NUM_THREADS", "1")
        _use_data(mp)
        broken, _ = _broken_chapter_3()
        jobs = {p.stem: (p, None) for p in NOTEBOOKS}
        jobs[BROKEN] = (ROOT / "notebooks" / "03_ddpm.ipynb", broken)
        longest_first = sorted(wanted, key=lambda name: -COST.get(name, 100))
        with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
            done = {name: pool.submit(run_simulated, *jobs[name]) for name in longest_first}
        return {name: future.result() for name, future in done.items()}


COST = {"04_sde_ode": 60, "05_diffusion_policy": 30, "03_ddpm": 25, "02_elbo": 17, "06_noprop": 11,
        "01_markov": 7, BROKEN: 5}  # seconds, measured: the longest start first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_chapter_runs_on_an_accelerator(path, runs):
    failures = runs[path.stem]
    assert not failures, "On a GPU these cells would fail:\n" + "\n".join(failures)


def test_an_input_made_on_the_cpu_fails_the_chapter(runs):
    """The test can fail: chapter 3's x_T made on the CPU again, as it was, stops its DDPM cell."""
    _, index = _broken_chapter_3()
    failures = runs[BROKEN]
    assert failures and failures[0].startswith(
        f"03_ddpm.ipynb cell {index}: DeviceError: Expected all tensors to be on the same device"), failures


# ---------------------------------------------------------------------------------------------- the rules


def test_the_simulation_enforces_a_gpus_rules_and_computes_what_the_cpu_does():
    lin = torch.nn.Linear(3, 2)
    x = torch.randn(5, 3)
    want = lin(x)
    with simulated_accelerator() as errors:
        from ddpm_nb.config import pick_device

        assert pick_device() == DEVICE and pick_device("cpu") == torch.device("cpu")
        lin.to(pick_device())
        assert isinstance(lin.weight, OnDevice) and isinstance(lin.weight, torch.nn.Parameter)
        with pytest.raises(DeviceError, match="same device"):
            lin(x)
        got = lin(x.to(DEVICE))
        assert got.device == DEVICE and torch.equal(got.cpu(), want)  # real numbers, the CPU's
        with pytest.raises(DeviceError, match="generator"):
            torch.randn(3, generator=torch.Generator(), device=DEVICE)
        torch.randn(3, generator=torch.Generator(device=DEVICE), device=DEVICE)
        with pytest.raises(DeviceError, match="numpy"):
            got.numpy()
        assert isinstance(got.sum().item(), float) and f"{got.sum():.3f}" == f"{want.sum():.3f}"
        for _ in range(2):  # the second call takes the fast path: the inputs are still checked
            with torch.no_grad():
                assert torch.equal(lin(x.to(DEVICE)).cpu(), want.detach())
                with pytest.raises(DeviceError, match="same device"):
                    lin(x)
        assert len(errors) == 5
    assert torch.randn is not None and not isinstance(torch.zeros(1), OnDevice)


# ---------------------------------------------------------------------------------------------- commands


def test_the_commands_run_on_an_accelerator(tmp_path, monkeypatch, capsys):
    """`ddpm-nb train` (every recipe, 2 steps), `bench images`, `bench noprop` (on 64 test images) and
    `eval pusht` on the simulated accelerator. (`bench elbo`, `bench samplers` and `eval` load their
    models on the CPU by design: their numbers are the book's CPU numbers.)"""
    import ddpm_nb.bench.noprop as bench_noprop
    from ddpm_nb.cli import main
    from ddpm_nb.names import RECIPES

    _use_data(monkeypatch)
    split = bench_noprop.load_split

    def small_split(*args):
        x, y, name = split(*args)
        return x[:64], y[:64], name

    monkeypatch.setattr(bench_noprop, "load_split", small_split)
    commands = [["train", name, "--quick", "--steps", "2", "--out", str(tmp_path / f"{name}.pt")]
                for name in RECIPES]
    commands += [["bench", "images", "--samples", "2", "--steps", "2"],
                 ["bench", "noprop", "--batch-size", "2"], ["eval", "pusht", "--episodes", "1"]]
    threads = torch.get_num_threads()
    try:
        with simulated_accelerator() as errors:
            for command in commands:
                assert main(command) == 0, (command, capsys.readouterr().err)
        assert not errors
    finally:
        torch.set_num_threads(threads)  # eval sets one thread for the whole process
    out = capsys.readouterr().out
    assert out.count(f"2 steps on {DEVICE}") == len(RECIPES) and f'"device": "{DEVICE}"' in out


def test_the_simulation_leaves_no_trace():
    """After the simulation, a module first imported during it picks the real device again."""
    import sys

    import ddpm_nb.config as config

    sys.modules.pop("ddpm_nb.bench.noprop", None)
    with simulated_accelerator():
        import ddpm_nb.bench.noprop as late

        assert late.pick_device() == DEVICE
    assert late.pick_device() == config.pick_device() != DEVICE
    assert torch.Generator is torch._C.Generator and not isinstance(torch.zeros(1).to("cpu"), OnDevice)
