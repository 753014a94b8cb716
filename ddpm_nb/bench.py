"""Benchmarks behind `ddpm-nb bench ...`: each returns a JSON-able dict of measured numbers."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .weights import file_sha256

__all__ = ["bench_elbo", "bench_images"]


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


def bench_images(args) -> dict:
    """The image model judged by a classifier trained on real images (chapter 3)."""
    from .data.fashion_mnist import load_fashion_mnist, to_model_range
    from .quality import accuracy, classifier_report, generate
    from .recipes import build, checkpoint_path, denoiser_from
    from .samplers import get_sampler, timesteps
    from .weights import load_weights

    ddpm_path = Path(args.checkpoint) if args.checkpoint else checkpoint_path("ddpm-images")
    cls_path = checkpoint_path("fashion-classifier")
    net, _ = load_weights(ddpm_path, build, expect={"data": "fashion-mnist"})
    judge, _ = load_weights(cls_path, build, expect={"data": "fashion-mnist-labelled"})
    config = _stored_config(ddpm_path)
    test = load_fashion_mnist("test")
    acc = accuracy(judge, to_model_range(test.images), test.labels)
    denoiser = denoiser_from(net, config)
    g = torch.Generator().manual_seed(args.seed)
    steps = args.steps or 50
    ts = timesteps(denoiser.T, steps) if args.sampler == "ddim" else list(range(denoiser.T, 0, -1))
    x = generate(get_sampler(args.sampler), denoiser, args.samples, (1, 28, 28), ts, generator=g,
                 clip_x0=1.0)
    report = classifier_report(judge, x.clamp(-1, 1))
    return {
        "dataset": test.name,
        "classifier_accuracy_on_real": acc,
        "sample_confidence": report["confidence"],
        "sample_class_entropy": report["class_entropy"],
        "max_class_entropy": report["max_entropy"],
        "sample_class_counts": report["counts"],
        "samples": args.samples,
        "sampler": args.sampler,
        "steps": len(ts),
        "seed": args.seed,
        "checkpoint": str(ddpm_path),
        "checkpoint_sha256": file_sha256(ddpm_path),
        "classifier_checkpoint": str(cls_path),
        "classifier_checkpoint_sha256": file_sha256(cls_path),
    }
