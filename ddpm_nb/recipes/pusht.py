"""Chapter 5's models: Diffusion Policy on PushT (state observations), its flow-matching twin and the MSE
regression baseline, all 1-D UNets (`ddpm_nb.policy.recipe_config` gives these configs back; a test checks
they agree)."""

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


# The regression baseline keeps the first chapter-5 run's settings (small UNet, sin/cos angle).
_BC = TrainConfig(steps=4000, batch_size=64, lr=1e-3, weight_decay=0.0, warmup=500, min_lr_ratio=0.0,
                  grad_clip=1.0, ema_decay=0.999, seed=0, ckpt_every=500, log_every=100)
_QUICK = replace(_BC, steps=20, warmup=2, ckpt_every=10, log_every=5)
_BC_NET = {"action_dim": 2, "obs_dim": 6, "obs_horizon": 2, "down_dims": [32, 64, 128], "kernel": 5,
           "groups": 8, "step_dim": 64}
# The diffusion and flow policies: one budget (36,000 steps of 64 windows, about 2 hours on one core
# each), keypoint observations (agent + the block's 9 keypoints), a wider UNet (2.5 M parameters).
_POLICY = replace(_BC, steps=36000, warmup=1000, ema_decay=0.9995, ckpt_every=1000, log_every=200)
_NET = {"action_dim": 2, "obs_dim": 20, "obs_horizon": 2, "down_dims": [48, 96, 192], "kernel": 5,
        "groups": 8, "step_dim": 64, "time_input": True}

RECIPES = (
    Recipe(name="pusht",
           what="Diffusion Policy on PushT (keypoint observations: agent + the block's 9 keypoints; 186 "
                "training episodes): 1-D UNet ε-predictor of 16-step action chunks given 2 observations, "
                "cosine schedule, T = 100",
           config={"kind": POLICY_KIND, "objective": "diffusion", "features": "keypoints", "net": _NET,
                   "schedule": {"kind": "cosine", "T": 100}, "data": "pusht"},
           train=_POLICY, quick=_QUICK, data=load_pusht, fit=fit_policy),
    Recipe(name="pusht-flow",
           what="A flow-matching policy on PushT (the objective of π0's action expert): the same UNet, "
                "observations, data and budget as `pusht`, regressing the velocity ε - a_0 of the straight "
                "path a_t = (1 - t) a_0 + t ε",
           config={"kind": POLICY_KIND, "objective": "flow", "features": "keypoints", "net": _NET,
                   "flow": {"time_scale": 100.0}, "data": "pusht"},
           train=_POLICY, quick=_QUICK, data=load_pusht, fit=fit_policy),
    Recipe(name="pusht-bc",
           what="The MSE regression baseline on PushT: a 1-D UNet without a step input maps 2 "
                "observations to the 16-step action chunk directly (the first chapter-5 run's settings: "
                "sin/cos observations, widths [32, 64, 128])",
           config={"kind": POLICY_KIND, "objective": "regression", "features": "sincos",
                   "net": {**_BC_NET, "time_input": False}, "data": "pusht"},
           train=_BC, quick=_QUICK, data=load_pusht, fit=fit_policy),
)
