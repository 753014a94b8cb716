"""The package's architecture, checked: no import cycle, no private name crossing modules, the plain
name lists agree with the registries, and the command line starts without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "ddpm_nb"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(package: Path = PACKAGE) -> tuple[dict[str, set[str]], list[str]]:
    """Module -> the ddpm_nb modules it imports (at any depth of the file, function bodies included),
    and the private names imported from another module."""
    modules = {_module_name(p): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    private: list[str] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(name, path.name == "__init__.py", node)
                targets = []
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    targets.append(sub if sub in modules else source)
                    hidden = alias.name.startswith("_") and not alias.name.startswith("__")
                    if hidden and source.startswith("ddpm_nb") and source != name:
                        private.append(f"{name} imports {alias.name} from {source}")
            else:
                continue
            for target in targets:
                # importing ddpm_nb.a.b runs ddpm_nb.a's __init__ too: a real dependency
                while target and target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != name:
                    graph[name].add(target)
    return graph, private


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path of modules, first = last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt == "ddpm_nb":  # the lazy top-level __init__ imports nothing at import time
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_inside_the_package():
    graph, _ = import_graph()
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_the_cycle_finder_finds_a_cycle(tmp_path):
    pkg = tmp_path / "ddpm_nb"
    (pkg / "policy").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "recipes.py").write_text("def f():\n    from .policy import model\n")
    (pkg / "policy" / "__init__.py").write_text("")
    (pkg / "policy" / "model.py").write_text("from ..recipes import f\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        graph, _ = import_graph(pkg)
    finally:
        ROOT = saved
    assert find_cycle(graph) is not None


def test_no_private_name_is_imported_from_another_module():
    _, private = import_graph()
    assert not private, "\n".join(private)


def test_the_plain_name_lists_match_the_registries():
    from ddpm_nb import bench, names, recipes, samplers
    from ddpm_nb.policy import evaluation

    assert names.SAMPLERS == tuple(samplers.SAMPLERS)
    assert names.RECIPES == tuple(recipes.RECIPES)
    assert names.BENCHMARKS == tuple(bench.BENCHMARKS)
    assert names.POLICIES == tuple(evaluation.POLICIES)


def test_help_and_argument_errors_never_import_torch():
    code = ("import sys; from ddpm_nb.cli import main\n"
            "for argv in (['--help'], ['train', '--help'], ['train', 'nope'],\n"
            "             ['eval', 'pusht', '--seed', '-5'], ['bench', 'samplers', '--nfe', 'x']):\n"
            "    main(argv)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_ddpm_nb_help_starts_in_under_a_second():
    exe = Path(sys.executable).with_name("ddpm-nb")
    if not exe.is_file():
        pytest.skip("the ddpm-nb console script is not installed beside this Python")
    best = min(_timed([str(exe), "--help"]) for _ in range(3))
    assert best < 1.0, f"ddpm-nb --help took {best:.2f} s"


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True, timeout=60)
    return time.perf_counter() - start


def test_import_ddpm_nb_is_lazy():
    code = "import sys, ddpm_nb; assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_every_public_name_resolves():
    import ddpm_nb

    for name in ddpm_nb.__all__:
        assert getattr(ddpm_nb, name) is not None, name
    with pytest.raises(AttributeError):
        ddpm_nb.no_such_name  # noqa: B018
