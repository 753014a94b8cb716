"""Evaluating a PushT policy as Diffusion Policy did (Chi et al. 2023, sec. 5 and appendix).

Episodes start from the environment's seeds S, S+1, ..., S+N-1 (S = 100000 for reported numbers) and
run for at most 300 steps. An episode's score is its maximum reward, reward = clip(coverage / 0.95,
0, 1) with coverage the fraction of the goal region the T block covers; the reported score is the mean
over episodes. An episode is a success when the coverage exceeds 0.95 at some step (gym-pusht then
terminates it).
"""

from __future__ import annotations

import os
import platform
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from ..errors import MissingPackage, UserError
from ..files import file_sha256
from ..progress import progress_bar
from .geometry import coverage as block_coverage
from .stats import normal_interval, wilson_interval

__all__ = ["EVAL_SEED", "MAX_STEPS", "SUCCESS_COVERAGE", "make_env", "Episode", "EpisodeResult", "rollout",
           "torch_threads", "evaluate", "summarise", "merge_evaluations", "environment_info"]

EVAL_SEED = 100000  # first seed of the paper's evaluation episodes
MAX_STEPS = 300
SUCCESS_COVERAGE = 0.95


def make_env():
    """gym-pusht's PushT with state observations (5,) and actions (2,) in pixels: gymnasium API."""
    try:
        import gym_pusht  # noqa: F401  (registers gym_pusht/PushT-v0)
        import gymnasium
    except ImportError as err:
        raise MissingPackage("The PushT environment needs gym-pusht: pip install 'gym-pusht==0.1.8' "
                             "'pymunk<7'.") from err
    return gymnasium.make("gym_pusht/PushT-v0", obs_type="state")


@dataclass
class Episode:
    """One rollout. observations (n + 1, 5), actions (n, 2), rewards (n,), coverage (n,): float64."""

    seed: int
    observations: np.ndarray = field(repr=False)
    actions: np.ndarray = field(repr=False)
    rewards: np.ndarray = field(repr=False)
    coverage: np.ndarray = field(repr=False)

    @property
    def score(self) -> float:
        """The episode's maximum reward clip(coverage / 0.95, 0, 1) (0 if no step was taken)."""
        return float(self.rewards.max()) if self.rewards.size else 0.0

    @property
    def max_coverage(self) -> float:
        return float(self.coverage.max()) if self.coverage.size else 0.0

    @property
    def success(self) -> bool:
        return self.max_coverage > SUCCESS_COVERAGE

    @property
    def final_coverage(self) -> float:
        """The coverage at the last step (what VQ-BeT reports), 0 if no step was taken."""
        return float(self.coverage[-1]) if self.coverage.size else 0.0

    @property
    def steps_to_success(self) -> int | None:
        """Steps taken until the coverage first exceeded 0.95; None if it never did."""
        hit = np.flatnonzero(self.coverage > SUCCESS_COVERAGE)
        return int(hit[0]) + 1 if hit.size else None

    def result(self) -> EpisodeResult:
        return EpisodeResult(self.seed, self.score, self.max_coverage, self.final_coverage, self.success,
                             int(self.actions.shape[0]), self.steps_to_success)


@dataclass(frozen=True)
class EpisodeResult:
    """What an evaluation keeps of an episode: numbers only, cheap to send between processes."""

    seed: int
    score: float
    max_coverage: float
    final_coverage: float
    success: bool
    steps: int
    steps_to_success: int | None


def rollout(policy, env, seed: int, max_steps: int = MAX_STEPS) -> Episode:
    """Run `policy` (obs (5,) -> action (2,), with reset(seed)) in `env` from `env.reset(seed=seed)`.

    Stops at success (terminated), at the environment's time limit (truncated) or after `max_steps`.
    Coverage and reward are gym-pusht's, recomputed from the observed block pose by
    `ddpm_nb.policy.geometry.coverage` (the same to ~1e-14, and the same bits in every process).
    """
    if max_steps < 1:
        raise UserError(f"max_steps must be at least 1, got {max_steps}.")
    obs, _ = env.reset(seed=int(seed))
    if hasattr(policy, "reset"):
        policy.reset(seed=int(seed))
    observations, actions, rewards, coverage = [np.asarray(obs, dtype=np.float64)], [], [], []
    for _ in range(max_steps):
        action = np.asarray(policy(obs), dtype=np.float64)
        if action.shape != (2,) or not np.isfinite(action).all():
            raise UserError(f"The policy must return a finite action of shape (2,), got {action!r}.")
        obs, _, terminated, truncated, _ = env.step(action)
        observations.append(np.asarray(obs, dtype=np.float64))
        actions.append(action)
        # gym-pusht's own coverage jitters in the last bit between processes (GEOS): the same value,
        # recomputed from the block's pose in a fixed order, makes two runs write identical scores
        covered = block_coverage(observations[-1][2:5])
        coverage.append(covered)
        rewards.append(min(max(covered / SUCCESS_COVERAGE, 0.0), 1.0))
        if terminated or truncated:
            break
    return Episode(int(seed), np.stack(observations), np.stack(actions), np.array(rewards),
                   np.array(coverage))


@contextmanager
def torch_threads(n: int | None):
    """Run the block with torch on `n` CPU threads (None: unchanged), then restore the count."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def evaluate(policy, episodes: int, seed: int = EVAL_SEED, max_steps: int = MAX_STEPS, *, env=None,
             checkpoint: str | os.PathLike | None = None, threads: int | None = 1,
             progress: bool = True) -> dict:
    """Score `policy` on seeds seed .. seed + episodes - 1, as Chi et al. 2023 did.

    policy: a `RecedingHorizonPolicy` (or any callable obs -> action with reset(seed); plans per second
    is then None). env: a gymnasium PushT env (default `make_env()`, closed afterwards). torch runs on
    `threads` threads meanwhile (1: the book's timing convention; None: unchanged). Returns the fields
    of `ddpm-nb eval pusht`: episodes, mean_score, mean_max_coverage, success_rate, plans_per_second
    (action-chunk predictions per second of wall time inside the planner), sampler, steps, checkpoint,
    checkpoint_sha256; plus scores, max_coverages and successes per episode (lists, seed order).
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise UserError(f"episodes must be a positive integer, got {episodes!r}.")
    own_env = env is None
    env = make_env() if own_env else env
    plans0, seconds0 = getattr(policy, "plans", 0), getattr(policy, "plan_seconds", 0.0)
    results = []
    try:
        with torch_threads(threads):
            machine = environment_info()  # threads as the episodes run them
            for s in progress_bar(range(seed, seed + episodes), desc="PushT episodes", disable=not progress):
                results.append(rollout(policy, env, s, max_steps).result())
    finally:
        if own_env:
            env.close()
    plans = getattr(policy, "plans", 0) - plans0
    seconds = getattr(policy, "plan_seconds", 0.0) - seconds0
    planner = getattr(policy, "planner", None)
    return {**summarise(results, plans, seconds), "sampler": getattr(planner, "sampler", None),
            "steps": getattr(planner, "steps", None),
            "checkpoint": None if checkpoint is None else str(checkpoint),
            "checkpoint_sha256": None if checkpoint is None else file_sha256(checkpoint),
            "seed": seed, "max_steps": max_steps, "success_threshold": SUCCESS_COVERAGE,
            "workers": 1, **machine}


def summarise(results: list[EpisodeResult], plans: int, seconds: float) -> dict:
    """An evaluation's numbers from its episodes (in seed order) and the planner's plan count and time.

    mean_score_ci95 is the normal interval (mean ± 1.96 standard errors, `normal_interval`),
    success_rate_ci95 Wilson's (`wilson_interval`); per-episode lists follow the seeds.
    """
    scores = [r.score for r in results]
    wins = sum(r.success for r in results)
    return {
        "episodes": len(results),
        "mean_score": float(np.mean(scores)),
        "mean_score_ci95": normal_interval(scores) if len(scores) > 1 else None,
        "mean_score_ci95_method": "normal: mean ± 1.96 standard errors",
        "mean_max_coverage": float(np.mean([r.max_coverage for r in results])),
        "mean_final_coverage": float(np.mean([r.final_coverage for r in results])),
        "success_rate": wins / len(results),
        "success_rate_ci95": wilson_interval(wins, len(results)),
        "success_rate_ci95_method": "Wilson score interval",
        "plans_per_second": plans / seconds if plans and seconds > 0 else None,
        "scores": scores,
        "max_coverages": [r.max_coverage for r in results],
        "final_coverages": [r.final_coverage for r in results],
        "successes": [r.success for r in results],
        "steps_to_success": [r.steps_to_success for r in results],
        "episode_steps": [r.steps for r in results],
        "plans": plans,
        "plan_seconds": seconds,
    }


def merge_evaluations(parts: list[dict]) -> dict:
    """One evaluation from `evaluate` results on consecutive seed ranges (a long run split in pieces).

    The parts must be of the same planner and checkpoint and follow each other seed by seed; the means
    and plans per second are recomputed over all episodes (plans / seconds summed, not averaged).
    """
    if not parts:
        raise UserError("merge_evaluations needs at least one evaluation.")
    first = parts[0]
    for prev, part in zip(parts, parts[1:], strict=False):
        if part["seed"] != prev["seed"] + prev["episodes"]:
            raise UserError(f"Evaluations must cover consecutive seeds: {prev['seed']}+{prev['episodes']} "
                            f"is followed by {part['seed']}.")
        if any(part[k] != first[k] for k in ("sampler", "steps", "checkpoint_sha256")):
            raise UserError("Evaluations of different planners or checkpoints cannot be merged.")
    results = [EpisodeResult(p["seed"] + i, *(p[k][i] for k in ("scores", "max_coverages", "final_coverages",
                                                                 "successes", "episode_steps",
                                                                 "steps_to_success")))
               for p in parts for i in range(p["episodes"])]
    plans, seconds = sum(p["plans"] for p in parts), sum(p["plan_seconds"] for p in parts)
    return {**first, **summarise(results, plans, seconds)}


def _cpu() -> tuple[str, list[str]]:
    """The CPU's model name and its vector instruction-set flags (Linux: /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model in ("", platform.processor() or platform.machine()):
            model = value.strip()
        if key.strip() in ("flags", "Features") and not flags:
            simd = ("sse", "ssse", "avx", "fma", "f16c", "amx", "neon", "asimd", "sve")
            flags = sorted(f for f in value.split() if f.startswith(simd))
    return model, flags


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment_info() -> dict:
    """What decides an evaluation's per-episode scores beside the seeds: the simulator's and torch's
    versions, torch's threads and CPU kernels, the CPU (contact physics amplifies the last bits of a
    plan, so another CPU or thread count can change episodes; the same machine reproduces them)."""
    model, flags = _cpu()
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "gym_pusht": _version("gym-pusht"), "pymunk": _version("pymunk"),
            "gymnasium": _version("gymnasium"),
            "numpy": np.__version__, "cpu_model": model, "cpu_flags": flags}
