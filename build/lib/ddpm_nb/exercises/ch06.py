"""Checkers for chapter 6 (NoProp: the residual coefficients, the block weights, one inference step, and
one block's training step with no gradient leaking across blocks)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from ..noprop import (
    NoPropDT,
    alphas_from,
    block_loss,
    block_weights,
    noprop_alpha_bar,
    noprop_step,
    optimisers,
    q_z,
    residual_coefficients,
)
from ._core import ExerciseWrong, attempt, diagnose, expect_tensor, passed

__all__ = ["ANSWERS", "check_abc", "check_block_weight", "check_inference_step", "check_noprop_block"]

# The package's own answers to each exercise: an answer that is one of them, or calls one, is rejected.
ANSWERS: dict[str, tuple] = {
    "6.1": (residual_coefficients, alphas_from),
    "6.2": (block_weights,),
    "6.3": (residual_coefficients,),
    "6.5": (block_loss, noprop_step, optimisers, q_z),
}

_T = 8
_AB = noprop_alpha_bar("cosine", _T)


def _as_tensor(exercise: str, value) -> torch.Tensor:
    try:
        return torch.as_tensor(value, dtype=torch.float64).reshape(())
    except (TypeError, ValueError, RuntimeError):
        raise ExerciseWrong(f"Exercise {exercise}: return numbers (floats or 0-d tensors), "
                            f"got {type(value).__name__}.") from None


def check_abc(abc: Callable) -> None:
    """Exercise 6.1: abc(alpha_bar, t) -> (a_t, b_t, c_t), NoProp's convention (ᾱ grows towards the label)."""
    alpha = alphas_from(_AB)
    a, b, c = residual_coefficients(_AB)
    for t in (1, 4, _T):
        out = attempt("6.1", abc, _AB.clone(), t, forbidden=ANSWERS["6.1"])
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise ExerciseWrong("Exercise 6.1: return the three numbers (a_t, b_t, c_t) as a tuple.")
        got = torch.stack([_as_tensor("6.1", v) for v in out])
        want = torch.stack([a[t], b[t], c[t]])
        ab, abp, ap = _AB[t], _AB[t - 1], alpha[t - 1]
        at_t = alpha[t]
        diagnose("6.1", got, want, {
            "Use α_{t-1} = ᾱ_{t-1}/ᾱ_t, the step between z_t and z_{t-1}, not α_t.":
                torch.stack([ab.sqrt() * (1 - at_t) / (1 - abp), at_t.sqrt() * (1 - ab) / (1 - abp),
                             (1 - ab) * (1 - at_t) / (1 - abp)]),
            "a_t and b_t carry square roots: sqrt(ᾱ_t) in a_t and sqrt(α_{t-1}) in b_t.":
                torch.stack([ab * (1 - ap) / (1 - abp), ap * (1 - ab) / (1 - abp), c[t]]),
            "a_t multiplies the label u_y and b_t the noisier z_{t-1}: you swapped them.":
                torch.stack([b[t], a[t], c[t]]),
        }, hint="a_t = sqrt(ᾱ_t)(1-α_{t-1})/(1-ᾱ_{t-1}), b_t = sqrt(α_{t-1})(1-ᾱ_t)/(1-ᾱ_{t-1}), "
                "c_t = (1-ᾱ_t)(1-α_{t-1})/(1-ᾱ_{t-1}), with α_{t-1} = ᾱ_{t-1}/ᾱ_t.", tol=1e-9)
    passed("6.1", "a_t, b_t, c_t of q(z_t | z_{t-1}, y) in NoProp's convention.")


def check_block_weight(block_weight: Callable) -> None:
    """Exercise 6.2: block_weight(alpha_bar, t, eta) -> (T/2)·η·(SNR(t) - SNR(t-1))."""
    eta = 0.1
    w = block_weights(_AB, eta)
    snr = _AB / (1 - _AB)
    for t in (1, 5, _T):
        got = _as_tensor("6.2", attempt("6.2", block_weight, _AB.clone(), t, eta, forbidden=ANSWERS["6.2"]))
        diagnose("6.2", got, w[t], {
            "Use the difference SNR(t) - SNR(t-1): block t moves z from t-1 to t.":
                _T / 2 * eta * (snr[min(t + 1, _T)] - snr[t]),
            "Multiply by T/2 (the T blocks each sampled with probability 1/T, and the ½ of the Gaussian).":
                eta * (snr[t] - snr[t - 1]),
            "SNR(t) = ᾱ_t / (1 - ᾱ_t), not (1 - ᾱ_t)/ᾱ_t.":
                _T / 2 * eta * ((1 - _AB[t]) / _AB[t] - (1 - _AB[t - 1]) / _AB[t - 1]),
        }, hint="w_t = (T/2)·η·(SNR(t) - SNR(t-1)) with SNR(t) = ᾱ_t/(1-ᾱ_t) and T = len(alpha_bar) - 1.",
           tol=1e-9 * max(1.0, float(w[t])))
    passed("6.2", "the weight of block t's loss.")


def check_inference_step(inference_step: Callable) -> None:
    """Exercise 6.3: inference_step(z_prev, u_hat, t, alpha_bar, eps) = a_t û + b_t z_{t-1} + sqrt(c_t) ε."""
    g = torch.Generator().manual_seed(63)
    z, u, eps = (torch.randn(64, 10, generator=g, dtype=torch.float64) for _ in range(3))
    a, b, c = residual_coefficients(_AB)
    t = 3
    got = expect_tensor("6.3", attempt("6.3", inference_step, z, u, t, _AB.clone(), eps,
                                        forbidden=ANSWERS["6.3"]), z.shape)
    diagnose("6.3", got, a[t] * u + b[t] * z + c[t].sqrt() * eps, {
        "c_t is a variance: the noise is sqrt(c_t)·ε.": a[t] * u + b[t] * z + c[t] * eps,
        "a_t goes with the prediction û and b_t with z_{t-1}.": b[t] * u + a[t] * z + c[t].sqrt() * eps,
        "Add the noise sqrt(c_t)·ε: the step samples q(z_t | z_{t-1}, û).": a[t] * u + b[t] * z,
    }, hint="z_t = a_t·û + b_t·z_{t-1} + sqrt(c_t)·ε with the coefficients of exercise 6.1.")
    passed("6.3", "one step of NoProp's inference.")


# ---------------------------------------------------------------- 6.5 one block's training step (build)

_LR = 1e-3


def _block_case() -> tuple[NoPropDT, torch.Tensor, torch.Tensor]:
    """A small NoProp-DT (T = 4, one-hot labels) in training mode, with 12 images and labels: fixed seeds."""
    with torch.random.fork_rng():
        torch.manual_seed(65)
        model = NoPropDT(T=4, width=16).train()
    g = torch.Generator().manual_seed(650)
    x = torch.rand(12, 1, 28, 28, generator=g) * 2 - 1
    y = torch.randint(10, (12,), generator=g)
    return model, x, y


def _block_slip_losses(model: NoPropDT, t: int, x, y, seed: int) -> dict[str, torch.Tensor]:
    """Block t's loss with one known mistake each, on the same draws (a copy of the model, no update)."""
    m = copy.deepcopy(model)
    u = m.embed(y)
    eps = torch.randn(u.shape, generator=torch.Generator().manual_seed(seed))
    ab, w = m.alpha_bar, m.weights

    def sq(z):
        return (m.u_hat(t, z, x) - u) ** 2

    with torch.no_grad():
        z_prev = ab[t - 1].sqrt() * u + (1 - ab[t - 1]).sqrt() * eps
        z_t = ab[t].sqrt() * u + (1 - ab[t]).sqrt() * eps
        return {
            "Multiply by the block's weight w_t = model.weights[t] (the (T/2)·η·ΔSNR(t) of exercise 6.2).":
                sq(z_prev).sum(1).mean(),
            "Block t reads z_{t-1}, drawn with ᾱ_{t-1} = model.alpha_bar[t - 1], not with ᾱ_t.":
                w[t] * sq(z_t).sum(1).mean(),
            "Sum the squared error over the d coordinates, then average over the batch (not a mean over "
            "both).": w[t] * sq(z_prev).mean(),
            "z_{t-1} ~ q(z_{t-1} | y) = N(sqrt(ᾱ_{t-1}) u_y, (1 - ᾱ_{t-1}) I): scale the noise by "
            "sqrt(1 - ᾱ_{t-1}) and the label by sqrt(ᾱ_{t-1}).":
                w[t] * ((m.u_hat(t, (1 - ab[t - 1]) * u + ab[t - 1] * eps, x) - u) ** 2).sum(1).mean(),
        }


def _stale(model: NoPropDT, t: int) -> None:
    """Gradients a previous backward pass left on block t (what zero_grad must clear)."""
    for i, p in enumerate(model.blocks[t - 1].parameters()):
        p.grad = torch.full_like(p, 0.5 if i % 2 else -0.5)


def _updated_with(model: NoPropDT, t: int, x, y, seed: int, how: str) -> list[torch.Tensor]:
    """Block t's parameters after one step done in a known wrong way (for the update's diagnosis)."""
    m = copy.deepcopy(model)
    params = list(m.blocks[t - 1].parameters())
    opt = torch.optim.AdamW(params, lr=_LR)
    _stale(m, t)
    if how == "no_zero_grad":
        block_loss(m, t, x, y, torch.Generator().manual_seed(seed)).backward()
        opt.step()
    elif how == "step_first":
        opt.step()
    return [p.detach().clone() for p in params]


def _loss_with(model: NoPropDT, t: int, x, y, seed: int, params: list[torch.Tensor]) -> torch.Tensor:
    """Block t's loss on the same draws with block t's parameters set to `params`."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        for p, v in zip(m.blocks[t - 1].parameters(), params, strict=True):
            p.copy_(v)
        return block_loss(m, t, x, y, torch.Generator().manual_seed(seed)).double()


def _differs(a: list[torch.Tensor], b: list[torch.Tensor], tol: float = 1e-6) -> bool:
    return any(not torch.allclose(p, q, atol=tol, rtol=0) for p, q in zip(a, b, strict=True))


def _state(module: torch.nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    return ([p.detach().clone() for p in module.parameters()], [b.clone().double() for b in module.buffers()])


def _no_leak(model: NoPropDT, t: int, before: dict) -> None:
    """No other block (nor the head) received a gradient, changed, or ran in training mode."""
    parts = {f"block {s}": model.blocks[s - 1] for s in range(1, model.T + 1) if s != t}
    parts["the classifier head"] = model.head
    for name, part in parts.items():
        if any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in part.parameters()):
            raise ExerciseWrong(
                f"Exercise 6.5: a gradient reached {name} from block {t}'s loss: the gradient leaks "
                f"across blocks. z_{{t-1}} must be a draw of q(z_{{t-1}} | y) = sqrt(ᾱ_{{t-1}}) u_y + "
                f"sqrt(1 - ᾱ_{{t-1}}) ε, with no other block in its graph (if it came from another "
                f"block, it would at least need .detach()), and the loss is block {t}'s alone.")
        params, buffers = _state(part)
        if _differs(params, before[name][0], tol=0):
            raise ExerciseWrong(f"Exercise 6.5: {name}'s parameters changed: block {t}'s step may update "
                                f"θ_{t} only.")
        if _differs(buffers, before[name][1], tol=0):
            raise ExerciseWrong(f"Exercise 6.5: {name}'s running statistics (BatchNorm) changed: you ran "
                                f"it in training mode. Block {t}'s step needs no other block: z_{{t-1}} "
                                f"comes from q(z_{{t-1}} | y), not from the chain of the blocks before it.")


def check_noprop_block(block_optimiser: Callable, block_step: Callable) -> None:
    """Exercise 6.5: block_optimiser(model, t, lr) -> AdamW over θ_t; block_step(model, opt, t, x, y,
    generator) -> block t's loss, after one step that updates θ_t alone (Li et al. 2025, alg. 1)."""
    base, x, y = _block_case()
    for t, seed in ((3, 651), (1, 652)):
        model = copy.deepcopy(base)
        own = list(model.blocks[t - 1].parameters())
        # the reference: the package's step on a copy, on the same draws
        ref = copy.deepcopy(model)
        ref_opt = torch.optim.AdamW(ref.blocks[t - 1].parameters(), lr=_LR)
        want_loss = torch.tensor(noprop_step(ref, [ref_opt], x, y, torch.Generator().manual_seed(seed),
                                             blocks=[t])[0], dtype=torch.float64)
        want = [p.detach().clone() for p in ref.blocks[t - 1].parameters()]
        slips = _block_slip_losses(model, t, x, y, seed)
        stale = {how: _updated_with(model, t, x, y, seed, how) for how in ("no_zero_grad", "step_first")}
        slips["Call opt.step() after loss.backward(): you stepped first, on the old gradients, and "
              "computed the loss with the updated block."] = _loss_with(model, t, x, y, seed,
                                                                        stale["step_first"])

        opt = attempt("6.5", block_optimiser, model, t, _LR, forbidden=ANSWERS["6.5"])
        if not isinstance(opt, torch.optim.Optimizer):
            raise ExerciseWrong(f"Exercise 6.5: block_optimiser must return a torch.optim optimiser "
                                f"(torch.optim.AdamW), got {type(opt).__name__}.")
        held = {id(p) for g in opt.param_groups for p in g["params"]}
        if held - {id(p) for p in own}:
            raise ExerciseWrong(f"Exercise 6.5: the optimiser of block {t} holds parameters outside block "
                                f"{t} (e.g. model.parameters()): give it model.blocks[t - 1].parameters() "
                                f"only. With one-hot labels nothing else is trained by block {t}'s loss.")
        if {id(p) for p in own} - held:
            raise ExerciseWrong(f"Exercise 6.5: the optimiser of block {t} misses some of block {t}'s "
                                f"parameters: give it all of model.blocks[t - 1].parameters().")
        before = {f"block {s}": _state(model.blocks[s - 1]) for s in range(1, model.T + 1) if s != t}
        before["the classifier head"] = _state(model.head)
        _stale(model, t)
        out = attempt("6.5", block_step, model, opt, t, x, y, torch.Generator().manual_seed(seed),
                      forbidden=ANSWERS["6.5"])
        got_loss = _as_tensor("6.5", out.detach() if isinstance(out, torch.Tensor) else out)
        _no_leak(model, t, before)
        diagnose("6.5", got_loss, want_loss, {k: v.double() for k, v in slips.items()},
                 hint="u = model.embed(y); ε = torch.randn(u.shape, generator=generator); z_{t-1} = "
                      "sqrt(ᾱ_{t-1}) u + sqrt(1 - ᾱ_{t-1}) ε; loss = w_t · mean over the batch of "
                      "‖model.u_hat(t, z_{t-1}, x) - u‖².", tol=1e-5 * max(1.0, float(want_loss)))
        got = [p.detach() for p in own]
        if _differs(got, want):
            for how, message in (
                ("no_zero_grad", "Clear block t's old gradients first (opt.zero_grad()): the update used "
                                 "them too."),
                ("step_first", "Call loss.backward() before opt.step(): the update used the old "
                               "gradients."),
            ):
                if not _differs(got, stale[how]):
                    raise ExerciseWrong(f"Exercise 6.5: not yet. {message}")
            if not _differs(got, [p.detach() for p in base.blocks[t - 1].parameters()], tol=0):
                raise ExerciseWrong(f"Exercise 6.5: block {t}'s parameters did not change: call opt.step() "
                                    f"after loss.backward().")
            raise ExerciseWrong(f"Exercise 6.5: block {t}'s update differs from one AdamW step (lr {_LR}) "
                                f"on its loss: zero the gradients, backward, step, once.")
    passed("6.5", "one NoProp block's training step: the right loss, θ_t updated, no gradient leaking.")
