"""Shared fixtures: the repository root and notebook helpers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def load_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def cell_source(cell: dict) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def use_folders(monkeypatch, data: Path | None, cache: Path) -> None:
    """Point the data loaders at `data` (None: no DDPM_NB_DATA at all) and the cache at `cache`."""
    if data is None:
        monkeypatch.delenv("DDPM_NB_DATA", raising=False)
    else:
        monkeypatch.setenv("DDPM_NB_DATA", str(data))
    monkeypatch.setenv("DDPM_NB_CACHE", str(cache))
