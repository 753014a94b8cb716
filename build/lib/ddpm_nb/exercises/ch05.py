"""Checkers for chapter 5 (Diffusion Policy: the window sampler, the min-max normaliser, the receding
horizon; exercise 5.5's DDIM planner is checked in `ch05_planner`). The right answers are the package's
own: `window_index`, `MinMax`, `RecedingHorizonPolicy`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..policy.planners import RecedingHorizonPolicy
from ..policy.windows import MinMax, window_index
from ._core import ExerciseWrong, attempt, close, diagnose, expect_tensor, passed
from .ch05_planner import ANSWERS_55, check_ddim_planner

__all__ = ["ANSWERS", "check_episode_windows", "check_minmax", "check_receding_horizon", "check_ddim_planner"]

# The package's own answers to each exercise: an answer that is one of them, or calls one, is rejected.
ANSWERS: dict[str, tuple] = {
    "5.1": (window_index,),
    "5.2": (MinMax,),
    "5.3": (RecedingHorizonPolicy,),
    "5.5": ANSWERS_55,  # exercise 5.5 (build: a DDIM planner in the simulator) is checked in ch05_planner
}


# ---------------------------------------------------------------- 5.1 windows with padding

def _windows(length: int, t_o: int, t_p: int, t_a: int, first: int, last: int, pad: str) -> torch.Tensor:
    """Windows starting at s = first .. last - 1, out-of-range rows handled by `pad` (for the slips)."""
    s = torch.arange(first, max(last, first + 1))
    rows = s[:, None] + torch.arange(t_p)[None, :]
    if pad == "clamp":
        return rows.clamp(0, length - 1)
    if pad == "wrap":
        return rows % length
    if pad == "zero":  # the end padded with row 0 instead of the last row
        rows = rows.clamp(min=0)
        return torch.where(rows > length - 1, torch.zeros_like(rows), rows)
    return rows.clamp(max=length - 1)  # "none": row -1 left as it is at the start


def check_episode_windows(episode_windows: Callable) -> None:
    """Exercise 5.1: episode_windows(length, obs_horizon, pred_horizon, action_horizon) -> (W, T_p) rows."""
    for length, t_o, t_p, t_a in ((40, 2, 16, 8), (30, 3, 8, 4), (10, 2, 16, 8), (1, 2, 16, 8)):
        want = window_index(torch.tensor([length]), obs_horizon=t_o, pred_horizon=t_p, action_horizon=t_a)
        out = attempt("5.1", episode_windows, length, t_o, t_p, t_a, forbidden=ANSWERS["5.1"])
        if not isinstance(out, torch.Tensor) or out.dtype not in (torch.int64, torch.int32):
            kind = getattr(out, "dtype", type(out).__name__)
            raise ExerciseWrong(f"Exercise 5.1: return an integer torch.Tensor of row indices, got {kind}.")
        if out.dim() != 2 or out.shape[1] != t_p:
            raise ExerciseWrong(f"Exercise 5.1: return one row of T_p = {t_p} indices per window, shape "
                                f"(W, {t_p}); got {tuple(out.shape)} (length {length}, T_o {t_o}, "
                                f"T_a {t_a}).")
        first, last = -(t_o - 1), length - t_p + t_a
        if out.shape[0] != want.shape[0]:
            counts = {
                "The first window starts T_o - 1 steps before the episode (s = -(T_o - 1)), so that the "
                "first step gets a full observation window, padded by repeating step 0.":
                    max(last, 1) - 0,
                "The last window starts at s = L - T_p + T_a - 1: its T_a executed actions end on the last "
                "step, and the rest of the chunk is padded by repeating the last step.":
                    max(length - t_p + 1, first + 1) - first,
                "Pad at both ends: s runs from -(T_o - 1) to L - T_p + T_a - 1.": max(length - t_p + 1, 1),
            }
            for message, w in counts.items():
                if out.shape[0] == w:
                    raise ExerciseWrong(f"Exercise 5.1: {out.shape[0]} windows for an episode of {length} "
                                        f"steps, expected {want.shape[0]}. {message}")
            raise ExerciseWrong(f"Exercise 5.1: {out.shape[0]} windows for an episode of {length} steps "
                                f"(T_o {t_o}, T_p {t_p}, T_a {t_a}), expected {want.shape[0]} = "
                                f"max(L - T_p + T_o + T_a - 1, 1).")
        out = out.long()
        diagnose("5.1", out, want, {
            "Pad by repeating the first and last steps (clamp the rows to 0 .. L - 1), not by wrapping "
            "around.":
                _windows(length, t_o, t_p, t_a, first, last, "wrap"),
            "Pad the end with the episode's last step (row L - 1), not with row 0.":
                _windows(length, t_o, t_p, t_a, first, last, "zero"),
            "A row before the start must become 0: index -1 would read the last step (or another episode).":
                _windows(length, t_o, t_p, t_a, first, last, "none"),
        }, hint="rows = (s + k).clamp(0, L - 1) for k = 0 .. T_p - 1 and s = -(T_o - 1) .. "
                "L - T_p + T_a - 1.", tol=0)
    passed("5.1", "every window of an episode, padded by repetition at both edges.")


# ---------------------------------------------------------------- 5.2 the min-max normaliser

def _minmax_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(52)
    x = torch.rand(64, 4, generator=g, dtype=torch.float64) * torch.tensor([512.0, 300.0, 6.0, 1.0]) \
        + torch.tensor([0.0, 100.0, -3.0, 0.0], dtype=torch.float64)
    x[:, 3] = 5.0  # a constant feature
    return x, x.min(0).values, x.max(0).values


def check_minmax(encode: Callable, decode: Callable) -> None:
    """Exercise 5.2: encode(x, low, high) maps [low, high] onto [-1, 1] per feature (a constant feature is
    shifted to 0); decode(y, low, high) is its inverse."""
    x, low, high = _minmax_case()
    norm = MinMax(low, high)
    want = norm.encode(x)
    got = expect_tensor("5.2", attempt("5.2", encode, x.clone(), low.clone(), high.clone(),
                                        forbidden=ANSWERS["5.2"]), x.shape)
    if not torch.isfinite(got).all():
        raise ExerciseWrong("Exercise 5.2: encode returned NaN or inf. Feature 3 is constant (high = low): "
                            "divide only where high - low >= 1e-6 and map a constant feature to 0, "
                            "e.g. with torch.where.")
    span = (high - low).clamp(min=1e-6)
    ok = high - low >= 1e-6
    diagnose("5.2", got[:, ok], want[:, ok], {
        "That maps onto [0, 1]: the policy's range is [-1, 1], y = 2 (x - low) / (high - low) - 1.":
            ((x - low) / span)[:, ok],
        "Subtract 1 after scaling by 2: y = 2 (x - low) / (high - low) - 1.": (2 * (x - low) / span)[:, ok],
        "Scale by high - low, not by high.": (2 * (x - low) / high - 1)[:, ok],
    }, hint="y = 2 (x - low) / (high - low) - 1 for each feature (last dimension).")
    if not close(got[:, ~ok], want[:, ~ok]):
        raise ExerciseWrong("Exercise 5.2: a constant feature (high - low < 1e-6) must be shifted to 0: "
                            "y = x - (high + low) / 2.")
    y = want.clone()
    out = attempt("5.2", decode, y, low.clone(), high.clone(), forbidden=ANSWERS["5.2"])
    back = expect_tensor("5.2", out, x.shape)
    diagnose("5.2", back, x, {
        "decode must undo both steps: x = (y + 1) (high - low) / 2 + low; you forgot the / 2.":
            torch.where(ok, (y + 1) * span + low, x),
        "decode must undo the - 1 too: x = (y + 1) (high - low) / 2 + low.":
            torch.where(ok, y * span / 2 + low, x),
        "That is encode again: decode is its inverse, x = (y + 1) (high - low) / 2 + low.": norm.encode(y),
    }, hint="Solve y = 2 (x - low) / (high - low) - 1 for x; a constant feature comes back as "
            "(high + low) / 2.", tol=1e-6)
    passed("5.2", "the min-max normaliser maps the data range onto [-1, 1] and back.")


# ---------------------------------------------------------------- 5.3 the receding horizon

class _Planner:
    """A hand-written planner: remembers each window; action k of plan n is (100 n + k, window[-1, 0])."""

    def __init__(self, t_p: int):
        self.t_p, self.windows = t_p, []

    def __call__(self, window: torch.Tensor) -> torch.Tensor:
        self.windows.append(torch.as_tensor(window, dtype=torch.float64).clone())
        n, k = len(self.windows) - 1, torch.arange(self.t_p, dtype=torch.float64)
        last = float(torch.as_tensor(window)[-1, 0]) if torch.as_tensor(window).dim() == 2 else -1.0
        return torch.stack([100 * n + k, torch.full_like(k, last)], dim=1)


def _step_fn():
    state = {"t": 0}

    def step(action: torch.Tensor) -> torch.Tensor:
        state["t"] += 1
        a = torch.as_tensor(np.asarray(action), dtype=torch.float64).reshape(-1)
        return torch.tensor([a[0].item() + 0.5, a[1].item(), float(state["t"])], dtype=torch.float64)

    return step


def _reference(n_steps: int, t_o: int, t_a: int, t_p: int, obs0: torch.Tensor):
    planner, step = _Planner(t_p), _step_fn()
    policy = RecedingHorizonPolicy(planner, obs_horizon=t_o, action_horizon=t_a, obs_dim=obs0.shape[0])
    obs, actions = obs0, []
    for _ in range(n_steps):
        a = torch.as_tensor(policy(obs), dtype=torch.float64)
        actions.append(a)
        obs = step(a)
    return torch.stack(actions), planner.windows


def _slip(n_steps: int, t_o: int, t_a: int, t_p: int, obs0: torch.Tensor, how: str):
    """A receding-horizon loop with one known mistake (what the checker recognises)."""
    planner, step = _Planner(t_p), _step_fn()
    history = [obs0] * (1 if how == "no_padding" else t_o)
    queue, actions, obs = [], [], obs0
    for i in range(n_steps):
        if i:
            history = (history + [obs])[-t_o:] if how != "stale" else history
        if not queue or how == "every_step":
            window = torch.stack(history[::-1] if how == "newest_first" else history)
            chunk = planner(window)
            start = 0 if how == "from_oldest" else t_o - 1
            stop = t_p if how == "whole_chunk" else start + t_a
            queue = list(chunk[start:stop])
        a = queue.pop(0)
        actions.append(a)
        obs = step(a)
    return torch.stack(actions), planner.windows


def _same(windows: list[torch.Tensor], want: list[torch.Tensor]) -> bool:
    return len(windows) == len(want) and all(w.shape == v.shape and close(w, v)
                                             for w, v in zip(windows, want, strict=True))


_SLIPS = {
    "from_oldest": "The chunk starts at the oldest observation: the action for the current step is row "
                   "T_o - 1, so execute rows T_o - 1 .. T_o + T_a - 2.",
    "every_step": "You re-plan at every step: execute the T_a planned actions first, then re-plan.",
    "whole_chunk": "Execute only T_a actions of the chunk before re-planning, not all T_p.",
    "newest_first": "The window lists the observations oldest first (the current one last).",
    "stale": "Append each new observation to the window (keeping the last T_o).",
    "no_padding": "At the start the window must still hold T_o observations: repeat the first one.",
}


def check_receding_horizon(receding_horizon: Callable) -> None:
    """Exercise 5.3: receding_horizon(planner, step, obs, n_steps, obs_horizon, action_horizon) -> the
    executed actions (n_steps, A), planning T_p actions from the last T_o observations every T_a steps."""
    for n_steps, t_o, t_a, t_p in ((20, 2, 8, 16), (11, 3, 4, 8)):
        obs0 = torch.tensor([7.0, 3.0, 0.0], dtype=torch.float64)
        want, want_windows = _reference(n_steps, t_o, t_a, t_p, obs0)
        planner = _Planner(t_p)
        out = attempt("5.3", receding_horizon, planner, _step_fn(), obs0.clone(), n_steps, t_o, t_a,
                      forbidden=ANSWERS["5.3"])
        got = torch.stack([torch.as_tensor(np.asarray(a), dtype=torch.float64) for a in out]) \
            if isinstance(out, (list, tuple)) else out
        got = expect_tensor("5.3", torch.as_tensor(got, dtype=torch.float64), (n_steps, 2))
        if close(got, want) and _same(planner.windows, want_windows):
            continue
        for how, message in _SLIPS.items():
            slip, slip_windows = _slip(n_steps, t_o, t_a, t_p, obs0, how)
            if close(got, slip) and _same(planner.windows, slip_windows):
                raise ExerciseWrong(f"Exercise 5.3: not yet. {message}")
        if len(planner.windows) != len(want_windows):
            raise ExerciseWrong(f"Exercise 5.3: the planner was called {len(planner.windows)} times in "
                                f"{n_steps} steps with T_a = {t_a}; expected {len(want_windows)} (once every "
                                f"T_a steps, starting at step 0).")
        raise ExerciseWrong("Exercise 5.3: not yet. Hint: keep the last T_o observations (oldest first, "
                            "the first one repeated at the start); when no planned action is left, plan a "
                            "chunk and queue its rows T_o - 1 .. T_o + T_a - 2; take one queued action per "
                            "step.")
    passed("5.3", "the receding-horizon loop: plan T_p, execute T_a, re-plan.")
