"""The book's trained models, one recipe each: what `ddpm-nb train NAME` runs and the chapters load.

A recipe names the network, the schedule, the data and the training configuration. The committed
checkpoint `checkpoints/NAME.pt` holds the EMA weights and the recipe's config; `load(NAME)` rebuilds
the model from it. Sizes: `quick` for tests, `full` for the committed checkpoints (and Colab).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from .elbo import l_simple
from .nets import ImageClassifier, MLPDenoiser, UNet2D, VPrediction
from .samplers import Denoiser
from .schedules import alpha_bar, beta_schedule
from .train import TrainConfig

__all__ = [
    "RECIPES", "Recipe", "get_recipe", "build", "checkpoint_path", "checkpoint_dir", "denoiser_from", "load",
    "checkpoint_info",
]



def checkpoint_dir() -> Path:
    """The book's `checkpoints/` folder: $DDPM_NB_CHECKPOINTS, else the checkout this package runs from,
    else the book folder above the notebooks (cwd/..), else the Colab clone (~/ddpm-book)."""
    import os

    candidates = [Path(os.environ["DDPM_NB_CHECKPOINTS"])] if os.environ.get("DDPM_NB_CHECKPOINTS") else []
    candidates += [Path(__file__).resolve().parents[1] / "checkpoints", Path.cwd().parent / "checkpoints",
                   Path.cwd() / "checkpoints", Path.home() / "ddpm-book" / "checkpoints"]
    for folder in candidates:
        if (folder / "MANIFEST.md").is_file():
            return folder
    return candidates[0] if os.environ.get("DDPM_NB_CHECKPOINTS") else Path.cwd() / "checkpoints"


@dataclass(frozen=True)
class Recipe:
    """Everything needed to train and rebuild one of the book's models."""

    name: str
    what: str
    config: dict  # {"net": ..., "net_config": {...}, "schedule": {"kind", "T"}, "data": ...}
    train: TrainConfig
    quick: TrainConfig
    # fit(model, data, cfg, *, device, state_path, desc) -> TrainResult; None: the book's `train` loop
    fit: Callable | None = None

    def data(self) -> Callable | torch.Tensor:
        return _DATA[self.config["data"]]()

    def loss(self) -> Callable:
        if self.config.get("objective") == "cross_entropy":
            def ce(model: nn.Module, batch, generator: torch.Generator) -> torch.Tensor:
                images, labels = batch
                return nn.functional.cross_entropy(model(images), labels)

            return ce
        beta = schedule_of(self.config)

        t_power = self.config.get("t_power", 1.0)
        # v-prediction: the network's ε is σ_t x_t + α_t v̂, and ‖ε - ε̂‖² = ᾱ_t ‖v - v̂‖², so the
        # v-loss of Salimans & Ho (2022) is L_simple weighted by 1 / ᾱ_t.
        weights = None
        if _prediction(self.config) == "v":
            schedule = self.config["schedule"]
            weights = (1 / alpha_bar(beta_schedule(schedule["kind"], schedule["T"]))).float()

        def loss_fn(model: nn.Module, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            return l_simple(model, batch, beta.to(batch), generator=generator, t_power=t_power,
                            weights=weights)

        return loss_fn


def schedule_of(config: dict) -> torch.Tensor:
    return beta_schedule(config["schedule"]["kind"], config["schedule"]["T"], dtype=torch.float32)


def build(config: dict) -> nn.Module:
    """The network described by a recipe config (as stored in a checkpoint)."""
    nets = {"MLPDenoiser": MLPDenoiser, "UNet2D": UNet2D, "ImageClassifier": ImageClassifier}
    nets.update(_noprop_nets())
    if config.get("kind") == "pusht-policy":  # chapter 5: a UNet1D with its normalisers (ddpm_nb.policy)
        from .policy import PolicyModel

        return PolicyModel(config).float()
    if config.get("net") not in nets:
        raise ValueError(f"Unknown network {config.get('net')!r} in the config: one of {', '.join(nets)}.")
    net = nets[config["net"]](**config["net_config"]).float()  # float32 whatever the default dtype
    if _prediction(config) == "v":
        net = VPrediction(net, beta_schedule(config["schedule"]["kind"], config["schedule"]["T"]))
    return net


def _prediction(config: dict) -> str:
    """What the network outputs: "eps" (the default) or "v" (wrapped by VPrediction into an ε)."""
    prediction = config.get("prediction", "eps")
    if prediction not in ("eps", "v"):
        raise ValueError(f"Unknown prediction {prediction!r} in the config: one of eps, v.")
    return prediction


def denoiser_from(model: nn.Module, config: dict) -> Denoiser:
    """Pair a trained network with the schedule it was trained on (float64 schedule math)."""
    return Denoiser(model, beta_schedule(config["schedule"]["kind"], config["schedule"]["T"]))


def _toy2d():
    from .data.toy2d import sample_toy2d

    return lambda n, generator: sample_toy2d("8gaussians", n, generator=generator)


def _fashion_mnist():
    from .data.fashion_mnist import load_fashion_mnist, to_model_range

    return to_model_range(load_fashion_mnist("train").images)


def _fashion_mnist_labelled():
    from .data.fashion_mnist import load_fashion_mnist, to_model_range

    train = load_fashion_mnist("train")
    return to_model_range(train.images), train.labels


_DATA = {"8gaussians": _toy2d, "fashion-mnist": _fashion_mnist,
         "fashion-mnist-labelled": _fashion_mnist_labelled}

_2D = TrainConfig(steps=20000, batch_size=1024, lr=1e-3, weight_decay=0.0, warmup=500, min_lr_ratio=0.01,
                  grad_clip=1.0, ema_decay=0.999, seed=0, ckpt_every=2000, log_every=100)
_IMG = TrainConfig(steps=9000, batch_size=64, lr=1e-3, weight_decay=0.0, warmup=500, min_lr_ratio=0.05,
                   grad_clip=1.0, ema_decay=0.999, seed=0, ckpt_every=500, log_every=50)

_CLS = TrainConfig(steps=3000, batch_size=128, lr=2e-3, weight_decay=1e-4, warmup=200, min_lr_ratio=0.0,
                   grad_clip=None, ema_decay=0.999, seed=0, ckpt_every=1000, log_every=50)

RECIPES = {
    "ddpm-2d": Recipe(
        name="ddpm-2d",
        what="MLP v-predictor (called as an ε-predictor) on the 8-Gaussian mixture (chapters 2-4), "
             "linear schedule, T = 1000",
        config={"net": "MLPDenoiser", "net_config": {"dim": 2, "width": 256, "depth": 4, "emb_dim": 64},
                "prediction": "v", "schedule": {"kind": "linear", "T": 1000}, "data": "8gaussians"},
        train=_2D, quick=replace(_2D, steps=300, warmup=30, ckpt_every=100)),
    "ddpm-images": Recipe(
        name="ddpm-images",
        what="UNet ε-predictor on Fashion-MNIST (book split, train part), cosine schedule, T = 1000",
        config={"net": "UNet2D", "net_config": {"channels": 1, "base": 16, "mults": [1, 2, 4], "blocks": 2,
                                                "attention": True, "dropout": 0.0, "emb_dim": 64},
                "schedule": {"kind": "cosine", "T": 1000}, "data": "fashion-mnist"},
        train=_IMG, quick=replace(_IMG, steps=20, warmup=2, ckpt_every=10)),
    "fashion-classifier": Recipe(
        name="fashion-classifier",
        what="CNN classifier of Fashion-MNIST (book split, train part): the judge of chapter 3's samples",
        config={"net": "ImageClassifier", "net_config": {"classes": 10, "width": 16, "dropout": 0.25},
                "objective": "cross_entropy", "data": "fashion-mnist-labelled"},
        train=_CLS, quick=replace(_CLS, steps=20, warmup=2, ckpt_every=10)),
}


def _noprop_nets() -> dict:
    from .noprop import BackpropChain, NoPropDT

    return {"NoPropDT": NoPropDT, "BackpropChain": BackpropChain}


def _fit_noprop(model, data, cfg, **kw):
    from .noprop import train_noprop

    return train_noprop(model, data, cfg, **kw)


# Chapter 6: NoProp-DT and the same blocks trained end to end (Fashion-MNIST, book split, train part).
_NOPROP = TrainConfig(steps=1200, batch_size=128, lr=2e-3, weight_decay=1e-4, warmup=80, min_lr_ratio=0.0,
                      grad_clip=None, ema_decay=0.995, seed=0, ckpt_every=50, log_every=20)
RECIPES["noprop"] = Recipe(
    name="noprop",
    what="NoProp-DT on Fashion-MNIST (book split, train part): T = 10 blocks, each trained on its own "
         "loss with its own AdamW, one-hot class embeddings, cosine schedule in NoProp's convention",
    config={"net": "NoPropDT", "net_config": {"T": 10, "classes": 10, "embed": "onehot", "embed_dim": None,
                                              "schedule": "cosine", "eta": 1.0, "width": 128},
            "objective": "noprop", "data": "fashion-mnist-labelled"},
    train=_NOPROP, quick=replace(_NOPROP, steps=4, warmup=1, ckpt_every=2, batch_size=16), fit=_fit_noprop)
RECIPES["noprop-backprop"] = Recipe(
    name="noprop-backprop",
    what="The same T = 10 blocks chained (z_t = z_(t-1) + block_t(z_(t-1), x)) and trained end to end by "
         "back-propagation with cross-entropy, on Fashion-MNIST (book split, train part)",
    config={"net": "BackpropChain", "net_config": {"T": 10, "classes": 10, "width": 128},
            "objective": "cross_entropy", "data": "fashion-mnist-labelled"},
    train=replace(_NOPROP, steps=600, warmup=40),
    quick=replace(_NOPROP, steps=4, warmup=1, ckpt_every=2, batch_size=16))


def _pusht():
    from .data.pusht import load_pusht

    return load_pusht()


def _fit_pusht(model, data, cfg, **kw):
    from .pusht_train import fit_policy

    return fit_policy(model, data, cfg, **kw)


# Chapter 5: Diffusion Policy on PushT (state observations) and its MSE regression baseline; the same
# 1-D UNet (ddpm_nb.pusht_train.recipe_config gives these configs back; a test checks they agree).
_DATA["pusht"] = _pusht
_PUSHT = TrainConfig(steps=12000, batch_size=64, lr=1e-3, weight_decay=0.0, warmup=500, min_lr_ratio=0.0,
                     grad_clip=1.0, ema_decay=0.999, seed=0, ckpt_every=500, log_every=100)
_PUSHT_NET = {"action_dim": 2, "obs_dim": 6, "obs_horizon": 2, "down_dims": [32, 64, 128], "kernel": 5,
              "groups": 8, "step_dim": 64}
RECIPES["pusht"] = Recipe(
    name="pusht",
    what="Diffusion Policy on PushT (state observations, sin/cos angle; 186 training episodes): 1-D UNet "
         "ε-predictor of 16-step action chunks given 2 observations, cosine schedule, T = 100",
    config={"kind": "pusht-policy", "objective": "diffusion", "features": "sincos",
            "net": {**_PUSHT_NET, "time_input": True}, "schedule": {"kind": "cosine", "T": 100},
            "data": "pusht"},
    train=_PUSHT, quick=replace(_PUSHT, steps=20, warmup=2, ckpt_every=10, log_every=5), fit=_fit_pusht)
RECIPES["pusht-bc"] = Recipe(
    name="pusht-bc",
    what="The MSE regression baseline on PushT: the same 1-D UNet without a step input maps 2 "
         "observations to the 16-step action chunk directly",
    config={"kind": "pusht-policy", "objective": "regression", "features": "sincos",
            "net": {**_PUSHT_NET, "time_input": False}, "data": "pusht"},
    train=replace(_PUSHT, steps=4000), quick=replace(_PUSHT, steps=20, warmup=2, ckpt_every=10, log_every=5),
    fit=_fit_pusht)


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"Unknown model {name!r}: choose one of {', '.join(RECIPES)}.")
    return RECIPES[name]


def checkpoint_path(name: str) -> Path:
    """Where the committed checkpoint of recipe `name` lives."""
    return checkpoint_dir() / f"{get_recipe(name).name}.pt"


def load(name: str, *, train: bool = False, device: str | None = None) -> nn.Module:
    """The trained network of recipe `name`: the committed checkpoint, or (train=True) a fresh full run.

    This is the chapters' `load_or_train`: the site and CI load `checkpoints/NAME.pt`; a Colab reader
    sets TRAIN = True and retrains at full size on the GPU (the file is then overwritten locally).
    """
    from .config import pick_device
    from .train import train as run
    from .weights import load_or_train

    recipe = get_recipe(name)
    dev = pick_device(device)
    path = checkpoint_path(name)
    if not train and not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}: set TRAIN = True to train {name} "
                                f"({recipe.train.steps} steps), or restore checkpoints/ from the repository.")

    def train_fn():
        torch.manual_seed(recipe.train.seed)
        if recipe.fit is not None:
            return recipe.fit(build(recipe.config), recipe.data(), recipe.train, device=dev, desc=name)
        return run(build(recipe.config), recipe.loss(), recipe.data(), recipe.train, device=dev, desc=name)

    expect = {k: recipe.config[k] for k in ("net", "data", "schedule", "objective") if k in recipe.config}
    return load_or_train(path, build, train_fn, config=recipe.config, train=train, expect=expect,
                         map_location=dev)


def checkpoint_info(name: str) -> dict:
    """What the committed checkpoint of `name` says about itself: its meta, path, size and sha256."""
    from .weights import file_sha256

    path = checkpoint_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}: run `ddpm-nb train {name}` first.")
    meta = torch.load(path, map_location="cpu", weights_only=True)["meta"]
    return {**meta, "path": str(path), "bytes": path.stat().st_size, "sha256": file_sha256(path)}
