"""`ddpm-nb bench pusht-samplers`: how few network evaluations a PushT policy can plan with.

Every row scores one policy and sampler at one number of network evaluations (NFE, counted by
wrapping the network while it plans one chunk) on the same seeds, with the paper's protocol
(`ddpm_nb.policy.evaluate_file`), so rows pair episode by episode: each carries its success rate's
difference from the DDIM-10 row and that paired difference's standard error. Plans per second are
measured inside the planner, one torch thread per process.

Every configuration is checked before the first episode; each finished row is written at once
(`out`), and a rerun with the same `out` keeps the rows already measured for the same checkpoint,
seeds and episodes, so an interruption loses nothing.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoints import checkpoint_dir
from ..errors import UserError
from ..files import file_sha256
from ..policy import evaluate_file, load_planner
from ..policy.stats import paired_difference
from .common import RowStore

__all__ = ["PUSHT_ROWS", "FLOW_ROWS", "bench_pusht_samplers", "count_nfe", "steps_for"]

# (policy, sampler, network evaluations per chunk); None = the sampler visits every step (ancestral DDPM).
# The sampler's step count is the one that spends that many evaluations, as counted (`steps_for`).
PUSHT_ROWS = ([("diffusion", "ddim", k) for k in (1, 2, 3, 5, 10)]
              + [("diffusion", "dpm_solver", k) for k in (2, 3, 5, 10)] + [("diffusion", "ddpm", None)])
FLOW_ROWS = [("flow", "euler", k) for k in (1, 2, 3, 5, 10)]
_OBJECTIVE = {"diffusion": "diffusion", "flow": "flow"}


def count_nfe(planner) -> int:
    """The network evaluations `planner` spends on one action chunk, counted by wrapping its network."""
    net, calls = planner.model.net, []
    forward = net.forward
    net.forward = lambda *args, **kw: calls.append(1) or forward(*args, **kw)
    try:
        window = torch.zeros(planner.model.net.obs_horizon, 5)
        window[:, :4] = 256.0  # a state in the middle of the workspace
        planner(window)
    finally:
        del net.forward  # back to the class's method
    return len(calls)


def steps_for(path: Path, policy: str, sampler: str, nfe: int | None) -> tuple[int | None, int]:
    """(steps, counted NFE): the sampler's step count that spends `nfe` network evaluations per chunk
    (a DPM-Solver or Euler grid ends with one more evaluation than it has steps); None: all steps."""
    objective = _OBJECTIVE[policy]
    if nfe is None:
        return None, count_nfe(load_planner(path, objective, policy, sampler, None))
    for steps in range(1, nfe + 1):
        spent = count_nfe(load_planner(path, objective, policy, sampler, steps))
        if spent == nfe:
            return steps, spent
        if spent > nfe:
            break
    raise UserError(f"{sampler} cannot plan a chunk with exactly {nfe} network evaluations.")


def _key(row: dict) -> tuple:
    return (row["policy"], row["sampler"], row["nfe_requested"], row["episodes"], row["seed"],
            row["checkpoint_sha256"], row["max_steps"])


def bench_pusht_samplers(*, checkpoint: str | None = None, flow_checkpoint: str | None = None,
                         episodes: int = 100, seed: int = 100000, workers: int = 1, out: str | None = None,
                         max_steps: int = 300, progress: bool = True) -> dict:
    """The sweep: `PUSHT_ROWS` on the diffusion checkpoint (default checkpoints/pusht.pt), and
    `FLOW_ROWS` on `flow_checkpoint` (default checkpoints/pusht-flow.pt where it exists; otherwise those
    rows are listed under "missing"). Returns {"rows": [...], "missing": [...], ...}."""
    paths = {"diffusion": Path(checkpoint) if checkpoint else checkpoint_dir() / "pusht.pt"}
    flow = Path(flow_checkpoint) if flow_checkpoint else checkpoint_dir() / "pusht-flow.pt"
    missing = []
    if flow.is_file():
        paths["flow"] = flow
    elif flow_checkpoint:
        raise FileNotFoundError(f"No flow policy checkpoint at {flow}: check --flow-checkpoint.")
    else:
        missing = [{"policy": p, "sampler": s, "nfe": k, "why": f"no flow policy checkpoint at {flow}"}
                   for p, s, k in FLOW_ROWS]
    todo = [r for r in PUSHT_ROWS + FLOW_ROWS if r[0] in paths]
    digests = {name: file_sha256(path) for name, path in paths.items()}
    # 1. every configuration is checked (and its NFE counted) before the first episode
    plan = {r: steps_for(paths[r[0]], *r) for r in todo}
    store = RowStore(out, _key)
    rows = []
    for policy, sampler, want in todo:
        key = (policy, sampler, want, episodes, seed, digests[policy], max_steps)
        steps, nfe = plan[(policy, sampler, want)]
        row = store.get(key)
        if row is None:
            r = evaluate_file(paths[policy], _OBJECTIVE[policy], policy, sampler=sampler, steps=steps,
                              episodes=episodes, seed=seed, workers=workers, max_steps=max_steps,
                              progress=progress)
            row = {"policy": policy, "sampler": sampler, "nfe_requested": want,
                   "steps": r["steps"], "nfe": nfe, "episodes": episodes,
                   "seed": seed, "mean_score": r["mean_score"], "mean_score_ci95": r["mean_score_ci95"],
                   "success_rate": r["success_rate"], "success_rate_ci95": r["success_rate_ci95"],
                   "plans_per_second": r["plans_per_second"], "successes": r["successes"],
                   "scores": r["scores"], "checkpoint": str(paths[policy]),
                   "checkpoint_sha256": digests[policy], "workers": workers, "threads": r["threads"],
                   "max_steps": max_steps}
        rows.append(row)
        store.save(_result(rows, missing, episodes, seed))  # 2. what is measured is kept, row by row
    return _result(rows, missing, episodes, seed)


def _result(rows: list[dict], missing: list[dict], episodes: int, seed: int) -> dict:
    base = next((r for r in rows if (r["policy"], r["sampler"], r["nfe"]) == ("diffusion", "ddim", 10)), None)
    for r in rows:
        if base is None:
            r["success_minus_ddim10"] = r["success_minus_ddim10_stderr"] = None
            continue
        d, se = paired_difference([float(v) for v in r["successes"]], [float(v) for v in base["successes"]])
        r["success_minus_ddim10"], r["success_minus_ddim10_stderr"] = d, se
    return {"rows": rows, "missing": missing, "episodes": episodes, "seed": seed,
            "paired_with": "diffusion ddim at 10 NFE (same seeds)"}
