"""Training windows of the PushT demonstrations and the min-max normaliser (Chi et al. 2023).

A training example is a window of the policy's horizons (Chi et al. 2023, sec. 3.1 and fig. 3):
T_o = 2 observations, T_p = 16 predicted actions starting at the first observation, of which T_a = 8
are executed from the current (last observed) step on. Windows are cut inside one episode and padded
at its edges by repeating the first or last step (`window_index`). Every 10th episode is held out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.pusht import PushTData
from ..errors import UserError
from .geometry import KEYPOINTS

Tensor = torch.Tensor

__all__ = ["OBS_HORIZON", "PRED_HORIZON", "ACTION_HORIZON", "VAL_EVERY", "FEATURES", "split_episodes",
           "window_index", "make_windows", "state_features", "MinMax", "Windows", "prepare"]

OBS_HORIZON, PRED_HORIZON, ACTION_HORIZON = 2, 16, 8  # T_o, T_p, T_a of Chi et al. 2023 (PushT, state)
FEATURES = {"state": 5, "sincos": 6, "keypoints": 20}  # observation features -> width (state_features)
VAL_EVERY = 10  # episode i is held out for validation when i % VAL_EVERY == VAL_EVERY - 1


def split_episodes(n_episodes: int, every: int = VAL_EVERY) -> tuple[list[int], list[int]]:
    """(train, validation) episode indices: every `every`-th episode (i % every == every - 1) is held out."""
    if n_episodes < 1 or every < 2:
        raise UserError(f"Need at least one episode and every >= 2, got {n_episodes} and {every}.")
    val = [i for i in range(n_episodes) if i % every == every - 1]
    return [i for i in range(n_episodes) if i % every != every - 1], val


def window_index(episode_ends: torch.Tensor, episodes: list[int] | None = None, *,
                 obs_horizon: int = OBS_HORIZON, pred_horizon: int = PRED_HORIZON,
                 action_horizon: int = ACTION_HORIZON) -> torch.Tensor:
    """Row indices of every training window: (W, pred_horizon) int64, each row inside one episode.

    A window covers steps s .. s + T_p - 1 of its episode (L steps), with s from -(T_o - 1) to
    L - T_p + T_a - 1: max(L - T_p + T_o + T_a - 1, 1) windows. Its observations are rows 0 .. T_o - 1,
    the current step is row T_o - 1, the executed actions rows T_o - 1 .. T_o + T_a - 2 (always inside
    the episode), all T_p rows are the predicted actions. Steps before 0 or after L - 1 are clamped:
    the edges are padded by repeating the first or last step (as in Chi et al. 2023's sequence sampler).
    episodes: which episodes (default all), in that order.
    """
    if not 1 <= obs_horizon <= pred_horizon or not 1 <= action_horizon <= pred_horizon - obs_horizon + 1:
        raise UserError(f"Need 1 <= obs_horizon <= pred_horizon and 1 <= action_horizon <= pred_horizon - "
                        f"obs_horizon + 1, got {obs_horizon}, {pred_horizon}, {action_horizon}.")
    ends = episode_ends.tolist()
    starts = [0] + ends[:-1]
    episodes = range(len(ends)) if episodes is None else episodes
    offsets = torch.arange(pred_horizon)
    rows = []
    for e in episodes:
        if not 0 <= e < len(ends):
            raise UserError(f"Episode {e} does not exist: there are {len(ends)}.")
        length = ends[e] - starts[e]
        first = -(obs_horizon - 1)
        s = torch.arange(first, max(length - pred_horizon + action_horizon, first + 1))
        rows.append(starts[e] + (s[:, None] + offsets[None, :]).clamp(0, length - 1))
    return torch.cat(rows) if rows else torch.empty(0, pred_horizon, dtype=torch.long)


def make_windows(obs: torch.Tensor, action: torch.Tensor, index: torch.Tensor,
                 obs_horizon: int = OBS_HORIZON) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather windows: obs (N, D) and action (N, A) rows, index (W, T_p) -> ((W, T_o, D), (W, T_p, A))."""
    if index.dim() != 2 or index.shape[1] < obs_horizon:
        raise UserError(f"index must be (W, T_p) with T_p >= {obs_horizon}, got {tuple(index.shape)}.")
    return obs[index[:, :obs_horizon]], action[index]


def state_features(state: torch.Tensor, kind: str = "state") -> torch.Tensor:
    """What the network sees of a state (..., 5): 'state' as is (..., 5); 'sincos' (..., 6) = agent x, y,
    block x, y, sin θ, cos θ, which has no jump where the angle wraps from 2π to 0; 'keypoints' (..., 20)
    = agent x, y and the block's 9 keypoints (x, y) in pixels (`geometry.KEYPOINTS` placed by the pose),
    the observation of Diffusion Policy's keypoint PushT: every coordinate moves smoothly with the pose."""
    if kind not in FEATURES:
        raise UserError(f"Unknown observation features {kind!r}: choose one of {', '.join(FEATURES)}.")
    if state.shape[-1:] != (5,):
        raise UserError(f"A PushT state has 5 numbers (agent x, y, block x, y, angle), got shape "
                        f"{tuple(state.shape)}.")
    if kind == "state":
        return state
    if kind == "keypoints":
        local = torch.as_tensor(KEYPOINTS, dtype=state.dtype, device=state.device)  # (9, 2)
        c, s = state[..., 4:5].cos(), state[..., 4:5].sin()  # (..., 1): world = pose + R(θ) local
        x = state[..., 2:3] + c * local[:, 0] - s * local[:, 1]
        y = state[..., 3:4] + s * local[:, 0] + c * local[:, 1]
        return torch.cat([state[..., :2], torch.stack([x, y], dim=-1).flatten(-2)], dim=-1)
    return torch.cat([state[..., :4], state[..., 4:].sin(), state[..., 4:].cos()], dim=-1)


@dataclass(frozen=True)
class MinMax:
    """Min-max normaliser to [-1, 1] per feature: y = 2 (x - low) / (high - low) - 1 (Chi et al. 2023).

    low, high: (D,) float32. A feature with high - low < 1e-6 (constant) is only shifted to 0.
    Fit it on training rows only; store it with `state_dict()` (a plain dict of tensors).
    """

    low: torch.Tensor
    high: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor) -> MinMax:
        """The normaliser of x (N, D) or (N, ..., D): per last-dimension feature min and max."""
        if x.dim() < 2 or x.shape[0] == 0:
            raise UserError(f"Fit the normaliser on at least one row (N, D), got {tuple(x.shape)}.")
        flat = x.reshape(-1, x.shape[-1]).float()
        return cls(flat.min(0).values, flat.max(0).values)

    def _scale_offset(self) -> tuple[torch.Tensor, torch.Tensor]:
        span = self.high - self.low
        ok = span >= 1e-6
        scale = torch.where(ok, 2.0 / span.clamp(min=1e-6), torch.ones_like(span))
        offset = torch.where(ok, -1.0 - scale * self.low, -(self.high + self.low) / 2)
        return scale, offset

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[-1:] != self.low.shape:
            raise UserError(f"The normaliser has {self.low.shape[0]} features but x has shape "
                            f"{tuple(x.shape)}.")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., D) in data units -> (..., D), the fitted range mapped onto [-1, 1]."""
        self._check(x)
        scale, offset = self._scale_offset()
        return x * scale.to(x) + offset.to(x)

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        """The inverse of `encode`: y (..., D) -> data units."""
        self._check(y)
        scale, offset = self._scale_offset()
        return (y - offset.to(y)) / scale.to(y)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"low": self.low.detach().cpu().clone(), "high": self.high.detach().cpu().clone()}

    @classmethod
    def from_state_dict(cls, state: dict) -> MinMax:
        """Rebuild from `state_dict()`; a dict without matching (D,) tensors 'low' and 'high' is refused."""
        low, high = state.get("low") if isinstance(state, dict) else None, \
            state.get("high") if isinstance(state, dict) else None
        if not (isinstance(low, torch.Tensor) and isinstance(high, torch.Tensor) and low.dim() == 1
                and low.shape == high.shape and bool((high >= low).all())):
            raise UserError("A normaliser state must be {'low': (D,), 'high': (D,)} tensors with "
                            "high >= low.")
        return cls(low.float(), high.float())


@dataclass
class Windows:
    """Normalised training and validation windows and the normalisers fitted on the training episodes.

    train_obs (W, T_o, D), train_act (W, T_p, 2); val_obs, val_act likewise; obs_norm, act_norm: MinMax;
    train_episodes, val_episodes: the episode indices.
    """

    train_obs: Tensor
    train_act: Tensor
    val_obs: Tensor
    val_act: Tensor
    obs_norm: MinMax
    act_norm: MinMax
    train_episodes: list[int]
    val_episodes: list[int]


def prepare(data: PushTData, features: str = "sincos") -> Windows:
    """Split the episodes, fit the normalisers on the training episodes' rows only, cut the windows."""
    train_eps, val_eps = split_episodes(data.episodes)
    obs = state_features(data.state, features)
    rows = torch.cat([torch.arange(data.episode(e).start, data.episode(e).stop) for e in train_eps])
    obs_norm, act_norm = MinMax.fit(obs[rows]), MinMax.fit(data.action[rows])
    obs, act = obs_norm.encode(obs), act_norm.encode(data.action)
    to, ta = make_windows(obs, act, window_index(data.episode_ends, train_eps))
    vo, va = make_windows(obs, act, window_index(data.episode_ends, val_eps))
    return Windows(to, ta, vo, va, obs_norm, act_norm, train_eps, val_eps)
