"""Chapters 2-4's models: the 2-D MLP, the Fashion-MNIST UNet, and the classifier that judges it."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from ..data.fashion_mnist import load_fashion_mnist, to_model_range
from ..data.toy2d import sample_toy2d
from ..elbo import l_simple
from ..errors import UserError
from ..nets import ImageClassifier, MLPDenoiser, UNet2D, VPrediction
from ..schedules import alpha_bar, schedule_from
from ..train import TrainConfig
from .base import Recipe, fit_with_loss

__all__ = ["NETS", "RECIPES", "build_net", "prediction", "diffusion_loss", "cross_entropy"]

NETS = {"MLPDenoiser": MLPDenoiser, "UNet2D": UNet2D, "ImageClassifier": ImageClassifier}
PREDICTIONS = ("eps", "v")


def prediction(config: dict) -> str:
    """What the network outputs: "eps" (the default) or "v" (wrapped by VPrediction into an ε)."""
    value = config.get("prediction", "eps")
    if value not in PREDICTIONS:
        raise UserError(f"Unknown prediction {value!r} in the config: one of {', '.join(PREDICTIONS)}.")
    return value


def build_net(config: dict) -> nn.Module:
    """The network of a chapter 2-4 config; a v-network comes wrapped so that it is called as an ε one."""
    net = NETS[config["net"]](**config["net_config"]).float()  # float32 whatever the default dtype
    if prediction(config) == "v":
        net = VPrediction(net, schedule_from(config["schedule"]))
    return net


def diffusion_loss(config: dict):
    """L_simple on the config's schedule (float32 β, as the committed checkpoints were trained); for a
    v-network weighted by 1/ᾱ_t: ‖ε - ε̂‖² = ᾱ_t ‖v - v̂‖², the v-loss of Salimans & Ho (2022)."""
    beta = schedule_from(config["schedule"], dtype=torch.float32)
    t_power = config.get("t_power", 1.0)
    weights = None
    if prediction(config) == "v":
        weights = (1 / alpha_bar(schedule_from(config["schedule"]))).float()

    def loss(model: nn.Module, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return l_simple(model, batch, beta.to(batch), generator=generator, t_power=t_power, weights=weights)

    return loss


def cross_entropy(model: nn.Module, batch, generator: torch.Generator) -> torch.Tensor:
    """The classifier's loss on a batch (images, labels)."""
    images, labels = batch
    return nn.functional.cross_entropy(model(images), labels)


def _toy2d():
    return lambda n, generator: sample_toy2d("8gaussians", n, generator=generator)


def _fashion_mnist():
    return to_model_range(load_fashion_mnist("train").images)


def _fashion_mnist_labelled():
    train = load_fashion_mnist("train")
    return to_model_range(train.images), train.labels


_2D = TrainConfig(steps=20000, batch_size=1024, lr=1e-3, weight_decay=0.0, warmup=500, min_lr_ratio=0.01,
                  grad_clip=1.0, ema_decay=0.999, seed=0, ckpt_every=2000, log_every=100)
_IMG = TrainConfig(steps=9000, batch_size=64, lr=1e-3, weight_decay=0.0, warmup=500, min_lr_ratio=0.05,
                   grad_clip=1.0, ema_decay=0.999, seed=0, ckpt_every=500, log_every=50)
_CLS = TrainConfig(steps=3000, batch_size=128, lr=2e-3, weight_decay=1e-4, warmup=200, min_lr_ratio=0.0,
                   grad_clip=None, ema_decay=0.999, seed=0, ckpt_every=1000, log_every=50)

_2D_CONFIG = {"net": "MLPDenoiser", "net_config": {"dim": 2, "width": 256, "depth": 4, "emb_dim": 64},
              "prediction": "v", "schedule": {"kind": "linear", "T": 1000}, "data": "8gaussians"}
_IMG_CONFIG = {"net": "UNet2D", "net_config": {"channels": 1, "base": 16, "mults": [1, 2, 4], "blocks": 2,
                                               "attention": True, "dropout": 0.0, "emb_dim": 64},
               "schedule": {"kind": "cosine", "T": 1000}, "data": "fashion-mnist"}
_CLS_CONFIG = {"net": "ImageClassifier", "net_config": {"classes": 10, "width": 16, "dropout": 0.25},
               "objective": "cross_entropy", "data": "fashion-mnist-labelled"}

RECIPES = (
    Recipe(name="ddpm-2d",
           what="MLP v-predictor (called as an ε-predictor) on the 8-Gaussian mixture (chapters 2-4), "
                "linear schedule, T = 1000",
           config=_2D_CONFIG, train=_2D, quick=replace(_2D, steps=300, warmup=30, ckpt_every=100),
           data=_toy2d, fit=fit_with_loss(diffusion_loss(_2D_CONFIG))),
    Recipe(name="ddpm-images",
           what="UNet ε-predictor on Fashion-MNIST (book split, train part), cosine schedule, T = 1000",
           config=_IMG_CONFIG, train=_IMG, quick=replace(_IMG, steps=20, warmup=2, ckpt_every=10),
           data=_fashion_mnist, fit=fit_with_loss(diffusion_loss(_IMG_CONFIG))),
    Recipe(name="fashion-classifier",
           what="CNN classifier of Fashion-MNIST (book split, train part): the judge of chapter 3's samples",
           config=_CLS_CONFIG, train=_CLS, quick=replace(_CLS, steps=20, warmup=2, ckpt_every=10),
           data=_fashion_mnist_labelled, fit=fit_with_loss(cross_entropy)),
)
