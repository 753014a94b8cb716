"""The checker of exercise 5.5 (build): a DDIM planner for the trained PushT policy, driven in the simulator
by the student's own receding-horizon controller of exercise 5.3 (Chi et al. 2023; Song et al. 2021, eq. 12).

The right answers are the package's `DiffusionPlanner` (DDIM in 10 steps from step K - 1 = 99) inside
`RecedingHorizonPolicy`, played by `policy.rollout`: the same noise gives the same chunk, and the same seed
the same episode.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch

from ..policy.env import make_env, rollout
from ..policy.planners import DiffusionPlanner, RecedingHorizonPolicy, make_planner
from ..policy.windows import OBS_HORIZON, PRED_HORIZON
from ..samplers import sample_ddim
from ._core import ExerciseWrong, attempt, close, diagnose, expect_tensor, passed

__all__ = ["ANSWERS_55", "check_ddim_planner", "STEPS", "FIRST", "EPISODE_SEEDS", "EPISODE_STEPS"]

ANSWERS_55 = (DiffusionPlanner, make_planner, sample_ddim, RecedingHorizonPolicy, rollout)
STEPS, FIRST = 10, 99  # the chapter's planner: DDIM-10 from diffusion step K - 1 = 99
EPISODE_SEEDS, EPISODE_STEPS = (100000, 100001), 24  # two short evaluation episodes (3 plans each)
_MODEL: dict[str, torch.nn.Module] = {}


def _model():
    """The chapter's trained policy on the CPU, loaded once (the student gets a copy)."""
    if "pusht" not in _MODEL:
        from .. import recipes

        _MODEL["pusht"] = recipes.load("pusht", device="cpu").eval()
    return _MODEL["pusht"]


def _windows() -> list[torch.Tensor]:
    """Raw observation windows (T_o, 5): a still agent behind the T, a moving one, one near the target."""
    states = (
        [[190.0, 290.0, 330.0, 290.0, 3 * math.pi / 2]] * 2,
        [[100.0, 420.0, 250.0, 300.0, 0.7], [108.0, 414.0, 250.0, 300.0, 0.7]],
        [[300.0, 200.0, 262.0, 270.0, math.pi / 4 + 0.1], [296.0, 205.0, 261.0, 268.0, math.pi / 4 + 0.12]],
    )
    return [torch.tensor(s, dtype=torch.float32)[-OBS_HORIZON:] for s in states]


@torch.no_grad()
def _ddim(model, window: torch.Tensor, noise: torch.Tensor, *, first: int = FIRST, clip: str = "x0",
          decode: bool = True, last_x0: bool = True) -> torch.Tensor:
    """DDIM-10 written out, with switches for the slips: a chunk (T_p, 2) in pixels (or normalised)."""
    obs = model.encode_obs(window)[None]
    ab = torch.cumprod(1 - model.beta, 0).float()
    ts = torch.linspace(first, 1, STEPS).round().long().tolist()
    x = noise[None].float()
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else 0
        eps = model(x, torch.full((1,), t, dtype=torch.long), obs)
        x0 = (x - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()
        if clip in ("x0", "x0_only"):
            x0 = x0.clamp(-1, 1)
        if clip == "x0":
            eps = (x - ab[t].sqrt() * x0) / (1 - ab[t]).sqrt()
        if s == 0 and not last_x0:
            break
        x = ab[s].sqrt() * x0 + (1 - ab[s]).sqrt() * eps
    x = x.clamp(-1, 1)
    return model.act_norm.decode(x)[0] if decode else x[0]


_CHUNK_SLIPS = {
    "decode": "Map the chunk back to pixels with model.act_norm.decode: the network works in [-1, 1].",
    "first": "Start the grid at step first = 99 (K - 1), not at K = 100: sqrt(ᾱ_100) is 5e-4, so the x0 "
             "predicted there is all noise; ts = torch.linspace(99, 1, 10).round().",
    "no_clip": "Clip the predicted x0 to [-1, 1] at every step (the range of every training action) and "
               "recompute ε from the clipped x0.",
    "x0_only": "After clipping x0, recompute ε = (x_t - sqrt(ᾱ_t) x0) / sqrt(1 - ᾱ_t), so that the step "
               "stays on the line through the clipped x0.",
    "last": "The last step goes from t = 1 to 0, where ᾱ_0 = 1: it returns that step's x0.",
}


def _chunk_slip(model, window, noise, how: str) -> torch.Tensor:
    kw = {"decode": {"decode": False}, "first": {"first": 100}, "no_clip": {"clip": "none"},
          "x0_only": {"clip": "x0_only"}, "last": {"last_x0": False}}[how]
    return _ddim(model, window, noise, **kw)


def _check_chunks(ddim_plan: Callable, model) -> None:
    planner = DiffusionPlanner(model, "ddim", STEPS, first=FIRST)
    g = torch.Generator().manual_seed(55)
    for window in _windows():
        noise = torch.randn(PRED_HORIZON, 2, generator=g)
        want = model.act_norm.decode(planner.sample(model.encode_obs(window)[None], noise[None]))[0]
        out = attempt("5.5", ddim_plan, copy.deepcopy(model), window.clone(), noise.clone(),
                      forbidden=ANSWERS_55)
        got = expect_tensor("5.5", torch.as_tensor(out).detach().cpu().float()
                            if isinstance(out, (torch.Tensor, np.ndarray)) else out, (PRED_HORIZON, 2))
        diagnose("5.5", got, want, {m: _chunk_slip(model, window, noise, k) for k, m in _CHUNK_SLIPS.items()},
                 hint="features = model.encode_obs(window)[None]; ᾱ = cumprod(1 - model.beta); for t in "
                      "linspace(99, 1, 10).round() (then s = the next step, 0 after the last): ε = model(x, "
                      "t, features), x0 = (x - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t) clipped to [-1, 1], ε again "
                      "from x0, x = sqrt(ᾱ_s) x0 + sqrt(1 - ᾱ_s) ε; then model.act_norm.decode.", tol=0.01)


def _reference_episode(model, seed: int, how: str = "right") -> tuple[torch.Tensor, float]:
    """The package's rollout of DDIM-10 on `seed` (how = 'reseed': a generator re-seeded at every plan)."""
    planner = DiffusionPlanner(model, "ddim", STEPS, first=FIRST, seed=seed)
    inner = planner if how == "right" else (lambda w: (planner.reset(seed), planner(w))[1])
    ep = rollout(RecedingHorizonPolicy(inner), make_env(), seed, EPISODE_STEPS)
    return torch.as_tensor(ep.actions), ep.score


def _as_episode(out) -> tuple[torch.Tensor, float]:
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ExerciseWrong("Exercise 5.5: episode must return (actions, score): the executed actions "
                            "(n_steps, 2) and the episode's score, a float.")
    actions, score = out
    actions = torch.stack([torch.as_tensor(np.asarray(a)) for a in actions]) \
        if isinstance(actions, (list, tuple)) else torch.as_tensor(np.asarray(actions))
    try:
        score = float(score)
    except (TypeError, ValueError):
        kind = type(score).__name__
        raise ExerciseWrong(f"Exercise 5.5: the score must be a number, got {kind}.") from None
    return expect_tensor("5.5", actions.double(), (EPISODE_STEPS, 2)), score


def _check_episodes(episode: Callable, model) -> list[tuple[int, float, float]]:
    scores = []
    for seed in EPISODE_SEEDS:
        want, want_score = _reference_episode(model, seed)
        out = attempt("5.5", episode, copy.deepcopy(model), seed, EPISODE_STEPS, forbidden=ANSWERS_55)
        got, score = _as_episode(out)
        if not close(got, want, tol=0.05):
            bad = int((got - want).abs().amax(1).gt(0.05).nonzero()[0])
            reseeded, _ = _reference_episode(model, seed, "reseed")
            if close(got, reseeded, tol=0.05):
                raise ExerciseWrong("Exercise 5.5: not yet. Every plan used the same noise: seed one "
                                    "generator once per episode, torch.Generator().manual_seed(seed), and "
                                    "draw each plan's noise from it in turn.")
            if bad == 0:
                raise ExerciseWrong(f"Exercise 5.5: seed {seed}: the first action differs from the reference "
                                    f"episode's. Reset the environment with env.reset(seed=seed), seed the "
                                    f"generator with the same seed, and draw the first plan's noise "
                                    f"torch.randn(T_p, 2, generator=g) before anything else.")
            raise ExerciseWrong(f"Exercise 5.5: seed {seed}: the actions agree up to step {bad}, then differ "
                                f"from the reference episode's (largest gap "
                                f"{(got - want).abs().max().item():.3g} px). Check the controller (exercise "
                                f"5.3: a plan every T_a steps, its rows T_o - 1 onward) and that each step "
                                f"returns env.step's new state as a float32 tensor (5,).")
        if abs(score - want_score) > 1e-3:
            raise ExerciseWrong(f"Exercise 5.5: seed {seed}: the actions are right but the score is "
                                f"{score:.4f}, expected {want_score:.4f}: the score is the best reward of "
                                f"the episode, the maximum over its steps of the reward env.step returns.")
        scores.append((seed, score, want_score))
    return scores


def check_ddim_planner(ddim_plan: Callable, episode: Callable) -> None:
    """Exercise 5.5: ddim_plan(model, window, noise) -> the chunk (T_p, 2) in pixels by DDIM-10 from step
    99; episode(model, seed, n_steps) -> (actions (n_steps, 2), score) of one episode played by the
    student's receding_horizon (exercise 5.3) around ddim_plan, noise drawn from one generator per episode."""
    model = _model()
    _check_chunks(ddim_plan, model)
    scores = _check_episodes(episode, model)
    for seed, score, want in scores:
        print(f"  seed {seed}, first {EPISODE_STEPS} steps: your score {score:.3f}, the package's {want:.3f}")
    passed("5.5", "your DDIM planner gives the package's chunks from the same noise, and your controller "
                  "plays the same episodes.")
