"""Training the PushT policies: Diffusion Policy (DDPM, ε-prediction) and the MSE regression baseline.

Diffusion Policy (Chi et al. 2023, sec. 3 and eq. 5): given a window of normalised observations o and
the demonstrated action chunk a_0 (T_p, 2) in [-1, 1], draw t ~ U{1..T} and ε ~ N(0, I), form
a_t = sqrt(ᾱ_t) a_0 + sqrt(1 - ᾱ_t) ε and regress ε_θ(a_t, t | o) onto ε (DDPM's L_simple, Ho et al.
2020, eq. 14), here with T = 100 steps of the cosine schedule (Nichol & Dhariwal 2021). The baseline
uses the same UNet without a step input to regress a_0 from o directly. Both go through the book's
one training loop (`ddpm_nb.train.train`: AdamW, warm-up + cosine lr, gradient clipping, EMA).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .data.pusht import MinMax, PushTData, make_windows, split_episodes, state_features, window_index
from .diffusion import q_sample
from .policy import POLICY_KIND, DiffusionPlanner, PolicyModel, RegressionPlanner
from .train import TrainConfig, TrainResult, train

__all__ = ["policy_config", "recipe_config", "Windows", "prepare", "diffusion_loss", "regression_loss",
           "validation_loss", "chunk_error", "fit_policy", "train_policy", "loss_curve", "save_loss_curve",
           "read_loss_curve"]

Tensor = torch.Tensor


def policy_config(objective: str = "diffusion", *, features: str = "sincos",
                  down_dims: tuple[int, ...] = (32, 64, 128), T: int = 100) -> dict:
    """The config of a PushT policy (what `PolicyModel` builds and a checkpoint stores)."""
    config = {"kind": POLICY_KIND, "objective": objective, "features": features,
              "net": {"down_dims": list(down_dims)}}
    if objective == "diffusion":
        config["schedule"] = {"kind": "cosine", "T": T}
    return config


def recipe_config(objective: str = "diffusion", **kw) -> dict:
    """The config a committed PushT checkpoint stores: `policy_config` with the network's full arguments
    filled in (what `PolicyModel(config).config` gives back) and "data": "pusht" (for `ddpm_nb.recipes`).
    """
    return {**PolicyModel(policy_config(objective, **kw)).config, "data": "pusht"}


@dataclass
class Windows:
    """Normalised training and validation windows and the normalisers fitted on the training episodes.

    train_obs (W, T_o, D), train_act (W, T_p, 2); val_obs, val_act likewise; obs_norm, act_norm: MinMax;
    train_episodes, val_episodes: the episode indices.
    """

    train_obs: Tensor
    train_act: Tensor
    val_obs: Tensor
    val_act: Tensor
    obs_norm: MinMax
    act_norm: MinMax
    train_episodes: list[int]
    val_episodes: list[int]


def prepare(data: PushTData, features: str = "sincos") -> Windows:
    """Split the episodes, fit the normalisers on the training episodes' rows only, cut the windows."""
    train_eps, val_eps = split_episodes(data.episodes)
    obs = state_features(data.state, features)
    rows = torch.cat([torch.arange(data.episode(e).start, data.episode(e).stop) for e in train_eps])
    obs_norm, act_norm = MinMax.fit(obs[rows]), MinMax.fit(data.action[rows])
    obs, act = obs_norm.encode(obs), act_norm.encode(data.action)
    to, ta = make_windows(obs, act, window_index(data.episode_ends, train_eps))
    vo, va = make_windows(obs, act, window_index(data.episode_ends, val_eps))
    return Windows(to, ta, vo, va, obs_norm, act_norm, train_eps, val_eps)


def diffusion_loss(model: PolicyModel, batch: tuple[Tensor, Tensor], generator: torch.Generator) -> Tensor:
    """L_simple for action chunks: E_{t, ε} ‖ε - ε_θ(a_t, t | o)‖² (mean over batch and entries).

    batch: (obs (B, T_o, D), actions (B, T_p, A)), both normalised.
    """
    obs, a0 = batch
    alpha_bar = torch.cumprod(1 - model.beta, 0).to(a0)
    T = model.beta.shape[0] - 1
    # 1. a step and noise per example, 2. the noised chunk (eq. 4 of Ho et al.), 3. predict the noise
    t = torch.randint(1, T + 1, (a0.shape[0],), generator=generator, device=generator.device).to(a0.device)
    eps = torch.randn(a0.shape, generator=generator, device=a0.device, dtype=a0.dtype)
    at = q_sample(a0, t, alpha_bar, eps)
    return F.mse_loss(model(at, t, obs), eps)


def regression_loss(model: PolicyModel, batch: tuple[Tensor, Tensor], generator: torch.Generator) -> Tensor:
    """MSE between the predicted and the demonstrated chunk (the baseline): ‖f_θ(o) - a_0‖²."""
    obs, a0 = batch
    return F.mse_loss(model(torch.zeros_like(a0), None, obs), a0)


@torch.no_grad()
def validation_loss(model: PolicyModel, obs: Tensor, act: Tensor, *, seed: int = 0,
                    batch: int = 1024) -> float:
    """The training loss on held-out windows, with fixed draws (same seed: comparable across runs)."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    loss_fn = diffusion_loss if model.objective == "diffusion" else regression_loss
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
    loss_fn = diffusion_loss if model.objective == "diffusion" else regression_loss
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


# ---------------------------------------------------------------- training curves of the committed runs

def loss_curve(history: list[float], every: int = 50) -> dict:
    """Block means of per-update training losses: {"every", "step" (the last update of each block,
    counted from 1), "mean"}; len(history) must be a multiple of `every`."""
    if every < 1 or not history or len(history) % every:
        raise ValueError(f"Need a non-empty history whose length is a multiple of every = {every}, "
                         f"got {len(history)} losses.")
    h = torch.tensor(history, dtype=torch.float64).reshape(-1, every)
    return {"every": every, "step": [every * (i + 1) for i in range(h.shape[0])], "mean": h.mean(1).tolist()}


def save_loss_curve(state_path: str | os.PathLike, checkpoint: str | os.PathLike, out: str | os.PathLike, *,
                    every: int = 50) -> dict:
    """Write the training-loss curve of a checkpoint, read from the training state of the run that made it.

    The training state (NAME.state.pt, not committed: it holds the optimiser) keeps every update's loss;
    this writes their block means as a small JSON (NAME.loss.json) next to the checkpoint, with the
    checkpoint's sha256 and command. The state must be that run's: the same number of updates and the
    same mean loss over the last 100 updates as the checkpoint's meta, else ValueError. Atomic write.
    """
    from .weights import file_sha256

    state = torch.load(state_path, map_location="cpu", weights_only=True)
    meta = torch.load(checkpoint, map_location="cpu", weights_only=True)["meta"]
    history = [float(v) for v in state["history"]]
    last = sum(history[-100:]) / len(history[-100:]) if history else float("nan")
    if state["step"] != meta["steps"] or len(history) != meta["steps"] or \
            abs(last - meta["final_loss_mean_last_100"]) > 1e-9:
        raise ValueError(f"{state_path} is not the training state of the run that made {checkpoint} "
                         f"(steps {state['step']} vs {meta['steps']}, last-100 mean loss {last:.6g} vs "
                         f"{meta['final_loss_mean_last_100']:.6g}).")
    curve = {"checkpoint": f"checkpoints/{Path(checkpoint).name}",
             "checkpoint_sha256": file_sha256(checkpoint), "command": meta["command"],
             "batch_size": meta["train"]["batch_size"],
             "source": f"the per-update training losses kept in {Path(state_path).name}, the training state "
                       f"of that run", **loss_curve(history, every)}
    out = Path(out)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(curve, f, indent=1)
        f.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp makes it private; a committed file is readable by all
    os.replace(tmp, out)
    return curve


def read_loss_curve(name: str) -> dict:
    """The committed training-loss curve of recipe `name`: checkpoints/NAME.loss.json (`save_loss_curve`)."""
    from .recipes import checkpoint_dir

    path = checkpoint_dir() / f"{name}.loss.json"
    if not path.is_file():
        raise FileNotFoundError(f"No training curve at {path}: restore checkpoints/ from the repository, or "
                                f"write it with `python tools/loss_curve.py {name}` after training.")
    return json.loads(path.read_text(encoding="utf-8"))
