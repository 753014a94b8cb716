"""Benchmarks behind `ddpm-nb bench ...`: each returns a JSON-able dict of measured numbers."""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from .weights import file_sha256

__all__ = ["bench_elbo", "bench_images", "bench_samplers", "steps_for_nfe", "sampler_rows", "sampler_times",
           "swd_floor", "swd_to_data", "GRIDS"]
__all__ += ["bench_noprop", "step_cost", "noprop_accuracies"]


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
    reports the evaluations actually counted). ddpm: every step (the bench runs it once, at T, as the
    reference, whatever NFE list it is given).
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


# Where the continuous-time solvers put their steps on the 2-D model: t_min and, for DPM-Solver, the
# log-SNR of the first stop. DPM-Solver's were chosen on tuning seeds 2000-2004 (never on the bench's
# reporting seeds 1000+) for the v-prediction model: sliced W1 at 10 / 20 NFE 0.0225 / 0.0205 with t_min 5
# and a first stop at λ = -1.5, against 0.0283 / 0.0220 with t_min 1 and the evenly spaced grid.
GRIDS = {"euler_maruyama": {"t_min": 1.0}, "euler": {"t_min": 1.0}, "heun": {"t_min": 1.0},
         "dpm_solver": {"t_min": 5.0, "first_logsnr": -1.5}}


def sampler_times(name: str, model, steps: int, grid: dict | None = None) -> list:
    """The time grid of sampler `name` with `steps` steps (ddpm: every step; ddim: the DDIM grid)."""
    from .samplers import continuous_timesteps, timesteps

    if name == "ddpm":
        return list(range(model.T, 0, -1))
    if name == "ddim":
        return timesteps(model.T, steps)
    grid = {**GRIDS.get(name, {"t_min": 1.0}), **(grid or {})}
    if name == "rk45":
        return [float(model.T), grid["t_min"]]
    spacing = "logsnr" if name == "dpm_solver" else "time"
    return continuous_timesteps(model, steps, spacing=spacing, **grid)


def swd_to_data(samples, data, seed: int) -> float:
    """Sliced W1 (200 projections, projection seed `seed`) between samples and data, both (N, 2)."""
    from .quality import sliced_wasserstein

    return sliced_wasserstein(samples, data, projections=200, generator=torch.Generator().manual_seed(seed))


def sampler_rows(base, names, nfes, *, n: int, seeds: int, grids: dict | None = None,
                 progress: bool = True) -> list[dict]:
    """Each sampler at each NFE budget on the 2-D mixture: sliced W1 to fresh data over `seeds`
    repetitions, wall time, mean true log-density. Repetition s draws its data set, then its initial
    noise, from seed 1000 + s: every sampler meets the same data sets and starts, so rows compare
    paired (`swd_seeds` lists the per-repetition values); the data draw dominates a single SWD."""
    from tqdm.auto import tqdm

    from .data.toy2d import mixture_log_prob, sample_toy2d
    from .samplers import Denoiser, get_sampler

    jobs = []
    for name in names:
        get_sampler(name)
        if name in ("rk45", "ddpm"):  # one row each: adaptive steps; DDPM walks all T steps (the reference)
            jobs.append((name, None if name == "rk45" else base.T))
            continue
        for nfe in nfes:
            steps = steps_for_nfe(name, nfe)
            if steps is not None:
                jobs.append((name, steps))
    rows = []
    for name, steps in tqdm(jobs, desc="samplers", disable=not progress):
        dists, secs, logp, calls = [], 0.0, [], 0
        for seed in range(seeds):
            counter = _Counter(base.net)
            model = Denoiser(counter, base.beta)
            sg = torch.Generator().manual_seed(1000 + seed)
            data = sample_toy2d("8gaussians", n, generator=sg)
            x = torch.randn(n, 2, generator=sg)
            ts = sampler_times(name, model, steps, (grids or {}).get(name))
            t0 = time.perf_counter()
            out = get_sampler(name)(model, x, ts, generator=sg).float()
            secs += time.perf_counter() - t0
            calls += counter.calls
            dists.append(swd_to_data(out, data, seed))
            logp.append(float(mixture_log_prob(out.double()).mean()))
        d = torch.tensor(dists)
        rows.append({"sampler": name, "nfe": calls // seeds, "steps": steps, "swd": float(d.mean()),
                     "swd_std": float(d.std()), "swd_seeds": d.tolist(), "seconds": secs / seeds,
                     "mean_log_density": sum(logp) / len(logp)})
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
    from .data.toy2d import sample_toy2d

    def draw():
        return sample_toy2d("8gaussians", n, generator=generator)

    floor = torch.tensor([swd_to_data(draw(), draw(), s) for s in range(seeds)])
    return float(floor.mean()), float(floor.std())


def bench_samplers(args) -> dict:
    """Every sampler at several NFE on the 2-D mixture: sliced W1 to fresh data, time; ODE NLL gap."""
    from .data.toy2d import mixture_log_prob, sample_toy2d
    from .likelihood import ode_log_likelihood
    from .recipes import build, checkpoint_path, denoiser_from
    from .samplers import SAMPLERS, get_sampler
    from .weights import load_weights

    names = args.samplers.split(",") if args.samplers else list(SAMPLERS)
    for name in names:
        get_sampler(name)
    nfes = [int(v) for v in args.nfe.split(",")]
    for nfe in nfes:
        steps_for_nfe("ddim", nfe)  # NFE < 1: one clear error
    path = Path(args.checkpoint) if args.checkpoint else checkpoint_path("ddpm-2d")
    net, _ = load_weights(path, build, expect={"data": "8gaussians"}, map_location="cpu")
    base = denoiser_from(net, _stored_config(path))
    n, seeds = args.samples or 10000, args.seeds
    if seeds < 2 or n < 100:
        raise ValueError("Use at least 2 seeds and 100 samples so that a spread can be reported.")
    if not 0 < args.rtol <= 1e-3:
        raise ValueError(f"rtol must be in (0, 1e-3], got {args.rtol}.")
    if args.floor_pairs < 2:
        raise ValueError(f"--floor-pairs must be at least 2, got {args.floor_pairs}.")
    g = torch.Generator().manual_seed(args.seed)
    # Pairs of data draws are cheap, and 5 of them misjudge the spread: at seed 12345 five pairs gave
    # 0.0213 ± 0.0010, forty pairs 0.0205 ± 0.0070 (10k points each).
    floor, floor_std = swd_floor(n, args.floor_pairs, g)
    rows = sampler_rows(base, names, nfes, n=n, seeds=seeds)
    paired_with_ddpm(rows)
    x0 = sample_toy2d("8gaussians", args.points, generator=g, dtype=torch.float32)
    r = ode_log_likelihood(base, x0, t_min=1.0, rtol=args.rtol, atol=args.rtol)
    gap = -r["log_p"] + mixture_log_prob(x0.double())
    return {
        "swd": "sliced Wasserstein-1, 200 projections", "samples": n, "seeds": seeds,
        "swd_floor": floor, "swd_floor_std": floor_std, "floor_pairs": args.floor_pairs, "grids": GRIDS,
        "rows": rows,
        "nll": {"ode": float(-r["log_p"].mean()), "true": float(-mixture_log_prob(x0.double()).mean()),
                "gap": float(gap.mean()), "gap_stderr": float(gap.std() / math.sqrt(args.points)),
                "points": args.points, "rtol": args.rtol, "nfe": r["nfe"]},
        "checkpoint": str(path), "checkpoint_sha256": file_sha256(path),
    }


def step_cost(model, x: torch.Tensor, y: torch.Tensor, *, repeats: int = 3, seed: int = 0,
              progress: bool = False) -> dict:
    """What one training step of `model` costs on the batch x (B, 1, 28, 28), y (B,) (chapter 6).

    A NoPropDT takes a `noprop_step` (T block losses, each backward and update, then the output loss);
    any other classifier one cross-entropy forward/backward and AdamW update. The model is copied, so
    the caller's weights stay as they are. Returns seconds_per_step (median of `repeats` steps after a
    warm-up step), saved_bytes_per_step (peak bytes of the tensors saved for backward alive at once,
    `SavedTensorMeter`) and, on CUDA, peak_device_bytes (torch.cuda.max_memory_allocated).
    """
    import copy
    import statistics
    import time

    from tqdm.auto import tqdm

    from .noprop import NoPropDT, SavedTensorMeter, _optimisers, noprop_step

    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}.")
    net = copy.deepcopy(model).train()
    device = next(net.parameters()).device
    x, y = x.to(device), y.to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    if isinstance(net, NoPropDT):
        opts = _optimisers(net, 1e-4, 0.0)

        def step():
            noprop_step(net, opts, x, y, gen)
    else:
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

        def step():
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up: allocations, optimiser state
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, peak = [], 0
    for _ in tqdm(range(repeats), desc=f"timing {type(net).__name__} steps", disable=not progress):
        sync()
        t0 = time.perf_counter()
        with SavedTensorMeter() as meter:
            step()
        sync()
        times.append(time.perf_counter() - t0)
        peak = max(peak, meter.peak)
    out = {"seconds_per_step": statistics.median(times), "saved_bytes_per_step": peak,
           "batch_size": int(x.shape[0]), "device": str(device)}
    if device.type == "cuda":
        out["peak_device_bytes"] = torch.cuda.max_memory_allocated()
    return out


def noprop_accuracies(model, x: torch.Tensor, y: torch.Tensor, *, seed: int = 0,
                      progress: bool = True) -> dict:
    """Test accuracy of a NoPropDT under each inference: one noisy chain (the paper's), the average of
    p(y|z_T) over 8 chains, and the mean path (no noise). Images x (N, 1, 28, 28), labels y (N,)."""
    from .noprop import accuracy, predict

    device = next(model.parameters()).device
    chains = predict(model, x, noise=True, samples=8, per_chain=True, mean_path=True, progress=progress,
                     generator=torch.Generator(device=device).manual_seed(seed))
    return {"one_chain": accuracy(chains[0], y), "eight_chains": accuracy(chains[:8].mean(0), y),
            "mean_path": accuracy(chains[8], y)}


def bench_noprop(args) -> dict:
    """NoProp-DT against the backprop chain, Fashion-MNIST (book split): accuracy of the committed
    checkpoints on the test images, seconds and saved bytes per training step at one batch size."""
    from .config import pick_device
    from .noprop import NOPROP_INFERENCE, accuracy, load_split, predict
    from .recipes import build, checkpoint_path
    from .weights import load_weights

    if args.batch_size < 2:
        raise ValueError(f"--batch-size must be at least 2 (batch normalisation), got {args.batch_size}.")
    x_test, y_test, name = load_split(args.dataset, "test")
    x_train, y_train, _ = load_split(args.dataset, "train")
    device = pick_device()
    idx = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(args.seed))[:args.batch_size]
    out = {"dataset": name, "split": "test", "test_images": len(y_test),
           "step_batch": f"{args.batch_size} train images, the same batch for both methods",
           "batch_size": args.batch_size, "device": str(device), "threads": torch.get_num_threads(),
           "torch": torch.__version__}
    for key, recipe in (("noprop", "noprop"), ("backprop", "noprop-backprop")):
        path = Path(args.checkpoint) if (args.checkpoint and key == "noprop") else checkpoint_path(recipe)
        model, _ = load_weights(path, build, expect={"data": "fashion-mnist-labelled"}, map_location=device)
        row = {}
        if key == "noprop":
            row["test_accuracy_by_inference"] = noprop_accuracies(model, x_test, y_test, seed=args.seed)
            row["test_accuracy"] = row["test_accuracy_by_inference"][NOPROP_INFERENCE]
            row["inference"] = NOPROP_INFERENCE
        else:
            row["test_accuracy"] = accuracy(predict(model, x_test, progress=True), y_test)
        row.update(step_cost(model, x_train[idx], y_train[idx], repeats=3, seed=args.seed, progress=True))
        row.update({"checkpoint": str(path), "checkpoint_sha256": file_sha256(path)})
        out[key] = row
    out["saved_bytes_ratio"] = out["noprop"]["saved_bytes_per_step"] / out["backprop"]["saved_bytes_per_step"]
    return out
