"""Chapter 5's models: Diffusion Policy on PushT (state observations) and its MSE regression baseline,
the same 1-D UNet (`ddpm_nb.policy.recipe_config` gives these configs back; a test checks they agree)."""

from __future__ import annotations

from dataclasses import replace

from ..data.pusht import load_pusht
from ..policy import POLICY_KIND, PolicyModel, fit_policy
from ..train import TrainConfig
from .base import Recipe

__all__ = ["RECIPES", "build_policy"]


def build_policy(config: dict) -> PolicyModel:
    """A PushT policy (UNet1D with its normalisers) from its config."""
    return PolicyModel(config).float()


_PUSHT = TrainConfig(steps=12000, batch_size=64, lr=1e-3, weight_decay=0.0, warmup=500, min_lr_ratio=0.0,
                     grad_clip=1.0, ema_decay=0.999, seed=0, ckpt_every=500, log_every=100)
_QUICK = replace(_PUSHT, steps=20, warmup=2, ckpt_every=10, log_every=5)
_NET = {"action_dim": 2, "obs_dim": 6, "obs_horizon": 2, "down_dims": [32, 64, 128], "kernel": 5,
        "groups": 8, "step_dim": 64}

RECIPES = (
    Recipe(name="pusht",
           what="Diffusion Policy on PushT (state observations, sin/cos angle; 186 training episodes): 1-D "
                "UNet ε-predictor of 16-step action chunks given 2 observations, cosine schedule, T = 100",
           config={"kind": POLICY_KIND, "objective": "diffusion", "features": "sincos",
                   "net": {**_NET, "time_input": True}, "schedule": {"kind": "cosine", "T": 100},
                   "data": "pusht"},
           train=_PUSHT, quick=_QUICK, data=load_pusht, fit=fit_policy),
    Recipe(name="pusht-bc",
           what="The MSE regression baseline on PushT: the same 1-D UNet without a step input maps 2 "
                "observations to the 16-step action chunk directly",
           config={"kind": POLICY_KIND, "objective": "regression", "features": "sincos",
                   "net": {**_NET, "time_input": False}, "data": "pusht"},
           train=replace(_PUSHT, steps=4000), quick=_QUICK, data=load_pusht, fit=fit_policy),
)
