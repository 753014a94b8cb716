"""Chapter 6's models: NoProp-DT and the same blocks chained and trained by back-propagation."""

from __future__ import annotations

from dataclasses import replace

from ..data.fashion_mnist import load_fashion_mnist, to_model_range
from ..noprop import BackpropChain, NoPropDT, train_noprop
from ..train import TrainConfig
from .base import Recipe, fit_with_loss
from .ddpm import cross_entropy

__all__ = ["NETS", "RECIPES"]

NETS = {"NoPropDT": NoPropDT, "BackpropChain": BackpropChain}


def _labelled():
    train = load_fashion_mnist("train")
    return to_model_range(train.images), train.labels


# Fashion-MNIST, book split, train part.
_NOPROP = TrainConfig(steps=1200, batch_size=128, lr=2e-3, weight_decay=1e-4, warmup=80, min_lr_ratio=0.0,
                      grad_clip=None, ema_decay=0.995, seed=0, ckpt_every=50, log_every=20)
_QUICK = replace(_NOPROP, steps=4, warmup=1, ckpt_every=2, batch_size=16)

RECIPES = (
    Recipe(name="noprop",
           what="NoProp-DT on Fashion-MNIST (book split, train part): T = 10 blocks, each trained on its own "
                "loss with its own AdamW, one-hot class embeddings, cosine schedule in NoProp's convention",
           config={"net": "NoPropDT", "net_config": {"T": 10, "classes": 10, "embed": "onehot",
                                                     "embed_dim": None, "schedule": "cosine", "eta": 1.0,
                                                     "width": 128},
                   "objective": "noprop", "data": "fashion-mnist-labelled"},
           train=_NOPROP, quick=_QUICK, data=_labelled, fit=train_noprop),
    Recipe(name="noprop-backprop",
           what="The same T = 10 blocks chained (z_t = z_(t-1) + block_t(z_(t-1), x)) and trained end to end "
                "by back-propagation with cross-entropy, on Fashion-MNIST (book split, train part)",
           config={"net": "BackpropChain", "net_config": {"T": 10, "classes": 10, "width": 128},
                   "objective": "cross_entropy", "data": "fashion-mnist-labelled"},
           train=replace(_NOPROP, steps=600, warmup=40), quick=_QUICK, data=_labelled,
           fit=fit_with_loss(cross_entropy)),
)
