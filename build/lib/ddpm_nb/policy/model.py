"""The trained PushT policy: a 1-D conditional UNet with its normalisers, its config, its checkpoint."""

from __future__ import annotations

import os

import torch
from torch import nn

from ..checkpoints import load_weights, save_weights
from ..errors import UserError
from ..nets.unet1d import UNet1D
from ..schedules import schedule_from
from .windows import FEATURES, MinMax, state_features

__all__ = ["POLICY_KIND", "OBJECTIVES", "OBS_DIM", "PolicyModel", "save_policy", "load_policy",
           "policy_config", "recipe_config"]

POLICY_KIND = "pusht-policy"
OBJECTIVES = ("diffusion", "regression", "flow")
OBS_DIM = 5  # agent x, y, block x, y, block angle: gym-pusht's obs_type="state"
Tensor = torch.Tensor


class PolicyModel(nn.Module):
    """What is trained and saved: the network plus the normalisers (as buffers) and how to use them.

    config: {"kind": "pusht-policy", "objective": "diffusion" | "regression" | "flow", "features":
    "state" | "sincos", "schedule": {"kind": "cosine", "T": 100} (diffusion only), "flow": {"time_scale":
    100} (flow only: the network's step input is t·time_scale, t in [0, 1]), "net": UNet1D's config}.
    Buffers obs_low/obs_high (D,) and act_low/act_high (A,) hold the min-max normalisers fitted on the
    training episodes (`set_normalizers`); they travel in the state_dict, hence in the checkpoint.
    """

    def __init__(self, config: dict):
        super().__init__()
        objective, features = config.get("objective"), config.get("features", "state")
        if config.get("kind") != POLICY_KIND or objective not in OBJECTIVES or features not in FEATURES:
            raise UserError(f"Not a PushT policy config: need kind={POLICY_KIND!r}, objective in "
                            f"{OBJECTIVES}, "
                            f"features in {tuple(FEATURES)}; got {config!r}.")
        net_config = dict(config.get("net", {}))
        net_config.update(obs_dim=FEATURES[features], time_input=objective in ("diffusion", "flow"))
        self.net = UNet1D(**net_config)
        # each objective keeps its own settings only (a schedule means nothing to a flow policy)
        own = {"schedule": "diffusion", "flow": "flow"}
        self.config = {k: v for k, v in {**config, "net": self.net.config}.items()
                       if own.get(k, objective) == objective}
        if objective == "diffusion":
            schedule = config.get("schedule", {"kind": "cosine", "T": 100})
            self.config["schedule"] = dict(schedule)
            self.beta = schedule_from(schedule)  # float64, not a parameter
        if objective == "flow":
            self.config["flow"] = {"time_scale": float(config.get("flow", {}).get("time_scale", 100.0))}
        d, a = FEATURES[features], self.net.action_dim
        for name, size in (("obs_low", d), ("obs_high", d), ("act_low", a), ("act_high", a)):
            self.register_buffer(name, torch.zeros(size))

    @property
    def objective(self) -> str:
        return self.config["objective"]

    @property
    def obs_norm(self) -> MinMax:
        return MinMax(self.obs_low, self.obs_high)

    @property
    def act_norm(self) -> MinMax:
        return MinMax(self.act_low, self.act_high)

    def set_normalizers(self, obs: MinMax, act: MinMax) -> None:
        """Store the normalisers fitted on the training episodes (features of the states, actions)."""
        for name, value in (("obs_low", obs.low), ("obs_high", obs.high), ("act_low", act.low),
                            ("act_high", act.high)):
            getattr(self, name).copy_(value)

    def encode_obs(self, states: Tensor) -> Tensor:
        """Raw states (..., 5) -> normalised features (..., D), what the network is conditioned on."""
        return self.obs_norm.encode(state_features(states, self.config.get("features", "state")))

    def forward(self, x: Tensor, t: Tensor | None, obs: Tensor) -> Tensor:
        """The network: x (B, T_p, A), t (B,) or None, normalised obs (B, T_o, D) -> (B, T_p, A)."""
        return self.net(x, t, obs)

    def velocity(self, x: Tensor, t: Tensor, obs: Tensor) -> Tensor:
        """A flow policy's velocity v_θ(x_t, t | o): t (B,) in [0, 1], fed to the step input scaled."""
        if self.objective != "flow":
            raise UserError(f"velocity() is a flow policy's; this one is a {self.objective} policy.")
        return self.net(x, t * self.config["flow"]["time_scale"], obs)


def save_policy(path: str | os.PathLike, model: PolicyModel, *, meta: dict | None = None) -> str:
    """Save a trained policy (pass the EMA model) with its config; atomic; returns the file's sha256."""
    return save_weights(path, model, config=model.config, meta=meta)


def load_policy(path: str | os.PathLike, *, map_location: str | torch.device | None = None
                ) -> tuple[PolicyModel, dict]:
    """(model in eval mode, meta) from a `save_policy` file, read with weights_only=True.

    A missing file raises FileNotFoundError; a corrupt file, another kind of checkpoint, or weights that
    do not fit the config raise one ValueError saying so.
    """
    return load_weights(path, PolicyModel, expect={"kind": POLICY_KIND}, map_location=map_location)


def policy_config(objective: str = "diffusion", *, features: str = "sincos",
                  down_dims: tuple[int, ...] = (32, 64, 128), T: int = 100) -> dict:
    """The config of a PushT policy (what `PolicyModel` builds and a checkpoint stores)."""
    config = {"kind": POLICY_KIND, "objective": objective, "features": features,
              "net": {"down_dims": list(down_dims)}}
    if objective == "diffusion":
        config["schedule"] = {"kind": "cosine", "T": T}
    if objective == "flow":
        config["flow"] = {"time_scale": float(T)}
    return config


def recipe_config(objective: str = "diffusion", **kw) -> dict:
    """The config a committed PushT checkpoint stores: `policy_config` with the network's full arguments
    filled in (what `PolicyModel(config).config` gives back) and "data": "pusht" (for `ddpm_nb.recipes`).
    """
    return {**PolicyModel(policy_config(objective, **kw)).config, "data": "pusht"}
