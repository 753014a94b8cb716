"""The book's one training loop, and the checkpoints the chapters load.

`train` runs AdamW with a warm-up + cosine learning rate (`lr_at`), gradient clipping and an EMA of
the weights (the model the chapters sample from: Ho et al. 2020, appendix B; Song & Ermon 2020,
"Improved techniques for training score-based generative models", technique 5). With a
`state_path` it saves the full training state atomically and resumes from it bit-identically.
A recipe that trains differently (NoProp trains each block on its own loss with its own optimiser)
plugs in a step function and an optimiser factory, and keeps every guard of the loop: the finite-loss
check, the device and model-fits-state checks on resume, and the RNG rewind on Ctrl-C.
The small published checkpoints live in `ddpm_nb.checkpoints`.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoints import state_mismatch
from .config import pick_device
from .errors import LossNotFinite, TrainingInterrupted, UserError
from .files import read_torch, save_torch
from .progress import progress_bar

__all__ = ["lr_at", "EMA", "TrainConfig", "TrainResult", "train", "STATE_FORMAT", "adamw", "default_step",
           "derive_seed", "batch_sampler", "Optimizers", "StepFn"]

STATE_FORMAT = "ddpm_nb.train_state/2"  # /2: a list of optimisers (one per block for NoProp)
# Fields that may differ on resume: they change how long or how visibly we train, not the recipe.
RESUMABLE_FIELDS = ("steps", "ckpt_every", "log_every")

Tensor = torch.Tensor
Batch = Tensor | tuple[Tensor, ...]
PathLike = str | os.PathLike


def lr_at(step: int, *, lr: float, warmup: int, total: int, min_lr_ratio: float = 0.0) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up, then cosine decay.

    Rises linearly from 0 at step 0 to `lr` at step `warmup`, then follows half a cosine down to
    `lr * min_lr_ratio` at step `total` and stays there (SGDR without restarts: Loshchilov &
    Hutter 2017, eq. 5). `train` uses `lr_at(step)` for its update number `step` = 0 .. steps-1.
    """
    if step < 0:
        raise UserError(f"step must be non-negative, got {step}.")
    if total < 1 or not 0 <= warmup <= total:
        raise UserError(f"Need 0 <= warmup <= total and total >= 1, got warmup={warmup}, total={total}.")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise UserError(f"min_lr_ratio must lie in [0, 1], got {min_lr_ratio}.")
    if step < warmup:
        return lr * step / warmup
    if step >= total:
        return lr * min_lr_ratio
    progress = (step - warmup) / (total - warmup)
    return lr * (min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


class EMA:
    """Exponential moving average of a model's parameters and floating-point buffers.

    After each optimizer step, shadow <- d * shadow + (1 - d) * weight, with
    d = min(decay, (1 + n) / (10 + n)) and n the number of updates made before this one (0 for the
    first), so the average quickly forgets the random initialization (the warm-up of TensorFlow's
    ExponentialMovingAverage). Integer buffers (e.g. BatchNorm's counter) are copied, not averaged.
    Names and shapes follow `model.state_dict()`; the shadow lives on the model's device.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        if not 0.0 <= decay < 1.0:
            raise UserError(f"EMA decay must lie in [0, 1), got {decay}.")
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow: dict[str, Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        """The decay the next `update` will use: min(decay, (1 + n) / (10 + n))."""
        n = self.num_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    def _check(self, state: Mapping[str, Any], what: str) -> None:
        problem = state_mismatch(self.shadow, state)
        if problem:
            raise UserError(f"The EMA does not fit {what} ({problem}): use the model the EMA was made from.")

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights into the average (call once after each optimizer step)."""
        weights = model.state_dict()
        self._check(weights, "this model")
        d = self.current_decay()
        for name, s in self.shadow.items():
            if s.is_floating_point():
                s.mul_(d).add_(weights[name], alpha=1.0 - d)
            else:
                s.copy_(weights[name])
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's parameters and buffers with the averaged ones."""
        weights = model.state_dict()
        self._check(weights, "this model")
        for name, w in weights.items():
            w.copy_(self.shadow[name])

    def state_dict(self) -> dict[str, Any]:
        """decay, num_updates and the shadow tensors (shared, not copied, like `nn.Module.state_dict`)."""
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned; checks names and shapes before changing anything."""
        self._check(state["shadow"], "the saved EMA")
        self.decay, self.num_updates = float(state["decay"]), int(state["num_updates"])
        for name, s in self.shadow.items():
            s.copy_(state["shadow"][name])


@dataclass
class TrainConfig:
    """The recipe of one training run. Plain fields, so `dataclasses.asdict` goes into a checkpoint.

    grad_clip: max global gradient norm (None: no clipping). ckpt_every: steps between saves of the
    training state (None: only at the end and on interruption). log_every: steps between updates of
    the running loss shown on the progress bar.
    """

    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: int = 100
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    ckpt_every: int | None = 500
    log_every: int = 50

    def __post_init__(self) -> None:
        rules = [
            (self.steps >= 1, "steps must be at least 1"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.lr > 0, "lr must be positive"),
            (self.weight_decay >= 0, "weight_decay must be non-negative"),
            (0 <= self.warmup <= self.steps, "warmup must lie between 0 and steps"),
            (0.0 <= self.min_lr_ratio <= 1.0, "min_lr_ratio must lie in [0, 1]"),
            (self.grad_clip is None or self.grad_clip > 0, "grad_clip must be positive or None"),
            (0.0 <= self.ema_decay < 1.0, "ema_decay must lie in [0, 1)"),
            (self.seed >= 0, "seed must be non-negative"),
            (self.ckpt_every is None or self.ckpt_every >= 1, "ckpt_every must be at least 1 or None"),
            (self.log_every >= 1, "log_every must be at least 1"),
        ]
        for ok, message in rules:
            if not ok:
                raise UserError(f"TrainConfig: {message}, got {self}.")


@dataclass
class TrainResult:
    """What `train` returns: the trained model, an eval-mode copy holding the EMA weights, and the
    per-step losses (history[k] is the loss of update k)."""

    model: nn.Module
    ema_model: nn.Module
    history: list[float]
    seconds: float
    steps: int


# ----------------------------------------------------------------------------------------------
# The training loop and its pieces.


def derive_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for one random stream, so the data and noise streams never coincide."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{stream}".encode()).digest()[:8], "little") >> 1


def _to_device(batch: Any, device: torch.device) -> Batch:
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, (tuple, list)) and batch and all(isinstance(t, Tensor) for t in batch):
        return tuple(t.to(device) for t in batch)
    raise UserError(f"data(batch_size, generator) must return a tensor or a tuple of tensors, "
                    f"got {type(batch).__name__}.")


def batch_sampler(data: Any, batch_size: int, device: torch.device) -> Callable[[torch.Generator], Batch]:
    """A function generator -> batch: random rows (with replacement) of a tensor / tuple of tensors
    (N, ...), or a call to a sampler `data(batch_size, generator)`; the batch is moved to `device`."""
    if isinstance(data, Tensor):
        tensors, single = (data,), True
    elif isinstance(data, (tuple, list)):
        tensors, single = tuple(data), False
    elif callable(data):
        return lambda gen: _to_device(data(batch_size, gen), device)
    else:
        raise UserError(f"data must be a tensor, a tuple of tensors or a callable, "
                        f"got {type(data).__name__}.")
    if not tensors or not all(isinstance(t, Tensor) and t.dim() >= 1 for t in tensors):
        raise UserError("data must be a non-empty tuple of tensors with a first (example) dimension.")
    sizes = {t.shape[0] for t in tensors}
    if len(sizes) != 1 or 0 in sizes:
        raise UserError(f"data tensors must share a non-zero first dimension, "
                        f"got {[t.shape[0] for t in tensors]}.")
    n = sizes.pop()

    def draw(gen: torch.Generator) -> Batch:
        idx = torch.randint(n, (batch_size,), generator=gen)
        out = tuple(t[idx.to(t.device)].to(device) for t in tensors)
        return out[0] if single else out

    return draw


Optimizers = Callable[[nn.Module, "TrainConfig"], list[torch.optim.Optimizer]]
# step(model, optimizers, batch, generator, cfg) -> the loss to record: one update of the model
StepFn = Callable[[nn.Module, list[torch.optim.Optimizer], Batch, torch.Generator, "TrainConfig"], float]


def adamw(model: nn.Module, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    """The default optimiser factory: one AdamW over all parameters (lr is set every step by `lr_at`)."""
    return [torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)]


def check_loss(value: float, step: int | None = None) -> float:
    """The loss as a float, or LossNotFinite: training never continues past a NaN or infinite loss."""
    if not math.isfinite(value):
        raise LossNotFinite(value, step)
    return value


def default_step(loss_fn: Callable) -> StepFn:
    """The usual update: 1. loss on the batch, 2. its gradients, 3. clip the global gradient norm,
    4. one step of the (single) optimiser."""

    def step(model: nn.Module, opts: list[torch.optim.Optimizer], batch: Batch, gen: torch.Generator,
             cfg: TrainConfig) -> float:
        loss = loss_fn(model, batch, gen)
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            raise UserError(f"loss_fn must return a scalar tensor, got {getattr(loss, 'shape', type(loss))}.")
        value = loss.item()
        check_loss(value)  # before any gradient reaches the weights
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        for opt in opts:
            opt.step()
        return value

    return step


@dataclass
class _Run:
    """Everything `train` needs besides the recipe; what the state file holds."""

    model: nn.Module
    ema: EMA
    opts: list[torch.optim.Optimizer]
    gens: tuple[torch.Generator, torch.Generator]  # (data on the CPU, noise on the device)
    device: torch.device
    step: int = 0
    history: list[float] = field(default_factory=list)
    seconds: float = 0.0
    updating: bool = False  # set by an optimiser's pre-step hook: the weights may be half-updated


def _save_state(path: Path, run: _Run, cfg: TrainConfig) -> None:
    save_torch({
        "format": STATE_FORMAT, "step": run.step, "config": asdict(cfg), "device": run.device.type,
        "model": run.model.state_dict(), "ema": run.ema.state_dict(),
        "optimizers": [opt.state_dict() for opt in run.opts],
        "rng_data": run.gens[0].get_state(), "rng_noise": run.gens[1].get_state(),
        "history": list(run.history), "seconds": run.seconds,
    }, path)


def _resume(path: Path, run: _Run, cfg: TrainConfig) -> None:
    """Load a training state into `run`, after checking everything that could make it not fit."""
    remedy = f"delete it (rm {path}) to start training afresh"
    state = read_torch(path, STATE_FORMAT, "training state", remedy)
    saved, now = state["config"], asdict(cfg)
    differ = [k for k in now if k not in RESUMABLE_FIELDS and saved.get(k) != now[k]]
    differ += [k for k in saved if k not in now]
    if differ:
        what = ", ".join(f"{k} (saved {saved.get(k)!r}, now {now.get(k)!r})" for k in differ)
        raise UserError(f"The training state {path} used another recipe: {what}; use its settings, "
                        f"or {remedy}.")
    if state["step"] > cfg.steps:
        raise UserError(f"The training state {path} is already at step {state['step']}, beyond "
                        f"steps={cfg.steps}: raise steps, or {remedy}.")
    if state["device"] != run.device.type:
        raise UserError(f"The training state {path} was saved on {state['device']} but this run is on "
                        f"{run.device.type}: pass device={state['device']!r} (--device {state['device']}), "
                        f"or {remedy}.")
    problem = state_mismatch(run.model.state_dict(), state["model"])
    if problem:
        raise UserError(f"The training state {path} does not fit this model ({problem}): build the model "
                        f"it was trained with, or {remedy}.")
    if len(state["optimizers"]) != len(run.opts):
        raise UserError(f"The training state {path} holds {len(state['optimizers'])} optimisers but this "
                        f"run has {len(run.opts)} (another set of blocks?): use its settings, or {remedy}.")
    run.model.load_state_dict(state["model"])
    run.ema.load_state_dict(state["ema"])
    for opt, saved_opt in zip(run.opts, state["optimizers"], strict=True):
        opt.load_state_dict(saved_opt)
    run.gens[0].set_state(state["rng_data"])
    run.gens[1].set_state(state["rng_noise"])
    run.step, run.history, run.seconds = state["step"], list(state["history"]), float(state["seconds"])


def _one_update(run: _Run, step_fn: StepFn, draw: Callable, cfg: TrainConfig) -> float:
    """1. lr_at(step) on every optimiser, 2. draw a batch, 3. the step function (loss, gradients,
    optimiser steps), 4. the finite-loss check, 5. EMA update, 6. record the loss."""
    lr = lr_at(run.step, lr=cfg.lr, warmup=cfg.warmup, total=cfg.steps, min_lr_ratio=cfg.min_lr_ratio)
    for opt in run.opts:
        for group in opt.param_groups:
            group["lr"] = lr
    batch = draw(run.gens[0])
    try:
        value = check_loss(float(step_fn(run.model, run.opts, batch, run.gens[1], cfg)), run.step + 1)
    except LossNotFinite as err:  # a step function does not know its number: the loop says it
        raise LossNotFinite(err.value, run.step + 1) from None
    run.ema.update(run.model)
    run.history.append(value)
    run.step += 1
    return value


def _interrupted(run: _Run, cfg: TrainConfig, path: Path | None, rewind, start_clock: float,
                 start_seconds: float) -> TrainingInterrupted:
    """Ctrl-C: save a consistent state (the draws of an unfinished step given back) or keep the last
    one (when an optimiser had started changing the weights); returns the exception that says which."""
    if path is None or run.updating:
        return TrainingInterrupted(run.step, path, saved=False)
    if rewind is not None:  # interrupted before any weight changed: give back what the step had changed
        run.gens[0].set_state(rewind[0])  # its draws
        run.gens[1].set_state(rewind[1])
        with torch.no_grad():  # and its buffers (a BatchNorm's running statistics move in the forward pass)
            for name, buf in run.model.named_buffers():
                buf.copy_(rewind[2][name])
    run.seconds = start_seconds + time.perf_counter() - start_clock
    _save_state(path, run, cfg)
    return TrainingInterrupted(run.step, path, saved=True)


def _loop(run: _Run, step_fn: StepFn, draw, cfg: TrainConfig, path: Path | None, desc, callback,
          progress) -> None:
    """Steps run.step .. cfg.steps-1; on KeyboardInterrupt saves a consistent state, then re-raises."""
    start_clock, start_seconds = time.perf_counter(), run.seconds
    bar = progress_bar(total=cfg.steps, initial=run.step, desc=desc, disable=not progress, dynamic_ncols=True)
    rewind = None

    def mark_updating(*_):  # an optimiser is about to change weights: no rewinding after this
        run.updating = True

    hooks = [opt.register_step_pre_hook(mark_updating) for opt in run.opts]
    try:
        while run.step < cfg.steps:
            rewind = (run.gens[0].get_state(), run.gens[1].get_state(),
                      {name: buf.detach().clone() for name, buf in run.model.named_buffers()})
            value = _one_update(run, step_fn, draw, cfg)
            rewind, run.updating = None, False
            run.seconds = start_seconds + time.perf_counter() - start_clock
            bar.update(1)
            if run.step % cfg.log_every == 0 or run.step == cfg.steps:
                recent = run.history[-cfg.log_every:]
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.4g}")
            due = cfg.ckpt_every is not None and run.step % cfg.ckpt_every == 0 and run.step < cfg.steps
            if path is not None and due:
                _save_state(path, run, cfg)
            if callback is not None:
                callback(run.step, value)
    except TrainingInterrupted:
        raise
    except KeyboardInterrupt:
        raise _interrupted(run, cfg, path, rewind, start_clock, start_seconds) from None
    finally:
        for hook in hooks:
            hook.remove()
        bar.close()


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Batch, torch.Generator], Tensor] | None,
    data: Tensor | tuple[Tensor, ...] | Callable[[int, torch.Generator], Batch],
    cfg: TrainConfig,
    *,
    device: str | torch.device | None = None,
    state_path: PathLike | None = None,
    desc: str = "training",
    callback: Callable[[int, float], None] | None = None,
    progress: bool = True,
    step: StepFn | None = None,
    optimizers: Optimizers = adamw,
) -> TrainResult:
    """Train `model` in place with AdamW, warm-up + cosine lr, gradient clipping and an EMA.

    data: a tensor (N, ...) or a tuple of tensors sharing N, from which each batch takes
    `cfg.batch_size` random rows (with replacement); or a sampler `data(batch_size, generator)`
    returning a tensor or tuple of tensors. Either way the randomness is a CPU generator seeded
    from cfg.seed, and the batch is moved to `device` (default: `pick_device()`).
    loss_fn(model, batch, generator) -> scalar loss; `generator` lives on `device`, is seeded from
    cfg.seed, and is where all of the loss's noise must come from.
    step, optimizers: the hooks of a recipe that updates differently (NoProp: one optimiser per block,
    each block stepped on its own loss): `optimizers(model, cfg)` -> list of optimisers (default one
    AdamW), `step(model, optimizers, batch, generator, cfg)` -> the loss value to record (default
    `default_step(loss_fn)`). The loop sets every optimiser's lr, checks the loss is finite, updates
    the EMA and saves/resumes everything.
    state_path: where the full training state is saved (every cfg.ckpt_every steps, at the end, and
    on KeyboardInterrupt, e.g. from Ctrl-C or from `callback(step, loss)`). If the file exists,
    training resumes from it and ends bit-identical to an uninterrupted run; only `steps`,
    `ckpt_every` and `log_every` may differ from the saved config. (Dropout draws from torch's
    global RNG, which the state does not hold: a model with dropout resumes correctly, not bit-exactly.)
    """
    if step is None and loss_fn is None:
        raise UserError("train needs a loss_fn, or a step function that computes its own losses.")
    device = torch.device(device) if device is not None else pick_device()
    draw = batch_sampler(data, cfg.batch_size, device)
    model.to(device).train()
    gens = (torch.Generator().manual_seed(derive_seed(cfg.seed, "data")),
            torch.Generator(device=device).manual_seed(derive_seed(cfg.seed, "noise")))
    run = _Run(model=model, ema=EMA(model, cfg.ema_decay), opts=list(optimizers(model, cfg)), gens=gens,
               device=device)
    path = Path(state_path) if state_path is not None else None
    if path is not None and path.exists():
        _resume(path, run, cfg)
    start = run.step
    _loop(run, step or default_step(loss_fn), draw, cfg, path, desc, callback, progress)
    if path is not None and run.step > start:
        _save_state(path, run, cfg)
    ema_model = copy.deepcopy(model)
    run.ema.copy_to(ema_model)
    ema_model.zero_grad(set_to_none=True)
    return TrainResult(model=model, ema_model=ema_model.eval(), history=list(run.history),
                       seconds=run.seconds, steps=run.step)
