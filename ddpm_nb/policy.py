"""Diffusion Policy on PushT (Chi et al., RSS 2023): the trained model, the planners, the controller.

- `PolicyModel`: a `UNet1D` with the min-max normalisers of observations and actions as buffers, so a
  checkpoint (`save_policy` / `load_policy`, read with weights_only=True) holds everything a planner needs.
- `DiffusionPlanner`: observation window -> a chunk of T_p actions by reverse diffusion, with any sampler
  of `ddpm_nb.samplers` (DDIM in a few steps, or ancestral DDPM through all T steps).
- `RegressionPlanner`: the same backbone trained to output the chunk directly (MSE baseline).
- `RecedingHorizonPolicy`: keeps the last T_o observations, plans T_p actions, executes T_a, re-plans
  (Chi et al. 2023, sec. 3.1, "closed-loop action-sequence prediction").
Evaluation on the gym-pusht environment is in `ddpm_nb.pusht_eval`.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .data.pusht import ACTION_HORIZON, FEATURES, OBS_HORIZON, PRED_HORIZON, MinMax, state_features
from .nets.unet1d import UNet1D
from .pusht_eval import evaluate, make_env, rollout  # re-exported: the chapter imports one module
from .samplers import Denoiser, continuous_timesteps, get_sampler, timesteps
from .schedules import beta_schedule

__all__ = ["OBJECTIVES", "PolicyModel", "save_policy", "load_policy", "DiffusionPlanner", "RegressionPlanner",
           "RecedingHorizonPolicy", "POLICY_KIND", "evaluate", "make_env", "rollout", "POLICIES",
           "DEFAULT_SAMPLER", "default_first", "make_planner", "evaluate_checkpoint"]

POLICY_KIND = "pusht-policy"
OBJECTIVES = ("diffusion", "regression")
OBS_DIM = 5  # agent x, y, block x, y, block angle: gym-pusht's obs_type="state"
Tensor = torch.Tensor


class PolicyModel(nn.Module):
    """What is trained and saved: the network plus the normalisers (as buffers) and how to use them.

    config: {"kind": "pusht-policy", "objective": "diffusion" | "regression", "features": "state" |
    "sincos", "schedule": {"kind": "cosine", "T": 100} (diffusion only), "net": UNet1D's config}.
    Buffers obs_low/obs_high (D,) and act_low/act_high (A,) hold the min-max normalisers fitted on the
    training episodes (`set_normalizers`); they travel in the state_dict, hence in the checkpoint.
    """

    def __init__(self, config: dict):
        super().__init__()
        objective, features = config.get("objective"), config.get("features", "state")
        if config.get("kind") != POLICY_KIND or objective not in OBJECTIVES or features not in FEATURES:
            raise ValueError(f"Not a PushT policy config: need kind={POLICY_KIND!r}, objective in "
                             f"{OBJECTIVES}, "
                             f"features in {tuple(FEATURES)}; got {config!r}.")
        net_config = dict(config.get("net", {}))
        net_config.update(obs_dim=FEATURES[features], time_input=objective == "diffusion")
        self.net = UNet1D(**net_config)
        self.config = {**config, "net": self.net.config}
        if objective == "diffusion":
            schedule = config.get("schedule", {"kind": "cosine", "T": 100})
            self.config["schedule"] = dict(schedule)
            self.beta = beta_schedule(schedule["kind"], schedule["T"])  # float64, not a parameter
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


def save_policy(path: str | os.PathLike, model: PolicyModel, *, meta: dict | None = None) -> str:
    """Save a trained policy (pass the EMA model) with its config; atomic; returns the file's sha256."""
    from .weights import save_weights

    return save_weights(path, model, config=model.config, meta=meta)


def load_policy(path: str | os.PathLike, *, map_location: str | torch.device | None = None
                ) -> tuple[PolicyModel, dict]:
    """(model in eval mode, meta) from a `save_policy` file, read with weights_only=True.

    A missing file raises FileNotFoundError; a corrupt file, another kind of checkpoint, or weights that
    do not fit the config raise one ValueError saying so.
    """
    from .weights import load_weights

    return load_weights(path, PolicyModel, expect={"kind": POLICY_KIND}, map_location=map_location)


def _check_window(obs: Tensor, model: PolicyModel) -> Tensor:
    t_o = model.net.obs_horizon
    if not isinstance(obs, Tensor) or obs.shape != (t_o, OBS_DIM):
        shape = tuple(obs.shape) if isinstance(obs, Tensor) else type(obs).__name__
        raise ValueError(f"The planner needs the last {t_o} states as a ({t_o}, {OBS_DIM}) tensor, "
                         f"got {shape}.")
    return obs


class DiffusionPlanner:
    """Observation window (T_o, 5) -> action chunk (T_p, 2) by reverse diffusion (Chi et al. 2023, eq. 4).

    1. normalise the observed states, 2. draw x_T ~ N(0, I) of shape (1, T_p, A) from the planner's
    generator, 3. run `sampler` over `steps` steps with ε_θ(x, t | o), 4. clamp to [-1, 1] (the range of
    the normalised training actions) and map back to pixels. sampler: a name in ddpm_nb.samplers.SAMPLERS;
    'ddpm' always visits every step (steps must be None or `first`), 'ddim' and the others default to 10.
    first: the step the reverse process starts from with x ~ N(0, I) (default T). With the cosine schedule
    and T = 100, sqrt(ᾱ_100) = 5e-4, so the x0 predicted at t = 100 is ill-conditioned; sqrt(ᾱ_99) = 0.016.
    `reset(seed)` re-seeds the generator, so an episode's noise depends on its seed only.
    """

    def __init__(self, model: PolicyModel, sampler: str = "ddim", steps: int | None = None, *, seed: int = 0,
                 first: int | None = None):
        if model.objective != "diffusion":
            raise ValueError("DiffusionPlanner needs a diffusion policy; use RegressionPlanner for this one.")
        self.sample_fn = get_sampler(sampler)  # an unknown name is one ValueError listing the samplers
        T = model.beta.shape[0] - 1
        first = T if first is None else first
        if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= T:
            raise ValueError(f"first must be an integer step from 1 to T = {T}, got {first!r}.")
        if sampler == "ddpm" and steps not in (None, first):
            raise ValueError(f"Ancestral DDPM visits every one of the {first} steps: pass steps=None or "
                             f"{first}.")
        steps = first if sampler == "ddpm" else (10 if steps is None else steps)
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= first:
            raise ValueError(f"steps must be an integer from 1 to {first}, got {steps!r}.")
        self.model, self.sampler, self.steps, self.first = model, sampler, steps, first
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device=self.device)
        self.reset(seed)
        # the schedule up to `first`: a sampler then starts there (continuous solvers included)
        self._denoiser = Denoiser(self._eps, model.beta[: first + 1])
        self._obs: Tensor | None = None
        self.ts = self._grid()

    def _grid(self) -> list:
        if self.sampler == "ddpm":
            return list(range(self.first, 0, -1))
        if self.sampler == "ddim":
            return timesteps(self.first, self.steps)
        spacing = "logsnr" if self.sampler == "dpm_solver" else "time"
        return continuous_timesteps(self._denoiser, self.steps, spacing=spacing)

    def _eps(self, x: Tensor, t: Tensor) -> Tensor:
        return self.model(x, t, self._obs.expand(x.shape[0], -1, -1))

    def reset(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    @torch.no_grad()
    def sample(self, obs: Tensor, x: Tensor | None = None) -> Tensor:
        """Normalised observation windows (B, T_o, D) -> normalised action chunks (B, T_p, A) in [-1, 1].

        x: the starting noise x_T (B, T_p, A); default a fresh draw from the planner's generator (which
        a stochastic sampler also uses for its per-step noise).
        """
        self._obs = obs.to(self.device)
        shape = (obs.shape[0], PRED_HORIZON, self.model.net.action_dim)
        if x is None:
            x = torch.randn(shape, generator=self.generator, device=self.device)
        elif tuple(x.shape) != shape:
            raise ValueError(f"The starting noise x must have shape {shape} (B, T_p, A), "
                             f"got {tuple(x.shape)}.")
        else:
            x = x.to(self.device, torch.float32)
        extra = {"clip_x0": 1.0} if self.sampler in ("ddpm", "ddim") else {}
        return self.sample_fn(self._denoiser, x, self.ts, generator=self.generator, **extra).clamp(-1.0, 1.0)

    def __call__(self, obs: Tensor) -> Tensor:
        obs = _check_window(obs, self.model).to(self.device, torch.float32)
        return self.model.act_norm.decode(self.sample(self.model.encode_obs(obs).unsqueeze(0)))[0].cpu()


class RegressionPlanner:
    """Observation window (T_o, 5) -> action chunk (T_p, 2) in one forward pass (the MSE baseline)."""

    sampler, steps = "regression", 1

    def __init__(self, model: PolicyModel):
        if model.objective != "regression":
            raise ValueError("RegressionPlanner needs a regression policy; use DiffusionPlanner for it.")
        self.model = model
        self.device = next(model.parameters()).device

    def reset(self, seed: int) -> None:  # deterministic: nothing to seed
        pass

    @torch.no_grad()
    def sample(self, obs: Tensor) -> Tensor:
        """Normalised observation windows (B, T_o, D) -> normalised action chunks (B, T_p, A) in [-1, 1]."""
        x = torch.zeros(obs.shape[0], PRED_HORIZON, self.model.net.action_dim, device=self.device)
        return self.model(x, None, obs.to(self.device)).clamp(-1.0, 1.0)

    def __call__(self, obs: Tensor) -> Tensor:
        obs = _check_window(obs, self.model).to(self.device, torch.float32)
        return self.model.act_norm.decode(self.sample(self.model.encode_obs(obs).unsqueeze(0)))[0].cpu()


class RecedingHorizonPolicy:
    """obs (5,) -> action (2,): keeps the last T_o observations, plans T_p actions, executes T_a, re-plans.

    planner: any callable (T_o, 5) float32 tensor -> (T_p, 2) actions (a `DiffusionPlanner`, a
    `RegressionPlanner`, or a hand-written rule); if it has `reset(seed)` it is called by `reset`.
    At the start of an episode the first observation is repeated to fill the window. The executed
    actions are rows T_o - 1 .. T_o + T_a - 2 of the chunk: the chunk starts at the oldest observation,
    and the first action executed is the one for the current step (Chi et al. 2023, fig. 3).
    `plans` counts planner calls and `plan_seconds` the wall time spent in them (for plans per second).
    """

    def __init__(self, planner: Callable[[Tensor], Tensor], *, obs_horizon: int = OBS_HORIZON,
                 action_horizon: int = ACTION_HORIZON, obs_dim: int = OBS_DIM):
        if not callable(planner):
            raise ValueError(f"planner must be callable (obs window -> action chunk), "
                             f"got {type(planner).__name__}.")
        if obs_horizon < 1 or action_horizon < 1:
            raise ValueError(f"obs_horizon and action_horizon must be positive, "
                             f"got {obs_horizon}, {action_horizon}.")
        self.planner, self.obs_horizon, self.action_horizon, self.obs_dim = \
            planner, obs_horizon, action_horizon, obs_dim
        self.plans, self.plan_seconds = 0, 0.0
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Forget the episode (observations and queued actions); re-seed the planner if `seed` is given."""
        self.history: deque[Tensor] = deque(maxlen=self.obs_horizon)
        self.queue: deque[np.ndarray] = deque()
        if seed is not None and hasattr(self.planner, "reset"):
            self.planner.reset(seed)

    def _plan(self) -> None:
        window = torch.stack(list(self.history))
        start = time.perf_counter()
        chunk = self.planner(window)
        self.plan_seconds += time.perf_counter() - start
        self.plans += 1
        first = self.obs_horizon - 1
        if not isinstance(chunk, Tensor) or chunk.dim() != 2 or chunk.shape[0] < first + self.action_horizon:
            shape = tuple(chunk.shape) if isinstance(chunk, Tensor) else type(chunk).__name__
            raise ValueError(f"The planner must return an action chunk (T_p, A) tensor with T_p >= "
                             f"{first + self.action_horizon}, got {shape}.")
        self.queue.extend(chunk[first: first + self.action_horizon].double().numpy())

    def __call__(self, obs) -> np.ndarray:
        """The action (2,) float64 to take after observing `obs` (5,)."""
        obs = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        if obs.shape != (self.obs_dim,):
            raise ValueError(f"The policy takes one PushT state of shape ({self.obs_dim},) (agent x, y, "
                             f"block x, y, angle; gym-pusht with obs_type='state'), "
                             f"got shape {tuple(obs.shape)}.")
        if not torch.isfinite(obs).all():
            raise ValueError(f"The observation holds NaN or infinite values: {obs.tolist()}.")
        if not self.history:
            self.history.extend([obs] * self.obs_horizon)
        else:
            self.history.append(obs)
        if not self.queue:
            self._plan()
        return self.queue.popleft()



# What `ddpm-nb eval pusht --policy NAME` evaluates: NAME -> (recipe of the committed checkpoint, objective)
POLICIES = {"diffusion": ("pusht", "diffusion"), "bc": ("pusht-bc", "regression")}
DEFAULT_SAMPLER = ("ddim", 10)  # the chapter's planner: DDIM in 10 steps, from step T - 1 (default_first)


def default_first(sampler: str, T: int) -> int:
    """The step the reverse process starts from by default: T for ancestral DDPM (as in the paper), else
    T - 1, where sqrt(ᾱ_99) = 0.016 instead of 5e-4 (a deterministic solver's first x0 estimate from
    t = T divides by sqrt(ᾱ_T) and blows up)."""
    return T if sampler == "ddpm" else T - 1


def make_planner(model: PolicyModel, sampler: str | None = None, steps: int | None = None, *,
                 first: int | None = None, seed: int = 0) -> DiffusionPlanner | RegressionPlanner:
    """The planner of a trained policy: a `DiffusionPlanner` (default DDIM-10 from `default_first`) for a
    diffusion policy, a `RegressionPlanner` for the baseline (which takes no sampler, steps or first)."""
    if model.objective == "regression":
        if sampler is not None or steps is not None or first is not None:
            raise ValueError("The regression baseline predicts the chunk in one pass: it takes no sampler, "
                             "steps or first step.")
        return RegressionPlanner(model)
    if sampler is None:
        sampler, steps = DEFAULT_SAMPLER[0], (DEFAULT_SAMPLER[1] if steps is None else steps)
    get_sampler(sampler)  # an unknown name: one ValueError listing the samplers
    first = default_first(sampler, model.beta.shape[0] - 1) if first is None else first
    return DiffusionPlanner(model, sampler, steps, seed=seed, first=first)


def evaluate_checkpoint(policy: str = "diffusion", *, sampler: str | None = None, steps: int | None = None,
                        first: int | None = None, checkpoint: str | os.PathLike | None = None,
                        episodes: int = 50, seed: int = 100000, threads: int | None = 1,
                        progress: bool = True) -> dict:
    """`ddpm-nb eval pusht`: load a PushT policy checkpoint, wrap it in the receding-horizon controller
    and score it on seeds seed .. seed + episodes - 1 (`evaluate`).

    policy: "diffusion" or "bc" (the MSE baseline); checkpoint: default the committed one of its recipe
    (checkpoints/pusht.pt, checkpoints/pusht-bc.pt). sampler, steps, first: as for `make_planner`.
    Returns `evaluate`'s dict plus policy, first and seed.
    """
    from pathlib import Path

    from .recipes import checkpoint_path

    if policy not in POLICIES:
        raise ValueError(f"Unknown policy {policy!r}: choose one of {', '.join(POLICIES)}.")
    recipe, objective = POLICIES[policy]
    if sampler is not None:
        get_sampler(sampler)  # fail before loading anything
    path = Path(checkpoint) if checkpoint is not None else checkpoint_path(recipe)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}: run `ddpm-nb train {recipe}` first, or pass "
                                f"--checkpoint.")
    with torch.random.fork_rng():  # loading draws nothing, but keep the global RNG untouched anyway
        model, _ = load_policy(path, map_location="cpu")
    if model.objective != objective:
        raise ValueError(f"{path} holds a {model.objective} policy, not the {policy} one: pass the right "
                         f"--checkpoint or --policy.")
    planner = make_planner(model, sampler, steps, first=first)
    result = evaluate(RecedingHorizonPolicy(planner), episodes, seed=seed, checkpoint=path, threads=threads,
                      progress=progress)
    if checkpoint is None:  # the committed file: name it as the repository does, not by this machine's path
        result["checkpoint"] = f"checkpoints/{path.name}"
    return {"policy": policy, **result, "first": getattr(planner, "first", None), "seed": seed}
