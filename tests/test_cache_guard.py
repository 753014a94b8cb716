"""The build cache is wiped when ddpm_nb or a checkpoint changes, and kept otherwise."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import ROOT

spec = importlib.util.spec_from_file_location("cache_guard", ROOT / "tools" / "cache_guard.py")
cache_guard = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cache_guard)


def _tree(tmp_path):
    (tmp_path / "ddpm_nb").mkdir()
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "ddpm_nb" / "a.py").write_text("x = 1\n")
    return tmp_path


def test_cache_kept_while_nothing_changes(tmp_path):
    root = _tree(tmp_path)
    cache = root / "_build" / ".jupyter_cache"
    assert cache_guard.guard(cache, root) is False  # no cache yet: nothing to wipe
    (cache / "global.db").write_text("cached")
    assert cache_guard.guard(cache, root) is False
    assert (cache / "global.db").read_text() == "cached"


def test_cache_wiped_when_the_package_changes(tmp_path):
    root = _tree(tmp_path)
    cache = root / "_build" / ".jupyter_cache"
    cache_guard.guard(cache, root)
    (cache / "global.db").write_text("cached")
    (root / "ddpm_nb" / "a.py").write_text("x = 2\n")
    assert cache_guard.guard(cache, root) is True
    assert not (cache / "global.db").exists()


def test_cache_wiped_when_a_checkpoint_appears(tmp_path):
    root = _tree(tmp_path)
    cache = root / "_build" / ".jupyter_cache"
    cache_guard.guard(cache, root)
    (cache / "global.db").write_text("cached")
    (root / "checkpoints" / "m.pt").write_bytes(b"\x00\x01")
    assert cache_guard.guard(cache, root) is True


def test_cache_without_stamp_is_wiped(tmp_path):
    root = _tree(tmp_path)
    cache = root / "_build" / ".jupyter_cache"
    cache.mkdir(parents=True)
    (cache / "global.db").write_text("from an older build")
    assert cache_guard.guard(cache, root) is True


def test_hash_ignores_bytecode(tmp_path):
    root = _tree(tmp_path)
    h = cache_guard.tree_hash(root)
    (root / "ddpm_nb" / "__pycache__").mkdir()
    (root / "ddpm_nb" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    assert cache_guard.tree_hash(root) == h


@pytest.mark.parametrize("name, before, after", [("DDPM_NB_QUICK", "1", "0"), ("TQDM_DISABLE", "1", None)],
                         ids=["quick mode changes", "progress bars are switched on"])
def test_cache_wiped_when_the_environment_changes(tmp_path, monkeypatch, name, before, after):
    root = _tree(tmp_path)
    cache = root / "_build" / ".jupyter_cache"
    monkeypatch.setenv(name, before)
    cache_guard.guard(cache, root)
    (cache / "global.db").write_text(f"executed with {name}={before}")
    if after is None:
        monkeypatch.delenv(name)
    else:
        monkeypatch.setenv(name, after)
    assert cache_guard.guard(cache, root) is True


def test_pages_read_before_their_cached_execution_are_reread(tmp_path):
    import time

    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache, nb_path = tmp_path / ".jupyter_cache", tmp_path / "ch.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    nbformat.write(nb, nb_path)
    assert cache_guard.newer_executions(cache, {nb_path: 0.0}) == set()  # no cache at all
    before = time.time() - 1
    get_cache(str(cache)).cache_notebook_bundle(CacheBundleIn(nb, str(nb_path)), check_validity=False)
    after = time.time() + 1
    assert cache_guard.newer_executions(cache, {nb_path: before}) == {nb_path}  # stored by nbval, say
    assert cache_guard.newer_executions(cache, {nb_path: after}) == set()
