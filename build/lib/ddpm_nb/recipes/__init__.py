"""The book's trained models, one recipe each: what `ddpm-nb train NAME` runs and the chapters load.

A recipe (`base.Recipe`) names the network, the schedule, the data, the training configuration and
its fit; one module per family (`ddpm`: chapters 2-4, `pusht`: chapter 5, `noprop`: chapter 6). The
committed checkpoint `checkpoints/NAME.pt` holds the EMA weights and the recipe's config; `load(NAME)`
rebuilds the model from it. `fit(NAME, ...)` is the one training path of the command line and the
chapters' TRAIN = True.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from ..checkpoints import checkpoint_dir, checkpoint_meta, load_or_train, remedy
from ..config import pick_device
from ..errors import UserError
from ..samplers import Denoiser
from ..schedules import schedule_from
from ..train import TrainConfig, TrainResult
from . import ddpm, noprop, pusht
from .base import Recipe

__all__ = ["RECIPES", "Recipe", "get_recipe", "build", "checkpoint_path", "checkpoint_dir", "denoiser_from",
           "load", "fit", "train_config", "checkpoint_info"]

RECIPES: dict[str, Recipe] = {r.name: r for r in (*ddpm.RECIPES, *noprop.RECIPES, *pusht.RECIPES)}
_NETS = {**ddpm.NETS, **noprop.NETS}


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`; an unknown name is one UserError listing them."""
    if name not in RECIPES:
        raise UserError(f"Unknown model {name!r}: choose one of {', '.join(RECIPES)}.")
    return RECIPES[name]


def build(config: dict) -> nn.Module:
    """The network described by a recipe config (as stored in a checkpoint), untrained."""
    if config.get("kind") == pusht.POLICY_KIND:
        return pusht.build_policy(config)
    if config.get("net") in ddpm.NETS:
        return ddpm.build_net(config)
    if config.get("net") in noprop.NETS:
        return noprop.NETS[config["net"]](**config["net_config"]).float()
    raise UserError(f"Unknown network {config.get('net')!r} in the config: one of {', '.join(_NETS)}.")


def denoiser_from(model: nn.Module, config: dict) -> Denoiser:
    """Pair a trained network with the schedule it was trained on (float64 schedule math)."""
    return Denoiser(model, schedule_from(config["schedule"]))


def checkpoint_path(name: str) -> Path:
    """Where the committed checkpoint of recipe `name` lives."""
    return checkpoint_dir() / f"{get_recipe(name).name}.pt"


def train_config(name: str, *, quick: bool = False, steps: int | None = None) -> TrainConfig:
    """The training configuration of recipe `name`: full (the committed run) or quick (tests); `steps`
    shortens (or lengthens) a run and keeps its warm-up within it."""
    recipe = get_recipe(name)
    cfg = recipe.quick if quick else recipe.train
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise UserError(f"steps must be a positive whole number, got {steps!r}.")
        cfg = dataclasses.replace(cfg, steps=steps, warmup=min(cfg.warmup, steps // 10))
    return cfg


def fit(name: str, cfg: TrainConfig | None = None, *, device: str | torch.device | None = None,
        state_path=None, progress: bool = True, callback=None) -> tuple[nn.Module, TrainResult]:
    """Train recipe `name` from scratch (seeded by cfg.seed; resumable through `state_path`): the one
    training path of `ddpm-nb train` and of a chapter's TRAIN = True. Returns (fresh model, result);
    result.ema_model is what is saved."""
    recipe = get_recipe(name)
    cfg = recipe.train if cfg is None else cfg
    device = device if isinstance(device, torch.device) else pick_device(device)
    torch.manual_seed(cfg.seed)  # the initial weights
    model = build(recipe.config)
    result = recipe.fit(model, recipe.data(), cfg, device=device, state_path=state_path, desc=name,
                        progress=progress, callback=callback)
    return model, result


def load(name: str, *, train: bool = False, device: str | None = None) -> nn.Module:
    """The trained network of recipe `name`: the committed checkpoint, or (train=True) a fresh full run.

    This is the chapters' `load_or_train`: the site and CI load `checkpoints/NAME.pt`; a Colab reader
    sets TRAIN = True and retrains at full size on the GPU (the file is then overwritten locally).
    """
    recipe = get_recipe(name)
    dev = pick_device(device)
    path = checkpoint_path(name)
    if not train and not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}: {remedy(path)}.")
    expect = {k: recipe.config[k] for k in ("net", "data", "schedule", "objective") if k in recipe.config}
    return load_or_train(path, build, lambda: fit(name, device=dev)[1], config=recipe.config,
                         train=train, expect=expect, map_location=dev)


def checkpoint_info(name: str) -> dict:
    """What the committed checkpoint of `name` says about itself: its meta, path, size and sha256."""
    return checkpoint_meta(checkpoint_path(name))
