"""`ddpm-nb eval pusht`: a committed policy checkpoint scored by the paper's protocol, on one process
or spread over several (`workers`), with the same per-episode results either way.

An episode depends only on its seed: the environment is reset with it and the planner re-seeded
with it (`RecedingHorizonPolicy.reset`), and each worker runs torch on the same number of threads
as a single-process run. So the seeds can be dealt out to processes in any order.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from pathlib import Path

import torch

from ..checkpoints import checkpoint_dir, remedy
from ..errors import UserError
from ..files import file_sha256
from ..progress import progress_bar
from ..samplers import get_sampler
from .env import (
    MAX_STEPS,
    SUCCESS_COVERAGE,
    EpisodeResult,
    environment_info,
    evaluate,
    make_env,
    rollout,
    summarise,
    torch_threads,
)
from .model import load_policy
from .planners import RecedingHorizonPolicy, make_planner

__all__ = ["POLICIES", "evaluate_checkpoint", "evaluate_file", "evaluate_in_workers", "load_planner"]

# What `ddpm-nb eval pusht --policy NAME` evaluates: NAME -> (recipe of the committed checkpoint, objective)
POLICIES = {"diffusion": ("pusht", "diffusion"), "flow": ("pusht-flow", "flow"),
            "bc": ("pusht-bc", "regression")}


def load_planner(path: Path, objective: str, policy: str, sampler=None, steps=None, first=None):
    """The planner (`make_planner`) of the policy checkpoint at `path`, which must hold an `objective`
    policy (else one UserError naming `policy`)."""
    with torch.random.fork_rng():  # loading draws nothing, but keep the global RNG untouched anyway
        model, _ = load_policy(path, map_location="cpu")
    if model.objective != objective:
        raise UserError(f"{path} holds a {model.objective} policy, not the {policy} one: pass the right "
                        f"--checkpoint or --policy.")
    return make_planner(model, sampler, steps, first=first)


def evaluate_checkpoint(policy: str = "diffusion", *, sampler: str | None = None, steps: int | None = None,
                        first: int | None = None, checkpoint: str | os.PathLike | None = None,
                        episodes: int = 50, seed: int = 100000, threads: int | None = 1,
                        workers: int = 1, max_steps: int = MAX_STEPS, progress: bool = True) -> dict:
    """Load a PushT policy checkpoint, wrap it in the receding-horizon controller and score it on seeds
    seed .. seed + episodes - 1 (`evaluate`), in `workers` processes of `threads` torch threads each.

    policy: "diffusion", "flow" (flow matching) or "bc" (the MSE baseline); checkpoint: default the
    committed one of its recipe (checkpoints/pusht.pt, pusht-flow.pt, pusht-bc.pt). sampler, steps,
    first: as for `make_planner`.
    Returns `evaluate`'s dict plus policy and first.
    """
    if policy not in POLICIES:
        raise UserError(f"Unknown policy {policy!r}: choose one of {', '.join(POLICIES)}.")
    recipe, objective = POLICIES[policy]
    if sampler is not None:
        get_sampler(sampler)  # fail before loading anything
    path = Path(checkpoint) if checkpoint is not None else checkpoint_dir() / f"{recipe}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}: {remedy(path)}; or pass another "
                                f"--checkpoint.")
    result = evaluate_file(path, objective, policy, sampler=sampler, steps=steps, first=first,
                           episodes=episodes, seed=seed, threads=threads, workers=workers,
                           max_steps=max_steps, progress=progress)
    if checkpoint is None:  # the committed file: name it as the repository does, not by this machine's path
        result["checkpoint"] = f"checkpoints/{path.name}"
    return result


def evaluate_file(path: Path, objective: str, policy: str, *, sampler: str | None = None,
                  steps: int | None = None, first: int | None = None, episodes: int = 50, seed: int = 100000,
                  threads: int | None = 1, workers: int = 1, max_steps: int = MAX_STEPS,
                  progress: bool = True) -> dict:
    """Score the policy checkpoint at `path` (which must hold an `objective` policy; `policy` names it in
    the result and in messages): `evaluate` in one process, `evaluate_in_workers` in several."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UserError(f"workers must be a positive integer, got {workers!r}.")
    planner = load_planner(path, objective, policy, sampler, steps, first)
    if workers == 1:
        result = evaluate(RecedingHorizonPolicy(planner), episodes, seed=seed, max_steps=max_steps,
                          checkpoint=path, threads=threads, progress=progress)
    else:
        result = evaluate_in_workers((path, objective, policy, sampler, steps, first), episodes, seed=seed,
                                     workers=workers, threads=threads, max_steps=max_steps, progress=progress)
        result |= {"sampler": getattr(planner, "sampler", None), "steps": getattr(planner, "steps", None),
                   "checkpoint": str(path), "checkpoint_sha256": file_sha256(path)}
    return {"policy": policy, **result, "first": getattr(planner, "first", None), "seed": seed}


# ---------------------------------------------------------------------------------------------- workers
_WORKER: dict = {}


def _start_worker(load_args: tuple, threads: int | None, max_steps: int) -> None:
    if threads is not None:
        torch.set_num_threads(threads)
    _WORKER.update(policy=RecedingHorizonPolicy(load_planner(*load_args)), env=make_env(),
                   max_steps=max_steps)


def _run_episode(seed: int) -> tuple[EpisodeResult, int, float]:
    policy = _WORKER["policy"]
    plans, seconds = policy.plans, policy.plan_seconds
    result = rollout(policy, _WORKER["env"], seed, _WORKER["max_steps"]).result()
    return result, policy.plans - plans, policy.plan_seconds - seconds


def evaluate_in_workers(load_args: tuple, episodes: int, *, seed: int, workers: int, threads: int | None = 1,
                        max_steps: int = MAX_STEPS, progress: bool = True) -> dict:
    """`evaluate`'s numbers for episodes seed .. seed + episodes - 1, run by `workers` processes.

    load_args: (path, objective, policy, sampler, steps, first), what each process loads its own
    policy from. Processes are spawned (a forked torch may hang); each runs torch on `threads`
    threads, as a single-process evaluation does, so the per-episode results are the same.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise UserError(f"episodes must be a positive integer, got {episodes!r}.")
    seeds = list(range(seed, seed + episodes))
    found: dict[int, EpisodeResult] = {}
    plans, seconds = 0, 0.0
    with torch_threads(threads):
        machine = environment_info()  # the threads each worker runs with
    pool = cf.ProcessPoolExecutor(min(workers, episodes), mp_context=mp.get_context("spawn"),
                                  initializer=_start_worker, initargs=(load_args, threads, max_steps))
    try:
        jobs = {pool.submit(_run_episode, s): s for s in seeds}
        with progress_bar(total=episodes, desc=f"PushT episodes ({workers} workers)",
                          disable=not progress) as bar:
            for job in cf.as_completed(jobs):
                result, n, t = job.result()
                found[jobs[job]] = result
                plans, seconds = plans + n, seconds + t
                bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return {**summarise([found[s] for s in seeds], plans, seconds), "seed": seed, "max_steps": max_steps,
            "success_threshold": SUCCESS_COVERAGE, "workers": workers, **machine}
