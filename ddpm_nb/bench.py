"""Benchmarks behind `ddpm-nb bench ...`: each returns a JSON-able dict of measured numbers."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .weights import file_sha256

__all__ = ["bench_elbo"]


def bench_elbo(args) -> dict:
    """-ELBO of the 2-D model against the exact log-density, per point, in nats (chapter 2)."""
    from .data.toy2d import mixture_log_prob, sample_toy2d
    from .elbo import SIGMA2, negative_elbo
    from .recipes import build, checkpoint_path
    from .weights import load_weights

    if args.sigma2 not in SIGMA2:
        raise ValueError(f"Unknown reverse variance {args.sigma2!r}: choose one of {', '.join(SIGMA2)}.")
    if args.points < 2000:
        raise ValueError("Use at least 2000 points (--points) so the standard error is meaningful.")
    path = Path(args.checkpoint) if args.checkpoint else checkpoint_path("ddpm-2d")
    model, meta = load_weights(path, build, expect={"data": "8gaussians"}, map_location="cpu")
    config = meta.get("config", None) or _stored_config(path)
    beta = _beta(config)
    g = torch.Generator().manual_seed(args.seed)
    x0 = sample_toy2d("8gaussians", args.points, generator=g, dtype=torch.float64)
    log_p = mixture_log_prob(x0)

    def eps_model(x, t):
        return model(x.float(), t).double()

    r = negative_elbo(eps_model, x0, beta, sigma2=args.sigma2, n_mc=2, generator=g, progress=True)
    gap = r["nelbo"] + log_p
    n = args.points
    return {
        "data_entropy_nats": float(-log_p.mean()),
        "elbo_nll_nats": float(r["nelbo"].mean()),
        "gap_nats": float(gap.mean()),
        "gap_stderr": float(gap.std() / math.sqrt(n)),
        "sigma2": args.sigma2,
        "terms": {"prior": float(r["prior"].mean()), "diffusion": float(r["diffusion"].mean()),
                  "reconstruction": float(r["reconstruction"].mean())},
        "points": n,
        "seed": args.seed,
        "checkpoint": str(path),
        "checkpoint_sha256": file_sha256(path),
    }


def _beta(config: dict) -> torch.Tensor:
    from .schedules import beta_schedule

    return beta_schedule(config["schedule"]["kind"], config["schedule"]["T"])


def _stored_config(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["config"]
