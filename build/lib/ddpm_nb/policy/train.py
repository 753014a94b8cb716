"""Training the PushT policies: Diffusion Policy (DDPM, ε-prediction) and the MSE regression baseline.

Diffusion Policy (Chi et al. 2023, sec. 3 and eq. 5): given a window of normalised observations o and
the demonstrated action chunk a^0 (T_p, 2) in [-1, 1], draw a denoising step k ~ U{1..K} and ε ~ N(0, I),
form a^k = sqrt(ᾱ_k) a^0 + sqrt(1 - ᾱ_k) ε and regress ε_θ(a^k, k | o) onto ε (DDPM's L_simple, Ho et al.
2020, eq. 14), here with K = 100 steps of the cosine schedule (Nichol & Dhariwal 2021). The baseline
uses the same UNet without a step input to regress a_0 from o directly. A flow policy (the objective of
π0's action expert, Black et al. 2024) regresses a velocity v_θ(a_t, t | o) onto ε - a_0 along the
straight path a_t = (1 - t) a_0 + t ε (`ddpm_nb.flow`). All go through the book's one training loop
(`ddpm_nb.train.train`: AdamW, warm-up + cosine lr, gradient clipping, EMA).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.pusht import PushTData
from ..elbo import l_simple
from ..flow import flow_loss
from ..train import TrainConfig, TrainResult, train
from .model import PolicyModel
from .planners import DiffusionPlanner, FlowPlanner, RegressionPlanner
from .windows import Windows, prepare

__all__ = ["diffusion_loss", "regression_loss", "flow_policy_loss", "LOSSES", "validation_loss",
           "chunk_error", "fit_policy", "train_policy"]

Tensor = torch.Tensor


def diffusion_loss(model: PolicyModel, batch: tuple[Tensor, Tensor], generator: torch.Generator) -> Tensor:
    """L_simple for action chunks, conditioned on the observations: E_{k, ε} ‖ε - ε_θ(a^k, k | o)‖²
    (Ho et al. 2020, eq. 14: `ddpm_nb.elbo.l_simple`, mean over batch and entries).

    batch: (obs (B, T_o, D), actions (B, T_p, A)), both normalised.
    """
    obs, a0 = batch
    return l_simple(lambda at, t: model(at, t, obs), a0, model.beta, generator=generator)


def regression_loss(model: PolicyModel, batch: tuple[Tensor, Tensor], generator: torch.Generator) -> Tensor:
    """MSE between the predicted and the demonstrated chunk (the baseline): ‖f_θ(o) - a_0‖²."""
    obs, a0 = batch
    return F.mse_loss(model(torch.zeros_like(a0), None, obs), a0)


def flow_policy_loss(model: PolicyModel, batch: tuple[Tensor, Tensor], generator: torch.Generator) -> Tensor:
    """Conditional flow matching for action chunks: E_{t, ε} ‖v_θ(a_t, t | o) - (ε - a_0)‖², t ~ U(0, 1)
    (Lipman et al. 2023; `ddpm_nb.flow.flow_loss`). batch: (obs (B, T_o, D), actions (B, T_p, A))."""
    obs, a0 = batch
    return flow_loss(lambda at, t: model.velocity(at, t, obs), a0, generator=generator)


# The loss each objective trains with.
LOSSES = {"diffusion": diffusion_loss, "regression": regression_loss, "flow": flow_policy_loss}


@torch.no_grad()
def validation_loss(model: PolicyModel, obs: Tensor, act: Tensor, *, seed: int = 0,
                    batch: int = 1024) -> float:
    """The training loss on held-out windows, with fixed draws (same seed: comparable across runs)."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    loss_fn = LOSSES[model.objective]
    was_training = model.training
    model.eval()
    total = 0.0
    for i in range(0, obs.shape[0], batch):
        o, a = obs[i:i + batch].to(device), act[i:i + batch].to(device)
        total += loss_fn(model, (o, a), gen).item() * o.shape[0]
    model.train(was_training)
    return total / obs.shape[0]


@torch.no_grad()
def chunk_error(model: PolicyModel, obs: Tensor, act: Tensor, *, sampler: str = "ddim", steps: int = 10,
                seed: int = 0, executed: int = 8, first: int | None = None) -> float:
    """Mean distance in pixels between planned and demonstrated executed actions on windows (obs, act).

    obs (W, T_o, D) and act (W, T_p, 2) normalised; compares rows T_o - 1 .. T_o + T_a - 2 (the executed
    ones). Compare it with the mean step between consecutive demo actions (10.2 px; median 8.1 px).
    sampler, steps, first: as for `DiffusionPlanner` (ignored by a regression policy).
    """
    device = next(model.parameters()).device
    obs, act = obs.to(device), act.to(device)
    if model.objective == "diffusion":
        k = steps if sampler != "ddpm" else None
        pred = DiffusionPlanner(model, sampler, k, seed=seed, first=first).sample(obs)
    elif model.objective == "flow":
        pred = FlowPlanner(model, steps, seed=seed).sample(obs)
    else:
        pred = RegressionPlanner(model).sample(obs)
    first = obs.shape[1] - 1
    rows = slice(first, first + executed)
    norm = model.act_norm
    diff = norm.decode(pred)[:, rows] - norm.decode(act)[:, rows]
    return diff.norm(dim=-1).mean().item()


def fit_policy(model: PolicyModel, data: PushTData, cfg: TrainConfig, *,
               device: str | torch.device | None = None, state_path=None, desc: str | None = None,
               progress: bool = True, callback=None, windows: Windows | None = None) -> TrainResult:
    """Train a fresh `PolicyModel` on the training episodes of `data` (what `ddpm-nb train pusht` runs).

    1. cut the windows and fit the normalisers (training episodes only), 2. store them in the model,
    3. run the book's training loop with the objective's loss (resumable through `state_path`), 4. put
    the exact normalisers back into the EMA model (the one to evaluate and save).
    """
    windows = prepare(data, model.config.get("features", "sincos")) if windows is None else windows
    model.set_normalizers(windows.obs_norm, windows.act_norm)
    loss_fn = LOSSES[model.objective]
    result = train(model, loss_fn, (windows.train_obs, windows.train_act), cfg, device=device,
                   state_path=state_path, desc=desc or f"PushT {model.objective}", callback=callback,
                   progress=progress)
    result.ema_model.set_normalizers(windows.obs_norm, windows.act_norm)  # exact, not EMA-averaged
    return result


def train_policy(config: dict, data: PushTData, cfg: TrainConfig, *, device: str | torch.device | None = None,
                 state_path=None, progress: bool = True, callback=None) -> tuple[TrainResult, Windows]:
    """Train the policy described by `config` (see `policy_config`) on the training episodes of `data`.

    Returns the TrainResult (its ema_model is the PolicyModel to evaluate and save, normalisers included)
    and the windows used (for validation losses).
    """
    windows = prepare(data, config.get("features", "sincos"))
    result = fit_policy(PolicyModel(config), data, cfg, device=device, state_path=state_path,
                        progress=progress, callback=callback, windows=windows)
    return result, windows
