"""Sphinx extension: re-execute every notebook when the ddpm_nb package or a checkpoint changes.

Jupyter Book's execution cache keys each notebook on its own code cells only. The chapters run
code from `ddpm_nb` and load `checkpoints/`, so a change there must invalidate the cache too:
on `config-inited` we hash those files and wipe the cache when the hash differs from the stamp.
Loaded through `sphinx.local_extensions` in `_config.yml`. The nbval run of `make test` fills the
same cache under the same stamp (tools/nbval_cache.py), so the site build does not execute again.
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


# What the notebooks print or compute depends on these too: quick mode (DDPM_NB_QUICK, set by
# `make test`) changes the computations, TQDM_DISABLE whether progress bars are drawn.
STAMPED_ENV = (("DDPM_NB_QUICK", "0"), ("TQDM_DISABLE", ""))


def digest(root: Path) -> str:
    """The stamp of a cache filled now: the watched files and the environment in STAMPED_ENV."""
    env = " ".join(f"{name}={os.environ.get(name, default)}" for name, default in STAMPED_ENV)
    return hashlib.sha256(f"{tree_hash(root)} {env}".encode()).hexdigest()


def guard(cache: Path, root: Path) -> bool:
    """Wipe `cache` if the watched files or the stamped environment changed since it was filled.

    A site built by `make book` must not reuse outputs executed in quick mode (or with progress
    bars drawn). Returns True if wiped.
    """
    stamp_now = digest(root)
    stamp = cache / STAMP
    wiped = False
    if cache.exists() and (not stamp.is_file() or stamp.read_text().strip() != stamp_now):
        shutil.rmtree(cache)
        wiped = True
    cache.mkdir(parents=True, exist_ok=True)
    stamp.write_text(stamp_now + "\n")
    return wiped


def newer_executions(cache: Path, read_at: dict[Path, float]) -> set[Path]:
    """The notebooks (of `read_at`: path -> when Sphinx last read its page, in seconds) that the
    cache holds an execution of made after that read: by the nbval run of `make test`, say."""
    from datetime import timezone

    from jupyter_cache import get_cache

    if not (cache / "global.db").is_file():
        return set()
    made = {}
    for record in get_cache(str(cache)).list_cache_records():
        created = record.created.replace(tzinfo=record.created.tzinfo or timezone.utc).timestamp()
        path = Path(record.uri).resolve()
        made[path] = max(made.get(path, 0.0), created)
    return {p for p, t in read_at.items() if made.get(p.resolve(), 0.0) > t}


def _cache_dir(app) -> Path:
    path = getattr(app.config, "nb_execution_cache_path", "")
    path = path or str(Path(app.outdir).parent / ".jupyter_cache")
    return Path(path) if Path(path).is_absolute() else Path(app.srcdir) / path


def _on_config_inited(app, config) -> None:
    from sphinx.util import logging

    app.ddpm_nb_cache_wiped = guard(_cache_dir(app), Path(app.srcdir))
    if app.ddpm_nb_cache_wiped:
        logging.getLogger(__name__).info("ddpm_nb, checkpoints or DDPM_NB_QUICK/TQDM_DISABLE changed: "
                                        "notebooks will be re-executed")


def _on_env_get_outdated(app, env, added, changed, removed) -> list[str]:
    """Sphinx re-reads a page only when its source changed: re-read the notebooks whose cached
    outputs are new (or, after a wipe, all of them), so the site shows the outputs in the cache."""
    notebooks = {d: Path(env.doc2path(d)) for d in env.all_docs if env.doc2path(d).endswith(".ipynb")}
    if getattr(app, "ddpm_nb_cache_wiped", False):
        return sorted(notebooks)
    read_at = {path: env.all_docs[d] / 1e6 for d, path in notebooks.items()}  # microseconds
    newer = newer_executions(_cache_dir(app), read_at)
    return sorted(d for d, path in notebooks.items() if path in newer)


def setup(app):
    app.connect("config-inited", _on_config_inited, priority=100)
    app.connect("env-get-outdated", _on_env_get_outdated)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
