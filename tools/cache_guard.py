"""Sphinx extension: re-execute every notebook when the ddpm_nb package or a checkpoint changes.

Jupyter Book's execution cache keys each notebook on its own code cells only. The chapters run
code from `ddpm_nb` and load `checkpoints/`, so a change there must invalidate the cache too:
on `config-inited` we hash those files and wipe the cache when the hash differs from the stamp.
Loaded through `sphinx.local_extensions` in `_config.yml`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

STAMP = "ddpm_nb.sha256"
WATCHED = ("ddpm_nb", "checkpoints")


def tree_hash(root: Path, folders=WATCHED) -> str:
    """sha256 over the relative paths and bytes of every file under `folders` (caches excluded)."""
    h = hashlib.sha256()
    for folder in folders:
        for p in sorted((root / folder).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
                h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def guard(cache: Path, root: Path) -> bool:
    """Wipe `cache` if the watched files or the quick mode changed since it was filled.

    Quick mode (DDPM_NB_QUICK, set by `make test`) changes what the notebooks compute, so a site
    built by `make book` must not reuse outputs executed in quick mode. Returns True if wiped.
    """
    quick = os.environ.get("DDPM_NB_QUICK", "0")
    digest = hashlib.sha256(f"{tree_hash(root)} quick={quick}".encode()).hexdigest()
    stamp = cache / STAMP
    wiped = False
    if cache.exists() and (not stamp.is_file() or stamp.read_text().strip() != digest):
        shutil.rmtree(cache)
        wiped = True
    cache.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n")
    return wiped


def _on_config_inited(app, config) -> None:
    from sphinx.util import logging

    path = getattr(config, "nb_execution_cache_path", "") or str(Path(app.outdir).parent / ".jupyter_cache")
    cache = Path(path) if Path(path).is_absolute() else Path(app.srcdir) / path
    if guard(cache, Path(app.srcdir)):
        logging.getLogger(__name__).info("ddpm_nb or checkpoints changed: notebooks will be re-executed")


def setup(app):
    app.connect("config-inited", _on_config_inited, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
