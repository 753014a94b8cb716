"""`ddpm-nb bench samplers`: every sampler at several NFE on the 2-D mixture (sliced W1 to fresh data,
paired over repetitions), and the ODE likelihood gap (chapter 4)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from ..checkpoints import load_weights
from ..data.toy2d import mixture_log_prob, sample_toy2d
from ..errors import UserError
from ..files import file_sha256
from ..likelihood import ode_log_likelihood
from ..progress import progress_bar
from ..quality import sliced_wasserstein
from ..recipes import build, checkpoint_path, denoiser_from
from ..samplers import GRIDS_2D, SAMPLERS, Denoiser, get_sampler, sampler_times, steps_for_nfe
from .common import CountCalls, RowStore, stored_config

__all__ = ["bench_samplers", "times_2d", "sampler_jobs", "sampler_rows", "paired_with_ddpm", "swd_floor",
           "swd_to_data", "swd_difference"]


def times_2d(name: str, model: Denoiser, steps: int | None, **grid) -> list:
    """The grid of sampler `name` on the 2-D model: `sampler_times` with the tuned `GRIDS_2D` settings
    (t_min, DPM-Solver's first λ), each overridable by keyword."""
    return sampler_times(name, model, steps, **{**GRIDS_2D.get(name, {}), **grid})


def swd_to_data(samples, data, seed: int) -> float:
    """Sliced W1 (200 projections, projection seed `seed`) between samples and data, both (N, 2)."""
    return sliced_wasserstein(samples, data, projections=200, generator=torch.Generator().manual_seed(seed))


def swd_difference(a, b, data, seed: int, *, boots: int = 100,
                   generator: torch.Generator | None = None) -> tuple[float, float]:
    """SWD(a, data) - SWD(b, data) and its paired bootstrap standard error.

    a, b: (N, 2) samples paired row by row (two samplers from the same starting noise); data: (M, 2)
    with M = N. Each of `boots` resamples draws one set of rows, the same for a and b, and one of the
    data, so the noise that a and b share cancels in the difference as it does in the estimate.
    """
    if boots < 2:
        raise UserError(f"boots must be at least 2 to estimate a standard error, got {boots}.")
    if a.shape != b.shape or a.shape != data.shape:
        raise UserError(f"a, b and data must have one shape (N, 2), got {tuple(a.shape)}, "
                        f"{tuple(b.shape)}, {tuple(data.shape)}.")
    diff = swd_to_data(a, data, seed) - swd_to_data(b, data, seed)
    n = a.shape[0]
    reps = []
    for _ in range(boots):
        i = torch.randint(0, n, (n,), generator=generator)
        j = torch.randint(0, n, (n,), generator=generator)
        reps.append(swd_to_data(a[i], data[j], seed) - swd_to_data(b[i], data[j], seed))
    return diff, float(torch.tensor(reps).std())


def sampler_jobs(base: Denoiser, names, nfes, *, grids: dict | None = None) -> tuple[list, list[dict]]:
    """(jobs, skipped): every (sampler, steps) the bench will run, each grid built and checked now,
    before the first sample; a budget a sampler cannot meet on its grid is skipped with the reason."""
    jobs, skipped = [], []
    for name in names:
        get_sampler(name)
        if name in ("rk45", "ddpm"):  # one row each: adaptive steps; DDPM walks all T steps (the reference)
            jobs.append((name, None if name == "rk45" else base.T))
            continue
        for nfe in nfes:
            steps = steps_for_nfe(name, nfe)
            if steps is None:
                skipped.append({"sampler": name, "nfe": nfe, "why": f"{name} cannot spend exactly {nfe} "
                                "network evaluations"})
                continue
            try:
                times_2d(name, base, steps, **(grids or {}).get(name, {}))
            except UserError as err:
                skipped.append({"sampler": name, "nfe": nfe, "why": str(err)})
                continue
            jobs.append((name, steps))
    return jobs, skipped


def _row_key(row: dict) -> tuple:
    return (row["sampler"], row["steps"], row["samples"], len(row["swd_seeds"]), row["checkpoint_sha256"])


def sampler_rows(base, names, nfes, *, n: int, seeds: int, grids: dict | None = None,
                 progress: bool = True, store: RowStore | None = None, digest: str = "",
                 partial=None) -> list[dict]:
    """Each sampler at each NFE budget on the 2-D mixture: sliced W1 to fresh data over `seeds`
    repetitions, wall time, mean true log-density. Repetition s draws its data set, then its initial
    noise, from seed 1000 + s: every sampler meets the same data sets and starts, so rows compare
    paired (`swd_seeds` lists the per-repetition values); the data draw dominates a single SWD.

    store: finished rows are saved there as `partial(rows)` after each one, and a row it already holds
    for the same settings (and checkpoint `digest`) is reused instead of run again."""
    jobs, _ = sampler_jobs(base, names, nfes, grids=grids)
    rows = []
    for name, steps in progress_bar(jobs, desc="samplers", disable=not progress):
        kept = store.get((name, steps, n, seeds, digest)) if store is not None else None
        if kept is not None:
            rows.append(kept)
            continue
        dists, secs, logp, calls = [], 0.0, [], 0
        for seed in range(seeds):
            counter = CountCalls(base.net)
            model = Denoiser(counter, base.beta)
            sg = torch.Generator().manual_seed(1000 + seed)
            data = sample_toy2d("8gaussians", n, generator=sg)
            x = torch.randn(n, 2, generator=sg).to(base.device)  # the same start on any device
            ts = times_2d(name, model, steps, **(grids or {}).get(name, {}))
            t0 = time.perf_counter()
            out = get_sampler(name)(model, x, ts, generator=sg).float().cpu()  # .cpu(): waits for a GPU
            secs += time.perf_counter() - t0
            calls += counter.calls
            dists.append(swd_to_data(out, data, seed))
            logp.append(float(mixture_log_prob(out.double()).mean()))
        d = torch.tensor(dists)
        rows.append({"sampler": name, "nfe": calls // seeds, "steps": steps, "swd": float(d.mean()),
                     "swd_std": float(d.std()), "swd_seeds": d.tolist(), "seconds": secs / seeds,
                     "mean_log_density": sum(logp) / len(logp), "samples": n, "checkpoint_sha256": digest})
        if store is not None and partial is not None:
            store.save(partial(rows))
    return rows


def paired_with_ddpm(rows: list[dict]) -> None:
    """Add to each row its mean per-repetition difference from the DDPM row, and that mean's
    standard error (rows share data sets and starts, so the difference is much less noisy than
    either SWD). Does nothing without a DDPM row."""
    ref = next((r for r in rows if r["sampler"] == "ddpm"), None)
    if ref is None:
        return
    for r in rows:
        diff = torch.tensor(r["swd_seeds"]) - torch.tensor(ref["swd_seeds"])
        r["swd_minus_ddpm"] = float(diff.mean())
        r["swd_minus_ddpm_stderr"] = float(diff.std() / math.sqrt(len(diff)))


def swd_floor(n: int, seeds: int, generator: torch.Generator) -> tuple[float, float]:
    """Sliced W1 between two fresh draws of n data points: mean and spread over `seeds` pairs."""
    def draw():
        return sample_toy2d("8gaussians", n, generator=generator)

    floor = torch.tensor([swd_to_data(draw(), draw(), s) for s in range(seeds)])
    return float(floor.mean()), float(floor.std())


def bench_samplers(*, checkpoint: str | None = None, samplers: list[str] | None = None,
                   nfe: list[int] = (5, 10, 20, 50, 100), samples: int = 10000, seeds: int = 5,
                   floor_pairs: int = 50, points: int = 2000, rtol: float = 1e-6, seed: int = 12345,
                   progress: bool = True, out: str | None = None) -> dict:
    """Every sampler at several NFE on the 2-D mixture: sliced W1 to fresh data, time; ODE NLL gap.

    Every configuration is checked before the first sample (one it cannot run is listed under
    "skipped" with the reason); with `out` (the --json path) each finished row is written there at
    once, marked "complete": false until the end, and a rerun reuses the rows already measured."""
    names = list(samplers) if samplers else list(SAMPLERS)
    for name in names:
        get_sampler(name)
    nfes = list(nfe)
    for budget in nfes:
        steps_for_nfe("ddim", budget)  # NFE < 1: one clear error
    path = Path(checkpoint) if checkpoint else checkpoint_path("ddpm-2d")
    net, _ = load_weights(path, build, expect={"data": "8gaussians"}, map_location="cpu")
    base = denoiser_from(net, stored_config(path))
    n, seeds = samples, seeds
    if seeds < 2 or n < 100:
        raise UserError("Use at least 2 seeds and 100 samples so that a spread can be reported.")
    if not 0 < rtol <= 1e-3:
        raise UserError(f"rtol must be in (0, 1e-3], got {rtol}.")
    if floor_pairs < 2:
        raise UserError(f"floor_pairs (--floor-pairs) must be at least 2, got {floor_pairs}.")
    jobs, skipped = sampler_jobs(base, names, nfes)
    if not jobs:
        raise UserError("None of the asked configurations can run: " + "; ".join(s["why"] for s in skipped))
    digest = file_sha256(path)
    g = torch.Generator().manual_seed(seed)
    # Pairs of data draws are cheap, and 5 of them misjudge the spread: at seed 12345 five pairs gave
    # 0.0213 ± 0.0010, forty pairs 0.0205 ± 0.0070 (10k points each).
    floor, floor_std = swd_floor(n, floor_pairs, g)
    head = {"swd": "sliced Wasserstein-1, 200 projections", "samples": n, "seeds": seeds,
            "swd_floor": floor, "swd_floor_std": floor_std, "floor_pairs": floor_pairs, "grids": GRIDS_2D,
            "skipped": skipped, "checkpoint": str(path), "checkpoint_sha256": digest}
    rows = sampler_rows(base, names, nfes, n=n, seeds=seeds, progress=progress, store=RowStore(out, _row_key),
                        digest=digest, partial=lambda rows: {**head, "complete": False, "rows": rows})
    paired_with_ddpm(rows)
    x0 = sample_toy2d("8gaussians", points, generator=g, dtype=torch.float32)
    r = ode_log_likelihood(base, x0, t_min=1.0, rtol=rtol, atol=rtol)
    gap = -r["log_p"] + mixture_log_prob(x0.double())
    return {
        **head, "complete": True, "rows": rows,
        "nll": {"ode": float(-r["log_p"].mean()), "true": float(-mixture_log_prob(x0.double()).mean()),
                "gap": float(gap.mean()), "gap_stderr": float(gap.std() / math.sqrt(points)),
                "points": points, "rtol": rtol, "nfe": r["nfe"]},
    }
