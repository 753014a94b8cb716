"""Checkers for chapter 3 (DDPM: sampling and the score)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..diffusion import p_mean_from_eps, reverse_variance
from ..elbo import l_simple
from ..samplers.denoiser import Denoiser
from ..samplers.discrete import sample_ddpm
from ..schedules import alpha_bar, beta_schedule
from ._core import ExerciseWrong, attempt, close, diagnose, expect_tensor, passed

__all__ = ["ANSWERS", "check_ddpm_step", "check_ddim_step", "check_langevin_step", "check_ddpm_build"]

# The package's own answers to each exercise: an answer that is one of them, or calls one, is rejected.
ANSWERS: dict[str, tuple] = {
    "3.1": (p_mean_from_eps,),
    "3.4": (l_simple, sample_ddpm, p_mean_from_eps),
}

_BETA = beta_schedule("linear", 100, beta_start=1e-3, beta_end=0.05)
_AB = alpha_bar(_BETA)


def _data(seed: int):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(128, 2, generator=g, dtype=torch.float64) for _ in range(3)]


def check_ddpm_step(ddpm_step: Callable) -> None:
    """Exercise 3.1: ddpm_step(xt, t, eps_hat, beta, z) -> x_{t-1}, with σ_t² = β_t and no noise at t = 1."""
    xt, eps, z = _data(31)
    for t in (40, 1):
        got = expect_tensor("3.1", attempt("3.1", ddpm_step, xt, t, eps, _BETA.clone(), z,
                                            forbidden=ANSWERS["3.1"]), xt.shape)
        mean = p_mean_from_eps(xt, t, eps, _BETA)
        want = mean + (_BETA[t].sqrt() * z if t > 1 else 0)
        b, ab = _BETA[t], _AB[t]
        diagnose("3.1", got, want, {
            "At t = 1 the step returns the mean: no noise is added on the last step.":
                mean + _BETA[t].sqrt() * z,
            "The noise must be scaled by σ_t = sqrt(β_t), not β_t.": mean + b * z,
            "The noise coefficient is β_t / sqrt(1 - ᾱ_t), not β_t / (1 - ᾱ_t).":
                (xt - b / (1 - ab) * eps) / (1 - b).sqrt() + (_BETA[t].sqrt() * z if t > 1 else 0),
            "Divide by sqrt(α_t) = sqrt(1 - β_t) after removing the noise.":
                xt - b / (1 - ab).sqrt() * eps + (_BETA[t].sqrt() * z if t > 1 else 0),
        }, hint="x_{t-1} = (x_t - β_t/sqrt(1-ᾱ_t) ε̂)/sqrt(1-β_t) + sqrt(β_t) z; just the mean at t = 1.")
    passed("3.1", "one ancestral DDPM step, noiseless at t = 1.")


def check_ddim_step(ddim_step: Callable) -> None:
    """Exercise 3.2: ddim_step(xt, t, s, eps_hat, alpha_bar) -> x_s, deterministic (η = 0), s < t."""
    xt, eps, _ = _data(32)
    t, s = 80, 35
    got = expect_tensor("3.2", attempt("3.2", ddim_step, xt, t, s, eps, _AB.clone()), xt.shape)
    x0 = (xt - (1 - _AB[t]).sqrt() * eps) / _AB[t].sqrt()
    want = _AB[s].sqrt() * x0 + (1 - _AB[s]).sqrt() * eps
    diagnose("3.2", got, want, {
        "You returned the predicted x_0: DDIM re-noises it to step s with the same ε̂.": x0,
        "Both terms need square roots: sqrt(ᾱ_s) x̂_0 + sqrt(1 - ᾱ_s) ε̂.": _AB[s] * x0 + (1 - _AB[s]) * eps,
        "Use ᾱ at the target step s, not at t.": _AB[t].sqrt() * x0 + (1 - _AB[t]).sqrt() * eps,
    }, hint="x̂_0 = (x_t - sqrt(1-ᾱ_t) ε̂)/sqrt(ᾱ_t); then x_s = sqrt(ᾱ_s) x̂_0 + sqrt(1-ᾱ_s) ε̂.")
    passed("3.2", "the deterministic DDIM update x_t -> x_s.")


def check_langevin_step(langevin_step: Callable) -> None:
    """Exercise 3.3: langevin_step(x, score, step, z) = x + (step/2)·score + sqrt(step)·z."""
    x, score, z = _data(33)
    step = 0.01
    got = expect_tensor("3.3", attempt("3.3", langevin_step, x, score, step, z), x.shape)
    want = x + step / 2 * score + step**0.5 * z
    noise = step**0.5 * z
    diagnose("3.3", got, want, {
        "The drift is (step/2)·score: with a full step the chain samples p², not p.":
            x + step * score + noise,
        "The noise is sqrt(step)·z, not step·z: its variance must be the step.":
            x + step / 2 * score + step * z,
        "Langevin climbs the log-density: add the score, do not subtract it.": x - step / 2 * score + noise,
    }, hint="x' = x + (ε/2)·∇log p(x) + sqrt(ε)·z with ε the step.")
    passed("3.3", "one step of (unadjusted) Langevin dynamics.")


# ---------------------------------------------------------------- 3.4 build: train with L_simple, sample

class _TinyNet(torch.nn.Module):
    """ε_θ(x, t) = W2 tanh(W1 [x, t/T] + b1) + b2, in float64, its weights drawn from a seed."""

    def __init__(self, dim: int, T: int, width: int = 16, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.T = T
        self.w1 = torch.nn.Parameter(torch.randn(dim + 1, width, generator=g, dtype=torch.float64) * 0.7)
        self.b1 = torch.nn.Parameter(torch.randn(width, generator=g, dtype=torch.float64) * 0.3)
        self.w2 = torch.nn.Parameter(torch.randn(width, dim, generator=g, dtype=torch.float64) * 0.4)
        self.b2 = torch.nn.Parameter(torch.zeros(dim, dtype=torch.float64))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if t.shape != (x.shape[0],):
            raise ValueError(f"the model takes t as a (B,) tensor of steps, got shape {tuple(t.shape)}")
        h = torch.cat([x, (t.to(x.dtype) / self.T)[:, None]], 1)
        return torch.tanh(h @ self.w1 + self.b1) @ self.w2 + self.b2


_T34 = 50
_BETA34 = beta_schedule("linear", _T34, beta_start=1e-3, beta_end=0.2)
_AB34 = alpha_bar(_BETA34)


def _slipped_loss(net, x0, ab, gen, *, low=1, eps_first=False, sqrt=True, target="eps", reduce="mean"):
    """L_simple of one batch as a student might have written it (the defaults are right)."""
    T = ab.shape[0] - 1
    if eps_first:
        eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    t = torch.randint(low, T + low, (x0.shape[0],), generator=gen)
    if not eps_first:
        eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    a = ab[t][:, None]
    xt = (a.sqrt() * x0 + (1 - a).sqrt() * eps) if sqrt else (a * x0 + (1 - a) * eps)
    err = (net(xt, t) - (eps if target == "eps" else x0)) ** 2
    return err.sum() if reduce == "sum" else err.mean()


def _two_steps(step, seed: int):
    """Two training steps of `step(net, opt, x0, ab, gen)` on a fresh net: (losses, parameters after)."""
    net = _TinyNet(2, _T34, seed=340)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(seed)
    x0s = _data(34)[:2]
    losses = [step(net, opt, x0, _AB34.clone(), gen) for x0 in x0s]
    return losses, torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def _package_step(net, opt, x0, ab, gen):
    opt.zero_grad()
    loss = l_simple(net, x0, _BETA34, generator=gen)
    loss.backward()
    opt.step()
    return loss.detach()


def _slipped_step(zero=True, step=True, **slip):
    def train_step(net, opt, x0, ab, gen):
        if zero:
            opt.zero_grad()
        loss = _slipped_loss(net, x0, ab, gen, **slip)
        loss.backward()
        if step:
            opt.step()
        return loss.detach()
    return train_step


def _as_loss(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor) and out.numel() == 1:
        return out.detach().double().reshape(())
    if isinstance(out, float):
        return torch.tensor(out, dtype=torch.float64)
    raise ExerciseWrong("Exercise 3.4: `train_step` should return the batch's loss, a number (a 0-d tensor "
                        f"or a float), not {type(out).__name__}.")


_LOSS_SLIPS = {
    "Draw t from 1..T (torch.randint(1, T + 1, ...)): step 0 is the clean data, with nothing to predict.":
        {"low": 0},
    "Draw t first, then ε, both from the generator given: the draw order is part of the exercise.":
        {"eps_first": True},
    "x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε: both coefficients need their square roots.": {"sqrt": False},
    "L_simple regresses the network's output on the noise ε, not on x_0.": {"target": "x0"},
    "Average the squared error over the batch and the coordinates (.mean()), do not sum it.":
        {"reduce": "sum"},
}


def _check_train_step(train_step: Callable) -> None:
    forbidden = ANSWERS["3.4"]
    got_losses, got_params = _two_steps(
        lambda *a: _as_loss(attempt("3.4", train_step, *a, forbidden=forbidden)), seed=341)
    want_losses, want_params = _two_steps(_package_step, seed=341)
    if not close(got_losses[0], want_losses[0], 1e-9):
        for message, slip in _LOSS_SLIPS.items():
            if close(got_losses[0], _two_steps(_slipped_step(**slip), seed=341)[0][0], 1e-9):
                raise ExerciseWrong(f"Exercise 3.4 (train_step): not yet. {message}")
        raise ExerciseWrong(
            f"Exercise 3.4 (train_step): the first loss is {float(got_losses[0]):.6f}, the package's "
            f"l_simple gives {float(want_losses[0]):.6f} with the same draws. Hint: t = torch.randint(1, "
            "T + 1, (B,), generator=generator), then ε = torch.randn(x0.shape, generator=generator, "
            "dtype=x0.dtype), x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε, loss = mean((ε - model(x_t, t))²).")
    if close(got_losses[1], want_losses[1], 1e-9) and close(got_params, want_params, 1e-9):
        return
    for message, slip in {
        "The weights did not change: call opt.step() after loss.backward().": {"step": False},
        "Call opt.zero_grad() before loss.backward(): otherwise each step adds the previous gradient.":
            {"zero": False},
    }.items():
        if close(got_params, _two_steps(_slipped_step(**slip), seed=341)[1], 1e-9):
            raise ExerciseWrong(f"Exercise 3.4 (train_step): not yet. {message}")
    raise ExerciseWrong("Exercise 3.4 (train_step): the first loss is right, but after two steps the weights "
                        "differ from one SGD step of the package's l_simple each. Hint: opt.zero_grad(); "
                        "loss.backward(); opt.step(); return the loss.")


def _ancestral(net, x, beta, gen, *, sigma2="beta", last_noise=False, z_dtype=None, stop=1):
    """Ancestral sampling as a student might have written it (the defaults are right)."""
    ab, var = alpha_bar(beta), reverse_variance(beta, sigma2)
    for t in range(beta.shape[0] - 1, stop - 1, -1):
        eps = net(x, torch.full((x.shape[0],), t, dtype=torch.long))
        x = (x - beta[t] / (1 - ab[t]).sqrt() * eps) / (1 - beta[t]).sqrt()
        if t > 1 or last_noise:
            x = x + var[t].sqrt() * torch.randn(x.shape, generator=gen, dtype=z_dtype or x.dtype).to(x)
    return x


def _check_sampler(sample_ddpm_loop: Callable) -> None:
    net = _TinyNet(2, _T34, seed=342)
    x_T = _data(35)[0]

    def run(fn, **kw):
        with torch.no_grad():
            return fn(net, x_T.clone(), _BETA34.clone(), torch.Generator().manual_seed(343), **kw)

    got = expect_tensor("3.4", attempt("3.4", run, sample_ddpm_loop, forbidden=ANSWERS["3.4"]),
                        x_T.shape).detach()
    with torch.no_grad():
        want = sample_ddpm(Denoiser(net, _BETA34), x_T.clone(), range(_T34, 0, -1),
                           generator=torch.Generator().manual_seed(343))
    diagnose("3.4", got, want, {
        "(sample_ddpm_loop) The last step, t = 1, returns the mean: no noise is added there.":
            run(_ancestral, last_noise=True),
        "(sample_ddpm_loop) The book's sampler uses σ_t² = β_t, not the posterior variance β̃_t.":
            run(_ancestral, sigma2="beta_tilde"),
        "(sample_ddpm_loop) Draw z in x's dtype: torch.randn(x.shape, generator=generator, dtype=x.dtype).":
            run(_ancestral, z_dtype=torch.float32),
        "(sample_ddpm_loop) The loop stopped at x_1: run t = T, T-1, ..., 1, all T steps.":
            run(_ancestral, stop=2),
    }, hint="for t = T, ..., 1: ε̂ = model(x, t as a (B,) long tensor); x = your ddpm_step(x, t, ε̂, β, z) "
            "with z drawn after the model call, only for t > 1.", tol=1e-9)


def check_ddpm_build(train_step: Callable, sample_ddpm_loop: Callable) -> None:
    """Exercise 3.4 (build): train_step(model, opt, x0, alpha_bar, generator) -> loss, one optimiser step of
    L_simple (t drawn first, then ε); sample_ddpm_loop(model, x_T, beta, generator) -> x_0, all T ancestral
    steps (z drawn after each model call, for t > 1). Both compared with the package's l_simple and
    sample_ddpm on a tiny network with fixed seeds."""
    _check_train_step(train_step)
    _check_sampler(sample_ddpm_loop)
    passed("3.4", "one SGD step of L_simple and T steps of ancestral DDPM, draw for draw as the package's "
                  "l_simple and sample_ddpm.")
