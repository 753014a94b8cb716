"""NoProp-DT training: each block learns on its own loss with its own optimiser, through the book's loop.

Block t (1..T) regresses the label embedding from a noisy z_{t-1} ~ q(z_{t-1}|y) and the image; the
classifier head (with the KL of z_0) is trained on its own output loss. No gradient crosses blocks:
each loss's graph touches one block. `noprop_training(model, blocks=...)` gives the optimiser factory
and the step function that `ddpm_nb.train.train` runs, for all blocks or any subset of them (so blocks
can be trained by separate workers: `ddpm_nb.noprop.parallel`), with every guard of the loop (finite
loss, resume checks, RNG rewind on Ctrl-C, bit-identical resume). With per_block_noise=True each block
draws its noise from a generator of its own (`block_generators`), so what block t sees does not depend
on which other blocks the same process trains.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import UserError
from ..train import TrainConfig, TrainResult, derive_seed, train
from .model import NoPropDT
from .schedule import kl_z0, q_z

__all__ = ["block_loss", "output_loss", "check_blocks", "optimisers", "block_generators", "noprop_step",
           "noprop_training", "train_noprop"]

Tensor = torch.Tensor


def block_loss(model: NoPropDT, t: int, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
    """Block t's loss: w_t · E‖û_θt(z_{t-1}, x) - u_y‖², z_{t-1} ~ q(z_{t-1}|y). Scalar; touches θ_t only
    (and W_embed when it is learned)."""
    u = model.embed(y)
    eps = torch.randn(u.shape, generator=generator, device=u.device, dtype=u.dtype)
    z = q_z(u, t - 1, model.alpha_bar, eps)
    return model.weights[t] * ((model.u_hat(t, z, x) - u) ** 2).sum(1).mean()


def output_loss(model: NoPropDT, y: Tensor, generator: torch.Generator) -> Tensor:
    """-log p(y|z_T) with z_T ~ q(z_T|y), plus KL(q(z_0|y) || N(0, I)); mean over the batch."""
    u = model.embed(y)
    eps = torch.randn(u.shape, generator=generator, device=u.device, dtype=u.dtype)
    z_T = q_z(u, model.T, model.alpha_bar, eps)
    return nn.functional.cross_entropy(model.head(z_T), y) + kl_z0(u, model.alpha_bar).mean()


def check_blocks(model: NoPropDT, blocks: Sequence[int] | None) -> list[int]:
    """The losses to train, sorted: block indices 1..T and T + 1 for the classifier head (None: all)."""
    if blocks is None:
        return list(range(1, model.T + 2))
    chosen = sorted(set(int(b) for b in blocks))
    if not chosen or chosen[0] < 1 or chosen[-1] > model.T + 1:
        raise UserError(f"blocks must be indices in 1..{model.T} (and {model.T + 1} for the classifier "
                        f"head), "
                        f"got {list(blocks)!r}.")
    return chosen


def _parameters(model: NoPropDT, t: int) -> list[nn.Parameter]:
    if t <= model.T:
        return list(model.blocks[t - 1].parameters())
    return list(model.head.parameters()) + ([model.W_embed] if model.kind == "learned" else [])


def optimisers(model: NoPropDT, lr: float, weight_decay: float,
               blocks: Sequence[int] | None = None) -> list[torch.optim.Optimizer]:
    """One AdamW per trained block, in block order; the head's (and a learned embedding's) last."""
    return [torch.optim.AdamW(_parameters(model, t), lr=lr, weight_decay=weight_decay)
            for t in check_blocks(model, blocks)]


def block_generators(generator: torch.Generator, chosen: Sequence[int]) -> list[torch.Generator]:
    """One fresh generator per chosen t for this step, on `generator`'s device: one draw of `generator`
    (the same single draw whichever blocks are chosen), then seed derive_seed(draw, "block t") for each t.
    So block t's noise is a function of the step's draw and t alone."""
    device = generator.device
    draw = int(torch.randint(2 ** 62, (1,), generator=generator, device=device).item())
    return [torch.Generator(device=device).manual_seed(derive_seed(draw, f"block {t}")) for t in chosen]


def noprop_step(model: NoPropDT, opts: list, x: Tensor, y: Tensor, generator: torch.Generator,
                grad_clip: float | None = None, blocks: Sequence[int] | None = None, *,
                per_block_noise: bool = False) -> list[float]:
    """One NoProp-DT step on a batch: for each chosen t (default 1..T, then T + 1 = the head), its loss,
    its backward, its optimiser (opts[i] belongs to the i-th chosen t); each graph is freed before the
    next is built. Returns the losses in that order.

    The noise comes from `generator` in block order (the committed checkpoints' runs), or with
    per_block_noise=True from `block_generators(generator, chosen)`, one generator per block."""
    chosen = check_blocks(model, blocks)
    if len(opts) != len(chosen):
        raise UserError(f"noprop_step needs one optimiser per trained block: {len(chosen)} blocks, "
                        f"{len(opts)} optimisers.")
    gens = block_generators(generator, chosen) if per_block_noise else [generator] * len(chosen)
    for opt in opts:
        opt.zero_grad(set_to_none=True)
    values = []
    for t, opt, gen in zip(chosen, opts, gens, strict=True):
        loss = block_loss(model, t, x, y, gen) if t <= model.T else output_loss(model, y, gen)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)  # free this block's gradients before the next block
        values.append(loss.item())
    return values


def noprop_training(model: NoPropDT, blocks: Sequence[int] | None = None, *, per_block_noise: bool = False):
    """(optimiser factory, step function) for `ddpm_nb.train.train`: NoProp on the chosen blocks
    (per_block_noise: see `noprop_step`).

    The recorded loss is the mean of the chosen blocks' losses (the head's output loss is left out
    unless it is the only one trained): with all blocks, the mean of the T block losses.
    """
    chosen = check_blocks(model, blocks)

    def factory(m: nn.Module, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
        return optimisers(m, cfg.lr, cfg.weight_decay, chosen)

    def step(m: nn.Module, opts: list, batch, gen: torch.Generator, cfg: TrainConfig) -> float:
        x, y = batch
        losses = noprop_step(m, opts, x, y, gen, cfg.grad_clip, chosen, per_block_noise=per_block_noise)
        inner = [v for t, v in zip(chosen, losses, strict=True) if t <= m.T] or losses
        return sum(inner) / len(inner)

    return factory, step


def train_noprop(model: NoPropDT, data, cfg: TrainConfig, *, device=None, state_path=None,
                 desc: str = "noprop", progress: bool = True, callback=None,
                 blocks: Sequence[int] | None = None) -> TrainResult:
    """Train NoProp-DT (`noprop_step` on random batches of data = (images, labels), AdamW per block at
    `lr_at(step)`, an EMA of all weights) with the book's loop; resumable from `state_path`."""
    factory, step = noprop_training(model, blocks)
    return train(model, None, data, cfg, device=device, state_path=state_path, desc=desc, callback=callback,
                 progress=progress, step=step, optimizers=factory)
