"""The committed checkpoints: small, loadable with weights_only=True, made by a recorded command."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from ddpm_nb import recipes

CKPTS = sorted(p for p in (ROOT / "checkpoints").glob("*.pt") if not p.name.endswith(".state.pt"))


@pytest.mark.parametrize("path", CKPTS, ids=lambda p: p.name)
def test_checkpoint_is_small_and_says_how_it_was_made(path):
    assert path.stat().st_size <= 10 * 1024 * 1024, f"{path.name} is over 10 MB"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["meta"]["command"].startswith("ddpm-nb train ")
    assert ckpt["meta"]["seconds"] > 0 and ckpt["meta"]["steps"] > 0
    name = path.stem
    assert ckpt["config"] == recipes.get_recipe(name).config, f"{name}: config differs from its recipe"


def test_every_recipe_has_its_checkpoint():
    assert sorted(p.stem for p in CKPTS) == sorted(recipes.RECIPES)


def test_manifest_is_current():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "manifest.py"), "--check"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
