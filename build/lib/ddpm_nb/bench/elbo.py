"""`ddpm-nb bench elbo`: -ELBO of the 2-D model against the exact log-density, per point (chapter 2)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..checkpoints import load_weights
from ..data.toy2d import mixture_log_prob, sample_toy2d
from ..diffusion import SIGMA2
from ..elbo import negative_elbo
from ..errors import UserError
from ..files import file_sha256
from ..recipes import build, checkpoint_path
from ..schedules import schedule_from
from .common import stored_config

__all__ = ["bench_elbo"]


def bench_elbo(*, checkpoint: str | None = None, points: int = 2000, sigma2: str = "beta",
               seed: int = 12345) -> dict:
    """-ELBO of the 2-D model against the exact log-density, per point, in nats (chapter 2)."""
    if sigma2 not in SIGMA2:
        raise UserError(f"Unknown reverse variance {sigma2!r}: choose one of {', '.join(SIGMA2)}.")
    if points < 2000:
        raise UserError("Use at least 2000 points (--points) so the standard error is meaningful.")
    path = Path(checkpoint) if checkpoint else checkpoint_path("ddpm-2d")
    model, _ = load_weights(path, build, expect={"data": "8gaussians"}, map_location="cpu")
    beta = schedule_from(stored_config(path)["schedule"])
    g = torch.Generator().manual_seed(seed)
    x0 = sample_toy2d("8gaussians", points, generator=g, dtype=torch.float64)
    log_p = mixture_log_prob(x0)

    def eps_model(x, t):
        return model(x.float(), t).double()

    r = negative_elbo(eps_model, x0, beta, sigma2=sigma2, n_mc=2, generator=g, progress=True)
    gap = r["nelbo"] + log_p
    n = points
    return {
        "data_entropy_nats": float(-log_p.mean()),
        "elbo_nll_nats": float(r["nelbo"].mean()),
        "gap_nats": float(gap.mean()),
        "gap_stderr": float(gap.std() / math.sqrt(n)),
        "sigma2": sigma2,
        "terms": {"prior": float(r["prior"].mean()), "diffusion": float(r["diffusion"].mean()),
                  "reconstruction": float(r["reconstruction"].mean())},
        "points": n,
        "seed": seed,
        "checkpoint": str(path),
        "checkpoint_sha256": file_sha256(path),
    }
