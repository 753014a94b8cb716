"""Benchmarks behind `ddpm-nb bench ...`: each returns a JSON-able dict of measured numbers."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .weights import file_sha256

__all__ = ["bench_elbo", "bench_images", "bench_samplers", "steps_for_nfe"]


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
    model, _ = load_weights(path, build, expect={"data": "8gaussians"}, map_location="cpu")
    beta = _beta(_stored_config(path))
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
    n = args.samples or 1000
    x = generate(get_sampler(args.sampler), denoiser, n, (1, 28, 28), ts, generator=g,
                 clip_x0=1.0)
    report = classifier_report(judge, x.clamp(-1, 1))
    return {
        "dataset": test.name,
        "classifier_accuracy_on_real": acc,
        "sample_confidence": report["confidence"],
        "sample_class_entropy": report["class_entropy"],
        "max_class_entropy": report["max_entropy"],
        "sample_class_counts": report["counts"],
        "samples": n,
        "sampler": args.sampler,
        "steps": len(ts),
        "seed": args.seed,
        "checkpoint": str(ddpm_path),
        "checkpoint_sha256": file_sha256(ddpm_path),
        "classifier_checkpoint": str(cls_path),
        "classifier_checkpoint_sha256": file_sha256(cls_path),
    }


def steps_for_nfe(name: str, nfe: int) -> int | None:
    """Solver steps that spend at most `nfe` network evaluations (None when none fits).

    ddim: one per step. euler, euler_maruyama, dpm_solver: one per step plus the final denoising
    evaluation. heun: two per step plus the final one (an even budget leaves one unused; the JSON
    reports the evaluations actually counted). ddpm: only every step (T evaluations).
    """
    if nfe < 1:
        raise ValueError(f"NFE must be at least 1, got {nfe}.")
    if name == "ddim":
        return nfe
    if name in ("euler", "euler_maruyama", "dpm_solver"):
        return nfe - 1 if nfe >= 2 else None
    if name == "heun":
        return (nfe - 1) // 2 if nfe >= 3 else None
    if name == "ddpm":
        return nfe
    raise ValueError(f"No NFE rule for sampler {name!r}.")


class _Counter:
    """Wraps a network and counts its batched evaluations (the NFE)."""

    def __init__(self, net):
        self.net, self.calls = net, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.net(x, t)


def bench_samplers(args) -> dict:
    """Every sampler at several NFE on the 2-D mixture: sliced W1 to fresh data, time; ODE NLL gap."""
    import time

    from .data.toy2d import mixture_log_prob, sample_toy2d
    from .likelihood import ode_log_likelihood
    from .quality import sliced_wasserstein
    from .recipes import build, checkpoint_path, denoiser_from
    from .samplers import SAMPLERS, Denoiser, continuous_timesteps, get_sampler, timesteps
    from .weights import load_weights

    names = args.samplers.split(",") if args.samplers else list(SAMPLERS)
    for name in names:
        get_sampler(name)
    nfes = [int(v) for v in args.nfe.split(",")]
    path = Path(args.checkpoint) if args.checkpoint else checkpoint_path("ddpm-2d")
    net, _ = load_weights(path, build, expect={"data": "8gaussians"}, map_location="cpu")
    base = denoiser_from(net, _stored_config(path))
    n, seeds = args.samples or 10000, args.seeds
    if seeds < 2 or n < 100:
        raise ValueError("Use at least 2 seeds and 100 samples so that a spread can be reported.")
    if not 0 < args.rtol <= 1e-3:
        raise ValueError(f"rtol must be in (0, 1e-3], got {args.rtol}.")

    def swd(a, b, seed):
        return sliced_wasserstein(a, b, projections=200, generator=torch.Generator().manual_seed(seed))

    g = torch.Generator().manual_seed(args.seed)
    def fresh():
        return sample_toy2d("8gaussians", n, generator=g)

    floor = torch.tensor([swd(fresh(), fresh(), s) for s in range(seeds)])
    rows = []
    for name in names:
        for nfe in ([0] if name == "rk45" else nfes):
            steps = None if name == "rk45" else steps_for_nfe(name, nfe)
            if name != "rk45" and (steps is None or steps < 1 or (name == "ddpm" and nfe != base.T)):
                continue
            dists, secs, logp, calls = [], 0.0, [], 0
            for seed in range(seeds):
                counter = _Counter(base.net)
                model = Denoiser(counter, base.beta)
                sg = torch.Generator().manual_seed(1000 + seed)
                x = torch.randn(n, 2, generator=sg)
                if name in ("ddpm", "ddim"):
                    ts = range(base.T, 0, -1) if name == "ddpm" else timesteps(base.T, steps)
                elif name == "rk45":
                    ts = [float(base.T), 1.0]
                else:
                    spacing = "logsnr" if name == "dpm_solver" else "time"
                    ts = continuous_timesteps(base, steps, spacing=spacing)
                t0 = time.perf_counter()
                out = get_sampler(name)(model, x, ts, generator=sg).float()
                secs += time.perf_counter() - t0
                calls += counter.calls
                dists.append(swd(out, sample_toy2d("8gaussians", n, generator=sg), seed))
                logp.append(float(mixture_log_prob(out.double()).mean()))
            d = torch.tensor(dists)
            rows.append({"sampler": name, "nfe": calls // seeds, "steps": steps, "swd": float(d.mean()),
                         "swd_std": float(d.std()), "seconds": secs / seeds,
                         "mean_log_density": sum(logp) / len(logp)})
    x0 = sample_toy2d("8gaussians", args.points, generator=g, dtype=torch.float32)
    r = ode_log_likelihood(base, x0, t_min=1.0, rtol=args.rtol, atol=args.rtol)
    gap = -r["log_p"] + mixture_log_prob(x0.double())
    return {
        "swd": "sliced Wasserstein-1, 200 projections", "samples": n, "seeds": seeds,
        "swd_floor": float(floor.mean()), "swd_floor_std": float(floor.std()), "rows": rows,
        "nll": {"ode": float(-r["log_p"].mean()), "true": float(-mixture_log_prob(x0.double()).mean()),
                "gap": float(gap.mean()), "gap_stderr": float(gap.std() / math.sqrt(args.points)),
                "points": args.points, "rtol": args.rtol, "nfe": r["nfe"]},
        "checkpoint": str(path), "checkpoint_sha256": file_sha256(path),
    }
